package k8s

// The model: converted nodes, validated, with the offenders left out.

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
)

// buildModel makes the cluster model of the nodes: each converted, sorted
// by name, with tunnel t, defaulted and validated. notes says, per node
// name, why it (or part of it) is left out. c is nil when no node
// qualifies (nothing to publish) or when, offenders left out, the model
// still does not validate (err says why).
func buildModel(t cluster.Tunnel, self string, nodes []*corev1.Node) (c *cluster.Cluster, notes map[string]notice, err error) {
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	notes = map[string]notice{}
	c = &cluster.Cluster{Tunnel: t}
	c.SetDefaults()
	t = c.Tunnel
	for _, kn := range nodes {
		n, ok, why := convertNode(kn, t.VNI, self)
		if why.msg != "" {
			notes[kn.Name] = why
		}
		if ok {
			c.Nodes = append(c.Nodes, n)
		}
	}
	c.SetDefaults()
	if len(c.Nodes) == 0 {
		return nil, notes, nil
	}
	flannelLengths(c.Nodes, self)
	if c.Validate() == nil {
		return c, notes, nil
	}
	c.Nodes = prune(c, self, notes)
	if len(c.Nodes) == 0 {
		return nil, notes, nil
	}
	if err := c.Validate(); err != nil {
		return nil, notes, err
	}
	return c, notes, nil
}

// flannelLengths gives each Flannel node (converted with a /32, as its
// public-ip annotation has no length) the length of the ringnet node's
// subnet that holds its address, this node's first: the model wants one
// length per subnet. The node stays a Flannel node, reached by VXLAN
// whatever its subnet (cluster.Cluster.TunnelBetween).
func flannelLengths(nodes []cluster.Node, self string) {
	var subnets []netip.Prefix // the ringnet nodes', this node's first
	for _, n := range nodes {
		if n.Backend != cluster.BackendRingnet || !n.Address.IsValid() {
			continue
		}
		if n.Name == self {
			subnets = slices.Insert(subnets, 0, n.Address)
		} else {
			subnets = append(subnets, n.Address)
		}
	}
	for i := range nodes {
		n := &nodes[i]
		if n.Backend != cluster.BackendFlannel {
			continue
		}
		for _, s := range subnets {
			if s.Contains(n.Address.Addr()) {
				n.Address = netip.PrefixFrom(n.Address.Addr(), s.Bits())
				break
			}
		}
	}
}

// prune returns c's nodes without those that keep c from validating, as
// far as it can tell which: each node checked on its own, then against
// the nodes kept before it (they are in name order, so of two nodes in
// conflict the later-named goes), and in tunnel mode direct against the
// subnet of this node (or of the first ringnet node). Each node left out
// gets a warning in notes.
func prune(c *cluster.Cluster, self string, notes map[string]notice) []cluster.Node {
	var alone []cluster.Node
	for _, n := range c.Nodes {
		one := cluster.Cluster{Tunnel: c.Tunnel, Nodes: []cluster.Node{n}}
		if err := one.Validate(); err != nil {
			msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "nodes[0].", ""), "\n\t", "; ")
			notes[n.Name] = noted(slog.LevelWarn, "node %s left out: %s", n.Name, msg)
			continue
		}
		alone = append(alone, n)
	}
	var ref *cluster.Node // direct mode: the subnet every ringnet node must be on
	if c.Tunnel.Mode == cluster.ModeDirect {
		for i := range alone {
			if n := &alone[i]; n.Backend == cluster.BackendRingnet && (ref == nil || n.Name == self) {
				ref = n
			}
		}
	}
	var kept []cluster.Node
	for i := range alone {
		n := &alone[i]
		if why := conflict(n, kept, ref); why != "" {
			notes[n.Name] = noted(slog.LevelWarn, "node %s left out: %s", n.Name, why)
			continue
		}
		kept = append(kept, *n)
	}
	return kept
}

// conflict says what keeps n out of a model holding the nodes kept, or
// "".
func conflict(n *cluster.Node, kept []cluster.Node, direct *cluster.Node) string {
	a := n.Address
	for i := range kept {
		k := &kept[i]
		b := k.Address
		for _, p := range n.PodCIDRs {
			for _, q := range k.PodCIDRs {
				if p.Overlaps(q) {
					return fmt.Sprintf("pod CIDR %v overlaps node %s's %v; give every node its own pod CIDR", p, k.Name, q)
				}
			}
			if p.Contains(b.Addr()) {
				return fmt.Sprintf("pod CIDR %v holds node %s's address %v; pod CIDRs and node addresses must not overlap", p, k.Name, b.Addr())
			}
		}
		for _, q := range k.PodCIDRs {
			if q.Contains(a.Addr()) {
				return fmt.Sprintf("its address %v is in node %s's pod CIDR %v; pod CIDRs and node addresses must not overlap", a.Addr(), k.Name, q)
			}
		}
		switch {
		case a.Addr() == b.Addr():
			return fmt.Sprintf("address %v is also node %s's; every node needs its own address", a.Addr(), k.Name)
		case n.VtepMAC != nil && bytes.Equal(n.VtepMAC, k.VtepMAC):
			return fmt.Sprintf("VTEP MAC %v is also node %s's; every VTEP needs its own MAC", n.VtepMAC, k.Name)
		case a.Bits() != b.Bits() && (a.Contains(b.Addr()) || b.Contains(a.Addr())):
			return fmt.Sprintf("address %v and node %s's %v give one subnet two lengths", a, k.Name, b)
		}
	}
	if direct != nil && n.Backend == cluster.BackendRingnet && n.Name != direct.Name && !cluster.SameSubnet(a, direct.Address) {
		return fmt.Sprintf("tunnel mode direct needs every ringnet node on one subnet, and its address %v is not on node %s's %v; use mode crossSubnet",
			a, direct.Name, direct.Address.Masked())
	}
	return ""
}

// sameModel reports whether two models are equal (nodes in order).
func sameModel(a, b *cluster.Cluster) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Tunnel == b.Tunnel && slices.EqualFunc(a.Nodes, b.Nodes, func(x, y cluster.Node) bool {
		return x.Name == y.Name && x.Address == y.Address && x.Backend == y.Backend &&
			slices.Equal(x.PodCIDRs, y.PodCIDRs) && bytes.Equal(x.VtepMAC, y.VtepMAC)
	})
}

// tunnelProblem is what is wrong with t on its own, or nil: the model's
// Validate of t beside one well-formed node, from the documentation
// ranges, so that every problem it finds is the tunnel's.
func tunnelProblem(t cluster.Tunnel) error {
	probe := cluster.Cluster{Tunnel: t, Nodes: []cluster.Node{{
		Name: "probe", Address: netip.MustParsePrefix("192.0.2.1/24"),
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Backend: cluster.BackendRingnet,
	}}}
	return probe.Validate()
}
