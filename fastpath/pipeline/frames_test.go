package pipeline

import (
	"encoding/binary"
	"net/netip"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// Frame builders for the tests: plain byte layouts written out by hand, so
// that they do not depend on the code under test (checksums aside, which
// package packet's own tests pin down).

var (
	gwMAC  = [6]byte{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	testGW = Gateway{MAC: gwMAC, IPv4: [4]byte{169, 254, 1, 1},
		IPv6: netip.MustParseAddr("fe80::1").As16()}
)

func ether(dst, src [6]byte, typ uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], typ)
	return append(f, payload...)
}

// ipv4 builds an IPv4 packet with a correct header checksum. opts must be a
// multiple of 4 bytes.
func ipv4(src, dst string, ttl, proto uint8, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	h := make([]byte, hl, hl+len(payload))
	h[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(h[2:4], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(h[4:6], 0x1234)
	h[6] = 0x40 // DF
	h[8], h[9] = ttl, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	copy(h[20:], opts)
	binary.BigEndian.PutUint16(h[10:12], packet.Checksum(h[:hl], 0))
	return append(h, payload...)
}

func udpPayload(n int) []byte {
	u := make([]byte, 8+n)
	binary.BigEndian.PutUint16(u[0:2], 40000)
	binary.BigEndian.PutUint16(u[2:4], 5001)
	binary.BigEndian.PutUint16(u[4:6], uint16(8+n))
	for i := range n {
		u[8+i] = byte(i)
	}
	return u
}

func udp4Frame(srcMAC [6]byte, src, dst string, ttl uint8) []byte {
	return ether(gwMAC, srcMAC, packet.EtherTypeIPv4, ipv4(src, dst, ttl, packet.ProtoUDP, nil, udpPayload(18)))
}

func ipv6(src, dst string, hop, next uint8, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(payload)))
	h[6], h[7] = next, hop
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return append(h, payload...)
}

func udp6Frame(srcMAC [6]byte, src, dst string, hop uint8) []byte {
	return ether(gwMAC, srcMAC, packet.EtherTypeIPv6, ipv6(src, dst, hop, packet.ProtoUDP, udpPayload(18)))
}

func arpRequest(srcMAC [6]byte, sender, target string) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], packet.EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], packet.ARPRequest)
	copy(a[8:14], srcMAC[:])
	s, t := netip.MustParseAddr(sender).As4(), netip.MustParseAddr(target).As4()
	copy(a[14:18], s[:])
	copy(a[24:28], t[:])
	return ether([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, srcMAC, packet.EtherTypeARP, a)
}

// neighborSolicit builds an NS for target from src with a source
// link-layer address option and a correct checksum.
func neighborSolicit(srcMAC [6]byte, src, target string) []byte {
	ns := make([]byte, 32)
	ns[0] = packet.ICMPv6NeighborSolicitation
	t := netip.MustParseAddr(target).As16()
	copy(ns[8:24], t[:])
	ns[24], ns[25] = packet.NDOptSourceLinkLayerAddr, 1
	copy(ns[26:32], srcMAC[:])
	// Solicited-node multicast address of the target.
	dst := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	sum := packet.PseudoHeaderSum(packet.ProtoICMPv6, netip.MustParseAddr(src), dst, uint16(len(ns)))
	binary.BigEndian.PutUint16(ns[2:4], packet.Checksum(ns, sum))
	return ether([6]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}, srcMAC, packet.EtherTypeIPv6,
		ipv6(src, dst.String(), 255, packet.ProtoICMPv6, ns))
}
