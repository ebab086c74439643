package k8s

// Services and EndpointSlices as agent/cluster's service model, following
// the API's documentation of each field (k8s.io/api core/v1 and
// discovery/v1) and, where that leaves a choice, what kube-proxy does.
//
//	cluster.Service  Kubernetes
//	---------------  ---------------------------------------------------------
//	(the service)    every Service but those of type ExternalName (a DNS
//	                 alias: no address, nothing to balance)
//	ClusterIPs       spec.clusterIPs (spec.clusterIP when clusterIPs is
//	                 empty), primary first; none for a headless service
//	                 ("None"). An address that does not parse is left out.
//	ExternalIPs      spec.externalIPs, then, for type LoadBalancer,
//	                 status.loadBalancer.ingress[].ip, but not those of
//	                 ipMode Proxy (the load balancer delivers to the node,
//	                 and kube-proxy leaves the IP alone: KEP-1860); each
//	                 address once
//	Ports            spec.ports: name, protocol (TCP 6, UDP 17, SCTP 132;
//	                 "" is TCP, the API's default), port, and nodePort for
//	                 types NodePort and LoadBalancer. A port of another
//	                 protocol or out of 1-65535 is left out.
//	Affinity         sessionAffinity ClientIP: sessionAffinityConfig
//	                 .clientIP.timeoutSeconds seconds (nil: the API's
//	                 default, 10800; at most 86400, the API's limit);
//	                 None: 0
//	ExternalLocal    externalTrafficPolicy Local
//	Endpoints        the endpoints of every EndpointSlice of the service:
//	                 those in its namespace labelled kubernetes.io/service-name
//	                 with its name (the API's way to join them), one per
//	                 address, sorted by address; see below
//
// Each endpoint of a slice becomes one cluster.ServiceEndpoint:
//
//	ServiceEndpoint  EndpointSlice
//	---------------  ---------------------------------------------------------
//	(the slice)      addressType IPv4 or IPv6; FQDN slices are skipped ("no
//	                 semantics are defined for the FQDN type", and kube-proxy
//	                 skips them)
//	Addr             endpoints[].addresses[0]: "No semantics are defined for
//	                 additional addresses beyond the first, and kube-proxy
//	                 does not look at them". An address that does not parse,
//	                 or is not of the slice's addressType, is left out.
//	Node             endpoints[].nodeName ("" when nil)
//	Ready            conditions.ready: nil is true
//	Serving          conditions.serving: nil is true
//	Terminating      conditions.terminating: nil is false
//	Ports            the slice's ports: name (nil is ""), protocol (nil is
//	                 TCP), port. A nil port ("all ports", which only slices
//	                 not made for a Service use) is left out, as is a port
//	                 out of 1-65535 or of a protocol other than TCP, UDP and
//	                 SCTP. Sorted by name, then protocol.
//
// An address in two slices of a service (an endpoint moving between
// slices, or two controllers writing slices) is one endpoint: its node and
// conditions are those of the first slice by name, its ports those of all
// of them (the first slice's port number where a name and protocol
// differ). Slices of a service that does not exist, or is skipped, are
// left out.
//
// Conversion never fails: what the API server would have rejected is left
// out (or, for a timeout, bounded), never an error. The results share no
// memory with the objects.

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/netpol"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// sessionAffinityConfig.clientIP.timeoutSeconds: its default, and the
// most the API takes ("must be >0 && <=86400 (for 1 day) if
// ServiceAffinity == ClientIP").
const (
	defaultAffinity = time.Duration(corev1.DefaultClientIPServiceAffinitySeconds) * time.Second
	maxAffinity     = 86400 * time.Second
)

// convertService returns svc as the model sees it, without endpoints, and
// false for a service the model leaves out (type ExternalName).
func convertService(svc *corev1.Service) (cluster.Service, bool) {
	spec := &svc.Spec
	if spec.Type == corev1.ServiceTypeExternalName {
		return cluster.Service{}, false
	}
	out := cluster.Service{Namespace: svc.Namespace, Name: svc.Name}

	ips := spec.ClusterIPs
	if len(ips) == 0 && spec.ClusterIP != "" {
		ips = []string{spec.ClusterIP}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil { // "None" (headless) does not parse
			out.ClusterIPs = append(out.ClusterIPs, a.Unmap())
		}
	}

	addExternal := func(ip string) {
		if a, err := netip.ParseAddr(ip); err == nil && !slices.Contains(out.ExternalIPs, a.Unmap()) {
			out.ExternalIPs = append(out.ExternalIPs, a.Unmap())
		}
	}
	for _, ip := range spec.ExternalIPs {
		addExternal(ip)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeProxy {
				addExternal(in.IP)
			}
		}
	}

	nodePorts := spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer
	for _, p := range spec.Ports {
		proto, ok := netpol.ProtocolNumber(string(p.Protocol))
		if !ok || !portNumber(p.Port) {
			continue
		}
		sp := cluster.ServicePort{Name: p.Name, Protocol: proto, Port: uint16(p.Port)}
		if nodePorts && portNumber(p.NodePort) {
			sp.NodePort = uint16(p.NodePort)
		}
		out.Ports = append(out.Ports, sp)
	}

	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		out.Affinity = defaultAffinity
		if c := spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			out.Affinity = min(time.Duration(*c.ClientIP.TimeoutSeconds)*time.Second, maxAffinity)
		}
	}
	out.ExternalLocal = spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	return out, true
}

