package pipeline

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/tables/conntrack"
)

// l4Segment builds an L4 header and payload for proto with its checksum
// computed from scratch (SCTP: CRC32c; a UDP checksum of zero stays zero
// when zeroUDP).
func l4Segment(proto uint8, src, dst netip.Addr, sport, dport uint16, zeroUDP bool) []byte {
	var seg []byte
	switch proto {
	case packet.ProtoTCP:
		seg = make([]byte, 24)
		binary.BigEndian.PutUint16(seg[0:], sport)
		binary.BigEndian.PutUint16(seg[2:], dport)
		seg[12] = 5 << 4
		copy(seg[20:], "data")
		binary.BigEndian.PutUint16(seg[16:], packet.Checksum(seg, packet.PseudoHeaderSum(proto, src, dst, uint16(len(seg)))))
	case packet.ProtoUDP:
		seg = make([]byte, 13)
		binary.BigEndian.PutUint16(seg[0:], sport)
		binary.BigEndian.PutUint16(seg[2:], dport)
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
		copy(seg[8:], "odd!!")
		if !zeroUDP {
			c := packet.Checksum(seg, packet.PseudoHeaderSum(proto, src, dst, uint16(len(seg))))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(seg[6:], c)
		}
	case packet.ProtoSCTP:
		seg = make([]byte, 28)
		binary.BigEndian.PutUint16(seg[0:], sport)
		binary.BigEndian.PutUint16(seg[2:], dport)
		binary.BigEndian.PutUint32(seg[4:], 0xdeadbeef) // verification tag
		seg[12] = 1                                     // INIT chunk header, enough for the parser
		binary.BigEndian.PutUint16(seg[14:], 16)
		binary.LittleEndian.PutUint32(seg[8:], crc32.Checksum(seg, crc32.MakeTable(crc32.Castagnoli)))
	case packet.ProtoICMP, packet.ProtoICMPv6:
		seg = make([]byte, 16)
		seg[0] = packet.ICMPv4EchoRequest
		var initial uint32
		if proto == packet.ProtoICMPv6 {
			seg[0] = packet.ICMPv6EchoRequest
			initial = packet.PseudoHeaderSum(proto, src, dst, uint16(len(seg)))
		}
		binary.BigEndian.PutUint16(seg[4:], dport) // identifier
		binary.BigEndian.PutUint16(seg[6:], 7)     // sequence
		binary.BigEndian.PutUint16(seg[2:], packet.Checksum(seg, initial))
	}
	return seg
}

func l4Frame(proto uint8, src, dst netip.Addr, sport, dport uint16, zeroUDP bool) []byte {
	seg := l4Segment(proto, src, dst, sport, dport, zeroUDP)
	if src.Is4() {
		return ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4(src.String(), dst.String(), 64, proto, nil, seg))
	}
	return ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6(src.String(), dst.String(), 64, proto, seg))
}

// TestRewrite translates packets of every protocol the NAT step knows, both
// families, and compares them with the same packet built afresh at the
// new addresses and ports: every byte, checksums included, must agree.
func TestRewrite(t *testing.T) {
	type addrs struct{ src, dst, nsrc, ndst netip.Addr }
	fams := map[string]addrs{
		"IPv4": {netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("192.168.50.1"), netip.MustParseAddr("10.244.2.7")},
		"IPv6": {netip.MustParseAddr("fd00::a"), netip.MustParseAddr("fd96::10"), netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd00:2::7")},
	}
	for fam, a := range fams {
		for _, tc := range []struct {
			name    string
			proto   uint8
			zeroUDP bool
		}{
			{"TCP", packet.ProtoTCP, false}, {"UDP", packet.ProtoUDP, false}, {"UDP no checksum", packet.ProtoUDP, true},
			{"SCTP", packet.ProtoSCTP, false}, {"ICMP echo", packet.ProtoICMP, false},
		} {
			proto := tc.proto
			if proto == packet.ProtoICMP && fam == "IPv6" {
				proto = packet.ProtoICMPv6
			}
			if tc.zeroUDP && fam == "IPv6" {
				continue // IPv6 UDP has no "no checksum"
			}
			t.Run(fmt.Sprintf("%s/%s", fam, tc.name), func(t *testing.T) {
				sport, dport, nsport, ndport := uint16(40000), uint16(80), uint16(61234), uint16(8080)
				if proto == packet.ProtoICMP || proto == packet.ProtoICMPv6 {
					sport, nsport = dport, ndport // the identifier, both ways
				}
				in := l4Frame(proto, a.src, a.dst, sport, dport, tc.zeroUDP)
				want := l4Frame(proto, a.nsrc, a.ndst, nsport, ndport, tc.zeroUDP)
				var f forwarder
				if m := packet.Decode(in, &f.p); m != packet.OK {
					t.Fatal(m)
				}
				out := conntrack.KeyFrom(a.nsrc, a.ndst, nsport, ndport, proto)
				f.rewrite(in, &out)
				if string(in) != string(want) {
					t.Errorf("translated:\n% x\nwant:\n% x", in, want)
				}
				if f.p.Src != a.nsrc || f.p.Dst != a.ndst || f.p.DstPort != ndport {
					t.Errorf("parsed fields after the rewrite: %v > %v:%d", f.p.Src, f.p.Dst, f.p.DstPort)
				}
			})
		}
	}
}

// TestRewriteRandom checks incremental checksums against fresh ones over
// many random tuples, where the edge cases (sums that fold to 0 or 0xffff)
// turn up.
func TestRewriteRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr4 := func() netip.Addr {
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), 1 + byte(r.IntN(254))})
	}
	for i := range 20000 {
		proto := []uint8{packet.ProtoTCP, packet.ProtoUDP}[i%2]
		src, dst, nsrc, ndst := addr4(), addr4(), addr4(), addr4()
		sport, dport, nsport, ndport := uint16(1+r.IntN(65535)), uint16(1+r.IntN(65535)), uint16(1+r.IntN(65535)), uint16(1+r.IntN(65535))
		in := l4Frame(proto, src, dst, sport, dport, false)
		want := l4Frame(proto, nsrc, ndst, nsport, ndport, false)
		var f forwarder
		if m := packet.Decode(in, &f.p); m != packet.OK {
			t.Fatal(m)
		}
		out := conntrack.KeyFrom(nsrc, ndst, nsport, ndport, proto)
		f.rewrite(in, &out)
		if string(in) != string(want) {
			t.Fatalf("%d %v:%d > %v:%d to %v:%d > %v:%d:\n% x\nwant\n% x", proto, src, sport, dst, dport, nsrc, nsport, ndst, ndport, in, want)
		}
	}
}
