package packet

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addrCmp lets go-cmp compare netip.Addr, whose fields are unexported.
var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// dirty is a Parsed with every field set, to prove Decode overwrites all.
var dirty = Parsed{
	EtherType: 0xffff, VLAN: 0xfff, HasVLAN: true,
	L3Off: 99, L4Off: 99, L4Len: 99, IPProto: 99,
	Src: netip.MustParseAddr("1.1.1.1"), Dst: netip.MustParseAddr("::1"), TTL: 99,
	SrcPort: 99, DstPort: 99, TCPFlags: 99, ICMPType: 99, ICMPCode: 99, ARPOp: 99,
	Fragment: true, FirstFragment: true, HasOptions: true,
}

type decodeCase struct {
	name  string
	frame []byte
	want  Parsed
}

func decodeCases() []decodeCase {
	solicited := netip.MustParseAddr("ff02::1:ff00:9")
	firstFrag := ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, id: 77, flags: 1, src: ip4A, dst: ip4B}.
		build(udp(1000, 2000, make([]byte, 16))))
	binary.BigEndian.PutUint16(firstFrag[14+20+4:], 3008) // the whole datagram, not this fragment

	return []decodeCase{
		{
			name:  "arp request",
			frame: frameARP(),
			want:  Parsed{EtherType: EtherTypeARP, L3Off: 14, ARPOp: ARPRequest, Src: ip4A, Dst: ip4B},
		},
		{
			name:  "arp reply",
			frame: ether(EtherTypeARP, arp(ARPReply, macB, ip4B, macA, ip4A)),
			want:  Parsed{EtherType: EtherTypeARP, L3Off: 14, ARPOp: ARPReply, Src: ip4B, Dst: ip4A},
		},
		{
			name: "ipv4 icmp echo request",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoICMP, src: ip4A, dst: ip4B}.
				build(icmpEcho(ICMPv4EchoRequest, 0x1234, 1, make([]byte, 56)))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 64, IPProto: ProtoICMP,
				Src: ip4A, Dst: ip4B, TTL: 64, DstPort: 0x1234, ICMPType: ICMPv4EchoRequest},
		},
		{
			name: "ipv4 icmp port unreachable",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoICMP, src: ip4B, dst: ip4A}.
				build([]byte{ICMPv4DestUnreachable, 3, 0, 0, 0, 0, 0, 0})),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 8, IPProto: ProtoICMP,
				Src: ip4B, Dst: ip4A, TTL: 64, ICMPType: ICMPv4DestUnreachable, ICMPCode: 3},
		},
		{
			name:  "ipv4 udp 64 bytes",
			frame: frameIPv4UDP(),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 30, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 64, SrcPort: 40000, DstPort: 53},
		},
		{
			name: "ipv4 udp with ethernet padding",
			frame: ether(EtherTypeIPv4, ip4{ttl: 1, proto: ProtoUDP, src: ip4A, dst: ip4B}.
				build(udp(1, 2, []byte{1, 2, 3, 4}))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 12, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 1, SrcPort: 1, DstPort: 2},
		},
		{
			name:  "ipv4 tcp",
			frame: frameIPv4TCP(),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 25, IPProto: ProtoTCP,
				Src: ip4A, Dst: ip4B, TTL: 63, SrcPort: 44123, DstPort: 443, TCPFlags: TCPFlagACK | TCPFlagPSH},
		},
		{
			name: "ipv4 tcp syn with options",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoTCP, src: ip4B, dst: ip4A}.
				build(tcp(80, 50000, 1, 0, TCPFlagSYN|TCPFlagECE|TCPFlagCWR, []byte{2, 4, 5, 0xb4, 1, 3, 3, 7}, nil))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 28, IPProto: ProtoTCP,
				Src: ip4B, Dst: ip4A, TTL: 64, SrcPort: 80, DstPort: 50000, TCPFlags: TCPFlagSYN | TCPFlagECE | TCPFlagCWR},
		},
		{
			name: "ipv4 with options (router alert)",
			frame: ether(EtherTypeIPv4, ip4{ttl: 1, proto: ProtoUDP, src: ip4A, dst: ip4B, opts: []byte{0x94, 4, 0, 0}}.
				build(udp(7, 8, nil))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 38, L4Len: 8, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 1, SrcPort: 7, DstPort: 8, HasOptions: true},
		},
		{
			name:  "ipv4 first fragment",
			frame: firstFrag,
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 24, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 64, SrcPort: 1000, DstPort: 2000, Fragment: true, FirstFragment: true},
		},
		{
			name: "ipv4 middle fragment",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, id: 77, flags: 1, fragOff: 1480, src: ip4A, dst: ip4B}.
				build(make([]byte, 64))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 64, Fragment: true},
		},
		{
			name: "ipv4 last fragment",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoTCP, id: 77, fragOff: 2960, src: ip4A, dst: ip4B}.
				build([]byte{1, 2, 3})),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, IPProto: ProtoTCP,
				Src: ip4A, Dst: ip4B, TTL: 64, Fragment: true},
		},
		{
			name: "ipv4 fragment at offset 32768 (top offset bit)",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, id: 77, flags: 1, fragOff: 0x1000 * 8, src: ip4A, dst: ip4B}.
				build(make([]byte, 16))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 64, Fragment: true},
		},
		{
			name: "ipv4 tcp with reserved and AE bits set",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoTCP, src: ip4A, dst: ip4B}.
				build(mangle(tcp(5, 6, 7, 8, TCPFlagACK, nil, nil), func(b []byte) []byte { b[12] |= 0x0f; return b }))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 20, IPProto: ProtoTCP,
				Src: ip4A, Dst: ip4B, TTL: 64, SrcPort: 5, DstPort: 6, TCPFlags: TCPFlagACK},
		},
		{
			name: "ipv4 dont fragment is not a fragment",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, flags: 2, src: ip4A, dst: ip4B}.
				build(udp(9, 10, nil))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 8, IPProto: ProtoUDP,
				Src: ip4A, Dst: ip4B, TTL: 64, SrcPort: 9, DstPort: 10},
		},
		{
			name: "ipv4 sctp",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoSCTP, src: ip4A, dst: ip4B}.
				build(sctp(3868, 3869))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, L4Off: 34, L4Len: 12, IPProto: ProtoSCTP,
				Src: ip4A, Dst: ip4B, TTL: 64, SrcPort: 3868, DstPort: 3869},
		},
		{
			name: "ipv4 unknown protocol (gre)",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: 47, src: ip4A, dst: ip4B}.
				build(make([]byte, 24))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, IPProto: 47, Src: ip4A, Dst: ip4B, TTL: 64},
		},
		{
			name: "ipv4 icmpv6 protocol number is unknown in ipv4",
			frame: ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoICMPv6, src: ip4A, dst: ip4B}.
				build(make([]byte, 2))),
			want: Parsed{EtherType: EtherTypeIPv4, L3Off: 14, IPProto: ProtoICMPv6, Src: ip4A, Dst: ip4B, TTL: 64},
		},
		{
			name: "vlan ipv4 udp",
			frame: etherVLAN(100, EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, src: ip4A, dst: ip4B}.
				build(udp(4789, 4789, make([]byte, 10)))),
			want: Parsed{EtherType: EtherTypeIPv4, VLAN: 100, HasVLAN: true, L3Off: 18, L4Off: 38, L4Len: 18,
				IPProto: ProtoUDP, Src: ip4A, Dst: ip4B, TTL: 64, SrcPort: 4789, DstPort: 4789},
		},
		{
			name: "vlan ipv6 tcp",
			frame: etherVLAN(4095, EtherTypeIPv6, ip6{nh: ProtoTCP, hop: 3, src: ip6A, dst: ip6B}.
				build(tcp(1, 2, 3, 4, TCPFlagFIN|TCPFlagACK, nil, nil))),
			want: Parsed{EtherType: EtherTypeIPv6, VLAN: 4095, HasVLAN: true, L3Off: 18, L4Off: 58, L4Len: 20,
				IPProto: ProtoTCP, Src: ip6A, Dst: ip6B, TTL: 3, SrcPort: 1, DstPort: 2, TCPFlags: TCPFlagFIN | TCPFlagACK},
		},
		{
			name:  "vlan unknown inner ethertype",
			frame: etherVLAN(7, 0x88cc, make([]byte, 30)),
			want:  Parsed{EtherType: 0x88cc, VLAN: 7, HasVLAN: true, L3Off: 18},
		},
		{
			name:  "double tag is an unknown inner ethertype",
			frame: etherVLAN(7, EtherTypeVLAN, make([]byte, 30)),
			want:  Parsed{EtherType: EtherTypeVLAN, VLAN: 7, HasVLAN: true, L3Off: 18},
		},
		{
			name:  "unknown ethertype (lldp)",
			frame: ether(0x88cc, make([]byte, 30)),
			want:  Parsed{EtherType: 0x88cc, L3Off: 14},
		},
		{
			name:  "ipv6 udp",
			frame: frameIPv6UDP(),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 15, IPProto: ProtoUDP,
				Src: ip6A, Dst: ip6B, TTL: 64, SrcPort: 5353, DstPort: 5353},
		},
		{
			name:  "ipv6 tcp",
			frame: frameIPv6TCP(),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 28, IPProto: ProtoTCP,
				Src: ip6A, Dst: ip6B, TTL: 64, SrcPort: 44123, DstPort: 443, TCPFlags: TCPFlagSYN},
		},
		{
			name: "ipv6 hop-by-hop then udp",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoHopByHop, hop: 1, src: ip6A, dst: ip6B}.
				build(cat(ext6(ProtoUDP, 1), udp(546, 547, []byte{1})))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 62, L4Len: 9, IPProto: ProtoUDP,
				Src: ip6A, Dst: ip6B, TTL: 1, SrcPort: 546, DstPort: 547, HasOptions: true},
		},
		{
			name: "ipv6 destination options, routing, tcp",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoDestOpts, hop: 64, src: ip6A, dst: ip6B}.
				build(cat(ext6(ProtoRouting, 2), ext6(ProtoTCP, 1), tcp(1, 2, 0, 0, TCPFlagRST, nil, nil)))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 78, L4Len: 20, IPProto: ProtoTCP,
				Src: ip6A, Dst: ip6B, TTL: 64, SrcPort: 1, DstPort: 2, TCPFlags: TCPFlagRST, HasOptions: true},
		},
		{
			name: "ipv6 first fragment",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoFragment, hop: 64, src: ip6A, dst: ip6B}.
				build(cat(frag6(ProtoUDP, 0, true, 0xabcdef), udp(5000, 5004, make([]byte, 16))[:16]))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 62, L4Len: 16, IPProto: ProtoUDP,
				Src: ip6A, Dst: ip6B, TTL: 64, SrcPort: 5000, DstPort: 5004, Fragment: true, FirstFragment: true},
		},
		{
			name: "ipv6 non-first fragment",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoFragment, hop: 64, src: ip6A, dst: ip6B}.
				build(cat(frag6(ProtoUDP, 1448, false, 0xabcdef), make([]byte, 100)))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, IPProto: ProtoUDP,
				Src: ip6A, Dst: ip6B, TTL: 64, Fragment: true},
		},
		{
			name: "ipv6 hop-by-hop then non-first fragment",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoHopByHop, hop: 64, src: ip6A, dst: ip6B}.
				build(cat(ext6(ProtoFragment, 1), frag6(ProtoTCP, 8, true, 1), make([]byte, 8)))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, IPProto: ProtoTCP,
				Src: ip6A, Dst: ip6B, TTL: 64, Fragment: true, HasOptions: true},
		},
		{
			name: "icmpv6 neighbor solicitation",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoICMPv6, hop: 255, src: ip6A, dst: solicited}.
				build(nd(ICMPv6NeighborSolicitation, 0, ip6B, NDOptSourceLinkLayerAddr, macA))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 32, IPProto: ProtoICMPv6,
				Src: ip6A, Dst: solicited, TTL: 255, ICMPType: ICMPv6NeighborSolicitation},
		},
		{
			name: "icmpv6 neighbor advertisement",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoICMPv6, hop: 255, src: ip6B, dst: ip6A}.
				build(nd(ICMPv6NeighborAdvertisement, 0x60, ip6B, NDOptTargetLinkLayerAddr, macB))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 32, IPProto: ProtoICMPv6,
				Src: ip6B, Dst: ip6A, TTL: 255, ICMPType: ICMPv6NeighborAdvertisement},
		},
		{
			name: "icmpv6 echo request",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoICMPv6, hop: 64, src: ip6A, dst: ip6B}.
				build(icmpEcho(ICMPv6EchoRequest, 0xbeef, 3, make([]byte, 56)))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 64, IPProto: ProtoICMPv6,
				Src: ip6A, Dst: ip6B, TTL: 64, DstPort: 0xbeef, ICMPType: ICMPv6EchoRequest},
		},
		{
			name: "icmpv6 router solicitation",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoICMPv6, hop: 255, src: ip6A, dst: netip.MustParseAddr("ff02::2")}.
				build([]byte{ICMPv6RouterSolicitation, 0, 0, 0, 0, 0, 0, 0})),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 8, IPProto: ProtoICMPv6,
				Src: ip6A, Dst: netip.MustParseAddr("ff02::2"), TTL: 255, ICMPType: ICMPv6RouterSolicitation},
		},
		{
			name: "ipv6 no next header",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoNoNextHeader, hop: 9, src: ip6A, dst: ip6B}.
				build(nil)),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, IPProto: ProtoNoNextHeader, Src: ip6A, Dst: ip6B, TTL: 9},
		},
		{
			name: "ipv6 icmpv4 protocol number is unknown in ipv6",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoICMP, hop: 9, src: ip6A, dst: ip6B}.
				build(make([]byte, 2))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, IPProto: ProtoICMP, Src: ip6A, Dst: ip6B, TTL: 9},
		},
		{
			name: "ipv4-mapped addresses in ipv6 stay ipv6",
			frame: ether(EtherTypeIPv6, ip6{nh: ProtoUDP, hop: 9,
				src: netip.MustParseAddr("::ffff:10.1.2.3"), dst: netip.MustParseAddr("::ffff:192.168.7.9")}.
				build(udp(1, 2, nil))),
			want: Parsed{EtherType: EtherTypeIPv6, L3Off: 14, L4Off: 54, L4Len: 8, IPProto: ProtoUDP,
				Src: netip.MustParseAddr("::ffff:10.1.2.3"), Dst: netip.MustParseAddr("::ffff:192.168.7.9"),
				TTL: 9, SrcPort: 1, DstPort: 2},
		},
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := dirty
			if r := Decode(tc.frame, &got); r != OK {
				t.Fatalf("Decode = %v, want ok", r)
			}
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
			checkViews(t, tc.frame, &got)
		})
	}
}

