package packet

import (
	"encoding/binary"
	"net/netip"
)

// Parsed is the flat result of Decode: offsets into the frame and the header
// fields the pipeline keys on. It holds only value types, no pointer into
// the frame, so a worker keeps one Parsed per slot of its batch and reuses
// it; Decode overwrites every field.
//
// When Decode returns a reason other than OK, the fields before the failing
// layer are filled and the rest are zero; only EtherType, VLAN, HasVLAN and
// L3Off are meant to be used then.
type Parsed struct {
	EtherType uint16 // after at most one 802.1Q tag
	VLAN      uint16 // VID; valid when HasVLAN
	HasVLAN   bool

	L3Off uint16 // offset of the ARP, IPv4 or IPv6 header in the frame
	L4Off uint16 // offset of the L4 header; 0 when no L4 header was parsed
	L4Len uint16 // bytes from L4Off to the end of the IP payload, per the IP length fields; 0 when L4Off is 0

	IPProto uint8 // final upper-layer protocol, after IPv6 extension headers

	// IPv4 or IPv6 source and destination; for ARP the sender and target
	// protocol addresses.
	Src, Dst netip.Addr
	TTL      uint8 // IPv4 TTL or IPv6 hop limit

	SrcPort, DstPort   uint16 // TCP, UDP, SCTP; for ICMP echo, DstPort is the identifier
	TCPFlags           uint8
	ICMPType, ICMPCode uint8
	ARPOp              uint16

	Fragment      bool // IPv4 MF set or offset != 0; IPv6 fragment header present
	FirstFragment bool // a fragment with offset 0, whose L4 header is parsed
	HasOptions    bool // IPv4 IHL > 5; IPv6 hop-by-hop, routing or destination options header present
}

// maxExtHeaders bounds the IPv6 extension header walk. Real traffic carries
// one or two; a longer chain is an attack on parsers and is malformed.
const maxExtHeaders = 8

// Decode parses frame into p, overwriting all its fields, and returns OK or
// the reason the frame is malformed. It reads Ethernet, at most one 802.1Q
// tag, ARP (Ethernet/IPv4 only), IPv4 (verifying the header checksum) or
// IPv6 (walking hop-by-hop, routing, destination options and fragment
// headers), and the TCP, UDP, SCTP, ICMPv4 or ICMPv6 header of an
// unfragmented packet or first fragment.
//
// What Decode does not know is not malformed: another EtherType returns OK
// with only the link layer filled in, another IP protocol or a non-first
// fragment returns OK with L4Off 0. Bytes after the IP packet (Ethernet
// padding) are ignored. L4 checksums are not verified.
//
// Decode never panics, whatever the input, does not allocate, and does not
// keep frame.
func Decode(frame []byte, p *Parsed) Malformed {
	*p = Parsed{}
	if len(frame) < EthernetLen {
		return TruncatedEthernet
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	off := EthernetLen
	if et == EtherTypeVLAN {
		if len(frame) < EthernetLen+VLANTagLen {
			return TruncatedVLAN
		}
		p.HasVLAN = true
		p.VLAN = binary.BigEndian.Uint16(frame[14:16]) & 0x0fff
		et = binary.BigEndian.Uint16(frame[16:18])
		off += VLANTagLen
	}
	p.EtherType = et
	p.L3Off = uint16(off)
	switch et {
	case EtherTypeIPv4:
		return decodeIPv4(frame[off:], off, p)
	case EtherTypeIPv6:
		return decodeIPv6(frame[off:], off, p)
	case EtherTypeARP:
		return decodeARP(frame[off:], p)
	}
	return OK
}

func decodeARP(b []byte, p *Parsed) Malformed {
	if len(b) < ARPLen {
		return TruncatedARP
	}
	a := ARP(b[:ARPLen])
	if !a.IsEthernetIPv4() {
		return BadARP
	}
	p.ARPOp = a.Op()
	p.Src = netip.AddrFrom4(a.SenderIP())
	p.Dst = netip.AddrFrom4(a.TargetIP())
	return OK
}

func decodeIPv4(b []byte, l3off int, p *Parsed) Malformed {
	if len(b) < IPv4MinLen {
		return TruncatedIPv4
	}
	if b[0]>>4 != 4 {
		return BadIPVersion
	}
	ihl := int(b[0]&0x0f) << 2
	if ihl < IPv4MinLen {
		return BadIHL
	}
	if ihl > len(b) {
		return TruncatedIPv4
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < ihl || total > len(b) {
		return BadTotalLength
	}
	b = b[:total]
	if ipv4HeaderSum(b[:ihl]) != 0xffff {
		return BadIPv4Checksum
	}
	p.TTL = b[8]
	proto := b[9]
	p.IPProto = proto
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.HasOptions = ihl > IPv4MinLen
	if ff := binary.BigEndian.Uint16(b[6:8]); ff&0x3fff != 0 { // MF or offset
		p.Fragment = true
		if ff&0x1fff != 0 {
			return OK // not the first fragment: no L4 header here
		}
		p.FirstFragment = true
	}
	switch proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		return decodePorts(b[ihl:], l3off+ihl, proto, p)
	case ProtoICMP:
		return decodeICMPv4(b[ihl:], l3off+ihl, p)
	}
	return OK
}

// ipv4HeaderSum folds the one's-complement sum of an IPv4 header, checksum
// included; 0xFFFF means the checksum is correct. The common 20-byte header
// is summed inline.
func ipv4HeaderSum(h []byte) uint16 {
	if len(h) != IPv4MinLen {
		return Fold(Sum(h, 0))
	}
	h = h[:20:20]
	s := uint64(binary.BigEndian.Uint32(h[0:4])) +
		uint64(binary.BigEndian.Uint32(h[4:8])) +
		uint64(binary.BigEndian.Uint32(h[8:12])) +
		uint64(binary.BigEndian.Uint32(h[12:16])) +
		uint64(binary.BigEndian.Uint32(h[16:20])) // < 2^35
	s = s>>32 + s&0xffffffff // < 2^32 + 5
	s = s>>16 + s&0xffff     // < 2^17
	s = s>>16 + s&0xffff     // <= 0xFFFF
	return uint16(s)
}

func decodeIPv6(b []byte, l3off int, p *Parsed) Malformed {
	if len(b) < IPv6Len {
		return TruncatedIPv6
	}
	if b[0]>>4 != 6 {
		return BadIPVersion
	}
	end := IPv6Len + int(binary.BigEndian.Uint16(b[4:6]))
	if end > len(b) {
		return BadPayloadLength
	}
	b = b[:end]
	p.TTL = b[7]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	nh := b[6]
	off := IPv6Len
walk:
	for i := 0; ; i++ {
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDestOpts:
			// Hop-by-hop must come first (RFC 8200, section 4.3).
			if i == maxExtHeaders || nh == ProtoHopByHop && i != 0 || end-off < 8 {
				return BadExtensionHeader
			}
			n := (int(b[off+1]) + 1) << 3
			if end-off < n {
				return BadExtensionHeader
			}
			p.HasOptions = true
			nh = b[off]
			off += n
		case ProtoFragment:
			if i == maxExtHeaders || p.Fragment || end-off < IPv6FragmentLen {
				return BadExtensionHeader
			}
			p.Fragment = true
			nh = b[off]
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			off += IPv6FragmentLen
			if fo&^7 != 0 {
				// Not the first fragment: what follows is fragment data,
				// not headers.
				p.IPProto = nh
				return OK
			}
			p.FirstFragment = true
		default:
			break walk
		}
	}
	p.IPProto = nh
	switch nh {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		return decodePorts(b[off:], l3off+off, nh, p)
	case ProtoICMPv6:
		return decodeICMPv6(b[off:], l3off+off, p)
	}
	return OK
}

