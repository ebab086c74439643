// Package testbed builds what the cross-node benchmarks and their tests
// measure on internal/topo: a [Cluster] of nodes (ringnet nodes running
// ringnetd with a static cluster file, and nodes running Flannel's kernel
// VXLAN datapath), and a [Bed]: a sender pod on node n1 and a receiver pod
// on node n2, on kernel host-gw nodes, kernel VXLAN nodes or ringnet
// nodes, with what it takes to load and watch the path between them
// (netlink handles, a UDP sink, the trafgen flow the sender's kernel
// resolved, the path's counters).
//
// A Bed is built and read by one goroutine, the benchmark's; what it
// makes (topology, daemons, sockets, handles) lives until Close, which
// removes it in reverse order and is safe on a half-built Bed.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
)

// NodeSpec is a node of a cluster.
type NodeSpec struct {
	Name, Addr, Pod4, Pod6 string
	Flannel                bool
}

// Cluster is a running cluster.
type Cluster struct {
	Topo    *topo.Topology
	Nodes   map[string]*topo.Node
	Flannel map[string]*topo.FlannelNode
	Daemons map[string]*ringnode.Daemon
	Order   []string // the ringnet nodes, in the order their daemons started
	File    string   // the cluster file every ringnetd reads
}

// NewCluster adds the nodes to tp (with a router for 192.168.60.0/24 if a
// node is there), writes the cluster file for mode into dir, peers every
// Flannel node with every other node and starts ringnetd on every ringnet
// node, waiting until each has resolved its peers. On error the daemons it
// started are stopped; the topology is the caller's to close.
func NewCluster(ctx context.Context, tp *topo.Topology, bins ringnode.Binaries, dir, mode string, specs []NodeSpec, args ...string) (*Cluster, error) {
	c := &Cluster{Topo: tp, Nodes: map[string]*topo.Node{},
		Flannel: map[string]*topo.FlannelNode{}, Daemons: map[string]*ringnode.Daemon{}}
	if slices.ContainsFunc(specs, func(s NodeSpec) bool { return strings.HasPrefix(s.Addr, "192.168.60.") }) {
		if _, err := tp.AddRouter("router", []netip.Prefix{netip.MustParsePrefix("192.168.50.254/24"),
			netip.MustParsePrefix("192.168.60.254/24")}, topo.NodeOptions{}); err != nil {
			return nil, err
		}
	}
	var f strings.Builder
	fmt.Fprintf(&f, "tunnel: {mode: %s}\nnodes:\n", mode)
	for _, s := range specs {
		addr := netip.MustParsePrefix(s.Addr)
		cidrs := s.Pod4
		if s.Pod6 != "" {
			cidrs += ", " + s.Pod6
		}
		if s.Flannel {
			fn, err := tp.AddFlannelNode(s.Name, addr, netip.MustParsePrefix(s.Pod4), topo.FlannelOptions{})
			if err != nil {
				return nil, err
			}
			c.Flannel[s.Name], c.Nodes[s.Name] = fn, fn.Node
			if err := UplinkChecksums(ctx, fn.Node); err != nil {
				return nil, err
			}
			fmt.Fprintf(&f, "- {name: %s, address: %s, podCIDRs: [%s], backend: flannel, vtepMAC: %q}\n", s.Name, s.Addr, cidrs, fn.VtepMAC)
			continue
		}
		n, err := tp.AddNode(s.Name, addr, topo.NodeOptions{})
		if err != nil {
			return nil, err
		}
		c.Nodes[s.Name] = n
		fmt.Fprintf(&f, "- {name: %s, address: %s, podCIDRs: [%s]}\n", s.Name, s.Addr, cidrs)
	}
	c.File = filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(c.File, []byte(f.String()), 0o644); err != nil {
		return nil, err
	}
	// Flannel nodes learn the other nodes as flanneld would from their
	// annotations: pod CIDR, VtepMAC (a ringnet node's is its uplink's),
	// public IP.
	for _, fs := range specs {
		if !fs.Flannel {
			continue
		}
		for _, s := range specs {
			if s.Name == fs.Name {
				continue
			}
			n, vtep := c.Nodes[s.Name], c.Nodes[s.Name].UplinkMAC
			if s.Flannel {
				vtep = c.Flannel[s.Name].VtepMAC
			}
			if err := c.Flannel[fs.Name].AddPeer(netip.MustParsePrefix(s.Pod4), vtep, n.Address.Addr()); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range specs {
		if s.Flannel {
			continue
		}
		d, err := ringnode.Start(ctx, bins, c.Nodes[s.Name], ringnode.Options{Cluster: c.File, Args: args})
		if err != nil {
			return nil, errors.Join(err, c.Stop())
		}
		c.Daemons[s.Name] = d
		c.Order = append(c.Order, s.Name)
	}
	for name, d := range c.Daemons {
		for _, s := range specs {
			if s.Name != name {
				if err := d.WaitLog(ctx, `resolved" node=`+s.Name+" "); err != nil {
					return nil, errors.Join(err, c.Stop())
				}
			}
		}
	}
	return c, nil
}

// UplinkChecksums makes a kernel node's uplink complete the checksums the
// kernel leaves to the device: the uplink veth stands in for a NIC, which
// completes them in hardware, while a veth passes them on unfinished, inside
// a VXLAN packet too, and the packet arrives at a ringnet node (which reads
// the wire) with a wrong checksum. Turning tx checksumming off makes the
// kernel finish them in software before the veth.
func UplinkChecksums(ctx context.Context, n *topo.Node) error {
	_, err := n.Output(ctx, "ethtool", "-K", topo.Uplink, "tx", "off")
	return err
}

// Replace writes data over the cluster file and has every ringnetd reload
// it, in the order they started; the error names the first daemon that
// refused it (ringnetd keeps its cluster as it was then).
func (c *Cluster) Replace(data []byte) error {
	for i, name := range c.Order {
		d := c.Daemons[name]
		var err error
		if i == 0 {
			err = d.ReplaceCluster(data)
		} else {
			err = d.Reload()
		}
		if err != nil {
			return fmt.Errorf("ringnetd on %s: %w", name, err)
		}
	}
	return nil
}

// Stop stops every ringnetd (deleting its pods), last started first, and
// returns the first error; the rest of the cluster goes with its topology.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.Order) - 1; i >= 0; i-- {
		name := c.Order[i]
		if err := c.Daemons[name].Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop ringnetd on %s: %w", name, err))
		}
	}
	c.Order = nil
	return errors.Join(errs...)
}
