package k8s

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// runServices is runFake of RunServices.
func runServices(t *testing.T, debounce time.Duration, objs ...runtime.Object) *fakeRun[[]cluster.Service] {
	t.Helper()
	return runFake(t, debounce, []string{"services", "endpointslices"}, objs,
		func(ctx context.Context, s *Source, publish func([]cluster.Service, time.Time, time.Time)) error {
			return s.RunServices(ctx, publish)
		})
}

// webService is shop/web, a NodePort service with one port, and its
// slice with two ready endpoints.
func webService() (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := ksvc("shop", "web", corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIPs: []string{"10.96.0.10"},
		Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080}}})
	es := kslice("shop", "web-1", "web", ipv4, []discoveryv1.EndpointPort{kport("http", corev1.ProtocolTCP, 8080)},
		kendpoint("10.244.1.5", "node-a", "true", "true", "false"), kendpoint("10.244.2.7", "node-b", "true", "true", "false"))
	return svc, es
}

// webModel is webService in the model, with ready endpoints at the
// addresses given.
func webModel(endpoints ...string) cluster.Service {
	s := cluster.Service{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"),
		Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80, NodePort: 30080}}}
	nodes := map[string]string{"10.244.1.5": "node-a", "10.244.2.7": "node-b", "10.244.3.9": "node-c"}
	for _, a := range endpoints {
		s.Endpoints = append(s.Endpoints, cluster.ServiceEndpoint{Addr: addrs(a)[0], Node: nodes[a], Ready: true, Serving: true,
			Ports: []cluster.EndpointPort{{Name: "http", Protocol: 6, Port: 8080}}})
	}
	return s
}

// TestRunServices: the first call, once the caches have synced, holds
// every service with its endpoints; then each change of what the model
// is made of publishes once, and the rest publishes nothing.
func TestRunServices(t *testing.T) {
	const debounce = 20 * time.Millisecond
	svc, es := webService()
	objs := []runtime.Object{svc, es,
		ksvc("shop", "db", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}),
		kslice("shop", "orphan-1", "orphan", ipv4, nil, kendpoint("10.244.9.9", "", "", "", "")),
	}
	begin := time.Now()
	r := runServices(t, debounce, objs...)
	p := next(t, r.calls)
	checkTimes(t, p.times, begin)
	if diff := cmp.Diff([]cluster.Service{webModel("10.244.1.5", "10.244.2.7")}, p.got, cmpAddr); diff != "" {
		t.Errorf("first list (-want +got):\n%s", diff)
	}
	none(t, r.calls, 5*debounce)

	ctx := context.Background()
	svcs := r.client.CoreV1().Services("shop")
	eps := r.client.DiscoveryV1().EndpointSlices("shop")
	editSvc := func(name string, change func(*corev1.Service)) { t.Helper(); edit(t, svcs, name, change) }
	editES := func(name string, change func(*discoveryv1.EndpointSlice)) { t.Helper(); edit(t, eps, name, change) }

	// Nothing the model is made of.
	editSvc("web", func(s *corev1.Service) {
		s.Labels = map[string]string{"a": "b"}
		s.Spec.Selector = map[string]string{"app": "web"}
	})
	editES("web-1", func(s *discoveryv1.EndpointSlice) {
		s.Endpoints[0].Zone = ptr("z1")
		s.Endpoints[0].TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "web-0"}
	})
	editES("orphan-1", func(s *discoveryv1.EndpointSlice) { s.Endpoints = nil }) // a slice of no service
	editSvc("db", func(s *corev1.Service) { s.Spec.ExternalName = "db2.example.com" })
	none(t, r.calls, 5*debounce)

	// What it is made of, one change a call.
	steps := []struct {
		what   string
		change func()
		want   []cluster.Service
	}{
		{"an endpoint not ready", func() {
			editES("web-1", func(s *discoveryv1.EndpointSlice) {
				s.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: ptr(false)}
			})
		}, func() []cluster.Service {
			s := webModel("10.244.1.5", "10.244.2.7")
			s.Endpoints[0].Ready = false // serving nil: true
			return []cluster.Service{s}
		}()},
		{"a slice added", func() {
			if _, err := eps.Create(ctx, kslice("shop", "web-2", "web", ipv4, []discoveryv1.EndpointPort{kport("http", corev1.ProtocolTCP, 8080)},
				kendpoint("10.244.3.9", "node-c", "", "", "")), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func() []cluster.Service {
			s := webModel("10.244.1.5", "10.244.2.7", "10.244.3.9")
			s.Endpoints[0].Ready = false
			return []cluster.Service{s}
		}()},
		{"the first slice deleted", func() {
			if err := eps.Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []cluster.Service{webModel("10.244.3.9")}},
		{"ExternalName to ClusterIP", func() {
			editSvc("db", func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIPs = corev1.ServiceTypeClusterIP, "", []string{"10.96.0.11"}
			})
		}, []cluster.Service{{Namespace: "shop", Name: "db", ClusterIPs: addrs("10.96.0.11")}, webModel("10.244.3.9")}},
		{"a service's affinity", func() {
			editSvc("web", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP })
		}, func() []cluster.Service {
			s := webModel("10.244.3.9")
			s.Affinity = 3 * time.Hour
			return []cluster.Service{{Namespace: "shop", Name: "db", ClusterIPs: addrs("10.96.0.11")}, s}
		}()},
		{"a service deleted", func() {
			if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []cluster.Service{{Namespace: "shop", Name: "db", ClusterIPs: addrs("10.96.0.11")}}},
	}
	for _, s := range steps {
		before := time.Now()
		s.change()
		p := next(t, r.calls)
		checkTimes(t, p.times, before)
		if diff := cmp.Diff(s.want, p.got, cmpAddr); diff != "" {
			t.Errorf("after %s (-want +got):\n%s", s.what, diff)
		}
		none(t, r.calls, 3*debounce)
	}
}

// TestRunServicesEmpty: a cluster without services still gives one call,
// once synced.
func TestRunServicesEmpty(t *testing.T) {
	r := runServices(t, 10*time.Millisecond)
	if p := next(t, r.calls); len(p.got) != 0 {
		t.Errorf("services %+v, want none", p.got)
	}
	none(t, r.calls, 50*time.Millisecond)
}

// TestRunServicesUndone: a change undone within the debounce publishes
// nothing: the list is the one published.
func TestRunServicesUndone(t *testing.T) {
	const debounce = 300 * time.Millisecond
	svc, es := webService()
	r := runServices(t, debounce, svc, es)
	next(t, r.calls)
	eps := r.client.DiscoveryV1().EndpointSlices("shop")
	begin := time.Now()
	edit(t, eps, "web-1", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Conditions.Ready = ptr(false) })
	edit(t, eps, "web-1", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Conditions.Ready = ptr(true) })
	if took := time.Since(begin); took > debounce/2 {
		t.Skipf("the two updates took %v, more than half the debounce: they may fall in two batches", took)
	}
	none(t, r.calls, 2*debounce)
}
