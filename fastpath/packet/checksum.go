package packet

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The Internet checksum (RFC 1071) is the one's complement of the
// one's-complement sum of the data taken as big-endian 16-bit words, an odd
// final byte padded with a zero byte on the right. The functions below split
// it into three steps so that callers can chain pieces (a pseudo-header, a
// header with a hole where the checksum goes, a payload):
//
//	Sum      adds bytes to a running 32-bit partial sum,
//	Fold     reduces a partial sum to 16 bits with end-around carry,
//	Checksum is ^Fold(Sum(b, initial)), the value stored in a header.
//
// A partial sum is any uint32 congruent, modulo 0xFFFF, to the sum of the
// words it has seen; 2^16 and 2^32 are both 1 modulo 0xFFFF, so carries out
// of bit 15 or bit 31 may be folded back in at any time without changing
// the result. Chaining Sum over pieces gives the same result as one Sum
// over their concatenation when every piece but the last has an even length.

// Sum adds the bytes of b, as big-endian 16-bit words, to the partial sum
// initial and returns the new partial sum. If len(b) is odd, the last byte
// is taken as the high byte of a word whose low byte is zero. The result is
// not folded to 16 bits; pass it to Fold or Checksum, or to Sum again as the
// initial value for the next piece.
func Sum(b []byte, initial uint32) uint32 {
	acc := uint64(initial)
	var c uint64
	// 8-byte words with add-with-carry; 2^64 is 1 modulo 0xFFFF too, so the
	// carry out of bit 63 is added back at the end.
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	// The tail adds at most 2^32 + 2^16 + 2^8; give it room below 2^64 by
	// folding to 33 bits first (which also absorbs the pending carry).
	acc = acc>>32 + acc&0xffffffff + c
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b[0:4]))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b[0:2]))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	// acc < 2^35: two folds bring it below 2^32.
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	return uint32(acc)
}

// Fold reduces a partial sum to 16 bits by adding the carries back in (end-
// around carry) and returns the folded sum itself, not its complement.
// Fold(0) is 0; any nonzero sum folds to a value in [1, 0xFFFF], with 0xFFFF
// (negative zero) for sums that are a nonzero multiple of 0xFFFF. Data that
// includes a correct checksum therefore folds to 0xFFFF.
func Fold(sum uint32) uint16 {
	s := sum>>16 + sum&0xffff // at most 0x1FFFE
	s = s>>16 + s&0xffff      // at most 0xFFFF
	return uint16(s)
}

// Checksum returns the Internet checksum of b with the partial sum initial
// (for example a PseudoHeaderSum) added in: ^Fold(Sum(b, initial)), the
// value to store in a header's checksum field while that field is zero.
func Checksum(b []byte, initial uint32) uint16 {
	return ^Fold(Sum(b, initial))
}

// PseudoHeaderSum returns the partial sum of the pseudo-header that TCP, UDP
// and ICMPv6 checksums cover: for IPv4 (RFC 768, RFC 9293) the two
// addresses, the protocol and the 16-bit L4 length; for IPv6 (RFC 8200,
// section 8.1) the two addresses, the 32-bit upper-layer length and the next
// header. src and dst must be of the same family; IPv4 is used when both
// are IPv4 (Is4), otherwise both are taken as 16-byte addresses (an IPv4
// address as its IPv4-mapped form, the zero Addr as ::).
func PseudoHeaderSum(proto uint8, src, dst netip.Addr, length uint16) uint32 {
	// The word order does not matter to a one's-complement sum, and the IPv4
	// and IPv6 layouts add the same protocol and length words (the upper 16
	// bits of the IPv6 32-bit length and the zero bytes are zero), so the
	// families differ only in the addresses.
	acc := uint64(proto) + uint64(length)
	if src.Is4() && dst.Is4() {
		s, d := src.As4(), dst.As4()
		acc += uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:]))
	} else {
		s, d := src.As16(), dst.As16()
		for _, w := range [4]uint64{
			binary.BigEndian.Uint64(s[0:8]), binary.BigEndian.Uint64(s[8:16]),
			binary.BigEndian.Uint64(d[0:8]), binary.BigEndian.Uint64(d[8:16]),
		} {
			acc += w>>32 + w&0xffffffff
		}
	}
	// acc < 2^36: two folds bring it below 2^32.
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	return uint32(acc)
}

