package conntrack

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Benchmarks use 1M (2^20) TCP flows from distinct pods to Service VIPs,
// DNATed to backends, so each flow has two distinct keys. Lookups go in a
// scattered order over both directions, as packets of many flows arrive.

const benchFlows = 1 << 20

var v4prefix = [12]byte{10: 0xff, 11: 0xff}

// benchKey is flow i's original tuple (distinct for i < 2^32), built
// without netip to keep the benchmark loop's own cost small.
func benchKey(i int) Key {
	var k Key
	benchKeyInto(&k, i)
	return k
}

// benchKeyInto is benchKey into k, all of whose fields it sets: the
// batch benchmarks fill their slices in place.
func benchKeyInto(k *Key, i int) {
	*(*[12]byte)(k.Src[:]) = v4prefix
	*(*[12]byte)(k.Dst[:]) = v4prefix
	binary.BigEndian.PutUint32(k.Src[12:], uint32(i))
	binary.BigEndian.PutUint32(k.Dst[12:], 10<<24|96<<16|uint32(i%251))
	k.SrcPort, k.DstPort, k.Proto = uint16(32768+i%28000), 80, ProtoTCP
}

func benchNAT(i int) NAT {
	var n NAT
	benchNATInto(&n, i)
	return n
}

func benchNATInto(n *NAT, i int) {
	*n = NAT{DstPort: 8080}
	*(*[12]byte)(n.Dst[:]) = v4prefix
	binary.BigEndian.PutUint32(n.Dst[12:], 10<<24|200<<16|uint32(i)&0xffff)
}

// benchLookupKeys are the keys lookups go through, in order: a
// permutation of the flows (an odd multiplier modulo a power of two), both
// directions of each, precomputed as a worker has them parsed. Built once.
func benchLookupKeys() []Key {
	bench.keysOnce.Do(func() {
		keys := make([]Key, 2*benchFlows)
		for i := range keys {
			j := int(uint32(i>>1)*0x9E3779B1) & (benchFlows - 1)
			keys[i] = benchKey(j)
			if i&1 == 1 {
				keys[i] = benchNAT(j).Apply(keys[i]).Reverse()
			}
		}
		bench.keys = keys
	})
	return bench.keys
}

// benchNext numbers the flows insert benchmarks create, so that no run
// inserts a flow an earlier one left behind. Flows below benchFlows are
// the lookup benchmarks'.
var benchNext atomic.Int64

func init() { benchNext.Store(benchFlows) }

var bench struct {
	keysOnce sync.Once
	keys     []Key

	once     sync.Once
	tab      *Table
	tabBytes float64

	mapOnce  sync.Once
	m        *rwMap
	mapBytes float64
}

func benchTable(b *testing.B) *Table {
	bench.once.Do(func() {
		t, err := New(Config{Capacity: benchFlows})
		if err != nil {
			b.Fatal(err)
		}
		for i := range benchFlows {
			if _, res := t.Insert(benchKey(i), benchNAT(i), uint32(i), 1); res != Inserted {
				b.Fatalf("Insert %d = %v", i, res)
			}
		}
		if s := t.Stats(); s.EvictedFull+s.EvictedWindow != 0 {
			b.Fatalf("filling evicted: %+v", s)
		}
		bench.tab, bench.tabBytes = t, float64(t.Bytes())/benchFlows
	})
	return bench.tab
}

// lookupBatch is the batch size of the batch benchmarks, a typical RX
// batch.
const lookupBatch = 64

