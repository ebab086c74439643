package pipeline

import (
	"net/netip"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/route"
	"github.com/ringnet/ringnet/tables/service"
)

// Gateway is the link-local router every pod points its default routes at.
// The fast path answers ARP and neighbour solicitations for it and uses its
// MAC as the source of every frame it delivers.
type Gateway struct {
	MAC  [6]byte
	IPv4 [4]byte
	IPv6 [16]byte
}

// verdict is what the worker does with a frame after process.
type verdict uint8

const (
	vDrop    verdict = iota // free the frame; count the reason now
	vForward                // copy to port out's socket of this worker
	vReply                  // send back where it came from (its port, or the host), in place
	vPunt                   // copy to the slow path's queue (L2 already rewritten for the TAP)
	vTunnel                 // copy to the uplink for peer node forwarder.peer, encapsulating as its tunnel says
)

// forwarder is the per-packet logic of one worker: decode, answer the
// gateway's ARP/ND, look up the destination pod, rewrite L2, decrement
// TTL, and for what it does not forward, apply the punt list. It touches
// only the frame and its own state; no allocation, no lock, no syscall.
type forwarder struct {
	gw    Gateway
	gw6   netip.Addr // gw.IPv6 as an Addr, for checksums
	p     packet.Parsed
	peek  packet.Parsed // connKey's, for the conntrack prefetch
	bcast [4]byte

	// Set by the worker once per batch.
	host     *hostTable       // nil: no slow path; punt-list frames are dropped, no ICMP errors
	hflows   *hostFlows       // the flows the host sent on (set with the slow path); nil: all host-bound frames are to_host
	fromHost bool             // the frames come from the host (the slow path), not a pod port
	from     *Port            // the pod port the frames come from; nil for the host
	under    *underlay        // nil: no uplink; nothing is sent to peer nodes
	pol      *Policy          // nil: no NetworkPolicy enforcement (or, with pending, none yet)
	pending  bool             // fail closed: no policy published yet
	ct       *conntrack.Table // with pol or svc: the connections policy admitted, and the translated ones
	svc      *service.Table   // nil: no services
	masq     *Masquerade      // nil: no egress masquerade
	natOn    bool             // svc or masq: the NAT step runs
	aff      *conntrack.Table // with svc: session affinity
	natPorts PortRange        // masquerade source ports
	now      int64            // ns, the worker's monotonic clock, for the token buckets

	buckets [NumPuntClasses]bucket // per punt class; written by this worker only
	ipID    uint16                 // IPv4 identification of the ICMP errors we send

	// Set by process for the worker.
	peer uint16   // vTunnel: index of the peer node in under.peers
	mtu  uint32   // PuntFragNeeded: the MTU the ICMP error announces
	nat  natState // the packet's connection, when the NAT step looked it up

	flows *flowRing // the worker's flow events; nil: none recorded

	// The connection of the frame being processed as the worker looked it
	// up ahead with its batch (lookupConns); zero: none.
	pre preConn

	// NetworkPolicy's new connections of the RX batch, inserted at its
	// end (trackBatch); cap is the batch size.
	track    []conntrack.Insertion
	trackRes []conntrack.Result
}

func newForwarder(gw Gateway) forwarder {
	return forwarder{gw: gw, gw6: netip.AddrFrom16(gw.IPv6), bcast: [4]byte{255, 255, 255, 255}}
}

