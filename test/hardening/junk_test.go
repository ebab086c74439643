package hardening_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The frames TestMalformedAtRate floods ringnetd with, built byte by byte
// here, not with fastpath/packet or encap: those are what it tests.
// TestJunkBuilders checks the builders against gopacket.

// mac is an Ethernet address.
type mac [6]byte

func (m mac) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

const (
	etIPv4 = 0x0800
	etARP  = 0x0806
	etVLAN = 0x8100
	etIPv6 = 0x86dd

	protoHopByHop = 0
	protoICMP     = 1
	protoIPIP     = 4
	protoTCP      = 6
	protoUDP      = 17
	protoIPv6     = 41
	protoFragment = 44
	protoICMPv6   = 58
	protoDestOpts = 60

	ipDF = 0x4000 // IPv4 don't fragment
	ipMF = 0x2000 // IPv4 more fragments

	vxlanPort = 8472       // Flannel's, the cluster file's default
	vxlanI    = 0x08000000 // the VXLAN header's first word: I flag only
)

// ether is an Ethernet frame.
func ether(dst, src mac, et uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], et)
	return append(b, payload...)
}

// dot1q is what follows the EtherType 0x8100 of a tagged frame: the tag
// control word (VLAN vid) and the inner EtherType, then payload.
func dot1q(vid, et uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, vid&0x0fff)
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, payload...)
}

// v4 is an IPv4 header to build (RFC 791):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The zero value of each field that breaks the header leaves it right: the
// version and IHL follow from the options, the total length from the
// payload, and the checksum is computed last, over whatever the header
// then holds.
type v4 struct {
	src, dst netip.Addr
	proto    uint8
	ttl      uint8  // 0: 64
	frag     uint16 // flags and fragment offset (in 8-byte units), e.g. ipDF, ipMF|185
	id       uint16
	opts     []byte // options, padded by the caller to a multiple of 4 bytes

	verIHL byte // when nonzero, the first byte as it is, whatever the options
	total  int  // when nonzero, the total length field, whatever the payload
	badSum bool // the checksum is one off
}

// packet returns the header followed by payload.
func (h v4) packet(payload []byte) []byte {
	hl := 20 + len(h.opts)
	b := make([]byte, hl, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	if h.verIHL != 0 {
		b[0] = h.verIHL
	}
	total := hl + len(payload)
	if h.total != 0 {
		total = h.total
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	binary.BigEndian.PutUint16(b[4:6], h.id)
	binary.BigEndian.PutUint16(b[6:8], h.frag)
	b[8] = h.ttl
	if b[8] == 0 {
		b[8] = 64
	}
	b[9] = h.proto
	s, d := h.src.As4(), h.dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], h.opts)
	sum := inetChecksum(b, 0)
	if h.badSum {
		sum++
	}
	binary.BigEndian.PutUint16(b[10:12], sum)
	return append(b, payload...)
}

// v6 is an IPv6 header to build (RFC 8200): version 6, traffic class and
// flow label 0, the payload length from the payload unless plen says
// otherwise.
type v6 struct {
	src, dst netip.Addr
	next     uint8
	hop      uint8 // 0: 64
	plen     int   // when nonzero, the payload length field, whatever the payload
	version  uint8 // when nonzero, instead of 6
}

func (h v6) packet(payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 6 << 4
	if h.version != 0 {
		b[0] = h.version << 4
	}
	plen := len(payload)
	if h.plen != 0 {
		plen = h.plen
	}
	binary.BigEndian.PutUint16(b[4:6], uint16(plen))
	b[6], b[7] = h.next, h.hop
	if b[7] == 0 {
		b[7] = 64
	}
	s, d := h.src.As16(), h.dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, payload...)
}

// optsHeader is an IPv6 hop-by-hop or destination options header of
// 8*(units+1) bytes, holding one PadN option, then payload.
func optsHeader(next uint8, units int, payload []byte) []byte {
	n := 8 * (units + 1)
	b := make([]byte, n, n+len(payload))
	b[0], b[1] = next, byte(units)
	b[2], b[3] = 1, byte(n-4) // PadN
	return append(b, payload...)
}

// fragHeader is an IPv6 fragment header (offset in 8-byte units), then
// payload.
func fragHeader(next uint8, offset uint16, more bool, id uint32, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = next
	w := offset << 3
	if more {
		w |= 1
	}
	binary.BigEndian.PutUint16(b[2:4], w)
	binary.BigEndian.PutUint32(b[4:8], id)
	return append(b, payload...)
}

// udp is a UDP header with its length set and checksum 0 (none, which
// IPv4 allows), then payload.
func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(8+len(payload)))
	return append(b, payload...)
}

// tcp is a 20-byte TCP header (data offset 5, the given flags, window
// 65535, checksum 0), then payload.
func tcp(sport, dport uint16, flags uint8, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], 1)
	b[12], b[13] = 5<<4, flags
	binary.BigEndian.PutUint16(b[14:16], 65535)
	return append(b, payload...)
}

// icmpEcho is an ICMP (or ICMPv6) echo message of type typ with a correct
// ICMPv4 checksum (ICMPv6's covers a pseudo-header: left 0).
func icmpEcho(typ uint8, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	b = append(b, payload...)
	if typ == 8 {
		binary.BigEndian.PutUint16(b[2:4], inetChecksum(b, 0))
	}
	return b
}

