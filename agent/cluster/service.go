package cluster

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/ringnet/ringnet/tables/service"
)

// Service is a Kubernetes Service with its endpoints, as the agent needs
// it to program the fast path's load balancer: the source (the cluster
// file, or agent/k8s from Services and EndpointSlices) fills it, and
// [ServiceSpecs] compiles it, for one node, into tables/service
// specs.
type Service struct {
	Namespace, Name string
	// ClusterIPs are the service's cluster IPs (one per family); none for
	// a headless service, which the fast path does not see.
	ClusterIPs []netip.Addr
	// ExternalIPs are spec.externalIPs and the LoadBalancer ingress IPs
	// (status.loadBalancer.ingress[].ip): addresses clients outside the
	// cluster reach the service at, on the service's ports.
	ExternalIPs []netip.Addr
	Ports       []ServicePort
	// Affinity is sessionAffinity ClientIP's timeout
	// (sessionAffinityConfig.clientIP.timeoutSeconds, default 3 hours);
	// 0 is sessionAffinity None.
	Affinity time.Duration
	// ExternalLocal is externalTrafficPolicy Local: NodePorts, externalIPs
	// and LoadBalancer IPs reach only the receiving node's endpoints, and
	// clients keep their address. False is Cluster: any endpoint, the
	// client masqueraded to the node's address.
	ExternalLocal bool
	Endpoints     []ServiceEndpoint
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string // matches EndpointPort.Name; may be empty for a single-port service
	Protocol uint8  // IP protocol: 6 TCP, 17 UDP, 132 SCTP
	Port     uint16 // the port on the cluster IPs and external IPs
	NodePort uint16 // 0: none
}

// ServiceEndpoint is one endpoint address of a service (from an
// EndpointSlice), with its conditions.
type ServiceEndpoint struct {
	Addr netip.Addr
	Node string // the node it runs on (EndpointSlice nodeName); may be empty
	// Ready, Serving and Terminating are the EndpointSlice conditions. A
	// backend is what is Ready; when no endpoint of a port is Ready, the
	// endpoints that are Serving and Terminating (kube-proxy's fallback,
	// so that connections drain during a rollout).
	Ready, Serving, Terminating bool
	Ports                       []EndpointPort
}

// EndpointPort is a port of an endpoint: the target port of the service
// port with the same name and protocol.
type EndpointPort struct {
	Name     string
	Protocol uint8
	Port     uint16
}

// IP protocol numbers of the protocols a Service port may have.
const (
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132
)

// protocol is a protocol a Service port may have.
type protocol struct {
	num  uint8
	name string // as Kubernetes spells it
}

// protocols are the Service protocols, in the order messages list them.
var protocols = []protocol{{ProtoTCP, "TCP"}, {ProtoUDP, "UDP"}, {ProtoSCTP, "SCTP"}}

// protocolNames lists the protocols' names for a message.
func protocolNames() []string {
	var names []string
	for _, q := range protocols {
		names = append(names, q.name)
	}
	return names
}

// ProtocolName names a Service protocol as Kubernetes does (TCP, UDP,
// SCTP), any other by its number.
func ProtocolName(p uint8) string {
	if name, ok := protocolName(p); ok {
		return name
	}
	return strconv.Itoa(int(p))
}

// protocolName names a Service protocol, and reports false for a protocol
// a Service may not have.
func protocolName(p uint8) (string, bool) {
	for _, q := range protocols {
		if q.num == p {
			return q.name, true
		}
	}
	return "", false
}

