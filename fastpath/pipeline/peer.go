package pipeline

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/route"
)

// UplinkSpec describes the node's uplink to the dataplane: the device other
// nodes are reached through, and this node's tunnel endpoint on it.
type UplinkSpec struct {
	Ifname string
	// Address is the node's underlay IPv4 address: the outer source of what
	// it encapsulates, and the outer destination of the tunnel traffic the
	// uplink's XDP program hands to the fast path.
	Address netip.Addr
	// VXLANPort and VNI are this cluster's VXLAN settings (defaults 8472 and
	// 1, Flannel's).
	VXLANPort uint16
	VNI       uint32
	// VtepMAC is this node's VXLAN MAC: the inner source MAC of the frames
	// it encapsulates, which Flannel nodes know it by (default: the
	// uplink's MAC).
	VtepMAC net.HardwareAddr
	// LocalPrefixes are this node's pod CIDRs. Frames for them arriving
	// unencapsulated from peers on the same subnet (direct routing) are the
	// fast path's; the rest of the uplink's traffic stays the kernel's.
	LocalPrefixes []netip.Prefix
	// NodePorts is the cluster's NodePort range (default
	// DefaultNodePorts): TCP, UDP and SCTP to the node's address on these
	// ports are the fast path's, as are replies to the connections it
	// masquerades (Config.NATPorts).
	NodePorts PortRange
}

// withDefaults fills in Flannel's VXLAN port and VNI where spec has none.
func (spec UplinkSpec) withDefaults() UplinkSpec {
	if spec.VXLANPort == 0 {
		spec.VXLANPort = encap.FlannelPort
	}
	if spec.VNI == 0 {
		spec.VNI = encap.FlannelVNI
	}
	if spec.NodePorts == (PortRange{}) {
		spec.NodePorts = DefaultNodePorts
	}
	return spec
}

// Peer is another node, as the fast path reaches it.
type Peer struct {
	Name    string       // for logs and status
	Address netip.Addr   // the peer's underlay IPv4 address (its tunnel endpoint)
	Tunnel  route.Tunnel // how its pods are reached from this node
	// VtepMAC is the inner destination MAC of VXLAN frames for the peer
	// (a Flannel node drops frames not addressed to its flannel.1 device).
	VtepMAC [6]byte
	// MAC is the underlay next hop's MAC (the peer's, or the gateway's when
	// it is on another subnet); zero while unresolved, and frames for the
	// peer are dropped as peer_unresolved until it is known.
	MAC [6]byte
}

// Routes is the rest of the cluster as the fast path sees it: which
// destinations belong to which peer node (RemoteNode next hops whose Node
// indexes Peers), and how each peer is reached. Other kinds of route are
// ignored for now: what is neither a local pod nor a peer's goes to the
// slow path as before.
type Routes struct {
	Table *route.Table
	Peers []Peer
}

// underlay is the compiled, immutable form of Routes plus the uplink it
// uses, read by workers once per step. Published with the uplink in the
// port set before it (see SetRoutes).
type underlay struct {
	routes    *route.Table
	peers     []peerHop
	vteps     map[[4]byte]struct{} // peers' addresses: the only accepted tunnel sources
	uplink    uint16               // port ID of the uplink
	local     [4]byte              // this node's underlay address
	uplinkMAC [6]byte
	vtepMAC   [6]byte // inner source MAC of VXLAN frames
	vx        encap.VXLAN
}

// peerHop is one peer, ready for the per-packet path.
type peerHop struct {
	tunnel  route.Tunnel
	vtepMAC [6]byte
	outer   encap.Outer // DstMAC is the underlay next hop's; zero: unresolved
	mtu     int         // the largest inner IP packet the tunnel carries
}

// tunnelOverhead is what each tunnel adds to a pod's IP packet on the
// underlay.
func tunnelOverhead(t route.Tunnel) int {
	switch t {
	case route.VXLAN:
		return encap.VXLANOverhead
	case route.IPIP:
		return encap.IPIPOverhead
	}
	return 0
}

// TunnelMTU is the largest IP packet a pod can send through a tunnel of
// kind t over an uplink of MTU uplinkMTU: what pods' MTUs are sized to.
func TunnelMTU(uplinkMTU int, t route.Tunnel) int { return uplinkMTU - tunnelOverhead(t) }

