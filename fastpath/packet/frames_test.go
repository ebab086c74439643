package packet

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for the tests. The builders write every byte with
// encoding/binary at explicit offsets, not through this package's setters,
// so that they stay an independent statement of the wire format; header
// checksums come from refChecksum, the slow reference in checksum_test.go.

var (
	macA = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a}
	macB = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b}

	ip4A = netip.MustParseAddr("10.1.2.3")
	ip4B = netip.MustParseAddr("192.168.7.9")
	ip6A = netip.MustParseAddr("fd00:1::3")
	ip6B = netip.MustParseAddr("2001:db8:42::9")
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// ether returns an Ethernet II frame macA -> macB, padded to the 60-byte
// minimum as a NIC would.
func ether(et uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], macB[:])
	copy(b[6:12], macA[:])
	binary.BigEndian.PutUint16(b[12:14], et)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// etherVLAN returns a frame with one 802.1Q tag (PCP 5, so that the VID is
// not the whole TCI), unpadded.
func etherVLAN(vid, et uint16, payload []byte) []byte {
	b := make([]byte, 18, 18+len(payload))
	copy(b[0:6], macB[:])
	copy(b[6:12], macA[:])
	binary.BigEndian.PutUint16(b[12:14], EtherTypeVLAN)
	binary.BigEndian.PutUint16(b[14:16], 5<<13|vid)
	binary.BigEndian.PutUint16(b[16:18], et)
	return append(b, payload...)
}

// arp returns an Ethernet/IPv4 ARP packet.
func arp(op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], 0x0800)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	copy(b[8:14], sha[:])
	s, t := spa.As4(), tpa.As4()
	copy(b[14:18], s[:])
	copy(b[18:24], tha[:])
	copy(b[24:28], t[:])
	return b
}

// ip4 describes an IPv4 header; build appends the payload and fills in IHL,
// total length and the header checksum.
type ip4 struct {
	tos, ttl, proto uint8
	id              uint16
	flags           uint8  // DF 2, MF 1
	fragOff         uint16 // bytes, a multiple of 8
	src, dst        netip.Addr
	opts            []byte // a multiple of 4 bytes
}

func (h ip4) build(payload []byte) []byte {
	ihl := 20 + len(h.opts)
	b := make([]byte, ihl, ihl+len(payload))
	b[0] = 0x40 | byte(ihl/4)
	b[1] = h.tos
	binary.BigEndian.PutUint16(b[2:4], uint16(ihl+len(payload)))
	binary.BigEndian.PutUint16(b[4:6], h.id)
	binary.BigEndian.PutUint16(b[6:8], uint16(h.flags)<<13|h.fragOff/8)
	b[8] = h.ttl
	b[9] = h.proto
	s, d := h.src.As4(), h.dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], h.opts)
	binary.BigEndian.PutUint16(b[10:12], refChecksum(b))
	return append(b, payload...)
}

// refixIPv4 recomputes the header checksum of the IPv4 header at off, after
// a test has mangled it.
func refixIPv4(frame []byte, off int) []byte {
	ihl := int(frame[off]&0x0f) * 4
	h := frame[off : off+ihl]
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], refChecksum(h))
	return frame
}

// ip6 describes a fixed IPv6 header; build appends the payload (extension
// headers included) and fills in the payload length.
type ip6 struct {
	tc       uint8
	flow     uint32
	nh, hop  uint8
	src, dst netip.Addr
}

func (h ip6) build(payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(h.tc)<<20|h.flow&0xfffff)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(payload)))
	b[6] = h.nh
	b[7] = h.hop
	s, d := h.src.As16(), h.dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, payload...)
}

// ext6 returns a hop-by-hop, routing or destination options header of
// units*8 bytes, filled with one PadN option.
func ext6(nh uint8, units int) []byte {
	b := make([]byte, units*8)
	b[0] = nh
	b[1] = byte(units - 1)
	b[2] = 1 // PadN
	b[3] = byte(len(b) - 4)
	return b
}

// frag6 returns an IPv6 fragment header.
func frag6(nh uint8, off uint16, more bool, id uint32) []byte {
	b := make([]byte, 8)
	b[0] = nh
	w := off &^ 7
	if more {
		w |= 1
	}
	binary.BigEndian.PutUint16(b[2:4], w)
	binary.BigEndian.PutUint32(b[4:8], id)
	return b
}

// udp returns a UDP header and payload with a correct length and a zero
// checksum.
func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(8+len(payload)))
	return append(b, payload...)
}

// tcp returns a TCP header with options opts (a multiple of 4 bytes) and a
// payload, checksum zero.
func tcp(sport, dport uint16, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
	n := 20 + len(opts)
	b := make([]byte, n, n+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], seq)
	binary.BigEndian.PutUint32(b[8:12], ack)
	b[12] = byte(n/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:16], 64240)
	copy(b[20:], opts)
	return append(b, payload...)
}

// sctp returns an SCTP common header with one empty chunk-less body.
func sctp(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], 0xdeadbeef)
	return b
}

// icmpEcho returns an ICMPv4 or ICMPv6 echo message, checksum zero.
func icmpEcho(typ uint8, id, seq uint16, data []byte) []byte {
	b := make([]byte, 8, 8+len(data))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], seq)
	return append(b, data...)
}

// nd returns a neighbor solicitation or advertisement for target with one
// link-layer address option of type opt, checksum zero. flags is the first
// byte after the checksum (R, S, O for an advertisement).
func nd(typ, flags uint8, target netip.Addr, opt uint8, mac [6]byte) []byte {
	b := make([]byte, 32)
	b[0] = typ
	b[4] = flags
	t := target.As16()
	copy(b[8:24], t[:])
	b[24] = opt
	b[25] = 1
	copy(b[26:32], mac[:])
	return b
}

// Frames shared by the benchmarks, the allocation tests and the fuzz seeds.

// frameIPv4UDP is a 64-byte IPv4 UDP frame.
func frameIPv4UDP() []byte {
	return ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, id: 1, src: ip4A, dst: ip4B}.
		build(udp(40000, 53, make([]byte, 22))))
}

func frameIPv4TCP() []byte {
	return ether(EtherTypeIPv4, ip4{ttl: 63, proto: ProtoTCP, flags: 2, src: ip4A, dst: ip4B}.
		build(tcp(44123, 443, 1000, 2000, TCPFlagACK|TCPFlagPSH, nil, []byte("hello"))))
}

func frameIPv6TCP() []byte {
	return ether(EtherTypeIPv6, ip6{nh: ProtoTCP, hop: 64, src: ip6A, dst: ip6B}.
		build(tcp(44123, 443, 1000, 0, TCPFlagSYN, []byte{2, 4, 5, 0xb4, 1, 1, 1, 0}, nil)))
}

func frameIPv6UDP() []byte {
	return ether(EtherTypeIPv6, ip6{tc: 0xb9, flow: 0xf1234, nh: ProtoUDP, hop: 64, src: ip6A, dst: ip6B}.
		build(udp(5353, 5353, []byte("ringnet"))))
}

func frameARP() []byte {
	return ether(EtherTypeARP, arp(ARPRequest, macA, ip4A, [6]byte{}, ip4B))
}
