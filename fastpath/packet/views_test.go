package packet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestViewsAtMinimumLength calls every accessor and setter of each view on
// a slice of exactly the documented minimum length: none may reach past it.
func TestViewsAtMinimumLength(t *testing.T) {
	e := Ethernet(make([]byte, EthernetLen))
	e.SetDst(e.Dst())
	e.SetSrc(e.Src())
	e.SetEtherType(e.EtherType())
	_ = e.Payload()

	v := VLANTag(make([]byte, VLANTagLen))
	v.SetTCI(v.TCI())
	v.SetVID(v.VID())
	v.SetEtherType(v.EtherType())
	_, _ = v.PCP(), v.DEI()

	a := ARP(make([]byte, ARPLen))
	a.SetEthernetIPv4()
	_, _, _, _, _ = a.HardwareType(), a.ProtocolType(), a.HardwareLen(), a.ProtocolLen(), a.IsEthernetIPv4()
	a.SetOp(a.Op())
	a.SetSenderHW(a.SenderHW())
	a.SetSenderIP(a.SenderIP())
	a.SetTargetHW(a.TargetHW())
	a.SetTargetIP(a.TargetIP())

	ip := IPv4(make([]byte, IPv4MinLen))
	ip.SetVersion(4)
	ip.SetIHL(IPv4MinLen)
	ip.SetTotalLength(IPv4MinLen)
	ip.SetTOS(ip.TOS())
	ip.SetID(ip.ID())
	ip.SetFlags(ip.Flags())
	ip.SetFragmentOffset(ip.FragmentOffset())
	ip.SetTTL(ip.TTL())
	ip.SetProtocol(ip.Protocol())
	ip.SetSrc(ip.Src())
	ip.SetDst(ip.Dst())
	ip.SetChecksum(ip.CalculateChecksum())
	_, _, _, _, _, _ = ip.Version(), ip.MoreFragments(), ip.IsFragment(), ip.Options(), ip.Payload(), ip.IsChecksumValid()
	ip.DecrementTTL()

	ip6 := IPv6(make([]byte, IPv6Len))
	ip6.SetVersion(ip6.Version())
	ip6.SetTrafficClass(ip6.TrafficClass())
	ip6.SetFlowLabel(ip6.FlowLabel())
	ip6.SetPayloadLength(ip6.PayloadLength())
	ip6.SetNextHeader(ip6.NextHeader())
	ip6.SetHopLimit(ip6.HopLimit())
	ip6.SetSrc(ip6.Src())
	ip6.SetDst(ip6.Dst())
	_ = ip6.Payload()

	f := IPv6Fragment(make([]byte, IPv6FragmentLen))
	_, _, _, _ = f.NextHeader(), f.FragmentOffset(), f.MoreFragments(), f.ID()

	ic := ICMPv4(make([]byte, ICMPEchoLen))
	ic.SetType(ic.Type())
	ic.SetCode(ic.Code())
	ic.SetChecksum(ic.Checksum())
	ic.SetIdent(ic.Ident())
	ic.SetSeq(ic.Seq())

	ic6 := ICMPv6(make([]byte, NDLen))
	ic6.SetType(ic6.Type())
	ic6.SetCode(ic6.Code())
	ic6.SetChecksum(ic6.Checksum())
	ic6.SetIdent(ic6.Ident())
	ic6.SetSeq(ic6.Seq())
	ic6.SetNAFlags(ic6.NAFlags())
	ic6.SetTargetAddress(ic6.TargetAddress())
	_ = ic6.NDOptions()
	_, _ = ic6.NDLinkLayerAddr(NDOptSourceLinkLayerAddr)
	_, _ = ICMPv6(make([]byte, ICMPMinLen)).NDLinkLayerAddr(NDOptSourceLinkLayerAddr)

	u := UDP(make([]byte, UDPLen))
	u.SetSrcPort(u.SrcPort())
	u.SetDstPort(u.DstPort())
	u.SetLength(u.Length())
	u.SetChecksum(u.Checksum())

	tc := TCP(make([]byte, TCPMinLen))
	tc.SetDataOffset(TCPMinLen)
	tc.SetSrcPort(tc.SrcPort())
	tc.SetDstPort(tc.DstPort())
	tc.SetSeq(tc.Seq())
	tc.SetAck(tc.Ack())
	tc.SetFlags(tc.Flags())
	tc.SetWindow(tc.Window())
	tc.SetChecksum(tc.Checksum())
	tc.SetUrgent(tc.Urgent())
	_ = tc.Options()
}

