package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The uplink's world in these tests: the node 192.0.2.1 (2001:db8::1) with
// MAC nodeMAC, a peer node 192.0.2.2 on the same link, this node's pods in
// 10.244.1.0/24 and fd00:244:1::/64.
var (
	nodeMAC   = [6]byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x01}
	peerMAC   = [6]byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x02}
	otherMAC  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x01, 0x09}
	broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	nodeIP  = netip.MustParseAddr("192.0.2.1")
	peerIP  = netip.MustParseAddr("192.0.2.2")
	nodeIP6 = netip.MustParseAddr("2001:db8::1")
	peerIP6 = netip.MustParseAddr("2001:db8::2")
)

// ip4Packet is an IPv4 packet with the given options (a multiple of 4
// bytes) and a valid header checksum.
func ip4Packet(proto byte, src, dst netip.Addr, options, payload []byte) []byte {
	hl := 20 + len(options)
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | byte(hl/4) // version 4, IHL
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[8], b[9] = 64, proto // TTL, protocol
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], dst.AsSlice())
	copy(b[20:hl], options)
	binary.BigEndian.PutUint16(b[10:12], ipChecksum(b[:hl]))
	copy(b[hl:], payload)
	return b
}

// ip6Packet is an IPv6 packet with no extension headers.
func ip6Packet(next byte, src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(len(payload)))
	b[6], b[7] = next, 64 // next header, hop limit
	copy(b[8:24], src.AsSlice())
	copy(b[24:40], dst.AsSlice())
	copy(b[40:], payload)
	return b
}

// udpPacket is a UDP header and payload, checksum 0 (none).
func udpPacket(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

// tcpSYN is a bare TCP SYN header (checksum left 0: nothing here checks it).
func tcpSYN(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	b[12], b[13] = 5<<4, 0x02 // data offset 5, SYN
	return b
}

// sctpInit is an SCTP common header and the start of an INIT chunk
// (checksum left 0).
func sctpInit(sport, dport uint16) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	b[12] = 1 // chunk type INIT
	binary.BigEndian.PutUint16(b[14:16], 4)
	return b
}

// withFrag returns a copy of an IPv4 frame with the flags and fragment
// offset field set to frag, and the header checksum fixed.
func withFrag(frame []byte, frag uint16) []byte {
	f := slices.Clone(frame)
	ip := f[ethLen:]
	hl := int(ip[0]&0x0f) * 4
	binary.BigEndian.PutUint16(ip[6:8], frag)
	binary.BigEndian.PutUint16(ip[10:12], 0)
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:hl]))
	return f
}

// icmpEcho is an ICMP (or, with typ 128, ICMPv6) echo request header.
func icmpEcho(typ byte) []byte { return []byte{typ, 0, 0, 0, 0, 1, 0, 1} }

// vxlanPayload is a VXLAN header (VNI 1) around an inner Ethernet frame: a
// ping from a pod on the peer node to one of ours.
func vxlanPayload() []byte {
	inner := ethernet(otherMAC, peerMAC, unix.ETH_P_IP, ip4Packet(unix.IPPROTO_ICMP,
		netip.MustParseAddr("10.244.2.3"), netip.MustParseAddr("10.244.1.7"), nil, icmpEcho(8)))
	return append([]byte{0x08, 0, 0, 0, 0, 0, 1, 0}, inner...)
}

// arpPacket is an ARP packet about nodeIP from the peer, sent to dst.
func arpPacket(dst [6]byte, op uint16) []byte {
	arp := make([]byte, 28)
	binary.BigEndian.PutUint16(arp[0:2], 1)
	binary.BigEndian.PutUint16(arp[2:4], unix.ETH_P_IP)
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:8], op)
	copy(arp[8:14], peerMAC[:])
	copy(arp[14:18], peerIP.AsSlice())
	copy(arp[24:28], nodeIP.AsSlice())
	return ethernet(dst, peerMAC, unix.ETH_P_ARP, arp)
}

// to4 and to6 are IPv4 and IPv6 frames from the peer to nodeMAC.
func to4(proto byte, dst netip.Addr, l4 []byte) []byte {
	return ethernet(nodeMAC, peerMAC, unix.ETH_P_IP, ip4Packet(proto, peerIP, dst, nil, l4))
}

func to6(next byte, dst netip.Addr, l4 []byte) []byte {
	return ethernet(nodeMAC, peerMAC, unix.ETH_P_IPV6, ip6Packet(next, peerIP6, dst, l4))
}

// withDst returns a copy of frame sent to another MAC.
func withDst(frame []byte, mac [6]byte) []byte {
	f := slices.Clone(frame)
	copy(f[0:6], mac[:])
	return f
}

// cut returns the first n bytes of frame: a frame truncated inside a header.
func cut(frame []byte, n int) []byte { return slices.Clone(frame[:n]) }

// vlanTagged inserts an 802.1Q tag (VLAN 10) after the MAC addresses.
func vlanTagged(frame []byte) []byte {
	f := slices.Clone(frame[:12])
	f = append(f, 0x81, 0x00, 0x00, 10)
	return append(f, frame[12:]...)
}

type namedFrame struct {
	name  string
	frame []byte
}