// BenchmarkConntrackLookup looks up 1M flows, both directions, in a
// scattered order: one Lookup per op ("serial", "parallel"), or LookupBatch
// over 64 keys at a time, still reported per key ("batch",
// "batch-parallel"; a worker looks its RX batch up so), or Prefetch of 64
// keys then a Lookup of each ("prefetch"). The parallel variants run 4
// goroutines per CPU.
func BenchmarkConntrackLookup(b *testing.B) {
	tab, keys := benchTable(b), benchLookupKeys()
	mask := len(keys) - 1
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, ok := tab.Lookup(keys[i&mask], 1); !ok {
				b.Fatal("miss")
			}
		}
		b.ReportMetric(bench.tabBytes, "B/flow")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) << 16
			for pb.Next() {
				if _, ok := tab.Lookup(keys[i&mask], 1); !ok {
					b.Error("miss")
					return
				}
				i++
			}
		})
		b.ReportMetric(bench.tabBytes, "B/flow")
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		conns, found := make([]Conn, lookupBatch), make([]bool, lookupBatch)
		for i := 0; i < b.N; i += lookupBatch {
			off := i & mask
			if tab.LookupBatch(keys[off:off+lookupBatch], 1, conns, found) != lookupBatch {
				b.Fatal("miss")
			}
		}
		b.ReportMetric(bench.tabBytes, "B/flow")
	})
	b.Run("prefetch", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += lookupBatch {
			off := i & mask
			batch := keys[off : off+lookupBatch]
			tab.Prefetch(batch)
			for j := range batch {
				if _, ok := tab.Lookup(batch[j], 1); !ok {
					b.Fatal("miss")
				}
			}
		}
		b.ReportMetric(bench.tabBytes, "B/flow")
	})
	b.Run("batch-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			conns, found := make([]Conn, lookupBatch), make([]bool, lookupBatch)
			i := int(seq.Add(1)) << 16
			for {
				// One batch per lookupBatch ops: the count stays per key.
				for j := range lookupBatch {
					if !pb.Next() {
						if j > 0 {
							tab.LookupBatch(keys[i&mask:i&mask+j], 1, conns, found)
						}
						return
					}
				}
				if tab.LookupBatch(keys[i&mask:i&mask+lookupBatch], 1, conns, found) != lookupBatch {
					b.Error("miss")
					return
				}
				i += lookupBatch
			}
		})
		b.ReportMetric(bench.tabBytes, "B/flow")
	})
}

// BenchmarkConntrackInsert inserts new flows into a 1M-flow table:
// "fresh" below capacity (the table is emptied, untimed, when half full),
// "prefetch" the same, 64 flows at a time, without NAT, after a Prefetch of
// their keys, "batch" as "fresh", 64 flows at a time, in one InsertBatch,
// as a worker inserts NetworkPolicy's connections, "batch-readers" the same
// while a goroutine per CPU looks up recent flows (reader-hits: the share
// found), "cached" as "fresh"
// into a table of 16K flows (3 MiB, held by the L3 cache), "full" at
// capacity, where every insert evicts one connection, "full-parallel" the
// same from 4 goroutines per CPU, "full-readers" the same while readers
// look up as in "batch-readers".
func BenchmarkConntrackInsert(b *testing.B) {
	tab, err := New(Config{Capacity: benchFlows})
	if err != nil {
		b.Fatal(err)
	}
	now := Time(1)
	b.Run("fresh", func(b *testing.B) { insertFresh(b, tab, &now) })
	b.Run("prefetch", func(b *testing.B) {
		b.ReportAllocs()
		keys := make([]Key, lookupBatch)
		n := tab.Len()
		for i := 0; i < b.N; i += len(keys) {
			if n >= benchFlows/2 {
				emptyUntimed(b, tab, &now)
				n = 0
			}
			first := int(benchNext.Add(int64(len(keys)))) - len(keys) + 1 // Add returns the last number taken
			for j := range keys {
				keys[j] = benchKey(first + j)
			}
			tab.Prefetch(keys)
			for j := range keys {
				if _, res := tab.Insert(keys[j], NAT{}, 0, now); res != Inserted {
					b.Fatalf("Insert = %v", res)
				}
			}
			n += len(keys)
		}
	})
	b.Run("batch", func(b *testing.B) { insertBatches(b, tab, &now) })
	b.Run("batch-readers", func(b *testing.B) {
		stop := withReaders(func(k Key) bool { _, ok := tab.Lookup(k, now); return ok })
		insertBatches(b, tab, &now)
		b.StopTimer()
		reportReaders(b, stop())
	})
	b.Run("cached", func(b *testing.B) {
		small, err := New(Config{Capacity: 1 << 14}) // 3 MiB of table: in the L3 cache
		if err != nil {
			b.Fatal(err)
		}
		insertFresh(b, small, &now)
	})
	// Fill it, then keep inserting: each insert evicts.
	now += 1 << 20
	for range benchFlows {
		i := int(benchNext.Add(1))
		tab.Insert(benchKey(i), benchNAT(i), 0, now)
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i := int(benchNext.Add(1))
			if _, res := tab.Insert(benchKey(i), benchNAT(i), 0, now); res != Inserted {
				b.Fatalf("Insert = %v", res)
			}
		}
	})
	b.Run("full-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(benchNext.Add(1))
				if _, res := tab.Insert(benchKey(i), benchNAT(i), 0, now); res != Inserted && res != Busy {
					b.Errorf("Insert = %v", res)
					return
				}
			}
		})
	})
	b.Run("full-readers", func(b *testing.B) {
		stop := withReaders(func(k Key) bool { _, ok := tab.Lookup(k, now); return ok })
		b.ReportAllocs()
		for b.Loop() {
			i := int(benchNext.Add(1))
			if _, res := tab.Insert(benchKey(i), benchNAT(i), 0, now); res != Inserted {
				b.Fatalf("Insert = %v", res)
			}
		}
		b.StopTimer()
		reportReaders(b, stop())
	})
}

