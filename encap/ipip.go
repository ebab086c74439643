package encap

import (
	"encoding/binary"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// IP protocol numbers of the IP-in-IP tunnels.
const (
	protoIPIP = 4  // IPv4 in IPv4 (RFC 2003)
	protoIPv6 = 41 // IPv6 in IPv4 (RFC 4213, section 3.5)
)

// EncapIPIP encapsulates, in place, the inner Ethernet frame buf[off:off+n]
// of an IPv4 packet (outer protocol 4) or an IPv6 packet (protocol 41) for
// sending to the peer that o describes. The inner Ethernet header is
// dropped: the outer frame is buf[start:off+n] with start = off-IPIPOverhead
// and length n+IPIPOverhead, the outer Ethernet header (14 bytes) and outer
// IPv4 header (20 bytes) followed by the inner IP packet, which is not
// moved. The headers overwrite buf[start:off+14], the inner Ethernet header
// included. Any Ethernet padding after the inner packet travels along; the
// inner packet's own length field bounds it at the far end.
//
// The outer IPv4 header is the same as Encap's (DF, TTL 64, TOS 0, ID ipID).
//
// EncapIPIP returns false and writes nothing if the inner EtherType is
// neither IPv4 nor IPv6 (an 802.1Q tagged frame included), if the inner
// packet is shorter than its fixed IP header or its version nibble does not
// match the EtherType (the far end would drop it as InnerTruncated or
// InnerVersion), if off < IPIPOverhead or off+n > len(buf), if the outer
// packet would exceed 65535 bytes, or if o is the zero Outer.
func EncapIPIP(buf []byte, off, n int, o *Outer, ipID uint16) (start int, ok bool) {
	if off < IPIPOverhead || n < packet.EthernetLen || off > len(buf) || n > len(buf)-off ||
		n > maxIPv4Total+packet.EthernetLen-packet.IPv4MinLen || o.sum == 0 {
		return 0, false
	}
	ip := buf[off+packet.EthernetLen : off+n]
	var proto uint8
	switch packet.Ethernet(buf[off:]).EtherType() {
	case packet.EtherTypeIPv4:
		if len(ip) < packet.IPv4MinLen || ip[0]>>4 != 4 {
			return 0, false
		}
		proto = protoIPIP
	case packet.EtherTypeIPv6:
		if len(ip) < packet.IPv6Len || ip[0]>>4 != 6 {
			return 0, false
		}
		proto = protoIPv6
	default:
		return 0, false
	}
	start = off - IPIPOverhead
	writeOuter(buf[start:off+packet.EthernetLen], o, proto, len(ip)+packet.IPv4MinLen, ipID)
	return start, true
}

// DecapIPIP validates an outer frame received on the uplink, addressed to
// local, that carries an IPv4 (protocol 4) or IPv6 (protocol 41) packet, and
// turns it, in place, into an inner Ethernet frame frame[inner:end]: the 14
// bytes in front of the inner IP packet are rewritten into an Ethernet
// header whose destination and source are the outer frame's destination and
// source MAC addresses and whose EtherType is IPv4 or IPv6 by the outer
// protocol. The inner frame ends where the outer IPv4 total length says,
// before any Ethernet padding. src is the outer source address, which the
// caller checks is a known peer.
//
// The rewrite overwrites the second half of the outer IPv4 header; frame is
// modified only when err is OK. With err other than OK the frame must be
// dropped and counted by err; inner, end and src are then meaningless.
//
// DecapIPIP checks the outer Ethernet and IPv4 headers as Decap does, then
// that the protocol is 4 or 41, and that the inner packet has the matching
// IP version and is at least as long as that version's fixed header (20 or
// 40 bytes). The rest of the inner packet is the pipeline's to check.
func DecapIPIP(frame []byte, local [4]byte) (inner, end int, src [4]byte, err Error) {
	total, proto, src, err := checkOuter(frame, local)
	if err != OK {
		return 0, 0, src, err
	}
	var et uint16
	var version uint8
	var min int
	switch proto {
	case protoIPIP:
		et, version, min = packet.EtherTypeIPv4, 4, packet.IPv4MinLen
	case protoIPv6:
		et, version, min = packet.EtherTypeIPv6, 6, packet.IPv6Len
	default:
		return 0, 0, src, WrongProtocol
	}
	end = packet.EthernetLen + total
	payload := frame[outerLen:end]
	if len(payload) == 0 {
		return 0, 0, src, InnerTruncated
	}
	if payload[0]>>4 != version {
		return 0, 0, src, InnerVersion
	}
	if len(payload) < min {
		return 0, 0, src, InnerTruncated
	}
	inner = outerLen - packet.EthernetLen
	// The outer MACs (frame[0:12]) and the new header (frame[20:34]) do
	// not overlap.
	eth := frame[inner:outerLen:outerLen]
	copy(eth[0:12], frame[0:12])
	binary.BigEndian.PutUint16(eth[12:14], et)
	return inner, end, src, OK
}
