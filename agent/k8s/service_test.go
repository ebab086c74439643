package k8s

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ksvc is a service in namespace ns.
func ksvc(ns, name string, spec corev1.ServiceSpec) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// kslice is an EndpointSlice of service svc ("": unlabelled) in namespace
// ns, with one port per entry of ports.
func kslice(ns, name, svc string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, AddressType: at, Ports: ports, Endpoints: eps}
	if svc != "" {
		s.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	return s
}

// kendpoint is an endpoint at addr on node ("": none), with conditions
// ready, serving and terminating as written ("" is nil).
func kendpoint(addr, node, ready, serving, terminating string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	if node != "" {
		e.NodeName = &node
	}
	e.Conditions = discoveryv1.EndpointConditions{Ready: cond(ready), Serving: cond(serving), Terminating: cond(terminating)}
	return e
}

// cond is a condition as written: "" nil, "true" or "false".
func cond(s string) *bool {
	switch s {
	case "":
		return nil
	case "true":
		return ptr(true)
	case "false":
		return ptr(false)
	}
	panic("condition " + s)
}

// kport is an EndpointSlice port: name "-" is nil, protocol "" nil, port
// 0 nil.
func kport(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	var p discoveryv1.EndpointPort
	if name != "-" {
		p.Name = &name
	}
	if proto != "" {
		p.Protocol = &proto
	}
	if port != 0 {
		p.Port = &port
	}
	return p
}

const ipv4, ipv6 = discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6

