package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// frameLen is the generated frame without FCS: a 64-byte Ethernet frame on
// the wire.
const frameLen = 60

// udpFrame builds the benchmark's frame: Ethernet, IPv4 (20 bytes, DF, TTL
// 64, a correct header checksum), UDP (checksum 0, which IPv4 allows) and 18
// zero bytes of payload, 60 bytes in all.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16) []byte {
	f := make([]byte, frameLen)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45                                             // version 4, IHL 5
	binary.BigEndian.PutUint16(ip[2:4], uint16(frameLen-14)) // total length
	binary.BigEndian.PutUint16(ip[6:8], 0x4000)              // DF
	ip[8] = 64                                               // TTL
	ip[9] = 17                                               // UDP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], ipv4Checksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], sport)
	binary.BigEndian.PutUint16(udp[2:4], dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(frameLen-34))
	return f
}

// ipv4Checksum is the RFC 1071 checksum of a header whose checksum field is
// zero.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// trafgenConfig is a trafgen packet config holding exactly udpFrame, as
// literal bytes (trafgen's own csumip() is not used, so the checksum is
// checked by our test, not trusted to the tool).
func trafgenConfig(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16) string {
	f := udpFrame(dstMAC, srcMAC, src, dst, sport, dport)
	var b strings.Builder
	fmt.Fprintf(&b, "# %d-byte UDP frame %s:%d -> %s:%d (64 bytes on the wire with FCS)\n{\n", len(f), src, sport, dst, dport)
	for i := 0; i < len(f); i += 12 {
		b.WriteString("  ")
		for j := i; j < min(i+12, len(f)); j++ {
			fmt.Fprintf(&b, "0x%02x", f[j])
			if j+1 < len(f) {
				b.WriteByte(',')
			}
			if j+1 < min(i+12, len(f)) {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.String()
}