// SetRoutes publishes the cluster's routes. Routes to peers need the
// uplink (AddUplink first); with no RemoteNode route it may be absent.
func (d *Dataplane) SetRoutes(r Routes) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.publishUnderlay(r)
}

// publishUnderlay compiles r for the current uplink and publishes it.
// Caller holds d.mu.
func (d *Dataplane) publishUnderlay(r Routes) error {
	if r.Table == nil {
		r.Table, _ = route.New(0, nil)
	}
	up := d.uplinkPort()
	remote := false
	for pfx, nh := range r.Table.All() {
		if nh.Kind != route.RemoteNode {
			continue
		}
		remote = true
		if int(nh.Node) >= len(r.Peers) {
			return fmt.Errorf("route %v: peer %d of %d", pfx, nh.Node, len(r.Peers))
		}
	}
	if up == nil {
		if remote {
			return errors.New("dataplane: routes to peer nodes need the uplink: AddUplink first")
		}
		d.routes = r
		d.under.Store(nil)
		return nil
	}
	spec := up.uplink
	u := &underlay{
		routes: r.Table, uplink: up.ID, local: spec.Address.As4(), uplinkMAC: up.mac,
		vteps: make(map[[4]byte]struct{}, len(r.Peers)),
		vx:    encap.VXLAN{VNI: spec.VNI, Port: spec.VXLANPort},
	}
	u.vtepMAC = up.mac
	if len(spec.VtepMAC) == 6 {
		u.vtepMAC = [6]byte(spec.VtepMAC)
	}
	for i, p := range r.Peers {
		if !p.Address.Is4() {
			return fmt.Errorf("peer %d (%s): underlay address %v is not IPv4", i, p.Name, p.Address)
		}
		if p.Tunnel > route.IPIP {
			return fmt.Errorf("peer %d (%s): unknown tunnel %v", i, p.Name, p.Tunnel)
		}
		h := peerHop{
			tunnel: p.Tunnel, vtepMAC: p.VtepMAC,
			outer: encap.NewOuter(up.mac, p.MAC, u.local, p.Address.As4()),
			mtu:   TunnelMTU(up.mtu, p.Tunnel),
		}
		u.peers = append(u.peers, h)
		u.vteps[p.Address.As4()] = struct{}{}
	}
	d.routes = r
	d.under.Store(u)
	return nil
}

// uplinkPort returns the attached uplink, if any. Caller holds d.mu.
func (d *Dataplane) uplinkPort() *Port {
	for _, p := range d.ports.Load().ports {
		if p != nil && p.uplink != nil {
			return p
		}
	}
	return nil
}

// decapReason maps a decapsulation failure to the reason it is counted as.
var decapReason = [encap.NumErrors]stats.Reason{
	encap.Truncated:      stats.DecapTruncated,
	encap.NotIPv4:        stats.DecapNotIPv4,
	encap.BadIPHeader:    stats.DecapBadIPHeader,
	encap.IPOptions:      stats.DecapIPOptions,
	encap.Fragment:       stats.DecapFragment,
	encap.BadChecksum:    stats.DecapBadChecksum,
	encap.NotLocal:       stats.DecapNotLocal,
	encap.WrongProtocol:  stats.DecapWrongProtocol,
	encap.WrongPort:      stats.DecapWrongPort,
	encap.BadVXLANHeader: stats.DecapBadVXLANHeader,
	encap.WrongVNI:       stats.DecapWrongVNI,
	encap.InnerTruncated: stats.DecapInnerTruncated,
	encap.InnerVersion:   stats.DecapInnerVersion,
}

