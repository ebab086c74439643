package packet

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refSum is the textbook RFC 1071 loop, one 16-bit word at a time, folded
// with end-around carry: the slow, obviously right model for Sum and Fold.
func refSum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refChecksum is the checksum to store over b, whose checksum field is zero.
func refChecksum(b []byte) uint16 { return ^refSum(b, 0) }

// newRand returns a generator with a fixed seed, so failures reproduce.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	return rand.New(rand.NewPCG(0x7269_6e67, 0x6e65_74))
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestChecksumVectors(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		initial  uint32
		wantFold uint16
		wantSum  uint16
	}{
		// RFC 1071, section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2, 0x220d},
		// A real IPv4 header with its checksum b861 zeroed.
		{"ipv4 header", []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
			0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0, 0x479e, 0xb861},
		// The same header with the checksum in place sums to negative zero.
		{"ipv4 header verifies", []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61,
			0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0, 0xffff, 0x0000},
		{"empty", nil, 0, 0, 0xffff},
		{"empty with initial", nil, 0x1_2345, 0x2346, 0xdcb9},
		{"one byte pads right", []byte{0xab}, 0, 0xab00, 0x54ff},
		{"three bytes", []byte{0x01, 0x02, 0x03}, 0, 0x0402, 0xfbfd},
		{"all ones is negative zero", []byte{0xff, 0xff, 0xff, 0xff}, 0, 0xffff, 0},
		{"carry wraps around", []byte{0xff, 0xff, 0x00, 0x01}, 0, 0x0001, 0xfffe},
		{"initial max", []byte{0xff, 0xff}, 0xffff_ffff, 0xffff, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := [2]uint16{Fold(Sum(tc.data, tc.initial)), Checksum(tc.data, tc.initial)}
			if diff := cmp.Diff([2]uint16{tc.wantFold, tc.wantSum}, got); diff != "" {
				t.Errorf("[Fold(Sum), Checksum] mismatch (-want +got):\n%s", diff)
			}
			if ref := refSum(tc.data, tc.initial); ref != tc.wantFold {
				t.Errorf("reference model folds to %#04x, vector says %#04x", ref, tc.wantFold)
			}
		})
	}
}