// TestConvertService: each field of a Service as the API documents it.
func TestConvertService(t *testing.T) {
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	http := corev1.ServicePort{Name: "http", Protocol: tcp, Port: 80, TargetPort: intstr.FromString("web"), NodePort: 30080}
	httpModel := cluster.ServicePort{Name: "http", Protocol: 6, Port: 80}
	affinity := func(seconds int32) *corev1.SessionAffinityConfig {
		return &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &seconds}}
	}
	ingress := func(ip, hostname string, mode *corev1.LoadBalancerIPMode) corev1.LoadBalancerIngress {
		return corev1.LoadBalancerIngress{IP: ip, Hostname: hostname, IPMode: mode}
	}
	vip, proxy := corev1.LoadBalancerIPModeVIP, corev1.LoadBalancerIPModeProxy
	for _, c := range []struct {
		name   string
		spec   corev1.ServiceSpec
		status corev1.ServiceStatus
		want   *cluster.Service // nil: left out
	}{
		{name: "ClusterIP", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{http}, SessionAffinity: corev1.ServiceAffinityNone},
			want: &cluster.Service{ClusterIPs: addrs("10.96.0.10"), Ports: []cluster.ServicePort{httpModel}}}, // no NodePort but for NodePort and LoadBalancer
		{name: "dual stack, IPv6 primary", spec: corev1.ServiceSpec{ClusterIP: "fd00:96::10", ClusterIPs: []string{"fd00:96::10", "10.96.0.10"}},
			want: &cluster.Service{ClusterIPs: addrs("fd00:96::10", "10.96.0.10")}},
		{name: "clusterIP without clusterIPs", spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10"},
			want: &cluster.Service{ClusterIPs: addrs("10.96.0.10")}},
		{name: "headless", spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Ports: []corev1.ServicePort{http}},
			want: &cluster.Service{Ports: []cluster.ServicePort{httpModel}}},
		{name: "headless, clusterIP only", spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone},
			want: &cluster.Service{}},
		{name: "addresses that do not parse; IPv4-mapped", spec: corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.300", "::ffff:10.96.0.10"},
			ExternalIPs: []string{"example.com", "::ffff:192.0.2.1"}},
			want: &cluster.Service{ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1")}},
		{name: "ExternalName", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com", Ports: []corev1.ServicePort{http}}},
		{name: "NodePort", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIPs: []string{"10.96.0.10"}, Ports: []corev1.ServicePort{
			http,
			{Name: "dns", Protocol: udp, Port: 53, NodePort: 30053},
			{Name: "sig", Protocol: sctp, Port: 9, NodePort: 30009},
			{Name: "default", Port: 81}, // protocol "": TCP; no node port yet
			{Name: "bad-proto", Protocol: "ICMP", Port: 1, NodePort: 30001},
			{Name: "bad-port", Protocol: tcp, Port: 70000, NodePort: 30002},
			{Name: "bad-node-port", Protocol: tcp, Port: 82, NodePort: -1},
		}}, want: &cluster.Service{ClusterIPs: addrs("10.96.0.10"), Ports: []cluster.ServicePort{
			{Name: "http", Protocol: 6, Port: 80, NodePort: 30080},
			{Name: "dns", Protocol: 17, Port: 53, NodePort: 30053},
			{Name: "sig", Protocol: 132, Port: 9, NodePort: 30009},
			{Name: "default", Protocol: 6, Port: 81},
			{Name: "bad-node-port", Protocol: 6, Port: 82},
		}}},
		{name: "LoadBalancer", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{http}, ExternalIPs: []string{"192.0.2.1", "2001:db8::1"},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
			status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				ingress("198.51.100.1", "", nil),
				ingress("", "lb.example.com", nil), // a hostname: no address
				ingress("198.51.100.2", "", &vip),
				ingress("198.51.100.3", "", &proxy), // the load balancer delivers to the node
				ingress("192.0.2.1", "", nil),       // also an external IP: once
			}}},
			want: &cluster.Service{ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1", "2001:db8::1", "198.51.100.1", "198.51.100.2"),
				Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80, NodePort: 30080}}, ExternalLocal: true}},
		{name: "LoadBalancer without node ports", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: ptr(false), Ports: []corev1.ServicePort{{Name: "http", Protocol: tcp, Port: 80}}},
			want: &cluster.Service{Ports: []cluster.ServicePort{httpModel}}},
		{name: "ingress of a service no longer a LoadBalancer", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ExternalIPs: []string{"192.0.2.1"}},
			status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{ingress("198.51.100.1", "", nil)}}},
			want:   &cluster.Service{ExternalIPs: addrs("192.0.2.1")}},
		{name: "externalTrafficPolicy Cluster", spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
			want: &cluster.Service{}},
		// sessionAffinity: None is 0, ClientIP its timeout, by default
		// 10800 s, at most 86400 s.
		{name: "affinity None", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityNone, SessionAffinityConfig: affinity(60)},
			want: &cluster.Service{}},
		{name: "affinity ClientIP, no config", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP},
			want: &cluster.Service{Affinity: 3 * time.Hour}},
		{name: "affinity ClientIP, no clientIP", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP, SessionAffinityConfig: &corev1.SessionAffinityConfig{}},
			want: &cluster.Service{Affinity: 10800 * time.Second}},
		{name: "affinity ClientIP, no timeout", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{}}},
			want: &cluster.Service{Affinity: 10800 * time.Second}},
		{name: "affinity ClientIP, 60 s", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP, SessionAffinityConfig: affinity(60)},
			want: &cluster.Service{Affinity: time.Minute}},
		{name: "affinity ClientIP, 86400 s", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP, SessionAffinityConfig: affinity(86400)},
			want: &cluster.Service{Affinity: 24 * time.Hour}},
		{name: "affinity ClientIP, 0 s (invalid)", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP, SessionAffinityConfig: affinity(0)},
			want: &cluster.Service{Affinity: 3 * time.Hour}},
		{name: "affinity ClientIP, 86401 s (invalid)", spec: corev1.ServiceSpec{SessionAffinity: corev1.ServiceAffinityClientIP, SessionAffinityConfig: affinity(86401)},
			want: &cluster.Service{Affinity: 24 * time.Hour}},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc := ksvc("shop", "web", c.spec)
			svc.Status = c.status
			got, ok := convertService(svc)
			if c.want == nil {
				if ok {
					t.Errorf("converted to %+v, want left out", got)
				}
				return
			}
			c.want.Namespace, c.want.Name = "shop", "web"
			if !ok {
				t.Fatal("left out")
			}
			if diff := cmp.Diff(*c.want, got, cmpAddr); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEndpointConditions: the conditions of every combination of nil,