type malformedCase struct {
	name  string
	frame []byte
	want  Malformed
}

// mangle returns a copy of frame with f applied to it.
func mangle(frame []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), frame...))
}

func malformedCases() []malformedCase {
	v4 := func(proto uint8, payload []byte) []byte {
		return ether(EtherTypeIPv4, ip4{ttl: 64, proto: proto, src: ip4A, dst: ip4B}.build(payload))
	}
	v6 := func(nh uint8, payload []byte) []byte {
		return ether(EtherTypeIPv6, ip6{nh: nh, hop: 64, src: ip6A, dst: ip6B}.build(payload))
	}
	var tooMany []byte
	for range maxExtHeaders {
		tooMany = append(tooMany, ext6(ProtoDestOpts, 1)...)
	}
	tooMany = append(tooMany, ext6(ProtoUDP, 1)...)
	tooMany = append(tooMany, udp(1, 2, nil)...)
	var justEnough []byte
	for range maxExtHeaders - 1 {
		justEnough = append(justEnough, ext6(ProtoDestOpts, 1)...)
	}
	justEnough = append(justEnough, ext6(ProtoUDP, 1)...)
	justEnough = append(justEnough, udp(1, 2, nil)...)

	return []malformedCase{
		{"empty frame", nil, TruncatedEthernet},
		{"13 bytes", frameIPv4UDP()[:13], TruncatedEthernet},
		{"vlan tag cut", etherVLAN(1, EtherTypeIPv4, nil)[:17], TruncatedVLAN},
		{"vlan tag missing", etherVLAN(1, EtherTypeIPv4, nil)[:14], TruncatedVLAN},
		{"arp 27 bytes", frameARP()[:14+27], TruncatedARP},
		{"vlan arp 27 bytes", etherVLAN(1, EtherTypeARP, arp(1, macA, ip4A, macB, ip4B))[:18+27], TruncatedARP},
		{"arp hardware type", mangle(frameARP(), func(b []byte) []byte { b[15] = 6; return b }), BadARP},
		{"arp protocol type", mangle(frameARP(), func(b []byte) []byte { b[16] = 0x86; b[17] = 0xdd; return b }), BadARP},
		{"arp hardware length", mangle(frameARP(), func(b []byte) []byte { b[18] = 8; return b }), BadARP},
		{"arp protocol length", mangle(frameARP(), func(b []byte) []byte { b[19] = 16; return b }), BadARP},
		{"ipv4 19 bytes", frameIPv4UDP()[:14+19], TruncatedIPv4},
		{"ipv4 ihl past frame", mangle(frameIPv4UDP(), func(b []byte) []byte { b[14] = 0x4f; return b }), TruncatedIPv4},
		{"ipv4 ihl one past frame", ether(EtherTypeIPv4, ip4{ttl: 1, proto: 200, src: ip4A, dst: ip4B, opts: make([]byte, 4)}.build(nil))[:14+23], TruncatedIPv4},
		{"ipv4 with version 6", mangle(frameIPv4UDP(), func(b []byte) []byte { b[14] = 0x65; return b }), BadIPVersion},
		{"ipv6 ethertype, ipv4 packet", mangle(frameIPv4TCP(), func(b []byte) []byte {
			b[12], b[13] = 0x86, 0xdd
			return append(b, make([]byte, 40)...)
		}), BadIPVersion},
		{"ipv4 ihl 4", mangle(frameIPv4UDP(), func(b []byte) []byte { b[14] = 0x44; return b }), BadIHL},
		{"ipv4 ihl 0", mangle(frameIPv4UDP(), func(b []byte) []byte { b[14] = 0x40; return b }), BadIHL},
		{"ipv4 total length below ihl", mangle(frameIPv4UDP(), func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:18], 19)
			return refixIPv4(b, 14)
		}), BadTotalLength},
		{"ipv4 total length past frame", mangle(frameIPv4UDP(), func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:18], 51)
			return refixIPv4(b, 14)
		}), BadTotalLength},
		{"ipv4 checksum", mangle(frameIPv4UDP(), func(b []byte) []byte { b[24] ^= 0x01; return b }), BadIPv4Checksum},
		{"ipv4 ttl changed without checksum", mangle(frameIPv4UDP(), func(b []byte) []byte { b[22]--; return b }), BadIPv4Checksum},
		{"ipv4 options checksum", mangle(
			ether(EtherTypeIPv4, ip4{ttl: 1, proto: ProtoUDP, src: ip4A, dst: ip4B, opts: []byte{0x94, 4, 0, 0}}.build(udp(1, 2, nil))),
			func(b []byte) []byte { b[36] = 1; return b }), BadIPv4Checksum},
		{"ipv6 39 bytes", frameIPv6UDP()[:14+39], TruncatedIPv6},
		{"ipv6 payload length past frame", mangle(frameIPv6UDP(), func(b []byte) []byte { b[19]++; return b }), BadPayloadLength},
		{"ipv6 with version 4", mangle(frameIPv6UDP(), func(b []byte) []byte { b[14] = 0x45; return b }), BadIPVersion},
		{"hop-by-hop truncated", v6(ProtoHopByHop, make([]byte, 6)), BadExtensionHeader},
		{"hop-by-hop length past payload", v6(ProtoHopByHop, mangle(ext6(ProtoUDP, 1), func(b []byte) []byte { b[1] = 3; return b })), BadExtensionHeader},
		{"hop-by-hop not first", v6(ProtoDestOpts, cat(ext6(ProtoHopByHop, 1), ext6(ProtoUDP, 1), udp(1, 2, nil))), BadExtensionHeader},
		{"too many extension headers", v6(ProtoDestOpts, tooMany), BadExtensionHeader},
		{"fragment header truncated", v6(ProtoFragment, make([]byte, 7)), BadExtensionHeader},
		{"two fragment headers", v6(ProtoFragment, cat(frag6(ProtoFragment, 0, true, 1), frag6(ProtoUDP, 0, true, 1), udp(1, 2, nil))), BadExtensionHeader},
		{"routing header cut by payload length", mangle(v6(ProtoRouting, cat(ext6(ProtoTCP, 2), tcp(1, 2, 0, 0, 0, nil, nil))),
			func(b []byte) []byte { binary.BigEndian.PutUint16(b[18:20], 12); return b }), BadExtensionHeader},
		{"tcp 19 bytes", v4(ProtoTCP, tcp(1, 2, 0, 0, 0, nil, nil)[:19]), TruncatedL4},
		{"udp 7 bytes", v4(ProtoUDP, udp(1, 2, nil)[:7]), TruncatedL4},
		{"udp 7 bytes ipv6", v6(ProtoUDP, udp(1, 2, nil)[:7]), TruncatedL4},
		{"sctp 11 bytes", v4(ProtoSCTP, sctp(1, 2)[:11]), TruncatedL4},
		{"icmp 3 bytes", v4(ProtoICMP, []byte{ICMPv4DestUnreachable, 0, 0}), TruncatedL4},
		{"icmp echo 7 bytes", v4(ProtoICMP, icmpEcho(ICMPv4EchoReply, 1, 1, nil)[:7]), TruncatedL4},
		{"icmpv6 3 bytes", v6(ProtoICMPv6, []byte{ICMPv6DestUnreachable, 0, 0}), TruncatedL4},
		{"icmpv6 echo 7 bytes", v6(ProtoICMPv6, icmpEcho(ICMPv6EchoReply, 1, 1, nil)[:7]), TruncatedL4},
		{"icmpv6 ns 23 bytes", v6(ProtoICMPv6, nd(ICMPv6NeighborSolicitation, 0, ip6B, 1, macA)[:23]), TruncatedL4},
		{"icmpv6 na 20 bytes", v6(ProtoICMPv6, nd(ICMPv6NeighborAdvertisement, 0, ip6B, 2, macA)[:20]), TruncatedL4},
		{"icmpv6 rs 7 bytes", v6(ProtoICMPv6, []byte{ICMPv6RouterSolicitation, 0, 0, 0, 0, 0, 0}), TruncatedL4},
		{"tcp in first fragment cut short", ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoTCP, flags: 1, src: ip4A, dst: ip4B}.
			build(make([]byte, 16))), TruncatedL4},
		{"l4 length is the ip length, not the frame", mangle(frameIPv4TCP(), func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[16:18], 20+19)
			return refixIPv4(b, 14)
		}), TruncatedL4},
		{"tcp data offset 4", v4(ProtoTCP, mangle(tcp(1, 2, 0, 0, 0, nil, nil), func(b []byte) []byte { b[12] = 0x40; return b })), BadTCPDataOffset},
		{"tcp data offset 0", v6(ProtoTCP, mangle(tcp(1, 2, 0, 0, 0, nil, nil), func(b []byte) []byte { b[12] = 0; return b })), BadTCPDataOffset},
		{"tcp data offset past payload", v4(ProtoTCP, mangle(tcp(1, 2, 0, 0, 0, nil, nil), func(b []byte) []byte { b[12] = 0xf0; return b })), BadTCPDataOffset},
		{"udp length 7", v4(ProtoUDP, mangle(udp(1, 2, nil), func(b []byte) []byte { b[5] = 7; return b })), BadUDPLength},
		{"udp length 0 (no jumbograms)", v6(ProtoUDP, mangle(udp(1, 2, nil), func(b []byte) []byte { b[5] = 0; return b })), BadUDPLength},
		{"udp length past payload", v4(ProtoUDP, mangle(udp(1, 2, []byte{1, 2}), func(b []byte) []byte { b[5] = 11; return b })), BadUDPLength},
		{"udp length below 8 in first fragment", ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, flags: 1, src: ip4A, dst: ip4B}.
			build(mangle(udp(1, 2, make([]byte, 8)), func(b []byte) []byte { b[5] = 4; return b }))), BadUDPLength},
		// Boundaries that must still be accepted, checked by result only.
		{"eight extension headers", v6(ProtoDestOpts, justEnough), OK},
		{"ipv4 ihl 15 fits", ether(EtherTypeIPv4, ip4{ttl: 1, proto: 200, src: ip4A, dst: ip4B, opts: make([]byte, 40)}.build(nil)), OK},
		{"udp length shorter than payload", v4(ProtoUDP, mangle(udp(1, 2, []byte{1, 2}), func(b []byte) []byte { b[5] = 9; return b })), OK},
		{"tcp data offset 60 fits", v4(ProtoTCP, tcp(1, 2, 0, 0, 0, make([]byte, 40), nil)), OK},
	}
}