// process decides what happens to frame, rewriting it in place when it is
// forwarded, answered or punted. It returns the verdict, the destination
// port for vForward, the length to send, and the reason to count (for
// vForward, vReply and vPunt the caller counts it once the frame is on a TX
// ring or in the slow path's queue).
//
// Multicast and broadcast are dropped before anything else (pods' MLD
// reports carry a hop-by-hop option; they are not for the host either).
//
// Frames from pods (fromHost false) may be punted to the host. Frames from
// the host are delivered to a pod, answered (ARP/ND for the gateway, ICMP
// unreachable, which go back to the host) or dropped, never punted:
// whatever the host routes to the TAP and no pod owns ends here, so nothing
// loops. The host's kernel is trusted with IP options and fragments: they
// are forwarded to pods as they are. And their TTL is left alone: the host
// and the fast path are one router, the node, as the host and its pod veths
// are with any CNI. A packet the host sends to a pod arrives with the TTL it
// was sent with (a host traceroute sees the pod as the first hop), one the
// host's kernel forwarded was decremented by it, once.
func (f *forwarder) process(frame []byte, eps *endpoint.Table) (verdict, uint16, uint32, stats.Reason) {
	p := &f.p
	if m := packet.Decode(frame, p); m != packet.OK {
		return vDrop, 0, 0, stats.Malformed(m)
	}
	if p.HasVLAN {
		return vDrop, 0, 0, stats.VLANTagged
	}
	if pp := f.from; pp != nil {
		if r := spoofed(frame, p, pp); r != stats.Forwarded {
			return vDrop, 0, 0, r
		}
	}
	f.nat.looked = false
	var hflow uint64 // from the host: the flow, before NAT, for hflows
	if f.fromHost && f.hflows != nil {
		hflow = hostFlowHash(p)
	}
	switch p.EtherType {
	case packet.EtherTypeIPv4:
		dst := p.Dst.As4()
		if dst == f.bcast || p.Dst.IsMulticast() {
			return vDrop, 0, 0, stats.Multicast
		}
		if !f.fromHost {
			if p.Fragment {
				return f.exception(frame, PuntFragment)
			}
			if p.HasOptions {
				return f.exception(frame, PuntIPOptions)
			}
		}
		if f.natOn {
			if r := f.translate(frame, eps, false); r != stats.Forwarded {
				return vDrop, 0, 0, r
			}
			dst = p.Dst.As4()
		}
		ep, ok := eps.Lookup4(dst)
		if !ok {
			if u := f.under; u != nil {
				if nh, ok := u.routes.Lookup4(dst); ok && nh.Kind == route.RemoteNode {
					return f.toPeer(frame, nh.Node, eps)
				}
			}
			if dst == f.gw.IPv4 {
				return vDrop, 0, 0, stats.ToGateway
			}
			return f.notAPod(frame, eps)
		}
		if !f.fromHost {
			if p.TTL <= 1 {
				return f.exception(frame, PuntTTLExpired)
			}
			if ok, r := f.admit(eps); !ok {
				return vDrop, 0, 0, r
			}
			packet.IPv4(frame[p.L3Off:]).DecrementTTL()
		} else {
			f.hflows.mark(hflow, f.now)
		}
		f.rewriteL2(frame, ep.MAC)
		return vForward, ep.Port, uint32(len(frame)), stats.Forwarded

	case packet.EtherTypeIPv6:
		isND := p.IPProto == packet.ProtoICMPv6 && p.ICMPType >= packet.ICMPv6RouterSolicitation &&
			p.ICMPType <= packet.ICMPv6Redirect
		if isND && p.ICMPType == packet.ICMPv6NeighborSolicitation && !p.Fragment && !p.HasOptions {
			return f.neighborAdvert(frame)
		}
		if p.Dst.IsMulticast() {
			if isND {
				return vDrop, 0, 0, stats.ICMPv6Ignored
			}
			return vDrop, 0, 0, stats.Multicast
		}
		if !f.fromHost {
			if p.Fragment {
				return f.exception(frame, PuntFragment)
			}
			if p.HasOptions {
				return f.exception(frame, PuntIPOptions)
			}
		}
		if f.natOn {
			if r := f.translate(frame, eps, false); r != stats.Forwarded {
				return vDrop, 0, 0, r
			}
		}
		ep, ok := eps.Lookup(p.Dst)
		if !ok {
			if u := f.under; u != nil {
				if nh, ok := u.routes.Lookup(p.Dst); ok && nh.Kind == route.RemoteNode {
					return f.toPeer(frame, nh.Node, eps)
				}
			}
			switch {
			case p.Dst.As16() == f.gw.IPv6:
				return vDrop, 0, 0, stats.ToGateway
			case isND:
				return vDrop, 0, 0, stats.ICMPv6Ignored
			}
			return f.notAPod(frame, eps)
		}
		if !f.fromHost {
			if p.TTL <= 1 {
				return f.exception(frame, PuntTTLExpired)
			}
			if ok, r := f.admit(eps); !ok {
				return vDrop, 0, 0, r
			}
			packet.IPv6(frame[p.L3Off:]).SetHopLimit(p.TTL - 1)
		} else {
			f.hflows.mark(hflow, f.now)
		}
		f.rewriteL2(frame, ep.MAC)
		return vForward, ep.Port, uint32(len(frame)), stats.Forwarded

	case packet.EtherTypeARP:
		return f.arpReply(frame)
	}
	return f.exception(frame, PuntUnknownEtherType)
}

// spoofed checks a pod's frame against the pod: its source MAC must be the
// pod's, and its source address the pod's (IPv6 also link-local, which
// neighbour discovery uses, or unspecified, which duplicate address
// detection uses; neither is routed). It returns Forwarded when the frame
// is the pod's own, else the reason to drop it.
func spoofed(frame []byte, p *packet.Parsed, pp *Port) stats.Reason {
	if packet.Ethernet(frame).Src() != pp.mac {
		return stats.SpoofedMAC
	}
	switch p.EtherType {
	case packet.EtherTypeIPv4:
		if p.Src != pp.Spec.IPv4 {
			return stats.SpoofedIP
		}
	case packet.EtherTypeIPv6:
		if p.Src != pp.Spec.IPv6 && !p.Src.IsLinkLocalUnicast() && !p.Src.IsUnspecified() {
			return stats.SpoofedIP
		}
	}
	return stats.Forwarded
}