func TestFold(t *testing.T) {
	for _, tc := range []struct{ in, want uint32 }{
		{0, 0}, {1, 1}, {0xffff, 0xffff}, {0x1_0000, 1}, {0x1_fffe, 0xffff},
		{0xffff_ffff, 0xffff}, {0xfffe_0001, 0xffff}, {0x8000_8000, 1},
	} {
		if got := Fold(tc.in); uint32(got) != tc.want {
			t.Errorf("Fold(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

// TestSumMatchesReference runs Sum on random data of every length up to a
// jumbo frame's, odd and even, at every alignment of the 8-byte loop, with
// random and extreme initial values, against refSum.
func TestSumMatchesReference(t *testing.T) {
	r := newRand(t)
	check := func(b []byte, initial uint32) {
		t.Helper()
		if got, want := Fold(Sum(b, initial)), refSum(b, initial); got != want {
			t.Fatalf("Fold(Sum(len %d, %#x)) = %#04x, reference %#04x", len(b), initial, got, want)
		}
	}
	for n := 0; n <= 130; n++ {
		for range 20 {
			check(randBytes(r, n), r.Uint32())
		}
	}
	for range 2000 {
		check(randBytes(r, r.IntN(9001)), r.Uint32())
	}
	// Saturated data stresses every carry path.
	for _, n := range []int{1, 7, 8, 31, 32, 33, 1500, 1501, 9000, 65535} {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0xff
		}
		for _, initial := range []uint32{0, 1, 0xffff, 0xffff_ffff} {
			check(b, initial)
		}
	}
}

// TestSumChains checks that summing pieces split at even offsets equals
// summing the whole.
func TestSumChains(t *testing.T) {
	r := newRand(t)
	for range 2000 {
		b := randBytes(r, r.IntN(3000)+2)
		initial := r.Uint32()
		k := r.IntN(len(b)/2+1) * 2
		whole := Fold(Sum(b, initial))
		if got := Fold(Sum(b[k:], Sum(b[:k], initial))); got != whole {
			t.Fatalf("len %d split at %d: %#04x, whole %#04x", len(b), k, got, whole)
		}
	}
}

// randIPv4Header returns a random but well-formed IPv4 header with a correct
// checksum: version 4, IHL 5 to 15, random other bytes.
func randIPv4Header(r *rand.Rand) IPv4 {
	ihl := 20 + 4*r.IntN(11)
	h := IPv4(randBytes(r, ihl))
	h[0] = 0x40 | byte(ihl/4)
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], refChecksum(h))
	return h
}

// checksumEqual reports whether two stored checksums are the same one's
// complement number (0x0000 and 0xFFFF are both zero).
func checksumEqual(a, b uint16) bool {
	return a == b || a == 0 && b == 0xffff || a == 0xffff && b == 0
}

// TestUpdateChecksum16 is the property test of RFC 1624 eqn. 3: after any
// 16-bit word of a random header changes, the incremental update equals a
// full recompute exactly (the header is never all zero, so the full
// recompute never yields 0xFFFF and neither may the update).
func TestUpdateChecksum16(t *testing.T) {
	r := newRand(t)
	for i := range 200_000 {
		h := randIPv4Header(r)
		w := r.IntN(len(h)/2 - 1)
		if w >= 5 {
			w++ // skip the checksum word
		}
		old := binary.BigEndian.Uint16(h[2*w:])
		var new uint16
		switch i % 4 {
		case 0:
			new = old // no change
		case 1:
			new = ^old
		default:
			new = uint16(r.Uint32())
		}
		if w == 0 {
			new = old&0xff00 | new&0x00ff // keep version and IHL, vary TOS
		}
		inc := UpdateChecksum16(h.Checksum(), old, new)
		binary.BigEndian.PutUint16(h[2*w:], new)
		if full := h.CalculateChecksum(); inc != full {
			t.Fatalf("header %x word %d %#04x -> %#04x: incremental %#04x, full %#04x", h, w, old, new, inc, full)
		}
	}
}

// TestUpdateChecksumEdges pins the cases where a checksum is zero in either
// form before or after the update.
func TestUpdateChecksumEdges(t *testing.T) {
	r := newRand(t)
	h := randIPv4Header(r)
	// Search the ID for a header whose checksum computes to 0x0000.
	for id := 0; id <= 0xffff; id++ {
		h.SetID(uint16(id))
		if h.CalculateChecksum() == 0 {
			break
		}
	}
	h.SetChecksum(h.CalculateChecksum())
	if h.Checksum() != 0 || !h.IsChecksumValid() {
		t.Fatalf("could not build a header with checksum 0x0000: %x", h)
	}
	// From 0x0000 and from its other form 0xFFFF, changing the TOS byte.
	for _, stored := range []uint16{0x0000, 0xffff} {
		g := IPv4(append([]byte(nil), h...))
		g.SetChecksum(stored)
		if !g.IsChecksumValid() {
			t.Fatalf("checksum %#04x should verify for %x", stored, g)
		}
		old := binary.BigEndian.Uint16(g[0:2])
		g.SetTOS(g.TOS() + 1)
		g.SetChecksum(UpdateChecksum16(g.Checksum(), old, binary.BigEndian.Uint16(g[0:2])))
		if !g.IsChecksumValid() || !checksumEqual(g.Checksum(), g.CalculateChecksum()) {
			t.Errorf("from %#04x: updated checksum %#04x, full %#04x", stored, g.Checksum(), g.CalculateChecksum())
		}
	}
	// Into 0x0000: change the ID of another header so that the result is zero.
	g := randIPv4Header(r)
	for id := 0; id <= 0xffff; id++ {
		old := g.ID()
		c := UpdateChecksum16(g.Checksum(), old, uint16(id))
		g.SetID(uint16(id))
		g.SetChecksum(c)
		if c != g.CalculateChecksum() {
			t.Fatalf("id %#04x: incremental %#04x, full %#04x", id, c, g.CalculateChecksum())
		}
	}
}

func TestUpdateChecksum32(t *testing.T) {
	r := newRand(t)
	for range 100_000 {
		h := randIPv4Header(r)
		var na [4]byte
		binary.BigEndian.PutUint32(na[:], r.Uint32())
		if r.IntN(2) == 0 {
			h.SetSrc(h.Src()) // keep one unchanged now and then
			c := UpdateChecksum32(h.Checksum(), h.Dst(), na)
			h.SetDst(na)
			if full := h.CalculateChecksum(); c != full {
				t.Fatalf("dst rewrite of %x: incremental %#04x, full %#04x", h, c, full)
			}
			continue
		}
		c := UpdateChecksum32(h.Checksum(), h.Src(), na)
		h.SetSrc(na)
		if full := h.CalculateChecksum(); c != full {
			t.Fatalf("src rewrite of %x: incremental %#04x, full %#04x", h, c, full)
		}
	}
}

// TestDecrementTTL checks the specialised incremental update against a full
// recompute for random headers and every TTL, and the zero edge cases.
func TestDecrementTTL(t *testing.T) {
	r := newRand(t)
	for range 100_000 {
		h := randIPv4Header(r)
		if r.IntN(4) == 0 && h.Checksum() == 0 {
			h.SetChecksum(0xffff) // the other zero
		}
		ttl := h.TTL()
		h.DecrementTTL()
		if ttl == 0 {
			if h.TTL() != 0 || !h.IsChecksumValid() {
				t.Fatalf("TTL 0 must be left alone: %x", h)
			}
			continue
		}
		if h.TTL() != ttl-1 {
			t.Fatalf("TTL %d -> %d", ttl, h.TTL())
		}
		if !h.IsChecksumValid() || h.Checksum() != h.CalculateChecksum() {
			t.Fatalf("after DecrementTTL from %d: checksum %#04x, full %#04x (%x)", ttl, h.Checksum(), h.CalculateChecksum(), h)
		}
	}

	// Headers whose checksum is 0x0000 or 0xFFFF before, or 0x0000 after.
	base := randIPv4Header(r)
	base.SetTTL(64)
	var zeroBefore, zeroAfter IPv4
	for id := 0; id <= 0xffff && (zeroBefore == nil || zeroAfter == nil); id++ {
		base.SetID(uint16(id))
		base.SetChecksum(base.CalculateChecksum())
		if zeroBefore == nil && base.Checksum() == 0 {
			zeroBefore = IPv4(append([]byte(nil), base...))
		}
		next := IPv4(append([]byte(nil), base...))
		next.SetTTL(63)
		if zeroAfter == nil && next.CalculateChecksum() == 0 {
			zeroAfter = IPv4(append([]byte(nil), base...))
		}
	}
	if zeroBefore == nil || zeroAfter == nil {
		t.Fatal("no ID gives the edge cases")
	}
	ffffBefore := IPv4(append([]byte(nil), zeroBefore...))
	ffffBefore.SetChecksum(0xffff)
	for name, h := range map[string]IPv4{"0x0000 before": zeroBefore, "0xffff before": ffffBefore, "0x0000 after": zeroAfter} {
		if !h.IsChecksumValid() {
			t.Fatalf("%s: starting header %x does not verify", name, h)
		}
		h.DecrementTTL()
		if h.TTL() != 63 || !h.IsChecksumValid() || h.Checksum() != h.CalculateChecksum() {
			t.Errorf("%s: after DecrementTTL TTL %d checksum %#04x, full %#04x", name, h.TTL(), h.Checksum(), h.CalculateChecksum())
		}
	}
	if zeroAfter.Checksum() != 0 {
		t.Errorf("0x0000 after: got %#04x", zeroAfter.Checksum())
	}
}

// pseudoBytes lays out the pseudo-header the way the RFCs draw it.
func pseudoBytes(proto uint8, src, dst netip.Addr, length uint16) []byte {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		b := append(s[:], d[:]...)
		return append(b, 0, proto, byte(length>>8), byte(length))
	}
	s, d := src.As16(), dst.As16()
	b := append(s[:], d[:]...)
	return append(b, 0, 0, byte(length>>8), byte(length), 0, 0, 0, proto)
}

