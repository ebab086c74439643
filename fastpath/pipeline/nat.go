package pipeline

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"slices"
	"time"

	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xdp"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/route"
	"github.com/ringnet/ringnet/tables/service"
)

// Services: the fast path is the node's load balancer (kube-proxy's job).
//
// A packet whose destination (address, protocol, port) is a service entry
// (a ClusterIP, the node's address with a NodePort, an external or
// LoadBalancer IP) and that belongs to no tracked connection opens one:
// the backend is the service's Maglev choice for the packet's flow hash,
// or the client's previous backend under session affinity, and the
// connection is tracked in the conntrack table with its translation:
//
//   - DNAT to the backend's address and port, always;
//   - SNAT of a pod reaching itself through its service (hairpin) to the
//     gateway's address, so that the reply comes back to the fast path
//     rather than staying inside the pod;
//   - SNAT of a client outside the cluster (a frame from the uplink that
//     was not tunnelled) of an External entry that is not Local
//     (externalTrafficPolicy Cluster) to the node's address and a port of
//     Config.NATPorts, so that the reply comes back through this node;
//     and likewise of the node itself (kubelet, host-network pods), whose
//     connections to services the slow path routes through the TAP: a
//     backend on another node then replies to a port the uplink hands to
//     the fast path.
//
// Every later packet of the connection, both ways, finds it in the table
// and is rewritten by it (the reply direction back to the service address
// and port the client used), addresses, ports and checksums, in place;
// then it is routed on its new destination like any packet. So the node
// that translates is the client's node (or for clients outside the
// cluster, the node they reached); a backend on another node sees the
// translated packet and its replies are tunnelled back to it.
//
// NetworkPolicy applies to the translated connection: the client against
// the backend pod (ingress on the backend's node, egress on the client's).
//
// Not translated: fragments after the first (from pods they are punted
// anyway), and ICMP errors about a translated connection (a backend's
// "port unreachable" reaches the client with the backend's address inside).

// DefaultNATPorts is the source port range of masqueraded connections
// (Config.NATPorts): above Linux's default ephemeral range (32768–60999),
// so the node's own connections never collide with them. The uplink's XDP
// program redirects TCP and UDP to the node's address in this range to the
// fast path.
var DefaultNATPorts = PortRange{First: 61000, Last: 65535}

// PortRange is an inclusive range of ports.
type PortRange = xdp.PortRange

// DefaultNodePorts is Kubernetes' default NodePort range
// (kube-apiserver --service-node-port-range): UplinkSpec.NodePorts.
var DefaultNodePorts = PortRange{First: 30000, Last: 32767}

// natTries is how many ports a masqueraded connection tries before it is
// dropped as nat_no_port.
const natTries = 32

// affinityProto is the protocol number of session affinity entries in
// their conntrack table (253: "use for experimentation"): no packet has
// it, and it picks the table's "other" timeout.
const affinityProto = 253

// SetServices publishes the services the fast path load-balances (nil:
// none). The first call with a table makes the connection tracking table,
// as SetPolicy does, and the session affinity table.
func (d *Dataplane) SetServices(t *service.Table) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t != nil {
		if err := d.conntrackLocked(); err != nil {
			return err
		}
		if d.aff.Load() == nil {
			// Affinity entries live as long as the longest timeout
			// Kubernetes allows; each service's own is checked against
			// the entry's last-seen time.
			n := max(1024, d.ctCapacity()/4)
			aff, err := conntrack.New(conntrack.Config{Capacity: n, Timeouts: conntrack.Timeouts{Other: service.MaxAffinity}})
			if err != nil {
				return err
			}
			d.aff.Store(aff)
		}
	}
	old := d.services.Swap(t)
	if ct := d.ct.Load(); ct != nil && old != nil {
		d.flushRemoved(ct, old, t)
	}
	return nil
}

