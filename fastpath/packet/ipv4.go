package packet

import "encoding/binary"

// IP protocol numbers, as found in the IPv4 Protocol and the IPv6 Next
// Header fields.
const (
	ProtoHopByHop     = 0 // IPv6 hop-by-hop options header
	ProtoICMP         = 1
	ProtoIPIP         = 4 // IPv4 in IPv4 (RFC 2003)
	ProtoTCP          = 6
	ProtoUDP          = 17
	ProtoIPv6InIPv4   = 41 // IPv6 in IPv4 (RFC 4213)
	ProtoRouting      = 43 // IPv6 routing header
	ProtoFragment     = 44 // IPv6 fragment header
	ProtoICMPv6       = 58
	ProtoNoNextHeader = 59 // IPv6: nothing follows
	ProtoDestOpts     = 60 // IPv6 destination options header
	ProtoSCTP         = 132
)

// IPv4 header lengths.
const (
	IPv4MinLen = 20 // IHL 5: no options
	IPv4MaxLen = 60 // IHL 15
)

// IPv4 flag bits as returned by IPv4.Flags.
const (
	IPv4FlagMoreFragments = 1 << 0
	IPv4FlagDontFragment  = 1 << 1
)

// IPv4 is a view of an IPv4 header (RFC 791, section 3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The fixed accessors need 20 bytes. Options, Payload and the checksum
// methods also rely on IHL and Total Length fitting the slice, which Decode
// has checked for any frame it accepted. Setters do not touch the header
// checksum, except DecrementTTL, which updates it incrementally.
type IPv4 []byte

// Version returns the version nibble (4 for a valid header).
func (b IPv4) Version() uint8 { return b[0] >> 4 }

// SetVersion sets the version nibble, keeping IHL.
func (b IPv4) SetVersion(v uint8) { b[0] = v<<4 | b[0]&0x0f }

// IHL returns the header length in bytes (the IHL field times 4).
func (b IPv4) IHL() int { return int(b[0]&0x0f) << 2 }

// SetIHL sets the header length, given in bytes (a multiple of 4, 20 to 60).
func (b IPv4) SetIHL(n int) { b[0] = b[0]&0xf0 | uint8(n>>2)&0x0f }

// TOS returns the type of service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[1] }

// SetTOS sets the type of service byte.
func (b IPv4) SetTOS(t uint8) { b[1] = t }

// TotalLength returns the length of header and payload in bytes.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// SetTotalLength sets the total length.
func (b IPv4) SetTotalLength(n uint16) { binary.BigEndian.PutUint16(b[2:4], n) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// SetID sets the identification field.
func (b IPv4) SetID(id uint16) { binary.BigEndian.PutUint16(b[4:6], id) }

// Flags returns the 3 flag bits (IPv4FlagDontFragment, IPv4FlagMoreFragments;
// the top bit is reserved).
func (b IPv4) Flags() uint8 { return b[6] >> 5 }

// SetFlags sets the 3 flag bits, keeping the fragment offset.
func (b IPv4) SetFlags(f uint8) { b[6] = f<<5 | b[6]&0x1f }

// FragmentOffset returns the fragment offset in bytes (the field counts
// 8-byte units; this returns the field times 8).
func (b IPv4) FragmentOffset() uint16 { return binary.BigEndian.Uint16(b[6:8]) << 3 }

// SetFragmentOffset sets the fragment offset, given in bytes (a multiple of
// 8), keeping the flags.
func (b IPv4) SetFragmentOffset(off uint16) {
	binary.BigEndian.PutUint16(b[6:8], uint16(b[6]&0xe0)<<8|off>>3)
}

// MoreFragments reports whether the MF flag is set.
func (b IPv4) MoreFragments() bool { return b[6]&0x20 != 0 }

// IsFragment reports whether the packet is a fragment: MF set or a nonzero offset.
func (b IPv4) IsFragment() bool { return binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 }

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[8] }

// SetTTL sets the time to live without touching the checksum.
func (b IPv4) SetTTL(t uint8) { b[8] = t }

// Protocol returns the protocol of the payload (ProtoTCP, ...).
func (b IPv4) Protocol() uint8 { return b[9] }

// SetProtocol sets the protocol field.
func (b IPv4) SetProtocol(p uint8) { b[9] = p }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[10:12]) }

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[10:12], c) }

// Src returns the source address.
func (b IPv4) Src() [4]byte { return [4]byte(b[12:16]) }

// SetSrc sets the source address.
func (b IPv4) SetSrc(a [4]byte) { copy(b[12:16], a[:]) }

// Dst returns the destination address.
func (b IPv4) Dst() [4]byte { return [4]byte(b[16:20]) }

// SetDst sets the destination address.
func (b IPv4) SetDst(a [4]byte) { copy(b[16:20], a[:]) }

// Options returns the options and padding between byte 20 and IHL; empty
// when IHL is 20.
func (b IPv4) Options() []byte { return b[IPv4MinLen:b.IHL()] }

// Payload returns the bytes from IHL to Total Length, excluding any link
// layer padding after the packet.
func (b IPv4) Payload() []byte { return b[b.IHL():b.TotalLength()] }

// CalculateChecksum returns the header checksum to store in the Checksum
// field: the one's complement of the one's-complement sum of the IHL bytes
// of the header, computed as if the Checksum field were zero. The current
// value of the field does not matter.
func (b IPv4) CalculateChecksum() uint16 {
	ihl := b.IHL()
	return ^Fold(Sum(b[12:ihl], Sum(b[0:10], 0)))
}

// IsChecksumValid reports whether the header, checksum field included, sums
// to 0xFFFF (negative zero), which is what a correct checksum produces.
func (b IPv4) IsChecksumValid() bool { return Fold(Sum(b[:b.IHL()], 0)) == 0xffff }

// DecrementTTL lowers the TTL by one and updates the header checksum
// incrementally (RFC 1624, eqn. 3) rather than recomputing it. A TTL of 0 is
// left alone: the caller must have dropped such a packet already, and the
// usual check is TTL <= 1 before forwarding.
func (b IPv4) DecrementTTL() {
	if b[8] == 0 {
		return
	}
	b[8]--
	// TTL is the high byte of the 16-bit word at offset 8, so the word m
	// becomes m' = m - 0x0100 and ~m + m' = 0xFFFF - 0x0100 = 0xFEFF exactly,
	// whatever the protocol byte. HC' = ~(~HC + 0xFEFF); one fold suffices
	// because the sum is at most 0xFFFF + 0xFEFF.
	s := uint32(^binary.BigEndian.Uint16(b[10:12])) + 0xfeff
	s = s&0xffff + s>>16
	binary.BigEndian.PutUint16(b[10:12], ^uint16(s))
}
