package k8s

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/internal/kubetest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestRunServicesAPIServer: RunServices through a real kube-apiserver, as
// the ringnetd user with deploy/ringnet.yaml's ClusterRole, which must let
// it make every request it makes: a Service and its EndpointSlice as the API server stores
// them (defaults applied, a node port allocated) are published; an
// endpoint going not ready and terminating is republished; the slice
// deleted leaves the service without endpoints, and the service deleted
// leaves nothing. The API server's own service, default/kubernetes, is
// there too.
func TestRunServicesAPIServer(t *testing.T) {
	api := kubetest.StartT(t)
	ctx := context.Background()
	if err := api.GrantRingnetd(ctx); err != nil {
		t.Fatal(err)
	}
	admin := api.Client()
	const ns = "shop"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svcs, eps := admin.CoreV1().Services(ns), admin.DiscoveryV1().EndpointSlices(ns)
	web, err := svcs.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeNodePort,
			ClusterIP: "10.96.0.10",
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}, // protocol: defaulted to TCP
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
			},
			ExternalIPs:           []string{"192.0.2.10"},
			SessionAffinity:       corev1.ServiceAffinityClientIP, // timeout: defaulted to 10800 s
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := kslice(ns, "web-abcde", "web", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{kport("http", corev1.ProtocolTCP, 8080), kport("dns", corev1.ProtocolUDP, 53)},
		kendpoint("10.244.1.5", "node-a", "true", "true", "false"),
		kendpoint("10.244.2.7", "node-b", "", "", ""), // conditions nil: ready, serving, not terminating
	)
	if _, err := eps.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// ringnetd's client, as Client makes it, noting each request the API
	// server refuses: with a verb missing, the informers would still
	// list (or relist) what they cannot watch, and the test pass.
	cfg := api.RESTConfig(api.RingnetdToken)
	var refused refusals
	cfg.WrapTransport = refused.wrap
	client, err := clientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r := refused.all(); len(r) > 0 {
			t.Errorf("the API server refused ringnetd %q: deploy/ringnet.yaml's ClusterRole lacks a verb RunServices uses", r)
		}
	})
	logs := &syncBuffer{}
	s := New(client, Options{Debounce: 10 * time.Millisecond, Log: debugLog(logs)})
	lists := make(chan []cluster.Service, 1000)
	start(t, logs, func(ctx context.Context) error {
		return s.RunServices(ctx, func(svcs []cluster.Service, _, _ time.Time) { lists <- svcs })
	})

	nodePort := func(i int) uint16 { return uint16(web.Spec.Ports[i].NodePort) }
	if nodePort(0) == 0 || nodePort(1) == 0 {
		t.Fatalf("the API server allocated no node ports: %+v", web.Spec.Ports)
	}
	endpointPorts := []cluster.EndpointPort{{Name: "dns", Protocol: 17, Port: 53}, {Name: "http", Protocol: 6, Port: 8080}}
	want := cluster.Service{
		Namespace: ns, Name: "web", ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.10"),
		Ports: []cluster.ServicePort{
			{Name: "http", Protocol: 6, Port: 80, NodePort: nodePort(0)},
			{Name: "dns", Protocol: 17, Port: 53, NodePort: nodePort(1)},
		},
		Affinity: 3 * time.Hour, ExternalLocal: true,
		Endpoints: []cluster.ServiceEndpoint{
			{Addr: addrs("10.244.1.5")[0], Node: "node-a", Ready: true, Serving: true, Ports: endpointPorts},
			{Addr: addrs("10.244.2.7")[0], Node: "node-b", Ready: true, Serving: true, Ports: endpointPorts},
		},
	}
	got := awaitNamespace(t, lists, ns, "the service and its slice", []cluster.Service{want})

	// default/kubernetes, the API server's own: the first address of the
	// service range. It has no endpoint: the server does not write its
	// address here, a loopback one, which the API refuses.
	wantKube := cluster.Service{Namespace: metav1.NamespaceDefault, Name: "kubernetes", ClusterIPs: addrs("10.96.0.1"),
		Ports: []cluster.ServicePort{{Name: "https", Protocol: 6, Port: 443}}}
	if cmp.Diff([]cluster.Service{wantKube}, inNamespace(got, metav1.NamespaceDefault), cmpAddr) != "" {
		// Its controller may make it after the informers' first list.
		awaitNamespace(t, lists, metav1.NamespaceDefault, "the API server's start", []cluster.Service{wantKube})
	}

	// The first endpoint's pod terminates: not ready, still serving.
	edit(t, eps, slice.Name, func(s *discoveryv1.EndpointSlice) {
		s.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}
	})
	want.Endpoints[0].Ready, want.Endpoints[0].Terminating = false, true
	awaitNamespace(t, lists, ns, "the endpoint terminating", []cluster.Service{want})

	if err := eps.Delete(ctx, slice.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want.Endpoints = nil
	awaitNamespace(t, lists, ns, "the slice deleted", []cluster.Service{want})

	if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	awaitNamespace(t, lists, ns, "the service deleted", nil)
}

// awaitNamespace waits for a list whose services in namespace ns are
// want, and returns it.
func awaitNamespace(t *testing.T, lists <-chan []cluster.Service, ns, what string, want []cluster.Service) []cluster.Service {
	t.Helper()
	var last string
	deadline := time.After(20 * time.Second)
	for {
		var l []cluster.Service
		select {
		case l = <-lists:
		case <-deadline:
			t.Fatalf("after %s, no list published in 20s with the services of %s wanted; the last (-want +got):\n%s", what, ns, last)
		}
		if last = cmp.Diff(want, inNamespace(l, ns), cmpAddr); last == "" {
			return l
		}
	}
}

// inNamespace returns the services of l in namespace ns.
func inNamespace(l []cluster.Service, ns string) []cluster.Service {
	var in []cluster.Service
	for _, s := range l {
		if s.Namespace == ns {
			in = append(in, s)
		}
	}
	return in
}

// refusals notes the requests a client's transport saw refused (403).
type refusals struct {
	mu   sync.Mutex // guards seen
	seen []string   // "GET /apis/...", in order
}

func (r *refusals) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			r.mu.Lock()
			r.seen = append(r.seen, req.Method+" "+req.URL.RequestURI())
			r.mu.Unlock()
		}
		return resp, err
	})
}

func (r *refusals) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
