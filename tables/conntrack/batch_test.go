package conntrack

import (
	"fmt"
	"slices"
	"testing"
)

// InsertBatch is specified as Insert of each connection in order. Insert
// is checked against the model (model_test.go); these tests check that
// InsertBatch is the same: two tables built alike go through the same
// random operations, one inserting with Insert, the other with
// InsertBatch, and must return the same results and end in the same
// state, word for word, after every operation (evictions, expiries, tuple
// conflicts and duplicates within a batch included).

// twins drives two tables from bytes: a (Insert) and b (InsertBatch).
type twins struct {
	tb   testing.TB
	a, b *Table
	d    driver // only its byte source and key and NAT decoders
	now  Time
	ins  []Insertion
	res  []Result
	log  []string
}

func newTwins(tb testing.TB, data []byte) *twins {
	w := &twins{tb: tb, d: driver{data: data}, now: 1000}
	capacity := 1 + int(w.d.byte()%40)
	nb := []int{0, 2, 4}[w.d.byte()%3]
	fc := []int{0, 0, 2, 4}[w.d.byte()%4]
	for _, t := range []**Table{&w.a, &w.b} {
		tab, err := newTable(Config{Capacity: capacity, Timeouts: testTimeouts}, testSeed, nb, fc)
		if err != nil {
			tb.Fatal(err)
		}
		*t = tab
	}
	w.logf("new capacity=%d buckets=%d cache=%d", capacity, len(w.a.buckets), fc)
	return w
}

func (w *twins) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("t=%d ", w.now)+fmt.Sprintf(format, args...))
}

func (w *twins) fatalf(format string, args ...any) {
	w.tb.Helper()
	h := w.log[max(0, len(w.log)-20):]
	w.tb.Fatalf("after:\n  %v\n"+format, append([]any{h}, args...)...)
}

func (w *twins) run() {
	for len(w.d.data) > 0 {
		switch w.d.byte() % 8 {
		case 0, 1, 2, 3:
			w.insert(1 + int(w.d.byte()%24))
		case 4:
			k := w.d.key()
			ca, oka := w.a.Lookup(k, w.now)
			cb, okb := w.b.Lookup(k, w.now)
			if oka != okb || viewOf(ca) != viewOf(cb) {
				w.fatalf("Lookup(%v): %v %+v with Insert, %v %+v with InsertBatch", k, oka, viewOf(ca), okb, viewOf(cb))
			}
		case 5:
			k := w.d.key()
			if a, b := w.a.Delete(k), w.b.Delete(k); a != b {
				w.fatalf("Delete(%v): %v with Insert, %v with InsertBatch", k, a, b)
			}
		case 6:
			w.now += Time(w.d.byte() % 8)
		case 7:
			budget := int(w.d.byte() % 16)
			if a, b := w.a.Sweep(w.now, budget), w.b.Sweep(w.now, budget); a != b {
				w.fatalf("Sweep(%d): %d with Insert, %d with InsertBatch", budget, a, b)
			}
		}
		if err := sameTables(w.a, w.b); err != nil {
			w.fatalf("tables differ: %v", err)
		}
	}
}

// insert inserts n connections, some of them twice.
func (w *twins) insert(n int) {
	w.ins = w.ins[:0]
	for range n {
		if b := w.d.byte(); b < 32 && len(w.ins) > 0 {
			w.ins = append(w.ins, w.ins[int(b)%len(w.ins)]) // a duplicate
			continue
		}
		w.ins = append(w.ins, Insertion{Orig: w.d.key(), NAT: w.d.nat(), Label: uint32(w.d.byte())})
	}
	w.logf("insert batch of %d", n)
	w.res = slices.Grow(w.res[:0], n)[:n]
	w.b.InsertBatch(w.ins, w.now, w.res)
	for i, in := range w.ins {
		if _, r := w.a.Insert(in.Orig, in.NAT, in.Label, w.now); r != w.res[i] {
			w.fatalf("insertion %d of %d (%v): Insert %v, InsertBatch %v", i, n, in.Orig, r, w.res[i])
		}
	}
}

