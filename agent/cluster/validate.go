package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/tables/service"
)

// Validate reports everything wrong with c, each problem naming its field
// (tunnel.mode, nodes[1].podCIDRs[0], ...) and saying what to do. It
// checks the model as SetDefaults leaves it: empty modes and backends are
// errors here.
func (c *Cluster) Validate() error {
	var p problems
	c.validateTunnel(&p)
	if len(c.Nodes) == 0 {
		p.add("nodes", "none given; list every node of the cluster, this one included")
	}
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	macs := map[string]int{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		f := fmt.Sprintf("nodes[%d]", i)
		validateName(&p, f+".name", n.Name)
		if j, dup := names[n.Name]; dup && n.Name != "" {
			p.add(f+".name", "%q is also nodes[%d].name; node names must be unique", n.Name, j)
		} else {
			names[n.Name] = i
		}
		if validateAddress(&p, f+".address", n.Address) {
			if j, dup := addrs[n.Address.Addr()]; dup {
				p.add(f+".address", "%v is also nodes[%d].address (node %q); every node needs its own address",
					n.Address.Addr(), j, c.Nodes[j].Name)
			} else {
				addrs[n.Address.Addr()] = i
			}
		}
		switch n.Backend {
		case BackendRingnet, BackendFlannel:
		case "":
			p.add(f+".backend", "missing; choose %s", choices(backends))
		default:
			p.add(f+".backend", "unknown backend %q; choose %s%s", n.Backend, choices(backends), didYouMean(n.Backend, backends))
		}
		if n.VtepMAC == nil {
			if n.Backend == BackendFlannel {
				p.add(f+".vtepMAC", "missing; a flannel node needs the MAC of its flannel.1 device "+
					"(the VtepMAC in the node's flannel.alpha.coreos.com/backend-data annotation)")
			}
		} else if validateMAC(&p, f+".vtepMAC", n.VtepMAC) {
			if j, dup := macs[string(n.VtepMAC)]; dup {
				p.add(f+".vtepMAC", "%v is also nodes[%d].vtepMAC (node %q); every VTEP needs its own MAC", n.VtepMAC, j, c.Nodes[j].Name)
			} else {
				macs[string(n.VtepMAC)] = i
			}
		}
		validatePodCIDRs(&p, f, n)
	}
	c.crossNodes(&p)
	c.validateServices(&p)
	c.validateNamespaces(&p)
	c.validatePods(&p)
	c.validatePolicies(&p)
	return p.err()
}

func (c *Cluster) validateTunnel(p *problems) {
	t := &c.Tunnel
	switch t.Mode {
	case ModeVXLAN, ModeIPIP, ModeDirect, ModeCrossSubnet:
	case "":
		p.add("tunnel.mode", "missing; choose %s", choices(modes))
	default:
		p.add("tunnel.mode", "unknown mode %q; choose %s%s", t.Mode, choices(modes), didYouMean(t.Mode, modes))
	}
	encaps := []Mode{ModeVXLAN, ModeIPIP}
	switch {
	case t.Mode != ModeCrossSubnet && t.CrossSubnetEncap != "":
		p.add("tunnel.crossSubnetEncap", "only used with mode crossSubnet (mode is %s); remove it, or set mode: crossSubnet", t.Mode)
	case t.Mode != ModeCrossSubnet, t.CrossSubnetEncap == ModeVXLAN, t.CrossSubnetEncap == ModeIPIP:
	case t.CrossSubnetEncap == "":
		p.add("tunnel.crossSubnetEncap", "missing; choose %s", choices(encaps))
	default:
		p.add("tunnel.crossSubnetEncap", "unknown encapsulation %q; choose %s%s", t.CrossSubnetEncap, choices(encaps), didYouMean(t.CrossSubnetEncap, encaps))
	}
	if t.VXLANPort == 0 {
		p.add("tunnel.vxlanPort", "missing; give VXLAN's UDP port, the Flannel nodes' if there are any (Flannel's default is %d)", DefaultVXLANPort)
	}
	if t.VNI == 0 || t.VNI > maxVNI {
		p.add("tunnel.vni", "%d is out of range; a VNI is 1 to %d, the Flannel nodes' if there are any (Flannel's default is %d)", t.VNI, maxVNI, DefaultVNI)
	}
}

const maxVNI = 1<<24 - 1

