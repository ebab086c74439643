package slowpath

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
)

// fakeDevice is an in-memory Device: frames to read are queued with put,
// frames written are kept. It allocates nothing once its slices have grown.
type fakeDevice struct {
	mu      sync.Mutex
	cond    *sync.Cond
	rx      [][]byte // frames waiting to be read
	rxHead  int
	tx      [][]byte // frames written (copies), unless discard
	discard bool
	refuse  func([]byte) bool // frames the device refuses on write
	closed  bool
}

func newFakeDevice() *fakeDevice {
	d := &fakeDevice{}
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *fakeDevice) put(frames ...[]byte) {
	d.mu.Lock()
	d.rx = append(d.rx, frames...)
	d.mu.Unlock()
	d.cond.Broadcast()
}

func (d *fakeDevice) ReadBatch(bufs [][]byte, lens []int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.rxHead == len(d.rx) && !d.closed {
		d.cond.Wait()
	}
	if d.closed {
		return 0, os.ErrClosed
	}
	n := 0
	for ; n < len(bufs) && d.rxHead < len(d.rx); n++ {
		lens[n] = copy(bufs[n], d.rx[d.rxHead])
		d.rxHead++
	}
	return n, nil
}

func (d *fakeDevice) WriteBatch(frames [][]byte) (sent, failed int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, 0, os.ErrClosed
	}
	for _, f := range frames {
		if d.refuse != nil && d.refuse(f) {
			failed++
			continue
		}
		if !d.discard {
			d.tx = append(d.tx, append([]byte(nil), f...))
		}
		sent++
	}
	return sent, failed, nil
}

func (d *fakeDevice) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cond.Broadcast()
	return nil
}

func (d *fakeDevice) written() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.tx...)
}

// hostPort makes a dataplane with workers and no ports, and its host port.
func hostPort(t testing.TB, workers, queueLen int) (*pipeline.Dataplane, *pipeline.HostPort) {
	t.Helper()
	dp, err := pipeline.New(pipeline.Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	hp, err := dp.EnableSlowPath(pipeline.SlowPathConfig{QueueLen: queueLen})
	if err != nil {
		t.Fatal(err)
	}
	return dp, hp
}

// udpFrame is an Ethernet/IPv4/UDP frame from the host to a pod.
func udpFrame(src, dst string, sport, dport uint16, tag byte) []byte {
	f := make([]byte, 14+20+8+4)
	binary.BigEndian.PutUint16(f[12:], packet.EtherTypeIPv4)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, packet.ProtoUDP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip, 0))
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], dport)
	binary.BigEndian.PutUint16(f[38:], 12)
	f[len(f)-1] = tag
	return f
}

// take empties worker w's queue from the host, as the worker would.
func take(hp *pipeline.HostPort, w int) [][]byte {
	q := hp.FromHost(w)
	n := q.Peek(q.Len())
	var out [][]byte
	for i := range n {
		out = append(out, append([]byte(nil), q.Frame(i)...))
	}
	q.Release(n)
	return out
}

func count(c *stats.Counters) map[string]uint64 {
	m := map[string]uint64{}
	for _, r := range stats.Reasons() {
		if n := c.Load(r); n > 0 {
			m[r.String()] = n
		}
	}
	return m
}

