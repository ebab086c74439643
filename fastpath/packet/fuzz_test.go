package packet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode feeds arbitrary frames to Decode. No input may panic. For every
// accepted frame, checkViews proves that the header views read back exactly
// what Parsed says and that the setters rebuild the identical bytes, and the
// L4 checksum and TTL helpers are exercised on a copy.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases() {
		f.Add(tc.frame)
	}
	for _, tc := range malformedCases() {
		f.Add(tc.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		fuzzOne(t, frame)
		// Mutated IPv4 headers almost never keep a valid checksum, which
		// would hide everything past it from the fuzzer: try each input a
		// second time with the header checksum made right.
		if fixed, ok := withIPv4Checksum(frame); ok {
			fuzzOne(t, fixed)
		}
	})
}

func fuzzOne(t *testing.T, frame []byte) {
	var p Parsed
	r := Decode(frame, &p)
	if r >= NumMalformed {
		t.Fatalf("Decode returned %d, past NumMalformed", r)
	}
	if r != OK {
		return
	}
	checkViews(t, frame, &p)
	checkL4Checksum(t, frame, &p)
	checkDecrementTTL(t, frame, &p)
}

// withIPv4Checksum returns a copy of frame with the IPv4 header checksum
// recomputed by the reference model, if frame looks like IPv4 far enough
// for that.
func withIPv4Checksum(frame []byte) ([]byte, bool) {
	l3 := EthernetLen
	if len(frame) >= EthernetLen+VLANTagLen && Ethernet(frame).EtherType() == EtherTypeVLAN {
		l3 += VLANTagLen
	}
	if len(frame) < l3+IPv4MinLen || binary.BigEndian.Uint16(frame[l3-2:l3]) != EtherTypeIPv4 {
		return nil, false
	}
	ihl := int(frame[l3]&0x0f) * 4
	if ihl < IPv4MinLen || l3+ihl > len(frame) {
		return nil, false
	}
	c := bytes.Clone(frame)
	return refixIPv4(c, l3), true
}

// viewsParsed decodes frame again through the header views alone, trusting
// p only for the offsets and the facts that need the extension header walk
// (final protocol, fragment position). checkViews compares it with p.
func viewsParsed(frame []byte, p *Parsed) Parsed {
	var v Parsed
	eth := Ethernet(frame)
	v.EtherType = eth.EtherType()
	v.L3Off = EthernetLen
	if v.EtherType == EtherTypeVLAN {
		tag := VLANTag(eth.Payload())
		v.HasVLAN, v.VLAN, v.EtherType = true, tag.VID(), tag.EtherType()
		v.L3Off += VLANTagLen
	}
	l3 := frame[v.L3Off:]
	switch v.EtherType {
	case EtherTypeARP:
		a := ARP(l3)
		v.ARPOp = a.Op()
		v.Src, v.Dst = netip.AddrFrom4(a.SenderIP()), netip.AddrFrom4(a.TargetIP())
		return v
	case EtherTypeIPv4:
		ip := IPv4(l3)
		v.TTL, v.IPProto = ip.TTL(), ip.Protocol()
		v.Src, v.Dst = netip.AddrFrom4(ip.Src()), netip.AddrFrom4(ip.Dst())
		v.HasOptions = len(ip.Options()) > 0
		v.Fragment = ip.IsFragment()
		v.FirstFragment = v.Fragment && ip.FragmentOffset() == 0
		if v.Fragment && !v.FirstFragment {
			return v
		}
	case EtherTypeIPv6:
		ip := IPv6(l3)
		v.TTL = ip.HopLimit()
		v.Src, v.Dst = netip.AddrFrom16(ip.Src()), netip.AddrFrom16(ip.Dst())
		v.IPProto, v.Fragment, v.FirstFragment, v.HasOptions = p.IPProto, p.Fragment, p.FirstFragment, p.HasOptions
	default:
		return v
	}
	if p.L4Off == 0 {
		return v
	}
	v.L4Off, v.L4Len = p.L4Off, p.L4Len
	l4 := frame[p.L4Off : int(p.L4Off)+int(p.L4Len)]
	switch v.IPProto {
	case ProtoTCP:
		v.SrcPort, v.DstPort, v.TCPFlags = TCP(l4).SrcPort(), TCP(l4).DstPort(), TCP(l4).Flags()
	case ProtoUDP:
		v.SrcPort, v.DstPort = UDP(l4).SrcPort(), UDP(l4).DstPort()
	case ProtoSCTP:
		v.SrcPort, v.DstPort = UDP(l4).SrcPort(), UDP(l4).DstPort() // same first 4 bytes
	case ProtoICMP:
		ic := ICMPv4(l4)
		v.ICMPType, v.ICMPCode = ic.Type(), ic.Code()
		if v.ICMPType == ICMPv4EchoRequest || v.ICMPType == ICMPv4EchoReply {
			v.DstPort = ic.Ident()
		}
	case ProtoICMPv6:
		ic := ICMPv6(l4)
		v.ICMPType, v.ICMPCode = ic.Type(), ic.Code()
		if v.ICMPType == ICMPv6EchoRequest || v.ICMPType == ICMPv6EchoReply {
			v.DstPort = ic.Ident()
		}
	}
	return v
}

