package topo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// FlannelVXLAN is the VXLAN device of a Flannel-style node, as Flannel
	// names it for VNI 1.
	FlannelVXLAN = "flannel.1"
	// FlannelBridge is the pods' bridge of a Flannel-style node (the CNI
	// bridge plugin's default name).
	FlannelBridge = "cni0"
	// FlannelPort is the UDP port of Flannel's vxlan backend (the Linux
	// default, not IANA's 4789).
	FlannelPort = 8472
	// FlannelVNI is the VXLAN network identifier of Flannel's default network.
	FlannelVNI = 1
	// vxlanOverhead is what VXLAN over IPv4 adds: outer IPv4, UDP, VXLAN and
	// inner Ethernet headers; Flannel takes it off the uplink MTU.
	vxlanOverhead = 20 + 8 + 8 + 14
)

// FlannelOptions configure a Flannel-style node. The zero value means
// defaults.
type FlannelOptions struct {
	NodeOptions
	VtepMAC net.HardwareAddr // MAC of flannel.1; default: random, locally administered
}

// FlannelNode is a node running the kernel datapath of Flannel's vxlan
// backend, the same as Flannel's flanneld and the CNI bridge plugin build:
//
//	ip link add flannel.1 address <VtepMAC> type vxlan id 1 dstport 8472 \
//	        local <node IP> dev uplink0 nolearning
//	ip link set flannel.1 mtu <uplink MTU - 50>
//	ip addr add <pod subnet>.0/32 dev flannel.1; ip link set flannel.1 up
//	ip link add cni0 type bridge; ip addr add <pod subnet>.1/24 dev cni0
//
// Pods hang off cni0; AddPeer routes another node's pod subnet over
// flannel.1.
type FlannelNode struct {
	*Node
	VXLAN    string           // "flannel.1"
	VtepMAC  net.HardwareAddr // MAC of flannel.1, what peers put in their neighbour and FDB entries
	VXLANMTU int              // MTU of flannel.1, cni0 and the pods
	PodCIDR  netip.Prefix     // the node's pod subnet, masked
	Bridge   string           // "cni0", PodCIDR's first host address on it
	Pods     []*Pod           // in creation order; appended by AddPod
}

// Pod is a network namespace with eth0 on a Flannel-style node's cni0.
type Pod struct {
	Name     string
	NS       string           // namespace name, "<id>-<node>-<pod>"
	Iface    string           // "eth0"
	IPv4     netip.Addr       // on eth0, with the pod subnet's length
	MAC      net.HardwareAddr // of eth0
	HostVeth string           // the node end of the veth, in cni0, in the node's namespace
	Node     *FlannelNode
}

// AddFlannelNode adds a node at addr (IPv4) that carries Flannel's kernel
// datapath for the pod subnet podCIDR (IPv4, e.g. 10.244.1.0/24).
func (t *Topology) AddFlannelNode(name string, addr, podCIDR netip.Prefix, opts FlannelOptions) (*FlannelNode, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := t.addFlannelNode(name, addr, podCIDR, opts)
	if err != nil {
		return nil, fmt.Errorf("add flannel node %s: %w", name, err)
	}
	return f, nil
}

