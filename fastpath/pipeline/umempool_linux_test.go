package pipeline

import (
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/xsk"
)

// The pool fills to its size, hands out UMEMs of the configured size,
// refills what was taken when told to, and unmaps what waits when closed.
func TestUMEMPool(t *testing.T) {
	cfg := xsk.Config{NumFrames: 64, FrameSize: 2048}
	p := newUMEMPool(cfg, 2)
	full := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for p.spares() != want {
			if time.Now().After(deadline) {
				t.Fatalf("pool holds %d UMEMs after 5s, want %d", p.spares(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	full(2)
	var got [][]byte
	for range 3 {
		m := p.get()
		if m == nil {
			p.refill()
			full(2)
			m = p.get()
		}
		if len(m) != 64*2048 {
			t.Fatalf("UMEM of %d bytes, want %d", len(m), 64*2048)
		}
		m[0], m[len(m)-1] = 1, 1 // mapped and writable
		got = append(got, m)
	}
	time.Sleep(20 * time.Millisecond) // a refill of 128 KiB would be done
	if p.spares() != 1 {
		t.Fatalf("pool holds %d UMEMs, want the 1 left: it refilled without being told", p.spares())
	}
	p.refill()
	full(2)
	p.close()
	if p.spares() != 0 || p.get() != nil {
		t.Errorf("closed pool still holds %d UMEMs", p.spares())
	}
	for _, m := range got {
		if err := xsk.UnmapUMEM(m); err != nil {
			t.Error(err)
		}
	}
}
