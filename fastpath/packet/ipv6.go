package packet

import "encoding/binary"

// IPv6 header lengths.
const (
	IPv6Len         = 40 // fixed header
	IPv6FragmentLen = 8  // fragment extension header
)

// IPv6 is a view of the fixed IPv6 header (RFC 8200, section 3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                         Source Address                        +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                      Destination Address                      +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Extension headers, if any, start at offset IPv6Len; Next Header names the
// first of them. The fixed accessors need IPv6Len bytes; Payload also relies
// on Payload Length fitting the slice, which Decode has checked.
type IPv6 []byte

// Version returns the version nibble (6 for a valid header).
func (b IPv6) Version() uint8 { return b[0] >> 4 }

// SetVersion sets the version nibble, keeping traffic class and flow label.
func (b IPv6) SetVersion(v uint8) { b[0] = v<<4 | b[0]&0x0f }

// TrafficClass returns the traffic class (DSCP and ECN).
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[0:2]) >> 4) }

// SetTrafficClass sets the traffic class, keeping version and flow label.
func (b IPv6) SetTrafficClass(tc uint8) {
	w := binary.BigEndian.Uint16(b[0:2])
	binary.BigEndian.PutUint16(b[0:2], w&0xf00f|uint16(tc)<<4)
}

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(b[0:4]) & 0x000fffff }

// SetFlowLabel sets the flow label (masked to 20 bits), keeping version and
// traffic class.
func (b IPv6) SetFlowLabel(fl uint32) {
	w := binary.BigEndian.Uint32(b[0:4])
	binary.BigEndian.PutUint32(b[0:4], w&0xfff00000|fl&0x000fffff)
}

// PayloadLength returns the length of everything after the fixed header,
// extension headers included.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// SetPayloadLength sets the payload length.
func (b IPv6) SetPayloadLength(n uint16) { binary.BigEndian.PutUint16(b[4:6], n) }

// NextHeader returns the type of the header after the fixed header.
func (b IPv6) NextHeader() uint8 { return b[6] }

// SetNextHeader sets the next header field.
func (b IPv6) SetNextHeader(nh uint8) { b[6] = nh }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[7] }

// SetHopLimit sets the hop limit. IPv6 has no header checksum to update.
func (b IPv6) SetHopLimit(h uint8) { b[7] = h }

// Src returns the source address.
func (b IPv6) Src() [16]byte { return [16]byte(b[8:24]) }

// SetSrc sets the source address.
func (b IPv6) SetSrc(a [16]byte) { copy(b[8:24], a[:]) }

// Dst returns the destination address.
func (b IPv6) Dst() [16]byte { return [16]byte(b[24:40]) }

// SetDst sets the destination address.
func (b IPv6) SetDst(a [16]byte) { copy(b[24:40], a[:]) }

// Payload returns the Payload Length bytes after the fixed header, excluding
// any link layer padding.
func (b IPv6) Payload() []byte { return b[IPv6Len : IPv6Len+int(b.PayloadLength())] }

// IPv6Fragment is a view of the IPv6 fragment extension header (RFC 8200,
// section 4.5):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The view must be at least IPv6FragmentLen bytes long.
type IPv6Fragment []byte

// NextHeader returns the type of the header after this one.
func (b IPv6Fragment) NextHeader() uint8 { return b[0] }

// FragmentOffset returns the offset in bytes (the 13-bit field times 8).
func (b IPv6Fragment) FragmentOffset() uint16 { return binary.BigEndian.Uint16(b[2:4]) &^ 7 }

// MoreFragments reports whether the M flag is set.
func (b IPv6Fragment) MoreFragments() bool { return b[3]&1 != 0 }

// ID returns the identification field.
func (b IPv6Fragment) ID() uint32 { return binary.BigEndian.Uint32(b[4:8]) }
