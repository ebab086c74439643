package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestGopacketCrossCheck decodes every frame of testdata/capture.pcap (real
// traffic between two network namespaces, see testdata/capture.sh) with
// Decode and with gopacket, and compares what both say. Every frame is also
// checked a second time with an 802.1Q tag inserted, which the capture
// itself lacks. Where the frame has an L4 checksum, L4Checksum must agree
// with the one the kernel wrote.
func TestGopacketCrossCheck(t *testing.T) {
	frames := readPcap(t, "testdata/capture.pcap")
	counts := make(map[string]int)
	for i, frame := range frames {
		kinds := crossCheck(t, fmt.Sprintf("frame %d", i+1), frame)
		for _, k := range kinds {
			counts[k]++
		}
		tagged := cat(frame[:12], []byte{0x81, 0x00, 0x60, 42}, frame[12:])
		crossCheck(t, fmt.Sprintf("frame %d tagged", i+1), tagged)
		counts["vlan"]++
	}
	t.Logf("%d frames: %v", len(frames), counts)

	// The capture must hold enough of every kind that the comparison is not
	// vacuous.
	for kind, min := range map[string]int{
		"arp request": 2, "arp reply": 2,
		"icmp echo": 8, "icmp unreachable": 4,
		"icmpv6 echo": 8, "icmpv6 ns": 3, "icmpv6 na": 1, "icmpv6 unreachable": 3,
		"udp4": 4, "udp6": 4, "tcp4": 10, "tcp6": 10,
		"ipv4 first fragment": 3, "ipv4 later fragment": 3,
		"ipv6 first fragment": 3, "ipv6 later fragment": 3,
		"ipv6 hop-by-hop": 2, "l4 checksum": 60, "vlan": len(frames),
	} {
		if counts[kind] < min {
			t.Errorf("capture has %d frames of kind %q, want at least %d", counts[kind], kind, min)
		}
	}
}

// summary is what both decoders must agree on.
type summary struct {
	EtherType        uint16
	VLAN             uint16
	HasVLAN          bool
	L3Off            uint16
	L4Off            uint16
	L4Len            uint16
	Src, Dst         netip.Addr
	IPProto          uint8
	TTL              uint8
	SrcPort, DstPort uint16
	TCPFlags         uint8
	ICMPType         uint8
	ICMPCode         uint8
	ARPOp            uint16
	Fragment         bool
	FirstFragment    bool
	HasOptions       bool
}

// crossCheck compares the two decoders on one frame and returns the kinds
// of traffic it counted the frame as.
func crossCheck(t *testing.T, name string, frame []byte) (kinds []string) {
	t.Helper()
	var p Parsed
	if r := Decode(frame, &p); r != OK {
		t.Errorf("%s: Decode = %v on a real frame %x", name, r, frame)
		return nil
	}
	got := summary{
		EtherType: p.EtherType, VLAN: p.VLAN, HasVLAN: p.HasVLAN, L3Off: p.L3Off, L4Off: p.L4Off, L4Len: p.L4Len,
		Src: p.Src, Dst: p.Dst, IPProto: p.IPProto, TTL: p.TTL, SrcPort: p.SrcPort, DstPort: p.DstPort,
		TCPFlags: p.TCPFlags, ICMPType: p.ICMPType, ICMPCode: p.ICMPCode, ARPOp: p.ARPOp,
		Fragment: p.Fragment, FirstFragment: p.FirstFragment, HasOptions: p.HasOptions,
	}
	want, kinds, err := gopacketSummary(frame)
	if err != nil {
		t.Errorf("%s: gopacket: %v", name, err)
		return nil
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("%s: Decode disagrees with gopacket (-gopacket +Decode):\n%s\nframe %x", name, diff, frame)
	}
	checkViews(t, frame, &p)

	// The kernel wrote every L4 checksum in full (offloads were off).
	if p.L4Off != 0 && !p.Fragment {
		seg := frame[p.L4Off:]
		var have uint16
		switch p.IPProto {
		case ProtoTCP:
			have = TCP(seg).Checksum()
		case ProtoUDP:
			have = UDP(seg).Checksum()
		case ProtoICMP:
			have = ICMPv4(seg).Checksum()
		case ProtoICMPv6:
			have = ICMPv6(seg).Checksum()
		}
		if sum := L4Checksum(&p, frame); sum != have {
			t.Errorf("%s: L4Checksum = %#04x, the kernel wrote %#04x", name, sum, have)
		}
		kinds = append(kinds, "l4 checksum")
	}
	return kinds
}

// off returns the offset of sub in frame; gopacket with NoCopy hands out
// sub-slices of the frame, so capacities tell where they start.
func off(frame, sub []byte) uint16 { return uint16(cap(frame) - cap(sub)) }

func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		panic(fmt.Sprintf("bad address %v", ip))
	}
	return a
}

