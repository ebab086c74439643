package encap

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The test underlay: node A (192.168.1.10) sends to node B (192.168.1.20)
// on one L2 segment.
var (
	macA  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x0a}
	macB  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x14}
	nodeA = [4]byte{192, 168, 1, 10}
	nodeB = [4]byte{192, 168, 1, 20}

	podMACA = net.HardwareAddr{0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02}
	podMACB = net.HardwareAddr{0x0a, 0x58, 0x0a, 0xf4, 0x02, 0x03}
	pod4A   = net.IP{10, 244, 1, 2}
	pod4B   = net.IP{10, 244, 2, 3}
	pod6A   = net.ParseIP("fd00:10:244:1::2")
	pod6B   = net.ParseIP("fd00:10:244:2::3")

	flannel = VXLAN{VNI: FlannelVNI, Port: FlannelPort}
)

// outerAB is what node A uses to reach node B.
func outerAB() Outer { return NewOuter(macA, macB, nodeA, nodeB) }

// serialize builds a frame with gopacket, fixing lengths and computing
// checksums, an encoder independent of the code under test.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return bytes.Clone(buf.Bytes())
}

func podEth(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: podMACA, DstMAC: podMACB, EthernetType: et}
}

func podIPv4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: proto, SrcIP: pod4A, DstIP: pod4B}
}

func podIPv6(nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 63, NextHeader: nh, SrcIP: pod6A, DstIP: pod6B}
}

// innerIPv4UDP is a pod-to-pod UDP frame: 14 + 20 + 8 + len(payload) bytes.
func innerIPv4UDP(tb testing.TB, sport, dport uint16, payload []byte) []byte {
	ip := podIPv4(layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(tb, podEth(layers.EthernetTypeIPv4), ip, udp, gopacket.Payload(payload))
}

func innerIPv4TCP(tb testing.TB, sport, dport uint16, payload []byte) []byte {
	ip := podIPv4(layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 502}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(tb, podEth(layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
}

func innerIPv4ICMP(tb testing.TB) []byte {
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
	return serialize(tb, podEth(layers.EthernetTypeIPv4), podIPv4(layers.IPProtocolICMPv4), icmp, gopacket.Payload("ping"))
}

func innerIPv6UDP(tb testing.TB, sport, dport uint16, payload []byte) []byte {
	ip := podIPv6(layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(tb, podEth(layers.EthernetTypeIPv6), ip, udp, gopacket.Payload(payload))
}

func innerIPv6TCP(tb testing.TB, sport, dport uint16, payload []byte) []byte {
	ip := podIPv6(layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, SYN: true, Window: 64800}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(tb, podEth(layers.EthernetTypeIPv6), ip, tcp, gopacket.Payload(payload))
}

func innerARP(tb testing.TB) []byte {
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: podMACA, SourceProtAddress: pod4A,
		DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: pod4B,
	}
	eth := podEth(layers.EthernetTypeARP)
	eth.DstMAC = layers.EthernetBroadcast
	return serialize(tb, eth, arp)
}

type namedFrame struct {
	name  string
	frame []byte
}

// innerFrames are the inner frames every encapsulation test runs over.
func innerFrames(tb testing.TB) []namedFrame {
	return []namedFrame{
		{"IPv4UDP64", innerIPv4UDP(tb, 40000, 53, make([]byte, 22))}, // 64 bytes
		{"IPv4UDPEmpty", innerIPv4UDP(tb, 1, 2, nil)},
		{"IPv4TCP", innerIPv4TCP(tb, 43210, 80, []byte("GET / HTTP/1.1\r\n\r\n"))},
		{"IPv4TCP1450", innerIPv4TCP(tb, 43210, 443, bytes.Repeat([]byte{0xa5}, 1450))}, // 1504: an MTU-1450 pod's full frame
		{"IPv4ICMP", innerIPv4ICMP(tb)},
		{"IPv6UDP", innerIPv6UDP(tb, 5353, 5353, []byte("hello"))},
		{"IPv6TCP", innerIPv6TCP(tb, 50000, 8080, nil)},
		{"ARP", innerARP(tb)},
	}
}

// isIP reports whether frame is an untagged IPv4 or IPv6 frame, the kind
// EncapIPIP carries.
func isIP(frame []byte) bool {
	et := binary.BigEndian.Uint16(frame[12:14])
	return et == 0x0800 || et == 0x86dd
}

// withHeadroom returns a buffer holding frame at offset headroom, followed
// by tailroom bytes. Bytes outside the frame are filled with 0xEE so that
// stray writes show.
func withHeadroom(frame []byte, headroom, tailroom int) []byte {
	buf := bytes.Repeat([]byte{0xee}, headroom+len(frame)+tailroom)
	copy(buf[headroom:], frame)
	return buf
}

// vxlanFrame returns the outer frame that Encap builds for inner, in a
// buffer of its own.
func vxlanFrame(tb testing.TB, v VXLAN, o Outer, inner []byte, ipID uint16) []byte {
	tb.Helper()
	buf := withHeadroom(inner, VXLANOverhead, 0)
	start, ok := v.Encap(buf, VXLANOverhead, len(inner), &o, ipID)
	if !ok || start != 0 {
		tb.Fatalf("Encap = %d, %v; want 0, true", start, ok)
	}
	return buf
}

// ipipFrame returns the outer frame that EncapIPIP builds for inner, in a
// buffer of its own.
func ipipFrame(tb testing.TB, o Outer, inner []byte, ipID uint16) []byte {
	tb.Helper()
	buf := withHeadroom(inner, IPIPOverhead, 0)
	start, ok := EncapIPIP(buf, IPIPOverhead, len(inner), &o, ipID)
	if !ok || start != 0 {
		tb.Fatalf("EncapIPIP = %d, %v; want 0, true", start, ok)
	}
	return buf
}

// refChecksum is the Internet checksum (RFC 1071) as the RFC spells it, a
// reference model independent of package packet: the one's complement of
// the one's-complement sum of the 16-bit words, carries added back one at a
// time.
func refChecksum(words ...[]byte) uint16 {
	var sum uint32
	for _, b := range words {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
			for sum > 0xffff {
				sum = sum&0xffff + sum>>16
			}
		}
	}
	return ^uint16(sum)
}

// fixIPv4Checksum rewrites the checksum of the IPv4 header at frame[14:],
// whose length its IHL gives.
func fixIPv4Checksum(frame []byte) {
	h := frame[14 : 14+int(frame[14]&0x0f)*4]
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], refChecksum(h))
}

// udpChecksum computes the UDP checksum of the outer datagram at frame[34:]
// over UDP length bytes, as the value to store (a computed 0 is 0xFFFF).
func udpChecksum(frame []byte) uint16 {
	ulen := int(binary.BigEndian.Uint16(frame[38:40]))
	seg := bytes.Clone(frame[34 : 34+ulen])
	seg[6], seg[7] = 0, 0
	pseudo := make([]byte, 12)
	copy(pseudo[0:8], frame[26:34])
	pseudo[9] = 17
	binary.BigEndian.PutUint16(pseudo[10:12], uint16(ulen))
	c := refChecksum(pseudo, seg)
	if c == 0 {
		c = 0xffff
	}
	return c
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