func (t *Topology) addFlannelNode(name string, addr, podCIDR netip.Prefix, opts FlannelOptions) (*FlannelNode, error) {
	if !addr.Addr().Is4() || !podCIDR.Addr().Is4() {
		return nil, fmt.Errorf("node %s, pods %s: Flannel's vxlan backend here is IPv4", addr, podCIDR)
	}
	podCIDR = podCIDR.Masked()
	if podCIDR.Bits() > 30 {
		return nil, fmt.Errorf("pod subnet %s: want /30 or larger", podCIDR)
	}
	mac := opts.VtepMAC
	if mac == nil {
		mac = randomMAC()
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("vtep MAC %s: want 6 bytes", mac)
	}
	n, err := t.addNode(name, []netip.Prefix{addr}, opts.NodeOptions, false)
	if err != nil {
		return nil, err
	}
	f := &FlannelNode{
		Node: n, VXLAN: FlannelVXLAN, VtepMAC: mac, VXLANMTU: n.MTU - vxlanOverhead,
		PodCIDR: podCIDR, Bridge: FlannelBridge,
	}
	h := n.nl
	up, err := h.LinkByName(Uplink)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Uplink, err)
	}

	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.MTU = FlannelVXLAN, mac, f.VXLANMTU
	vx := &netlink.Vxlan{
		LinkAttrs:    la,
		VxlanId:      FlannelVNI,
		VtepDevIndex: up.Attrs().Index,
		SrcAddr:      addr.Addr().AsSlice(),
		Port:         FlannelPort,
		Learning:     false, // nolearning: peers come from AddPeer only
	}
	if err := h.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("add %s: %w", FlannelVXLAN, err)
	}
	if err := addAddr(h, vx, netip.PrefixFrom(podCIDR.Addr(), 32)); err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(vx); err != nil {
		return nil, fmt.Errorf("%s up: %w", FlannelVXLAN, err)
	}

	la = netlink.NewLinkAttrs()
	la.Name, la.MTU = FlannelBridge, f.VXLANMTU
	br := &netlink.Bridge{LinkAttrs: la}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add %s: %w", FlannelBridge, err)
	}
	if err := addAddr(h, br, netip.PrefixFrom(podCIDR.Addr().Next(), podCIDR.Bits())); err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("%s up: %w", FlannelBridge, err)
	}
	return f, nil
}

// randomMAC returns a random unicast, locally administered MAC.
func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	rand.Read(m)
	m[0] = m[0]&^0x01 | 0x02
	return m
}

// AddPod adds a pod namespace "<node ns>-<name>" whose eth0 is a veth into
// cni0, with the next free address of the pod subnet (from .2), a default
// route through cni0's address, and the MTU of flannel.1.
func (f *FlannelNode) AddPod(name string) (*Pod, error) {
	t := f.t
	t.mu.Lock()
	defer t.mu.Unlock()
	p, err := f.addPod(name)
	if err != nil {
		return nil, fmt.Errorf("add pod %s on %s: %w", name, f.Name, err)
	}
	return p, nil
}

func (f *FlannelNode) addPod(name string) (*Pod, error) {
	t := f.t
	if t.closed {
		return nil, errors.New("topology closed")
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("pod name %q: want [a-z0-9][a-z0-9_.]*", name)
	}
	for _, p := range f.Pods {
		if p.Name == name {
			return nil, errors.New("name taken")
		}
	}
	gw := f.PodCIDR.Addr().Next()
	ip := gw
	for range len(f.Pods) + 1 {
		ip = ip.Next()
	}
	if !f.PodCIDR.Contains(ip.Next()) { // the last address is the broadcast
		return nil, fmt.Errorf("pod subnet %s is full", f.PodCIDR)
	}
	p := &Pod{
		Name: name, NS: f.NS + "-" + name, Iface: "eth0", IPv4: ip,
		HostVeth: fmt.Sprintf("veth%d", len(f.Pods)), Node: f,
	}
	nsh, err := t.addNetns(p.NS)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	ph, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", p.NS, err)
	}
	defer ph.Close()

	h := f.nl
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = p.HostVeth, f.VXLANMTU
	veth := netlink.NewVeth(la)
	veth.PeerName, veth.PeerNamespace = p.Iface, netlink.NsFd(nsh)
	if err := h.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("add veth %s to %s: %w", p.HostVeth, p.Iface, err)
	}
	br, err := h.LinkByName(f.Bridge)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Bridge, err)
	}
	if err := h.LinkSetMaster(veth, br); err != nil {
		return nil, fmt.Errorf("%s into %s: %w", p.HostVeth, f.Bridge, err)
	}
	if err := h.LinkSetUp(veth); err != nil {
		return nil, fmt.Errorf("%s up: %w", p.HostVeth, err)
	}

	if err := linkUp(ph, "lo"); err != nil {
		return nil, err
	}
	eth, err := ph.LinkByName(p.Iface)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", p.Iface, p.NS, err)
	}
	p.MAC = eth.Attrs().HardwareAddr
	if err := addAddr(ph, eth, netip.PrefixFrom(ip, f.PodCIDR.Bits())); err != nil {
		return nil, err
	}
	if err := ph.LinkSetUp(eth); err != nil {
		return nil, fmt.Errorf("%s up: %w", p.Iface, err)
	}
	if err := addDefaultRoute(ph, eth, gw); err != nil {
		return nil, err
	}
	f.Pods = append(f.Pods, p)
	return p, nil
}

