package encap

import (
	"encoding/binary"
	"net/netip"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// The VXLAN header (RFC 7348, section 5), after the outer UDP header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The first word is exactly vxlanFlags (I set, every R clear); the last byte
// is zero.
const (
	vxlanLen   = 8
	vxlanFlags = 0x08000000 // the first word: I flag, reserved bits zero
	vniMask    = 1<<24 - 1

	udpOff   = outerLen               // outer UDP header in the outer frame
	vxlanOff = udpOff + packet.UDPLen // VXLAN header in the outer frame

	// srcPortBase is the bottom of the dynamic port range (RFC 6335) that
	// RFC 7348, section 5, recommends for the hashed UDP source port; the
	// hash fills the low 14 bits.
	srcPortBase = 49152
	srcPortMask = 1<<14 - 1

	maxIPv4Total = 1<<16 - 1
)

// VXLAN is a VXLAN tunnel endpoint's settings: the network identifier it
// sends and accepts, and the UDP port it sends to and listens on (FlannelPort
// to interwork with Flannel and Linux defaults, IANAPort for the registered
// one). VNI must be below 1<<24; higher bits are ignored, on both sides. A
// VXLAN is read-only once the workers use it.
type VXLAN struct {
	VNI  uint32
	Port uint16
}

// Encap encapsulates, in place, the inner Ethernet frame buf[off:off+n] for
// sending to the peer that o describes. It writes the outer Ethernet, IPv4,
// UDP and VXLAN headers into the headroom buf[off-VXLANOverhead:off] and
// returns start = off-VXLANOverhead and true: the outer frame is
// buf[start:start+n+VXLANOverhead]. The inner frame is not modified.
//
// The outer IPv4 header has DF set, TTL 64, TOS 0 and identification ipID
// (any value will do with DF set, RFC 6864; a per-worker counter is fine).
// The UDP source port is 49152 | FlowHash(inner)&0x3fff, so that one flow
// always takes one path while ECMP and RSS in the underlay spread flows; the
// UDP checksum is zero (RFC 7348 allows it over IPv4, and it is Linux's
// default). The inner frame's own checksums must already be complete.
//
// Encap returns false and writes nothing if off < VXLANOverhead, n < 14,
// off+n > len(buf), the outer packet would exceed 65535 bytes, or o is the
// zero Outer.
func (v *VXLAN) Encap(buf []byte, off, n int, o *Outer, ipID uint16) (start int, ok bool) {
	if off < VXLANOverhead || n < packet.EthernetLen || off > len(buf) || n > len(buf)-off ||
		n > maxIPv4Total-packet.IPv4MinLen-packet.UDPLen-vxlanLen || o.sum == 0 {
		return 0, false
	}
	start = off - VXLANOverhead
	h := buf[start:off:off]
	total := n + packet.IPv4MinLen + packet.UDPLen + vxlanLen
	writeOuter(h[:outerLen], o, packet.ProtoUDP, total, ipID)

	u := h[udpOff:vxlanOff]
	binary.BigEndian.PutUint16(u[0:2], srcPortBase|uint16(FlowHash(buf[off:off+n]))&srcPortMask)
	binary.BigEndian.PutUint16(u[2:4], v.Port)
	binary.BigEndian.PutUint16(u[4:6], uint16(n+packet.UDPLen+vxlanLen))
	binary.BigEndian.PutUint16(u[6:8], 0) // no checksum

	x := h[vxlanOff:VXLANOverhead]
	binary.BigEndian.PutUint32(x[0:4], vxlanFlags)
	binary.BigEndian.PutUint32(x[4:8], (v.VNI&vniMask)<<8)
	return start, true
}

// Decap validates an outer frame received on the uplink for this tunnel
// endpoint, whose underlay address is local, and returns where the inner
// Ethernet frame is, frame[inner:end], and the outer source address src,
// which the caller checks is a known peer's VTEP. With err other than OK
// the frame must be dropped and counted by err; inner, end and src are then
// meaningless. Decap does not modify frame.
//
// The inner frame ends where the UDP datagram ends, by its length field,
// which is never past the IPv4 total length: bytes after that (Ethernet
// padding) are not part of it. With our own encapsulation, as with Linux's,
// end is 14 + the outer total length.
//
// Decap checks, in this order (the first failing check names the reason):
// an untagged IPv4 EtherType; IPv4 version 4 and IHL 5 (no options); total
// length within the frame; the header checksum; no fragment; destination
// local; protocol UDP; the UDP length within the IPv4 packet and long enough
// for the VXLAN header; destination port v.Port; a nonzero UDP checksum (a
// zero one is accepted); the VXLAN header (I flag set; every reserved bit
// clear, as Linux requires of frames without VXLAN extensions, though RFC
// 7348 says receivers ignore them); VNI v.VNI; and at least 14 bytes of
// inner frame. It does not look inside the inner frame.
//
// On a veth underlay (tests, the demo), a Linux peer's frames can carry
// checksums that the kernel left unfinished for an offload that veth never
// performs (CHECKSUM_PARTIAL); if that peer sends UDP checksums, they fail as
// BadChecksum. Switch transmit checksum offload off on the peer's veth, as
// on a pod's; a real NIC finishes them on the wire.
func (v *VXLAN) Decap(frame []byte, local [4]byte) (inner, end int, src [4]byte, err Error) {
	total, proto, src, err := checkOuter(frame, local)
	if err != OK {
		return 0, 0, src, err
	}
	if proto != packet.ProtoUDP {
		return 0, 0, src, WrongProtocol
	}
	if total < packet.IPv4MinLen+packet.UDPLen+vxlanLen {
		return 0, 0, src, Truncated
	}
	h := frame[udpOff:VXLANOverhead:VXLANOverhead]
	u := packet.UDP(h[:packet.UDPLen])
	ulen := int(u.Length())
	if ulen < packet.UDPLen+vxlanLen || ulen > total-packet.IPv4MinLen {
		return 0, 0, src, Truncated
	}
	if u.DstPort() != v.Port {
		return 0, 0, src, WrongPort
	}
	end = udpOff + ulen
	if u.Checksum() != 0 {
		ph := packet.PseudoHeaderSum(packet.ProtoUDP, netip.AddrFrom4(src), netip.AddrFrom4(local), uint16(ulen))
		if packet.Fold(packet.Sum(frame[udpOff:end], ph)) != 0xffff {
			return 0, 0, src, BadChecksum
		}
	}
	x := h[packet.UDPLen:]
	if binary.BigEndian.Uint32(x[0:4]) != vxlanFlags || x[7] != 0 {
		return 0, 0, src, BadVXLANHeader
	}
	if binary.BigEndian.Uint32(x[4:8])>>8 != v.VNI&vniMask {
		return 0, 0, src, WrongVNI
	}
	if ulen-packet.UDPLen-vxlanLen < packet.EthernetLen {
		return 0, 0, src, InnerTruncated
	}
	return VXLANOverhead, end, src, OK
}