// checkViews checks an accepted frame against its Parsed: the views read
// back what Parsed says; the offsets agree with the length fields; setting
// every field through the setters to the parsed values leaves the frame
// unchanged; and each fixed header rebuilt from zero through the setters is
// byte for byte the original.
func checkViews(t testing.TB, frame []byte, p *Parsed) {
	t.Helper()
	if diff := cmp.Diff(viewsParsed(frame, p), *p, addrCmp); diff != "" {
		t.Fatalf("views disagree with Parsed (-views +parsed):\n%s", diff)
	}

	// Setters with the parsed values on a copy: nothing may change.
	c := bytes.Clone(frame)
	eth := Ethernet(c)
	eth.SetDst(eth.Dst())
	eth.SetSrc(eth.Src())
	if p.HasVLAN {
		tag := VLANTag(eth.Payload())
		tag.SetVID(p.VLAN)
		tag.SetEtherType(p.EtherType)
	} else {
		eth.SetEtherType(p.EtherType)
	}
	l3 := c[p.L3Off:]
	switch p.EtherType {
	case EtherTypeARP:
		a := ARP(l3)
		a.SetEthernetIPv4()
		a.SetOp(p.ARPOp)
		a.SetSenderHW(a.SenderHW())
		a.SetSenderIP(p.Src.As4())
		a.SetTargetHW(a.TargetHW())
		a.SetTargetIP(p.Dst.As4())
	case EtherTypeIPv4:
		ip := IPv4(l3)
		ip.SetVersion(4)
		ip.SetIHL(ip.IHL())
		ip.SetTOS(ip.TOS())
		ip.SetTotalLength(ip.TotalLength())
		ip.SetID(ip.ID())
		ip.SetFragmentOffset(ip.FragmentOffset())
		ip.SetFlags(ip.Flags())
		ip.SetTTL(p.TTL)
		ip.SetProtocol(p.IPProto)
		ip.SetSrc(p.Src.As4())
		ip.SetDst(p.Dst.As4())
		ip.SetChecksum(ip.Checksum())
	case EtherTypeIPv6:
		ip := IPv6(l3)
		ip.SetVersion(6)
		ip.SetTrafficClass(ip.TrafficClass())
		ip.SetFlowLabel(ip.FlowLabel())
		ip.SetPayloadLength(ip.PayloadLength())
		ip.SetNextHeader(ip.NextHeader())
		ip.SetHopLimit(p.TTL)
		ip.SetSrc(p.Src.As16())
		ip.SetDst(p.Dst.As16())
	}
	if p.L4Off != 0 {
		l4 := c[p.L4Off:]
		switch p.IPProto {
		case ProtoTCP:
			tc := TCP(l4)
			tc.SetSrcPort(p.SrcPort)
			tc.SetDstPort(p.DstPort)
			tc.SetSeq(tc.Seq())
			tc.SetAck(tc.Ack())
			tc.SetDataOffset(tc.DataOffset())
			tc.SetFlags(p.TCPFlags)
			tc.SetWindow(tc.Window())
			tc.SetChecksum(tc.Checksum())
			tc.SetUrgent(tc.Urgent())
		case ProtoUDP:
			u := UDP(l4)
			u.SetSrcPort(p.SrcPort)
			u.SetDstPort(p.DstPort)
			u.SetLength(u.Length())
			u.SetChecksum(u.Checksum())
		case ProtoICMP:
			ic := ICMPv4(l4)
			ic.SetType(p.ICMPType)
			ic.SetCode(p.ICMPCode)
			ic.SetChecksum(ic.Checksum())
			if p.ICMPType == ICMPv4EchoRequest || p.ICMPType == ICMPv4EchoReply {
				ic.SetIdent(p.DstPort)
				ic.SetSeq(ic.Seq())
			}
		case ProtoICMPv6:
			ic := ICMPv6(l4)
			ic.SetType(p.ICMPType)
			ic.SetCode(p.ICMPCode)
			ic.SetChecksum(ic.Checksum())
			switch p.ICMPType {
			case ICMPv6EchoRequest, ICMPv6EchoReply:
				ic.SetIdent(p.DstPort)
				ic.SetSeq(ic.Seq())
			case ICMPv6NeighborSolicitation, ICMPv6NeighborAdvertisement:
				ic.SetTargetAddress(ic.TargetAddress())
				ic.NDLinkLayerAddr(NDOptSourceLinkLayerAddr) // must not panic on any options
				ic.NDLinkLayerAddr(NDOptTargetLinkLayerAddr)
			}
		}
	}
	if !bytes.Equal(c, frame) {
		t.Fatalf("setters with the parsed values changed the frame:\n got %x\nwant %x", c, frame)
	}

	// Fixed headers rebuilt from zero.
	rebuilt := func(name string, want, got []byte) {
		t.Helper()
		if !bytes.Equal(want, got) {
			t.Fatalf("%s rebuilt through setters:\n got %x\nwant %x", name, got, want)
		}
	}
	e0 := make(Ethernet, EthernetLen)
	e0.SetDst(Ethernet(frame).Dst())
	e0.SetSrc(Ethernet(frame).Src())
	e0.SetEtherType(Ethernet(frame).EtherType())
	rebuilt("ethernet", frame[:EthernetLen], e0)
	if p.HasVLAN {
		tag := VLANTag(frame[EthernetLen:])
		v0 := make(VLANTag, VLANTagLen)
		v0.SetTCI(uint16(tag.PCP()) << 13)
		if tag.DEI() {
			v0.SetTCI(v0.TCI() | 0x1000)
		}
		v0.SetVID(p.VLAN)
		v0.SetEtherType(p.EtherType)
		rebuilt("vlan tag", frame[EthernetLen:EthernetLen+VLANTagLen], v0)
	}
	l3 = frame[p.L3Off:]
	switch p.EtherType {
	case EtherTypeARP:
		a, a0 := ARP(l3), make(ARP, ARPLen)
		a0.SetEthernetIPv4()
		a0.SetOp(p.ARPOp)
		a0.SetSenderHW(a.SenderHW())
		a0.SetSenderIP(p.Src.As4())
		a0.SetTargetHW(a.TargetHW())
		a0.SetTargetIP(p.Dst.As4())
		rebuilt("arp", l3[:ARPLen], a0)
	case EtherTypeIPv4:
		ip := IPv4(l3)
		ihl := ip.IHL()
		if p.L4Off != 0 && (int(p.L4Off) != int(p.L3Off)+ihl || int(p.L4Len) != int(ip.TotalLength())-ihl) {
			t.Fatalf("L4Off %d L4Len %d, want %d and %d", p.L4Off, p.L4Len, int(p.L3Off)+ihl, int(ip.TotalLength())-ihl)
		}
		if len(ip.Payload()) != int(ip.TotalLength())-ihl {
			t.Fatalf("Payload has %d bytes, want %d", len(ip.Payload()), int(ip.TotalLength())-ihl)
		}
		if !ip.IsChecksumValid() {
			t.Fatalf("accepted an IPv4 header whose checksum IsChecksumValid rejects")
		}
		// A valid checksum field may hold 0xFFFF where the computed one is
		// 0x0000: both are zero in one's complement.
		if calc, have := ip.CalculateChecksum(), ip.Checksum(); calc != have && !(calc == 0 && have == 0xffff) {
			t.Fatalf("CalculateChecksum = %#04x, field holds %#04x", calc, have)
		}
		ip0 := make(IPv4, ihl)
		ip0.SetVersion(4)
		ip0.SetIHL(ihl)
		ip0.SetTOS(ip.TOS())
		ip0.SetTotalLength(ip.TotalLength())
		ip0.SetID(ip.ID())
		ip0.SetFlags(ip.Flags())
		ip0.SetFragmentOffset(ip.FragmentOffset())
		ip0.SetTTL(p.TTL)
		ip0.SetProtocol(p.IPProto)
		ip0.SetSrc(p.Src.As4())
		ip0.SetDst(p.Dst.As4())
		copy(ip0.Options(), ip.Options())
		ip0.SetChecksum(ip.Checksum())
		rebuilt("ipv4 header", l3[:ihl], ip0)
	case EtherTypeIPv6:
		ip := IPv6(l3)
		end := int(p.L3Off) + IPv6Len + int(ip.PayloadLength())
		if p.L4Off != 0 && int(p.L4Off)+int(p.L4Len) != end {
			t.Fatalf("L4Off %d + L4Len %d, want IPv6 payload end %d", p.L4Off, p.L4Len, end)
		}
		ip0 := make(IPv6, IPv6Len)
		ip0.SetVersion(6)
		ip0.SetTrafficClass(ip.TrafficClass())
		ip0.SetFlowLabel(ip.FlowLabel())
		ip0.SetPayloadLength(ip.PayloadLength())
		ip0.SetNextHeader(ip.NextHeader())
		ip0.SetHopLimit(p.TTL)
		ip0.SetSrc(p.Src.As16())
		ip0.SetDst(p.Dst.As16())
		rebuilt("ipv6 header", l3[:IPv6Len], ip0)
	}
	if p.L4Off == 0 {
		return
	}
	l4 := frame[p.L4Off:]
	switch p.IPProto {
	case ProtoTCP:
		tc, tc0 := TCP(l4), make(TCP, TCPMinLen)
		tc0[12] = tc[12] & 0x0f // reserved bits: no accessor by design
		tc0.SetSrcPort(p.SrcPort)
		tc0.SetDstPort(p.DstPort)
		tc0.SetSeq(tc.Seq())
		tc0.SetAck(tc.Ack())
		tc0.SetDataOffset(tc.DataOffset())
		tc0.SetFlags(p.TCPFlags)
		tc0.SetWindow(tc.Window())
		tc0.SetChecksum(tc.Checksum())
		tc0.SetUrgent(tc.Urgent())
		rebuilt("tcp header", l4[:TCPMinLen], tc0)
		if len(tc.Options()) != tc.DataOffset()-TCPMinLen {
			t.Fatalf("TCP Options has %d bytes, want %d", len(tc.Options()), tc.DataOffset()-TCPMinLen)
		}
	case ProtoUDP:
		u, u0 := UDP(l4), make(UDP, UDPLen)
		u0.SetSrcPort(p.SrcPort)
		u0.SetDstPort(p.DstPort)
		u0.SetLength(u.Length())
		u0.SetChecksum(u.Checksum())
		rebuilt("udp header", l4[:UDPLen], u0)
	case ProtoICMP:
		if p.ICMPType == ICMPv4EchoRequest || p.ICMPType == ICMPv4EchoReply {
			ic, ic0 := ICMPv4(l4), make(ICMPv4, ICMPEchoLen)
			ic0.SetType(p.ICMPType)
			ic0.SetCode(p.ICMPCode)
			ic0.SetChecksum(ic.Checksum())
			ic0.SetIdent(p.DstPort)
			ic0.SetSeq(ic.Seq())
			rebuilt("icmp echo header", l4[:ICMPEchoLen], ic0)
		}
	case ProtoICMPv6:
		ic := ICMPv6(l4)
		switch p.ICMPType {
		case ICMPv6EchoRequest, ICMPv6EchoReply:
			ic0 := make(ICMPv6, ICMPEchoLen)
			ic0.SetType(p.ICMPType)
			ic0.SetCode(p.ICMPCode)
			ic0.SetChecksum(ic.Checksum())
			ic0.SetIdent(p.DstPort)
			ic0.SetSeq(ic.Seq())
			rebuilt("icmpv6 echo header", l4[:ICMPEchoLen], ic0)
		case ICMPv6NeighborAdvertisement:
			ic0 := make(ICMPv6, NDLen)
			ic0.SetType(p.ICMPType)
			ic0.SetCode(p.ICMPCode)
			ic0.SetChecksum(ic.Checksum())
			ic0.SetNAFlags(ic.NAFlags())
			ic0.SetTargetAddress(ic.TargetAddress())
			copy(ic0[4:8], []byte{ic0[4] | ic[4]&0x1f, ic[5], ic[6], ic[7]}) // reserved bits
			rebuilt("neighbor advertisement", l4[:NDLen], ic0)
		}
	}
}