// gopacketSummary decodes frame with gopacket and fills a summary the way
// Parsed is documented, from gopacket's layers alone.
func gopacketSummary(frame []byte) (s summary, kinds []string, err error) {
	frame = frame[:len(frame):len(frame)]
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	if el := pkt.ErrorLayer(); el != nil {
		return s, nil, el.Error()
	}
	var (
		ipEnd    int // offset of the end of the IP payload
		l4Layers []gopacket.Layer
	)
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet:
			s.EtherType = uint16(l.EthernetType)
			s.L3Off = off(frame, l.LayerPayload())
		case *layers.Dot1Q:
			s.HasVLAN, s.VLAN, s.EtherType = true, l.VLANIdentifier, uint16(l.Type)
			s.L3Off = off(frame, l.LayerPayload())
		case *layers.ARP:
			if l.AddrType != layers.LinkTypeEthernet || l.Protocol != layers.EthernetTypeIPv4 {
				return s, nil, errors.New("not an Ethernet/IPv4 ARP")
			}
			s.ARPOp = l.Operation
			s.Src, s.Dst = addr(l.SourceProtAddress), addr(l.DstProtAddress)
			kinds = append(kinds, map[uint16]string{1: "arp request", 2: "arp reply"}[l.Operation])
		case *layers.IPv4:
			s.Src, s.Dst = addr(l.SrcIP), addr(l.DstIP)
			s.IPProto, s.TTL = uint8(l.Protocol), l.TTL
			s.HasOptions = l.IHL > 5
			s.Fragment = l.Flags&layers.IPv4MoreFragments != 0 || l.FragOffset != 0
			s.FirstFragment = s.Fragment && l.FragOffset == 0
			ipEnd = int(s.L3Off) + int(l.Length)
			if s.Fragment {
				kinds = append(kinds, map[bool]string{true: "ipv4 first fragment", false: "ipv4 later fragment"}[s.FirstFragment])
			}
		case *layers.IPv6:
			s.Src, s.Dst = addr(l.SrcIP), addr(l.DstIP)
			s.IPProto, s.TTL = uint8(l.NextHeader), l.HopLimit
			ipEnd = int(s.L3Off) + IPv6Len + int(l.Length)
		case *layers.IPv6HopByHop:
			s.IPProto, s.HasOptions = uint8(l.NextHeader), true
			kinds = append(kinds, "ipv6 hop-by-hop")
		case *layers.IPv6Destination:
			s.IPProto, s.HasOptions = uint8(l.NextHeader), true
		case *layers.IPv6Routing:
			s.IPProto, s.HasOptions = uint8(l.NextHeader), true
		case *layers.IPv6Fragment:
			s.IPProto, s.Fragment = uint8(l.NextHeader), true
			s.FirstFragment = l.FragmentOffset == 0
			kinds = append(kinds, map[bool]string{true: "ipv6 first fragment", false: "ipv6 later fragment"}[s.FirstFragment])
		case *gopacket.Fragment:
			// gopacket parses no L4 in fragments; decode the first one's
			// payload as the protocol it carries.
			if s.FirstFragment {
				lt := layers.IPProtocol(s.IPProto).LayerType()
				sub := gopacket.NewPacket(l.Payload()[:len(*l):len(*l)], lt, gopacket.DecodeOptions{NoCopy: true})
				l4Layers = append(l4Layers, sub.Layers()...)
			}
		default:
			l4Layers = append(l4Layers, l)
		}
	}
	for _, l := range l4Layers {
		switch l := l.(type) {
		case *layers.TCP:
			s.SrcPort, s.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			for i, set := range []bool{l.FIN, l.SYN, l.RST, l.PSH, l.ACK, l.URG, l.ECE, l.CWR} {
				if set {
					s.TCPFlags |= 1 << i
				}
			}
			s.L4Off = off(frame, l.LayerContents())
			kinds = append(kinds, map[bool]string{true: "tcp4", false: "tcp6"}[s.EtherType == EtherTypeIPv4])
		case *layers.UDP:
			s.SrcPort, s.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			s.L4Off = off(frame, l.LayerContents())
			kinds = append(kinds, map[bool]string{true: "udp4", false: "udp6"}[s.EtherType == EtherTypeIPv4])
		case *layers.ICMPv4:
			s.ICMPType, s.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
			s.L4Off = off(frame, l.LayerContents())
			switch s.ICMPType {
			case ICMPv4EchoRequest, ICMPv4EchoReply:
				s.DstPort = l.Id
				kinds = append(kinds, "icmp echo")
			case ICMPv4DestUnreachable:
				kinds = append(kinds, "icmp unreachable")
			}
		case *layers.ICMPv6:
			s.ICMPType, s.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
			s.L4Off = off(frame, l.LayerContents())
			kinds = append(kinds, map[uint8]string{
				ICMPv6EchoRequest: "icmpv6 echo", ICMPv6EchoReply: "icmpv6 echo",
				ICMPv6NeighborSolicitation: "icmpv6 ns", ICMPv6NeighborAdvertisement: "icmpv6 na",
				ICMPv6DestUnreachable: "icmpv6 unreachable",
			}[s.ICMPType])
		case *layers.ICMPv6Echo:
			s.DstPort = l.Identifier
		case *layers.SCTP:
			s.SrcPort, s.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			s.L4Off = off(frame, l.LayerContents())
		}
	}
	if s.L4Off != 0 {
		s.L4Len = uint16(ipEnd - int(s.L4Off))
	}
	return s, kinds, nil
}

