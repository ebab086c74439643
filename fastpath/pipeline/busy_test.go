package pipeline

import (
	"testing"
	"time"
)

// TestBusyTime steps a worker by hand: idle steps add to total only, steps
// that forward frames add to busy too, and busy never exceeds total.
func TestBusyTime(t *testing.T) {
	_, w, a, b := twoPods(t)
	w.step() // adopt the port set
	time.Sleep(20 * time.Millisecond)
	w.step() // idle: charges the sleep to total
	busy1, total1 := w.BusyTime()
	if busy1 != 0 || total1 < 20*time.Millisecond {
		t.Fatalf("after an idle 20ms: busy %v, total %v; want 0, >= 20ms", busy1, total1)
	}

	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
	}
	const batches = 100
	for range batches {
		a.Deliver(batch...)
		if w.step() == 0 {
			t.Fatal("step found no work")
		}
		b.Sent(nil)
	}
	w.step() // idle: charges the last busy step and publishes
	busy2, total2 := w.BusyTime()
	if busy2 <= busy1 {
		t.Errorf("busy did not grow over %d batches: %v -> %v", batches, busy1, busy2)
	}
	if busy2-busy1 > total2-total1 || busy2 > total2 {
		t.Errorf("busy %v (+%v) exceeds total %v (+%v)", busy2, busy2-busy1, total2, total2-total1)
	}
	if c := counts(w); c["forwarded"] != batches*64 {
		t.Errorf("forwarded %d, want %d", c["forwarded"], batches*64)
	}

	time.Sleep(20 * time.Millisecond)
	w.step()
	busy3, total3 := w.BusyTime()
	if busy3 != busy2 || total3-total2 < 20*time.Millisecond {
		t.Errorf("idle 20ms after the batches: busy %v -> %v, total +%v; want busy unchanged, total +>= 20ms",
			busy2, busy3, total3-total2)
	}
}

// TestBusyTimeRunning reads BusyTime while a started worker forwards and
// idles: total advances while it sleeps in poll(2), busy grows with the
// frames, and the published pair is never torn (busy <= total). Under
// -race it checks that the accounting is published, not shared.
func TestBusyTimeRunning(t *testing.T) {
	d, w, a, b := twoPods(t)
	d.cfg.IdleTimeout = time.Millisecond // pair sockets have no fd to wake poll(2)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	frame := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
	done := make(chan int)
	go func() { // the stand-in kernel, on its own goroutine as the real one is
		received := 0
		for sent := 0; sent < 5000; {
			sent += a.Deliver(frame)
			received += b.Sent(nil)
		}
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			received += b.Sent(nil)
		}
		done <- received
	}()
	var lastBusy, lastTotal time.Duration
	check := func() {
		busy, total := w.BusyTime()
		if busy > total || busy < lastBusy || total < lastTotal {
			t.Fatalf("BusyTime %v, %v after %v, %v: torn or going back", busy, total, lastBusy, lastTotal)
		}
		lastBusy, lastTotal = busy, total
	}
	for received := -1; received < 0; {
		select {
		case received = <-done:
			if received == 0 {
				t.Fatal("nothing forwarded")
			}
		default:
			check()
		}
	}
	busy, total := lastBusy, lastTotal
	if busy == 0 {
		t.Error("busy is 0 after forwarding")
	}
	for deadline := time.Now().Add(5 * time.Second); lastTotal < total+50*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("idle worker's total stuck at %v (was %v 5s ago)", lastTotal, total)
		}
		time.Sleep(10 * time.Millisecond)
		check()
	}
}