// checkL4Checksum writes L4Checksum into a copy of an accepted frame and
// checks that the result verifies and that recomputing it is stable.
func checkL4Checksum(t testing.TB, frame []byte, p *Parsed) {
	t.Helper()
	c := bytes.Clone(frame)
	sum := L4Checksum(p, c)
	if p.L4Off == 0 || p.Fragment || p.IPProto == ProtoSCTP {
		if sum != 0 {
			t.Fatalf("L4Checksum = %#04x where there is nothing to compute", sum)
		}
		return
	}
	seg := c[p.L4Off : int(p.L4Off)+int(p.L4Len)]
	var pseudo uint32
	switch p.IPProto {
	case ProtoTCP:
		TCP(seg).SetChecksum(sum)
		pseudo = PseudoHeaderSum(p.IPProto, p.Src, p.Dst, uint16(len(seg)))
	case ProtoUDP:
		seg = seg[:UDP(seg).Length()]
		UDP(seg).SetChecksum(sum)
		pseudo = PseudoHeaderSum(p.IPProto, p.Src, p.Dst, uint16(len(seg)))
	case ProtoICMP:
		ICMPv4(seg).SetChecksum(sum)
	case ProtoICMPv6:
		ICMPv6(seg).SetChecksum(sum)
		pseudo = PseudoHeaderSum(p.IPProto, p.Src, p.Dst, uint16(len(seg)))
	default:
		return
	}
	if got := Fold(Sum(seg, pseudo)); got != 0xffff {
		t.Fatalf("after storing L4Checksum %#04x the segment sums to %#04x, want 0xffff", sum, got)
	}
	if again := L4Checksum(p, c); again != sum {
		t.Fatalf("L4Checksum not stable: %#04x then %#04x", sum, again)
	}
}

// checkDecrementTTL decrements the TTL of a copy of an accepted IPv4 frame
// and checks that it still decodes, with the checksum valid.
func checkDecrementTTL(t testing.TB, frame []byte, p *Parsed) {
	t.Helper()
	if p.EtherType != EtherTypeIPv4 {
		return
	}
	c := bytes.Clone(frame)
	ip := IPv4(c[p.L3Off:])
	ip.DecrementTTL()
	want := p.TTL
	if want > 0 {
		want--
	}
	var q Parsed
	if r := Decode(c, &q); r != OK || q.TTL != want {
		t.Fatalf("after DecrementTTL from %d: Decode = %v, TTL %d, want ok and %d", p.TTL, r, q.TTL, want)
	}
	if calc, have := ip.CalculateChecksum(), ip.Checksum(); calc != have && !(calc == 0 && have == 0xffff) {
		t.Fatalf("after DecrementTTL checksum %#04x, full recompute %#04x", have, calc)
	}
}