// notAPod classifies a unicast IP packet whose destination is no local pod
// and not the gateway: the node's own address, an unused address of a
// local pod prefix, or somewhere the host's kernel knows about.
func (f *forwarder) notAPod(frame []byte, eps *endpoint.Table) (verdict, uint16, uint32, stats.Reason) {
	h := f.host
	switch {
	case h == nil:
		return vDrop, 0, 0, stats.NoRoute
	case h.isNodeAddr(f.p.Dst):
		if f.hflows.answered(hostFlowHash(&f.p), f.now) {
			return f.exception(frame, PuntToHost)
		}
		return f.exception(frame, PuntToHostNew)
	case h.inPodPrefix(f.p.Dst):
		return f.exception(frame, PuntUnreachable)
	}
	if f.masq != nil && f.from != nil && !f.nat.tracked {
		if r := f.masquerade(frame, eps); r != stats.Forwarded {
			return vDrop, 0, 0, r
		}
	}
	return f.exception(frame, PuntNoRoute)
}

// exception applies the punt list's entry c to a frame the fast path does
// not forward: without a slow path it is dropped under the entry's reason,
// as before there was one; otherwise, within the entry's token bucket, it
// is handed to the host or answered with an ICMP error, and beyond it
// dropped as over the limit. Frames from the host are never handed back.
func (f *forwarder) exception(frame []byte, c PuntClass) (verdict, uint16, uint32, stats.Reason) {
	e := &puntList[c]
	h := f.host
	if h == nil || (f.fromHost && e.action == actToHost) {
		return vDrop, 0, 0, e.reason
	}
	p := &f.p
	if e.action == actICMPError && !icmpErrorAllowed(p) {
		return vDrop, 0, 0, e.reason
	}
	if !f.buckets[c].take(f.now) {
		return vDrop, 0, 0, e.overLimit
	}
	if e.action == actToHost {
		f.rewriteL2(frame, h.mac)
		return vPunt, 0, uint32(len(frame)), e.reason
	}
	// An ICMP error to a pod comes from the node's address, one to the host
	// from the gateway's (see Host).
	src4, src6 := h.src4, h.src6
	if f.fromHost {
		src4, src6 = f.gw.IPv4, f.gw.IPv6
	}
	f.ipID++
	n := buildICMPError(frame, p, e.icmp, f.mtu, src4, src6, f.gw.MAC, f.ipID)
	if n == 0 {
		return vDrop, 0, 0, e.reason
	}
	return vReply, 0, uint32(n), e.reason
}

func (f *forwarder) rewriteL2(frame []byte, dst [6]byte) {
	eth := packet.Ethernet(frame)
	eth.SetDst(dst)
	eth.SetSrc(f.gw.MAC)
}

// arpReply turns an ARP request for the gateway into the reply, in place.
func (f *forwarder) arpReply(frame []byte) (verdict, uint16, uint32, stats.Reason) {
	p := &f.p
	a := packet.ARP(frame[p.L3Off:])
	if p.ARPOp != packet.ARPRequest || a.TargetIP() != f.gw.IPv4 {
		return vDrop, 0, 0, stats.ARPIgnored
	}
	senderHW, senderIP := a.SenderHW(), a.SenderIP()
	a.SetOp(packet.ARPReply)
	a.SetTargetHW(senderHW)
	a.SetTargetIP(senderIP)
	a.SetSenderHW(f.gw.MAC)
	a.SetSenderIP(f.gw.IPv4)
	f.rewriteL2(frame, senderHW)
	return vReply, 0, uint32(len(frame)), stats.ARPReply
}

// naLen is the length of the advertisement we send: the fixed part and one
// target link-layer address option.
const naLen = packet.NDLen + 8

// neighborAdvert turns a neighbour solicitation for the gateway into a
// solicited advertisement (RFC 4861 7.2.4), in place.
func (f *forwarder) neighborAdvert(frame []byte) (verdict, uint16, uint32, stats.Reason) {
	p := &f.p
	ns := packet.ICMPv6(frame[p.L4Off:])
	end := int(p.L3Off) + packet.IPv6Len + naLen
	switch {
	case ns.TargetAddress() != f.gw.IPv6, p.TTL != 255, p.ICMPCode != 0,
		p.Src.IsUnspecified(), // duplicate address detection: not ours to answer
		cap(frame) < end:
		return vDrop, 0, 0, stats.ICMPv6Ignored
	}
	frame = frame[:end]
	ip := packet.IPv6(frame[p.L3Off:])
	ip.SetDst(ip.Src())
	ip.SetSrc(f.gw.IPv6)
	ip.SetHopLimit(255)
	ip.SetNextHeader(packet.ProtoICMPv6)
	ip.SetPayloadLength(naLen)
	na := packet.ICMPv6(frame[int(p.L3Off)+packet.IPv6Len:])
	na.SetType(packet.ICMPv6NeighborAdvertisement)
	na.SetCode(0)
	na.SetNAFlags(true, true, true)
	na[5], na[6], na[7] = 0, 0, 0
	na.SetTargetAddress(f.gw.IPv6)
	opt := na[packet.NDLen:naLen]
	opt[0], opt[1] = packet.NDOptTargetLinkLayerAddr, 1
	copy(opt[2:8], f.gw.MAC[:])
	na.SetChecksum(0)
	na.SetChecksum(packet.Checksum(na, packet.PseudoHeaderSum(packet.ProtoICMPv6, f.gw6, p.Src, naLen)))
	f.rewriteL2(frame, packet.Ethernet(frame).Src())
	return vReply, 0, uint32(end), stats.NDReply
}
