package encap

import (
	"encoding/binary"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// Header room and the well-known VXLAN settings.
const (
	VXLANOverhead = 50   // outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
	IPIPOverhead  = 20   // outer IPv4 header; the inner Ethernet header's 14 bytes are reused for the outer Ethernet header
	FlannelPort   = 8472 // Flannel's and Linux's default VXLAN port
	IANAPort      = 4789 // the port IANA assigned to VXLAN (RFC 7348)
	FlannelVNI    = 1    // the VNI Flannel's vxlan backend uses
)

// The outer IPv4 header every encapsulation writes:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   4   |   5   |       0       |   Total Length (per packet)   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Identification (ipID)      |0|1|0|    Fragment Offset 0    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    TTL 64     | 17, 4 or 41   |   Header Checksum (computed)  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Outer.SrcIP                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Outer.DstIP                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The flags word is DF alone: see the package comment for why.
const (
	outerVerIHL  = 0x45   // version 4, IHL 5 words
	outerFlagsDF = 0x4000 // DF set, MF clear, offset 0
	outerTTL     = 64
)

// Outer holds the underlay header fields for one peer: the outer Ethernet
// addresses (this node's uplink and the next hop towards the peer) and the
// outer IPv4 addresses (this node's and the peer's tunnel endpoints).
//
// Build it with NewOuter, which also precomputes the part of the IPv4 header
// checksum that is the same for every packet, so that Encap only adds the
// length, ID and protocol. An Outer is a value that the control plane builds
// once per peer and the workers only read; to change a field, build a new
// one with NewOuter (changing SrcIP or DstIP in place leaves the precomputed
// sum stale and the checksum wrong). The zero Outer is not usable: Encap and
// EncapIPIP refuse it.
type Outer struct {
	SrcMAC, DstMAC [6]byte // outer Ethernet source (our uplink) and destination (next hop)
	SrcIP, DstIP   [4]byte // outer IPv4 source (our VTEP) and destination (the peer's)

	// sum is the one's-complement partial sum of the outer IPv4 header's
	// per-peer constant words: version/IHL/TOS, flags/offset, TTL, and the
	// two addresses. It is never 0 for an Outer from NewOuter, which is how
	// the zero Outer is told apart.
	sum uint32
}

// NewOuter returns the Outer for sending from srcMAC/srcIP to dstMAC/dstIP.
func NewOuter(srcMAC, dstMAC [6]byte, srcIP, dstIP [4]byte) Outer {
	sum := uint32(outerVerIHL)<<8 + outerFlagsDF + outerTTL<<8 +
		uint32(binary.BigEndian.Uint16(srcIP[0:2])) + uint32(binary.BigEndian.Uint16(srcIP[2:4])) +
		uint32(binary.BigEndian.Uint16(dstIP[0:2])) + uint32(binary.BigEndian.Uint16(dstIP[2:4]))
	return Outer{SrcMAC: srcMAC, DstMAC: dstMAC, SrcIP: srcIP, DstIP: dstIP, sum: sum}
}

// writeOuter writes the outer Ethernet and IPv4 headers into h, which must
// be exactly packet.EthernetLen+packet.IPv4MinLen bytes; total is the IPv4
// total length. The caller has checked that total fits 16 bits.
func writeOuter(h []byte, o *Outer, proto uint8, total int, ipID uint16) {
	h = h[:packet.EthernetLen+packet.IPv4MinLen]
	copy(h[0:6], o.DstMAC[:])
	copy(h[6:12], o.SrcMAC[:])
	binary.BigEndian.PutUint16(h[12:14], packet.EtherTypeIPv4)
	h[14] = outerVerIHL
	h[15] = 0 // TOS
	binary.BigEndian.PutUint16(h[16:18], uint16(total))
	binary.BigEndian.PutUint16(h[18:20], ipID)
	binary.BigEndian.PutUint16(h[20:22], outerFlagsDF)
	h[22] = outerTTL
	h[23] = proto
	// o.sum < 2^19 and the three words below add less than 2^18: no
	// overflow, and Fold takes care of the carries.
	binary.BigEndian.PutUint16(h[24:26], ^packet.Fold(o.sum+uint32(total)+uint32(ipID)+uint32(proto)))
	copy(h[26:30], o.SrcIP[:])
	copy(h[30:34], o.DstIP[:])
}

// outerLen is the length of the outer Ethernet and IPv4 headers.
const outerLen = packet.EthernetLen + packet.IPv4MinLen

// checkOuter validates the outer Ethernet and IPv4 headers of frame, which
// is addressed to local, and returns the IPv4 total length and protocol and
// the outer source address. frame is at least outerLen bytes and total at
// least packet.IPv4MinLen and at most len(frame)-packet.EthernetLen when err
// is OK.
func checkOuter(frame []byte, local [4]byte) (total int, proto uint8, src [4]byte, err Error) {
	if len(frame) < packet.EthernetLen {
		return 0, 0, src, Truncated
	}
	if packet.Ethernet(frame).EtherType() != packet.EtherTypeIPv4 {
		return 0, 0, src, NotIPv4
	}
	if len(frame) < outerLen {
		return 0, 0, src, Truncated
	}
	ip := packet.IPv4(frame[packet.EthernetLen:outerLen:outerLen])
	if ip.Version() != 4 || ip.IHL() < packet.IPv4MinLen {
		return 0, 0, src, BadIPHeader
	}
	if ip.IHL() != packet.IPv4MinLen {
		return 0, 0, src, IPOptions
	}
	total = int(ip.TotalLength())
	if total < packet.IPv4MinLen || total > len(frame)-packet.EthernetLen {
		return 0, 0, src, BadIPHeader
	}
	if !ip.IsChecksumValid() {
		return 0, 0, src, BadChecksum
	}
	if ip.IsFragment() {
		return 0, 0, src, Fragment
	}
	if ip.Dst() != local {
		return 0, 0, src, NotLocal
	}
	return total, ip.Protocol(), ip.Src(), OK
}