// sameTables compares every word two tables of the same shape hold.
func sameTables(a, b *Table) error {
	for i := range a.recs {
		ra, rb := &a.recs[i], &b.recs[i]
		if ra.live.Load() != rb.live.Load() || ra.label.Load() != rb.label.Load() {
			return fmt.Errorf("record %d: live %#x, %#x; label %#x, %#x", i, ra.live.Load(), rb.live.Load(), ra.label.Load(), rb.label.Load())
		}
		for j := range ra.kw {
			for d := range ra.kw[j] {
				if ra.kw[j][d].Load() != rb.kw[j][d].Load() {
					return fmt.Errorf("record %d: key word %d of direction %d differs", i, j, d)
				}
			}
		}
	}
	for i := range a.buckets {
		for j := range a.buckets[i] {
			if x, y := a.buckets[i][j].Load(), b.buckets[i][j].Load(); x != y {
				return fmt.Errorf("bucket %d word %d: %#x, %#x", i, j, x, y)
			}
		}
	}
	for i := range a.shards {
		sa, sb := &a.shards[i], &b.shards[i]
		if sa.n != sb.n || sa.ctr != sb.ctr || !slices.Equal(sa.free, sb.free) || sa.next.Load() != sb.next.Load() {
			return fmt.Errorf("shard %d: n %d, %d; counters %v, %v; free %v, %v", i, sa.n, sb.n, sa.ctr, sb.ctr, sa.free, sb.free)
		}
	}
	if !slices.Equal(a.alloc.free, b.alloc.free) || a.hand.Load() != b.hand.Load() || a.full.Load() != b.full.Load() {
		return fmt.Errorf("free list %v, %v; hand %d, %d; full %v, %v", a.alloc.free, b.alloc.free, a.hand.Load(), b.hand.Load(), a.full.Load(), b.full.Load())
	}
	if a.Stats() != b.Stats() {
		return fmt.Errorf("stats %+v, %+v", a.Stats(), b.Stats())
	}
	return nil
}

func TestInsertBatchIsInsert(t *testing.T) {
	inserted := uint64(0)
	randomRounds(t, 3, 5, 1500, func(t *testing.T, data []byte) {
		w := newTwins(t, data)
		w.run()
		inserted += w.a.Stats().Inserted
	})
	if inserted == 0 {
		t.Error("nothing was inserted: the test checks nothing")
	}
}

func FuzzInsertBatch(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{5, 1, 2, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		newTwins(t, data).run()
	})
}

// TestInsertBatchLarge inserts through the pipeline of InsertBatch (longer
// batches than its distance) into a table of 64K connections, then finds
// every connection by both keys, and gets Exists for all on a second pass.
func TestInsertBatchLarge(t *testing.T) {
	tab, err := New(Config{Capacity: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]Insertion, 1<<15)
	for i := range ins {
		ins[i] = Insertion{Orig: benchKey(i), NAT: benchNAT(i), Label: uint32(i)}
	}
	res := make([]Result, len(ins))
	for off := 0; off < len(ins); off += 100 {
		end := min(off+100, len(ins))
		tab.InsertBatch(ins[off:end], 1, res[off:end])
	}
	for i, in := range ins {
		if res[i] != Inserted {
			t.Fatalf("insertion %d: %v", i, res[i])
		}
		c, ok := tab.Lookup(in.Orig, 1)
		if !ok || c.Label != uint32(i) || c.Dir != Original {
			t.Fatalf("Lookup(orig %d) = %v %+v", i, ok, c)
		}
		if c, ok = tab.Lookup(in.NAT.Apply(in.Orig).Reverse(), 1); !ok || c.Label != uint32(i) || c.Dir != Reply {
			t.Fatalf("Lookup(reply %d) = %v %+v", i, ok, c)
		}
	}
	tab.InsertBatch(ins, 1, res)
	for i := range res {
		if res[i] != Exists {
			t.Fatalf("second insertion %d: %v, want exists", i, res[i])
		}
	}
	if n := tab.Len(); n != len(ins) {
		t.Errorf("Len %d, want %d", n, len(ins))
	}
}

// TestConnReused looks up an IPv6 connection and then an IPv4 one into
// the same Conn, as a worker reusing its batch's Conns does: what the
// IPv6 key left in the Conn must not make the IPv4 connection look
// translated.
func TestConnReused(t *testing.T) {
	tab, err := New(Config{Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	k6 := KeyFrom(uAddrs[2], uAddrs[2], 1000, 80, ProtoTCP)
	k4 := KeyFrom(uAddrs[0], uAddrs[1], 1000, 80, ProtoTCP)
	if k6.pack().n != keyWords || k4.pack().n != 2 {
		t.Fatalf("test keys: %v should be IPv6, %v IPv4", k6, k4)
	}
	for _, k := range []Key{k6, k4} {
		if _, r := tab.Insert(k, NAT{}, 0, 1); r != Inserted {
			t.Fatalf("Insert(%v) = %v", k, r)
		}
	}
	conns, found := make([]Conn, 1), make([]bool, 1)
	for _, k := range []Key{k6, k4, k4.Reverse()} {
		if tab.LookupBatch([]Key{k}, 1, conns, found) != 1 {
			t.Fatalf("LookupBatch(%v) missed", k)
		}
		if conns[0].NATed() {
			t.Errorf("%v looks translated to %v", k, conns[0].Out())
		}
	}
}
