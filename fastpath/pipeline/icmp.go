package pipeline

import (
	"encoding/binary"
	"net/netip"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// icmpKind is an ICMP error the fast path sends in the kernel's place.
type icmpKind uint8

const (
	// icmpTimeExceeded: ICMPv4 type 11 code 0, ICMPv6 type 3 code 0 (TTL
	// or hop limit exceeded in transit).
	icmpTimeExceeded icmpKind = iota
	// icmpUnreachable: ICMPv4 type 3 code 1 (host unreachable), ICMPv6
	// type 1 code 3 (address unreachable).
	icmpUnreachable
	// icmpFragNeeded: ICMPv4 type 3 code 4 (fragmentation needed and DF
	// set, RFC 1191) or ICMPv6 type 2 (packet too big, RFC 8201), carrying
	// the next-hop MTU. Not sent yet: tunnels (a smaller MTU than the
	// pod's) will send it.
	icmpFragNeeded
)

// ICMP message types and codes the builder writes.
const (
	icmp4CodeHostUnreachable = 1
	icmp4CodeFragNeeded      = 4
	icmp6CodeAddrUnreachable = 3
	icmp4TOS                 = 0xc0 // precedence "internetwork control", as Linux sends its errors
	icmpHopLimit             = 64
	icmpHeaderLen            = 8
)

// How much of the offending packet an error quotes: as much as keeps the
// error within 576 bytes for IPv4 (RFC 1812 4.3.2.3) and within the minimum
// MTU of 1280 bytes for IPv6 (RFC 4443 2.4(c)), like Linux.
const (
	icmp4MaxQuote = 576 - packet.IPv4MinLen - icmpHeaderLen
	icmp6MaxQuote = 1280 - packet.IPv6Len - icmpHeaderLen
)

// icmpErrorAllowed reports whether an ICMP error may be sent about the
// packet parsed into p (RFC 1812 4.3.2.7, RFC 4443 2.4(e)): never about an
// ICMP error or a redirect, a packet to a multicast or broadcast address,
// a packet whose source is not a unicast address, or a fragment other than
// the first.
func icmpErrorAllowed(p *packet.Parsed) bool {
	if p.Fragment && !p.FirstFragment {
		return false
	}
	if p.Dst.IsMulticast() || !p.Src.IsValid() || p.Src.IsUnspecified() || p.Src.IsMulticast() || p.Src.IsLoopback() {
		return false
	}
	if p.EtherType == packet.EtherTypeIPv4 {
		if p.Dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || p.Src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return false
		}
		if p.IPProto == packet.ProtoICMP && p.L4Off != 0 {
			switch p.ICMPType {
			case packet.ICMPv4DestUnreachable, 4 /* source quench */, 5 /* redirect */, packet.ICMPv4TimeExceeded, 12 /* parameter problem */ :
				return false
			}
		}
		return true
	}
	if p.IPProto == packet.ProtoICMPv6 && p.L4Off != 0 && (p.ICMPType < 128 || p.ICMPType == packet.ICMPv6Redirect) {
		return false
	}
	return true
}

