package netpol_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/service"
)

// A node's whole control-plane compile: what one node compiles when the
// cluster changes, NetworkPolicy (package netpol) and Services
// (agent/cluster ServiceSpecs into tables/service), on the cluster of
// BenchmarkCompile. ringnetd runs the two on goroutines of their own
// (cmd/ringnetd policy.go and services.go); the benchmarks run them one
// after the other, as a node with one free core would. They are in
// package netpol_test because agent/cluster imports netpol.

// benchNodes is the number of nodes benchServices spreads the pods over;
// benchSelf is the node that compiles, one of them.
const benchNodes = 100

var benchSelf = &cluster.Node{Name: "node-000", Address: netip.MustParsePrefix("192.168.0.1/16"),
	PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}

// benchServices makes the Services of BenchCluster's pods, shaped like a
// real cluster's: one per deployment (app-N of every application
// namespace: 1 000 for 100 namespaces) with 1 to 10 ready endpoints, a
// grpc port on the apps that have one, sessionAffinity ClientIP on app-2,
// one endpoint terminating during a rollout in every seventh; in every
// tenth namespace app-9 is instead a "web" Service of all the namespace's
// pods (100 endpoints) with an external IP (a LoadBalancer); the fe tier
// of every twentieth namespace has NodePorts, half of them
// externalTrafficPolicy Local; and kube-dns and the API server. Pod i
// runs on node i mod benchNodes.
func benchServices(pods []netpol.Pod) []cluster.Service {
	type deployment struct{ ns, app string }
	byApp := map[deployment][]cluster.ServiceEndpoint{}
	byNS := map[string][]cluster.ServiceEndpoint{}
	for i, p := range pods {
		e := cluster.ServiceEndpoint{Addr: p.IPs[0], Node: fmt.Sprintf("node-%03d", i%benchNodes), Ready: true}
		for _, np := range p.Ports {
			e.Ports = append(e.Ports, cluster.EndpointPort{Name: np.Name, Protocol: np.Proto, Port: np.Port})
		}
		app := p.Labels["app"]
		if app == "" {
			app = p.Labels["k8s-app"]
		}
		d := deployment{p.Namespace, app}
		byApp[d] = append(byApp[d], e)
		byNS[p.Namespace] = append(byNS[p.Namespace], e)
	}
	vip := 0
	clusterIP := func() []netip.Addr {
		vip++
		return []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(vip >> 8), byte(vip)})}
	}
	http := cluster.ServicePort{Name: "http", Protocol: cluster.ProtoTCP, Port: 80}
	grpc := cluster.ServicePort{Name: "grpc", Protocol: cluster.ProtoTCP, Port: 9000}

	svcs := []cluster.Service{
		{Namespace: "default", Name: "kubernetes", ClusterIPs: clusterIP(),
			Ports: []cluster.ServicePort{{Name: "https", Protocol: cluster.ProtoTCP, Port: 443}},
			Endpoints: []cluster.ServiceEndpoint{{Addr: netip.MustParseAddr("192.168.0.10"), Ready: true,
				Ports: []cluster.EndpointPort{{Name: "https", Protocol: cluster.ProtoTCP, Port: 6443}}}}},
		{Namespace: "kube-system", Name: "kube-dns", ClusterIPs: clusterIP(),
			Ports: []cluster.ServicePort{{Name: "dns", Protocol: cluster.ProtoUDP, Port: 53}, {Name: "dns-tcp", Protocol: cluster.ProtoTCP, Port: 53},
				{Name: "metrics", Protocol: cluster.ProtoTCP, Port: 9153}},
			Endpoints: byApp[deployment{"kube-system", "kube-dns"}]},
	}
	for n := 0; ; n++ {
		ns := fmt.Sprintf("ns-%03d", n)
		if byNS[ns] == nil {
			break
		}
		for a := range 10 {
			app := fmt.Sprintf("app-%d", a)
			s := cluster.Service{Namespace: ns, Name: app, ClusterIPs: clusterIP(), Ports: []cluster.ServicePort{http}}
			eps := byApp[deployment{ns, app}]
			s.Endpoints = eps[:1+(3*n+a)%len(eps)]
			if a%3 == 1 {
				s.Ports = append(s.Ports, grpc)
			}
			if a == 2 {
				s.Affinity = 3 * time.Hour
			}
			if (n+a)%7 == 0 && len(s.Endpoints) > 1 {
				s.Endpoints = append([]cluster.ServiceEndpoint(nil), s.Endpoints...)
				s.Endpoints[0].Ready, s.Endpoints[0].Serving, s.Endpoints[0].Terminating = false, true, true
			}
			if a%3 == 0 && n%20 == 1 {
				for i := range s.Ports {
					s.Ports[i].NodePort = uint16(30000 + 100*n + 10*a + i)
				}
				s.ExternalLocal = a%2 == 0
			}
			if a == 9 && n%10 == 0 {
				s.Name = "web"
				s.Endpoints = byNS[ns]
				s.ExternalIPs = []netip.Addr{netip.AddrFrom4([4]byte{203, 0, 113, byte(n)})}
			}
			svcs = append(svcs, s)
		}
	}
	return svcs
}

