package xsk

import (
	"bytes"
	"strings"
	"testing"
)

func smallConfig() Config {
	return Config{NumFrames: 64, FillSize: 16, CompletionSize: 32, RxSize: 16, TxSize: 32}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{FrameSize: 3000}, "FrameSize 3000 is not a power of two"},
		{Config{FrameSize: 1024}, "FrameSize 1024 out of range"},
		{Config{RxSize: 100}, "RxSize 100 is not a power of two"},
		{Config{NumFrames: 1 << 22, FrameSize: 4096}, "exceeds 4 GiB"},
	} {
		err := c.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if _, err := ParseBindMode("zero-copy"); err != nil {
		t.Error(err)
	}
	if _, err := ParseBindMode("zerocopy"); err == nil {
		t.Error("ParseBindMode accepted zerocopy")
	}
}

// TestRingsRoundTrip moves frames through all four rings many times around
// (indexes wrap), checking order, contents and that every frame is always
// accounted for.
func TestRingsRoundTrip(t *testing.T) {
	s, k, err := NewPair(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	total := int(s.cfg.NumFrames)
	if got := s.FreeFrames() + k.FillCount(); got != total {
		t.Fatalf("after Refill: %d frames free or on the fill ring, want %d", got, total)
	}
	descs := make([]Desc, 8)
	seq := 0
	for round := range 5000 {
		n := 1 + round%7
		frames := make([][]byte, n)
		for i := range frames {
			frames[i] = []byte{byte(seq + i), byte((seq + i) >> 8), 0xab}
		}
		if got := k.Deliver(frames...); got != n {
			t.Fatalf("round %d: delivered %d of %d", round, got, n)
		}
		got := s.Receive(descs)
		if got != n {
			t.Fatalf("round %d: received %d of %d", round, got, n)
		}
		for i, d := range descs[:got] {
			if f := s.Frame(d); !bytes.Equal(f, frames[i]) {
				t.Fatalf("round %d: frame %d = %x, want %x", round, i, f, frames[i])
			}
		}
		// Echo half back on TX in place, free the rest.
		half := got / 2
		if sent := s.Transmit(descs[:half]); sent != half {
			t.Fatalf("round %d: transmitted %d of %d", round, sent, half)
		}
		for _, d := range descs[half:got] {
			s.Free(d.Addr)
		}
		var out [][]byte
		k.Sent(func(f []byte) { out = append(out, append([]byte(nil), f...)) })
		for i := range out {
			if !bytes.Equal(out[i], frames[i]) {
				t.Fatalf("round %d: sent frame %d = %x, want %x", round, i, out[i], frames[i])
			}
		}
		s.Complete()
		s.Refill()
		if held := s.FreeFrames() + k.FillCount(); held != total {
			t.Fatalf("round %d: %d frames free or on the fill ring, want %d", round, held, total)
		}
		seq += n
	}
	if st, _ := s.Stats(); st.BadFrees != 0 {
		t.Errorf("BadFrees = %d", st.BadFrees)
	}
}

// TestBackpressure fills the RX and TX rings and checks the short counts.
func TestBackpressure(t *testing.T) {
	s, k, err := NewPair(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, 40)
	for i := range frames {
		frames[i] = []byte{byte(i)}
	}
	// The fill ring holds 16 chunks: only 16 frames can arrive.
	if n := k.Deliver(frames...); n != 16 {
		t.Errorf("delivered %d with 16 fill entries, want 16", n)
	}
	// TX: 32 entries; the rest must be reported as not queued.
	descs := make([]Desc, 40)
	for i := range descs {
		addr, ok := s.Alloc()
		if !ok {
			t.Fatalf("Alloc %d failed with %d free", i, s.FreeFrames())
		}
		descs[i] = Desc{Addr: addr, Len: 1}
	}
	if n := s.Transmit(descs); n != 32 {
		t.Errorf("Transmit queued %d on a 32-entry ring, want 32", n)
	}
	for _, d := range descs[32:] {
		s.Free(d.Addr)
	}
	if n := k.Sent(nil); n != 32 {
		t.Errorf("peer took %d, want 32", n)
	}
	if n := s.Complete(); n != 32 {
		t.Errorf("completed %d, want 32", n)
	}
	// Double free is counted, never grows the stack past NumFrames.
	for range 100 {
		s.Free(0)
	}
	if st, _ := s.Stats(); st.BadFrees == 0 || s.FreeFrames() > int(s.cfg.NumFrames) {
		t.Errorf("BadFrees %d, free %d of %d", st.BadFrees, s.FreeFrames(), s.cfg.NumFrames)
	}
}

func TestReceiveAllocs(t *testing.T) {
	s, k, err := NewPair(Config{})
	if err != nil {
		t.Fatal(err)
	}
	frames := [][]byte{make([]byte, 60), make([]byte, 60), make([]byte, 60), make([]byte, 60)}
	descs := make([]Desc, 64)
	if n := testing.AllocsPerRun(1000, func() {
		k.Deliver(frames...)
		n := s.Receive(descs)
		s.Transmit(descs[:n])
		k.Sent(nil)
		s.Complete()
		s.Refill()
	}); n != 0 {
		t.Errorf("a batch allocates %v times", n)
	}
}