// buildICMPError rewrites frame, an Ethernet frame holding the IPv4 or
// IPv6 packet parsed into p, in place into an ICMP error of kind about that
// packet, addressed back to its sender: Ethernet to the frame's source MAC
// from srcMAC, IP from src4 or src6 to the packet's source, quoting the
// start of the packet. mtu is the next-hop MTU of icmpFragNeeded; id the
// IPv4 identification. The frame grows into its capacity (the rest of its
// UMEM chunk or queue slot). It returns the error's frame length, or 0 if
// the capacity cannot hold the IP header and 8 bytes of the packet.
//
// The checksums (IPv4 header, ICMPv4, ICMPv6 with its pseudo-header) are
// computed in full. No allocation.
func buildICMPError(frame []byte, p *packet.Parsed, kind icmpKind, mtu uint32,
	src4 [4]byte, src6 [16]byte, srcMAC [6]byte, id uint16) int {
	l3 := int(p.L3Off)
	eth := packet.Ethernet(frame)
	dstMAC := eth.Src()
	if p.EtherType == packet.EtherTypeIPv4 {
		orig := packet.IPv4(frame[l3:])
		total, ihl := int(orig.TotalLength()), orig.IHL()
		hdr := packet.IPv4MinLen + icmpHeaderLen
		quote := min(total, icmp4MaxQuote, cap(frame)-l3-hdr)
		if quote < min(total, ihl+8) {
			return 0
		}
		frame = frame[:l3+hdr+quote]
		copy(frame[l3+hdr:], frame[l3:l3+quote]) // memmove: the regions overlap
		dst := packet.IPv4(frame[l3+hdr:]).Src()

		ip := packet.IPv4(frame[l3 : l3+packet.IPv4MinLen])
		ip[0] = 0x45
		ip.SetTOS(icmp4TOS)
		ip.SetTotalLength(uint16(hdr + quote))
		ip.SetID(id)
		ip[6], ip[7] = 0, 0 // no flags, offset 0
		ip.SetTTL(icmpHopLimit)
		ip.SetProtocol(packet.ProtoICMP)
		ip.SetSrc(src4)
		ip.SetDst(dst)
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())

		msg := packet.ICMPv4(frame[l3+packet.IPv4MinLen:])
		binary.BigEndian.PutUint32(msg[4:8], 0)
		switch kind {
		case icmpTimeExceeded:
			msg.SetType(packet.ICMPv4TimeExceeded)
			msg.SetCode(0)
		case icmpUnreachable:
			msg.SetType(packet.ICMPv4DestUnreachable)
			msg.SetCode(icmp4CodeHostUnreachable)
		case icmpFragNeeded:
			msg.SetType(packet.ICMPv4DestUnreachable)
			msg.SetCode(icmp4CodeFragNeeded)
			binary.BigEndian.PutUint16(msg[6:8], uint16(min(mtu, 0xffff)))
		}
		msg.SetChecksum(0)
		msg.SetChecksum(packet.Checksum(msg[:icmpHeaderLen+quote], 0))
	} else {
		orig := packet.IPv6(frame[l3:])
		total := packet.IPv6Len + int(orig.PayloadLength())
		hdr := packet.IPv6Len + icmpHeaderLen
		quote := min(total, icmp6MaxQuote, cap(frame)-l3-hdr)
		if quote < min(total, packet.IPv6Len+8) {
			return 0
		}
		frame = frame[:l3+hdr+quote]
		copy(frame[l3+hdr:], frame[l3:l3+quote])
		dst := packet.IPv6(frame[l3+hdr:]).Src()

		ip := packet.IPv6(frame[l3 : l3+packet.IPv6Len])
		binary.BigEndian.PutUint32(ip[0:4], 6<<28) // version 6, traffic class 0, no flow label
		ip.SetPayloadLength(uint16(icmpHeaderLen + quote))
		ip.SetNextHeader(packet.ProtoICMPv6)
		ip.SetHopLimit(icmpHopLimit)
		ip.SetSrc(src6)
		ip.SetDst(dst)

		msg := packet.ICMPv6(frame[l3+packet.IPv6Len:])
		binary.BigEndian.PutUint32(msg[4:8], 0)
		switch kind {
		case icmpTimeExceeded:
			msg.SetType(packet.ICMPv6TimeExceeded)
			msg.SetCode(0)
		case icmpUnreachable:
			msg.SetType(packet.ICMPv6DestUnreachable)
			msg.SetCode(icmp6CodeAddrUnreachable)
		case icmpFragNeeded:
			msg.SetType(packet.ICMPv6PacketTooBig)
			msg.SetCode(0)
			binary.BigEndian.PutUint32(msg[4:8], mtu)
		}
		n := uint16(icmpHeaderLen + quote)
		msg.SetChecksum(0)
		sum := packet.PseudoHeaderSum(packet.ProtoICMPv6, netip.AddrFrom16(src6), netip.AddrFrom16(dst), n)
		msg.SetChecksum(packet.Checksum(msg[:n], sum))
	}
	eth.SetDst(dstMAC)
	eth.SetSrc(srcMAC)
	return len(frame)
}