// uplinkFrames are the frames every configuration is tested with: one per
// rule and the near misses around it. Which of them a configuration
// redirects is in uplinkConfigs.
func uplinkFrames() []namedFrame {
	a := netip.MustParseAddr
	vxlan := to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 4789, vxlanPayload()))
	ipip := to4(protoIPIP, nodeIP, ip4Packet(unix.IPPROTO_ICMP, a("10.244.2.3"), a("10.244.1.7"), nil, icmpEcho(8)))
	pod4 := to4(unix.IPPROTO_TCP, a("10.244.1.7"), tcpSYN(40000, 80))
	pod6 := to6(unix.IPPROTO_TCP, a("fd00:244:1::7"), tcpSYN(40000, 80))
	// IHL 6, and the 4 option bytes hold 4789 where the UDP destination
	// port is with IHL 5: a program that ignores IHL would redirect it.
	vxlanIHL6 := ethernet(nodeMAC, peerMAC, unix.ETH_P_IP, ip4Packet(unix.IPPROTO_UDP, peerIP, nodeIP,
		[]byte{1, 1, 4789 >> 8, 4789 & 0xff}, udpPacket(4789, 4789, vxlanPayload())))
	nodePortTCP := to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(40000, 30000))
	nodePortUDP := to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 30000, []byte("request")))
	nodeNS := []byte{135, 0, 0, 0, 0, 0, 0, 0} // ICMPv6 neighbor solicitation (target omitted)
	nodeNS = append(nodeNS, nodeIP6.AsSlice()...)
	return []namedFrame{
		// VXLAN to the node.
		{"vxlan", vxlan},
		{"vxlan/flannel-port", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 8472, vxlanPayload()))},
		{"vxlan/wrong-port", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 4790, vxlanPayload()))},
		{"vxlan/port-0", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 0, vxlanPayload()))},
		{"vxlan/source-port", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(4789, 53, vxlanPayload()))},
		{"vxlan/wrong-dst-ip", to4(unix.IPPROTO_UDP, a("192.0.2.9"), udpPacket(40000, 4789, vxlanPayload()))},
		{"vxlan/wrong-mac", withDst(vxlan, otherMAC)},
		{"vxlan/broadcast-mac", withDst(vxlan, broadcast)},
		{"vxlan/ihl6", vxlanIHL6},
		{"vxlan/tcp", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(40000, 4789))},
		{"vxlan/vlan-tagged", vlanTagged(vxlan)},
		{"vxlan/cut-eth", cut(vxlan, ethLen)},
		{"vxlan/cut-ip", cut(vxlan, ethLen+ipv4Len-1)},
		{"vxlan/cut-ip-end", cut(vxlan, ethLen+ipv4Len)},
		{"vxlan/cut-udp", cut(vxlan, ethLen+ipv4Len+udpLen-1)},
		{"vxlan/cut-udp-end", cut(vxlan, ethLen+ipv4Len+udpLen)},

		// IPIP and IPv6-in-IPv4 to the node.
		{"ipip", ipip},
		{"ip6in4", to4(protoIPv6, nodeIP, ip6Packet(unix.IPPROTO_ICMPV6, a("fd00:244:2::3"), a("fd00:244:1::7"), icmpEcho(128)))},
		{"ipip/wrong-dst-ip", to4(protoIPIP, a("192.0.2.9"), ipip[ethLen+ipv4Len:])},
		{"ipip/wrong-mac", withDst(ipip, otherMAC)},
		{"ipip/ihl6", ethernet(nodeMAC, peerMAC, unix.ETH_P_IP, ip4Packet(protoIPIP, peerIP, nodeIP, []byte{1, 1, 1, 0}, ipip[ethLen+ipv4Len:]))},
		{"ipip/cut-ip", cut(ipip, ethLen+ipv4Len-1)},
		{"ipip/cut-ip-end", cut(ipip, ethLen+ipv4Len)},
		{"gre", to4(unix.IPPROTO_GRE, nodeIP, make([]byte, 8))},

		// The node's own traffic.
		{"node/ssh", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(40000, 22))},
		{"node/dns", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 53, []byte("query")))},
		{"node/ping", to4(unix.IPPROTO_ICMP, nodeIP, icmpEcho(8))},
		{"node/arp-request", arpPacket(broadcast, 1)},
		{"node/arp-reply", arpPacket(nodeMAC, 2)},
		{"node/ipv6-ssh", to6(unix.IPPROTO_TCP, nodeIP6, tcpSYN(40000, 22))},
		{"node/ipv6-nd", withDst(to6(unix.IPPROTO_ICMPV6, a("ff02::1:ff00:1"), nodeNS), [6]byte{0x33, 0x33, 0xff, 0, 0, 1})},

		// IPv4 to pods (local prefixes 10.244.1.0/24, 10.244.9.0/24).
		{"pod4", pod4},
		{"pod4/udp", to4(unix.IPPROTO_UDP, a("10.244.1.7"), udpPacket(40000, 53, nil))},
		{"pod4/ping", to4(unix.IPPROTO_ICMP, a("10.244.1.7"), icmpEcho(8))},
		{"pod4/network-address", to4(unix.IPPROTO_TCP, a("10.244.1.0"), tcpSYN(40000, 80))},
		{"pod4/ihl6", ethernet(nodeMAC, peerMAC, unix.ETH_P_IP, ip4Packet(unix.IPPROTO_TCP, peerIP, a("10.244.1.7"), []byte{1, 1, 1, 0}, tcpSYN(40000, 80)))},
		{"pod4/below", to4(unix.IPPROTO_TCP, a("10.244.0.255"), tcpSYN(40000, 80))},
		{"pod4/above", to4(unix.IPPROTO_TCP, a("10.244.2.0"), tcpSYN(40000, 80))},
		{"pod4/other-node", to4(unix.IPPROTO_TCP, a("10.244.2.7"), tcpSYN(40000, 80))},
		{"pod4/wrong-mac", withDst(pod4, otherMAC)},
		{"pod4/vlan-tagged", vlanTagged(pod4)},
		{"pod4/as-ipv6", ethernet(nodeMAC, peerMAC, unix.ETH_P_IPV6, pod4[ethLen:])},
		{"pod4/cut-ip", cut(pod4, ethLen+ipv4Len-1)},
		{"pod4/cut-ip-end", cut(pod4, ethLen+ipv4Len)},
		{"pod4/second-prefix", to4(unix.IPPROTO_TCP, a("10.244.9.7"), tcpSYN(40000, 80))},

		// IPv6 to pods (local prefix fd00:244:1::/64).
		{"pod6", pod6},
		{"pod6/ping", to6(unix.IPPROTO_ICMPV6, a("fd00:244:1::7"), icmpEcho(128))},
		{"pod6/other-node", to6(unix.IPPROTO_TCP, a("fd00:244:2::7"), tcpSYN(40000, 80))},
		{"pod6/last-of-prefix", to6(unix.IPPROTO_TCP, a("fd00:244:1::ffff:ffff:ffff:ffff"), tcpSYN(40000, 80))},
		{"pod6/next-prefix", to6(unix.IPPROTO_TCP, a("fd00:244:1:1::"), tcpSYN(40000, 80))},
		{"pod6/wrong-mac", withDst(pod6, otherMAC)},
		{"pod6/as-ipv4", ethernet(nodeMAC, peerMAC, unix.ETH_P_IP, pod6[ethLen:])},
		{"pod6/cut-ip", cut(pod6, ethLen+ipv6Len-1)},
		{"pod6/cut-ip-end", cut(pod6, ethLen+ipv6Len)},
		{"pod6/added-prefix", to6(unix.IPPROTO_TCP, a("fd00:244:9::7"), tcpSYN(40000, 80))},

		// NodePorts (30000-32767) and NAT replies (61000-65535) to the
		// node.
		{"nodeport/tcp-first", nodePortTCP},
		{"nodeport/tcp-last", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(40000, 32767))},
		{"nodeport/udp-first", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 30000, []byte("request")))},
		{"nodeport/udp-last", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 32767, []byte("request")))},
		{"nodeport/sctp", to4(unix.IPPROTO_SCTP, nodeIP, sctpInit(40000, 30080))},
		{"nodeport/tcp-below", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(40000, 29999))},
		{"nodeport/tcp-above", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(40000, 32768))},
		{"nodeport/udp-below", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 29999, nil))},
		{"nodeport/udp-above", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(40000, 32768, nil))},
		{"nodeport/source-port", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(30000, 80))},
		{"nodeport/wrong-dst-ip", to4(unix.IPPROTO_TCP, a("192.0.2.9"), tcpSYN(40000, 30000))},
		{"nodeport/icmp", to4(unix.IPPROTO_ICMP, nodeIP, []byte{8, 0, 30000 >> 8, 30000 & 0xff, 0, 1, 0, 1})},
		{"nodeport/udplite", to4(unix.IPPROTO_UDPLITE, nodeIP, udpPacket(40000, 30000, nil))},
		{"nodeport/ipv6", to6(unix.IPPROTO_TCP, nodeIP6, tcpSYN(40000, 30000))},
		// IHL 6, the option holding 30000 where the port is with IHL 5.
		{"nodeport/ihl6", ethernet(nodeMAC, peerMAC, unix.ETH_P_IP, ip4Packet(unix.IPPROTO_TCP, peerIP, nodeIP,
			[]byte{1, 1, 30000 >> 8, 30000 & 0xff}, tcpSYN(30000, 30000)))},
		{"nodeport/dont-fragment", withFrag(nodePortTCP, 0x4000)},
		{"nodeport/first-fragment", withFrag(nodePortUDP, 0x2000)},
		{"nodeport/middle-fragment", withFrag(nodePortUDP, 0x20b9)},
		{"nodeport/last-fragment", withFrag(nodePortUDP, 0x1000)},
		{"nodeport/wrong-mac", withDst(nodePortTCP, otherMAC)},
		{"nodeport/vlan-tagged", vlanTagged(nodePortTCP)},
		{"nodeport/cut-ip-end", cut(nodePortTCP, ethLen+ipv4Len)},
		{"nodeport/cut-l4", cut(nodePortTCP, ethLen+ipv4Len+udpLen-1)},
		{"nodeport/cut-l4-end", cut(nodePortTCP, ethLen+ipv4Len+udpLen)},
		{"natport/udp-first", to4(unix.IPPROTO_UDP, nodeIP, udpPacket(53, 61000, []byte("answer")))},
		{"natport/tcp-last", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(443, 65535))},
		{"natport/below", to4(unix.IPPROTO_TCP, nodeIP, tcpSYN(443, 60999))},

		// Service external IPs: a /32 and a /128 local prefix.
		{"external4", to4(unix.IPPROTO_TCP, a("198.51.100.10"), tcpSYN(40000, 443))},
		{"external4/ping", to4(unix.IPPROTO_ICMP, a("198.51.100.10"), icmpEcho(8))},
		{"external4/next", to4(unix.IPPROTO_TCP, a("198.51.100.11"), tcpSYN(40000, 443))},
		{"external4/previous", to4(unix.IPPROTO_TCP, a("198.51.100.9"), tcpSYN(40000, 443))},
		{"external6", to6(unix.IPPROTO_TCP, a("2001:db8:5::10"), tcpSYN(40000, 443))},
		{"external6/next", to6(unix.IPPROTO_TCP, a("2001:db8:5::11"), tcpSYN(40000, 443))},
	}
}

