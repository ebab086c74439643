package cluster

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ringnet/ringnet/tables/service"
	"sigs.k8s.io/yaml"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, addr(s))
	}
	return out
}

// Endpoint conditions, as the EndpointSlice controller sets them.
const (
	ready       = "ready"       // ready, serving
	notReady    = "notReady"    // neither
	draining    = "draining"    // terminating and serving
	terminating = "terminating" // terminating, no longer serving
)

// ep is an endpoint at a on node, in state, with the given ports
// ("http/TCP/8080" style).
func ep(a, node, state string, ports ...EndpointPort) ServiceEndpoint {
	e := ServiceEndpoint{Addr: addr(a), Node: node, Ports: ports}
	switch state {
	case ready:
		e.Ready, e.Serving = true, true
	case draining:
		e.Serving, e.Terminating = true, true
	case terminating:
		e.Terminating = true
	}
	return e
}

func tcp(name string, port uint16) EndpointPort {
	return EndpointPort{Name: name, Protocol: ProtoTCP, Port: port}
}
func udp(name string, port uint16) EndpointPort {
	return EndpointPort{Name: name, Protocol: ProtoUDP, Port: port}
}

// be lists backends "addr:port" (or "[v6]:port").
func be(ss ...string) []service.Backend {
	var out []service.Backend
	for _, s := range ss {
		ap := netip.MustParseAddrPort(s)
		out = append(out, service.Backend{Addr: ap.Addr(), Port: ap.Port()})
	}
	return out
}