// withReaders starts one goroutine per CPU that looks up, until the
// returned function is called, the most recent flows inserted (benchNext)
// and a few older ones, as a worker's traffic reads the table while
// connections are opened; stop returns the share of lookups that hit.
func withReaders(lookup func(Key) bool) (stop func() float64) {
	var done atomic.Bool
	var hits, total atomic.Int64
	var wg sync.WaitGroup
	for r := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var h, n int64
			for j := r; !done.Load(); j++ {
				if lookup(benchKey(int(benchNext.Load()) - j%4096)) {
					h++
				}
				n++
			}
			hits.Add(h)
			total.Add(n)
		})
	}
	return func() float64 {
		done.Store(true)
		wg.Wait()
		return float64(hits.Load()) / float64(max(1, total.Load()))
	}
}

// reportReaders reports the readers' hit share, so that a run whose
// readers found nothing (and so were not reading the table's entries)
// shows it.
func reportReaders(b *testing.B, hit float64) { b.ReportMetric(hit, "reader-hits") }

// insertBatches inserts new flows into tab in batches of 64 (InsertBatch),
// one per op, emptying it (untimed) whenever it is half full.
func insertBatches(b *testing.B, tab *Table, now *Time) {
	b.ReportAllocs()
	ins, res := make([]Insertion, lookupBatch), make([]Result, lookupBatch)
	n := tab.Len()
	for i := 0; i < b.N; i += len(ins) {
		if n >= tab.Capacity()/2 {
			emptyUntimed(b, tab, now)
			n = 0
		}
		first := int(benchNext.Add(int64(len(ins)))) - len(ins) + 1
		for j := range ins {
			benchKeyInto(&ins[j].Orig, first+j)
			benchNATInto(&ins[j].NAT, first+j)
		}
		tab.InsertBatch(ins, *now, res)
		for j := range res {
			if res[j] != Inserted {
				b.Fatalf("InsertBatch: %v", res[j])
			}
		}
		n += len(ins)
	}
}

// insertFresh inserts one new flow per op into tab, emptying it (untimed)
// whenever it is half full.
func insertFresh(b *testing.B, tab *Table, now *Time) {
	b.ReportAllocs()
	n := tab.Len()
	for ; b.Loop(); n++ {
		if n == tab.Capacity()/2 {
			emptyUntimed(b, tab, now)
			n = 0
		}
		i := int(benchNext.Add(1))
		if _, res := tab.Insert(benchKey(i), benchNAT(i), 0, *now); res != Inserted {
			b.Fatalf("Insert = %v", res)
		}
	}
}

// emptyUntimed expires and sweeps every connection of tab, off the clock.
func emptyUntimed(b *testing.B, tab *Table, now *Time) {
	b.StopTimer()
	*now += 1 << 20
	tab.Sweep(*now, tab.Capacity())
	b.StartTimer()
}

// rwMap is the baseline: a Go map from both keys of a connection to one
// shared entry, under a sync.RWMutex, bounded by evicting the oldest
// connection (FIFO) when full.
type rwMap struct {
	mu       sync.RWMutex
	m        map[Key]*mapEntry
	fifo     []*mapEntry // ring of connections by insertion; guarded by mu
	head     int
	capacity int
	to       timeoutTable
}

type mapEntry struct {
	orig, reply Key
	state       State
	last        Time
	label       uint32
}

func newRWMap(capacity int) *rwMap {
	return &rwMap{m: make(map[Key]*mapEntry, 2*capacity), fifo: make([]*mapEntry, 0, capacity),
		capacity: capacity, to: Timeouts{}.table()}
}

// mapConn is what a baseline lookup returns: a copy of the entry.
type mapConn struct {
	mapEntry
	dir Dir
}

func (m *rwMap) lookup(k Key, now Time) (mapConn, bool) {
	m.mu.RLock()
	e := m.m[k]
	var c mapConn
	if e != nil {
		c.mapEntry = *e
	}
	m.mu.RUnlock()
	if e == nil || int32(now-c.last) > m.to[classOf(c.orig.Proto)][c.state] {
		return mapConn{}, false
	}
	if k != c.orig {
		c.dir = Reply
	}
	return c, true
}