// vxlan is a VXLAN header (RFC 7348): the flags word as given (vxlanI is
// the right one), the VNI, then the inner frame.
func vxlan(flags, vni uint32, inner []byte) []byte {
	b := make([]byte, 8, 8+len(inner))
	binary.BigEndian.PutUint32(b[0:4], flags)
	binary.BigEndian.PutUint32(b[4:8], vni<<8)
	return append(b, inner...)
}

// arp is an ARP message for Ethernet and IPv4 (hardware type htype: 1 is
// Ethernet).
func arp(htype, op uint16, sha mac, spa netip.Addr, tha mac, tpa netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:2], htype)
	binary.BigEndian.PutUint16(b[2:4], etIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	s, t := spa.As4(), tpa.As4()
	copy(b[8:14], sha[:])
	copy(b[14:18], s[:])
	copy(b[18:24], tha[:])
	copy(b[24:28], t[:])
	return b
}

// inetChecksum is the Internet checksum (RFC 1071) of b, starting from
// the partial sum initial (a pseudo-header's, or 0).
func inetChecksum(b []byte, initial uint32) uint16 {
	sum := initial
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udpChecksum4 is the checksum of UDP segment seg (its checksum field
// zero) from src to dst over IPv4.
func udpChecksum4(src, dst netip.Addr, seg []byte) uint16 {
	s, d := src.As4(), dst.As4()
	ph := uint32(binary.BigEndian.Uint16(s[0:2])) + uint32(binary.BigEndian.Uint16(s[2:4])) +
		uint32(binary.BigEndian.Uint16(d[0:2])) + uint32(binary.BigEndian.Uint16(d[2:4])) +
		protoUDP + uint32(len(seg))
	c := inetChecksum(seg, ph)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// put16 writes v big-endian at b[off:] and returns b.
func put16(b []byte, off int, v uint16) []byte {
	binary.BigEndian.PutUint16(b[off:], v)
	return b
}

func zeros(n int) []byte { return make([]byte, n) }

// junk is one kind of frame in a flood. trafgen sends the kinds of a
// config in turn, so each gets the same share of the frames.
type junk struct {
	what  string // what is wrong with it
	frame []byte
	// random is how many of frame's last bytes are random: trafgen draws
	// them anew for every frame it sends.
	random int
	// reasons are where ringnetd counts it (a punt-list class has two:
	// within its token bucket and over it). None: the uplink's XDP program
	// passes it to the node's kernel, and the fast path never sees it.
	reasons []string
}

func (j junk) passes() bool { return len(j.reasons) == 0 }

// podView is what a junk-sending pod addresses its frames from and to.
type podView struct {
	mac, gw    mac        // the pod's eth0, and the host end of its veth (its gateway)
	ip4, ip6   netip.Addr // the pod's addresses
	dst4, dst6 netip.Addr // another pod on the node
	node4      netip.Addr // the node's address
	other4     netip.Addr // an address of the node's pod CIDR that is not the pod's
	nowhere6   netip.Addr // an address of the node's IPv6 pod CIDR that no pod has
	mtu        int        // of the pod's eth0: its largest frame is 14 bytes more
}

// Reason names as ringnetd exports them (fastpath/stats, written out here
// so that a renamed reason fails the test rather than follows it).
const (
	rFragment           = "fragment"
	rFragmentOverLimit  = "fragment_over_limit"
	rIPOptions          = "ip_options"
	rIPOptionsOverLimit = "ip_options_over_limit"
	rUnknownEtherType   = "unknown_ethertype"
	rUnknownETOverLimit = "unknown_ethertype_over_limit"
	rTTLExpired         = "ttl_expired"
	rTTLOverLimit       = "ttl_expired_over_limit"
	rTxRingFull         = "tx_ring_full"
	rVLANTagged         = "vlan_tagged"
	rSpoofedIP          = "spoofed_ip"
	rSpoofedMAC         = "spoofed_mac"
	rMulticast          = "multicast"
	rARPIgnored         = "arp_ignored"
	rICMPv6Ignored      = "icmpv6_ignored"
	rUnknownVTEP        = "unknown_vtep"
	rPeerNoPod          = "peer_no_pod"
)

func malformed(what string) string { return "malformed_" + what }

func decap(what string) string { return "decap_" + what }

// podJunk is what pod J sends: malformed headers at each layer, the
// punt list's odd kinds, and frames that are well formed but not the
// pod's to send. None of it may be forwarded.
func podJunk(v podView) []junk {
	eth4 := func(b []byte) []byte { return ether(v.gw, v.mac, etIPv4, b) }
	eth6 := func(b []byte) []byte { return ether(v.gw, v.mac, etIPv6, b) }
	ip := v4{src: v.ip4, dst: v.dst4, proto: protoUDP, frag: ipDF}
	ip6 := v6{src: v.ip6, dst: v.dst6, next: protoUDP}
	payload := zeros(18)
	dg := udp(40000, 9, payload) // to the discard port
	with := func(h v4, f func(*v4)) v4 { f(&h); return h }
	mal := func(m string) []string { return []string{malformed(m)} }
	dstOpts := func(n int, inner []byte) []byte {
		for i := range n {
			next := uint8(protoDestOpts)
			if i == 0 { // the last header of the chain
				next = protoUDP
			}
			inner = optsHeader(next, 0, inner)
		}
		return inner
	}
	tail := udp(40000, 9, payload)
	return []junk{
		{"truncated 802.1Q tag", ether(v.gw, v.mac, etVLAN, []byte{0, 10}), 0, mal("truncated_vlan")},
		{"truncated ARP", ether(v.gw, v.mac, etARP, arp(1, 1, v.mac, v.ip4, mac{}, v.dst4)[:20]), 0, mal("truncated_arp")},
		{"ARP for a hardware type other than Ethernet", ether(v.gw, v.mac, etARP, arp(6, 1, v.mac, v.ip4, mac{}, v.dst4)), 0, mal("bad_arp")},
		{"IPv4 header cut at 12 bytes", eth4(ip.packet(dg)[:12]), 0, mal("truncated_ipv4")},
		{"IPv4 IHL 15 in a 20-byte header", eth4(with(ip, func(h *v4) { h.verIHL = 0x4f }).packet(nil)), 0, mal("truncated_ipv4")},
		{"version 6 under EtherType IPv4", eth4(with(ip, func(h *v4) { h.verIHL = 0x65 }).packet(dg)), 0, mal("bad_ip_version")},
		{"IPv4 IHL 4", eth4(with(ip, func(h *v4) { h.verIHL = 0x44 }).packet(dg)), 0, mal("bad_ihl")},
		{"IPv4 total length past the frame", eth4(with(ip, func(h *v4) { h.total = 1400 }).packet(dg)), 0, mal("bad_total_length")},
		{"IPv4 total length shorter than the header", eth4(with(ip, func(h *v4) { h.total = 12 }).packet(dg)), 0, mal("bad_total_length")},
		{"IPv4 header checksum wrong", eth4(with(ip, func(h *v4) { h.badSum = true }).packet(dg)), 0, mal("bad_ipv4_checksum")},
		{"IPv6 header cut at 30 bytes", eth6(ip6.packet(dg)[:30]), 0, mal("truncated_ipv6")},
		{"version 4 under EtherType IPv6", eth6(v6{src: v.ip6, dst: v.dst6, next: protoUDP, version: 4}.packet(dg)), 0, mal("bad_ip_version")},
		{"IPv6 payload length past the frame", eth6(v6{src: v.ip6, dst: v.dst6, next: protoUDP, plen: 1000}.packet(dg)), 0, mal("bad_payload_length")},
		{"IPv6 chain of 9 extension headers", eth6(v6{src: v.ip6, dst: v.dst6, next: protoDestOpts}.packet(dstOpts(9, tail))), 0, mal("bad_extension_header")},
		{"IPv6 hop-by-hop after a destination options header", eth6(v6{src: v.ip6, dst: v.dst6, next: protoDestOpts}.packet(
			optsHeader(protoHopByHop, 0, optsHeader(protoUDP, 0, tail)))), 0, mal("bad_extension_header")},
		{"IPv6 extension header longer than the packet", eth6(v6{src: v.ip6, dst: v.dst6, next: protoDestOpts}.packet(
			optsHeader(protoUDP, 1, nil)[:8])), 0, mal("bad_extension_header")},
		{"TCP header of 10 bytes", eth4(with(ip, func(h *v4) { h.proto = protoTCP }).packet(tcp(40000, 9, 0x02, nil)[:10])), 0, mal("truncated_l4")},
		{"UDP header of 4 bytes", eth4(ip.packet(dg[:4])), 0, mal("truncated_l4")},
		{"ICMP echo of 6 bytes", eth4(with(ip, func(h *v4) { h.proto = protoICMP }).packet(icmpEcho(8, 1, 1, nil)[:6])), 0, mal("truncated_l4")},
		{"TCP data offset 4", eth4(with(ip, func(h *v4) { h.proto = protoTCP }).packet(func() []byte {
			b := tcp(40000, 9, 0x02, payload)
			b[12] = 4 << 4
			return b
		}())), 0, mal("bad_tcp_data_offset")},
		{"TCP data offset past the packet", eth4(with(ip, func(h *v4) { h.proto = protoTCP }).packet(func() []byte {
			b := tcp(40000, 9, 0x02, nil)
			b[12] = 15 << 4
			return b
		}())), 0, mal("bad_tcp_data_offset")},
		{"UDP length past the packet", eth4(ip.packet(put16(udp(40000, 9, payload), 4, 500))), 0, mal("bad_udp_length")},
		{"UDP length 4", eth4(ip.packet(put16(udp(40000, 9, payload), 4, 4))), 0, mal("bad_udp_length")},
		{"full-size frame, IPv4 total length 65535", eth4(with(ip, func(h *v4) { h.total = 65535 }).packet(udp(40000, 9, zeros(v.mtu-28)))), 0,
			mal("bad_total_length")},
		{"full-size frame, IPv6 payload length 65535", eth6(v6{src: v.ip6, dst: v.dst6, next: protoUDP, plen: 65535}.packet(udp(40000, 9, zeros(v.mtu-48)))), 0,
			mal("bad_payload_length")},
		{"full-size frame, UDP length 65535", eth4(ip.packet(put16(udp(40000, 9, zeros(v.mtu-28)), 4, 65535))), 0, mal("bad_udp_length")},
		{"IPv4 first fragment to the node", eth4(with(ip, func(h *v4) { h.dst, h.frag, h.id = v.node4, ipMF, 7 }).packet(udp(40000, 9, zeros(64)))), 0,
			[]string{rFragment, rFragmentOverLimit}},
		{"IPv4 later fragment to the node", eth4(with(ip, func(h *v4) { h.dst, h.frag, h.id = v.node4, 185, 7 }).packet(zeros(64))), 0,
			[]string{rFragment, rFragmentOverLimit}},
		{"IPv6 first fragment", eth6(v6{src: v.ip6, dst: v.nowhere6, next: protoFragment}.packet(fragHeader(protoUDP, 0, true, 7, udp(40000, 9, zeros(64))))), 0,
			[]string{rFragment, rFragmentOverLimit}},
		{"IPv4 options (4 × NOP) to the node", eth4(with(ip, func(h *v4) { h.dst, h.opts = v.node4, []byte{1, 1, 1, 1} }).packet(dg)), 0,
			[]string{rIPOptions, rIPOptionsOverLimit}},
		{"IPv6 hop-by-hop options", eth6(v6{src: v.ip6, dst: v.nowhere6, next: protoHopByHop}.packet(optsHeader(protoUDP, 0, tail))), 0,
			[]string{rIPOptions, rIPOptionsOverLimit}},
		{"unknown EtherType 0x88b5", ether(v.gw, v.mac, 0x88b5, zeros(46)), 0, []string{rUnknownEtherType, rUnknownETOverLimit}},
		{"TTL 1 to a pod", eth4(with(ip, func(h *v4) { h.ttl = 1 }).packet(dg)), 0, []string{rTTLExpired, rTTLOverLimit, rTxRingFull}},
		{"802.1Q-tagged IPv4", ether(v.gw, v.mac, etVLAN, dot1q(10, etIPv4, ip.packet(dg))), 0, []string{rVLANTagged}},
		{"IPv4 from another pod's address", eth4(with(ip, func(h *v4) { h.src = v.other4 }).packet(dg)), 0, []string{rSpoofedIP}},
		{"IPv6 from an address not the pod's", eth6(v6{src: netip.MustParseAddr("2001:db8::1"), dst: v.dst6, next: protoUDP}.packet(dg)), 0, []string{rSpoofedIP}},
		{"from another MAC", ether(v.gw, mac{0x02, 0xba, 0xd0, 0, 0, 1}, etIPv4, ip.packet(dg)), 0, []string{rSpoofedMAC}},
		{"IPv4 broadcast", ether(mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, v.mac, etIPv4,
			with(ip, func(h *v4) { h.dst = netip.MustParseAddr("255.255.255.255") }).packet(dg)), 0, []string{rMulticast}},
		{"IPv4 multicast", ether(mac{0x01, 0, 0x5e, 0, 0, 0xfb}, v.mac, etIPv4,
			with(ip, func(h *v4) { h.dst = netip.MustParseAddr("224.0.0.251") }).packet(dg)), 0, []string{rMulticast}},
		{"IPv6 multicast", ether(mac{0x33, 0x33, 0, 0, 0, 1}, v.mac, etIPv6,
			v6{src: v.ip6, dst: netip.MustParseAddr("ff02::1"), next: protoUDP}.packet(dg)), 0, []string{rMulticast}},
		{"router advertisement from a pod", ether(mac{0x33, 0x33, 0, 0, 0, 1}, v.mac, etIPv6,
			v6{src: v.ip6, dst: netip.MustParseAddr("ff02::1"), next: protoICMPv6, hop: 255}.packet(append([]byte{134, 0, 0, 0, 64, 0, 0x07, 0x08}, zeros(8)...))), 0,
			[]string{rICMPv6Ignored}},
		{"ARP reply nobody asked for, claiming another pod's address", ether(v.gw, v.mac, etARP, arp(1, 2, v.mac, v.other4, v.gw, v.dst4)), 0, []string{rARPIgnored}},
		{"random bytes", zeros(60), 60, []string{rSpoofedMAC}},
		{"random bytes after an IPv6 Ethernet header", eth6(zeros(186)), 186, []string{malformed("bad_ip_version"), malformed("bad_payload_length")}},
	}
}

// underlayView is what a sender on the underlay addresses its frames from
// and to: it stands for the peer node (a VTEP the node knows) or for
// an attacker on the node's subnet.
type underlayView struct {
	mac, uplink        mac        // the sender's, and the node's uplink's
	vtep               mac        // inner source MAC: the peer's VXLAN device
	peer, stranger     netip.Addr // the peer node's underlay address; one that is no node's
	node               netip.Addr // the node's underlay address
	pod4, pod6         netip.Addr // a pod on the node
	peerPod4, peerPod6 netip.Addr // a pod on the peer: inner sources
	nowhere4, nowhere6 netip.Addr // addresses of the node's pod CIDRs that no pod has
	nodePort, natPort  uint16     // a port of the NodePort range, and one of the NAT range
	mtu                int        // of the underlay: the largest frame is 14 bytes more
}

// underlayJunk is what the underlay sends to the node's uplink: tunnel
// traffic broken in its outer headers or carrying broken inner frames,
// tunnel traffic from an address that is no node's, and malformed frames
// for the node's pod CIDRs, NodePorts and NAT ports (everything the
// uplink's XDP program hands to the fast path; see fastpath/xdp), and
// frames near those that the program passes to the node's kernel, which
// the fast path must never see.
func underlayJunk(v underlayView) []junk {
	out := func(b []byte) []byte { return ether(v.uplink, v.mac, etIPv4, b) }
	with := func(h v4, f func(*v4)) v4 { f(&h); return h }
	mal := func(m string) []string { return []string{malformed(m)} }
	dc := func(m string) []string { return []string{decap(m)} }

	dg := udp(40000, 9, zeros(18))
	in4 := v4{src: v.peerPod4, dst: v.pod4, proto: protoUDP, frag: ipDF}
	in6 := v6{src: v.peerPod6, dst: v.pod6, next: protoUDP}
	innerEth := func(et uint16, b []byte) []byte { return ether(v.uplink, v.vtep, et, b) }
	good := innerEth(etIPv4, in4.packet(dg)) // what the peer would send a pod

	outer := v4{src: v.peer, dst: v.node, proto: protoUDP, frag: ipDF}
	vx := func(h v4, x []byte) []byte { return out(h.packet(udp(50000, vxlanPort, x))) }
	tunnel := func(inner []byte) []byte { return vx(outer, vxlan(vxlanI, 1, inner)) }
	ipip := v4{src: v.peer, dst: v.node, proto: protoIPIP, frag: ipDF}
	direct := v4{src: v.peer, dst: v.pod4, proto: protoUDP, frag: ipDF}

	badUDPSum := func() []byte {
		u := udp(50000, vxlanPort, vxlan(vxlanI, 1, good))
		sum := udpChecksum4(v.peer, v.node, u) + 1
		if sum == 0 {
			sum = 1
		}
		return out(outer.packet(put16(u, 6, sum)))
	}
	reservedByte := func() []byte {
		x := vxlan(vxlanI, 1, good)
		x[7] = 0x5a
		return vx(outer, x)
	}
	tcpOff := func(doff byte) []byte {
		b := tcp(40000, v.nodePort, 0x02, zeros(12))
		b[12] = doff << 4
		return b
	}
	return []junk{
		// Outer headers and the VXLAN header.
		{"VXLAN with VNI 2", vx(outer, vxlan(vxlanI, 2, good)), 0, dc("wrong_vni")},
		{"VXLAN without the I flag", vx(outer, vxlan(0, 1, good)), 0, dc("bad_vxlan_header")},
		{"VXLAN with a reserved flag set", vx(outer, vxlan(vxlanI|0x04000000, 1, good)), 0, dc("bad_vxlan_header")},
		{"VXLAN with its last reserved byte set", reservedByte(), 0, dc("bad_vxlan_header")},
		{"VXLAN with a 6-byte inner frame", tunnel(good[:6]), 0, dc("inner_truncated")},
		{"VXLAN, UDP length 12", out(outer.packet(put16(udp(50000, vxlanPort, vxlan(vxlanI, 1, good)), 4, 12))), 0, dc("truncated")},
		{"VXLAN, UDP length past the packet", out(outer.packet(put16(udp(50000, vxlanPort, vxlan(vxlanI, 1, good)), 4, 1000))), 0, dc("truncated")},
		{"VXLAN, nothing after the UDP header", out(outer.packet(udp(50000, vxlanPort, nil))), 0, dc("truncated")},
		{"VXLAN, outer header checksum wrong", vx(with(outer, func(h *v4) { h.badSum = true }), vxlan(vxlanI, 1, good)), 0, dc("bad_checksum")},
		{"VXLAN, outer UDP checksum wrong", badUDPSum(), 0, dc("bad_checksum")},
		{"VXLAN, outer total length past the frame", vx(with(outer, func(h *v4) { h.total = 1400 }), vxlan(vxlanI, 1, good)), 0, dc("bad_ip_header")},
		{"VXLAN, outer total length 16", vx(with(outer, func(h *v4) { h.total = 16 }), vxlan(vxlanI, 1, good)), 0, dc("bad_ip_header")},
		{"full-size VXLAN, inner IPv4 total length 65535", tunnel(innerEth(etIPv4, with(in4, func(h *v4) { h.total = 65535 }).packet(
			udp(40000, 9, zeros(v.mtu-50-28))))), 0, mal("bad_total_length")},
		{"VXLAN, outer first fragment", vx(with(outer, func(h *v4) { h.frag, h.id = ipMF, 9 }), vxlan(vxlanI, 1, good)), 0, dc("fragment")},
		{"outer later fragment with 8472 where the UDP port would be", out(with(outer, func(h *v4) { h.frag, h.id = 185, 9 }).packet(udp(50000, vxlanPort, zeros(40)))), 0,
			dc("fragment")},
		{"VXLAN from an address that is no node's", vx(with(outer, func(h *v4) { h.src = v.stranger }), vxlan(vxlanI, 1, good)), 0, []string{rUnknownVTEP}},
		{"IPIP from an address that is no node's", out(with(ipip, func(h *v4) { h.src = v.stranger }).packet(in4.packet(dg))), 0, []string{rUnknownVTEP}},
		{"IPIP with outer options", out(with(ipip, func(h *v4) { h.opts = []byte{1, 1, 1, 1} }).packet(in4.packet(dg))), 0, dc("ip_options")},
		{"IPIP, outer version 5", out(with(ipip, func(h *v4) { h.verIHL = 0x55 }).packet(in4.packet(dg))), 0, dc("bad_ip_header")},
		{"IPIP carrying IPv6", out(ipip.packet(in6.packet(dg))), 0, dc("inner_version")},
		{"IPv6-in-IPv4 carrying IPv4", out(with(ipip, func(h *v4) { h.proto = protoIPv6 }).packet(in4.packet(dg))), 0, dc("inner_version")},
		{"IPIP with nothing inside", out(ipip.packet(nil)), 0, dc("inner_truncated")},
		{"IPv6-in-IPv4, inner header of 20 bytes", out(with(ipip, func(h *v4) { h.proto = protoIPv6 }).packet(in6.packet(dg)[:20])), 0, dc("inner_truncated")},

		// Inner frames from the peer.
		{"inner IPv4 header checksum wrong", tunnel(innerEth(etIPv4, with(in4, func(h *v4) { h.badSum = true }).packet(dg))), 0, mal("bad_ipv4_checksum")},
		{"inner IPv4 header cut at 12 bytes", tunnel(innerEth(etIPv4, in4.packet(dg)[:12])), 0, mal("truncated_ipv4")},
		{"inner IPv4 IHL 3", tunnel(innerEth(etIPv4, with(in4, func(h *v4) { h.verIHL = 0x43 }).packet(dg))), 0, mal("bad_ihl")},
		{"inner IPv6 payload length past the frame", tunnel(innerEth(etIPv6, v6{src: v.peerPod6, dst: v.pod6, next: protoUDP, plen: 900}.packet(dg))), 0,
			mal("bad_payload_length")},
		{"inner TCP data offset 3", tunnel(innerEth(etIPv4, with(in4, func(h *v4) { h.proto = protoTCP }).packet(tcpOff(3)))), 0, mal("bad_tcp_data_offset")},
		{"inner UDP length past the packet", tunnel(innerEth(etIPv4, in4.packet(put16(udp(40000, 9, zeros(18)), 4, 300)))), 0, mal("bad_udp_length")},
		{"inner 802.1Q tag", tunnel(innerEth(etVLAN, dot1q(10, etIPv4, in4.packet(dg)))), 0, []string{rVLANTagged}},
		{"inner IPv4 broadcast", tunnel(ether(mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, v.vtep, etIPv4,
			with(in4, func(h *v4) { h.dst = netip.MustParseAddr("255.255.255.255") }).packet(dg))), 0, []string{rMulticast}},
		{"inner ARP request", tunnel(innerEth(etARP, arp(1, 1, v.vtep, v.peerPod4, mac{}, v.pod4))), 0, []string{rARPIgnored}},
		{"inner unknown EtherType", tunnel(innerEth(0x88b5, zeros(46))), 0, []string{rUnknownEtherType}},
		{"inner IPv4 to an address no pod has", tunnel(innerEth(etIPv4, with(in4, func(h *v4) { h.dst = v.nowhere4 }).packet(dg))), 0, []string{rPeerNoPod}},
		{"inner IPv4 with TTL 1", tunnel(innerEth(etIPv4, with(in4, func(h *v4) { h.ttl = 1 }).packet(dg))), 0, []string{rTTLExpired}},
		{"random inner frame", tunnel(zeros(60)), 60, []string{rUnknownEtherType}},

		// Unencapsulated, to the node's pod CIDRs and ports.
		{"direct to an address no pod has", out(with(direct, func(h *v4) { h.dst = v.nowhere4 }).packet(dg)), 0, []string{rPeerNoPod}},
		{"direct to a pod, header checksum wrong", out(with(direct, func(h *v4) { h.badSum = true }).packet(dg)), 0, mal("bad_ipv4_checksum")},
		{"direct to a pod, total length 12", out(with(direct, func(h *v4) { h.total = 12 }).packet(dg)), 0, mal("bad_total_length")},
		{"direct to a pod, TTL 1", out(with(direct, func(h *v4) { h.ttl = 1 }).packet(dg)), 0, []string{rTTLExpired}},
		{"direct IPv6 to an address no pod has, payload length past the frame", ether(v.uplink, v.mac, etIPv6,
			v6{src: netip.MustParseAddr("2001:db8::1"), dst: v.nowhere6, next: protoUDP, plen: 700}.packet(dg)), 0, mal("bad_payload_length")},
		{"NodePort, UDP length past the packet", out(outer.packet(put16(udp(40000, v.nodePort, zeros(18)), 4, 200))), 0, mal("bad_udp_length")},
		{"NodePort, TCP data offset 4", out(with(outer, func(h *v4) { h.proto = protoTCP }).packet(tcpOff(4))), 0, mal("bad_tcp_data_offset")},
		{"NodePort without a service", out(outer.packet(udp(40000, v.nodePort, zeros(18)))), 0, []string{rPeerNoPod}},
		{"NAT port without a connection", out(outer.packet(udp(40000, v.natPort, zeros(18)))), 0, []string{rPeerNoPod}},

		// Near misses: the uplink's XDP program passes them to the kernel.
		{"outer later fragment", out(with(outer, func(h *v4) { h.frag, h.id = 185, 9 }).packet(zeros(48))), 0, nil},
		{"VXLAN with outer options", vx(with(outer, func(h *v4) { h.opts = []byte{1, 1, 1, 1} }), vxlan(vxlanI, 1, good)), 0, nil},
		{"VXLAN cut inside the UDP header", out(with(outer, func(h *v4) { h.total = 24 }).packet(udp(50000, vxlanPort, nil)[:4])), 0, nil},
		{"NodePort first fragment", out(with(outer, func(h *v4) { h.frag, h.id = ipMF, 11 }).packet(udp(40000, v.nodePort, zeros(18)))), 0, nil},
		{"UDP to the node outside every port range", out(outer.packet(udp(40000, vxlanPort+1, zeros(18)))), 0, nil},
		{"VXLAN to another MAC", ether(mac{0x02, 0xee, 0, 0, 0, 1}, v.mac, etIPv4, outer.packet(udp(50000, vxlanPort, vxlan(vxlanI, 1, good)))), 0, nil},
		{"VXLAN to the broadcast MAC", ether(mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, v.mac, etIPv4, outer.packet(udp(50000, vxlanPort, vxlan(vxlanI, 1, good)))), 0, nil},
		{"802.1Q-tagged VXLAN", ether(v.uplink, v.mac, etVLAN, dot1q(10, etIPv4, outer.packet(udp(50000, vxlanPort, vxlan(vxlanI, 1, good))))), 0, nil},
		{"IPv6 to no prefix of the node's", ether(v.uplink, v.mac, etIPv6,
			v6{src: netip.MustParseAddr("2001:db8::1"), dst: netip.MustParseAddr("2001:db8::2"), next: protoUDP}.packet(dg)), 0, nil},
		{"truncated ARP", ether(v.uplink, v.mac, etARP, zeros(10)), 0, nil},
		{"random bytes after an IPv4 Ethernet header", out(zeros(100)), 100, nil},
	}
}

// trafgenConfig writes kinds as a trafgen packet config: one packet each,
// its bytes as literals and its random tail as drnd, which trafgen sends
// in turn.
func trafgenConfig(kinds []junk) string {
	var b strings.Builder
	for _, j := range kinds {
		fmt.Fprintf(&b, "# %s\n{", j.what)
		elems := make([]string, 0, len(j.frame)+1)
		for _, c := range j.frame[:len(j.frame)-j.random] {
			elems = append(elems, fmt.Sprintf("0x%02x", c))
		}
		if j.random > 0 {
			elems = append(elems, fmt.Sprintf("drnd(%d)", j.random))
		}
		for i := 0; i < len(elems); i += 16 {
			b.WriteString("\n  " + strings.Join(elems[i:min(i+16, len(elems))], ", "))
			if i+16 < len(elems) {
				b.WriteByte(',')
			}
		}
		b.WriteString("\n}\n")
	}
	return b.String()
}

// bucket is a set of reasons that some kinds of junk are counted under,
// merged so that no two buckets share a reason, with the frames the kinds
// in it should account for.
type bucket struct {
	reasons []string
	kinds   []string
	expect  float64
}

// buckets merges the reasons of the kinds that reach the fast path into
// disjoint buckets, each expecting share frames per kind in it (the kinds
// share alike what arrived: trafgen sends them in turn, and whatever
// drops frames on the way drops them blind to their kind).
func buckets(kinds []junk, share float64, into []bucket) []bucket {
	for _, j := range kinds {
		if j.passes() {
			continue
		}
		nb := bucket{reasons: slices.Clone(j.reasons), kinds: []string{j.what}, expect: share}
		keep := into[:0:0]
		for _, b := range into {
			if slices.ContainsFunc(b.reasons, func(r string) bool { return slices.Contains(nb.reasons, r) }) {
				for _, r := range b.reasons {
					if !slices.Contains(nb.reasons, r) {
						nb.reasons = append(nb.reasons, r)
					}
				}
				nb.kinds = append(b.kinds, nb.kinds...)
				nb.expect += b.expect
				continue
			}
			keep = append(keep, b)
		}
		into = append(keep, nb)
	}
	return into
}

// TestJunkBuilders checks the frame builders against gopacket: the well
// formed frames they build, which the junk starts from, are byte for byte
// what gopacket serializes from the same fields, checksums included.
func TestJunkBuilders(t *testing.T) {
	src, dst := mac{0x02, 0, 0, 0, 0, 1}, mac{0x02, 0, 0, 0, 0, 2}
	a4, b4 := netip.MustParseAddr("10.244.0.2"), netip.MustParseAddr("10.244.0.3")
	a6, b6 := netip.MustParseAddr("fd00:244::2"), netip.MustParseAddr("fd00:244::3")
	// Long enough that gopacket does not pad the frames, inner ones
	// included, to Ethernet's 60-byte minimum (the builders never pad).
	payload := []byte(strings.Repeat("0123456789abcdef", 4))
	eth := func(et layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: et}
	}
	ip4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: p, SrcIP: a4.AsSlice(), DstIP: b4.AsSlice()}
	}
	// serialize builds a frame with gopacket, lengths and checksums
	// computed, then zeroes the UDP or TCP checksums at the offsets given
	// (the builders leave them 0, which ringnet does not check).
	serialize := func(zero []int, ls ...gopacket.SerializableLayer) []byte {
		t.Helper()
		for _, l := range ls {
			if n, ok := l.(interface {
				SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
			}); ok {
				for _, m := range ls {
					if nl, ok := m.(gopacket.NetworkLayer); ok {
						n.SetNetworkLayerForChecksum(nl)
					}
				}
			}
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		for _, off := range zero {
			b[off], b[off+1] = 0, 0
		}
		return b
	}
	udpSum := func(b []byte) []byte { // the UDP checksum the builders leave out, computed by ours
		seg := b[34:]
		return put16(b, 34+6, udpChecksum4(a4, b4, seg))
	}
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"IPv4/UDP with checksums", udpSum(ether(dst, src, etIPv4, v4{src: a4, dst: b4, proto: protoUDP, frag: ipDF}.packet(udp(40000, 9, payload)))),
			serialize(nil, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 40000, DstPort: 9}, gopacket.Payload(payload))},
		{"IPv4/TCP SYN", ether(dst, src, etIPv4, v4{src: a4, dst: b4, proto: protoTCP, frag: ipDF}.packet(tcp(40000, 9, 0x02, payload))),
			serialize([]int{14 + 20 + 16}, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP),
				&layers.TCP{SrcPort: 40000, DstPort: 9, Seq: 1, DataOffset: 5, SYN: true, Window: 65535}, gopacket.Payload(payload))},
		{"IPv4/ICMP echo", ether(dst, src, etIPv4, v4{src: a4, dst: b4, proto: protoICMP, frag: ipDF}.packet(icmpEcho(8, 7, 1, payload))),
			serialize(nil, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolICMPv4),
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}, gopacket.Payload(payload))},
		{"IPv6/UDP", ether(dst, src, etIPv6, v6{src: a6, dst: b6, next: protoUDP}.packet(udp(40000, 9, payload))),
			serialize([]int{14 + 40 + 6}, eth(layers.EthernetTypeIPv6),
				&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: a6.AsSlice(), DstIP: b6.AsSlice()},
				&layers.UDP{SrcPort: 40000, DstPort: 9}, gopacket.Payload(payload))},
		{"802.1Q/IPv4", ether(dst, src, etVLAN, dot1q(10, etIPv4, v4{src: a4, dst: b4, proto: 253, frag: ipDF}.packet(payload))),
			serialize(nil, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
				ip4(253), gopacket.Payload(payload))},
		{"ARP request, padded to 60 bytes", append(ether(dst, src, etARP, arp(1, 1, src, a4, mac{}, b4)), zeros(18)...),
			serialize(nil, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
				HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: src[:], SourceProtAddress: a4.AsSlice(),
				DstHwAddress: make([]byte, 6), DstProtAddress: b4.AsSlice()})},
		{"VXLAN", ether(dst, src, etIPv4, v4{src: a4, dst: b4, proto: protoUDP, frag: ipDF}.packet(udp(50000, vxlanPort, vxlan(vxlanI, 1,
			ether(dst, src, 0x88b5, payload))))),
			serialize([]int{14 + 20 + 6}, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 50000, DstPort: vxlanPort},
				&layers.VXLAN{ValidIDFlag: true, VNI: 1}, eth(0x88b5), gopacket.Payload(payload))},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s: (-gopacket +ours):\n%s", c.name, diff)
		}
	}

	// Extension headers, fragments and options have no serializer in
	// gopacket that writes them as we do; it must decode ours as what
	// they claim to be.
	for _, c := range []struct {
		name  string
		frame []byte
		want  []gopacket.LayerType
	}{
		{"IPv6 hop-by-hop", ether(dst, src, etIPv6, v6{src: a6, dst: b6, next: protoHopByHop}.packet(optsHeader(protoUDP, 0, udp(1, 2, payload)))),
			[]gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv6, layers.LayerTypeIPv6HopByHop, layers.LayerTypeUDP, gopacket.LayerTypePayload}},
		{"IPv6 two destination options", ether(dst, src, etIPv6, v6{src: a6, dst: b6, next: protoDestOpts}.packet(
			optsHeader(protoDestOpts, 1, optsHeader(protoUDP, 0, udp(1, 2, payload))))),
			[]gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv6, layers.LayerTypeIPv6Destination, layers.LayerTypeIPv6Destination,
				layers.LayerTypeUDP, gopacket.LayerTypePayload}},
		{"IPv6 fragment", ether(dst, src, etIPv6, v6{src: a6, dst: b6, next: protoFragment}.packet(fragHeader(protoUDP, 0, true, 7, udp(1, 2, payload)))),
			[]gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv6, layers.LayerTypeIPv6Fragment, gopacket.LayerTypeFragment}},
		{"IPv4 options", ether(dst, src, etIPv4, v4{src: a4, dst: b4, proto: protoUDP, opts: []byte{1, 1, 1, 1}}.packet(udp(1, 2, payload))),
			[]gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv4, layers.LayerTypeUDP, gopacket.LayerTypePayload}},
	} {
		p := gopacket.NewPacket(c.frame, layers.LayerTypeEthernet, gopacket.Default)
		var got []gopacket.LayerType
		for _, l := range p.Layers() {
			got = append(got, l.LayerType())
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: gopacket decodes (-want +got):\n%s", c.name, diff)
		}
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && (inetChecksum(c.frame[14:14+int(ip.IHL)*4], 0) != 0 || ip.IHL != 6) {
			t.Errorf("%s: IHL %d, header checksum does not verify", c.name, ip.IHL)
		}
	}
}