// flushRemoved deletes the tracked UDP connections translated to a
// backend that left its service between snapshots old and t (nil: every
// backend left), as kube-proxy does: UDP has no end, so without this a
// client's flow would stay on the removed backend until it idles out;
// with it, the flow's next packet picks a backend afresh. Only those
// flows move: Maglev keeps the others' backends. TCP connections drain
// on their backend (a terminating pod still answers them; a gone one
// resets them).
func (d *Dataplane) flushRemoved(ct *conntrack.Table, old, t *service.Table) {
	type svcKey struct {
		vip   netip.Addr
		port  uint16
		proto uint8
	}
	gone := map[svcKey]map[service.Backend]bool{}
	for _, sp := range old.All() {
		if sp.Proto != packet.ProtoUDP {
			continue
		}
		var now []service.Backend
		if t != nil {
			if s, ok := t.Lookup(sp.VIP, sp.Proto, sp.Port); ok {
				now = s.Backends()
			}
		}
		for _, b := range sp.Backends {
			if !slices.Contains(now, b) {
				k := svcKey{sp.VIP, sp.Port, sp.Proto}
				if gone[k] == nil {
					gone[k] = map[service.Backend]bool{}
				}
				gone[k][b] = true
			}
		}
	}
	if len(gone) == 0 {
		return
	}
	var del []conntrack.Key
	ct.Range(d.ConntrackNow(), func(orig, reply conntrack.Key) bool {
		if orig.Proto != packet.ProtoUDP {
			return true
		}
		k := svcKey{netip.AddrFrom16(orig.Dst).Unmap(), orig.DstPort, orig.Proto}
		if gone[k][service.Backend{Addr: netip.AddrFrom16(reply.Src).Unmap(), Port: reply.SrcPort}] {
			del = append(del, orig)
		}
		return true
	})
	for _, k := range del {
		ct.Delete(k)
	}
}

// Services returns the published service table, nil if none: for the
// agent's views.
func (d *Dataplane) Services() *service.Table { return d.services.Load() }

// Affinity returns the session affinity table, nil until the first
// SetServices; the control plane sweeps it.
func (d *Dataplane) Affinity() *conntrack.Table { return d.aff.Load() }

// natState is what the NAT step leaves for the rest of the packet's way.
type natState struct {
	looked  bool           // translate looked the packet's connection up
	tracked bool           // and found it, or opened it: conn is valid
	conn    conntrack.Conn // the connection, as seen or inserted
}

// keyOf is the conntrack key of the parsed packet.
func keyOf(p *packet.Parsed) conntrack.Key {
	sport := p.SrcPort
	if p.IPProto == packet.ProtoICMP || p.IPProto == packet.ProtoICMPv6 {
		sport = p.DstPort // echo: the identifier both ways (conntrack.EchoKey); other ICMP: 0
	}
	return conntrack.KeyFrom(p.Src, p.Dst, sport, p.DstPort, p.IPProto)
}

// tracks reports whether packets of this batch take the conntrack lookup
// (services or masquerade, or NetworkPolicy).
func (f *forwarder) tracks() bool {
	return f.ct != nil && (f.natOn || f.pol != nil)
}

// preConn is a frame's connection as the worker's LookupBatch found it,
// before the frame was processed.
type preConn struct {
	key   *conntrack.Key // nil: none
	conn  *conntrack.Conn
	found bool
}

// lookupConn looks up the connection of key k of the frame being
// processed. If the worker looked it up ahead (f.pre, used once), the
// connection found is refreshed, since an earlier frame of the batch may
// have changed or removed it; if it is gone, or was not found (an earlier
// frame may have opened it since), or there is none ahead, it is a Lookup.
func (f *forwarder) lookupConn(k *conntrack.Key, now conntrack.Time) (c conntrack.Conn, ok bool) {
	pre := f.pre
	f.pre = preConn{}
	if pre.found && *pre.key == *k {
		c = *pre.conn
		if f.ct.Refresh(&c, now) {
			return c, true
		}
	}
	return f.ct.Lookup(*k, now)
}

// connKey is the key translate and admit will look frame's connection up
// by, if they will: not for frames that are not IP, do not decode, or are
// a later fragment. It decodes into f.peek, leaving f.p to process.
func (f *forwarder) connKey(frame []byte) (conntrack.Key, bool) {
	p := &f.peek
	if packet.Decode(frame, p) != packet.OK ||
		p.EtherType != packet.EtherTypeIPv4 && p.EtherType != packet.EtherTypeIPv6 ||
		p.Fragment && !p.FirstFragment {
		return conntrack.Key{}, false
	}
	return keyOf(p), true
}

