package packet

import "testing"

// The per-packet functions must not allocate: they run once per frame on
// every worker.

func TestDecodeAllocs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4TCP", frameIPv4TCP()},
		{"IPv4UDP", frameIPv4UDP()},
		{"IPv6UDP", frameIPv6UDP()},
		{"IPv6TCP", frameIPv6TCP()},
		{"ARP", frameARP()},
	} {
		var p Parsed
		if r := Decode(tc.frame, &p); r != OK {
			t.Fatalf("%s: Decode = %v", tc.name, r)
		}
		if n := testing.AllocsPerRun(1000, func() { Decode(tc.frame, &p) }); n != 0 {
			t.Errorf("Decode(%s) allocates %v times per run, want 0", tc.name, n)
		}
	}
}

func TestChecksumAllocs(t *testing.T) {
	frame := frameIPv4TCP()
	var p Parsed
	if r := Decode(frame, &p); r != OK {
		t.Fatal(r)
	}
	ip := IPv4(frame[p.L3Off:])
	payload := make([]byte, 1500)
	var sink uint16
	for name, f := range map[string]func(){
		"DecrementTTL": func() {
			ip.SetTTL(64)
			ip.DecrementTTL()
		},
		"Sum":               func() { sink += Fold(Sum(payload, 0)) },
		"Checksum":          func() { sink += Checksum(payload, 0) },
		"UpdateChecksum16":  func() { sink += UpdateChecksum16(ip.Checksum(), 0x4006, 0x3f06) },
		"UpdateChecksum32":  func() { sink += UpdateChecksum32(ip.Checksum(), ip.Src(), ip.Dst()) },
		"PseudoHeaderSum":   func() { sink += Fold(PseudoHeaderSum(ProtoTCP, p.Src, p.Dst, p.L4Len)) },
		"L4Checksum":        func() { sink += L4Checksum(&p, frame) },
		"CalculateChecksum": func() { sink += ip.CalculateChecksum() },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per run, want 0", name, n)
		}
	}
	_ = sink
}
