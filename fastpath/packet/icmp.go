package packet

import "encoding/binary"

// ICMPv4 message types (RFC 792) that the fast path cares about.
const (
	ICMPv4EchoReply       = 0
	ICMPv4DestUnreachable = 3
	ICMPv4EchoRequest     = 8
	ICMPv4TimeExceeded    = 11
)

// ICMPv6 message types (RFC 4443, RFC 4861).
const (
	ICMPv6DestUnreachable       = 1
	ICMPv6PacketTooBig          = 2
	ICMPv6TimeExceeded          = 3
	ICMPv6ParamProblem          = 4
	ICMPv6EchoRequest           = 128
	ICMPv6EchoReply             = 129
	ICMPv6RouterSolicitation    = 133
	ICMPv6RouterAdvertisement   = 134
	ICMPv6NeighborSolicitation  = 135
	ICMPv6NeighborAdvertisement = 136
	ICMPv6Redirect              = 137
)

// ICMP header lengths.
const (
	ICMPMinLen  = 4  // type, code, checksum: every ICMPv4 and ICMPv6 message
	ICMPEchoLen = 8  // echo request/reply: identifier and sequence added
	NDLen       = 24 // neighbor solicitation/advertisement without options
)

// Neighbor discovery option types (RFC 4861, section 4.6).
const (
	NDOptSourceLinkLayerAddr = 1
	NDOptTargetLinkLayerAddr = 2
)

// ICMPv4 is a view of an ICMP message (RFC 792). All messages start with
// type, code and checksum; echo request and reply go on with an identifier
// and a sequence number:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Identifier          |        Sequence Number        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Data ...
//	+-+-+-+-+-
//
// The checksum covers the whole ICMP message, without a pseudo-header. Type,
// Code and Checksum need ICMPMinLen bytes; Ident and Seq need ICMPEchoLen.
type ICMPv4 []byte

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[0] }

// SetType sets the message type.
func (b ICMPv4) SetType(t uint8) { b[0] = t }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[1] }

// SetCode sets the message code.
func (b ICMPv4) SetCode(c uint8) { b[1] = c }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// SetChecksum sets the checksum field.
func (b ICMPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[2:4], c) }

// Ident returns the echo identifier.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// SetIdent sets the echo identifier.
func (b ICMPv4) SetIdent(id uint16) { binary.BigEndian.PutUint16(b[4:6], id) }

// Seq returns the echo sequence number.
func (b ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(b[6:8]) }

// SetSeq sets the echo sequence number.
func (b ICMPv4) SetSeq(s uint16) { binary.BigEndian.PutUint16(b[6:8], s) }

// ICMPv6 is a view of an ICMPv6 message (RFC 4443). The common part and the
// echo layout are those of ICMPv4; the checksum includes the IPv6
// pseudo-header. Neighbor solicitation and advertisement (RFC 4861, sections
// 4.3 and 4.4) carry a target address:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|S|O|                     Reserved                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                       Target Address                          +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Options ...
//	+-+-+-+-+-+-+-+-+-+-+-+-
//
// R, S and O (router, solicited, override) exist in advertisements only; in
// a solicitation the whole second word is reserved. Type, Code and Checksum
// need ICMPMinLen bytes, Ident and Seq ICMPEchoLen, the ND accessors NDLen;
// Decode checks these per message type.
type ICMPv6 []byte

// Type returns the message type.
func (b ICMPv6) Type() uint8 { return b[0] }

// SetType sets the message type.
func (b ICMPv6) SetType(t uint8) { b[0] = t }

// Code returns the message code.
func (b ICMPv6) Code() uint8 { return b[1] }

// SetCode sets the message code.
func (b ICMPv6) SetCode(c uint8) { b[1] = c }

// Checksum returns the checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// SetChecksum sets the checksum field.
func (b ICMPv6) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[2:4], c) }

// Ident returns the echo identifier.
func (b ICMPv6) Ident() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// SetIdent sets the echo identifier.
func (b ICMPv6) SetIdent(id uint16) { binary.BigEndian.PutUint16(b[4:6], id) }

// Seq returns the echo sequence number.
func (b ICMPv6) Seq() uint16 { return binary.BigEndian.Uint16(b[6:8]) }

// SetSeq sets the echo sequence number.
func (b ICMPv6) SetSeq(s uint16) { binary.BigEndian.PutUint16(b[6:8], s) }

// NA flag bits in the first byte after the checksum.
const (
	naRouter    = 0x80
	naSolicited = 0x40
	naOverride  = 0x20
)

// NAFlags returns the router, solicited and override flags of a neighbor
// advertisement.
func (b ICMPv6) NAFlags() (router, solicited, override bool) {
	f := b[4]
	return f&naRouter != 0, f&naSolicited != 0, f&naOverride != 0
}

// SetNAFlags sets the router, solicited and override flags of a neighbor
// advertisement and clears the reserved bits in the same byte.
func (b ICMPv6) SetNAFlags(router, solicited, override bool) {
	var f uint8
	if router {
		f |= naRouter
	}
	if solicited {
		f |= naSolicited
	}
	if override {
		f |= naOverride
	}
	b[4] = f
}

// TargetAddress returns the target address of a neighbor solicitation or
// advertisement.
func (b ICMPv6) TargetAddress() [16]byte { return [16]byte(b[8:24]) }

// SetTargetAddress sets the target address of a neighbor solicitation or
// advertisement.
func (b ICMPv6) SetTargetAddress(a [16]byte) { copy(b[8:24], a[:]) }

// NDOptions returns the options after the fixed part of a neighbor
// solicitation or advertisement.
func (b ICMPv6) NDOptions() []byte { return b[NDLen:] }

// NDLinkLayerAddr returns the Ethernet address carried in the first option
// of type opt (NDOptSourceLinkLayerAddr or NDOptTargetLinkLayerAddr) of a
// neighbor solicitation or advertisement. ok is false when there is no such
// option or the options are malformed (a zero length, or an option running
// past the message); it never panics, whatever the option bytes.
func (b ICMPv6) NDLinkLayerAddr(opt uint8) (addr [6]byte, ok bool) {
	if len(b) < NDLen {
		return addr, false
	}
	o := b[NDLen:]
	for len(o) >= 2 {
		n := int(o[1]) * 8 // length in units of 8 octets, type and length included
		if n == 0 || n > len(o) {
			return addr, false
		}
		if o[0] == opt && n >= 8 {
			return [6]byte(o[2:8]), true
		}
		o = o[n:]
	}
	return addr, false
}

// icmpv6MinLen returns the fixed length of an ICMPv6 message of type t, the
// bytes that must be present before its accessors may be used.
func icmpv6MinLen(t uint8) int {
	switch t {
	case ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6RouterSolicitation:
		return 8
	case ICMPv6RouterAdvertisement:
		return 16
	case ICMPv6NeighborSolicitation, ICMPv6NeighborAdvertisement:
		return NDLen
	case ICMPv6Redirect:
		return 40
	}
	return ICMPMinLen
}