// translate is the NAT step of a parsed IP packet, before it is routed,
// once services or masquerade are published: it finds the packet's
// connection and rewrites the packet by it, or opens the connection if
// the packet is for a service (masquerade opens its own, in notAPod). outside says the packet comes from a client outside the
// cluster (masqueraded for External, non-Local entries). It returns
// Forwarded, or the reason to drop the packet.
func (f *forwarder) translate(frame []byte, eps *endpoint.Table, outside bool) stats.Reason {
	p := &f.p
	f.nat = natState{}
	if (p.Fragment && !p.FirstFragment) || isICMPError(p) {
		return stats.Forwarded
	}
	now := conntrack.TimeOf(time.Duration(f.now))
	k := keyOf(p)
	f.nat.looked = true
	var ok bool
	if f.nat.conn, ok = f.lookupConn(&k, now); ok {
		f.nat.tracked = true
		f.ct.Update(&f.nat.conn, p.TCPFlags, now)
		if out := f.nat.conn.Out(); out != k {
			f.rewrite(frame, &out)
		}
		return stats.Forwarded
	}
	var svc *service.Service
	if f.svc == nil {
		return stats.Forwarded
	}
	svc, ok = f.svc.Lookup(p.Dst, p.IPProto, p.DstPort)
	if !ok {
		return stats.Forwarded
	}
	h := encap.FlowHash(frame)
	b, ok := f.backend(svc, &k, h, now)
	if !ok {
		f.flow(FlowNoBackend, conntrack.NAT{})
		return stats.ServiceNoBackend
	}
	nat := conntrack.NAT{Dst: b.Addr.As16(), DstPort: b.Port}
	var label uint32
	if pol := f.pol; pol != nil {
		if !f.allowed(eps, p.Src, b.Addr, b.Port, p.IPProto) {
			f.flow(FlowDenied, nat)
			return stats.PolicyDenied
		}
		label = pol.Gen
	}
	masq := (outside && svc.Masquerade() || f.fromHost) && f.under != nil && p.EtherType == packet.EtherTypeIPv4
	switch {
	case masq:
		nat.Src = netip.AddrFrom4(f.under.local).As16()
	case b.Addr == p.Src: // hairpin
		if p.EtherType == packet.EtherTypeIPv4 {
			nat.Src = netip.AddrFrom4(f.gw.IPv4).As16()
		} else {
			nat.Src = f.gw.IPv6
		}
	}
	c, r := f.open(&k, nat, masq, h, label, now)
	if r != stats.Forwarded {
		return r
	}
	f.nat.tracked, f.nat.conn = true, c
	out := c.Out()
	f.rewrite(frame, &out)
	return stats.Forwarded
}

// open inserts the connection k with its translation nat, and records
// the flow event of the outcome. Masqueraded (masq), it picks the source
// port from the NAT port range, from the flow hash h on, trying the next
// one while the reply tuple is another connection's. Otherwise it does
// the same only if the translation as given clashes: two services with a
// backend in common, reached from the same client address and port (a
// client may reuse a port towards another destination), would give their
// connections the same reply tuple; the second then keeps the client's
// address but gets a port of the NAT range, as Linux's NAT does.
func (f *forwarder) open(k *conntrack.Key, nat conntrack.NAT, masq bool, h uint32, label uint32, now conntrack.Time) (conntrack.Conn, stats.Reason) {
	if !masq {
		c, res := f.ct.Insert(*k, nat, label, now)
		if res != conntrack.Conflict {
			return f.opened(c, res, nat)
		}
	}
	first := uint32(f.natPorts.First)
	n := uint32(f.natPorts.Last) - first + 1
	port := uint32(uint64(h)*uint64(n)>>32) + first
	for range min(natTries, n) {
		nat.SrcPort = uint16(port)
		if port++; port > uint32(f.natPorts.Last) {
			port = first
		}
		c, res := f.ct.Insert(*k, nat, label, now)
		if res != conntrack.Conflict {
			return f.opened(c, res, nat)
		}
	}
	f.flow(FlowNoPort, nat)
	return conntrack.Conn{}, stats.NATNoPort
}

// opened is open's outcome for an insert that did not clash.
func (f *forwarder) opened(c conntrack.Conn, res conntrack.Result, nat conntrack.NAT) (conntrack.Conn, stats.Reason) {
	switch res {
	case conntrack.Inserted:
		f.flow(FlowAllowed, nat)
		return c, stats.Forwarded
	case conntrack.Exists:
		return c, stats.Forwarded
	}
	f.flow(FlowBusy, nat)
	return c, stats.ConntrackBusy
}