func portNumber(n int32) bool { return 1 <= n && n <= 65535 }

// serviceEndpoints returns the endpoints of a service's slices, one per
// address, sorted by address. It sorts ss by name, in place.
func serviceEndpoints(ss []*discoveryv1.EndpointSlice) []cluster.ServiceEndpoint {
	slices.SortFunc(ss, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	var out []cluster.ServiceEndpoint
	at := map[netip.Addr]int{} // index in out
	for _, s := range ss {
		want4 := s.AddressType == discoveryv1.AddressTypeIPv4
		if !want4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue // FQDN, or a type the API does not define
		}
		ports := endpointPorts(s.Ports)
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			if len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || a.Unmap().Is4() != want4 {
				continue
			}
			a = a.Unmap()
			if j, ok := at[a]; ok { // seen before (an earlier slice, or this one): its conditions stay
				out[j].Ports = mergePorts(out[j].Ports, ports)
				continue
			}
			c := &ep.Conditions
			e := cluster.ServiceEndpoint{
				Addr:        a,
				Ready:       c.Ready == nil || *c.Ready,
				Serving:     c.Serving == nil || *c.Serving,
				Terminating: c.Terminating != nil && *c.Terminating,
				Ports:       slices.Clone(ports),
			}
			if ep.NodeName != nil {
				e.Node = *ep.NodeName
			}
			at[a] = len(out)
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b cluster.ServiceEndpoint) int { return a.Addr.Compare(b.Addr) })
	return out
}

// endpointPorts converts a slice's ports, sorted by name and protocol.
func endpointPorts(ps []discoveryv1.EndpointPort) []cluster.EndpointPort {
	var out []cluster.EndpointPort
	for _, p := range ps {
		if p.Port == nil || !portNumber(*p.Port) {
			continue // nil: "all ports", which a service's target port is not
		}
		var proto corev1.Protocol // nil: TCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		n, ok := netpol.ProtocolNumber(string(proto))
		if !ok {
			continue
		}
		ep := cluster.EndpointPort{Protocol: n, Port: uint16(*p.Port)}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		out = mergePorts(out, []cluster.EndpointPort{ep})
	}
	return out
}

// mergePorts adds to ports, sorted by name and protocol, those of more
// whose name and protocol it does not have.
func mergePorts(ports, more []cluster.EndpointPort) []cluster.EndpointPort {
	byKey := func(a, b cluster.EndpointPort) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Protocol, b.Protocol))
	}
	for _, p := range more {
		if i, found := slices.BinarySearchFunc(ports, p, byKey); !found {
			ports = slices.Insert(ports, i, p)
		}
	}
	return ports
}

// servicesOf converts svcs, each with the endpoints of its slices (among
// eps), and sorts them by namespace and name.
func servicesOf(svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) []cluster.Service {
	type key struct{ namespace, name string }
	slicesOf := map[key][]*discoveryv1.EndpointSlice{}
	for _, s := range eps {
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			k := key{s.Namespace, name}
			slicesOf[k] = append(slicesOf[k], s)
		}
	}
	out := make([]cluster.Service, 0, len(svcs))
	for _, svc := range svcs {
		s, ok := convertService(svc)
		if !ok {
			continue
		}
		s.Endpoints = serviceEndpoints(slicesOf[key{svc.Namespace, svc.Name}])
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b cluster.Service) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return out
}

// equalServices reports whether a and b are the same services, field by
// field (nil and empty alike).
func equalServices(a, b []cluster.Service) bool {
	return slices.EqualFunc(a, b, equalService)
}

func equalService(a, b cluster.Service) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name &&
		slices.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(a.ExternalIPs, b.ExternalIPs) &&
		slices.Equal(a.Ports, b.Ports) && a.Affinity == b.Affinity && a.ExternalLocal == b.ExternalLocal &&
		equalEndpoints(a.Endpoints, b.Endpoints)
}

func equalEndpoints(a, b []cluster.ServiceEndpoint) bool {
	return slices.EqualFunc(a, b, func(x, y cluster.ServiceEndpoint) bool {
		return x.Addr == y.Addr && x.Node == y.Node && x.Ready == y.Ready && x.Serving == y.Serving &&
			x.Terminating == y.Terminating && slices.Equal(x.Ports, y.Ports)
	})
}
