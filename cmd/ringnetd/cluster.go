package main

// Cross-node: the cluster file, the uplink, and the routes to the other
// nodes' pods, kept current as the underlay's neighbours resolve.

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/underlay"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/slowpath"
	"github.com/ringnet/ringnet/tables/route"
)

// clusterFlags are the flags of cross-node operation.
type clusterFlags struct {
	path   string
	node   string
	uplink string
}

func addClusterFlags(fs *flag.FlagSet) *clusterFlags {
	c := &clusterFlags{}
	fs.StringVar(&c.path, "cluster", "", `static cluster file: the nodes, their underlay addresses and pod CIDRs, and the tunnel mode ("default": the embedded example cluster); enables cross-node forwarding through --uplink`)
	fs.StringVar(&c.node, "node", "", "this node's name in the cluster file (default: the host name)")
	fs.StringVar(&c.uplink, "uplink", "", "the device other nodes are reached through (default: the one holding this node's address in the cluster file)")
	return c
}

// crossNode is this node's place in the cluster.
type crossNode struct {
	c      *cluster.Cluster
	self   *cluster.Node
	uplink *net.Interface
	peers  []pipeline.Peer        // from the file; MACs are filled in a copy as they resolve
	macs   map[netip.Addr][6]byte // last published next-hop MACs, by peer address
	table  *route.Table
	mtu    int // pods' MTU: the uplink's less the largest tunnel overhead in use
}

// loadCluster reads the cluster file and finds this node and its uplink.
// It returns nil without --cluster.
func loadCluster(cf *clusterFlags) (*crossNode, error) {
	if cf.path == "" {
		if cf.node != "" || cf.uplink != "" {
			return nil, errors.New("--node and --uplink need --cluster")
		}
		return nil, nil
	}
	var c *cluster.Cluster
	var err error
	if cf.path == "default" {
		c, err = cluster.Parse(cluster.Default)
	} else {
		c, err = cluster.Load(cf.path)
	}
	if err != nil {
		return nil, fmt.Errorf("--cluster: %w", err)
	}
	name := cf.node
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("--node not given and no host name: %w", err)
		}
	}
	self, ok := c.Node(name)
	if !ok {
		var names []string
		for _, n := range c.Nodes {
			names = append(names, n.Name)
		}
		return nil, fmt.Errorf("--node %q is not in the cluster file (its nodes: %v)", name, names)
	}
	if self.Backend != cluster.BackendRingnet {
		return nil, fmt.Errorf("node %s has backend %q in the cluster file; ringnetd runs ringnet nodes", name, self.Backend)
	}
	x := &crossNode{c: c, self: self}
	if x.uplink, err = findUplink(cf.uplink, self.Address.Addr()); err != nil {
		return nil, err
	}
	routes := map[netip.Prefix]route.NextHop{}
	x.mtu = x.uplink.MTU
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Name == self.Name {
			continue
		}
		t, err := c.TunnelBetween(self, n)
		if err != nil {
			return nil, fmt.Errorf("cluster file: %w", err)
		}
		p := pipeline.Peer{Name: n.Name, Address: n.Address.Addr(), Tunnel: t}
		if len(n.VtepMAC) == 6 {
			p.VtepMAC = [6]byte(n.VtepMAC)
		}
		for _, pfx := range n.PodCIDRs {
			routes[pfx] = route.NextHop{Kind: route.RemoteNode, Tunnel: t, Node: uint16(len(x.peers))}
		}
		x.peers = append(x.peers, p)
		x.mtu = min(x.mtu, pipeline.TunnelMTU(x.uplink.MTU, t))
	}
	if x.table, err = route.New(1, routes); err != nil {
		return nil, fmt.Errorf("cluster file: routes: %w", err)
	}
	return x, nil
}