// AddPeer routes another node's pod subnet over flannel.1, as flanneld does
// when it learns of that node:
//
//	ip route add <podCIDR> via <podCIDR>.0 dev flannel.1 onlink
//	ip neigh add <podCIDR>.0 lladdr <vtepMAC> dev flannel.1 nud permanent
//	bridge fdb append <vtepMAC> dev flannel.1 dst <nodeIP> self permanent
func (f *FlannelNode) AddPeer(podCIDR netip.Prefix, vtepMAC net.HardwareAddr, nodeIP netip.Addr) error {
	t := f.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := f.addPeer(podCIDR, vtepMAC, nodeIP); err != nil {
		return fmt.Errorf("peer %s at %s on %s: %w", podCIDR, nodeIP, f.Name, err)
	}
	return nil
}

func (f *FlannelNode) addPeer(podCIDR netip.Prefix, vtepMAC net.HardwareAddr, nodeIP netip.Addr) error {
	if f.t.closed {
		return errors.New("topology closed")
	}
	if !podCIDR.Addr().Is4() || !nodeIP.Is4() {
		return errors.New("want IPv4")
	}
	podCIDR = podCIDR.Masked()
	h := f.nl
	vx, err := h.LinkByName(f.VXLAN)
	if err != nil {
		return fmt.Errorf("%s: %w", f.VXLAN, err)
	}
	idx := vx.Attrs().Index
	route := &netlink.Route{
		LinkIndex: idx, Dst: ipNet(podCIDR), Gw: podCIDR.Addr().AsSlice(),
		Flags: int(netlink.FLAG_ONLINK),
	}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	arp := &netlink.Neigh{
		LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: podCIDR.Addr().AsSlice(), HardwareAddr: vtepMAC,
	}
	if err := h.NeighAdd(arp); err != nil {
		return fmt.Errorf("neighbour: %w", err)
	}
	fdb := &netlink.Neigh{
		LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
		Flags: netlink.NTF_SELF, IP: nodeIP.AsSlice(), HardwareAddr: vtepMAC,
	}
	if err := h.NeighAppend(fdb); err != nil {
		return fmt.Errorf("fdb: %w", err)
	}
	return nil
}

// Peer makes f and o reach each other's pods: each adds the other as a peer.
func (f *FlannelNode) Peer(o *FlannelNode) error {
	if err := f.AddPeer(o.PodCIDR, o.VtepMAC, o.Address.Addr()); err != nil {
		return err
	}
	return o.AddPeer(f.PodCIDR, f.VtepMAC, f.Address.Addr())
}

// Command returns a command that runs inside the pod's namespace.
func (p *Pod) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return Command(ctx, p.NS, name, args...)
}

// Output runs a command inside the pod's namespace; see Output.
func (p *Pod) Output(ctx context.Context, name string, args ...string) (string, error) {
	return Output(ctx, p.NS, name, args...)
}

// Do runs fn inside the pod's namespace; see Do.
func (p *Pod) Do(fn func() error) error { return Do(p.NS, fn) }