// true and false, each as discovery/v1 documents it: "ready ... A nil
// value should be interpreted as "true"", "serving ... A nil value should
// be interpreted as "true"", "terminating ... A nil value should be
// interpreted as "false"". Each condition is read on its own.
func TestEndpointConditions(t *testing.T) {
	means := func(written string, nilMeans bool) bool {
		if written == "" {
			return nilMeans
		}
		return written == "true"
	}
	values := []string{"", "true", "false"}
	for _, ready := range values {
		for _, serving := range values {
			for _, terminating := range values {
				s := kslice("shop", "web-1", "web", ipv4, nil, kendpoint("10.244.1.5", "", ready, serving, terminating))
				got := serviceEndpoints([]*discoveryv1.EndpointSlice{s})
				want := []cluster.ServiceEndpoint{{Addr: addrs("10.244.1.5")[0],
					Ready: means(ready, true), Serving: means(serving, true), Terminating: means(terminating, false)}}
				if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
					t.Errorf("ready %q, serving %q, terminating %q (-want +got):\n%s", ready, serving, terminating, diff)
				}
			}
		}
	}
}

// TestServicesOf: endpoints join their service by the
// kubernetes.io/service-name label in its namespace; the rules of
// discovery/v1 on address types, addresses and ports; an address in two
// slices is one endpoint; services are sorted.
func TestServicesOf(t *testing.T) {
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	web := corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.10"}, Ports: []corev1.ServicePort{{Name: "http", Protocol: tcp, Port: 80}}}
	http := []discoveryv1.EndpointPort{kport("http", tcp, 8080)}
	ep := func(addr, node string) discoveryv1.Endpoint { return kendpoint(addr, node, "true", "true", "false") }
	ready := func(addr, node string, ports ...cluster.EndpointPort) cluster.ServiceEndpoint {
		return cluster.ServiceEndpoint{Addr: addrs(addr)[0], Node: node, Ready: true, Serving: true, Ports: ports}
	}
	httpModel := cluster.EndpointPort{Name: "http", Protocol: 6, Port: 8080}
	twoAddrs := ep("10.244.1.9", "node-a")
	twoAddrs.Addresses = append(twoAddrs.Addresses, "10.244.1.10") // "no semantics ... beyond the first"
	noAddr := ep("10.244.1.11", "node-a")
	noAddr.Addresses = nil

	svcs := []*corev1.Service{
		ksvc("shop", "web", web),
		ksvc("bank", "web", web), // another namespace, the same name
		ksvc("shop", "db", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}),
		ksvc("shop", "cache", corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}),
		ksvc("shop", "empty", web),
		ksvc("shop", "ports", web),
	}
	eps := []*discoveryv1.EndpointSlice{
		// shop/web: IPv4 and IPv6, two slices of each family.
		kslice("shop", "web-v4b", "web", ipv4, http, ep("10.244.2.7", "node-b"), ep("10.244.1.5", "node-a")),
		kslice("shop", "web-v4a", "web", ipv4, http, ep("10.244.1.6", "node-a"), twoAddrs, noAddr,
			ep("fd00::1:7", "node-a"), // not of the slice's type
			ep("10.244.1.300", "node-a"),
		),
		kslice("shop", "web-v6", "web", ipv6, http, ep("fd00::1:5", ""),
			ep("::ffff:10.244.1.12", ""), // IPv4-mapped: IPv4, which the API's validation of IPv6 refuses
		),
		kslice("shop", "web-fqdn", "web", discoveryv1.AddressTypeFQDN, http, ep("web.example.com", "")),
		kslice("shop", "web-odd", "web", "IPX", http, ep("10.244.1.13", "")),
		// Not shop/web's.
		kslice("bank", "web-1", "web", ipv4, http, ep("10.244.3.1", "node-c")),
		kslice("shop", "orphan-1", "orphan", ipv4, http, ep("10.244.3.2", "node-c")),
		kslice("shop", "unlabelled-1", "", ipv4, http, ep("10.244.3.3", "node-c")),
		kslice("shop", "db-1", "db", ipv4, http, ep("10.244.3.4", "node-c")),
		// shop/cache: headless, with endpoints.
		kslice("shop", "cache-1", "cache", ipv4, []discoveryv1.EndpointPort{kport("-", "", 6379)}, ep("10.244.4.1", "node-a")),
		// shop/ports: the ports of discovery/v1 and an address in two
		// slices: the conditions and node of the first by name, the ports
		// of both.
		kslice("shop", "ports-b", "ports", ipv4, []discoveryv1.EndpointPort{
			kport("http", tcp, 9999), // ports-a's http wins
			kport("metrics", tcp, 9090),
		}, kendpoint("10.244.5.1", "node-b", "false", "false", "true")),
		kslice("shop", "ports-a", "ports", ipv4, []discoveryv1.EndpointPort{
			kport("http", tcp, 8080),
			kport("http", udp, 8080),
			kport("-", "", 80),        // name nil is "", protocol nil TCP
			kport("dns", sctp, 53),    // SCTP
			kport("all", tcp, 0),      // port nil: all ports
			kport("bad", tcp, 70000),  // out of range
			kport("icmp", "ICMP", 1),  // not a port protocol
			kport("alpha", udp, 5353), // sorted first
		}, ep("10.244.5.1", "node-a")),
	}
	got := servicesOf(svcs, eps)
	want := []cluster.Service{
		{Namespace: "bank", Name: "web", ClusterIPs: addrs("10.96.0.10"), Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80}},
			Endpoints: []cluster.ServiceEndpoint{ready("10.244.3.1", "node-c", httpModel)}},
		{Namespace: "shop", Name: "cache", Endpoints: []cluster.ServiceEndpoint{ready("10.244.4.1", "node-a", cluster.EndpointPort{Protocol: 6, Port: 6379})}},
		{Namespace: "shop", Name: "empty", ClusterIPs: addrs("10.96.0.10"), Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80}}},
		{Namespace: "shop", Name: "ports", ClusterIPs: addrs("10.96.0.10"), Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80}},
			Endpoints: []cluster.ServiceEndpoint{ready("10.244.5.1", "node-a",
				cluster.EndpointPort{Protocol: 6, Port: 80},
				cluster.EndpointPort{Name: "alpha", Protocol: 17, Port: 5353},
				cluster.EndpointPort{Name: "dns", Protocol: 132, Port: 53},
				cluster.EndpointPort{Name: "http", Protocol: 6, Port: 8080},
				cluster.EndpointPort{Name: "http", Protocol: 17, Port: 8080},
				cluster.EndpointPort{Name: "metrics", Protocol: 6, Port: 9090},
			)}},
		{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"), Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80}},
			Endpoints: []cluster.ServiceEndpoint{
				ready("10.244.1.5", "node-a", httpModel),
				ready("10.244.1.6", "node-a", httpModel),
				ready("10.244.1.9", "node-a", httpModel),
				ready("10.244.2.7", "node-b", httpModel),
				ready("fd00::1:5", "", httpModel),
			}},
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestServiceUpdateFilters: the update filters see every field the
// conversion reads, and nothing else.
func TestServiceUpdateFilters(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	svc := ksvc("shop", "web", corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.96.0.10"},
		Ports: []corev1.ServicePort{{Name: "http", Protocol: tcp, Port: 80, NodePort: 30080}}, ExternalIPs: []string{"192.0.2.1"}})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.1"}}
	svcSeen := map[string]func(*corev1.Service){
		"a cluster IP":            func(s *corev1.Service) { s.Spec.ClusterIPs = append(s.Spec.ClusterIPs, "fd00:96::10") },
		"an external IP":          func(s *corev1.Service) { s.Spec.ExternalIPs = nil },
		"an ingress IP":           func(s *corev1.Service) { s.Status.LoadBalancer.Ingress[0].IP = "198.51.100.2" },
		"a port":                  func(s *corev1.Service) { s.Spec.Ports[0].Port = 81 },
		"a node port":             func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30081 },
		"the type (ExternalName)": func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName },
		"the type (ClusterIP)":    func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP },
		"session affinity":        func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP },
		"externalTrafficPolicy":   func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal },
	}
	svcUnseen := map[string]func(*corev1.Service){
		"labels":          func(s *corev1.Service) { s.Labels = map[string]string{"a": "b"} },
		"resourceVersion": func(s *corev1.Service) { s.ResourceVersion = "42" },
		"the selector":    func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} },
		"a target port":   func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(8080) },
		"a condition":     func(s *corev1.Service) { s.Status.Conditions = []metav1.Condition{{Type: "x"}} },
		"an ingress hostname": func(s *corev1.Service) {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{Hostname: "lb.example.com"})
		},
		"affinity config without ClientIP": func(s *corev1.Service) {
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
		},
	}
	checkFilter(t, "service", svc, sameService, svcSeen, svcUnseen)

	es := kslice("shop", "web-1", "web", ipv4, []discoveryv1.EndpointPort{kport("http", tcp, 8080)},
		kendpoint("10.244.1.5", "node-a", "true", "true", "false"), kendpoint("10.244.1.6", "node-b", "", "", ""))
	esSeen := map[string]func(*discoveryv1.EndpointSlice){
		"the service":       func(s *discoveryv1.EndpointSlice) { s.Labels[discoveryv1.LabelServiceName] = "api" },
		"the label removed": func(s *discoveryv1.EndpointSlice) { s.Labels = nil },
		"an address":        func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "10.244.1.7" },
		"an endpoint added": func(s *discoveryv1.EndpointSlice) {
			s.Endpoints = append(s.Endpoints, kendpoint("10.244.1.7", "", "", "", ""))
		},
		"a node":             func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].NodeName = nil },
		"ready":              func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Conditions.Ready = ptr(false) },
		"serving":            func(s *discoveryv1.EndpointSlice) { s.Endpoints[1].Conditions.Serving = ptr(false) },
		"terminating":        func(s *discoveryv1.EndpointSlice) { s.Endpoints[1].Conditions.Terminating = ptr(true) },
		"a port":             func(s *discoveryv1.EndpointSlice) { *s.Ports[0].Port = 8081 },
		"a port's protocol":  func(s *discoveryv1.EndpointSlice) { s.Ports[0].Protocol = &udp },
		"the address type":   func(s *discoveryv1.EndpointSlice) { s.AddressType = discoveryv1.AddressTypeFQDN },
		"a port's name":      func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = nil },
		"a port made nil":    func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = nil },
		"an endpoint gone":   func(s *discoveryv1.EndpointSlice) { s.Endpoints = s.Endpoints[1:] },
		"nil ready to false": func(s *discoveryv1.EndpointSlice) { s.Endpoints[1].Conditions.Ready = ptr(false) },
	}
	esUnseen := map[string]func(*discoveryv1.EndpointSlice){
		"another label":        func(s *discoveryv1.EndpointSlice) { s.Labels["a"] = "b" },
		"resourceVersion":      func(s *discoveryv1.EndpointSlice) { s.ResourceVersion = "42" },
		"the endpoints' order": func(s *discoveryv1.EndpointSlice) { s.Endpoints[0], s.Endpoints[1] = s.Endpoints[1], s.Endpoints[0] },
		"nil ready to true":    func(s *discoveryv1.EndpointSlice) { s.Endpoints[1].Conditions.Ready = ptr(true) },
		"nil terminating to false": func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[1].Conditions.Terminating = ptr(false)
		},
		"a second address": func(s *discoveryv1.EndpointSlice) {
			s.Endpoints[0].Addresses = append(s.Endpoints[0].Addresses, "10.244.1.8")
		},
		"a zone, hints, a hostname, a target": func(s *discoveryv1.EndpointSlice) {
			e := &s.Endpoints[0]
			e.Zone, e.Hostname = ptr("z1"), ptr("web-0")
			e.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z1"}}}
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "web-0"}
		},
	}
	checkFilter(t, "endpointslice", es, sameEndpointSlice, esSeen, esUnseen)
}

