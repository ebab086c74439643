package pipeline

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
)

func TestFrameQueue(t *testing.T) {
	if _, err := NewFrameQueue(6, 2048); err == nil {
		t.Error("length 6 accepted")
	}
	q, err := NewFrameQueue(4, 64)
	if err != nil {
		t.Fatal(err)
	}
	if q.Push(make([]byte, 65)) {
		t.Error("a frame larger than a slot was taken")
	}
	// Wrap around the ring several times, in batches of every size.
	seq := byte(0)
	next := byte(0)
	for round := range 20 {
		k := round%4 + 1
		for range k {
			if !q.Push([]byte{seq, seq, seq}) {
				t.Fatalf("round %d: push %d failed", round, seq)
			}
			seq++
		}
		if q.Peek(4) != 0 {
			t.Fatal("frames visible before Flush")
		}
		if !q.Flush() || q.Flush() {
			t.Fatal("Flush reports wrongly")
		}
		if !q.Pending() {
			t.Fatal("not pending after Flush")
		}
		n := q.Peek(8)
		if n != k {
			t.Fatalf("round %d: peek %d, want %d", round, n, k)
		}
		for i := range n {
			f := q.Frame(i)
			if len(f) != 3 || f[0] != next || cap(f) != 64 {
				t.Fatalf("round %d: frame %d is % x (cap %d), want %d", round, i, f, cap(f), next)
			}
			next++
		}
		q.Release(n)
		if q.Pending() {
			t.Fatal("pending after Release")
		}
	}
	// Full: four frames fit, the fifth does not, until one is released.
	for i := range 4 {
		if !q.Push([]byte{byte(i)}) {
			t.Fatalf("push %d into an empty queue failed", i)
		}
	}
	if q.Push([]byte{4}) {
		t.Fatal("pushed into a full queue")
	}
	q.Flush()
	q.Peek(1)
	q.Release(1)
	if !q.Push([]byte{4}) {
		t.Fatal("push after release failed")
	}
}

// TestFrameQueueConcurrent moves frames between two goroutines, checking
// order and content; under -race it checks the publication protocol.
func TestFrameQueueConcurrent(t *testing.T) {
	q, err := NewFrameQueue(64, 128)
	if err != nil {
		t.Fatal(err)
	}
	const total = 200000
	done := make(chan struct{})
	go func() {
		defer close(done)
		var f [16]byte
		for i := uint64(0); i < total; {
			binary.LittleEndian.PutUint64(f[:], i)
			binary.LittleEndian.PutUint64(f[8:], ^i)
			if q.Push(f[:8+i%9]) {
				i++
				if i%7 == 0 {
					q.Flush()
				}
				continue
			}
			q.Flush()
			runtime.Gosched() // full: let the consumer run even on one CPU
		}
		q.Flush()
	}()
	for want := uint64(0); want < total; {
		n := q.Peek(16)
		if n == 0 {
			runtime.Gosched()
		}
		for i := range n {
			f := q.Frame(i)
			if got := binary.LittleEndian.Uint64(f); got != want || len(f) != int(8+want%9) {
				t.Fatalf("frame %d: got %d (len %d)", want, got, len(f))
			}
			want++
		}
		q.Release(n)
	}
	<-done
}

func TestFrameQueueAllocs(t *testing.T) {
	q, _ := NewFrameQueue(64, 2048)
	f := make([]byte, 1500)
	if n := testing.AllocsPerRun(1000, func() {
		q.Push(f)
		q.Push(f)
		q.Flush()
		n := q.Peek(64)
		_ = q.Frame(0)
		q.Release(n)
	}); n != 0 {
		t.Errorf("push/flush/peek/release allocate %v times", n)
	}
}

// BenchmarkFrameQueue is the queue's own cost per 1500-byte frame, the
// copy included: batches of 64 pushed, flushed, peeked and released on one
// goroutine.
func BenchmarkFrameQueue(b *testing.B) {
	q, _ := NewFrameQueue(1024, 2048)
	f := make([]byte, 1500)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for i := 0; i < b.N; i += 64 {
		for range 64 {
			q.Push(f)
		}
		q.Flush()
		n := q.Peek(64)
		for j := range n {
			_ = q.Frame(j)
		}
		q.Release(n)
	}
}

// The two cross-goroutine benchmarks below move 1500-byte frames from a
// producer on a locked OS thread (as a worker runs) to a consumer goroutine
// that sleeps when there is nothing to take (as the slow path's writer
// does), in batches of 64, 1024 frames in flight at most. The consumer
// reads one byte of each frame.

// BenchmarkFrameQueueSPSC: a FrameQueue with the HostPort's doorbell
// protocol (the consumer parks on a channel, the producer rings it after a
// flush only if it parked).
func BenchmarkFrameQueueSPSC(b *testing.B) {
	q, _ := NewFrameQueue(1024, 2048)
	var parked atomic.Bool
	bell := make(chan struct{}, 1)
	f := make([]byte, 1500)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; {
			n := q.Peek(64)
			if n == 0 {
				parked.Store(true)
				if !q.Pending() {
					<-bell
				}
				parked.Store(false)
				continue
			}
			for j := range n {
				_ = q.Frame(j)[0]
			}
			got += n
			q.Release(n)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for i := 0; i < b.N; {
		k := 0
		for ; k < 64 && i < b.N && q.Push(f); k++ {
			i++
		}
		if k == 0 {
			runtime.Gosched() // full: a worker would drop; here, let the consumer catch up
		}
		q.Flush()
		if parked.Load() && parked.CompareAndSwap(true, false) {
			select {
			case bell <- struct{}{}:
			default:
			}
		}
	}
	<-done
}

// BenchmarkChannelOfBatches: the alternative, batches of 64 frame buffers
// sent over a channel and handed back over a second one, so that nothing
// is allocated per batch.
func BenchmarkChannelOfBatches(b *testing.B) {
	type batch struct {
		bufs [64][2048]byte
		lens [64]int
		n    int
	}
	full, free := make(chan *batch, 16), make(chan *batch, 16)
	for range 16 {
		free <- new(batch)
	}
	f := make([]byte, 1500)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; {
			bt := <-full
			for j := range bt.n {
				_ = bt.bufs[j][0]
			}
			got += bt.n
			free <- bt
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for i := 0; i < b.N; {
		bt := <-free
		bt.n = 0
		for ; bt.n < 64 && i < b.N; bt.n, i = bt.n+1, i+1 {
			bt.lens[bt.n] = copy(bt.bufs[bt.n][:], f)
		}
		full <- bt
	}
	<-done
}