var (
	nodeA    = &Node{Name: "node-a", Address: pfx("192.168.50.1/24")}
	httpPort = ServicePort{Name: "http", Protocol: ProtoTCP, Port: 80}
	web      = func(eps ...ServiceEndpoint) Service {
		return Service{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"), Ports: []ServicePort{httpPort}, Endpoints: eps}
	}
)

// TestServiceSpecs: the entries of each service, and their backends, as
// kube-proxy would make them (Kubernetes' semantics of EndpointSlice
// conditions, externalTrafficPolicy, named ports and IP families).
func TestServiceSpecs(t *testing.T) {
	local := func(s Service) Service {
		s.ExternalLocal = true
		s.ExternalIPs = addrs("192.168.50.100")
		s.Ports = []ServicePort{{Name: "http", Protocol: ProtoTCP, Port: 80, NodePort: 30080}}
		return s
	}
	cluster := func(s Service) Service {
		s = local(s)
		s.ExternalLocal = false
		return s
	}
	vip := addr("10.96.0.10")
	spec := func(backends ...string) service.Spec {
		return service.Spec{VIP: vip, Proto: ProtoTCP, Port: 80, Backends: be(backends...)}
	}
	// node is the entry on node-a's address, ext the one on the external
	// IP, of a service with externalTrafficPolicy Local (or Cluster).
	node := func(isLocal bool, backends ...string) service.Spec {
		return service.Spec{VIP: addr("192.168.50.1"), Proto: ProtoTCP, Port: 30080, External: true, Local: isLocal, Backends: be(backends...)}
	}
	ext := func(isLocal bool, backends ...string) service.Spec {
		return service.Spec{VIP: addr("192.168.50.100"), Proto: ProtoTCP, Port: 80, External: true, Local: isLocal, Backends: be(backends...)}
	}
	tests := []struct {
		name     string
		self     *Node
		svcs     []Service
		want     []service.Spec
		problems []string
	}{
		// Conditions: Ready, else Serving and Terminating, else none.
		{name: "ready ones only", self: nodeA, svcs: []Service{web(
			ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
			ep("10.244.2.3", "node-b", ready, tcp("http", 8080)),
			ep("10.244.2.4", "node-b", notReady, tcp("http", 8080)),
			ep("10.244.1.5", "node-a", draining, tcp("http", 8080)),
			ep("10.244.1.6", "node-a", terminating, tcp("http", 8080)),
		)}, want: []service.Spec{spec("10.244.1.2:8080", "10.244.2.3:8080")}},
		{name: "none ready: the serving terminating ones", self: nodeA, svcs: []Service{web(
			ep("10.244.2.4", "node-b", notReady, tcp("http", 8080)),
			ep("10.244.1.5", "node-a", draining, tcp("http", 8080)),
			ep("10.244.2.5", "node-b", draining, tcp("http", 8080)),
			ep("10.244.1.6", "node-a", terminating, tcp("http", 8080)),
		)}, want: []service.Spec{spec("10.244.1.5:8080", "10.244.2.5:8080")}},
		{name: "serving but not terminating is not a fallback", self: nodeA, svcs: []Service{web(
			ServiceEndpoint{Addr: addr("10.244.1.7"), Serving: true, Ports: []EndpointPort{tcp("http", 8080)}},
		)}, want: []service.Spec{spec()}},
		{name: "nothing serving: the entry without backends", self: nodeA, svcs: []Service{web(
			ep("10.244.2.4", "node-b", notReady, tcp("http", 8080)),
			ep("10.244.1.6", "node-a", terminating, tcp("http", 8080)),
		)}, want: []service.Spec{spec()}},
		{name: "no endpoints", self: nodeA, svcs: []Service{web()}, want: []service.Spec{spec()}},
		{name: "ready and terminating counts as ready", self: nodeA, svcs: []Service{web(
			ServiceEndpoint{Addr: addr("10.244.1.8"), Ready: true, Terminating: true, Ports: []EndpointPort{tcp("http", 8080)}},
			ep("10.244.1.5", "node-a", draining, tcp("http", 8080)),
		)}, want: []service.Spec{spec("10.244.1.8:8080")}},
		{name: "an endpoint in two slices counts once", self: nodeA, svcs: []Service{web(
			ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
			ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
		)}, want: []service.Spec{spec("10.244.1.2:8080")}},

		// Ports: matched by name and protocol; the endpoint's port is the target.
		{name: "named ports, several", self: nodeA, svcs: []Service{{Namespace: "kube-system", Name: "dns", ClusterIPs: addrs("10.96.0.10"),
			Ports: []ServicePort{{Name: "dns", Protocol: ProtoUDP, Port: 53}, {Name: "dns-tcp", Protocol: ProtoTCP, Port: 53}, {Name: "metrics", Protocol: ProtoTCP, Port: 9153}},
			Endpoints: []ServiceEndpoint{
				ep("10.244.1.2", "node-a", ready, udp("dns", 5353), tcp("dns-tcp", 5353), tcp("metrics", 9153)),
				ep("10.244.2.2", "node-b", ready, udp("dns", 53), tcp("dns-tcp", 53)),   // no metrics port
				ep("10.244.2.3", "node-b", ready, tcp("dns", 53), udp("metrics", 9153)), // right names, wrong protocols
				ep("10.244.2.4", "node-b", ready, tcp("metrics", 0)),                    // a port with no number
			}}},
			want: []service.Spec{
				{VIP: vip, Proto: ProtoUDP, Port: 53, Backends: be("10.244.1.2:5353", "10.244.2.2:53")},
				{VIP: vip, Proto: ProtoTCP, Port: 53, Backends: be("10.244.1.2:5353", "10.244.2.2:53")},
				{VIP: vip, Proto: ProtoTCP, Port: 9153, Backends: be("10.244.1.2:9153")},
			}},
		{name: "unnamed single port", self: nodeA, svcs: []Service{{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"),
			Ports:     []ServicePort{{Protocol: ProtoTCP, Port: 80}},
			Endpoints: []ServiceEndpoint{ep("10.244.1.2", "node-a", ready, tcp("", 8080)), ep("10.244.1.3", "node-a", ready, tcp("http", 8080))}}},
			want: []service.Spec{spec("10.244.1.2:8080")}},
		{name: "fallback is per port", self: nodeA, svcs: []Service{{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"),
			Ports: []ServicePort{httpPort, {Name: "admin", Protocol: ProtoTCP, Port: 8081}},
			Endpoints: []ServiceEndpoint{
				ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
				ep("10.244.1.3", "node-a", draining, tcp("http", 8080), tcp("admin", 9000)),
			}}},
			want: []service.Spec{spec("10.244.1.2:8080"), {VIP: vip, Proto: ProtoTCP, Port: 8081, Backends: be("10.244.1.3:9000")}}},

		// externalTrafficPolicy.
		{name: "Cluster: every entry every endpoint", self: nodeA, svcs: []Service{cluster(web(
			ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
			ep("10.244.2.3", "node-b", ready, tcp("http", 8080)),
		))}, want: []service.Spec{
			spec("10.244.1.2:8080", "10.244.2.3:8080"),
			node(false, "10.244.1.2:8080", "10.244.2.3:8080"),
			ext(false, "10.244.1.2:8080", "10.244.2.3:8080"),
		}},
		{name: "Local: external entries this node's endpoints", self: nodeA, svcs: []Service{local(web(
			ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
			ep("10.244.2.3", "node-b", ready, tcp("http", 8080)),
			ep("192.168.60.9", "", ready, tcp("http", 8080)), // no node: not local
		))}, want: []service.Spec{
			spec("10.244.1.2:8080", "10.244.2.3:8080", "192.168.60.9:8080"),
			node(true, "10.244.1.2:8080"),
			ext(true, "10.244.1.2:8080"),
		}},
		{name: "Local: no endpoint here, none", self: nodeA, svcs: []Service{local(web(
			ep("10.244.2.3", "node-b", ready, tcp("http", 8080)),
		))}, want: []service.Spec{spec("10.244.2.3:8080"), node(true), ext(true)}},
		{name: "Local: the fallback among this node's endpoints", self: nodeA, svcs: []Service{local(web(
			ep("10.244.1.5", "node-a", draining, tcp("http", 8080)),
			ep("10.244.2.3", "node-b", ready, tcp("http", 8080)),
		))}, want: []service.Spec{spec("10.244.2.3:8080"), node(true, "10.244.1.5:8080"), ext(true, "10.244.1.5:8080")}},
		{name: "no self: no NodePort, no local endpoints", svcs: []Service{local(web(
			ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
		))}, want: []service.Spec{spec("10.244.1.2:8080"), ext(true)}},
		{name: "affinity on every entry", self: nodeA, svcs: []Service{func() Service {
			s := cluster(web(ep("10.244.1.2", "node-a", ready, tcp("http", 8080))))
			s.Affinity = 3 * time.Hour
			return s
		}()}, want: func() []service.Spec {
			w := []service.Spec{spec("10.244.1.2:8080"), node(false, "10.244.1.2:8080"), ext(false, "10.244.1.2:8080")}
			for i := range w {
				w[i].Affinity = 3 * time.Hour
			}
			return w
		}()},

		// IP families.
		{name: "dual stack", self: nodeA, svcs: []Service{{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10", "fd00:96::10"),
			ExternalIPs: addrs("192.168.50.100", "2001:db8::100"),
			Ports:       []ServicePort{{Name: "http", Protocol: ProtoTCP, Port: 80, NodePort: 30080}},
			Endpoints: []ServiceEndpoint{
				ep("10.244.1.2", "node-a", ready, tcp("http", 8080)),
				ep("fd00:244:1::2", "node-a", ready, tcp("http", 8080)),
				ep("::ffff:10.244.2.2", "node-b", ready, tcp("http", 8080)), // IPv4, however written
			}}},
			want: []service.Spec{
				spec("10.244.1.2:8080", "10.244.2.2:8080"),
				{VIP: addr("fd00:96::10"), Proto: ProtoTCP, Port: 80, Backends: be("[fd00:244:1::2]:8080")},
				node(false, "10.244.1.2:8080", "10.244.2.2:8080"),
				ext(false, "10.244.1.2:8080", "10.244.2.2:8080"),
				{VIP: addr("2001:db8::100"), Proto: ProtoTCP, Port: 80, External: true, Backends: be("[fd00:244:1::2]:8080")},
			}},
		{name: "IPv6 only: no NodePort on the IPv4 node, no IPv4 external IP", self: nodeA, svcs: []Service{{Namespace: "shop", Name: "web",
			ClusterIPs: addrs("fd00:96::10"), ExternalIPs: addrs("192.168.50.100"),
			Ports:     []ServicePort{{Name: "http", Protocol: ProtoTCP, Port: 80, NodePort: 30080}},
			Endpoints: []ServiceEndpoint{ep("10.244.1.2", "node-a", ready, tcp("http", 8080)), ep("fd00:244:1::2", "node-a", ready, tcp("http", 8080))}}},
			want:     []service.Spec{{VIP: addr("fd00:96::10"), Proto: ProtoTCP, Port: 80, Backends: be("[fd00:244:1::2]:8080")}},
			problems: []string{"service shop/web: external IP TCP 192.168.50.100:80: the service has no IPv4 cluster IP, so no IPv4 endpoints; left out"}},
		{name: "IPv4 VIP, IPv6 endpoints only", self: nodeA, svcs: []Service{web(ep("fd00:244:1::2", "node-a", ready, tcp("http", 8080)))},
			want: []service.Spec{spec()}},

		// What is left out.
		{name: "headless", self: nodeA, svcs: []Service{{Namespace: "shop", Name: "db", Ports: []ServicePort{httpPort},
			Endpoints: []ServiceEndpoint{ep("10.244.1.2", "node-a", ready, tcp("http", 8080))}}}},
		{name: "a clash: the first by namespace and name keeps it", self: nodeA, svcs: []Service{
			{Namespace: "shop", Name: "web2", ClusterIPs: addrs("10.96.0.11"), ExternalIPs: addrs("192.168.50.100"), Ports: []ServicePort{httpPort},
				Endpoints: []ServiceEndpoint{ep("10.244.1.3", "node-a", ready, tcp("http", 8080))}},
			{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.168.50.100"), Ports: []ServicePort{httpPort},
				Endpoints: []ServiceEndpoint{ep("10.244.1.2", "node-a", ready, tcp("http", 8080))}},
			{Namespace: "a-team", Name: "web", ClusterIPs: addrs("192.168.50.100"), Ports: []ServicePort{{Name: "http", Protocol: ProtoTCP, Port: 81}}},
		}, want: []service.Spec{
			{VIP: addr("192.168.50.100"), Proto: ProtoTCP, Port: 81},
			spec("10.244.1.2:8080"),
			ext(false, "10.244.1.2:8080"),
			{VIP: addr("10.96.0.11"), Proto: ProtoTCP, Port: 80, Backends: be("10.244.1.3:8080")},
		}, problems: []string{"service shop/web2: external IP TCP 192.168.50.100:80 is also the external IP of service shop/web, which keeps it; left out (give each service its own addresses and ports)"}},
		{name: "a clash within a service", self: nodeA, svcs: []Service{{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"),
			ExternalIPs: addrs("192.168.50.1"), Ports: []ServicePort{{Name: "http", Protocol: ProtoTCP, Port: 30080, NodePort: 30080}}}},
			want: []service.Spec{
				{VIP: vip, Proto: ProtoTCP, Port: 30080},
				{VIP: addr("192.168.50.1"), Proto: ProtoTCP, Port: 30080, External: true},
			}, problems: []string{"service shop/web: external IP TCP 192.168.50.1:30080 is also the node port of service shop/web, which keeps it; left out (give each service its own addresses and ports)"}},
		{name: "bad ports, protocols and affinity", self: nodeA, svcs: []Service{
			{Namespace: "shop", Name: "a", ClusterIPs: addrs("10.96.0.10"), Ports: []ServicePort{{Name: "icmp", Protocol: 1, Port: 80}, {Name: "zero", Protocol: ProtoTCP}, httpPort}},
			{Namespace: "shop", Name: "b", ClusterIPs: addrs("10.96.0.11"), Ports: []ServicePort{httpPort}, Affinity: 25 * time.Hour},
			{Namespace: "shop", Name: "c", ClusterIPs: []netip.Addr{{}}, Ports: []ServicePort{httpPort}},
		}, want: []service.Spec{spec()}, problems: []string{
			`service shop/a: port "icmp": 1 port 80 is not a port and protocol a service may have; port left out`,
			`service shop/a: port "zero": TCP port 0 is not a port and protocol a service may have; port left out`,
			"service shop/b: session affinity timeout 25h0m0s is not between 0 and 24h0m0s; service left out",
			`service shop/c: port "http": a cluster IP with no address; left out`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := ServiceSpecs(tt.self, tt.svcs)
			if diff := cmp.Diff(tt.want, got, cmpAddr, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("specs (-want +got):\n%s", diff)
			}
			var ps []string
			for _, p := range problems {
				ps = append(ps, p.Error())
			}
			if diff := cmp.Diff(tt.problems, ps); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			// Whatever the input, the fast path's table takes the result.
			if _, err := service.Build(1, got); err != nil {
				t.Errorf("service.Build: %v", err)
			}
			// The order of the services does not matter.
			rev := slices.Clone(tt.svcs)
			slices.Reverse(rev)
			if again, _ := ServiceSpecs(tt.self, rev); !cmp.Equal(got, again, cmpAddr, cmpopts.EquateEmpty()) {
				t.Errorf("services in reverse order give other specs:\n%v\n%v", got, again)
			}
		})
	}
}

const servicesFile = twoNodes + `
services:
- name: web
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  externalIPs: [192.168.50.100]
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
  - {name: dns, protocol: UDP, port: 53, nodePort: 30080}
  sessionAffinity: ClientIP
  externalTrafficPolicy: Local
  endpoints:
  - {address: 10.244.1.2, node: a}
  - {address: "fd00:244:1::2"}
  - {address: 10.244.2.3, node: b, terminating: true}
  - {address: 10.244.2.4, node: b, terminating: true, serving: false}
  - {address: 10.244.2.5, ready: false}
- name: db
  namespace: shop
  clusterIPs: [10.96.0.20]
  ports: [{port: 5432, protocol: SCTP}]
  sessionAffinity: ClientIP
  sessionAffinityTimeout: 90m
  externalTrafficPolicy: Cluster
`

// TestParseServices: the file's services, with their defaults: namespace
// default, protocol TCP, targetPort the port, ready unless terminating,
// serving when ready or terminating, affinity timeout 3 hours.
func TestParseServices(t *testing.T) {
	c, err := Parse([]byte(servicesFile))
	if err != nil {
		t.Fatal(err)
	}
	webPorts := []EndpointPort{tcp("http", 8080), udp("dns", 53)}
	want := []Service{
		{Namespace: "default", Name: "web", ClusterIPs: addrs("10.96.0.10", "fd00:96::10"), ExternalIPs: addrs("192.168.50.100"),
			Ports: []ServicePort{
				{Name: "http", Protocol: ProtoTCP, Port: 80, NodePort: 30080},
				{Name: "dns", Protocol: ProtoUDP, Port: 53, NodePort: 30080},
			},
			Affinity: 3 * time.Hour, ExternalLocal: true,
			Endpoints: []ServiceEndpoint{
				{Addr: addr("10.244.1.2"), Node: "a", Ready: true, Serving: true, Ports: webPorts},
				{Addr: addr("fd00:244:1::2"), Ready: true, Serving: true, Ports: webPorts},
				{Addr: addr("10.244.2.3"), Node: "b", Serving: true, Terminating: true, Ports: webPorts},
				{Addr: addr("10.244.2.4"), Node: "b", Terminating: true, Ports: webPorts},
				{Addr: addr("10.244.2.5"), Ports: webPorts},
			}},
		{Namespace: "shop", Name: "db", ClusterIPs: addrs("10.96.0.20"), Ports: []ServicePort{{Protocol: ProtoSCTP, Port: 5432}},
			Affinity: 90 * time.Minute},
	}
	if diff := cmp.Diff(want, c.Services, cmpAddr); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	// And what node a serves of them.
	specs, problems := ServiceSpecs(&c.Nodes[0], c.Services)
	if len(problems) > 0 {
		t.Errorf("problems: %v", problems)
	}
	wantSpecs := []service.Spec{
		{VIP: addr("10.96.0.10"), Proto: ProtoTCP, Port: 80, Backends: be("10.244.1.2:8080"), Affinity: 3 * time.Hour},
		{VIP: addr("fd00:96::10"), Proto: ProtoTCP, Port: 80, Backends: be("[fd00:244:1::2]:8080"), Affinity: 3 * time.Hour},
		{VIP: addr("192.168.50.1"), Proto: ProtoTCP, Port: 30080, Backends: be("10.244.1.2:8080"), Affinity: 3 * time.Hour, External: true, Local: true},
		{VIP: addr("192.168.50.100"), Proto: ProtoTCP, Port: 80, Backends: be("10.244.1.2:8080"), Affinity: 3 * time.Hour, External: true, Local: true},
		{VIP: addr("10.96.0.10"), Proto: ProtoUDP, Port: 53, Backends: be("10.244.1.2:53"), Affinity: 3 * time.Hour},
		{VIP: addr("fd00:96::10"), Proto: ProtoUDP, Port: 53, Backends: be("[fd00:244:1::2]:53"), Affinity: 3 * time.Hour},
		{VIP: addr("192.168.50.1"), Proto: ProtoUDP, Port: 30080, Backends: be("10.244.1.2:53"), Affinity: 3 * time.Hour, External: true, Local: true},
		{VIP: addr("192.168.50.100"), Proto: ProtoUDP, Port: 53, Backends: be("10.244.1.2:53"), Affinity: 3 * time.Hour, External: true, Local: true},
		{VIP: addr("10.96.0.20"), Proto: ProtoSCTP, Port: 5432, Affinity: 90 * time.Minute},
	}
	if diff := cmp.Diff(wantSpecs, specs, cmpAddr, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ServiceSpecs(a) (-want +got):\n%s", diff)
	}
}

// TestParseServicesRoundTrip: MarshalJSON writes the services so that
// Parse reads them back, and refuses a model the file cannot express.
func TestParseServicesRoundTrip(t *testing.T) {
	c, err := Parse([]byte(servicesFile))
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(y)
	if err != nil {
		t.Fatalf("Parse(%s): %v", y, err)
	}
	if diff := cmp.Diff(c, got, cmpPrefix, cmpAddr); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Endpoints with different target ports (a named targetPort that
	// pods resolve differently) are beyond the file.
	c.Services[0].Endpoints[1].Ports = []EndpointPort{tcp("http", 9090), udp("dns", 53)}
	if _, err := json.Marshal(c); err == nil || !strings.Contains(err.Error(), "the cluster file gives every endpoint of a service the same ports") {
		t.Errorf("Marshal of endpoints with different ports: %v", err)
	}
}

func TestParseServiceErrors(t *testing.T) {
	svc := func(s string) string { return twoNodes + "services:\n" + s }
	tests := []struct {
		name, file string
		want       []string
	}{
		// Shape.
		{"unknown service key", svc("- {name: web, clusterIP: 10.96.0.10, ports: [{port: 80}]}"),
			[]string{`services[0]: unknown key "clusterIP"; the keys here are name, namespace, clusterIPs, externalIPs, ports, sessionAffinity, sessionAffinityTimeout, externalTrafficPolicy, endpoints`}},
		{"unknown port key", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80, targetport: 8080}]}"),
			[]string{`services[0].ports[0]: unknown key "targetport"; did you mean "targetPort"?`}},
		{"unknown endpoint key", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], endpoints: [{ip: 10.244.1.2}]}"),
			[]string{`services[0].endpoints[0]: unknown key "ip"; the keys here are address, node, ready, serving, terminating`}},
		{"string for a boolean", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], endpoints: [{address: 10.244.1.2, ready: 'yes'}]}"),
			[]string{`services[0].endpoints[0].ready: got the string "yes", want true or false`}},

		// Values that do not parse.
		{"protocol in lowercase", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80, protocol: tcp}]}"),
			[]string{`services[0].ports[0].protocol: unknown protocol "tcp"; choose TCP, UDP or SCTP (did you mean TCP?)`}},
		{"ports out of range", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 70000, targetPort: -1, nodePort: 65536}]}"),
			[]string{
				"services[0].ports[0].port: 70000 is not a port; give 1 to 65535",
				"services[0].ports[0].nodePort: 65536 is not a port; give 1 to 65535",
				"services[0].ports[0].targetPort: -1 is not a port; give 1 to 65535",
			}},
		{"addresses that do not parse", svc("- {name: web, clusterIPs: [10.96.0.0/12], externalIPs: [lb.example], ports: [{port: 80}], endpoints: [{address: 10.244.1.2.5}, {node: a}]}"),
			[]string{
				`services[0].clusterIPs[0]: "10.96.0.0/12" is a prefix; give one address, without a length, such as 10.96.0.10`,
				`services[0].externalIPs[0]: "lb.example" is not an IP address; write it as one, such as 192.168.50.100`,
				`services[0].endpoints[0].address: "10.244.1.2.5" is not an IP address; write it as one, such as 10.244.1.5`,
				"services[0].endpoints[1].address: missing; give the endpoint's (the pod's) IP address, such as 10.244.1.5",
			}},
		{"unknown affinity and policy", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], sessionAffinity: clientip, externalTrafficPolicy: Global}"),
			[]string{
				`services[0].sessionAffinity: unknown affinity "clientip"; choose None or ClientIP (did you mean ClientIP?)`,
				`services[0].externalTrafficPolicy: unknown policy "Global"; choose Cluster or Local`,
			}},
		{"timeout without affinity", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], sessionAffinityTimeout: 1h}"),
			[]string{"services[0].sessionAffinityTimeout: only used with sessionAffinity: ClientIP; remove it, or set sessionAffinity: ClientIP"}},
		{"timeout not a duration", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityTimeout: '10800'}"),
			[]string{`services[0].sessionAffinityTimeout: "10800" is not a duration; write it with its unit, such as 3h or 10800s`}},
		{"timeout zero", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityTimeout: 0s}"),
			[]string{"services[0].sessionAffinityTimeout: 0s is not positive; give how long a client keeps its backend, such as 3h (the default), or remove sessionAffinity"}},

		// Validation: names.
		{"missing name", svc("- {clusterIPs: [10.96.0.10], ports: [{port: 80}]}"),
			[]string{"services[0].name: missing; give the service's name (its metadata.name)"}},
		{"bad names", svc("- {name: 1web, namespace: Shop, clusterIPs: [10.96.0.10], ports: [{port: 80}]}"),
			[]string{
				`services[0].name: "1web" is not a service name; use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (a DNS-1035 label, as Kubernetes requires)`,
				`services[0].namespace: "Shop" is not a namespace name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)`,
			}},
		{"duplicate service", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}]}\n- {name: web, namespace: default, clusterIPs: [10.96.0.11], ports: [{port: 80}]}\n- {name: web, namespace: shop, clusterIPs: [10.96.0.12], ports: [{port: 80}]}"),
			[]string{`services[1].name: "web" is also services[0].name in namespace "default"; a service's namespace and name must be unique`}},

		// Validation: addresses.
		{"no cluster IP", svc("- {name: web, ports: [{port: 80}]}"),
			[]string{"services[0].clusterIPs: missing; give the service's cluster IP (at most one IPv4 and one IPv6, such as [10.96.0.10]); a headless service has no cluster IP and no place in this file"}},
		{"two IPv4 cluster IPs", svc("- {name: web, clusterIPs: [10.96.0.10, 10.96.0.11], ports: [{port: 80}]}"),
			[]string{"services[0].clusterIPs[1]: a second IPv4 cluster IP (services[0].clusterIPs[0] is 10.96.0.10); a service has at most one per family"}},
		{"cluster IP in a pod CIDR", svc("- {name: web, clusterIPs: [10.244.2.10], ports: [{port: 80}]}"),
			[]string{`services[0].clusterIPs[0]: 10.244.2.10 is in node "b"'s pod CIDR 10.244.2.0/24; give the service's cluster IP, from the service CIDR, apart from the pod CIDRs`}},
		{"cluster IPs not unicast", svc("- {name: web, clusterIPs: [127.0.0.1, '::ffff:10.96.0.1'], externalIPs: ['fe80::1', 224.0.0.1], ports: [{port: 80}]}"),
			[]string{
				"services[0].clusterIPs[0]: 127.0.0.1 is not a unicast address a service may use; give the service's cluster IP, from the service CIDR",
				"services[0].clusterIPs[1]: ::ffff:10.96.0.1 is IPv4-mapped IPv6; write it as IPv4 (10.96.0.1)",
				"services[0].externalIPs[0]: fe80::1 is not a unicast address a service may use; give an address clients outside the cluster reach the service at",
				"services[0].externalIPs[1]: 224.0.0.1 is not a unicast address a service may use; give an address clients outside the cluster reach the service at",
			}},
		{"one cluster IP, two services", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}]}\n- {name: api, clusterIPs: [10.96.0.10], ports: [{port: 443}]}"),
			[]string{"services[1].clusterIPs[0]: 10.96.0.10 is also services[0].clusterIPs[0] (service default/web); every service needs its own cluster IP"}},
		{"external IP of a family without a cluster IP", svc("- {name: web, clusterIPs: [10.96.0.10], externalIPs: ['2001:db8::1'], ports: [{port: 80}]}"),
			[]string{"services[0].externalIPs[0]: 2001:db8::1 is IPv6, but the service has no IPv6 cluster IP, so no IPv6 endpoints; add one to clusterIPs, or remove this address"}},
		{"one external IP and port, two services", svc("- {name: web, clusterIPs: [10.96.0.10], externalIPs: [192.168.50.100], ports: [{port: 80}]}\n- {name: api, clusterIPs: [10.96.0.11], externalIPs: [192.168.50.100], ports: [{port: 443}, {name: http, port: 80}]}"),
			[]string{
				"services[1].ports[0].name: missing; a service with several ports names each one (endpoints' ports are matched by name)",
				"services[1].externalIPs[0]: TCP 192.168.50.100:80 is also services[0].externalIPs[0] (service default/web); give each service its own addresses and ports",
			}},
		{"external IP is the cluster IP", svc("- {name: web, clusterIPs: [10.96.0.10], externalIPs: [10.96.0.10], ports: [{port: 80}]}"),
			[]string{"services[0].externalIPs[0]: TCP 10.96.0.10:80 is also services[0].clusterIPs[0] (service default/web); give each service its own addresses and ports"}},

		// Validation: ports.
		{"no ports", svc("- {name: web, clusterIPs: [10.96.0.10]}"),
			[]string{"services[0].ports: missing; list the service's ports, such as [{name: http, port: 80, targetPort: 8080}]"}},
		{"port names", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{name: http, port: 80}, {name: http, port: 81}, {name: HTTPS, port: 443}]}"),
			[]string{
				`services[0].ports[1].name: "http" is also services[0].ports[0].name; port names must be unique within a service`,
				`services[0].ports[2].name: "HTTPS" is not a port name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)`,
			}},
		{"missing port", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{name: http, targetPort: 8080}]}"),
			[]string{"services[0].ports[0].port: missing; give the port clients connect to on the service's addresses, 1 to 65535"}},
		{"port and protocol twice", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{name: a, port: 53, protocol: UDP}, {name: b, port: 53}, {name: c, port: 53, protocol: UDP}]}"),
			[]string{"services[0].ports[2].port: UDP 53 is also services[0].ports[0]; a service has each port and protocol once"}},
		{"node port out of range", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80, nodePort: 8080}]}"),
			[]string{"services[0].ports[0].nodePort: 8080 is outside the NodePort range 30000-32767 (Kubernetes' default --service-node-port-range); give a port in it"}},
		{"node port twice", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{name: a, port: 80, nodePort: 30080}, {name: b, port: 81, nodePort: 30080}]}\n- {name: api, clusterIPs: [10.96.0.11], ports: [{port: 80, protocol: UDP, nodePort: 30080}]}"),
			[]string{
				"services[0].ports[1].nodePort: 30080 is also services[0].ports[0].nodePort, with the same protocol; give each port its own NodePort",
				"services[1].ports[0].nodePort: 30080 is also services[0].ports[0].nodePort (service default/web); every NodePort belongs to one service",
			}},
		{"affinity timeouts out of range", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityTimeout: 25h}\n- {name: api, clusterIPs: [10.96.0.11], ports: [{port: 80}], sessionAffinity: ClientIP, sessionAffinityTimeout: 1.5s}"),
			[]string{
				"services[0].sessionAffinityTimeout: 25h0m0s is out of range; give at most 24h0m0s (Kubernetes' limit)",
				"services[1].sessionAffinityTimeout: 1.5s is not whole seconds; Kubernetes counts the timeout in seconds",
			}},
		{"Local without external", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], externalTrafficPolicy: Local}"),
			[]string{"services[0].externalTrafficPolicy: Local applies to NodePorts and externalIPs, and the service has neither; remove it"}},

		// Validation: endpoints.
		{"endpoint addresses", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], endpoints: [{address: 10.244.1.2}, {address: 'fd00::2'}, {address: 10.244.1.2}, {address: 0.0.0.0}]}"),
			[]string{
				"services[0].endpoints[1].address: fd00::2 is IPv6, but the service has no IPv6 cluster IP; add one to clusterIPs, or remove the endpoint",
				"services[0].endpoints[2].address: 10.244.1.2 is also services[0].endpoints[0].address; list each endpoint once",
				"services[0].endpoints[3].address: 0.0.0.0 is not a unicast address a service may use; give the endpoint's (the pod's) IP address",
			}},
		{"endpoint nodes", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], endpoints: [{address: 10.244.1.2, node: c}, {address: 10.244.1.3, node: b}]}"),
			[]string{
				`services[0].endpoints[0].node: "c" is not a node of this file (its nodes: a, b); give the node the endpoint runs on, or leave node out for one outside the nodes`,
				`services[0].endpoints[1].node: "b", but 10.244.1.3 is in node "a"'s pod CIDR 10.244.1.0/24; give the node the endpoint runs on`,
			}},
		{"endpoint conditions", svc("- {name: web, clusterIPs: [10.96.0.10], ports: [{port: 80}], endpoints: [{address: 10.244.1.2, ready: true, terminating: true}, {address: 10.244.1.3, serving: false}]}"),
			[]string{
				"services[0].endpoints[0].ready: true on a terminating endpoint, which Kubernetes never marks ready; remove ready (serving says whether it still takes connections)",
				"services[0].endpoints[1].serving: false, but ready is true and the endpoint is not terminating; remove serving (it differs from ready only while an endpoint terminates)",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.file))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c.Services)
			}
			if diff := cmp.Diff(tt.want, problemList(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServiceSpecsTooManyBackends: an entry with more backends than the
// service table holds keeps none, and says so; service.Build takes the
// rest.
func TestServiceSpecsTooManyBackends(t *testing.T) {
	s := web()
	for i := range maxServiceBackends + 1 {
		a := netip.AddrFrom4([4]byte{10, 245, byte(i >> 8), byte(i)})
		s.Endpoints = append(s.Endpoints, ServiceEndpoint{Addr: a, Ready: true, Ports: []EndpointPort{tcp("http", 8080)}})
	}
	specs, problems := ServiceSpecs(nodeA, []Service{s})
	if len(specs) != 1 || len(specs[0].Backends) != 0 || len(problems) != 1 ||
		problems[0].Error() != "service shop/web: cluster IP TCP 10.96.0.10:80 has 65536 backends, more than the 65535 a service table entry holds; it keeps none" {
		t.Fatalf("specs %d (backends %d), problems %v", len(specs), len(specs[0].Backends), problems)
	}
	if _, err := service.Build(1, specs); err != nil {
		t.Error(err)
	}
}
