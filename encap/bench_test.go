package encap

import (
	"bytes"
	"testing"
)

// The benchmarks use a 64-byte inner frame (Ethernet, IPv4, UDP, 22 bytes
// of payload), the small-packet case where per-packet cost shows, and
// report bytes per second of inner frame.

var (
	sinkInt  int
	sinkHash uint32
)

func BenchmarkVXLANEncap(b *testing.B) {
	o := outerAB()
	in := innerIPv4UDP(b, 40000, 53, make([]byte, 22))
	buf := withHeadroom(in, 256, 0) // XDP's usual headroom
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var id uint16
	for b.Loop() {
		id++
		start, ok := flannel.Encap(buf, 256, len(in), &o, id)
		if !ok {
			b.Fatal("Encap failed")
		}
		sinkInt = start
	}
}

func BenchmarkVXLANDecap(b *testing.B) {
	in := innerIPv4UDP(b, 40000, 53, make([]byte, 22))
	for _, bc := range []struct {
		name     string
		checksum bool
	}{{"NoUDPChecksum", false}, {"UDPChecksum", true}} {
		b.Run(bc.name, func(b *testing.B) {
			frame := vxlanFrame(b, flannel, outerAB(), in, 1)
			if bc.checksum {
				c := udpChecksum(frame)
				frame[40], frame[41] = byte(c>>8), byte(c)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				inner, _, _, err := flannel.Decap(frame, nodeB)
				if err != OK {
					b.Fatal(err)
				}
				sinkInt = inner
			}
		})
	}
}

// BenchmarkIPIPEncap restores the 14 inner Ethernet bytes that EncapIPIP
// overwrites before each call; the copy is part of the figure.
func BenchmarkIPIPEncap(b *testing.B) {
	o := outerAB()
	in := innerIPv4UDP(b, 40000, 53, make([]byte, 22))
	buf := withHeadroom(in, 256, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var id uint16
	for b.Loop() {
		id++
		copy(buf[256:256+14], in[:14])
		start, ok := EncapIPIP(buf, 256, len(in), &o, id)
		if !ok {
			b.Fatal("EncapIPIP failed")
		}
		sinkInt = start
	}
}

// BenchmarkIPIPDecap decapsulates a ring of frames and restores the 14
// outer bytes that DecapIPIP overwrites once per lap, long before the frame
// comes round again (restoring right before each call would measure a
// store-forwarding stall, not DecapIPIP); the copies are part of the figure.
func BenchmarkIPIPDecap(b *testing.B) {
	in := innerIPv4UDP(b, 40000, 53, make([]byte, 22))
	orig := ipipFrame(b, outerAB(), in, 1)
	const ring = 256
	frames := make([][]byte, ring)
	for i := range frames {
		frames[i] = bytes.Clone(orig)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for i := 0; b.Loop(); i++ {
		if i%ring == 0 {
			for _, f := range frames {
				copy(f[20:34], orig[20:34])
			}
		}
		inner, _, _, err := DecapIPIP(frames[i%ring], nodeB)
		if err != OK {
			b.Fatal(err)
		}
		sinkInt = inner
	}
}

func BenchmarkFlowHash(b *testing.B) {
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4UDP", innerIPv4UDP(b, 40000, 53, make([]byte, 22))},
		{"IPv6TCP", innerIPv6TCP(b, 50000, 8080, nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var h uint32
			for b.Loop() {
				h += FlowHash(bc.frame)
			}
			sinkHash = h
		})
	}
}