// TestSlimServiceObjects: the informers keep what the conversion reads,
// drop the bulk, and leave the objects given them alone.
func TestSlimServiceObjects(t *testing.T) {
	tcp := corev1.ProtocolTCP
	svc := ksvc("shop", "web", corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
		Ports:       []corev1.ServicePort{{Name: "http", Protocol: tcp, Port: 80, NodePort: 30080}},
		ExternalIPs: []string{"192.0.2.1"}, SessionAffinity: corev1.ServiceAffinityClientIP,
		SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}},
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, Selector: map[string]string{"app": "web"}})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.1"}}
	svc.Status.Conditions = []metav1.Condition{{Type: "x"}}
	es := kslice("shop", "web-1", "web", ipv4, []discoveryv1.EndpointPort{kport("http", tcp, 8080)},
		kendpoint("10.244.1.5", "node-a", "false", "true", "true")) // none the default
	es.Labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
	e := &es.Endpoints[0]
	e.Addresses = append(e.Addresses, "10.244.1.6")
	e.Zone, e.Hostname, e.TargetRef = ptr("z1"), ptr("web-0"), &corev1.ObjectReference{Kind: "Pod", Name: "web-0"}
	fatten(svc, es)
	origSvc, origES := svc.DeepCopy(), es.DeepCopy()

	ss := slimmed(t, svc).(*corev1.Service)
	want, _ := convertService(origSvc)
	if got, ok := convertService(ss); !ok || !equalService(want, got) {
		t.Errorf("service converts otherwise once slim: %+v, want %+v", got, want)
	}
	if ss.Spec.Selector != nil || ss.Status.Conditions != nil {
		t.Errorf("slim service kept too much: %+v", ss)
	}
	ses := slimmed(t, es).(*discoveryv1.EndpointSlice)
	if !sameEndpointSlice(origES, ses) {
		t.Errorf("endpointslice converts otherwise once slim: %+v", ses)
	}
	se := ses.Endpoints[0]
	if len(ses.Labels) != 1 || len(se.Addresses) != 1 || se.Zone != nil || se.Hostname != nil || se.TargetRef != nil {
		t.Errorf("slim endpointslice kept too much: %+v", ses)
	}
	for _, c := range []struct{ orig, now any }{{origSvc, svc}, {origES, es}} {
		if diff := cmp.Diff(c.orig, c.now); diff != "" {
			t.Errorf("slim changed its input (-was +now):\n%s", diff)
		}
	}
}

