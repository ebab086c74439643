package packet

import (
	"strconv"
	"testing"
)

var sinkParsed Parsed
var sinkSum uint16

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4UDP", frameIPv4UDP()},
		{"IPv4TCP", frameIPv4TCP()},
		{"IPv6UDP", frameIPv6UDP()},
		{"IPv6TCP", frameIPv6TCP()},
		{"ARP", frameARP()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var p Parsed
			if r := Decode(bc.frame, &p); r != OK {
				b.Fatal(r)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.frame)))
			for b.Loop() {
				Decode(bc.frame, &p)
			}
			sinkParsed = p
		})
	}
}

func BenchmarkChecksumIncremental(b *testing.B) {
	b.Run("UpdateChecksum16", func(b *testing.B) {
		b.ReportAllocs()
		c := uint16(0x1234)
		for i := 0; b.Loop(); i++ {
			c = UpdateChecksum16(c, uint16(i), uint16(i)+1)
		}
		sinkSum = c
	})
	b.Run("DecrementTTL", func(b *testing.B) {
		frame := frameIPv4UDP()
		ip := IPv4(frame[EthernetLen:])
		b.ReportAllocs()
		for b.Loop() {
			if ip.TTL() <= 1 {
				ip.SetTTL(255) // checksum goes stale here; DecrementTTL does not care
			}
			ip.DecrementTTL()
		}
		sinkSum = ip.Checksum()
	})
}

func BenchmarkChecksumFull(b *testing.B) {
	for _, n := range []int{20, 64, 1500} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var s uint16
			for b.Loop() {
				s += Checksum(buf, 0)
			}
			sinkSum = s
		})
	}
}
