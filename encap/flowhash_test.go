package encap

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestFlowHashSameFlow: what changes from packet to packet within one flow
// (payload, length, TTL, IP ID, TCP flags and sequence, checksums, MACs of
// IP frames, a VLAN tag) does not change the hash.
func TestFlowHashSameFlow(t *testing.T) {
	groups := map[string][][]byte{
		"ipv4 udp": {
			innerIPv4UDP(t, 40000, 53, nil),
			innerIPv4UDP(t, 40000, 53, []byte("a query")),
			edit4(innerIPv4UDP(t, 40000, 53, make([]byte, 1000)), func(ip *layers.IPv4) { ip.TTL = 1; ip.Id = 9; ip.TOS = 0xb8 }),
		},
		"ipv4 tcp": {
			innerIPv4TCP(t, 43210, 80, nil),
			innerIPv4TCP(t, 43210, 80, []byte("GET /")),
			vlanTagged(innerIPv4TCP(t, 43210, 80, nil)),
			func() []byte { f := innerIPv4TCP(t, 43210, 80, nil); copy(f[0:12], make([]byte, 12)); return f }(),
		},
		"ipv6 tcp": {
			innerIPv6TCP(t, 50000, 8080, nil),
			innerIPv6TCP(t, 50000, 8080, []byte("data")),
			vlanTagged(innerIPv6TCP(t, 50000, 8080, nil)),
			withHopByHop(t, layers.IPProtocolTCP, &layers.TCP{SrcPort: 50000, DstPort: 8080, ACK: true}),
		},
		"ipv4 fragments": {
			fragment4(t, 0x20, 0), // first: MF, offset 0, ports present
			fragment4(t, 0x20, 185),
			fragment4(t, 0x00, 370), // last
		},
		"ipv6 fragments": {
			fragment6(t, 0, true),
			fragment6(t, 1448, true),
			fragment6(t, 2896, false),
		},
	}
	for name, frames := range groups {
		want := FlowHash(frames[0])
		for i, f := range frames[1:] {
			if got := FlowHash(f); got != want {
				t.Errorf("%s: frame %d hashes to %#08x, frame 0 to %#08x", name, i+1, got, want)
			}
		}
	}
}

// TestFlowHashFields: changing any one field of the flow changes the hash.
func TestFlowHashFields(t *testing.T) {
	v4 := innerIPv4UDP(t, 40000, 53, nil)
	v6 := innerIPv6UDP(t, 40000, 53, nil)
	base4, base6 := FlowHash(v4), FlowHash(v6)
	for _, tc := range []struct {
		name  string
		frame []byte
		base  uint32
	}{
		{"v4 src", edit4(v4, func(ip *layers.IPv4) { ip.SrcIP = net.IP{10, 244, 1, 3} }), base4},
		{"v4 dst", edit4(v4, func(ip *layers.IPv4) { ip.DstIP = net.IP{10, 244, 2, 4} }), base4},
		{"v4 swapped", edit4(v4, func(ip *layers.IPv4) { ip.SrcIP, ip.DstIP = ip.DstIP, ip.SrcIP }), base4},
		{"v4 proto", innerIPv4TCP(t, 40000, 53, nil), base4},
		{"v4 sport", innerIPv4UDP(t, 40001, 53, nil), base4},
		{"v4 dport", innerIPv4UDP(t, 40000, 54, nil), base4},
		{"v6 src first byte", withAddr(v6, 14+8, 0xfc), base6},
		{"v6 src last byte", withAddr(v6, 14+23, 0x03), base6},
		{"v6 dst first byte", withAddr(v6, 14+24, 0xfc), base6},
		{"v6 dst last byte", withAddr(v6, 14+39, 0x04), base6},
		{"v6 proto", innerIPv6TCP(t, 40000, 53, nil), base6},
		{"v6 sport", innerIPv6UDP(t, 40001, 53, nil), base6},
		{"v6 dport", innerIPv6UDP(t, 40000, 54, nil), base6},
		{"v4 vs v6", v6, base4},
	} {
		if got := FlowHash(tc.frame); got == tc.base {
			t.Errorf("%s: hash unchanged (%#08x)", tc.name, got)
		}
	}
}

// TestFlowHashSpread: flows that differ only in the source port spread over
// the 14 bits the VXLAN source port uses, and over 16 ECMP buckets.
func TestFlowHashSpread(t *testing.T) {
	for _, mk := range []struct {
		name string
		f    func(sport uint16) []byte
	}{
		{"ipv4", func(p uint16) []byte { return innerIPv4TCP(t, p, 443, nil) }},
		{"ipv6", func(p uint16) []byte { return innerIPv6TCP(t, p, 443, nil) }},
	} {
		const flows = 4096
		full := make(map[uint32]bool)
		low := make(map[uint32]bool)
		var buckets [16]int
		for i := range flows {
			h := FlowHash(mk.f(uint16(32768 + i)))
			full[h] = true
			low[h&0x3fff] = true
			buckets[h%16]++
		}
		// Random 32-bit values would almost never collide; random 14-bit
		// ones fill about 16384*(1-exp(-4096/16384)) = 3624 values.
		if len(full) < flows-2 {
			t.Errorf("%s: %d flows gave %d distinct hashes", mk.name, flows, len(full))
		}
		if len(low) < 3450 {
			t.Errorf("%s: %d flows gave %d distinct 14-bit source ports, want about 3624", mk.name, flows, len(low))
		}
		for b, n := range buckets {
			if n < flows/16*7/10 || n > flows/16*13/10 {
				t.Errorf("%s: bucket %d of 16 got %d of %d flows", mk.name, b, n, flows)
			}
		}
	}
}