// backend picks svc's backend for the new connection k: the client's
// previous one under session affinity if it is recent and still a
// backend, else the Maglev choice for the flow's hash.
func (f *forwarder) backend(svc *service.Service, k *conntrack.Key, h uint32, now conntrack.Time) (service.Backend, bool) {
	timeout := svc.Affinity()
	if timeout == 0 || f.aff == nil {
		return svc.Backend(h)
	}
	// One entry per client and service port, keyed without the client's
	// port: (client, VIP, service protocol as source port, service port).
	ak := conntrack.Key{Src: k.Src, Dst: k.Dst, SrcPort: uint16(k.Proto), DstPort: k.DstPort, Proto: affinityProto}
	if c, ok := f.aff.Lookup(ak, now); ok {
		if uint32(now-c.LastSeen) <= timeout {
			if b, ok := svc.BackendByID(c.Label); ok {
				f.aff.Update(&c, 0, now)
				return b, true
			}
		}
		b, ok := svc.Backend(h)
		if ok {
			f.aff.SetLabel(&c, b.ID())
			f.aff.Update(&c, 0, now)
		}
		return b, ok
	}
	b, ok := svc.Backend(h)
	if ok {
		f.aff.Insert(ak, conntrack.NAT{}, b.ID(), now)
	}
	return b, ok
}

// rewrite makes the parsed packet in frame leave as the tuple out:
// addresses, ports (ICMP: the echo identifier) and every checksum they
// are in, updated incrementally (RFC 1624), and the parsed fields to
// match, so routing reads the new destination.
func (f *forwarder) rewrite(frame []byte, out *conntrack.Key) {
	p := &f.p
	l3 := frame[p.L3Off:]
	var delta uint32 // ~old + new of the pseudo-header words that change: the addresses
	if p.EtherType == packet.EtherTypeIPv4 {
		src, dst := [4]byte(out.Src[12:]), [4]byte(out.Dst[12:])
		os, od := p.Src.As4(), p.Dst.As4()
		delta = wordsDelta(os[:], src[:]) + wordsDelta(od[:], dst[:])
		ip := packet.IPv4(l3)
		ip.SetSrc(src)
		ip.SetDst(dst)
		ip.SetChecksum(applyDelta(ip.Checksum(), delta))
		p.Src, p.Dst = netip.AddrFrom4(src), netip.AddrFrom4(dst)
	} else {
		os, od := p.Src.As16(), p.Dst.As16()
		delta = wordsDelta(os[:], out.Src[:]) + wordsDelta(od[:], out.Dst[:])
		copy(l3[8:24], out.Src[:])
		copy(l3[24:40], out.Dst[:])
		p.Src, p.Dst = netip.AddrFrom16(out.Src), netip.AddrFrom16(out.Dst)
	}
	if p.L4Off == 0 {
		return
	}
	l4 := frame[p.L4Off:]
	ports := portDelta(p.SrcPort, out.SrcPort) + portDelta(p.DstPort, out.DstPort)
	switch p.IPProto {
	case packet.ProtoTCP:
		setPorts(l4, out)
		binary.BigEndian.PutUint16(l4[16:], applyDelta(binary.BigEndian.Uint16(l4[16:]), delta+ports))
	case packet.ProtoUDP:
		setPorts(l4, out)
		if c := binary.BigEndian.Uint16(l4[6:]); c != 0 || p.EtherType != packet.EtherTypeIPv4 {
			if c = applyDelta(c, delta+ports); c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
	case packet.ProtoSCTP:
		// CRC32c covers no pseudo-header: only a port change needs it
		// computed again, over the whole packet (no incremental form).
		if out.SrcPort != p.SrcPort || out.DstPort != p.DstPort {
			setPorts(l4, out)
			sctpChecksum(frame[p.L4Off : int(p.L4Off)+int(p.L4Len)])
		}
	case packet.ProtoICMP, packet.ProtoICMPv6:
		if p.ICMPType != packet.ICMPv4EchoRequest && p.ICMPType != packet.ICMPv4EchoReply &&
			p.ICMPType != packet.ICMPv6EchoRequest && p.ICMPType != packet.ICMPv6EchoReply {
			break
		}
		d := portDelta(p.DstPort, out.DstPort) // the identifier
		binary.BigEndian.PutUint16(l4[4:], out.DstPort)
		if p.IPProto == packet.ProtoICMPv6 {
			d += delta // ICMPv6's checksum covers the pseudo-header; ICMPv4's does not
		}
		binary.BigEndian.PutUint16(l4[2:], applyDelta(binary.BigEndian.Uint16(l4[2:]), d))
		p.DstPort = out.DstPort
		return
	}
	p.SrcPort, p.DstPort = out.SrcPort, out.DstPort
}

func setPorts(l4 []byte, out *conntrack.Key) {
	binary.BigEndian.PutUint16(l4[0:], out.SrcPort)
	binary.BigEndian.PutUint16(l4[2:], out.DstPort)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sctpChecksum stores the CRC32c of the SCTP packet b, computed with the
// field zero (RFC 9260 appendix A; the reference code stores the CRC's
// bytes least significant first).
func sctpChecksum(b []byte) {
	if len(b) < 12 {
		return
	}
	binary.LittleEndian.PutUint32(b[8:], 0)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, castagnoli))
}

