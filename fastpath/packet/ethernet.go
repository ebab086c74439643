package packet

import "encoding/binary"

// EtherType values Decode understands. EtherTypeVLAN is the 802.1Q tag
// protocol identifier; Decode looks through at most one such tag.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86DD
	EtherTypeVLAN = 0x8100
)

// Header lengths of the link layer.
const (
	EthernetLen = 14 // destination, source, EtherType
	VLANTagLen  = 4  // 802.1Q TCI and inner EtherType
)

// Ethernet is a view of an Ethernet II header (IEEE 802.3 with an EtherType):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination MAC Address                    |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                      Source MAC Address                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// With an 802.1Q tag, EtherType holds EtherTypeVLAN and the tag (a VLANTag
// view) follows at offset EthernetLen. The view must be at least EthernetLen
// bytes long.
type Ethernet []byte

// Dst returns the destination MAC address.
func (b Ethernet) Dst() [6]byte { return [6]byte(b[0:6]) }

// SetDst sets the destination MAC address.
func (b Ethernet) SetDst(a [6]byte) { copy(b[0:6], a[:]) }

// Src returns the source MAC address.
func (b Ethernet) Src() [6]byte { return [6]byte(b[6:12]) }

// SetSrc sets the source MAC address.
func (b Ethernet) SetSrc(a [6]byte) { copy(b[6:12], a[:]) }

// EtherType returns the outer EtherType at offset 12 (EtherTypeVLAN for a
// tagged frame).
func (b Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(b[12:14]) }

// SetEtherType sets the outer EtherType.
func (b Ethernet) SetEtherType(t uint16) { binary.BigEndian.PutUint16(b[12:14], t) }

// Payload returns the bytes after the 14-byte header (the VLAN tag, if any,
// is part of the payload).
func (b Ethernet) Payload() []byte { return b[EthernetLen:] }

// VLANTag is a view of the 4 bytes of an IEEE 802.1Q tag that follow the
// TPID (EtherTypeVLAN) in the outer EtherType field:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| PCP |D|         VLAN ID       |        Inner EtherType        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// PCP is the priority code point, D the drop eligible indicator. The view
// must be at least VLANTagLen bytes long.
type VLANTag []byte

// TCI returns the whole 16-bit tag control information field.
func (b VLANTag) TCI() uint16 { return binary.BigEndian.Uint16(b[0:2]) }

// SetTCI sets the whole tag control information field.
func (b VLANTag) SetTCI(tci uint16) { binary.BigEndian.PutUint16(b[0:2], tci) }

// VID returns the 12-bit VLAN identifier.
func (b VLANTag) VID() uint16 { return b.TCI() & 0x0fff }

// SetVID sets the VLAN identifier, keeping PCP and DEI; vid is masked to 12 bits.
func (b VLANTag) SetVID(vid uint16) { b.SetTCI(b.TCI()&0xf000 | vid&0x0fff) }

// PCP returns the 3-bit priority code point.
func (b VLANTag) PCP() uint8 { return b[0] >> 5 }

// DEI reports the drop eligible indicator bit.
func (b VLANTag) DEI() bool { return b[0]&0x10 != 0 }

// EtherType returns the inner EtherType.
func (b VLANTag) EtherType() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// SetEtherType sets the inner EtherType.
func (b VLANTag) SetEtherType(t uint16) { binary.BigEndian.PutUint16(b[2:4], t) }
