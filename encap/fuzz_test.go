package encap

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// FuzzVXLANDecap feeds arbitrary frames to Decap. No input may panic or be
// modified; an accepted frame must also be one that the independent parser,
// packet.Decode, reads as an untagged, unfragmented, option-free UDP packet
// to our port and address, and inner and end must lie within it.
func FuzzVXLANDecap(f *testing.F) {
	for _, tc := range vxlanDecapCases(f) {
		f.Add(tc.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkVXLANDecap(t, frame, nodeB)
		// Mutated frames almost never keep a valid IPv4 checksum, the
		// local destination or a valid UDP checksum, which would hide
		// everything past those checks from the fuzzer: try each input a
		// second time with them made right.
		if fixed, local, ok := fixOuter(frame); ok {
			checkVXLANDecap(t, fixed, local)
		}
	})
}

// FuzzIPIPDecap does the same for DecapIPIP, which may change only the 14
// bytes in front of the inner packet, and only when it accepts the frame.
func FuzzIPIPDecap(f *testing.F) {
	for _, tc := range ipipDecapCases(f) {
		f.Add(tc.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkIPIPDecap(t, frame, nodeB)
		if fixed, local, ok := fixOuter(frame); ok {
			checkIPIPDecap(t, fixed, local)
		}
	})
}

// FuzzRoundTrip encapsulates arbitrary inner frames with arbitrary settings
// and decapsulates them at the peer, which must get back exactly the inner
// frame (VXLAN) or the inner IP packet behind the outer MACs (IPIP).
func FuzzRoundTrip(f *testing.F) {
	for i, in := range innerFrames(f) {
		f.Add(in.frame, uint32(FlannelVNI), uint16(FlannelPort), uint16(i), binary.BigEndian.Uint32(nodeA[:]), binary.BigEndian.Uint32(nodeB[:]), uint8(i))
	}
	f.Add(make([]byte, 14), uint32(1<<24-1), uint16(0), uint16(0xffff), uint32(0xffffffff), uint32(0), uint8(255))
	f.Fuzz(func(t *testing.T, in []byte, vni uint32, port uint16, ipID uint16, srcIP, dstIP uint32, extra uint8) {
		var s, d [4]byte
		binary.BigEndian.PutUint32(s[:], srcIP)
		binary.BigEndian.PutUint32(d[:], dstIP)
		o := NewOuter(macA, macB, s, d)
		v := VXLAN{VNI: vni, Port: port}
		headroom := VXLANOverhead + int(extra)
		n := len(in)

		buf := withHeadroom(in, headroom, int(extra)%7)
		start, ok := v.Encap(buf, headroom, n, &o, ipID)
		if want := n >= 14; ok != want {
			t.Fatalf("Encap(%d-byte frame) ok = %v, want %v", n, ok, want)
		}
		if ok {
			if !bytes.Equal(buf[headroom:headroom+n], in) {
				t.Fatalf("Encap modified the inner frame")
			}
			outer := buf[start : start+n+VXLANOverhead]
			checkOuterDecodes(t, outer, packet.ProtoUDP)
			inner, end, src, err := v.Decap(outer, d)
			if err != OK || src != s || !bytes.Equal(outer[inner:end], in) {
				t.Fatalf("Decap(Encap(x)) = %d, %d, %v, %v; want x back from %v\nouter %x", inner, end, src, err, s, outer)
			}
		}

		buf = withHeadroom(in, IPIPOverhead+int(extra), 0)
		start, ok = EncapIPIP(buf, IPIPOverhead+int(extra), n, &o, ipID)
		if want := ipipCarries(in); ok != want {
			t.Fatalf("EncapIPIP(%x) ok = %v, want %v", in, ok, want)
		}
		if ok {
			outer := buf[start : start+n+IPIPOverhead]
			checkOuterDecodes(t, outer, outer[23])
			inner, end, src, err := DecapIPIP(outer, d)
			want := cat(macB[:], macA[:], in[12:])
			if err != OK || src != s || !bytes.Equal(outer[inner:end], want) {
				t.Fatalf("DecapIPIP(EncapIPIP(x)) = %d, %d, %v, %v; want %x from %v", inner, end, src, err, want, s)
			}
		}
	})
}

// ipipCarries is the reference for what EncapIPIP accepts: an untagged IPv4
// or IPv6 frame whose packet is at least its fixed header long and has the
// matching version.
func ipipCarries(in []byte) bool {
	if len(in) < 15 {
		return false
	}
	switch binary.BigEndian.Uint16(in[12:14]) {
	case 0x0800:
		return len(in) >= 14+20 && in[14]>>4 == 4
	case 0x86dd:
		return len(in) >= 14+40 && in[14]>>4 == 6
	}
	return false
}