// decodePorts parses the TCP, UDP or SCTP header at the start of b, the rest
// of the IP payload, which starts at frame offset off.
func decodePorts(b []byte, off int, proto uint8, p *Parsed) Malformed {
	p.L4Off = uint16(off)
	p.L4Len = uint16(len(b))
	switch proto {
	case ProtoTCP:
		if len(b) < TCPMinLen {
			return TruncatedL4
		}
		if doff := int(b[12]>>4) << 2; doff < TCPMinLen || doff > len(b) {
			return BadTCPDataOffset
		}
		p.TCPFlags = b[13]
	case ProtoUDP:
		if len(b) < UDPLen {
			return TruncatedL4
		}
		// A first fragment holds only part of the datagram that Length
		// counts, so only the lower bound applies to it.
		if n := int(binary.BigEndian.Uint16(b[4:6])); n < UDPLen || n > len(b) && !p.Fragment {
			return BadUDPLength
		}
	case ProtoSCTP:
		if len(b) < 12 { // ports, verification tag, checksum
			return TruncatedL4
		}
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	return OK
}

func decodeICMPv4(b []byte, off int, p *Parsed) Malformed {
	p.L4Off = uint16(off)
	p.L4Len = uint16(len(b))
	if len(b) < ICMPMinLen {
		return TruncatedL4
	}
	t := b[0]
	p.ICMPType, p.ICMPCode = t, b[1]
	if t == ICMPv4EchoRequest || t == ICMPv4EchoReply {
		if len(b) < ICMPEchoLen {
			return TruncatedL4
		}
		p.DstPort = binary.BigEndian.Uint16(b[4:6])
	}
	return OK
}

func decodeICMPv6(b []byte, off int, p *Parsed) Malformed {
	p.L4Off = uint16(off)
	p.L4Len = uint16(len(b))
	if len(b) < ICMPMinLen {
		return TruncatedL4
	}
	t := b[0]
	p.ICMPType, p.ICMPCode = t, b[1]
	if len(b) < icmpv6MinLen(t) {
		return TruncatedL4
	}
	if t == ICMPv6EchoRequest || t == ICMPv6EchoReply {
		p.DstPort = binary.BigEndian.Uint16(b[4:6])
	}
	return OK
}