// wordsDelta is the one's-complement sum of ~o and n over the 16-bit words
// of two fields of the same even length (at most 16 bytes: the sum stays
// below 2^21).
func wordsDelta(o, n []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(o); i += 2 {
		s += uint32(^binary.BigEndian.Uint16(o[i:])) + uint32(binary.BigEndian.Uint16(n[i:]))
	}
	return s
}

func portDelta(o, n uint16) uint32 { return uint32(^o) + uint32(n) }

// applyDelta updates checksum check by delta (RFC 1624 eqn. 3 over
// several words: HC' = ~(~HC + Σ(~m + m'))).
func applyDelta(check uint16, delta uint32) uint16 {
	return ^packet.Fold(uint32(^check) + delta)
}

// routeTranslated routes a frame from the uplink that the NAT step
// translated to an address no local pod has: to the peer node whose pod
// it is, or else to the host, which routes it out (a reply to a client
// outside the cluster).
func (f *forwarder) routeTranslated(frame []byte, eps *endpoint.Table) (verdict, uint16, stats.Reason) {
	if nh, ok := f.under.routes.Lookup(f.p.Dst); ok && nh.Kind == route.RemoteNode {
		v, _, _, r := f.toPeer(frame, nh.Node, eps)
		return v, 0, r
	}
	v, _, _, r := f.exception(frame, PuntNoRoute)
	return v, 0, r
}

// Masquerade is egress masquerade: TCP and UDP over IPv4 from local pods
// to destinations outside the cluster leave with the node's underlay
// address and a source port from Config.NATPorts, through the host (which
// routes them out), and their replies, which the uplink's XDP program
// hands to the fast path, are translated back to the pod.
type Masquerade struct {
	// Except are the destinations that keep the pod's address: the
	// cluster's pod CIDRs (every node's) and whatever else must see pods
	// as themselves. The node's own addresses and local pod prefixes are
	// never masqueraded.
	Except []netip.Prefix
}

// SetMasquerade turns egress masquerade on (m) or off (nil). It needs the
// uplink for the node's address; without one nothing is masqueraded.
func (d *Dataplane) SetMasquerade(m *Masquerade) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m != nil {
		for _, p := range m.Except {
			if !p.IsValid() {
				return errors.New("dataplane: masquerade: invalid prefix in Except")
			}
		}
		if err := d.conntrackLocked(); err != nil {
			return err
		}
	}
	d.masq.Store(m)
	return nil
}

// masquerade opens the masqueraded connection of a pod's packet to
// outside the cluster, if it is one, and rewrites the packet by it. It
// returns Forwarded, or the reason to drop the packet.
func (f *forwarder) masquerade(frame []byte, eps *endpoint.Table) stats.Reason {
	p := &f.p
	u := f.under
	if u == nil || p.EtherType != packet.EtherTypeIPv4 || (p.IPProto != packet.ProtoTCP && p.IPProto != packet.ProtoUDP) ||
		p.L4Off == 0 {
		return stats.Forwarded
	}
	for _, x := range f.masq.Except {
		if x.Contains(p.Dst) {
			return stats.Forwarded
		}
	}
	var label uint32
	if pol := f.pol; pol != nil {
		// Egress policy applies (ipBlock rules name outside addresses);
		// the destination is no pod, so there is no ingress side.
		if !f.allowed(eps, p.Src, p.Dst, p.DstPort, p.IPProto) {
			f.flow(FlowDenied, conntrack.NAT{})
			return stats.PolicyDenied
		}
		label = pol.Gen
	} else if f.pending {
		return stats.PolicyPending
	}
	now := conntrack.TimeOf(time.Duration(f.now))
	k := keyOf(p)
	c, r := f.open(&k, conntrack.NAT{Src: netip.AddrFrom4(u.local).As16()}, true, encap.FlowHash(frame), label, now)
	if r != stats.Forwarded {
		return r
	}
	f.nat.tracked, f.nat.conn = true, c
	out := c.Out()
	f.rewrite(frame, &out)
	return stats.Forwarded
}