// ServiceSpecs compiles svcs into the fast path's service table entries
// (tables/service specs) as node self serves them, one entry per address
// and port a client may use:
//
//   - each cluster IP, on each service port;
//   - self's underlay address on each NodePort (only for a service with an
//     IPv4 cluster IP: the underlay is IPv4), External;
//   - each external IP (externalIPs, LoadBalancer ingress IPs), on each
//     service port, External.
//
// External entries are Local with externalTrafficPolicy Local, and then
// take only the endpoints on self (ServiceEndpoint.Node == self.Name).
// An entry's backends are the endpoints of its address family that have
// a port of the service port's name and protocol, at that port: the Ready
// ones, or, when none of them is Ready, those Serving and Terminating
// (kube-proxy's fallback: connections drain to terminating pods rather
// than fail). Like kube-proxy, the fallback is decided per entry, among
// the endpoints it may use: a Local entry with no ready endpoint on this
// node falls back to this node's terminating ones even when other nodes
// have ready ones. An entry without backends is still listed, so that the
// fast path rejects its connections instead of leaving them to the node.
// Every entry has the service's session affinity.
//
// A headless service (no cluster IP) has no entries. Services are taken
// in order of namespace and name, so the result does not depend on the
// order of svcs: when two claim the same address, protocol and port, the
// first keeps it. The problems are what was left out, and why: such a
// clash, an address of a family the service has no cluster IP of, an
// invalid port, protocol or affinity, more backends than an entry holds.
// They are per service or per entry; the rest is compiled, and
// service.Build accepts the result. self may be nil: then there are no
// NodePort entries and Local entries have no backends.
func ServiceSpecs(self *Node, svcs []Service) (specs []service.Spec, problems []error) {
	order := make([]int, len(svcs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(svcs[a].Namespace, svcs[b].Namespace), cmp.Compare(svcs[a].Name, svcs[b].Name))
	})
	type claim struct{ svc, kind string }
	owners := map[frontend]claim{}
	for _, i := range order {
		s := &svcs[i]
		name := s.Namespace + "/" + s.Name
		report := func(format string, args ...any) {
			problems = append(problems, fmt.Errorf("service %s: "+format, append([]any{name}, args...)...))
		}
		if len(s.ClusterIPs) == 0 {
			continue
		}
		if s.Affinity < 0 || s.Affinity > service.MaxAffinity {
			report("session affinity timeout %v is not between 0 and %v; service left out", s.Affinity, service.MaxAffinity)
			continue
		}
		var fams [2]bool // the service has a cluster IP of family 0 (IPv4), 1 (IPv6)
		for _, a := range s.ClusterIPs {
			if a.IsValid() {
				fams[addrFamily(a)] = true
			}
		}
		for _, p := range s.Ports {
			if _, ok := protocolName(p.Protocol); !ok || p.Port == 0 {
				report("port %s: %s port %d is not a port and protocol a service may have; port left out", portName(p), ProtocolName(p.Protocol), p.Port)
				continue
			}
			for _, e := range serviceEntries(self, s, p) {
				where := fmt.Sprintf("%s %s %s", e.kind, ProtocolName(p.Protocol), netip.AddrPortFrom(e.vip, e.port))
				switch fam := addrFamily(e.vip); {
				case !e.vip.IsValid():
					report("port %s: a %s with no address; left out", portName(p), e.kind)
					continue
				case !fams[fam]:
					report("%s: the service has no %s cluster IP, so no %s endpoints; left out", where, famName[fam], famName[fam])
					continue
				}
				k := frontend{e.vip, p.Protocol, e.port}
				if c, taken := owners[k]; taken {
					report("%s is also the %s of service %s, which keeps it; left out (give each service its own addresses and ports)", where, c.kind, c.svc)
					continue
				}
				owners[k] = claim{name, e.kind}
				bs := serviceBackends(s, p, e.vip.Is4(), e.local, self)
				if len(bs) > maxServiceBackends {
					report("%s has %d backends, more than the %d a service table entry holds; it keeps none", where, len(bs), maxServiceBackends)
					bs = nil
				}
				specs = append(specs, service.Spec{VIP: e.vip, Proto: p.Protocol, Port: e.port, Affinity: s.Affinity,
					External: e.ext, Local: e.local, Backends: bs})
			}
		}
	}
	return specs, problems
}

// serviceEntry is one address and port a service port is reached at.
type serviceEntry struct {
	kind       string // "cluster IP", "node port" or "external IP", for messages
	vip        netip.Addr
	port       uint16
	ext, local bool
}

// serviceEntries lists where port p of s is reached on node self (nil:
// no NodePort): its cluster IPs, self's address at the NodePort if the
// service has a cluster IP of that family (IPv4: the underlay's), its
// external IPs. Addresses are unmapped, without zones.
func serviceEntries(self *Node, s *Service, p ServicePort) []serviceEntry {
	var out []serviceEntry
	for _, a := range s.ClusterIPs {
		out = append(out, serviceEntry{kind: "cluster IP", vip: a, port: p.Port})
	}
	if p.NodePort != 0 && self != nil && self.Address.IsValid() &&
		slices.ContainsFunc(s.ClusterIPs, func(a netip.Addr) bool { return addrFamily(a) == addrFamily(self.Address.Addr()) }) {
		out = append(out, serviceEntry{kind: "node port", vip: self.Address.Addr(), port: p.NodePort, ext: true, local: s.ExternalLocal})
	}
	for _, a := range s.ExternalIPs {
		out = append(out, serviceEntry{kind: "external IP", vip: a, port: p.Port, ext: true, local: s.ExternalLocal})
	}
	for i := range out {
		out[i].vip = out[i].vip.Unmap().WithZone("")
	}
	return out
}

// maxServiceBackends is the most backends tables/service takes for one
// entry (its Maglev slots are 16-bit indexes).
const maxServiceBackends = 1<<16 - 1

// portName names a service port in a message: its name, or its number
// when it has none.
func portName(p ServicePort) string {
	if p.Name != "" {
		return strconv.Quote(p.Name)
	}
	return strconv.Itoa(int(p.Port))
}

// serviceBackends are the backends of service port p of s for an entry of one
// address family (IPv4 when is4), only self's endpoints when local:
// the Ready endpoints with a port of p's name and protocol, or if there
// are none, the Serving and Terminating ones. Sorted, without duplicates
// (one endpoint may be in two EndpointSlices for a moment).
func serviceBackends(s *Service, p ServicePort, is4, local bool, self *Node) []service.Backend {
	var ready, draining []service.Backend
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		a := e.Addr.Unmap()
		if !a.IsValid() || a.Is4() != is4 || local && (self == nil || e.Node != self.Name) {
			continue
		}
		k := slices.IndexFunc(e.Ports, func(ep EndpointPort) bool { return ep.Name == p.Name && ep.Protocol == p.Protocol && ep.Port != 0 })
		if k < 0 {
			continue
		}
		b := service.Backend{Addr: a.WithZone(""), Port: e.Ports[k].Port}
		switch {
		case e.Ready:
			ready = append(ready, b)
		case e.Serving && e.Terminating:
			draining = append(draining, b)
		}
	}
	if len(ready) == 0 {
		ready = draining
	}
	slices.SortFunc(ready, func(a, b service.Backend) int { return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port)) })
	return slices.Compact(ready)
}

// addrFamily is 0 for an IPv4 address, 1 for IPv6.
func addrFamily(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 0
	}
	return 1
}