func TestPseudoHeaderSum(t *testing.T) {
	r := newRand(t)
	for i := range 20_000 {
		var src, dst netip.Addr
		if i%2 == 0 {
			src, dst = netip.AddrFrom4([4]byte(randBytes(r, 4))), netip.AddrFrom4([4]byte(randBytes(r, 4)))
		} else {
			src, dst = netip.AddrFrom16([16]byte(randBytes(r, 16))), netip.AddrFrom16([16]byte(randBytes(r, 16)))
		}
		if i%7 == 0 {
			src = netip.AddrFrom16([16]byte{15: 0xff, 14: 0xff, 13: 0xff, 12: 0xff}) // saturated words
		}
		proto, length := uint8(r.Uint32()), uint16(r.Uint32())
		if i%11 == 0 {
			length = 0xffff
		}
		if got, want := Fold(PseudoHeaderSum(proto, src, dst, length)), refSum(pseudoBytes(proto, src, dst, length), 0); got != want {
			t.Fatalf("PseudoHeaderSum(%d, %v, %v, %d) folds to %#04x, reference %#04x", proto, src, dst, length, got, want)
		}
	}
	// Mixed families are taken as IPv6: an IPv4 address as IPv4-mapped.
	a4, a6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	if got, want := Fold(PseudoHeaderSum(6, a4, a6, 20)), refSum(pseudoBytes(6, netip.AddrFrom16(a4.As16()), a6, 20), 0); got != want {
		t.Errorf("mixed families: %#04x, want %#04x", got, want)
	}
	// The zero Addr must not panic.
	_ = PseudoHeaderSum(17, netip.Addr{}, netip.Addr{}, 8)
}