// UpdateChecksum16 returns the checksum check after one 16-bit word of the
// covered data changes from old to new, without touching the rest of the
// data: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'). Unlike eqn. 2 this never
// turns a valid checksum into the wrong zero.
func UpdateChecksum16(check, old, new uint16) uint16 {
	s := uint32(^check) + uint32(^old) + uint32(new) // at most 3*0xFFFF
	return ^Fold(s)
}

// UpdateChecksum32 returns the checksum check after a 4-byte, 16-bit aligned
// field of the covered data (an IPv4 address, also one in a pseudo-header)
// changes from old to new: eqn. 3 applied to both words at once.
func UpdateChecksum32(check uint16, old, new [4]byte) uint16 {
	o := binary.BigEndian.Uint32(old[:])
	n := binary.BigEndian.Uint32(new[:])
	s := uint32(^check) + (^o)>>16 + (^o)&0xffff + n>>16 + n&0xffff // at most 5*0xFFFF
	return ^Fold(s)
}

// L4Checksum computes the full checksum of the L4 header and data of an
// already decoded frame (p from Decode on frame with result OK), as the
// value to store in its checksum field: the current field value is skipped,
// not summed. TCP, UDP and ICMPv6 include their pseudo-header built from
// p.Src, p.Dst and the L4 length (for UDP, the UDP Length field, which
// bounds what the checksum covers); ICMPv4 has none. A UDP result of zero
// is returned as 0xFFFF, which is how RFC 768 transmits it.
//
// It returns 0 when there is nothing to compute: no L4 header parsed
// (p.L4Off == 0), a fragment (the checksum covers the reassembled datagram),
// SCTP (CRC32c, not an Internet checksum), or offsets that do not fit the
// frame. For IPv6 with a routing header, p.Dst is the address in the fixed
// header, not the final destination the pseudo-header would need.
func L4Checksum(p *Parsed, frame []byte) uint16 {
	if p.L4Off == 0 || p.Fragment {
		return 0
	}
	start, end := int(p.L4Off), int(p.L4Off)+int(p.L4Len)
	if end > len(frame) {
		return 0
	}
	seg := frame[start:end]
	var at int // offset of the checksum field in seg
	var initial uint32
	switch p.IPProto {
	case ProtoTCP:
		if len(seg) < TCPMinLen {
			return 0
		}
		at = 16
		initial = PseudoHeaderSum(ProtoTCP, p.Src, p.Dst, uint16(len(seg)))
	case ProtoUDP:
		if len(seg) < UDPLen {
			return 0
		}
		n := int(UDP(seg).Length())
		if n < UDPLen || n > len(seg) {
			return 0
		}
		seg = seg[:n]
		at = 6
		initial = PseudoHeaderSum(ProtoUDP, p.Src, p.Dst, uint16(n))
	case ProtoICMP:
		if p.EtherType != EtherTypeIPv4 || len(seg) < ICMPMinLen {
			return 0
		}
		at = 2
	case ProtoICMPv6:
		if p.EtherType != EtherTypeIPv6 || len(seg) < ICMPMinLen {
			return 0
		}
		at = 2
		initial = PseudoHeaderSum(ProtoICMPv6, p.Src, p.Dst, uint16(len(seg)))
	default:
		return 0
	}
	// at is even, so summing around the checksum field keeps word alignment.
	c := ^Fold(Sum(seg[at+2:], Sum(seg[:at], initial)))
	if c == 0 && p.IPProto == ProtoUDP {
		c = 0xffff
	}
	return c
}