// validateName checks a node name is a DNS-1123 subdomain, as Kubernetes
// node names are.
func validateName(p *problems, f, name string) {
	if name == "" {
		p.add(f, "missing; give the node's name as Kubernetes knows it (kubectl get nodes)")
		return
	}
	if !isSubdomain(name) {
		p.add(f, "%q is not a node name; use lowercase letters, digits, '-' and '.', "+
			"starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes requires)", name)
	}
}

// isSubdomain reports whether s is a DNS-1123 subdomain: at most 253
// bytes of DNS-1123 labels joined by '.'.
func isSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !isLabel(label) {
			return false
		}
	}
	return true
}

func alnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

// isLabel reports whether s is a DNS-1123 label: 1 to 63 lowercase
// letters, digits and '-', starting and ending with a letter or digit.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := range len(s) {
		if !alnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// validateAddress checks a node's underlay address and reports whether it
// is good enough to compare with the others.
func validateAddress(p *problems, f string, a netip.Prefix) bool {
	const hint = "give the node's underlay IPv4 address with its subnet's length, such as 192.168.50.1/24"
	ip := a.Addr()
	switch {
	case !a.IsValid():
		p.add(f, "missing; %s", hint)
	case ip.Is4In6():
		p.add(f, "%v is IPv4-mapped IPv6; write it as IPv4 (%v/%d)", a, ip.Unmap(), max(a.Bits()-96, 0))
	case ip.Is6():
		p.add(f, "%v is IPv6; ringnet's underlay is IPv4 for now: %s", a, hint)
	case ip.IsUnspecified(), ip.IsLoopback(), ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		p.add(f, "%v is not a unicast address; %s", a, hint)
	case a.Bits() < 31 && ip == a.Masked().Addr():
		p.add(f, "%v is the subnet's own address, not a node's; %s", a, hint)
	case a.Bits() < 31 && ip == lastAddr(a):
		p.add(f, "%v is the subnet's broadcast address, not a node's; %s", a, hint)
	default:
		return true
	}
	return false
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validateMAC checks a VTEP MAC and reports whether it is good enough to
// compare with the others.
func validateMAC(p *problems, f string, mac net.HardwareAddr) bool {
	switch {
	case len(mac) != 6:
		p.add(f, "%v is not an Ethernet MAC (6 bytes, such as 02:42:c0:a8:32:03)", mac)
	case mac[0]&1 != 0:
		p.add(f, "%v is a multicast MAC; a VTEP's MAC is unicast (the first byte even)", mac)
	case string(mac) == "\x00\x00\x00\x00\x00\x00":
		p.add(f, "%v is all zeros; give the VTEP's MAC", mac)
	default:
		return true
	}
	return false
}

// validatePodCIDRs checks one node's pod CIDRs on their own; crossNodes
// checks them against the other nodes.
func validatePodCIDRs(p *problems, f string, n *Node) {
	if len(n.PodCIDRs) == 0 {
		p.add(f+".podCIDRs", "missing; give the node's pod CIDRs (at most one IPv4 and one IPv6, such as [10.244.1.0/24])")
		return
	}
	seen := [2]int{-1, -1} // index of the IPv4 and the IPv6 CIDR
	for k, c := range n.PodCIDRs {
		fk := fmt.Sprintf("%s.podCIDRs[%d]", f, k)
		if !podCIDROK(p, fk, c) {
			continue
		}
		fam := family(c)
		if j := seen[fam]; j >= 0 {
			p.add(fk, "a second %s pod CIDR (%s.podCIDRs[%d] is %v); a node has at most one IPv4 and one IPv6",
				famName[fam], f, j, n.PodCIDRs[j])
			continue
		}
		seen[fam] = k
		if n.Backend == BackendFlannel && fam == 1 {
			p.add(fk, "%v is IPv6; ringnet reaches flannel nodes over IPv4 VXLAN (flannel.1) only: remove it", c)
		}
	}
	if n.Backend == BackendFlannel && seen[0] < 0 {
		p.add(f+".podCIDRs", "a flannel node needs an IPv4 pod CIDR (the node's spec.podCIDR)")
	}
}

var famName = [2]string{"IPv4", "IPv6"}

func family(p netip.Prefix) int { return addrFamily(p.Addr()) }

// podCIDROK checks one pod CIDR on its own.
func podCIDROK(p *problems, f string, c netip.Prefix) bool {
	switch {
	case !c.IsValid():
		p.add(f, "missing or not a CIDR; write it as address/length, such as 10.244.1.0/24")
	case c.Addr().Is4In6():
		p.add(f, "%v is IPv4-mapped IPv6; write it as IPv4 (%v)", c, netip.PrefixFrom(c.Addr().Unmap(), max(c.Bits()-96, 0)).Masked())
	case c.Addr().Zone() != "":
		p.add(f, "%v has a zone; pod CIDRs have none", c)
	case c != c.Masked():
		p.add(f, "%v has host bits set; did you mean %v?", c, c.Masked())
	default:
		return true
	}
	return false
}

// crossNodes checks what involves two nodes: pod CIDRs overlapping each
// other or covering node addresses, subnets given with different lengths,
// and direct mode across subnets.
func (c *Cluster) crossNodes(p *problems) {
	type cidr struct {
		node, k int
		p       netip.Prefix
	}
	var cidrs []cidr
	for i := range c.Nodes {
		for k, pc := range c.Nodes[i].PodCIDRs {
			if pc.IsValid() && pc == pc.Masked() && !pc.Addr().Is4In6() {
				cidrs = append(cidrs, cidr{i, k, pc})
			}
		}
	}
	// Pod CIDRs overlapping another node's (a node's own two are of two
	// families, or validatePodCIDRs said so), and covering node addresses.
	for x, a := range cidrs {
		for _, b := range cidrs[:x] {
			if a.node != b.node && a.p.Overlaps(b.p) {
				p.add(fmt.Sprintf("nodes[%d].podCIDRs[%d]", a.node, a.k), "%v overlaps nodes[%d].podCIDRs[%d] %v (node %q); give every node its own pod CIDR",
					a.p, b.node, b.k, b.p, c.Nodes[b.node].Name)
			}
		}
		for j := range c.Nodes {
			if addr := c.Nodes[j].Address; addr.IsValid() && a.p.Contains(addr.Addr()) {
				p.add(fmt.Sprintf("nodes[%d].podCIDRs[%d]", a.node, a.k), "%v contains nodes[%d].address %v (node %q); pod CIDRs and node addresses must not overlap",
					a.p, j, addr.Addr(), c.Nodes[j].Name)
			}
		}
	}
	// Node addresses: one subnet, one length.
	for i := range c.Nodes {
		a := c.Nodes[i].Address
		for j := range i {
			b := c.Nodes[j].Address
			if a.IsValid() && b.IsValid() && a.Addr().Is4() && b.Addr().Is4() && a.Bits() != b.Bits() &&
				(a.Contains(b.Addr()) || b.Contains(a.Addr())) {
				p.add(fmt.Sprintf("nodes[%d].address", i), "%v and nodes[%d].address %v (node %q) overlap with different lengths; nodes on one subnet give its one length",
					a, j, b, c.Nodes[j].Name)
			}
		}
	}
	// Direct mode: every ringnet node on the first one's subnet.
	if c.Tunnel.Mode != ModeDirect {
		return
	}
	first := -1
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Backend != BackendRingnet || !n.Address.IsValid() {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if f := &c.Nodes[first]; !SameSubnet(f.Address, n.Address) {
			p.add("tunnel.mode", "direct needs the ringnet nodes on one subnet, but nodes[%d] %q (%v) and nodes[%d] %q (%v) are on different subnets; "+
				"use mode crossSubnet (direct within a subnet, encapsulated across)", first, f.Name, f.Address, i, n.Name, n.Address)
		}
	}
}

// problems collects validation errors.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &fieldError{field, fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

func (p problems) Error() string {
	if len(p) == 1 {
		return p[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(p))
	for _, e := range p {
		b.WriteString("\n\t")
		b.WriteString(e.Error())
	}
	return b.String()
}

func (p problems) Unwrap() []error { return p }

// fieldError is one problem with one field.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// choices lists the valid values: "a, b or c".
func choices[T ~string](vs []T) string {
	var b strings.Builder
	for i, v := range vs {
		switch {
		case i == 0:
		case i == len(vs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(v))
	}
	return b.String()
}

// didYouMean suggests the valid value v differs from in case only.
func didYouMean[T ~string](v T, valid []T) string {
	for _, w := range valid {
		if strings.EqualFold(string(v), string(w)) {
			return fmt.Sprintf(" (did you mean %s?)", w)
		}
	}
	return ""
}

// validateServices checks each service, and what no two services may
// share: a namespace and name, a cluster IP, an address with a port and
// protocol, a NodePort.
func (c *Cluster) validateServices(p *problems) {
	sv := serviceChecks{names: map[string]int{}, clusterIPs: map[netip.Addr]string{},
		frontends: map[frontend]string{}, nodePorts: map[uint16]nodePortUse{}}
	for i := range c.Services {
		c.validateService(p, &sv, i)
	}
}

// serviceChecks is what validateServices remembers from one service to
// the next: who has which name, cluster IP, frontend and NodePort.
type serviceChecks struct {
	names      map[string]int        // namespace/name -> service index
	clusterIPs map[netip.Addr]string // -> the field that has it, with its service
	frontends  map[frontend]string   // -> the field that has it, with its service
	nodePorts  map[uint16]nodePortUse
}

// frontend is an address, protocol and port clients reach a service at.
type frontend struct {
	addr  netip.Addr
	proto uint8
	port  uint16
}

type nodePortUse struct {
	svc, port int
	proto     uint8
}

// validateService checks services[i]: its names, addresses, ports,
// affinity, policy and endpoints, and through sv what it may not share
// with the services before it.
func (c *Cluster) validateService(p *problems, sv *serviceChecks, i int) {
	s := &c.Services[i]
	f := fmt.Sprintf("services[%d]", i)
	id := s.Namespace + "/" + s.Name
	switch {
	case s.Name == "":
		p.add(f+".name", "missing; give the service's name (its metadata.name)")
	case !isLabel(s.Name) || !('a' <= s.Name[0] && s.Name[0] <= 'z'):
		p.add(f+".name", "%q is not a service name; use at most 63 lowercase letters, digits and '-', "+
			"starting with a letter and ending with a letter or digit (a DNS-1035 label, as Kubernetes requires)", s.Name)
	}
	validateNamespace(p, f+".namespace", s.Namespace, "service")
	if j, dup := sv.names[id]; dup && s.Name != "" {
		p.add(f+".name", "%q is also services[%d].name in namespace %q; a service's namespace and name must be unique", s.Name, j, s.Namespace)
	} else {
		sv.names[id] = i
	}
	who := fmt.Sprintf(" (service %s)", id)

	// Addresses: the cluster IPs, at most one per family, then the
	// external IPs, of those families. addrs are the good ones, with
	// their fields, for the frontends.
	type addrField struct {
		f string
		a netip.Addr
	}
	var addrs []addrField
	var fams famSeen
	if len(s.ClusterIPs) == 0 {
		p.add(f+".clusterIPs", "missing; give the service's cluster IP (at most one IPv4 and one IPv6, such as [%s]); "+
			"a headless service has no cluster IP and no place in this file", serviceIPExample)
	}
	for k, a := range s.ClusterIPs {
		fk := fmt.Sprintf("%s.clusterIPs[%d]", f, k)
		if !c.serviceIPOK(p, fk, a, "give the service's cluster IP, from the service CIDR") {
			continue
		}
		if !fams.first(p, fk, f+".clusterIPs", s.ClusterIPs, k, "cluster IP", "a service") {
			continue
		}
		if other, dup := sv.clusterIPs[a]; dup {
			p.add(fk, "%v is also %s; every service needs its own cluster IP", a, other)
			continue
		}
		sv.clusterIPs[a] = fk + who
		addrs = append(addrs, addrField{fk, a})
	}
	for k, a := range s.ExternalIPs {
		fk := fmt.Sprintf("%s.externalIPs[%d]", f, k)
		if !c.serviceIPOK(p, fk, a, "give an address clients outside the cluster reach the service at") {
			continue
		}
		if fam := addrFamily(a); fams[fam] == 0 {
			p.add(fk, "%v is %s, but the service has no %s cluster IP, so no %s endpoints; add one to clusterIPs, or remove this address",
				a, famName[fam], famName[fam], famName[fam])
			continue
		}
		addrs = append(addrs, addrField{fk, a})
	}

	// Ports, and the frontends they make with the addresses.
	if len(s.Ports) == 0 {
		p.add(f+".ports", "missing; list the service's ports, such as [{name: http, port: 80, targetPort: 8080}]")
	}
	external := len(s.ExternalIPs) > 0
	for j, sp := range s.Ports {
		fj := fmt.Sprintf("%s.ports[%d]", f, j)
		switch {
		case sp.Name == "" && len(s.Ports) > 1:
			p.add(fj+".name", "missing; a service with several ports names each one (endpoints' ports are matched by name)")
		case sp.Name != "" && !isLabel(sp.Name):
			p.add(fj+".name", "%q is not a port name; use at most 63 lowercase letters, digits and '-', "+
				"starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)", sp.Name)
		}
		if k := slices.IndexFunc(s.Ports[:j], func(q ServicePort) bool { return q.Name == sp.Name }); k >= 0 && sp.Name != "" {
			p.add(fj+".name", "%q is also %s.ports[%d].name; port names must be unique within a service", sp.Name, f, k)
		}
		if _, ok := protocolName(sp.Protocol); !ok {
			names := protocolNames()
			p.add(fj+".protocol", "%d is not a protocol a service may have; choose %s", sp.Protocol, choices(names))
			continue
		}
		if sp.Port == 0 {
			p.add(fj+".port", "missing; give the port clients connect to on the service's addresses, 1 to 65535")
			continue
		}
		if k := slices.IndexFunc(s.Ports[:j], func(q ServicePort) bool { return q.Port == sp.Port && q.Protocol == sp.Protocol }); k >= 0 {
			p.add(fj+".port", "%s %d is also %s.ports[%d]; a service has each port and protocol once", ProtocolName(sp.Protocol), sp.Port, f, k)
			continue
		}
		if sp.NodePort != 0 {
			external = true
			c.validateNodePort(p, sv, i, j)
		}
		for _, af := range addrs {
			fe := frontend{af.a, sp.Protocol, sp.Port}
			if other, dup := sv.frontends[fe]; dup {
				p.add(af.f, "%s %v is also %s; give each service its own addresses and ports",
					ProtocolName(sp.Protocol), netip.AddrPortFrom(fe.addr, fe.port), other)
			} else {
				sv.frontends[fe] = af.f + who
			}
		}
	}
	switch d := s.Affinity; {
	case d < 0, d > service.MaxAffinity:
		p.add(f+".sessionAffinityTimeout", "%v is out of range; give at most %v (Kubernetes' limit)", d, service.MaxAffinity)
	case d%time.Second != 0:
		p.add(f+".sessionAffinityTimeout", "%v is not whole seconds; Kubernetes counts the timeout in seconds", d)
	}
	if s.ExternalLocal && !external {
		p.add(f+".externalTrafficPolicy", "%s applies to NodePorts and externalIPs, and the service has neither; remove it", policyLocal)
	}
	c.validateEndpoints(p, f, s, fams)
}

// validateNamespace checks the namespace of a service, pod or policy
// (what): a DNS-1123 label.
func validateNamespace(p *problems, f, ns, what string) {
	switch {
	case ns == "":
		p.add(f, "missing; give the %s's namespace (the file's default is %q)", what, defaultNamespace)
	case !isLabel(ns):
		p.add(f, "%q is not a namespace name; use at most 63 lowercase letters, digits and '-', "+
			"starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)", ns)
	}
}

// famSeen is, for each family (addrFamily), the index+1 of the first
// address of that family in a list; 0 for none.
type famSeen [2]int

// first records addrs[k], the address at field fk of the list at field
// list, and reports whether it is the first of its family; if not, it
// says so: what (such as "cluster IP") who (such as "a service") has at
// most one of per family.
func (fs *famSeen) first(p *problems, fk, list string, addrs []netip.Addr, k int, what, who string) bool {
	fam := addrFamily(addrs[k])
	if j := fs[fam]; j > 0 {
		p.add(fk, "a second %s %s (%s[%d] is %v); %s has at most one per family", famName[fam], what, list, j-1, addrs[j-1], who)
		return false
	}
	fs[fam] = k + 1
	return true
}

// validateNodePort checks the NodePort of services[i].ports[j]: in the
// range, and no other service's.
func (c *Cluster) validateNodePort(p *problems, sv *serviceChecks, i, j int) {
	sp := c.Services[i].Ports[j]
	f := fmt.Sprintf("services[%d].ports[%d].nodePort", i, j)
	if sp.NodePort < nodePortMin || sp.NodePort > nodePortMax {
		p.add(f, "%d is outside the NodePort range %d-%d (Kubernetes' default --service-node-port-range); give a port in it",
			sp.NodePort, nodePortMin, nodePortMax)
		return
	}
	u, dup := sv.nodePorts[sp.NodePort]
	switch {
	case !dup:
		sv.nodePorts[sp.NodePort] = nodePortUse{i, j, sp.Protocol}
	case u.svc != i:
		o := &c.Services[u.svc]
		p.add(f, "%d is also services[%d].ports[%d].nodePort (service %s/%s); every NodePort belongs to one service",
			sp.NodePort, u.svc, u.port, o.Namespace, o.Name)
	case u.proto == sp.Protocol:
		p.add(f, "%d is also services[%d].ports[%d].nodePort, with the same protocol; give each port its own NodePort", sp.NodePort, i, u.port)
	}
}

// validateEndpoints checks a service's endpoints: addresses of the
// service's families, each once; nodes of this file, and the node whose
// pod CIDR holds the address; conditions as Kubernetes sets them.
func (c *Cluster) validateEndpoints(p *problems, f string, s *Service, fams famSeen) {
	for k, e := range s.Endpoints {
		fk := fmt.Sprintf("%s.endpoints[%d]", f, k)
		if unicastOK(p, fk+".address", e.Addr, "a service may use", "give the endpoint's (the pod's) IP address") {
			if fam := addrFamily(e.Addr); fams[fam] == 0 {
				p.add(fk+".address", "%v is %s, but the service has no %s cluster IP; add one to clusterIPs, or remove the endpoint", e.Addr, famName[fam], famName[fam])
			}
			if j := slices.IndexFunc(s.Endpoints[:k], func(o ServiceEndpoint) bool { return o.Addr == e.Addr }); j >= 0 {
				p.add(fk+".address", "%v is also %s.endpoints[%d].address; list each endpoint once", e.Addr, f, j)
			}
		}
		if e.Node != "" {
			if _, ok := c.Node(e.Node); !ok {
				var names []string
				for _, n := range c.Nodes {
					names = append(names, n.Name)
				}
				p.add(fk+".node", "%q is not a node of this file (its nodes: %s); give the node the endpoint runs on, or leave node out for one outside the nodes",
					e.Node, strings.Join(names, ", "))
			} else if n, pc, ok := c.podCIDROf(e.Addr); ok && n.Name != e.Node {
				p.add(fk+".node", "%q, but %v is in node %q's pod CIDR %v; give the node the endpoint runs on", e.Node, e.Addr, n.Name, pc)
			}
		}
		switch {
		case e.Ready && e.Terminating:
			p.add(fk+".ready", "true on a terminating endpoint, which Kubernetes never marks ready; remove ready (serving says whether it still takes connections)")
		case !e.Terminating && e.Serving != e.Ready:
			p.add(fk+".serving", "%t, but ready is %t and the endpoint is not terminating; remove serving (it differs from ready only while an endpoint terminates)", e.Serving, e.Ready)
		}
	}
}

// serviceIPOK checks a cluster IP or external IP: a unicast address, in
// no node's pod CIDR.
func (c *Cluster) serviceIPOK(p *problems, f string, a netip.Addr, hint string) bool {
	if !unicastOK(p, f, a, "a service may use", hint) {
		return false
	}
	if n, pc, ok := c.podCIDROf(a); ok {
		p.add(f, "%v is in node %q's pod CIDR %v; %s, apart from the pod CIDRs", a, n.Name, pc, hint)
		return false
	}
	return true
}

// unicastOK checks an address of a service, an endpoint or a pod is one
// it may have (who: "a service may use"): unicast, not link-local,
// written plainly.
func unicastOK(p *problems, f string, a netip.Addr, who, hint string) bool {
	switch {
	case !a.IsValid():
		p.add(f, "missing; %s", hint)
	case a.Is4In6():
		p.add(f, "%v is IPv4-mapped IPv6; write it as IPv4 (%v)", a, a.Unmap())
	case a.Zone() != "":
		p.add(f, "%v has a zone; %s", a, hint)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		p.add(f, "%v is not a unicast address %s; %s", a, who, hint)
	default:
		return true
	}
	return false
}

// podCIDROf finds the node whose pod CIDR holds a.
func (c *Cluster) podCIDROf(a netip.Addr) (*Node, netip.Prefix, bool) {
	for i := range c.Nodes {
		for _, pc := range c.Nodes[i].PodCIDRs {
			if pc.IsValid() && pc.Contains(a) {
				return &c.Nodes[i], pc, true
			}
		}
	}
	return nil, netip.Prefix{}, false
}
