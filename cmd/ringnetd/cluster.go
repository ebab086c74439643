package main

// Cross-node: where the cluster comes from (a static file, reread on
// SIGHUP, or the Kubernetes API), the uplink, the routes to the other
// nodes' pods, the services and the NetworkPolicy, kept current as the
// cluster changes and the underlay's neighbours resolve.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	agentd "github.com/ringnet/ringnet/agent/daemon"
	"github.com/ringnet/ringnet/agent/k8s"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/agent/underlay"
	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/slowpath"
	"github.com/ringnet/ringnet/tables/route"
)

// clusterFlags are the flags of cross-node operation.
type clusterFlags struct {
	path       string
	kube       bool
	kubeconfig string
	apiServer  string
	node       string
	uplink     string
	address    string
	mode       string
	crossEncap string
	vxlanPort  uint
	vni        uint
	flannel    bool
	masquerade bool
	natPorts   portRange
	nodePorts  portRange
}

// portRange is a flag.Value for a "first-last" port range.
type portRange pipeline.PortRange

func (r *portRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

func (r *portRange) Set(s string) error {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(a, 10, 16)
	last, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil || first == 0 || first > last {
		return fmt.Errorf("%q is not a port range: want first-last, e.g. 30000-32767", s)
	}
	r.First, r.Last = uint16(first), uint16(last)
	return nil
}

func addClusterFlags(fs *flag.FlagSet) *clusterFlags {
	c := &clusterFlags{}
	fs.StringVar(&c.path, "cluster", "", `static cluster file: the nodes, their underlay addresses and pod CIDRs, and the tunnel mode ("default": the embedded example cluster); enables cross-node forwarding through --uplink`)
	fs.BoolVar(&c.kube, "kubernetes", false, "learn the cluster from the Kubernetes API (in-cluster config, or --kubeconfig): this node's pod CIDRs, the other nodes; publish this node's tunnel endpoint on its Node")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file for --kubernetes (default: in-cluster config)")
	fs.StringVar(&c.apiServer, "api-server", "", "with --kubernetes: the API server's host:port, instead of the kubernetes Service's cluster IP (needed without kube-proxy: nothing translates that address before ringnetd has read the Services)")
	fs.StringVar(&c.node, "node", "", "this node's name in the cluster file or Kubernetes (default: the host name)")
	fs.StringVar(&c.uplink, "uplink", "", "the device other nodes are reached through (default: the one holding this node's address)")
	fs.StringVar(&c.address, "node-address", "", "with --kubernetes: this node's underlay address with its subnet length, e.g. 192.168.50.1/24 (default: the first IPv4 address of --uplink)")
	fs.StringVar(&c.mode, "tunnel-mode", "vxlan", "with --kubernetes: vxlan, ipip, direct or crossSubnet (the cluster file has its own)")
	fs.StringVar(&c.crossEncap, "cross-subnet-encap", "vxlan", "with --kubernetes and --tunnel-mode crossSubnet: vxlan or ipip across subnets")
	fs.UintVar(&c.vxlanPort, "vxlan-port", cluster.DefaultVXLANPort, "with --kubernetes: VXLAN UDP port (Flannel's: 8472)")
	fs.UintVar(&c.vni, "vni", cluster.DefaultVNI, "with --kubernetes: VXLAN network identifier (Flannel's: 1)")
	fs.BoolVar(&c.flannel, "flannel-compatible", true, "with --kubernetes: also publish Flannel's node annotations, so Flannel (vxlan) nodes reach this one")
	fs.BoolVar(&c.masquerade, "masquerade", true, "masquerade pods' TCP and UDP to destinations outside the cluster (not a pod CIDR or node address) to this node's address")
	c.natPorts = portRange(pipeline.DefaultNATPorts)
	fs.Var(&c.natPorts, "nat-ports", "source ports of masqueraded connections, outside the node's net.ipv4.ip_local_port_range; the uplink hands replies to them to the fast path")
	c.nodePorts = portRange(pipeline.DefaultNodePorts)
	fs.Var(&c.nodePorts, "node-port-range", "the cluster's NodePort range (kube-apiserver --service-node-port-range)")
	return c
}

// crossNode is this node's place in the cluster and what keeps the fast
// path's view of the other nodes current.
type crossNode struct {
	self   cluster.Node // this node; fixed for the process's life
	tunnel cluster.Tunnel
	uplink *net.Interface
	mtu    int // pods' MTU: the uplink's less the largest tunnel overhead in use

	static *cluster.Cluster // from --cluster, replaced by reload; nil with --kubernetes
	kube   k8s.Interface    // with --kubernetes
	flags  *clusterFlags
	svc    *serviceCompiler // made by start
	pol    *policyCompiler  // made by start

	policies agentd.Policies // what ringnet policy shows; pol publishes it

	dp  *pipeline.Dataplane
	sp  *slowpath.SlowPath
	m   *metrics.Metrics
	nb  *underlay.Neighbors
	log *slog.Logger

	mu    sync.Mutex // guards the rest: the cluster's last update and the MACs
	peers []pipeline.Peer
	table *route.Table
	gen   uint64
	macs  map[netip.Addr]underlay.NextHop

	lastLogged map[string][6]byte // peer name -> next-hop MAC last logged as resolved
}

// loadCluster reads the cluster's source and finds this node and its
// uplink. It returns nil without --cluster or --kubernetes.
func loadCluster(cf *clusterFlags, log *slog.Logger) (*crossNode, error) {
	switch {
	case cf.path != "" && cf.kube:
		return nil, errors.New("--cluster and --kubernetes are two sources of the cluster: give one")
	case cf.path == "" && !cf.kube:
		if cf.node != "" || cf.uplink != "" {
			return nil, errors.New("--node and --uplink need --cluster or --kubernetes")
		}
		return nil, nil
	}
	name := cf.node
	if name == "" {
		var err error
		if name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("--node not given and no host name: %w", err)
		}
	}
	x := &crossNode{flags: cf, log: log}
	if cf.path != "" {
		if err := x.loadFile(cf.path, name); err != nil {
			return nil, err
		}
	} else if err := x.loadKube(cf, name); err != nil {
		return nil, err
	}
	x.mtu = x.uplink.MTU - maxOverhead(x.tunnel, x.static)
	return x, nil
}