// nodeCompile is what one node compiled: the policy and the service
// table.
type nodeCompile struct {
	policy   *netpol.Compiled
	services *service.Table
	specs    []service.Spec
}

// compileNode compiles the cluster for benchSelf: the policy with the
// previous result, as the agent does on a change, and the service table
// from scratch, as at a start (Build: every Maglev table filled).
func compileNode(gen uint64, prev *netpol.Compiled, nss []netpol.Namespace, pods []netpol.Pod, pols []netpol.NetworkPolicy, svcs []cluster.Service) (nodeCompile, error) {
	c, err := netpol.Compile(gen, prev, nss, pods, pols)
	if err != nil {
		return nodeCompile{}, err
	}
	specs, problems := cluster.ServiceSpecs(benchSelf, svcs)
	if len(problems) > 0 {
		return nodeCompile{}, fmt.Errorf("services: %v", problems)
	}
	t, err := service.Build(gen, specs)
	if err != nil {
		return nodeCompile{}, err
	}
	return nodeCompile{policy: c, services: t, specs: specs}, nil
}

// reportServices adds the service table's size to b's figures.
func reportServices(b *testing.B, svcs []cluster.Service, specs []service.Spec) {
	backends := 0
	for _, sp := range specs {
		backends += len(sp.Backends)
	}
	b.ReportMetric(float64(len(svcs)), "services")
	b.ReportMetric(float64(len(specs)), "svc-entries")
	b.ReportMetric(float64(backends), "backends")
}

// BenchmarkCompileNode compiles what a node compiles for a change of a
// cluster of 10 003 pods, 1 000 NetworkPolicies and 1 002 Services:
// the policy (Compile with the previous result, into tables/policy) and
// the services (ServiceSpecs, then service.Build, which fills every
// Maglev table: the cost at a start, or of a change to every Service).
// The target is 200 ms. services-ms/op is the services' share.
func BenchmarkCompileNode(b *testing.B) {
	nss, pods, pols := netpol.BenchCluster(100, 100)
	svcs := benchServices(pods)
	nc, err := compileNode(1, nil, nss, pods, pols, svcs)
	if err != nil {
		b.Fatal(err)
	}
	if len(nc.policy.Problems) > 0 {
		b.Fatal(nc.policy.Problems)
	}
	prev := nc.policy
	var svcTime time.Duration
	b.ReportAllocs()
	gen, n := uint64(1), 0
	for b.Loop() {
		gen++
		c, err := netpol.Compile(gen, prev, nss, pods, pols)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		specs, _ := cluster.ServiceSpecs(benchSelf, svcs)
		if _, err := service.Build(gen, specs); err != nil {
			b.Fatal(err)
		}
		svcTime += time.Since(start)
		prev, n = c, n+1
	}
	b.ReportMetric(svcTime.Seconds()*1e3/float64(n), "services-ms/op")
	b.ReportMetric(float64(prev.Stats.Pods), "pods")
	b.ReportMetric(float64(prev.Stats.NetworkPolicies), "netpols")
	reportServices(b, svcs, nc.specs)
}