// TestEqualServices: every field counts.
func TestEqualServices(t *testing.T) {
	base := func() cluster.Service {
		return cluster.Service{Namespace: "shop", Name: "web", ClusterIPs: addrs("10.96.0.10"), ExternalIPs: addrs("192.0.2.1"),
			Ports: []cluster.ServicePort{{Name: "http", Protocol: 6, Port: 80}}, Affinity: time.Hour,
			Endpoints: []cluster.ServiceEndpoint{{Addr: addrs("10.244.1.5")[0], Node: "node-a", Ready: true, Serving: true,
				Ports: []cluster.EndpointPort{{Name: "http", Protocol: 6, Port: 8080}}}}}
	}
	edits := []func(*cluster.Service){
		func(s *cluster.Service) { s.Namespace = "bank" },
		func(s *cluster.Service) { s.Name = "api" },
		func(s *cluster.Service) { s.ClusterIPs = nil },
		func(s *cluster.Service) { s.ExternalIPs = addrs("192.0.2.2") },
		func(s *cluster.Service) { s.Ports[0].NodePort = 30080 },
		func(s *cluster.Service) { s.Affinity = 0 },
		func(s *cluster.Service) { s.ExternalLocal = true },
		func(s *cluster.Service) { s.Endpoints = nil },
		func(s *cluster.Service) { s.Endpoints[0].Addr = addrs("10.244.1.6")[0] },
		func(s *cluster.Service) { s.Endpoints[0].Node = "" },
		func(s *cluster.Service) { s.Endpoints[0].Ready = false },
		func(s *cluster.Service) { s.Endpoints[0].Serving = false },
		func(s *cluster.Service) { s.Endpoints[0].Terminating = true },
		func(s *cluster.Service) { s.Endpoints[0].Ports[0].Port = 8081 },
	}
	if a, b := base(), base(); !equalServices([]cluster.Service{a}, []cluster.Service{b}) {
		t.Error("a service differs from itself")
	}
	for i, edit := range edits {
		a, b := base(), base()
		edit(&b)
		if equalServices([]cluster.Service{a}, []cluster.Service{b}) {
			t.Errorf("edit %d: %+v equal to %+v", i, b, a)
		}
	}
	if !equalServices(nil, []cluster.Service{}) {
		t.Error("no services differ from none")
	}
}
