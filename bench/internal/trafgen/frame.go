package trafgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// FrameLen is the generated frame without FCS: a 64-byte Ethernet frame on
// the wire.
const FrameLen = 60

// Flow is what the generated frame carries: Ethernet addresses of the
// sender and its next hop, IPv4 addresses and UDP ports.
type Flow struct {
	SrcMAC, DstMAC   net.HardwareAddr
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// String describes the frame for reports.
func (f Flow) String() string {
	return fmt.Sprintf("%d bytes + FCS: Ethernet, IPv4, UDP %s:%d -> %s:%d, %d bytes payload",
		FrameLen, f.Src, f.SrcPort, f.Dst, f.DstPort, FrameLen-14-20-8)
}

// Frame builds the benchmark's frame: Ethernet, IPv4 (20 bytes, DF, TTL
// 64, a correct header checksum), UDP (checksum 0, which IPv4 allows) and 18
// zero bytes of payload, 60 bytes in all.
func (f Flow) Frame() []byte {
	b := make([]byte, FrameLen)
	copy(b[0:6], f.DstMAC)
	copy(b[6:12], f.SrcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45                                             // version 4, IHL 5
	binary.BigEndian.PutUint16(ip[2:4], uint16(FrameLen-14)) // total length
	binary.BigEndian.PutUint16(ip[6:8], 0x4000)              // DF
	ip[8] = 64                                               // TTL
	ip[9] = 17                                               // UDP
	s4, d4 := f.Src.As4(), f.Dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], ipv4Checksum(ip))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:2], f.SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], f.DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(FrameLen-34))
	return b
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

// Config is a trafgen packet config holding exactly f.Frame(), as literal
// bytes (trafgen's own csumip() is not used, so the checksum is checked by
// our test, not trusted to the tool).
func (f Flow) Config() string {
	fr := f.Frame()
	var b strings.Builder
	fmt.Fprintf(&b, "# %d-byte UDP frame %s:%d -> %s:%d (64 bytes on the wire with FCS)\n{\n", len(fr), f.Src, f.SrcPort, f.Dst, f.DstPort)
	for i := 0; i < len(fr); i += 12 {
		b.WriteString("  ")
		for j := i; j < min(i+12, len(fr)); j++ {
			fmt.Fprintf(&b, "0x%02x", fr[j])
			if j+1 < len(fr) {
				b.WriteByte(',')
			}
			if j+1 < min(i+12, len(fr)) {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.String()
}