// TestL4Checksum compares L4Checksum on the table frames with the reference
// checksum over explicit pseudo-header bytes and the segment with its
// checksum field zeroed.
func TestL4Checksum(t *testing.T) {
	n := 0
	for _, tc := range decodeCases() {
		var p Parsed
		if Decode(tc.frame, &p) != OK {
			t.Fatalf("%s: does not decode", tc.name)
		}
		if p.L4Off == 0 || p.Fragment || p.IPProto == ProtoSCTP {
			if got := L4Checksum(&p, tc.frame); got != 0 {
				t.Errorf("%s: L4Checksum = %#04x, want 0 (nothing to compute)", tc.name, got)
			}
			continue
		}
		seg := append([]byte(nil), tc.frame[p.L4Off:int(p.L4Off)+int(p.L4Len)]...)
		var at int
		var pseudo []byte
		switch p.IPProto {
		case ProtoTCP:
			at = 16
			pseudo = pseudoBytes(p.IPProto, p.Src, p.Dst, uint16(len(seg)))
		case ProtoUDP:
			at = 6
			seg = seg[:binary.BigEndian.Uint16(seg[4:6])]
			pseudo = pseudoBytes(p.IPProto, p.Src, p.Dst, uint16(len(seg)))
		case ProtoICMP:
			at = 2
		case ProtoICMPv6:
			at = 2
			pseudo = pseudoBytes(p.IPProto, p.Src, p.Dst, uint16(len(seg)))
		}
		seg[at], seg[at+1] = 0, 0
		want := refChecksum(append(pseudo, seg...))
		if want == 0 && p.IPProto == ProtoUDP {
			want = 0xffff
		}
		// Whatever the field holds now must not matter.
		frame := append([]byte(nil), tc.frame...)
		frame[int(p.L4Off)+at], frame[int(p.L4Off)+at+1] = 0xa5, 0x5a
		if got := L4Checksum(&p, frame); got != want {
			t.Errorf("%s: L4Checksum = %#04x, reference %#04x", tc.name, got, want)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d frames had an L4 checksum to compute", n)
	}

	// Nonsense offsets return 0 instead of panicking.
	frame := frameIPv4UDP()
	var p Parsed
	Decode(frame, &p)
	p.L4Len = 0xffff
	if got := L4Checksum(&p, frame); got != 0 {
		t.Errorf("L4Len past the frame: %#04x, want 0", got)
	}
}

// TestL4ChecksumUDPZero builds a UDP datagram whose checksum computes to
// zero and checks that it is returned as 0xFFFF (RFC 768).
func TestL4ChecksumUDPZero(t *testing.T) {
	frame := ether(EtherTypeIPv4, ip4{ttl: 64, proto: ProtoUDP, src: ip4A, dst: ip4B}.build(udp(1, 2, []byte{0, 0})))
	var p Parsed
	if r := Decode(frame, &p); r != OK {
		t.Fatal(r)
	}
	// Choose the two payload bytes so that the whole sum is negative zero.
	seg := frame[p.L4Off : p.L4Off+p.L4Len]
	partial := Fold(Sum(seg, PseudoHeaderSum(ProtoUDP, p.Src, p.Dst, p.L4Len)))
	binary.BigEndian.PutUint16(seg[8:10], ^partial)
	if got := L4Checksum(&p, frame); got != 0xffff {
		t.Errorf("L4Checksum = %#04x, want 0xffff", got)
	}
}