// BenchmarkCompileNodeEndpointSlice compiles the services after one
// EndpointSlice changed, as ringnetd does (cmd/ringnetd services.go): one
// endpoint of one 10-endpoint Service goes unready and ready again on
// alternate rounds, the rest stay; ServiceSpecs of all 1 002 Services,
// then Table.Next, which refills one Maglev table and takes the others
// from the previous table. NetworkPolicy is not compiled: an
// EndpointSlice is no input of it.
func BenchmarkCompileNodeEndpointSlice(b *testing.B) {
	_, pods, _ := netpol.BenchCluster(100, 100)
	svcs := benchServices(pods)
	k := -1
	for i, s := range svcs {
		if s.Namespace == "ns-051" && s.Name == "app-6" {
			k = i
		}
	}
	if k < 0 || len(svcs[k].Endpoints) != 10 {
		b.Fatalf("no 10-endpoint Service ns-051/app-6 to change")
	}
	svcs[k].Endpoints = append([]cluster.ServiceEndpoint(nil), svcs[k].Endpoints...) // the source's own copy
	specs, problems := cluster.ServiceSpecs(benchSelf, svcs)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	t, err := service.Build(1, specs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e := &svcs[k].Endpoints[3]
		e.Ready = !e.Ready
		specs, _ := cluster.ServiceSpecs(benchSelf, svcs)
		if t, err = t.Next(t.Generation()+1, specs); err != nil {
			b.Fatal(err)
		}
	}
	reportServices(b, svcs, specs)
}

// TestBenchServices checks that benchServices makes the Services it says
// it makes and that they compile for benchSelf without problems, so that
// the benchmarks' figures are for a table that does what a cluster's does.
func TestBenchServices(t *testing.T) {
	nss, pods, pols := netpol.BenchCluster(20, 100)
	svcs := benchServices(pods)
	if len(svcs) != 20*10+2 {
		t.Fatalf("%d services, want %d", len(svcs), 20*10+2)
	}
	nc, err := compileNode(1, nil, nss, pods, pols, svcs)
	if err != nil {
		t.Fatal(err)
	}
	var affinity, nodePorts, local, external, empty int
	sizes := map[int]int{} // backends per entry → entries
	for _, sp := range nc.specs {
		sizes[len(sp.Backends)]++
		switch {
		case sp.Affinity > 0:
			affinity++
		case sp.VIP == benchSelf.Address.Addr():
			nodePorts++
		case sp.External:
			external++
		}
		if sp.Local {
			local++
		}
		if len(sp.Backends) == 0 {
			empty++
		}
	}
	// NodePorts: ns-001's fe apps (app-0, -3, -6, -9), one port each; the
	// Local ones (app-0, app-6) have no endpoint on this node among the
	// few listed, so they have no backends. External IPs: ns-000's and
	// ns-010's web.
	if nodePorts != 4 || local != 2 || empty != 2 || external != 2 || affinity != 20 {
		t.Errorf("node ports %d (want 4), local %d (want 2), no backends %d (want 2), external IPs %d (want 2), affinity %d (want 20)",
			nodePorts, local, empty, external, affinity)
	}
	if sizes[100] != 4 { // ns-000's and ns-010's web, cluster IP and external IP
		t.Errorf("%d entries with 100 backends, want 4: %v", sizes[100], sizes)
	}
	for n := 1; n <= 10; n++ {
		if sizes[n] == 0 {
			t.Errorf("no entry with %d backends: %v", n, sizes)
		}
	}
	// Lookups give a backend of the Service's own pods.
	s, ok := nc.services.Lookup(svcs[2].ClusterIPs[0], cluster.ProtoTCP, 80) // ns-000/app-0
	if !ok || svcs[2].Name != "app-0" {
		t.Fatalf("ns-000/app-0 (%s) not in the table", svcs[2].ClusterIPs[0])
	}
	for h := uint32(0); h < 1<<31; h += 1 << 27 {
		be, ok := s.Backend(h)
		if !ok || be.Port != 8080 || !isEndpoint(be.Addr, svcs[2].Endpoints) {
			t.Fatalf("ns-000/app-0: backend %v, %v", be, ok)
		}
	}
	t.Logf("%d entries; backends per entry: %v", len(nc.specs), sizes)
}

func isEndpoint(a netip.Addr, eps []cluster.ServiceEndpoint) bool {
	for _, e := range eps {
		if e.Addr == a && e.Ready {
			return true
		}
	}
	return false
}
