package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
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
	ok := len(name) <= 253
	for label := range strings.SplitSeq(name, ".") {
		ok = ok && label != "" && len(label) <= 63 && alnum(label[0]) && alnum(label[len(label)-1])
		for i := 0; ok && i < len(label); i++ {
			ok = alnum(label[i]) || label[i] == '-'
		}
	}
	if !ok {
		p.add(f, "%q is not a node name; use lowercase letters, digits, '-' and '.', "+
			"starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes requires)", name)
	}
}

func alnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

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

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

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
