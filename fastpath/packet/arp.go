package packet

import "encoding/binary"

// ARP operations (RFC 826).
const (
	ARPRequest = 1
	ARPReply   = 2
)

// ARPLen is the length of an Ethernet/IPv4 ARP packet.
const ARPLen = 28

// ARP is a view of an ARP packet for IPv4 over Ethernet (RFC 826), the only
// kind Decode accepts:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Hardware Type (1)         |     Protocol Type (0x0800)    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  HW Len (6)   | Proto Len (4) |           Operation           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Sender Hardware Address                       |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |   Sender Protocol Address     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                 Target Hardware Address                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Target Protocol Address                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The view must be at least ARPLen bytes long.
type ARP []byte

// HardwareType returns the hardware address space (1 for Ethernet).
func (b ARP) HardwareType() uint16 { return binary.BigEndian.Uint16(b[0:2]) }

// ProtocolType returns the protocol address space (EtherTypeIPv4 for IPv4).
func (b ARP) ProtocolType() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// HardwareLen returns the hardware address length (6 for Ethernet).
func (b ARP) HardwareLen() uint8 { return b[4] }

// ProtocolLen returns the protocol address length (4 for IPv4).
func (b ARP) ProtocolLen() uint8 { return b[5] }

// IsEthernetIPv4 reports whether the fixed fields say IPv4 over Ethernet.
func (b ARP) IsEthernetIPv4() bool {
	return binary.BigEndian.Uint32(b[0:4]) == 1<<16|EtherTypeIPv4 && b[4] == 6 && b[5] == 4
}

// SetEthernetIPv4 writes the fixed fields for IPv4 over Ethernet: hardware
// type 1, protocol type EtherTypeIPv4, lengths 6 and 4.
func (b ARP) SetEthernetIPv4() {
	binary.BigEndian.PutUint32(b[0:4], 1<<16|EtherTypeIPv4)
	b[4], b[5] = 6, 4
}

// Op returns the operation (ARPRequest or ARPReply).
func (b ARP) Op() uint16 { return binary.BigEndian.Uint16(b[6:8]) }

// SetOp sets the operation.
func (b ARP) SetOp(op uint16) { binary.BigEndian.PutUint16(b[6:8], op) }

// SenderHW returns the sender hardware address.
func (b ARP) SenderHW() [6]byte { return [6]byte(b[8:14]) }

// SetSenderHW sets the sender hardware address.
func (b ARP) SetSenderHW(a [6]byte) { copy(b[8:14], a[:]) }

// SenderIP returns the sender protocol address.
func (b ARP) SenderIP() [4]byte { return [4]byte(b[14:18]) }

// SetSenderIP sets the sender protocol address.
func (b ARP) SetSenderIP(a [4]byte) { copy(b[14:18], a[:]) }

// TargetHW returns the target hardware address.
func (b ARP) TargetHW() [6]byte { return [6]byte(b[18:24]) }

// SetTargetHW sets the target hardware address.
func (b ARP) SetTargetHW(a [6]byte) { copy(b[18:24], a[:]) }

// TargetIP returns the target protocol address.
func (b ARP) TargetIP() [4]byte { return [4]byte(b[24:28]) }

// SetTargetIP sets the target protocol address.
func (b ARP) SetTargetIP(a [4]byte) { copy(b[24:28], a[:]) }
