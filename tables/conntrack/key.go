package conntrack

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strconv"
)

// IP protocol numbers the table treats specially.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// Key is the 5-tuple of a packet as it arrives: a flat, comparable value with
// no pointers, so it is a map key in tests and costs nothing to copy.
//
// Addresses are 16 bytes: IPv6, or IPv4 as an IPv4-mapped IPv6 address (what
// netip.Addr.As16 returns), so a key built from a parsed packet needs no
// family switch. For ICMP and ICMPv6 echo, both ports hold the echo
// identifier (see [EchoKey]), so that the reply's key is the request's
// reversed.
type Key struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
}

// KeyFrom builds the key of a TCP, UDP, SCTP or other packet.
func KeyFrom(src, dst netip.Addr, srcPort, dstPort uint16, proto uint8) Key {
	return Key{Src: src.As16(), Dst: dst.As16(), SrcPort: srcPort, DstPort: dstPort, Proto: proto}
}

// EchoKey builds the key of an ICMP (proto 1) or ICMPv6 (proto 58) echo
// request or reply with identifier id.
func EchoKey(src, dst netip.Addr, id uint16, proto uint8) Key {
	return KeyFrom(src, dst, id, id, proto)
}

// Reverse is the key of a packet going the other way.
func (k Key) Reverse() Key {
	return Key{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
}

// String formats the key as "proto src:port > dst:port", for logs and tests.
func (k Key) String() string {
	s, d := netip.AddrFrom16(k.Src).Unmap(), netip.AddrFrom16(k.Dst).Unmap()
	return strconv.Itoa(int(k.Proto)) + " " + netip.AddrPortFrom(s, k.SrcPort).String() +
		" > " + netip.AddrPortFrom(d, k.DstPort).String()
}

// NAT is a translation of the original direction of a connection: what its
// packets must become. Zero fields leave the tuple unchanged (0.0.0.0, ::
// and port 0 are never translation targets). To translate an ICMP echo
// identifier, set both ports to the new identifier.
type NAT struct {
	Src, Dst         [16]byte // new source, destination address (IPv4-mapped for IPv4)
	SrcPort, DstPort uint16   // new source, destination port
}

// Apply returns k translated by n.
func (n NAT) Apply(k Key) Key {
	n.applyTo(&k)
	return k
}

func (n *NAT) applyTo(k *Key) {
	if n.Src != ([16]byte{}) {
		k.Src = n.Src
	}
	if n.Dst != ([16]byte{}) {
		k.Dst = n.Dst
	}
	if n.SrcPort != 0 {
		k.SrcPort = n.SrcPort
	}
	if n.DstPort != 0 {
		k.DstPort = n.DstPort
	}
}

// packReply packs the reply tuple of a connection with original tuple k
// and translation n (n.Apply(k).Reverse()) into p.
func (k *Key) packReply(n *NAT, p *packed) {
	r := *k
	n.applyTo(&r)
	r.Src, r.Dst, r.SrcPort, r.DstPort = r.Dst, r.Src, r.DstPort, r.SrcPort
	r.packInto(p)
}

// packed is a key as the table stores it, in n 64-bit words; the words
// past n are zero, so that packed values compare with ==. Word 0 holds
// the ports, protocol and family (4 or 6, so it is never zero); an IPv4 key
// (both addresses IPv4-mapped) has one more word, source and destination
// side by side; any other key has four, the addresses as they are. Because
// word 0 carries the family and is compared first, an IPv4 key can never
// match the first words of an IPv6 one.
type packed struct {
	w [keyWords]uint64
	n int
}

const keyWords = 5

const (
	famShift = 40
	fam4     = 4 << famShift
	fam6     = 6 << famShift
)

// mappedLow is bytes 8..11 of an IPv4-mapped address (00 00 ff ff) read
// little-endian.
const mappedLow = 0xffff0000

func (k *Key) pack() packed {
	var p packed
	k.packInto(&p)
	return p
}

// packInto packs k into p, which the caller reuses (no copy of a returned
// value on the hot path).
func (k *Key) packInto(p *packed) {
	p.w[0] = uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32
	s0, s1 := binary.LittleEndian.Uint64(k.Src[:8]), binary.LittleEndian.Uint64(k.Src[8:])
	d0, d1 := binary.LittleEndian.Uint64(k.Dst[:8]), binary.LittleEndian.Uint64(k.Dst[8:])
	if s0|d0 == 0 && uint32(s1) == mappedLow && uint32(d1) == mappedLow {
		p.w[0] |= fam4
		p.w[1] = s1>>32 | d1&^(1<<32-1)
		p.w[2], p.w[3], p.w[4] = 0, 0, 0
		p.n = 2
		return
	}
	p.w[0] |= fam6
	p.w[1], p.w[2], p.w[3], p.w[4] = s0, s1, d0, d1
	p.n = keyWords
}

// wordsFor is the number of words of a packed key whose word 0 is w0.
func wordsFor(w0 uint64) int {
	if w0&(0xff<<famShift) == fam4 {
		return 2
	}
	return keyWords
}

func (p *packed) unpack() Key {
	k := Key{SrcPort: uint16(p.w[0]), DstPort: uint16(p.w[0] >> 16), Proto: uint8(p.w[0] >> 32)}
	if p.n == 2 {
		binary.LittleEndian.PutUint64(k.Src[8:], p.w[1]<<32|mappedLow)
		binary.LittleEndian.PutUint64(k.Dst[8:], p.w[1]&^(1<<32-1)|mappedLow)
		return k
	}
	binary.LittleEndian.PutUint64(k.Src[:8], p.w[1])
	binary.LittleEndian.PutUint64(k.Src[8:], p.w[2])
	binary.LittleEndian.PutUint64(k.Dst[:8], p.w[3])
	binary.LittleEndian.PutUint64(k.Dst[8:], p.w[4])
	return k
}

// hash mixes the packed key with the table's random seed: each step folds
// the 128-bit product of two 64-bit words, which spreads every input bit
// over the whole result. It costs two multiplies for IPv4, three for IPv6.
// The seed makes the bucket of a tuple unpredictable from outside, so a
// sender cannot aim flows at one window to evict others.
func hash(p *packed, seed *[keyWords]uint64) uint64 {
	if p.n == 2 {
		return mix(mix(p.w[0]^seed[0], p.w[1]^seed[1]), seed[2])
	}
	return hash6(p, seed)
}

func hash6(p *packed, seed *[keyWords]uint64) uint64 {
	a := mix(p.w[1]^seed[1], p.w[2]^seed[2])
	b := mix(p.w[3]^seed[3], p.w[4]^seed[4])
	return mix(a^p.w[0], b^seed[0])
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
