package pipeline

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// inBuffer copies f into a buffer of capacity c, as a UMEM chunk or queue
// slot holds it.
func inBuffer(f []byte, c int) []byte {
	b := make([]byte, len(f), c)
	copy(b, f)
	return b
}

func TestBuildICMPError(t *testing.T) {
	node4, node6 := [4]byte{192, 168, 50, 1}, netip.MustParseAddr("fd50::1").As16()
	big4 := ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4("10.244.0.10", "10.244.0.11", 1, packet.ProtoUDP, nil, udpPayload(1400)))
	// Frames that fill their buffer: the quote is what is left of them.
	mid4 := ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4("10.244.0.10", "10.244.0.11", 1, packet.ProtoUDP, nil, udpPayload(200-28)))
	mid6 := ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6("fd00::a", "fd00::b", 1, packet.ProtoUDP, udpPayload(300-48)))
	big6 := ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6("fd00::a", "fd00::b", 1, packet.ProtoUDP, udpPayload(1400)))
	cases := []struct {
		name      string
		frame     []byte
		capacity  int
		kind      icmpKind
		mtu       uint32
		typ, code uint8
		quote     int // bytes of the original quoted
	}{
		{"v4 time exceeded", udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1), 2048, icmpTimeExceeded, 0,
			packet.ICMPv4TimeExceeded, 0, 20 + 8 + 18},
		{"v4 unreachable", udp4Frame(macA, "10.244.0.10", "10.244.0.99", 64), 2048, icmpUnreachable, 0,
			packet.ICMPv4DestUnreachable, 1, 46},
		{"v4 frag needed", big4, 2048, icmpFragNeeded, 1450, packet.ICMPv4DestUnreachable, 4, icmp4MaxQuote},
		{"v4 large, quote bounded", big4, 2048, icmpTimeExceeded, 0, packet.ICMPv4TimeExceeded, 0, icmp4MaxQuote},
		{"v4 no room to grow", mid4, len(mid4), icmpTimeExceeded, 0, packet.ICMPv4TimeExceeded, 0, 200 - 28},
		{"v6 time exceeded", udp6Frame(macA, "fd00::a", "fd00::b", 1), 2048, icmpTimeExceeded, 0,
			packet.ICMPv6TimeExceeded, 0, 40 + 8 + 18},
		{"v6 unreachable", udp6Frame(macA, "fd00::a", "fd00::99", 64), 2048, icmpUnreachable, 0,
			packet.ICMPv6DestUnreachable, 3, 66},
		{"v6 packet too big", big6, 2048, icmpFragNeeded, 1400, packet.ICMPv6PacketTooBig, 0, icmp6MaxQuote},
		{"v6 no room to grow", mid6, len(mid6), icmpTimeExceeded, 0, packet.ICMPv6TimeExceeded, 0, 300 - 48},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := append([]byte(nil), c.frame...)
			p := decode(t, orig)
			f := inBuffer(c.frame, c.capacity)
			n := buildICMPError(f, &p, c.kind, c.mtu, node4, node6, gwMAC, 7)
			if n == 0 {
				t.Fatal("not built")
			}
			f = f[:n]
			src := netip.AddrFrom4(node4)
			if p.EtherType == packet.EtherTypeIPv6 {
				src = netip.AddrFrom16(node6)
			}
			checkICMPError(t, f, orig, src, p.Src, c.typ, c.code, macA)
			e := decode(t, f)
			if q := n - int(e.L4Off) - 8; q != c.quote {
				t.Errorf("quoted %d bytes, want %d", q, c.quote)
			}
			if e.TTL != icmpHopLimit {
				t.Errorf("TTL %d, want %d", e.TTL, icmpHopLimit)
			}
			msg := f[e.L4Off:]
			switch {
			case c.kind == icmpFragNeeded && p.EtherType == packet.EtherTypeIPv4:
				if m := binary.BigEndian.Uint16(msg[6:8]); uint32(m) != c.mtu || msg[4] != 0 || msg[5] != 0 {
					t.Errorf("frag needed carries % x, want MTU %d", msg[4:8], c.mtu)
				}
			case c.kind == icmpFragNeeded:
				if m := binary.BigEndian.Uint32(msg[4:8]); m != c.mtu {
					t.Errorf("packet too big carries MTU %d, want %d", m, c.mtu)
				}
			default:
				if binary.BigEndian.Uint32(msg[4:8]) != 0 {
					t.Errorf("unused word is % x", msg[4:8])
				}
			}
			if p.EtherType == packet.EtherTypeIPv4 {
				ip := packet.IPv4(f[14:])
				if ip.TOS() != icmp4TOS || ip.ID() != 7 || ip.IsFragment() || ip.IHL() != 20 {
					t.Errorf("IPv4 header % x", f[14:34])
				}
			}
		})
	}
	// A buffer that cannot hold the header and 8 bytes of the packet.
	f := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1)
	p := decode(t, f)
	if n := buildICMPError(inBuffer(f, 14+28+20), &p, icmpTimeExceeded, 0, node4, node6, gwMAC, 1); n != 0 {
		t.Errorf("built into a buffer too small: %d bytes", n)
	}
}

func TestICMPErrorAllowed(t *testing.T) {
	icmpErr := func() []byte {
		f := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1)
		p := decode(t, f)
		buf := inBuffer(f, 2048)
		n := buildICMPError(buf, &p, icmpTimeExceeded, 0, [4]byte{10, 244, 0, 11}, [16]byte{}, gwMAC, 1)
		return buf[:n]
	}
	echo := ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4("10.244.0.10", "10.244.0.11", 1, packet.ProtoICMP, nil,
		func() []byte {
			m := []byte{packet.ICMPv4EchoRequest, 0, 0, 0, 0, 1, 0, 1}
			binary.BigEndian.PutUint16(m[2:], packet.Checksum(m, 0))
			return m
		}()))
	nonFirst := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1)
	binary.BigEndian.PutUint16(nonFirst[14+6:], 100) // offset 800
	binary.BigEndian.PutUint16(nonFirst[14+10:], 0)
	binary.BigEndian.PutUint16(nonFirst[14+10:], packet.Checksum(nonFirst[14:34], 0))
	rs := ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6("fd00::a", "fd00::b", 1, packet.ProtoICMPv6,
		[]byte{packet.ICMPv6TimeExceeded, 0, 0, 0, 0, 0, 0, 0}))
	cases := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"udp", udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1), true},
		{"echo request", echo, true},
		{"icmp error", icmpErr(), false},
		{"icmpv6 error", rs, false},
		{"multicast destination", udp4Frame(macA, "10.244.0.10", "224.0.0.1", 1), false},
		{"broadcast source", udp4Frame(macA, "255.255.255.255", "10.244.0.11", 1), false},
		{"unspecified source", udp6Frame(macA, "::", "fd00::b", 1), false},
		{"non-first fragment", nonFirst, false},
	}
	for _, c := range cases {
		p := decode(t, c.frame)
		if got := icmpErrorAllowed(&p); got != c.want {
			t.Errorf("%s: allowed %v, want %v", c.name, got, c.want)
		}
	}
}

func BenchmarkICMPError(b *testing.B) {
	f := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1)
	buf := make([]byte, 2048)
	var p packet.Parsed
	b.ReportAllocs()
	for b.Loop() {
		n := copy(buf, f)
		packet.Decode(buf[:n], &p)
		buildICMPError(buf[:n], &p, icmpTimeExceeded, 0, [4]byte{192, 168, 50, 1}, [16]byte{}, gwMAC, 1)
	}
}