func (x *crossNode) loadFile(path, name string) error {
	c, self, err := readClusterFile(path, name)
	if err != nil {
		return err
	}
	if self.Backend != cluster.BackendRingnet {
		return fmt.Errorf("node %s has backend %q in the cluster file; ringnetd runs ringnet nodes", name, self.Backend)
	}
	x.static, x.self, x.tunnel = c, *self, c.Tunnel
	x.uplink, err = findUplink(x.flags.uplink, self.Address.Addr())
	return err
}

// readClusterFile reads the cluster file at path ("default": the embedded
// one) and finds node name in it. Its errors name the file (cluster.Load
// does) or --node.
func readClusterFile(path, name string) (*cluster.Cluster, *cluster.Node, error) {
	var c *cluster.Cluster
	var err error
	if path == "default" {
		c, err = cluster.Parse(cluster.Default)
	} else {
		c, err = cluster.Load(path)
	}
	if err != nil {
		return nil, nil, err
	}
	self, ok := c.Node(name)
	if !ok {
		var names []string
		for _, n := range c.Nodes {
			names = append(names, n.Name)
		}
		return nil, nil, fmt.Errorf("--node %q is not in the cluster file (its nodes: %v)", name, names)
	}
	return c, self, nil
}

// reload reads the cluster file again (SIGHUP) and applies its nodes,
// services and policies, if it parses and validates, and this node's own
// entry and the tunnel are as they were (the uplink, the pods' addresses
// and MTU were set from them at start: changing them takes a restart).
// Otherwise it changes nothing, and its error says so and why. A file
// that no longer lists any policy stops NetworkPolicy enforcement. It
// runs on the main goroutine, as start did.
func (x *crossNode) reload() error {
	c, svcs, pols, err := x.readReload()
	if err != nil {
		return fmt.Errorf("%w; nothing changed", err)
	}
	if err := x.update(c); err != nil {
		return fmt.Errorf("apply the nodes: %w", err)
	}
	x.static = c
	if o := x.uplink.MTU - maxOverhead(x.tunnel, c); o < x.mtu {
		x.log.Warn("the cluster file's nodes need a smaller pod MTU than this node hands out (a Flannel node joined: VXLAN to it); "+
			"restart ringnetd to hand out the smaller one (pods made earlier keep theirs)", "pod_mtu", x.mtu, "tunnel_mtu", o)
	}
	if err := x.svc.publish(svcs); err != nil {
		return fmt.Errorf("the nodes are applied, the services and policies not: %w", err)
	}
	if err := x.pol.applyFile(pols); err != nil {
		return fmt.Errorf("the nodes and services are applied, the policies not: %w", err)
	}
	return nil
}

