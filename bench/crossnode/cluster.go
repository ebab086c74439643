package main

// A cluster of nodes on one topology, as the end-to-end tests and the
// benchmark build it: ringnet nodes (ringnetd with a static cluster file)
// and nodes running Flannel's kernel VXLAN datapath.

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

// nodeSpec is a node of a cluster.
type nodeSpec struct {
	name, addr, pod4, pod6 string
	flannel                bool
}

// cluster is a running cluster.
type cluster struct {
	topo    *topo.Topology
	nodes   map[string]*topo.Node
	flannel map[string]*topo.FlannelNode
	daemons map[string]*ringnode.Daemon
	order   []string // the ringnet nodes, in the order their daemons started
	file    string
}

// newCluster adds the nodes to tp (with a router for 192.168.60.0/24 if a
// node is there), writes the cluster file for mode into dir, peers every
// Flannel node with every other node and starts ringnetd on every ringnet
// node, waiting until each has resolved its peers. On error the daemons it
// started are stopped; the topology is the caller's to close.
func newCluster(ctx context.Context, tp *topo.Topology, bins ringnode.Binaries, dir, mode string, specs []nodeSpec, args ...string) (*cluster, error) {
	c := &cluster{topo: tp, nodes: map[string]*topo.Node{},
		flannel: map[string]*topo.FlannelNode{}, daemons: map[string]*ringnode.Daemon{}}
	if slices.ContainsFunc(specs, func(s nodeSpec) bool { return strings.HasPrefix(s.addr, "192.168.60.") }) {
		if _, err := tp.AddRouter("router", []netip.Prefix{netip.MustParsePrefix("192.168.50.254/24"),
			netip.MustParsePrefix("192.168.60.254/24")}, topo.NodeOptions{}); err != nil {
			return nil, err
		}
	}
	var f strings.Builder
	fmt.Fprintf(&f, "tunnel: {mode: %s}\nnodes:\n", mode)
	for _, s := range specs {
		addr := netip.MustParsePrefix(s.addr)
		cidrs := s.pod4
		if s.pod6 != "" {
			cidrs += ", " + s.pod6
		}
		if s.flannel {
			fn, err := tp.AddFlannelNode(s.name, addr, netip.MustParsePrefix(s.pod4), topo.FlannelOptions{})
			if err != nil {
				return nil, err
			}
			c.flannel[s.name], c.nodes[s.name] = fn, fn.Node
			if err := uplinkChecksums(ctx, fn.Node); err != nil {
				return nil, err
			}
			fmt.Fprintf(&f, "- {name: %s, address: %s, podCIDRs: [%s], backend: flannel, vtepMAC: %q}\n", s.name, s.addr, cidrs, fn.VtepMAC)
			continue
		}
		n, err := tp.AddNode(s.name, addr, topo.NodeOptions{})
		if err != nil {
			return nil, err
		}
		c.nodes[s.name] = n
		fmt.Fprintf(&f, "- {name: %s, address: %s, podCIDRs: [%s]}\n", s.name, s.addr, cidrs)
	}
	c.file = filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(c.file, []byte(f.String()), 0o644); err != nil {
		return nil, err
	}
	// Flannel nodes learn the other nodes as flanneld would from their
	// annotations: pod CIDR, VtepMAC (a ringnet node's is its uplink's),
	// public IP.
	for _, fs := range specs {
		if !fs.flannel {
			continue
		}
		for _, s := range specs {
			if s.name == fs.name {
				continue
			}
			n, vtep := c.nodes[s.name], c.nodes[s.name].UplinkMAC
			if s.flannel {
				vtep = c.flannel[s.name].VtepMAC
			}
			if err := c.flannel[fs.name].AddPeer(netip.MustParsePrefix(s.pod4), vtep, n.Address.Addr()); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range specs {
		if s.flannel {
			continue
		}
		d, err := ringnode.Start(ctx, bins, c.nodes[s.name], ringnode.Options{Cluster: c.file, Args: args})
		if err != nil {
			return nil, errors.Join(err, c.stop())
		}
		c.daemons[s.name] = d
		c.order = append(c.order, s.name)
	}
	for name, d := range c.daemons {
		for _, s := range specs {
			if s.name != name {
				if err := d.WaitLog(ctx, `resolved" node=`+s.name+" "); err != nil {
					return nil, errors.Join(err, c.stop())
				}
			}
		}
	}
	return c, nil
}

// uplinkChecksums makes a kernel node's uplink complete the checksums the
// kernel leaves to the device: the uplink veth stands in for a NIC, which
// completes them in hardware, while a veth passes them on unfinished, inside
// a VXLAN packet too, and the packet arrives at a ringnet node (which reads
// the wire) with a wrong checksum. Turning tx checksumming off makes the
// kernel finish them in software before the veth.
func uplinkChecksums(ctx context.Context, n *topo.Node) error {
	_, err := n.Output(ctx, "ethtool", "-K", topo.Uplink, "tx", "off")
	return err
}

// stop stops every ringnetd (deleting its pods), last started first, and
// returns the first error; the rest of the cluster goes with its topology.
func (c *cluster) stop() error {
	var errs []error
	for i := len(c.order) - 1; i >= 0; i-- {
		name := c.order[i]
		if err := c.daemons[name].Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop ringnetd on %s: %w", name, err))
		}
	}
	c.order = nil
	return errors.Join(errs...)
}