// readPcap reads a classic libpcap file of Ethernet frames. It is the few
// lines of pcapgo this test needs: pcapgo itself pulls in golang.org/x/net,
// which the module does not otherwise require.
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read capture: %v (regenerate it with testdata/capture.sh)", err)
	}
	if len(data) < 24 {
		t.Fatalf("%s: %d bytes, too short for a pcap header", path, len(data))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(data[0:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d: // microsecond, nanosecond timestamps
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: not a pcap file (magic %x)", path, data[0:4])
	}
	if lt := bo.Uint32(data[20:24]) & 0x0fffffff; lt != 1 {
		t.Fatalf("%s: link type %d, want 1 (Ethernet)", path, lt)
	}
	var frames [][]byte
	rest := data[24:]
	for len(rest) > 0 {
		if len(rest) < 16 {
			t.Fatalf("%s: truncated record header", path)
		}
		incl, orig := int(bo.Uint32(rest[8:12])), int(bo.Uint32(rest[12:16]))
		if incl > len(rest)-16 {
			t.Fatalf("%s: truncated record", path)
		}
		if incl != orig {
			t.Fatalf("%s: record %d cut by the snap length (%d of %d bytes)", path, len(frames)+1, incl, orig)
		}
		frames = append(frames, rest[16:16+incl:16+incl])
		rest = rest[16+incl:]
	}
	return frames
}