// readReload reads and checks the cluster file for reload, and compiles
// its services and policies, changing nothing.
func (x *crossNode) readReload() (*cluster.Cluster, *compiledServices, *compiledPolicy, error) {
	if x.static == nil {
		return nil, nil, nil, errors.New("the cluster comes from the Kubernetes API, not a file")
	}
	c, self, err := readClusterFile(x.flags.path, x.self.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	if !sameNode(self, &x.self) {
		return nil, nil, nil, fmt.Errorf("this node's own entry (%s) changed: its address, pod CIDRs, backend and vtepMAC are applied at start only; restore it, or restart ringnetd", x.self.Name)
	}
	if c.Tunnel != x.tunnel {
		return nil, nil, nil, fmt.Errorf("the tunnel section changed (%+v, was %+v): it is applied at start only; restore it, or restart ringnetd", c.Tunnel, x.tunnel)
	}
	svcs, err := x.svc.compile(c.Services)
	if err != nil {
		return nil, nil, nil, err
	}
	pols, err := x.pol.compileFile(c)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, svcs, pols, nil
}

// policyView is what ringnet policy shows; nil without a cluster.
func (x *crossNode) policyView() *agentd.Policies {
	if x == nil {
		return nil
	}
	return &x.policies
}

// sameNode reports whether a and b are the same node as far as the
// dataplane is concerned.
func sameNode(a, b *cluster.Node) bool {
	return a.Name == b.Name && a.Address == b.Address && slices.Equal(a.PodCIDRs, b.PodCIDRs) &&
		a.Backend == b.Backend && bytes.Equal(a.VtepMAC, b.VtepMAC)
}

func (x *crossNode) loadKube(cf *clusterFlags, name string) error {
	x.tunnel = cluster.Tunnel{Mode: cluster.Mode(cf.mode), CrossSubnetEncap: cluster.Mode(cf.crossEncap),
		VXLANPort: uint16(cf.vxlanPort), VNI: uint32(cf.vni)}
	if x.tunnel.Mode != cluster.ModeCrossSubnet {
		x.tunnel.CrossSubnetEncap = ""
	}
	if cf.vxlanPort == 0 || cf.vxlanPort > 0xffff || cf.vni == 0 || cf.vni > 1<<24-1 {
		return fmt.Errorf("--vxlan-port %d / --vni %d out of range", cf.vxlanPort, cf.vni)
	}
	x.self = cluster.Node{Name: name, Backend: cluster.BackendRingnet}
	var err error
	if cf.address != "" {
		if x.self.Address, err = netip.ParsePrefix(cf.address); err != nil || !x.self.Address.Addr().Is4() {
			return fmt.Errorf("--node-address %q is not an IPv4 address with its subnet length (e.g. 192.168.50.1/24)", cf.address)
		}
		if x.uplink, err = findUplink(cf.uplink, x.self.Address.Addr()); err != nil {
			return err
		}
	} else {
		if cf.uplink == "" {
			return errors.New("--kubernetes needs --uplink or --node-address to know the node's underlay address")
		}
		if x.uplink, err = findUplink(cf.uplink, netip.Addr{}); err != nil {
			return err
		}
		if x.self.Address, err = firstIPv4(x.uplink); err != nil {
			return err
		}
	}
	if x.kube, err = k8s.Client(cf.kubeconfig, cf.apiServer); err != nil {
		return fmt.Errorf("--kubernetes: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	x.log.Info("waiting for this node's pod CIDRs", "node", name)
	if x.self.PodCIDRs, err = k8s.PodCIDRs(ctx, x.kube, name); err != nil {
		return fmt.Errorf("node %s's pod CIDRs (spec.podCIDRs, set by the controller manager's --allocate-node-cidrs): %w", name, err)
	}
	return nil
}

// maxOverhead is the largest tunnel overhead this node may use: the
// mode's encapsulation, and VXLAN if any node is (or may be) a Flannel
// node.
func maxOverhead(t cluster.Tunnel, static *cluster.Cluster) int {
	over := map[cluster.Mode]int{cluster.ModeVXLAN: encap.VXLANOverhead, cluster.ModeIPIP: encap.IPIPOverhead}
	o := over[t.Mode]
	if t.Mode == cluster.ModeCrossSubnet {
		o = over[t.CrossSubnetEncap]
	}
	if static == nil {
		return o // Kubernetes: a Flannel node joining later gets ICMP fragmentation needed
	}
	for _, n := range static.Nodes {
		if n.Backend == cluster.BackendFlannel {
			o = max(o, encap.VXLANOverhead)
		}
	}
	return o
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
	return nil, fmt.Errorf("no device has this node's address %v: give the node that address or name the device with --uplink", addr)
}

// firstIPv4 is the first IPv4 address of ifi, with its prefix length.
func firstIPv4(ifi *net.Interface) (netip.Prefix, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			ones, _ := n.Mask.Size()
			ip, _ := netip.AddrFromSlice(n.IP.To4())
			return netip.PrefixFrom(ip, ones), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("--uplink %s has no IPv4 address: give --node-address", ifi.Name)
}

// apply gives the other flags what the cluster says: this node's pod
// CIDRs (unless --pod-cidr names them, then they must agree) and, unless
// --mtu is given, the pods' MTU for the tunnels in use.
func (x *crossNode) apply(fs *flag.FlagSet, cni *cniFlags, log *slog.Logger) error {
	if len(cni.podCIDRs) == 0 {
		cni.podCIDRs = slices.Clone(x.self.PodCIDRs)
	} else {
		for _, p := range cni.podCIDRs {
			if !slices.Contains(x.self.PodCIDRs, p) {
				return fmt.Errorf("--pod-cidr %v is not node %s's (%v); leave --pod-cidr out to take the cluster's", p, x.self.Name, x.self.PodCIDRs)
			}
		}
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "mtu" })
	if f := fs.Lookup("frame-size"); f != nil {
		if size, err := strconv.ParseUint(f.Value.String(), 10, 32); err == nil && x.mtu > pipeline.MaxMTU(uint32(size)) {
			log.Info("pod MTU capped by the AF_XDP frame size", "tunnel_mtu", x.mtu, "frame_size", size, "pod_mtu", pipeline.MaxMTU(uint32(size)))
			x.mtu = pipeline.MaxMTU(uint32(size))
		}
	}
	if !given {
		if err := fs.Set("mtu", strconv.Itoa(x.mtu)); err != nil {
			return err
		}
	} else if cni.mtu > x.mtu {
		log.Warn("--mtu is larger than the tunnels carry: pods' large packets get ICMP fragmentation needed", "mtu", cni.mtu, "tunnel_mtu", x.mtu)
	}
	return nil
}

// start attaches the uplink, starts tracking the peers' next hops and
// follows the cluster, its nodes, services and policies: from a file at
// start (and on SIGHUP: reload), from Kubernetes as it changes. The
// returned stop ends it all but the uplink (the dataplane's Close
// detaches that).
func (x *crossNode) start(dp *pipeline.Dataplane, sp *slowpath.SlowPath, m *metrics.Metrics) (stop func(), err error) {
	x.dp, x.sp, x.m = dp, sp, m
	spec := pipeline.UplinkSpec{
		Ifname: x.uplink.Name, Address: x.self.Address.Addr(),
		VXLANPort: x.tunnel.VXLANPort, VNI: x.tunnel.VNI,
		VtepMAC: x.self.VtepMAC, LocalPrefixes: x.self.PodCIDRs,
		NodePorts: pipeline.PortRange(x.flags.nodePorts),
	}
	port, err := dp.AddUplink(spec)
	if err != nil {
		return nil, err
	}
	vtep := x.self.VtepMAC
	if vtep == nil {
		vtep = x.uplink.HardwareAddr
	}
	x.log.Info("uplink attached", "uplink", spec.Ifname, "id", port.ID, "address", spec.Address, "vtep_mac", vtep.String(),
		"vxlan_port", spec.VXLANPort, "vni", spec.VNI, "pod_mtu", x.mtu)
	if x.nb, err = underlay.Open(x.log); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		x.nb.Close() // ends the Updates loop; Track after it is a no-op
		wg.Wait()
	}
	wg.Go(func() {
		for m := range x.nb.Updates() {
			x.mu.Lock()
			x.macs = m
			x.publishLocked()
			x.mu.Unlock()
		}
	})
	x.svc = &serviceCompiler{self: &x.self, dp: dp, sp: sp, m: m, log: x.log}
	x.pol = &policyCompiler{dp: dp, m: m, log: x.log, view: &x.policies}
	wg.Go(func() { sweepConntrack(ctx, dp) })
	if x.static != nil {
		if err := x.update(x.static); err != nil {
			stop()
			return nil, err
		}
		svcs, err := x.svc.compile(x.static.Services)
		if err == nil {
			err = x.svc.publish(svcs)
		}
		var pols *compiledPolicy
		if err == nil {
			pols, err = x.pol.compileFile(x.static)
		}
		if err == nil {
			err = x.pol.applyFile(pols)
		}
		if err != nil {
			stop()
			return nil, err
		}
		return stop, nil
	}
	if err := k8s.Register(ctx, x.kube, x.self.Name, k8s.Registration{Address: x.self.Address, VtepMAC: vtep,
		VNI: x.tunnel.VNI, FlannelCompatible: x.flags.flannel}); err != nil {
		stop()
		return nil, fmt.Errorf("register node %s: %w", x.self.Name, err)
	}
	src := k8s.New(x.kube, k8s.Options{NodeName: x.self.Name, Tunnel: x.tunnel, Log: x.log})
	wg.Go(func() {
		err := src.Run(ctx, func(c *cluster.Cluster, first, last time.Time) {
			if err := x.update(c); err != nil {
				x.log.Error("cluster update", "err", err)
				return
			}
			d := time.Since(first)
			x.m.ObserveConvergence(d)
			x.log.Info("cluster published", "nodes", len(c.Nodes), "event_to_table", d)
		})
		if err != nil && ctx.Err() == nil {
			x.log.Error("Kubernetes source stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := src.RunPolicy(ctx, x.pol.update); err != nil && ctx.Err() == nil {
			x.log.Error("NetworkPolicy source stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := src.RunServices(ctx, x.svc.update); err != nil && ctx.Err() == nil {
			x.log.Error("Services source stopped", "err", err)
		}
	})
	return stop, nil
}

// update makes c the cluster: the other nodes' pod CIDRs become routes
// to them, routed to the TAP for the node's own traffic, and their
// addresses are tracked for their next hops.
func (x *crossNode) update(c *cluster.Cluster) error {
	start := time.Now()
	defer func() { x.m.ObserveCompile(time.Since(start)) }()
	self := x.self
	routes := map[netip.Prefix]route.NextHop{}
	var peers []pipeline.Peer
	var remote []netip.Prefix
	var addrs []netip.Addr
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Name == self.Name {
			continue
		}
		t, err := c.TunnelBetween(&self, n)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		p := pipeline.Peer{Name: n.Name, Address: n.Address.Addr(), Tunnel: t}
		if len(n.VtepMAC) == 6 {
			p.VtepMAC = [6]byte(n.VtepMAC)
		}
		for _, pfx := range n.PodCIDRs {
			routes[pfx] = route.NextHop{Kind: route.RemoteNode, Tunnel: t, Node: uint16(len(peers))}
		}
		remote = append(remote, n.PodCIDRs...)
		addrs = append(addrs, p.Address)
		peers = append(peers, p)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gen++
	table, err := route.New(x.gen, routes)
	if err != nil {
		return fmt.Errorf("cluster: routes: %w", err)
	}
	for _, p := range peers {
		if !slices.ContainsFunc(x.peers, func(q pipeline.Peer) bool { return q.Name == p.Name && q.Address == p.Address && q.Tunnel == p.Tunnel }) {
			x.log.Info("peer", "node", p.Name, "address", p.Address, "tunnel", p.Tunnel)
		}
	}
	for _, q := range x.peers {
		if !slices.ContainsFunc(peers, func(p pipeline.Peer) bool { return p.Name == q.Name }) {
			x.log.Info("peer removed", "node", q.Name, "address", q.Address)
		}
	}
	x.peers, x.table = peers, table
	if err := x.publishLocked(); err != nil {
		return err
	}
	x.nb.Track(addrs)
	if x.sp != nil {
		if err := x.sp.SetRemotePrefixes(remote); err != nil {
			return err
		}
	}
	return x.setMasquerade(c)
}

// setMasquerade publishes what egress masquerade leaves alone: every
// node's pod CIDRs and address.
func (x *crossNode) setMasquerade(c *cluster.Cluster) error {
	if !x.flags.masquerade {
		return nil
	}
	m := &pipeline.Masquerade{Except: slices.Clone(x.self.PodCIDRs)}
	for _, n := range c.Nodes {
		m.Except = append(m.Except, n.PodCIDRs...)
		m.Except = append(m.Except, netip.PrefixFrom(n.Address.Addr(), n.Address.Addr().BitLen()))
	}
	return x.dp.SetMasquerade(m)
}

// publishLocked publishes the peers with the next-hop MACs known. Caller
// holds x.mu.
func (x *crossNode) publishLocked() error {
	if x.table == nil {
		return nil
	}
	peers := slices.Clone(x.peers)
	for i := range peers {
		p := &peers[i]
		nh, ok := x.macs[p.Address]
		if !ok {
			continue
		}
		p.MAC = nh.MAC
		if p.VtepMAC == ([6]byte{}) {
			// A ringnet peer reads no inner MAC; its next hop's will do.
			p.VtepMAC = nh.MAC
		}
	}
	if err := x.dp.SetRoutes(pipeline.Routes{Table: x.table, Peers: peers}); err != nil {
		return fmt.Errorf("publish routes: %w", err)
	}
	for _, p := range peers {
		if p.MAC != ([6]byte{}) && x.lastLogged[p.Name] != p.MAC {
			x.log.Info("peer resolved", "node", p.Name, "next_hop_mac", net.HardwareAddr(p.MAC[:]).String(), "link", x.macs[p.Address].Link)
		}
	}
	x.lastLogged = map[string][6]byte{}
	for _, p := range peers {
		x.lastLogged[p.Name] = p.MAC
	}
	return nil
}