func TestIPv4Fields(t *testing.T) {
	h := IPv4(ip4{tos: 0xb8, ttl: 9, proto: ProtoUDP, id: 0xbeef, flags: IPv4FlagMoreFragments | IPv4FlagDontFragment,
		fragOff: 8 * 0x1abc, src: ip4A, dst: ip4B, opts: []byte{1, 1, 1, 0}}.build([]byte{1, 2, 3}))
	type fields struct {
		Version            uint8
		IHL                int
		TOS                uint8
		TotalLength, ID    uint16
		Flags              uint8
		FragmentOffset     uint16
		MoreFragments      bool
		TTL, Protocol      uint8
		Src, Dst           [4]byte
		Options, Payload   []byte
		ChecksumValid      bool
		CalculatedChecksum uint16
	}
	want := fields{4, 24, 0xb8, 27, 0xbeef, 3, 8 * 0x1abc, true, 9, ProtoUDP, ip4A.As4(), ip4B.As4(),
		[]byte{1, 1, 1, 0}, []byte{1, 2, 3}, true, h.Checksum()}
	got := fields{h.Version(), h.IHL(), h.TOS(), h.TotalLength(), h.ID(), h.Flags(), h.FragmentOffset(), h.MoreFragments(),
		h.TTL(), h.Protocol(), h.Src(), h.Dst(), h.Options(), h.Payload(), h.IsChecksumValid(), h.CalculateChecksum()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IPv4 accessors (-want +got):\n%s", diff)
	}
	h.SetFlags(0)
	if h.FragmentOffset() != 8*0x1abc || h.Flags() != 0 || h.IsFragment() != true {
		t.Errorf("SetFlags(0) disturbed the offset: %x", h[6:8])
	}
	h.SetFragmentOffset(0)
	if h.IsFragment() {
		t.Errorf("offset 0 without MF is not a fragment: %x", h[6:8])
	}
}

func TestIPv6FragmentView(t *testing.T) {
	f := IPv6Fragment(frag6(ProtoTCP, 1448, true, 0xdeadbeef))
	got := []any{f.NextHeader(), f.FragmentOffset(), f.MoreFragments(), f.ID()}
	want := []any{uint8(ProtoTCP), uint16(1448), true, uint32(0xdeadbeef)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IPv6Fragment accessors (-want +got):\n%s", diff)
	}
}

func TestVLANTag(t *testing.T) {
	v := VLANTag([]byte{0xb0 | 0x01, 0x23, 0x08, 0x00}) // PCP 5, DEI 1, VID 0x123
	got := []any{v.PCP(), v.DEI(), v.VID(), v.EtherType()}
	want := []any{uint8(5), true, uint16(0x123), uint16(EtherTypeIPv4)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VLANTag accessors (-want +got):\n%s", diff)
	}
	v.SetVID(0xfff7) // masked to 12 bits, PCP and DEI kept
	if diff := cmp.Diff([]byte{0xbf, 0xf7, 0x08, 0x00}, []byte(v)); diff != "" {
		t.Errorf("SetVID (-want +got):\n%s", diff)
	}
}

func TestNAFlags(t *testing.T) {
	for _, tc := range []struct {
		r, s, o bool
		byte4   uint8
	}{
		{false, false, false, 0x00}, {true, false, false, 0x80}, {false, true, false, 0x40},
		{false, false, true, 0x20}, {true, true, true, 0xe0}, {false, true, true, 0x60},
	} {
		m := ICMPv6(nd(ICMPv6NeighborAdvertisement, 0x1f, ip6A, 2, macA)) // reserved bits set
		m.SetNAFlags(tc.r, tc.s, tc.o)
		r, s, o := m.NAFlags()
		if m[4] != tc.byte4 || r != tc.r || s != tc.s || o != tc.o {
			t.Errorf("SetNAFlags(%v, %v, %v): byte %#02x, read back %v %v %v; want byte %#02x",
				tc.r, tc.s, tc.o, m[4], r, s, o, tc.byte4)
		}
	}
}

func TestNDLinkLayerAddr(t *testing.T) {
	ns := nd(ICMPv6NeighborSolicitation, 0, ip6B, NDOptSourceLinkLayerAddr, macA)
	nonce := []byte{14, 1, 1, 2, 3, 4, 5, 6} // RFC 3971 nonce option, 8 bytes
	tests := []struct {
		name   string
		msg    []byte
		opt    uint8
		want   [6]byte
		wantOK bool
	}{
		{"source option", ns, NDOptSourceLinkLayerAddr, macA, true},
		{"no target option", ns, NDOptTargetLinkLayerAddr, [6]byte{}, false},
		{"after another option", cat(ns[:NDLen], nonce, ns[NDLen:]), NDOptSourceLinkLayerAddr, macA, true},
		{"no options", ns[:NDLen], NDOptSourceLinkLayerAddr, [6]byte{}, false},
		{"zero length option", mangle(ns, func(b []byte) []byte { b[25] = 0; return b }), NDOptSourceLinkLayerAddr, [6]byte{}, false},
		{"option past the message", mangle(ns, func(b []byte) []byte { b[25] = 2; return b }), NDOptSourceLinkLayerAddr, [6]byte{}, false},
		{"option cut", ns[:NDLen+7], NDOptSourceLinkLayerAddr, [6]byte{}, false},
		{"message shorter than ND", ns[:10], NDOptSourceLinkLayerAddr, [6]byte{}, false},
	}
	for _, tc := range tests {
		got, ok := ICMPv6(tc.msg).NDLinkLayerAddr(tc.opt)
		if diff := cmp.Diff([]any{tc.want, tc.wantOK}, []any{got, ok}); diff != "" {
			t.Errorf("%s: NDLinkLayerAddr (-want +got):\n%s", tc.name, diff)
		}
	}
}