// TestFlowHashShort: FlowHash never panics on short or odd frames, and a
// frame too short for Ethernet hashes to 0.
func TestFlowHashShort(t *testing.T) {
	frames := [][]byte{
		innerIPv4TCP(t, 1, 2, nil), innerIPv6TCP(t, 1, 2, nil), innerARP(t),
		vlanTagged(innerIPv4UDP(t, 1, 2, nil)),
		withHopByHop(t, layers.IPProtocolUDP, &layers.UDP{SrcPort: 1, DstPort: 2}),
		fragment6(t, 0, true),
	}
	for _, f := range frames {
		for n := range len(f) + 1 {
			h := FlowHash(f[:n])
			if n < 14 && h != 0 {
				t.Errorf("FlowHash(%d bytes) = %#x, want 0", n, h)
			}
		}
	}
	// IPv4 with a bad IHL, and IPv6 with an extension header chain that
	// runs off the end, still hash.
	bad := innerIPv4UDP(t, 1, 2, nil)
	bad[14] = 0x4f
	FlowHash(bad)
	bad[14] = 0x41
	FlowHash(bad)
	chain := innerIPv6UDP(t, 1, 2, nil)
	chain[14+6] = 0 // hop-by-hop
	chain[14+40+1] = 0xff
	FlowHash(chain)
}

// edit4 re-encodes an IPv4 frame after f changes its IPv4 header, fixing
// lengths and checksums.
func edit4(frame []byte, f func(ip *layers.IPv4)) []byte {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	f(ip)
	ls := []gopacket.SerializableLayer{eth, ip}
	switch l := p.Layer(ip.NextLayerType()).(type) {
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(ip)
		ls = append(ls, l, gopacket.Payload(l.Payload))
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(ip)
		ls = append(ls, l, gopacket.Payload(l.Payload))
	default:
		ls = append(ls, gopacket.Payload(ip.Payload))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return bytes.Clone(buf.Bytes())
}

// withAddr returns a copy of frame with the byte at i changed to v.
func withAddr(frame []byte, i int, v byte) []byte {
	f := bytes.Clone(frame)
	f[i] = v
	return f
}

// withHopByHop builds a pod IPv6 frame with a hop-by-hop options header in
// front of l4.
func withHopByHop(t *testing.T, nh layers.IPProtocol, l4 gopacket.SerializableLayer) []byte {
	ip := podIPv6(layers.IPProtocolIPv6HopByHop)
	hbh := &layers.IPv6HopByHop{}
	hbh.NextHeader = nh
	hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}} // PadN
	switch l := l4.(type) {
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(ip)
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(ip)
	}
	return serialize(t, podEth(layers.EthernetTypeIPv6), ip, hbh, l4)
}

// fragment4 builds a fragment of a pod UDP datagram; for the first fragment
// (offset 0) the data starts with the UDP ports, as it would.
func fragment4(t *testing.T, flags byte, offset8 uint16) []byte {
	f := innerIPv4UDP(t, 40000, 53, make([]byte, 64))
	binary.BigEndian.PutUint16(f[20:22], uint16(flags)<<8|offset8)
	if offset8 != 0 {
		copy(f[34:38], []byte{0xde, 0xad, 0xbe, 0xef}) // fragment data, not ports
	}
	fixIPv4Checksum(f)
	return f
}

// fragment6 builds a fragment of a pod UDP datagram behind an IPv6 fragment
// header; later fragments carry data where the ports would be.
func fragment6(t *testing.T, offset uint16, more bool) []byte {
	ip := podIPv6(layers.IPProtocolIPv6Fragment)
	payload := make([]byte, 64)
	if offset == 0 {
		binary.BigEndian.PutUint16(payload[0:2], 40000)
		binary.BigEndian.PutUint16(payload[2:4], 53)
	} else {
		copy(payload, []byte{0xde, 0xad, 0xbe, 0xef})
	}
	fh := make([]byte, 8)
	fh[0] = byte(layers.IPProtocolUDP)
	m := uint16(0)
	if more {
		m = 1
	}
	binary.BigEndian.PutUint16(fh[2:4], offset|m)
	binary.BigEndian.PutUint32(fh[4:8], 0x12345678)
	return serialize(t, podEth(layers.EthernetTypeIPv6), ip, gopacket.Payload(cat(fh, payload)))
}