func TestDecodeMalformed(t *testing.T) {
	seen := make(map[Malformed]bool)
	for _, tc := range malformedCases() {
		t.Run(tc.name, func(t *testing.T) {
			var p Parsed
			got := Decode(tc.frame, &p)
			if diff := cmp.Diff(tc.want.String(), got.String()); diff != "" {
				t.Errorf("Decode reason mismatch (-want +got):\n%s", diff)
			}
		})
		seen[tc.want] = true
	}
	for m := Malformed(1); m < NumMalformed; m++ {
		if !seen[m] {
			t.Errorf("no malformed case yields %v", m)
		}
	}
}

// TestDecodePrefixes decodes every prefix of every table frame: whatever
// the result, it must not panic, and a prefix must never be accepted with
// offsets past its end.
func TestDecodePrefixes(t *testing.T) {
	var frames [][]byte
	for _, tc := range decodeCases() {
		frames = append(frames, tc.frame)
	}
	for _, tc := range malformedCases() {
		frames = append(frames, tc.frame)
	}
	var p Parsed
	for _, f := range frames {
		for n := 0; n <= len(f); n++ {
			b := f[:n:n]
			if Decode(b, &p) == OK {
				if int(p.L3Off) > n || int(p.L4Off)+int(p.L4Len) > n {
					t.Fatalf("prefix %d of %x: offsets past the end: %+v", n, f, p)
				}
				checkViews(t, b, &p)
			}
		}
	}
}

func TestMalformedString(t *testing.T) {
	names := make(map[string]Malformed)
	for m := Malformed(0); m < NumMalformed; m++ {
		s := m.String()
		if s == "" || s == "unknown" || strings.ToLower(s) != s || strings.ContainsAny(s, " -") {
			t.Errorf("Malformed(%d).String() = %q, want a snake_case name", m, s)
		}
		if prev, dup := names[s]; dup {
			t.Errorf("Malformed(%d) and Malformed(%d) share the name %q", prev, m, s)
		}
		names[s] = m
	}
	want := map[Malformed]string{OK: "ok", TruncatedEthernet: "truncated_ethernet", BadUDPLength: "bad_udp_length", NumMalformed: "unknown", 255: "unknown"}
	for m, w := range want {
		if got := m.String(); got != w {
			t.Errorf("Malformed(%d).String() = %q, want %q", m, got, w)
		}
	}
}
