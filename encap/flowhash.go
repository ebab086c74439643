package encap

import (
	"encoding/binary"
	"math/bits"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// Mixing constants (wyhash's); any odd 64-bit constants with well-spread
// bits would do.
const (
	hashK0 = 0xa0761d6478bd642f
	hashK1 = 0xe7037ed1a0b428db
	hashK2 = 0x8ebc6af09c88c6e3
	hashK3 = 0x589965cc75374cc3
)

// mix combines two 64-bit words into one: the high and low halves of their
// 128-bit product after xoring in constants, xored together. Every input bit
// reaches every output bit.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^hashK0, b^hashK1)
	return hi ^ lo
}

// maxHashExtHeaders bounds FlowHash's walk over IPv6 extension headers.
const maxHashExtHeaders = 4

// FlowHash hashes the flow of the Ethernet frame: for IPv4 and IPv6 (after
// at most one 802.1Q tag) the source and destination addresses, the
// protocol, and for TCP, UDP, SCTP, DCCP and UDP-Lite the two ports; for
// other frames the MAC addresses and EtherType. Every packet of one flow
// gets the same value, in every process (the hash is not seeded), so the
// flow keeps one path through the underlay.
//
// Fragments are hashed without ports, the first one included, so that all
// the fragments of a datagram share the value (as Linux's flow dissector
// does); unfragmented packets of the same flow hash with their ports. IPv6
// hop-by-hop, routing and destination options headers are skipped (at most
// maxHashExtHeaders of them) to find the ports.
//
// FlowHash reads only the headers, never panics whatever the input, does not
// allocate, and returns 0 for a frame shorter than an Ethernet header.
func FlowHash(frame []byte) uint32 {
	if len(frame) < packet.EthernetLen {
		return 0
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	l3 := frame[packet.EthernetLen:]
	if et == packet.EtherTypeVLAN && len(l3) >= packet.VLANTagLen {
		et = binary.BigEndian.Uint16(l3[2:4])
		l3 = l3[packet.VLANTagLen:]
	}
	switch {
	case et == packet.EtherTypeIPv4 && len(l3) >= packet.IPv4MinLen && l3[0]>>4 == 4:
		return hashIPv4(l3)
	case et == packet.EtherTypeIPv6 && len(l3) >= packet.IPv6Len && l3[0]>>4 == 6:
		return hashIPv6(l3)
	}
	// Not IP (or too short to be): the link-layer addresses and type.
	h := mix(binary.BigEndian.Uint64(frame[0:8]), uint64(binary.BigEndian.Uint32(frame[8:12]))<<16|uint64(et))
	return uint32(h) ^ uint32(h>>32)
}

// hashIPv4 hashes the IPv4 packet b, which is at least 20 bytes.
func hashIPv4(b []byte) uint32 {
	addrs := binary.BigEndian.Uint64(b[12:20])
	proto := b[9]
	var ports uint32
	ihl := int(b[0]&0x0f) << 2
	if binary.BigEndian.Uint16(b[6:8])&0x3fff == 0 && hasPorts(proto) && ihl >= packet.IPv4MinLen && len(b) >= ihl+4 {
		ports = binary.BigEndian.Uint32(b[ihl : ihl+4])
	}
	h := mix(addrs, uint64(proto)<<32|uint64(ports))
	return uint32(h) ^ uint32(h>>32)
}

// hashIPv6 hashes the IPv6 packet b, which is at least 40 bytes.
func hashIPv6(b []byte) uint32 {
	nh := b[6]
	off := packet.IPv6Len
	frag := false
walk:
	for range maxHashExtHeaders {
		switch nh {
		case packet.ProtoHopByHop, packet.ProtoRouting, packet.ProtoDestOpts:
			if len(b)-off < 8 {
				break walk
			}
			nh = b[off]
			off += (int(b[off+1]) + 1) << 3
		case packet.ProtoFragment:
			if len(b)-off >= 8 {
				nh = b[off]
			}
			frag = true
			break walk
		default:
			break walk
		}
	}
	var ports uint32
	if !frag && hasPorts(nh) && off <= len(b)-4 {
		ports = binary.BigEndian.Uint32(b[off : off+4])
	}
	h := mix(binary.BigEndian.Uint64(b[8:16]), binary.BigEndian.Uint64(b[16:24])^hashK2)
	h ^= mix(binary.BigEndian.Uint64(b[24:32])^hashK3, binary.BigEndian.Uint64(b[32:40]))
	h = mix(h, uint64(nh)<<32|uint64(ports))
	return uint32(h) ^ uint32(h>>32)
}

// hasPorts reports whether proto's header starts with 16-bit source and
// destination ports.
func hasPorts(proto uint8) bool {
	switch proto {
	case packet.ProtoTCP, packet.ProtoUDP, packet.ProtoSCTP, protoDCCP, protoUDPLite:
		return true
	}
	return false
}

// IP protocols with ports that package packet does not name.
const (
	protoDCCP    = 33
	protoUDPLite = 136
)