// findUplink returns the named device, or the one holding addr.
func findUplink(name string, addr netip.Addr) (*net.Interface, error) {
	if name != "" {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("--uplink %s: %w", name, err)
		}
		return ifi, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for i := range ifs {
		addrs, _ := ifs[i].Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
					return &ifs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no device has this node's address %v (from the cluster file): give the node that address or name the device with --uplink", addr)
}

// apply gives the other flags what the cluster file says: this node's pod
// CIDRs (unless --pod-cidr names them, then they must agree) and, unless
// --mtu is given, the pods' MTU for the tunnels in use.
func (x *crossNode) apply(fs *flag.FlagSet, cni *cniFlags, log *slog.Logger) error {
	if len(cni.podCIDRs) == 0 {
		cni.podCIDRs = slices.Clone(x.self.PodCIDRs)
	} else {
		for _, p := range cni.podCIDRs {
			if !slices.Contains(x.self.PodCIDRs, p) {
				return fmt.Errorf("--pod-cidr %v is not node %s's in the cluster file (%v); leave --pod-cidr out to take the file's", p, x.self.Name, x.self.PodCIDRs)
			}
		}
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "mtu" })
	if !given {
		if err := fs.Set("mtu", strconv.Itoa(x.mtu)); err != nil {
			return err
		}
	} else if cni.mtu > x.mtu {
		log.Warn("--mtu is larger than the tunnels carry: pods' large packets get ICMP fragmentation needed", "mtu", cni.mtu, "tunnel_mtu", x.mtu)
	}
	return nil
}

// start attaches the uplink, routes the other nodes' pod CIDRs through
// the TAP (if there is a slow path) and keeps the peers' next-hop MACs
// current. The returned stop ends the neighbour tracking.
func (x *crossNode) start(dp *pipeline.Dataplane, sp *slowpath.SlowPath, log *slog.Logger) (stop func(), err error) {
	spec := pipeline.UplinkSpec{
		Ifname: x.uplink.Name, Address: x.self.Address.Addr(),
		VXLANPort: x.c.Tunnel.VXLANPort, VNI: x.c.Tunnel.VNI,
		VtepMAC: x.self.VtepMAC, LocalPrefixes: x.self.PodCIDRs,
	}
	port, err := dp.AddUplink(spec)
	if err != nil {
		return nil, err
	}
	vtep := x.self.VtepMAC
	if vtep == nil {
		vtep = x.uplink.HardwareAddr
	}
	log.Info("uplink attached", "uplink", spec.Ifname, "id", port.ID, "address", spec.Address, "vtep_mac", vtep.String(),
		"vxlan_port", spec.VXLANPort, "vni", spec.VNI, "pod_mtu", x.mtu)
	if err := dp.SetRoutes(pipeline.Routes{Table: x.table, Peers: x.peers}); err != nil {
		return nil, err
	}
	if sp != nil {
		var remote []netip.Prefix
		for i := range x.c.Nodes {
			if n := &x.c.Nodes[i]; n.Name != x.self.Name {
				remote = append(remote, n.PodCIDRs...)
			}
		}
		if err := sp.SetRemotePrefixes(remote); err != nil {
			return nil, err
		}
	}
	nb, err := underlay.Open(log)
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.Addr, len(x.peers))
	for i, p := range x.peers {
		addrs[i] = p.Address
		log.Info("peer", "node", p.Name, "address", p.Address, "tunnel", p.Tunnel)
	}
	nb.Track(addrs)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case m := <-nb.Updates():
				x.resolved(dp, m, log)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		nb.Close()
	}, nil
}

// resolved publishes the peers with the next-hop MACs in m.
func (x *crossNode) resolved(dp *pipeline.Dataplane, m map[netip.Addr]underlay.NextHop, log *slog.Logger) {
	peers := slices.Clone(x.peers)
	for i := range peers {
		p := &peers[i]
		nh, ok := m[p.Address]
		if !ok {
			continue
		}
		p.MAC = nh.MAC
		if p.VtepMAC == ([6]byte{}) {
			// A ringnet peer reads no inner MAC; its next hop's will do.
			p.VtepMAC = nh.MAC
		}
		if x.macs[p.Address] != p.MAC {
			log.Info("peer resolved", "node", p.Name, "next_hop_mac", net.HardwareAddr(p.MAC[:]).String(), "link", nh.Link)
		}
	}
	x.macs = map[netip.Addr][6]byte{}
	for _, p := range peers {
		x.macs[p.Address] = p.MAC
	}
	if err := dp.SetRoutes(pipeline.Routes{Table: x.table, Peers: peers}); err != nil {
		log.Error("publish routes", "err", err)
	}
}