// uplinkConfig is a program configuration, the local prefixes it holds, and
// the frames it redirects (on a queue with a socket); every other frame of
// uplinkFrames passes.
type uplinkConfig struct {
	name     string
	opts     UplinkOptions
	prefixes []netip.Prefix
	redirect []string
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

var (
	fullOptions = UplinkOptions{Queues: 2, MAC: nodeMAC, NodeIPv4: nodeIP.As4(), VXLANPort: 4789, IPIP: true}
	tunnels     = []string{"vxlan", "vxlan/cut-udp-end", "ipip", "ip6in4", "ipip/ihl6", "ipip/cut-ip-end"}

	// servicePorts are the NodePort range and the NAT range, given in
	// descending order: the program sorts them.
	servicePorts = []PortRange{{61000, 65535}, {30000, 32767}}
	nodePorts    = []string{"nodeport/tcp-first", "nodeport/tcp-last", "nodeport/udp-first", "nodeport/udp-last",
		"nodeport/sctp", "nodeport/dont-fragment", "nodeport/cut-l4-end"}
	natPorts = []string{"natport/udp-first", "natport/tcp-last"}
	pods     = []string{"pod4", "pod4/udp", "pod4/ping", "pod4/network-address", "pod4/ihl6", "pod4/cut-ip-end",
		"pod6", "pod6/ping", "pod6/last-of-prefix", "pod6/cut-ip-end"}
)

// concat returns the lists joined in a new slice.
func concat(lists ...[]string) []string { return slices.Concat(lists...) }

// uplinkConfigs run in order; configurations with equal options share one
// program, so "replaced" tests SetLocalPrefixes on the program "full" set up.
var uplinkConfigs = []uplinkConfig{
	{
		name:     "full",
		opts:     fullOptions,
		prefixes: prefixes("10.244.1.0/24", "10.244.9.0/24", "fd00:244:1::/64"),
		redirect: append(slices.Clone(tunnels),
			"pod4", "pod4/udp", "pod4/ping", "pod4/network-address", "pod4/ihl6", "pod4/cut-ip-end", "pod4/second-prefix",
			"pod6", "pod6/ping", "pod6/last-of-prefix", "pod6/cut-ip-end"),
	},
	{
		// 10.244.1.0/24 and fd00:244:1::/64 removed, 10.244.9.0/24
		// kept, fd00:244:9::/64 added.
		name:     "replaced",
		opts:     fullOptions,
		prefixes: prefixes("10.244.9.0/24", "fd00:244:9::/64"),
		redirect: append(slices.Clone(tunnels), "pod4/second-prefix", "pod6/added-prefix"),
	},
	{
		name:     "emptied",
		opts:     fullOptions,
		prefixes: nil,
		redirect: tunnels,
	},
	{
		name:     "vxlan only",
		opts:     UplinkOptions{Queues: 2, MAC: nodeMAC, NodeIPv4: nodeIP.As4(), VXLANPort: 4789},
		redirect: []string{"vxlan", "vxlan/cut-udp-end"},
	},
	{
		name:     "ipip only",
		opts:     UplinkOptions{Queues: 2, MAC: nodeMAC, NodeIPv4: nodeIP.As4(), IPIP: true},
		redirect: []string{"ipip", "ip6in4", "ipip/ihl6", "ipip/cut-ip-end"},
	},
	{
		name:     "flannel port, any mac",
		opts:     UplinkOptions{Queues: 2, NodeIPv4: nodeIP.As4(), VXLANPort: 8472},
		prefixes: prefixes("10.244.1.0/24"),
		redirect: []string{"vxlan/flannel-port",
			"pod4", "pod4/udp", "pod4/ping", "pod4/network-address", "pod4/ihl6", "pod4/cut-ip-end", "pod4/wrong-mac"},
	},
	{
		name:     "prefixes only",
		opts:     UplinkOptions{Queues: 2, MAC: nodeMAC},
		prefixes: prefixes("10.244.1.0/24", "fd00:244:1::/64"),
		redirect: []string{"pod4", "pod4/udp", "pod4/ping", "pod4/network-address", "pod4/ihl6", "pod4/cut-ip-end",
			"pod6", "pod6/ping", "pod6/last-of-prefix", "pod6/cut-ip-end"},
	},
	{
		name: "nothing",
		opts: UplinkOptions{Queues: 2, MAC: nodeMAC},
	},
	{
		name: "services",
		opts: UplinkOptions{Queues: 2, MAC: nodeMAC, NodeIPv4: nodeIP.As4(), VXLANPort: 4789, IPIP: true,
			PortRanges: servicePorts},
		prefixes: prefixes("10.244.1.0/24", "fd00:244:1::/64", "198.51.100.10/32", "2001:db8:5::10/128"),
		redirect: concat(tunnels, pods, nodePorts, natPorts, []string{"external4", "external4/ping", "external6"}),
	},
	{
		name:     "external ips only",
		opts:     UplinkOptions{Queues: 2, MAC: nodeMAC},
		prefixes: prefixes("198.51.100.10/32", "2001:db8:5::10/128"),
		redirect: []string{"external4", "external4/ping", "external6"},
	},
	{
		name:     "nodeports only",
		opts:     UplinkOptions{Queues: 2, MAC: nodeMAC, NodeIPv4: nodeIP.As4(), PortRanges: []PortRange{{30000, 32767}}},
		redirect: nodePorts,
	},
	{
		name: "ports and flannel port, any mac",
		opts: UplinkOptions{Queues: 2, NodeIPv4: nodeIP.As4(), VXLANPort: 8472, PortRanges: servicePorts},
		redirect: concat(nodePorts, natPorts,
			[]string{"vxlan/flannel-port", "nodeport/wrong-mac"}),
	},
	{
		// MaxPortRanges single ports, unsorted; 30080 (SCTP) and
		// 61000 fall between them.
		name: "single ports",
		opts: UplinkOptions{Queues: 2, MAC: nodeMAC, NodeIPv4: nodeIP.As4(), IPIP: true,
			PortRanges: []PortRange{{32767, 32767}, {1, 1}, {65535, 65535}, {30000, 30000}}},
		redirect: concat(tunnels[2:], []string{"nodeport/tcp-first", "nodeport/tcp-last", "nodeport/udp-first",
			"nodeport/udp-last", "nodeport/dont-fragment", "nodeport/cut-l4-end", "natport/tcp-last"}),
	},
}

// uplinkModel is the uplink program's rules written plainly in Go, the
// reference the BPF program is tested against: the verdict for frame on a
// queue with a socket.
func uplinkModel(o UplinkOptions, local []netip.Prefix, frame []byte) Action {
	inLocal := func(a netip.Addr) bool {
		for _, p := range local {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if len(frame) < 14 {
		return Pass
	}
	if o.MAC != [6]byte{} && !bytes.Equal(frame[0:6], o.MAC[:]) {
		return Pass
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case unix.ETH_P_IP:
		ip := frame[14:]
		if len(ip) < 20 {
			return Pass
		}
		dst := netip.AddrFrom4([4]byte(ip[16:20]))
		if dst == netip.AddrFrom4(o.NodeIPv4) {
			version, ihl, proto := ip[0]>>4, ip[0]&0x0f, ip[9]
			if o.IPIP && (proto == 4 || proto == 41) {
				return Redirect
			}
			if o.VXLANPort != 0 && proto == 17 && version == 4 && ihl == 5 && len(ip) >= 28 &&
				binary.BigEndian.Uint16(ip[22:24]) == o.VXLANPort {
				return Redirect
			}
			// TCP, UDP or SCTP, no options, not a fragment (neither
			// more fragments nor an offset), 8 bytes of L4 header.
			fragment := binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0
			if (proto == 6 || proto == 17 || proto == 132) && version == 4 && ihl == 5 && !fragment && len(ip) >= 28 {
				port := binary.BigEndian.Uint16(ip[22:24])
				for _, r := range o.PortRanges {
					if r.First <= port && port <= r.Last {
						return Redirect
					}
				}
			}
		}
		if inLocal(dst) {
			return Redirect
		}
	case unix.ETH_P_IPV6:
		ip := frame[14:]
		if len(ip) >= 40 && inLocal(netip.AddrFrom16([16]byte(ip[24:40]))) {
			return Redirect
		}
	}
	return Pass
}

func newTestUplink(t testing.TB, opts UplinkOptions) *Program {
	t.Helper()
	return closedAtEnd[*Program](t)(NewUplinkProgram(opts))
}

// runFrames runs p on each frame at queue of device ifindex, inside ns.
func runFrames(ns *testNS, p *Program, ifindex, queue int, frames [][]byte) ([]Action, error) {
	got := make([]Action, len(frames))
	err := ns.Do(func() error {
		for i, f := range frames {
			a, err := p.Run(f, queue, ifindex)
			if err != nil {
				return fmt.Errorf("frame %d (%d bytes): %w", i, len(f), err)
			}
			got[i] = a
		}
		return nil
	})
	return got, err
}

// uplinkRig is a veth with two queues in a fresh netns and an AF_XDP socket
// bound to queue 1 of it; queue 0 has no socket.
type uplinkRig struct {
	ns      *testNS
	ifindex int
	xsk     *testXSK
}

const rigQueue = 1

func newUplinkRig(t testing.TB) *uplinkRig {
	t.Helper()
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnu0", PeerName: "rnu1", Queues: 2})
	r := &uplinkRig{ns: ns, ifindex: dev.Attrs().Index}
	err := ns.Do(func() (err error) {
		r.xsk, err = openTestXSK(r.ifindex, rigQueue)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.xsk.Close() })
	return r
}

// program returns a loaded uplink program with the rig's socket registered
// at rigQueue.
func (r *uplinkRig) program(t testing.TB, opts UplinkOptions) *Program {
	t.Helper()
	p := newTestUplink(t, opts)
	if err := p.Register(rigQueue, r.xsk.FD()); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every frame under every configuration: redirected on the queue with a
// socket exactly when the configuration says so, passed on the queue
// without one (a redirect to an empty slot falls back to pass), and the
// reference model agrees.
func TestUplinkVerdicts(t *testing.T) {
	rig := newUplinkRig(t)
	frames := uplinkFrames()
	raw := make([][]byte, len(frames))
	names := make(map[string]bool)
	for i, f := range frames {
		raw[i] = f.frame
		if names[f.name] {
			t.Fatalf("frame name %q used twice", f.name)
		}
		names[f.name] = true
	}

	programs := make(map[string]*Program) // by fmt.Sprint(options)
	for _, c := range uplinkConfigs {
		if programs[fmt.Sprint(c.opts)] == nil {
			programs[fmt.Sprint(c.opts)] = rig.program(t, c.opts)
		}
	}
	for _, c := range uplinkConfigs {
		t.Run(c.name, func(t *testing.T) {
			p := programs[fmt.Sprint(c.opts)]
			if err := p.SetLocalPrefixes(c.prefixes); err != nil {
				t.Fatal(err)
			}
			want := make(map[string]Action)
			for _, f := range frames {
				want[f.name] = Pass
			}
			for _, n := range c.redirect {
				if !names[n] {
					t.Fatalf("config lists unknown frame %q", n)
				}
				want[n] = Redirect
			}

			got, err := runFrames(rig.ns, p, rig.ifindex, rigQueue, raw)
			if err != nil {
				t.Fatal(err)
			}
			empty, err := runFrames(rig.ns, p, rig.ifindex, 0, raw)
			if err != nil {
				t.Fatal(err)
			}
			gotBy, emptyBy, modelBy, allPass := map[string]Action{}, map[string]Action{}, map[string]Action{}, map[string]Action{}
			for i, f := range frames {
				gotBy[f.name] = got[i]
				emptyBy[f.name] = empty[i]
				modelBy[f.name] = uplinkModel(c.opts, c.prefixes, f.frame)
				allPass[f.name] = Pass
			}
			if d := cmp.Diff(want, gotBy); d != "" {
				t.Errorf("verdicts on a queue with a socket (-want +got):\n%s", d)
			}
			if d := cmp.Diff(allPass, emptyBy); d != "" {
				t.Errorf("verdicts on a queue without a socket (-want +got):\n%s", d)
			}
			if d := cmp.Diff(want, modelBy); d != "" {
				t.Errorf("reference model (-want +model):\n%s", d)
			}
		})
	}
	// A program whose socket is gone passes everything again.
	if err := rig.xsk.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := runFrames(rig.ns, programs[fmt.Sprint(fullOptions)], rig.ifindex, rigQueue, raw)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range got {
		if a != Pass {
			t.Errorf("after closing the socket: %s = %v, want pass", frames[i].name, a)
		}
	}
}

// mutate returns a copy of frame with a few bytes of its headers changed,
// mostly to values that matter to the program, or truncated.
func mutate(rng *rand.Rand, frame []byte, o UplinkOptions) []byte {
	f := slices.Clone(frame)
	interesting := []byte{0, 0xff, 0x08, 0x00, 0x86, 0xdd, 0x81, 0x45, 0x46, 0x44, 0x55, 0x65,
		protoIPIP, protoIPv6, protoUDP, 6, 4789 >> 8, 4789 & 0xff, 8472 >> 8, 8472 & 0xff,
		byte(o.VXLANPort >> 8), byte(o.VXLANPort), 10, 244, 1, 9}
	interesting = append(interesting, o.MAC[:]...)
	interesting = append(interesting, o.NodeIPv4[:]...)
	// Protocols and fragment fields the port ranges read, and the
	// bytes of every range's ends and their neighbours.
	interesting = append(interesting, protoTCP, protoSCTP, 0x20, 0x40, 0x1f, 0x3f, 0x01)
	for _, r := range o.PortRanges {
		for _, p := range []uint16{r.First - 1, r.First, r.Last, r.Last + 1} {
			interesting = append(interesting, byte(p>>8), byte(p))
		}
	}
	for range 1 + rng.IntN(3) {
		i := rng.IntN(min(len(f), ethLen+ipv6Len+udpLen))
		if rng.IntN(4) == 0 {
			f[i] = byte(rng.Uint32())
		} else {
			f[i] = interesting[rng.IntN(len(interesting))]
		}
	}
	if rng.IntN(4) == 0 {
		f = f[:ethLen+rng.IntN(len(f)-ethLen+1)]
	}
	return f
}

// The BPF program and the reference model agree on every frame cut at every
// length and on random mutations of every frame's headers, under every
// configuration.
func TestUplinkMatchesModel(t *testing.T) {
	rig := newUplinkRig(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var redirected, passed int
	for _, c := range uplinkConfigs {
		t.Run(c.name, func(t *testing.T) {
			p := rig.program(t, c.opts)
			if err := p.SetLocalPrefixes(c.prefixes); err != nil {
				t.Fatal(err)
			}
			var frames [][]byte
			for _, f := range uplinkFrames() {
				for n := ethLen; n <= len(f.frame); n++ {
					frames = append(frames, f.frame[:n])
				}
				for range 50 {
					frames = append(frames, mutate(rng, f.frame, c.opts))
				}
			}
			got, err := runFrames(rig.ns, p, rig.ifindex, rigQueue, frames)
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, f := range frames {
				want := uplinkModel(c.opts, c.prefixes, f)
				if got[i] == Redirect {
					redirected++
				} else {
					passed++
				}
				if got[i] != want && bad < 10 {
					bad++
					t.Errorf("frame % x:\nprogram %v, model %v", f, got[i], want)
				}
			}
		})
	}
	t.Logf("%d frames redirected, %d passed", redirected, passed)
	if redirected == 0 || passed == 0 {
		t.Errorf("the frames do not exercise both verdicts")
	}
}

// FuzzUplink compares the BPF program with the reference model on arbitrary
// frames, under the configuration chosen by cfg.
//
// Unlike the other tests it runs the program with no device (queue 0 of
// ifindex 0) and keeps its socket in an unnamed namespace: the fuzz engine
// may kill its worker processes, and nothing must outlive them.
func FuzzUplink(f *testing.F) {
	x, err := openAnonXSK()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { x.Close() })
	progs := make([]*Program, len(uplinkConfigs))
	for i, c := range uplinkConfigs {
		progs[i] = newTestUplink(f, c.opts)
		if err := progs[i].Register(0, x.FD()); err != nil {
			f.Fatal(err)
		}
		if err := progs[i].SetLocalPrefixes(c.prefixes); err != nil {
			f.Fatal(err)
		}
	}
	for i := range uplinkConfigs {
		for _, fr := range uplinkFrames() {
			f.Add(uint8(i), fr.frame)
		}
	}
	f.Fuzz(func(t *testing.T, cfg uint8, frame []byte) {
		if len(frame) < ethLen || len(frame) > 1500 {
			t.Skip()
		}
		c := uplinkConfigs[int(cfg)%len(uplinkConfigs)]
		p := progs[int(cfg)%len(uplinkConfigs)]
		got, err := p.Run(frame, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := uplinkModel(c.opts, c.prefixes, frame); got != want {
			t.Errorf("config %q, frame % x: program %v, model %v", c.name, frame, got, want)
		}
	})
}

// openAnonXSK opens an AF_XDP socket bound to queue 0 of a veth in a fresh
// network namespace that has no name. The socket holds the namespace, so the
// namespace and the veth go away with the socket, even if the process is
// killed.
func openAnonXSK() (*testXSK, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("this test creates network namespaces and must run as root")
	}
	var x *testXSK
	err := do(func() error {
		// do's thread is never reused, so it may leave its namespace.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare netns: %w", err)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "rnf0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "rnf1"}); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		l, err := netlink.LinkByName("rnf0")
		if err != nil {
			return err
		}
		x, err = openTestXSK(l.Attrs().Index, 0)
		return err
	})
	return x, err
}

// While SetLocalPrefixes switches back and forth between two sets, frames
// covered by both are redirected every time they are run, whether the same
// prefix covers them in both sets or a different one (a /16 replaced by the
// /8 around it). Deleting before adding would let some pass.
func TestSetLocalPrefixesKeepsCommonCoverage(t *testing.T) {
	rig := newUplinkRig(t)
	p := rig.program(t, UplinkOptions{Queues: 2})
	sets := [2][]netip.Prefix{
		prefixes("172.16.0.0/12", "10.0.0.0/16", "10.9.0.0/16", "fd00::/64", "fd01::/64"),
		prefixes("172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16", "fd00::/48", "fd01::/64"),
	}
	frames := [][]byte{
		to4(unix.IPPROTO_TCP, netip.MustParseAddr("172.16.5.5"), tcpSYN(1, 2)), // same prefix in both
		to4(unix.IPPROTO_TCP, netip.MustParseAddr("10.0.1.1"), tcpSYN(1, 2)),   // /16, then /8
		to6(unix.IPPROTO_TCP, netip.MustParseAddr("fd00::1:1"), tcpSYN(1, 2)),  // /64, then /48
		to6(unix.IPPROTO_TCP, netip.MustParseAddr("fd01::1"), tcpSYN(1, 2)),    // same prefix in both
	}
	if err := p.SetLocalPrefixes(sets[0]); err != nil {
		t.Fatal(err)
	}

	// One goroutine runs the frames round after round while this one
	// switches the sets; switching starts once the first round is done.
	var stop atomic.Bool
	var runs, misses [4]atomic.Int64
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- rig.ns.Do(func() error {
			for round := 0; !stop.Load(); round++ {
				for i, f := range frames {
					a, err := p.Run(f, rigQueue, rig.ifindex)
					if err != nil {
						return err
					}
					runs[i].Add(1)
					if a != Redirect {
						misses[i].Add(1)
					}
				}
				if round == 0 {
					close(started)
				}
			}
			return nil
		})
	}()
	select {
	case <-started:
	case err := <-errc:
		t.Fatal(err)
	}
	const flips = 2000
	var setErr error
	for n := range flips {
		if setErr = p.SetLocalPrefixes(sets[(n+1)%2]); setErr != nil {
			break
		}
	}
	stop.Store(true)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if setErr != nil {
		t.Fatal(setErr)
	}
	for i := range frames {
		t.Logf("frame %d: %d runs, %d passed", i, runs[i].Load(), misses[i].Load())
		if misses[i].Load() != 0 {
			t.Errorf("frame %d passed %d times of %d while the prefix sets switched", i, misses[i].Load(), runs[i].Load())
		}
		if runs[i].Load() < flips/10 {
			t.Errorf("frame %d ran only %d times during %d switches: the test did not test", i, runs[i].Load(), flips)
		}
	}
	// And the switching did switch: the last set is in place.
	got, err := p.LocalPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(sets[flips%2])
	slices.SortFunc(want, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("LocalPrefixes after switching (-want +got):\n%s", d)
	}
}

func TestSetLocalPrefixes(t *testing.T) {
	p := newTestUplink(t, UplinkOptions{Queues: 1})
	eq := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	check := func(what string, want []netip.Prefix) {
		t.Helper()
		got, err := p.LocalPrefixes()
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, eq, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s: LocalPrefixes (-want +got):\n%s", what, d)
		}
	}
	check("new program", nil)

	// Masked, deduplicated, sorted; a 4-in-6 prefix stays IPv6; single
	// addresses (service external IPs) kept as they are.
	in := prefixes("fd00:244:1::5/64", "10.244.1.7/24", "10.244.1.0/24", "::ffff:10.1.0.0/112", "10.0.0.1/32", "0.0.0.0/0",
		"2001:db8:5::10/128", "198.51.100.10/32")
	if err := p.SetLocalPrefixes(in); err != nil {
		t.Fatal(err)
	}
	set := prefixes("0.0.0.0/0", "10.0.0.1/32", "10.244.1.0/24", "198.51.100.10/32", "::ffff:10.1.0.0/112",
		"2001:db8:5::10/128", "fd00:244:1::/64")
	check("after set", set)

	// Refused before anything changes.
	for _, tc := range []struct {
		name     string
		in       []netip.Prefix
		wantText string
	}{
		{"zero prefix", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}, "invalid prefix"},
		{"too many ipv4", manyPrefixes(MaxLocalPrefixes+1, false), "at most"},
		{"too many ipv6", manyPrefixes(MaxLocalPrefixes+1, true), "at most"},
	} {
		err := p.SetLocalPrefixes(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantText) || !strings.HasPrefix(err.Error(), "set local prefixes: ") {
			t.Errorf("%s: SetLocalPrefixes = %v, want an error containing %q", tc.name, err, tc.wantText)
		}
		check(tc.name, set)
	}

	// The maximum of each family fits.
	full := append(manyPrefixes(MaxLocalPrefixes, false), manyPrefixes(MaxLocalPrefixes, true)...)
	if err := p.SetLocalPrefixes(full); err != nil {
		t.Fatalf("%d prefixes of each family: %v", MaxLocalPrefixes, err)
	}
	if got, err := p.LocalPrefixes(); err != nil || len(got) != 2*MaxLocalPrefixes {
		t.Errorf("LocalPrefixes = %d prefixes, %v; want %d", len(got), err, 2*MaxLocalPrefixes)
	}
	if err := p.SetLocalPrefixes(nil); err != nil {
		t.Fatal(err)
	}
	check("emptied", nil)

	// A port's program has no prefixes.
	port := newTestProgram(t, ProgramOptions{Queues: 1})
	if err := port.SetLocalPrefixes(in); err == nil || !strings.Contains(err.Error(), "not an uplink program") {
		t.Errorf("SetLocalPrefixes on a port's program = %v, want not an uplink program", err)
	}
	if _, err := port.LocalPrefixes(); err == nil {
		t.Errorf("LocalPrefixes on a port's program = nil error, want one")
	}
}

// manyPrefixes returns n distinct /32s or /128s.
func manyPrefixes(n int, v6 bool) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		if v6 {
			out[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 14: byte(i >> 8), 15: byte(i)}), 128)
		} else {
			out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
		}
	}
	return out
}

func TestNewUplinkProgramOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     UplinkOptions
		wantText string // "" if valid
	}{
		{"minimal", UplinkOptions{Queues: 1}, ""},
		{"full", fullOptions, ""},
		{"max queues", UplinkOptions{Queues: MaxQueues, MAC: nodeMAC}, ""},
		{"no queues", UplinkOptions{}, "queues 0 out of range"},
		{"too many queues", UplinkOptions{Queues: MaxQueues + 1}, "out of range"},
		{"multicast mac", UplinkOptions{Queues: 1, MAC: broadcast}, "multicast"},
		{"vxlan without node ip", UplinkOptions{Queues: 1, VXLANPort: 4789}, "NodeIPv4"},
		{"ipip without node ip", UplinkOptions{Queues: 1, IPIP: true}, "NodeIPv4"},
		{"port ranges", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(), PortRanges: servicePorts}, ""},
		{"max port ranges, adjacent", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(),
			PortRanges: []PortRange{{1, 1}, {65535, 65535}, {2, 30000}, {30001, 65534}}}, ""},
		{"port ranges without node ip", UplinkOptions{Queues: 1, PortRanges: servicePorts}, "NodeIPv4"},
		{"too many port ranges", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(),
			PortRanges: []PortRange{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}}, "5 port ranges, at most 4"},
		{"port range backwards", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(), PortRanges: []PortRange{{32767, 30000}}}, "port range 32767-30000"},
		{"port 0", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(), PortRanges: []PortRange{{0, 10}}}, "port range 0-10"},
		{"empty port range", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(), PortRanges: []PortRange{{}}}, "port range 0-0"},
		{"overlapping port ranges", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(),
			PortRanges: []PortRange{{61000, 65535}, {30000, 32767}, {32767, 40000}}}, "port ranges 30000-32767 and 32767-40000 overlap"},
		{"same port range twice", UplinkOptions{Queues: 1, NodeIPv4: nodeIP.As4(),
			PortRanges: []PortRange{{30000, 32767}, {30000, 32767}}}, "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewUplinkProgram(tc.opts)
			if tc.wantText != "" {
				if err == nil {
					p.Close()
					t.Fatalf("NewUplinkProgram = nil error, want one containing %q", tc.wantText)
				}
				if !strings.Contains(err.Error(), tc.wantText) || !strings.HasPrefix(err.Error(), "new uplink xdp program: ") {
					t.Errorf("error %q: want one containing %q, with context", err, tc.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Fallback() != Pass || p.Queues() != tc.opts.Queues {
				t.Errorf("Fallback, Queues = %v, %d; want pass, %d", p.Fallback(), p.Queues(), tc.opts.Queues)
			}
			info, err := p.prog.Info()
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != UplinkProgramName {
				t.Errorf("kernel's name for the program = %q, want %q", info.Name, UplinkProgramName)
			}
		})
	}
}

// The instruction count stays small, and the program loads under the
// verifier's strict alignment checks too, as its comment promises.
func TestUplinkInstructions(t *testing.T) {
	largest := uplinkConfig{name: "largest", opts: fullOptions}
	largest.opts.PortRanges = []PortRange{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
	for _, c := range append(slices.Clone(uplinkConfigs), largest) {
		spec, err := newUplinkSpec(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		ps := spec.Programs[UplinkProgramName]
		n := int(ps.Instructions.Size() / asm.InstructionSize)
		t.Logf("%s: %d instructions", c.name, n)
		if n > maxUplinkInstructions {
			t.Errorf("%s: %d instructions, want at most %d", c.name, n, maxUplinkInstructions)
		}
		ps.Flags |= unix.BPF_F_STRICT_ALIGNMENT
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				t.Fatalf("%s: strict alignment: %+v", c.name, ve)
			}
			t.Fatalf("%s: strict alignment: %v", c.name, err)
		}
		coll.Close()
	}
}

// maxUplinkInstructions is what the package doc promises at most.
const maxUplinkInstructions = 74