// TestBuckets checks that buckets merges the reasons of kinds that share
// one, and adds up what they expect.
func TestBuckets(t *testing.T) {
	kinds := []junk{
		{what: "a", reasons: []string{"x"}},
		{what: "b", reasons: []string{"y", "y_over"}},
		{what: "c", reasons: []string{"z"}},
		{what: "passes"},
		{what: "d", reasons: []string{"y_over", "w"}},
	}
	got := buckets(kinds[3:], 10, buckets(kinds[:3], 1, nil))
	want := []bucket{
		{reasons: []string{"x"}, kinds: []string{"a"}, expect: 1},
		{reasons: []string{"z"}, kinds: []string{"c"}, expect: 1},
		{reasons: []string{"y_over", "w", "y"}, kinds: []string{"b", "d"}, expect: 11},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(bucket{})); diff != "" {
		t.Errorf("buckets (-want +got):\n%s", diff)
	}
	conf := trafgenConfig([]junk{{what: "two bytes and random", frame: []byte{0xab, 0xcd, 0, 0, 0}, random: 3}})
	if want := "# two bytes and random\n{\n  0xab, 0xcd, drnd(3)\n}\n"; conf != want {
		t.Errorf("trafgen config:\n%s\nwant:\n%s", conf, want)
	}
}