func (m *rwMap) insert(orig Key, nat NAT, label uint32, now Time) Result {
	reply := nat.Apply(orig).Reverse()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m[orig] != nil {
		return Exists
	}
	if m.m[reply] != nil {
		return Conflict
	}
	e := &mapEntry{orig: orig, reply: reply, last: now, label: label}
	if len(m.fifo) < m.capacity {
		m.fifo = append(m.fifo, e)
	} else {
		old := m.fifo[m.head]
		delete(m.m, old.orig)
		delete(m.m, old.reply)
		m.fifo[m.head] = e
		m.head = (m.head + 1) % m.capacity
	}
	m.m[orig], m.m[reply] = e, e
	return Inserted
}

func benchMap(b *testing.B) *rwMap {
	bench.mapOnce.Do(func() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newRWMap(benchFlows)
		for i := range benchFlows {
			if res := m.insert(benchKey(i), benchNAT(i), uint32(i), 1); res != Inserted {
				b.Fatalf("insert %d = %v", i, res)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		bench.m, bench.mapBytes = m, float64(after.HeapAlloc-before.HeapAlloc)/benchFlows
	})
	return bench.m
}

func BenchmarkConntrackLookupMapRWMutex(b *testing.B) {
	m, keys := benchMap(b), benchLookupKeys()
	mask := len(keys) - 1
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, ok := m.lookup(keys[i&mask], 1); !ok {
				b.Fatal("miss")
			}
		}
		b.ReportMetric(bench.mapBytes, "B/flow")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) << 16
			for pb.Next() {
				if _, ok := m.lookup(keys[i&mask], 1); !ok {
					b.Error("miss")
					return
				}
				i++
			}
		})
		b.ReportMetric(bench.mapBytes, "B/flow")
	})
}

func BenchmarkConntrackInsertMapRWMutex(b *testing.B) {
	m := newRWMap(benchFlows)
	fresh := func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if len(m.fifo) == benchFlows/2 {
				b.StopTimer()
				m.mu.Lock() // readers may be looking up
				clear(m.m)
				m.fifo, m.head = m.fifo[:0], 0
				m.mu.Unlock()
				b.StartTimer()
			}
			i := int(benchNext.Add(1))
			if res := m.insert(benchKey(i), benchNAT(i), 0, 1); res != Inserted {
				b.Fatalf("insert = %v", res)
			}
		}
	}
	b.Run("fresh", fresh)
	b.Run("fresh-readers", func(b *testing.B) {
		stop := withReaders(func(k Key) bool { _, ok := m.lookup(k, 1); return ok })
		fresh(b)
		b.StopTimer()
		reportReaders(b, stop())
	})
	for len(m.fifo) < benchFlows {
		i := int(benchNext.Add(1))
		m.insert(benchKey(i), benchNAT(i), 0, 1)
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i := int(benchNext.Add(1))
			if res := m.insert(benchKey(i), benchNAT(i), 0, 1); res != Inserted {
				b.Fatalf("insert = %v", res)
			}
		}
	})
	b.Run("full-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(benchNext.Add(1))
				if res := m.insert(benchKey(i), benchNAT(i), 0, 1); res != Inserted {
					b.Errorf("insert = %v", res)
					return
				}
			}
		})
	})
	b.Run("full-readers", func(b *testing.B) {
		stop := withReaders(func(k Key) bool { _, ok := m.lookup(k, 1); return ok })
		b.ReportAllocs()
		for b.Loop() {
			i := int(benchNext.Add(1))
			if res := m.insert(benchKey(i), benchNAT(i), 0, 1); res != Inserted {
				b.Fatalf("insert = %v", res)
			}
		}
		b.StopTimer()
		reportReaders(b, stop())
	})
}

// BenchmarkMemoryLatency is this machine's floor for one lookup in a table
// larger than its caches: a chain of dependent loads, each from a random
// cache line of 256 MiB (more than the 1M-flow table's 164 MiB), so that
// no load can start before the one before it has arrived, as a lookup's
// record cannot be read before its bucket. ns/op is one cache miss.
func BenchmarkMemoryLatency(b *testing.B) {
	const lines = 256 << 20 / 64
	next := make([]uint32, lines*16) // line i's first word: the next line of the chain
	perm := rand.Perm(lines)
	for i, l := range perm {
		next[l*16] = uint32(perm[(i+1)%lines])
	}
	l := uint32(perm[0])
	for b.Loop() {
		l = next[l*16]
	}
	latencySink = l
}

var latencySink uint32