// toPeer decides the fate of a packet whose destination route names peer
// node idx: dropped while the peer is unresolved, answered with ICMP
// fragmentation needed (IPv6: packet too big) when it is too big for the
// tunnel, else its TTL is decremented (frames from pods) and the worker
// sends it to the peer (vTunnel, with f.peer set).
func (f *forwarder) toPeer(frame []byte, idx uint16, eps *endpoint.Table) (verdict, uint16, uint32, stats.Reason) {
	u, p := f.under, &f.p
	if int(idx) >= len(u.peers) {
		return vDrop, 0, 0, stats.NoRoute
	}
	ph := &u.peers[idx]
	if ph.outer.DstMAC == ([6]byte{}) {
		return vDrop, 0, 0, stats.PeerUnresolved
	}
	// The IP packet, not the frame: Ethernet padding after it is neither
	// measured against the tunnel's MTU nor carried.
	ip := frame[p.L3Off:]
	n := packet.IPv6Len + int(packet.IPv6(ip).PayloadLength())
	if p.EtherType == packet.EtherTypeIPv4 {
		n = int(packet.IPv4(ip).TotalLength())
	}
	if n > ph.mtu {
		if p.EtherType == packet.EtherTypeIPv4 && packet.IPv4(ip).Flags()&packet.IPv4FlagDontFragment == 0 {
			return vDrop, 0, 0, stats.TunnelTooBig
		}
		f.mtu = uint32(ph.mtu)
		return f.exception(frame, PuntFragNeeded)
	}
	if !f.fromHost {
		if p.TTL <= 1 {
			return f.exception(frame, PuntTTLExpired)
		}
		if ok, r := f.admit(eps); !ok {
			return vDrop, 0, 0, r
		}
		decrementTTL(frame, p)
	}
	f.peer = idx
	return vTunnel, 0, uint32(int(p.L3Off) + n), stats.ToPeer
}

func decrementTTL(frame []byte, p *packet.Parsed) {
	if p.EtherType == packet.EtherTypeIPv4 {
		packet.IPv4(frame[p.L3Off:]).DecrementTTL()
		return
	}
	packet.IPv6(frame[p.L3Off:]).SetHopLimit(p.TTL - 1)
}

// fromUplink takes a frame the uplink's XDP program redirected: tunnel
// traffic for this node, decapsulated after its outer headers and source
// are checked, or a frame routed directly to a local pod by a peer on the
// same subnet. It returns the verdict, the destination port, and where in
// frame the (inner) frame to deliver starts and ends.
func (f *forwarder) fromUplink(frame []byte, eps *endpoint.Table) (v verdict, out uint16, start, end uint32, r stats.Reason) {
	u := f.under
	if u == nil {
		return vDrop, 0, 0, 0, stats.UplinkUnexpected
	}
	start, end = 0, uint32(len(frame))
	outside := true // not tunnelled: routed directly by a peer, or from outside the cluster
	if len(frame) >= packet.EthernetLen+packet.IPv4MinLen && packet.Ethernet(frame).EtherType() == packet.EtherTypeIPv4 &&
		packet.IPv4(frame[packet.EthernetLen:]).Dst() == u.local {
		var inner, e int
		var src [4]byte
		var err encap.Error
		switch u.tunnel(frame) {
		case packet.ProtoUDP:
			inner, e, src, err = u.vx.Decap(frame, u.local)
		case packet.ProtoIPIP:
			inner, e, src, err = encap.DecapIPIP(frame, u.local)
		default:
			v, out, r = f.fromPeer(frame, eps, true)
			return v, out, start, end, r
		}
		if err != encap.OK {
			return vDrop, 0, 0, 0, decapReason[err]
		}
		if _, ok := u.vteps[src]; !ok {
			return vDrop, 0, 0, 0, stats.UnknownVTEP
		}
		start, end = uint32(inner), uint32(e)
		outside = false
	}
	v, out, r = f.fromPeer(frame[start:end], eps, outside)
	return v, out, start, end, r
}

// tunnel says how the IPv4 frame to this node's address is tunnelled:
// packet.ProtoUDP for VXLAN (UDP to the VXLAN port, or a UDP packet too
// short to tell, which decapsulation rejects), packet.ProtoIPIP for IPIP
// or IPv6 in IPv4, 0 for no tunnel (a NodePort, or a reply to a
// masqueraded connection).
func (u *underlay) tunnel(frame []byte) uint8 {
	ip := packet.IPv4(frame[packet.EthernetLen:])
	switch ip.Protocol() {
	case packet.ProtoIPIP, packet.ProtoIPv6InIPv4:
		return packet.ProtoIPIP
	case packet.ProtoUDP:
		off := packet.EthernetLen + ip.IHL()
		if len(frame) < off+packet.UDPLen || packet.UDP(frame[off:]).DstPort() == u.vx.Port {
			return packet.ProtoUDP
		}
	}
	return 0
}

