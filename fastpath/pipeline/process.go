package pipeline

import (
	"net/netip"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/endpoint"
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
	vReply                  // send back out of the port it came in on, in place
)

// forwarder is the per-packet logic of one worker: decode, answer the
// gateway's ARP/ND, look up the destination pod, rewrite L2, decrement
// TTL. It touches only the frame and its own Parsed; no allocation, no
// lock, no syscall.
type forwarder struct {
	gw    Gateway
	gw6   netip.Addr // gw.IPv6 as an Addr, for checksums
	p     packet.Parsed
	bcast [4]byte
}

func newForwarder(gw Gateway) forwarder {
	return forwarder{gw: gw, gw6: netip.AddrFrom16(gw.IPv6), bcast: [4]byte{255, 255, 255, 255}}
}

// process decides what happens to frame, rewriting it in place when it is
// forwarded or answered. It returns the verdict, the destination port for
// vForward, the length to send, and the reason to count (for vForward and
// vReply the caller counts it once the frame is on a TX ring).
func (f *forwarder) process(frame []byte, eps *endpoint.Table) (verdict, uint16, uint32, stats.Reason) {
	p := &f.p
	if m := packet.Decode(frame, p); m != packet.OK {
		return vDrop, 0, 0, stats.Malformed(m)
	}
	if p.HasVLAN {
		return vDrop, 0, 0, stats.VLANTagged
	}
	switch p.EtherType {
	case packet.EtherTypeIPv4:
		if p.Fragment {
			return vDrop, 0, 0, stats.Fragment
		}
		if p.HasOptions {
			return vDrop, 0, 0, stats.IPOptions
		}
		dst := p.Dst.As4()
		ep, ok := eps.Lookup4(dst)
		if !ok {
			switch {
			case dst == f.gw.IPv4:
				return vDrop, 0, 0, stats.ToGateway
			case dst == f.bcast || p.Dst.IsMulticast():
				return vDrop, 0, 0, stats.Multicast
			}
			return vDrop, 0, 0, stats.NoRoute
		}
		if p.TTL <= 1 {
			return vDrop, 0, 0, stats.TTLExpired
		}
		packet.IPv4(frame[p.L3Off:]).DecrementTTL()
		f.rewriteL2(frame, ep.MAC)
		return vForward, ep.Port, uint32(len(frame)), stats.Forwarded

	case packet.EtherTypeIPv6:
		if p.Fragment {
			return vDrop, 0, 0, stats.Fragment
		}
		if p.HasOptions {
			return vDrop, 0, 0, stats.IPOptions
		}
		if p.IPProto == packet.ProtoICMPv6 && p.ICMPType == packet.ICMPv6NeighborSolicitation {
			return f.neighborAdvert(frame)
		}
		ep, ok := eps.Lookup(p.Dst)
		if !ok {
			switch {
			case p.Dst.As16() == f.gw.IPv6:
				return vDrop, 0, 0, stats.ToGateway
			case p.IPProto == packet.ProtoICMPv6 && p.ICMPType >= packet.ICMPv6RouterSolicitation &&
				p.ICMPType <= packet.ICMPv6Redirect:
				return vDrop, 0, 0, stats.ICMPv6Ignored
			case p.Dst.IsMulticast():
				return vDrop, 0, 0, stats.Multicast
			}
			return vDrop, 0, 0, stats.NoRoute
		}
		if p.TTL <= 1 {
			return vDrop, 0, 0, stats.TTLExpired
		}
		packet.IPv6(frame[p.L3Off:]).SetHopLimit(p.TTL - 1)
		f.rewriteL2(frame, ep.MAC)
		return vForward, ep.Port, uint32(len(frame)), stats.Forwarded

	case packet.EtherTypeARP:
		return f.arpReply(frame)
	}
	return vDrop, 0, 0, stats.UnknownEtherType
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
