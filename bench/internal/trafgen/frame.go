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
	// NewFlows makes nearly every frame a connection never seen before:
	// trafgen writes random bytes, anew for each frame, over the UDP
	// source port (all 65 536 values; SrcPort is ignored) and over the low
	// byte of the destination port (DstPorts: 256 ports). That is 2^24
	// tuples between one pair of addresses, far more than a connection
	// tracking table holds, so that a frame finds its tuple tracked only
	// by chance (see NewFlowShare). The IPv4 checksum covers no port and
	// the UDP checksum is 0, so every frame stays valid.
	NewFlows bool
}

// DstPorts is the range of destination ports the frames carry: DstPort
// alone, or with NewFlows the 256 ports sharing its high byte.
func (f Flow) DstPorts() (lo, hi uint16) {
	if f.NewFlows {
		return f.DstPort &^ 0xff, f.DstPort | 0xff
	}
	return f.DstPort, f.DstPort
}

// Tuples is the number of distinct UDP port pairs the frames carry: 1, or
// with NewFlows 2^24.
func (f Flow) Tuples() int {
	if f.NewFlows {
		return 1 << 24
	}
	return 1
}

// NewFlowShare bounds, for a connection table that keeps at most capacity
// connections, the share of frames that find their tuple tracked: each
// frame draws its tuple uniformly from Tuples, so at most capacity/Tuples
// of them hit one the table still holds. 1 without NewFlows.
func (f Flow) NewFlowShare(capacity int) float64 {
	return min(1, float64(capacity)/float64(f.Tuples()))
}

// String describes the frame for reports.
func (f Flow) String() string {
	if f.NewFlows {
		lo, hi := f.DstPorts()
		return fmt.Sprintf("%d bytes + FCS: Ethernet, IPv4, UDP %s:<random> -> %s:<random %d-%d>, %d bytes payload",
			FrameLen, f.Src, f.Dst, lo, hi, FrameLen-14-20-8)
	}
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

// Offsets in the frame of the bytes NewFlows randomizes.
const (
	offSrcPort    = 34 // two bytes
	offDstPortLow = 37
)

// Config is a trafgen packet config holding exactly f.Frame(), as literal
// bytes (trafgen's own csumip() is not used, so the checksum is checked by
// our test, not trusted to the tool). With NewFlows, trafgen's drnd()
// stands for the random bytes: drnd() for one byte, drnd(2) for two.
func (f Flow) Config() string {
	fr := f.Frame()
	var elems []string
	for j := 0; j < len(fr); j++ {
		switch {
		case f.NewFlows && j == offSrcPort:
			elems = append(elems, "drnd(2)")
			j++
		case f.NewFlows && j == offDstPortLow:
			elems = append(elems, "drnd()")
		default:
			elems = append(elems, fmt.Sprintf("0x%02x", fr[j]))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n{\n", f)
	for i := 0; i < len(elems); i += 12 {
		b.WriteString("  " + strings.Join(elems[i:min(i+12, len(elems))], ", "))
		if i+12 < len(elems) {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.String()
}