// fromPeer delivers a frame from another node (decapsulated, or routed
// directly) to the local pod it is addressed to. Peers are trusted like
// the host: fragments and IP options are delivered as they are; but they
// are routed here, so the TTL is decremented. Nothing from a peer is
// answered, and only what the NAT step translated goes anywhere but a
// local pod: to another node, or to the host. outside says the frame was
// not tunnelled (see translate).
func (f *forwarder) fromPeer(frame []byte, eps *endpoint.Table, outside bool) (verdict, uint16, stats.Reason) {
	p := &f.p
	if m := packet.Decode(frame, p); m != packet.OK {
		return vDrop, 0, stats.Malformed(m)
	}
	switch {
	case p.HasVLAN:
		return vDrop, 0, stats.VLANTagged
	case p.EtherType == packet.EtherTypeARP:
		return vDrop, 0, stats.ARPIgnored
	case p.EtherType != packet.EtherTypeIPv4 && p.EtherType != packet.EtherTypeIPv6:
		return vDrop, 0, stats.UnknownEtherType
	case p.Dst.IsMulticast() || (p.EtherType == packet.EtherTypeIPv4 && p.Dst.As4() == f.bcast):
		return vDrop, 0, stats.Multicast
	}
	f.nat.looked = false
	if f.natOn {
		if r := f.translate(frame, eps, outside); r != stats.Forwarded {
			return vDrop, 0, r
		}
	}
	var ep endpoint.Endpoint
	var ok bool
	if p.EtherType == packet.EtherTypeIPv4 {
		ep, ok = eps.Lookup4(p.Dst.As4())
	} else {
		ep, ok = eps.Lookup(p.Dst)
	}
	if !ok {
		if f.nat.tracked && f.nat.conn.NATed() {
			return f.routeTranslated(frame, eps)
		}
		return vDrop, 0, stats.PeerNoPod
	}
	if p.TTL <= 1 {
		return vDrop, 0, stats.TTLExpired
	}
	if ok, r := f.admit(eps); !ok {
		return vDrop, 0, r
	}
	decrementTTL(frame, p)
	f.rewriteL2(frame, ep.MAC)
	return vForward, ep.Port, stats.FromPeer
}

// TableSizes reports the entries of the tables the workers read:
// endpoints (pod addresses), routes and peers. Not per packet.
func (d *Dataplane) TableSizes() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]int{"endpoints": d.endpoints.Load().Len(), "ports": 0, "peers": len(d.routes.Peers), "routes": 0}
	for _, p := range d.ports.Load().ports {
		if p != nil {
			m["ports"]++
		}
	}
	if d.routes.Table != nil {
		m["routes"] = d.routes.Table.Len()
	}
	return m
}

// Routes returns what the last SetRoutes published (Table is nil before
// the first), for the agent's views. The table is an immutable snapshot
// and shared; Peers is a copy. Not per packet: it takes the control-plane
// lock.
func (d *Dataplane) Routes() Routes {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.routes
	r.Peers = slices.Clone(r.Peers)
	return r
}

// Uplink returns the attached uplink's spec, with its defaults filled in
// (VXLAN port and VNI; VtepMAC is the one in use, the uplink's own MAC
// unless the spec named another), for the agent's views. Not per packet.
func (d *Dataplane) Uplink() (UplinkSpec, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.uplinkPort()
	if p == nil {
		return UplinkSpec{}, false
	}
	s := *p.uplink
	s.LocalPrefixes = slices.Clone(s.LocalPrefixes)
	if len(s.VtepMAC) == 6 {
		s.VtepMAC = slices.Clone(s.VtepMAC)
	} else {
		s.VtepMAC = net.HardwareAddr(slices.Clone(p.mac[:]))
	}
	return s, true
}

// EndpointInfo is one entry of the endpoint table as the agent shows it:
// a local pod's address, the port the fast path delivers it to, and the
// pod's MAC.
type EndpointInfo struct {
	Addr   netip.Addr
	Port   uint16 // the port's ID
	Ifname string // the port's host interface
	MAC    [6]byte
}

// Endpoints lists the endpoint table the workers read now, sorted by
// address (IPv4 first), with each entry's port's interface, for the
// agent's views. Not per packet: it takes the control-plane lock, under
// which the endpoint table and the port set change together.
func (d *Dataplane) Endpoints() []EndpointInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	ports := d.ports.Load().ports
	var out []EndpointInfo
	for a, ep := range d.endpoints.Load().All() {
		e := EndpointInfo{Addr: a, Port: ep.Port, MAC: ep.MAC}
		if int(ep.Port) < len(ports) && ports[ep.Port] != nil {
			e.Ifname = ports[ep.Port].Spec.Ifname
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b EndpointInfo) int { return a.Addr.Compare(b.Addr) })
	return out
}