// checkOuterDecodes checks with packet.Decode that an outer frame we built
// is a valid IPv4 packet of the protocol.
func checkOuterDecodes(t *testing.T, outer []byte, proto uint8) {
	t.Helper()
	var p packet.Parsed
	if r := packet.Decode(outer, &p); r != packet.OK || p.IPProto != proto || p.Fragment || p.HasOptions || p.TTL != 64 {
		t.Fatalf("packet.Decode(outer) = %v, %+v", r, p)
	}
}

func checkVXLANDecap(t *testing.T, frame []byte, local [4]byte) {
	orig := bytes.Clone(frame)
	inner, end, src, err := flannel.Decap(frame, local)
	if err >= NumErrors {
		t.Fatalf("Decap returned %d, past NumErrors", err)
	}
	if !bytes.Equal(frame, orig) {
		t.Fatalf("Decap modified the frame")
	}
	if err != OK {
		return
	}
	if inner != VXLANOverhead || end < inner+14 || end > len(frame) {
		t.Fatalf("Decap = %d, %d for a %d-byte frame", inner, end, len(frame))
	}
	p := checkAccepted(t, frame, local, src)
	if p.IPProto != packet.ProtoUDP || p.DstPort != flannel.Port || int(p.L4Off)+int(binary.BigEndian.Uint16(frame[38:40])) != end {
		t.Fatalf("Decap accepted a frame that packet.Decode reads as %+v, end %d", p, end)
	}
}

func checkIPIPDecap(t *testing.T, frame []byte, local [4]byte) {
	orig := bytes.Clone(frame)
	// packet.Decode first: DecapIPIP rewrites the outer header.
	var p packet.Parsed
	r := packet.Decode(frame, &p)
	inner, end, src, err := DecapIPIP(frame, local)
	if err >= NumErrors {
		t.Fatalf("DecapIPIP returned %d, past NumErrors", err)
	}
	if err != OK {
		if !bytes.Equal(frame, orig) {
			t.Fatalf("DecapIPIP rejected the frame (%v) and modified it", err)
		}
		return
	}
	if r != packet.OK {
		t.Fatalf("DecapIPIP accepted a frame that packet.Decode rejects: %v", r)
	}
	if inner != IPIPOverhead || end < inner+14+20 || end > len(frame) || end != 14+int(binary.BigEndian.Uint16(orig[16:18])) {
		t.Fatalf("DecapIPIP = %d, %d for a %d-byte frame", inner, end, len(frame))
	}
	checkAcceptedParsed(t, &p, local, src, orig)
	et := uint16(0x0800)
	if p.IPProto == 41 {
		et = 0x86dd
	} else if p.IPProto != 4 {
		t.Fatalf("DecapIPIP accepted protocol %d", p.IPProto)
	}
	want := cat(orig[:20], orig[0:12], []byte{byte(et >> 8), byte(et)}, orig[34:])
	if !bytes.Equal(frame, want) {
		t.Fatalf("DecapIPIP wrote\n%x\nwant\n%x", frame, want)
	}
}

// checkAccepted checks with packet.Decode an outer frame that Decap
// accepted, and returns what packet.Decode says.
func checkAccepted(t *testing.T, frame []byte, local, src [4]byte) packet.Parsed {
	t.Helper()
	var p packet.Parsed
	if r := packet.Decode(frame, &p); r != packet.OK {
		t.Fatalf("Decap accepted a frame that packet.Decode rejects: %v", r)
	}
	checkAcceptedParsed(t, &p, local, src, frame)
	return p
}

func checkAcceptedParsed(t *testing.T, p *packet.Parsed, local, src [4]byte, frame []byte) {
	t.Helper()
	if p.EtherType != packet.EtherTypeIPv4 || p.HasVLAN || p.Fragment || p.HasOptions ||
		p.Dst != netip.AddrFrom4(local) || p.Src != netip.AddrFrom4(src) {
		t.Fatalf("accepted a frame that packet.Decode reads as %+v (local %v, src %v)\n%x", *p, local, src, frame)
	}
}

// fixOuter returns a copy of frame, if it looks enough like IPv4 for it,
// with the outer IPv4 header checksum made right, a nonzero UDP checksum
// made right, and the local address to decapsulate with: its destination.
func fixOuter(frame []byte) (fixed []byte, local [4]byte, ok bool) {
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		return nil, local, false
	}
	ihl := int(frame[14]&0x0f) * 4
	if ihl < 20 || 14+ihl > len(frame) {
		return nil, local, false
	}
	b := bytes.Clone(frame)
	if ihl == 20 && b[23] == 17 && len(b) >= 42 && (b[40] != 0 || b[41] != 0) {
		if ulen := int(binary.BigEndian.Uint16(b[38:40])); ulen >= 8 && 34+ulen <= len(b) {
			binary.BigEndian.PutUint16(b[40:42], udpChecksum(b))
		}
	}
	fixIPv4Checksum(b)
	return b, [4]byte(b[30:34]), true
}