// TestReader checks that the reader spreads frames over the workers by
// flow, keeps each flow's order on one worker, and drops (counted) what a
// full queue cannot take.
func TestReader(t *testing.T) {
	_, hp := hostPort(t, 2, 64)
	dev := newFakeDevice()
	r := newReader(hp, dev, 64)
	var frames [][]byte
	for i := range 40 {
		flow := uint16(i % 8)
		frames = append(frames, udpFrame("192.168.77.1", "10.244.0.10", 40000+flow, 80, byte(i)))
	}
	dev.put(frames...)
	if err := r.once(); err != nil {
		t.Fatal(err)
	}
	got := [][][]byte{take(hp, 0), take(hp, 1)}
	if len(got[0])+len(got[1]) != 40 || len(got[0]) == 0 || len(got[1]) == 0 {
		t.Fatalf("workers got %d and %d frames, want 40 spread over both", len(got[0]), len(got[1]))
	}
	for w, fs := range got {
		last := map[uint16]int{}
		for _, f := range fs {
			flow, tag := binary.BigEndian.Uint16(f[34:])-40000, int(f[len(f)-1])
			if prev, ok := last[flow]; ok && tag <= prev {
				t.Errorf("worker %d: flow %d out of order (%d after %d)", w, flow, tag, prev)
			}
			last[flow] = tag
			for ow, ofs := range got {
				if ow == w {
					continue
				}
				for _, of := range ofs {
					if binary.BigEndian.Uint16(of[34:])-40000 == flow {
						t.Errorf("flow %d on both workers", flow)
					}
				}
			}
		}
	}
	if diff := cmp.Diff(map[string]uint64{"host_rx": 40}, count(&hp.ReaderCounters)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}

	// A full queue: 8 slots, 20 frames of one flow.
	_, hp = hostPort(t, 1, 8)
	dev = newFakeDevice()
	r = newReader(hp, dev, 64)
	for i := range 20 {
		dev.put(udpFrame("192.168.77.1", "10.244.0.10", 1, 2, byte(i)))
	}
	if err := r.once(); err != nil {
		t.Fatal(err)
	}
	if n := len(take(hp, 0)); n != 8 {
		t.Errorf("worker got %d frames, want 8", n)
	}
	if diff := cmp.Diff(map[string]uint64{"host_rx": 8, "host_rx_queue_full": 12}, count(&hp.ReaderCounters)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// TestWriter checks that the writer takes every worker's queue, writes
// the frames in order, counts what the device refuses, and frees the slots.
func TestWriter(t *testing.T) {
	_, hp := hostPort(t, 2, 64)
	dev := newFakeDevice()
	dev.refuse = func(f []byte) bool { return f[len(f)-1] == 99 }
	w := newWriter(hp, dev, 16)
	for i := range 30 {
		hp.ToHost(i % 2).Push(udpFrame("10.244.0.10", "192.168.77.1", 1, 2, byte(i)))
	}
	hp.ToHost(0).Push(udpFrame("10.244.0.10", "192.168.77.1", 1, 2, 99))
	hp.ToHost(0).Flush()
	hp.ToHost(1).Flush()
	total := 0
	for {
		n, err := w.once()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 31 {
		t.Errorf("writer took %d frames, want 31", total)
	}
	out := dev.written()
	if len(out) != 30 {
		t.Fatalf("device got %d frames, want 30", len(out))
	}
	next := [2]int{0, 1}
	for _, f := range out {
		tag := int(f[len(f)-1])
		if tag != next[tag%2] {
			t.Errorf("frame %d out of order (want %d next from worker %d)", tag, next[tag%2], tag%2)
		}
		next[tag%2] = tag + 2
	}
	if diff := cmp.Diff(map[string]uint64{"host_tx": 30, "host_tx_error": 1}, count(&hp.WriterCounters)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if hp.ToHost(0).Pending() || hp.ToHost(1).Pending() {
		t.Error("frames left in the queues")
	}
}

// TestLoopsAllocs asserts that a batch through the reader and one through
// the writer allocate nothing.
func TestLoopsAllocs(t *testing.T) {
	_, hp := hostPort(t, 2, 256)
	dev := newFakeDevice()
	dev.discard = true
	r, w := newReader(hp, dev, 64), newWriter(hp, dev, 64)
	batch := make([][]byte, 32)
	for i := range batch {
		batch[i] = udpFrame("192.168.77.1", "10.244.0.10", uint16(i), 80, byte(i))
	}
	dev.put(batch...)
	r.once() // let the fake device's slices grow
	if n := testing.AllocsPerRun(200, func() {
		dev.mu.Lock()
		dev.rx, dev.rxHead = dev.rx[:0], 0
		dev.rx = append(dev.rx, batch...)
		dev.mu.Unlock()
		if err := r.once(); err != nil {
			t.Fatal(err)
		}
		for i := range hp.Workers() {
			q := hp.FromHost(i)
			q.Release(q.Peek(q.Len()))
			for _, f := range batch[:8] {
				hp.ToHost(i).Push(f)
			}
			hp.ToHost(i).Flush()
		}
		if _, err := w.once(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("a reader and a writer batch allocate %v times", n)
	}
}

// TestLoops runs both goroutines over a fake device: a frame read reaches
// the worker's queue, a frame a worker queued is written, and close returns
// though the reader is blocked in ReadBatch and the writer parked. (That a
// worker's flush wakes a parked writer is pipeline's TestWakeups.)
func TestLoops(t *testing.T) {
	_, hp := hostPort(t, 1, 64)
	dev := newFakeDevice()
	hp.ToHost(0).Push(udpFrame("10.244.0.10", "192.168.77.1", 2, 1, 2))
	hp.ToHost(0).Flush()
	l := startLoops(hp, dev, 64, slog.Default())
	dev.put(udpFrame("192.168.77.1", "10.244.0.10", 1, 2, 1))
	deadline := time.Now().Add(5 * time.Second)
	for !hp.FromHost(0).Pending() || len(dev.written()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: frame from the host queued %v, frames written %d", hp.FromHost(0).Pending(), len(dev.written()))
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // both goroutines blocked again
	done := make(chan error)
	go func() { done <- l.close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return")
	}
}
