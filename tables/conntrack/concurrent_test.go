package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// In the concurrent test every connection's NAT and label are functions of
// its original tuple, so a reader can check any answer on its own: a torn
// read, or one mixing two connections, breaks the relation.

const protoPinned = 47 // GRE: the "other" timeout, long in this test

func churnKey(i int) Key {
	return KeyFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), netip.AddrFrom4([4]byte{10, 2, 0, 1}),
		uint16(20000+i), 53, ProtoUDP)
}

func pinnedKey(i int) Key {
	return KeyFrom(netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}), netip.AddrFrom4([4]byte{10, 4, 0, 1}),
		uint16(1000+i), 2000, protoPinned)
}

// natOf masquerades churn connections to a port of their own and
// DNATs pinned ones to a backend of their own.
func natOf(k Key) NAT {
	if k.Proto == protoPinned {
		return NAT{Dst: netip.AddrFrom4([4]byte{10, 5, 0, k.Src[15]}).As16(), DstPort: 3000 + k.SrcPort}
	}
	return NAT{Src: netip.AddrFrom4([4]byte{192, 168, 0, 1}).As16(), SrcPort: k.SrcPort + 10000}
}

func labelOf(k Key) uint32 {
	return uint32(k.SrcPort)<<16 | uint32(k.Src[14])<<8 | uint32(k.Src[15])
}

// consistent reports what is wrong with a connection a lookup of k
// returned, or "".
func consistent(k Key, c *Conn) string {
	switch {
	case c.Key() != k:
		return "looked-up key " + k.String() + " but got " + c.Key().String()
	case c.Reply() != natOf(c.Orig()).Apply(c.Orig()).Reverse():
		return "reply " + c.Reply().String() + " does not belong to " + c.Orig().String()
	case c.Label != labelOf(c.Orig()):
		return "label of " + c.Orig().String() + " is wrong"
	case c.State >= numStates:
		return "bad state"
	}
	return ""
}

// TestConcurrent has readers look up and update connections while writers
// insert and delete and a sweeper expires them, with and without capacity
// pressure. Run it with -race.
func TestConcurrent(t *testing.T) {
	for _, c := range []struct {
		name     string
		capacity int
		churn    int  // churn tuples
		mustFind bool // pinned connections are never evicted
		cache    int  // free records per shard cache (-1: default)
	}{
		{"roomy", 4096, 1024, true, -1},
		{"full", 512, 4096, false, -1},
		{"full-cached", 512, 4096, false, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			testConcurrent(t, c.capacity, c.churn, c.mustFind, c.cache)
		})
	}
}

func testConcurrent(t *testing.T, capacity, churn int, mustFind bool, cache int) {
	const pinned = 64
	cfg := Config{Capacity: capacity, Timeouts: Timeouts{UDP: 2 * time.Second, UDPStream: 3 * time.Second, Other: time.Hour}}
	tab, err := newTable(cfg, testSeed, 0, cache)
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Uint32
	clock.Store(1)
	now := func() Time { return Time(clock.Load()) }
	for i := range pinned {
		if _, res := tab.Insert(pinnedKey(i), natOf(pinnedKey(i)), labelOf(pinnedKey(i)), now()); res != Inserted {
			t.Fatalf("Insert pinned %d = %v", i, res)
		}
	}

	var failures atomic.Int32
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	lookups := 200_000
	if testing.Short() || raceEnabled {
		lookups = 50_000
	}
	var stop atomic.Bool
	var readers, others sync.WaitGroup
	var hits, writes atomic.Int64
	// Readers go on until the writers and the sweeper, who may get little
	// CPU, have churned through the table a few times and shown what this
	// case is about (expiry, or eviction), or time is up.
	minWrites := int64(4 * max(capacity, churn))
	deadline := time.Now().Add(20 * time.Second)
	var enough atomic.Bool
	check := func() bool {
		if enough.Load() {
			return true
		}
		s := tab.Stats()
		ok := writes.Load() >= minWrites && clock.Load() >= 20 &&
			(mustFind && s.Expired > 0 || !mustFind && s.EvictedFull > 0) || time.Now().After(deadline)
		if ok {
			enough.Store(true)
		}
		return ok
	}

	for r := range 4 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var stale Conn
			for i := 0; i < lookups || i%256 != 0 || !check(); i++ {
				var k Key
				isPinned := rng.IntN(2) == 0
				n := rng.IntN(churn)
				if isPinned {
					k = pinnedKey(rng.IntN(pinned))
				} else {
					k = churnKey(n)
				}
				if rng.IntN(2) == 0 {
					k = natOf(k).Apply(k).Reverse()
				}
				c, ok := tab.Lookup(k, now())
				if !ok {
					if isPinned && mustFind {
						fail("pinned %v not found", k)
					}
					continue
				}
				hits.Add(1)
				if msg := consistent(k, &c); msg != "" {
					fail("Lookup: %s", msg)
				}
				if isPinned || n < churn/2 { // the other half goes idle and expires
					tab.Update(&c, uFlags[rng.IntN(len(uFlags))], now())
				}
				if rng.IntN(8) == 0 {
					tab.SetLabel(&c, labelOf(c.Orig()))
				}
				// A handle kept across many operations, whose record may
				// have been reused: Update must refuse it then (if it
				// did not, nothing here would notice, but the model test
				// would; here it races with reuse).
				tab.Update(&stale, TCPFlagRST, now())
				if rng.IntN(64) == 0 {
					stale = c
				}
			}
		})
	}
	for w := range 2 {
		others.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			ins, res := make([]Insertion, 16), make([]Result, 16)
			for !stop.Load() {
				k := churnKey(rng.IntN(churn))
				if rng.IntN(8) == 0 {
					tab.Delete(natOf(k).Apply(k).Reverse())
					continue
				}
				writes.Add(1)
				if w == 1 { // the other writer inserts in batches
					for i := range ins {
						k := churnKey(rng.IntN(churn))
						ins[i] = Insertion{Orig: k, NAT: natOf(k), Label: labelOf(k)}
					}
					tab.InsertBatch(ins, now(), res)
					for i, r := range res {
						if r != Inserted && r != Exists && r != Busy {
							fail("InsertBatch %v = %v", ins[i].Orig, r)
						}
					}
					continue
				}
				c, res := tab.Insert(k, natOf(k), labelOf(k), now())
				switch res {
				case Inserted, Exists:
					if msg := consistent(k, &c); msg != "" {
						fail("Insert %v: %s", res, msg)
					}
				case Busy:
				default:
					fail("Insert = %v", res)
				}
			}
		})
	}
	start := time.Now()
	others.Go(func() {
		for !stop.Load() {
			// The clock ticks every 5ms of wall time, so connections
			// expire whatever share of the CPU this goroutine gets.
			clock.Store(1 + uint32(time.Since(start)/(5*time.Millisecond)))
			tab.Sweep(now(), 64)
			runtime.Gosched()
		}
	})
	readers.Wait()
	stop.Store(true)
	others.Wait()

	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
	if tab.Len() > capacity {
		t.Errorf("Len %d > capacity %d", tab.Len(), capacity)
	}
	s := tab.Stats()
	t.Logf("clock %d, %d hits, Len %d, %+v", clock.Load(), hits.Load(), tab.Len(), s)
	if hits.Load() == 0 || s.Inserted == 0 || s.Deleted == 0 || s.Exists == 0 {
		t.Errorf("the test did not exercise the table: %d hits, %+v", hits.Load(), s)
	}
	if mustFind && s.Expired == 0 {
		t.Errorf("nothing expired: %+v", s)
	}
	if !mustFind && s.EvictedFull == 0 {
		t.Errorf("no evictions under pressure: %+v", s)
	}
}

// TestConcurrentReuse makes record reuse as frequent as it can be: a
// two-record table, a writer inserting and deleting four tuples in turn,
// and readers looking up exactly those tuples. A reader that compared the
// key of one connection and read the rest of the next must notice (this
// test fails if the generation check of read is removed, or if Insert
// writes the live word before the label).
func TestConcurrentReuse(t *testing.T) {
	tab, err := New(Config{Capacity: 2})
	if err != nil {
		t.Fatal(err)
	}
	const tuples = 4
	lookups := 1_000_000
	if testing.Short() || raceEnabled {
		lookups = 100_000
	}
	var stop atomic.Bool
	var failures atomic.Int32
	var readers, writer sync.WaitGroup
	var hits, cycles atomic.Int64
	writer.Go(func() {
		for i := 0; !stop.Load(); i++ {
			k := churnKey(i % tuples)
			tab.Insert(k, natOf(k), labelOf(k), 1)
			tab.Delete(k)
			cycles.Add(1)
		}
	})
	// Readers see a connection only while the writer is between Insert and
	// Delete on another core: they go on until they have seen some.
	deadline := time.Now().Add(20 * time.Second)
	for r := range 3 {
		readers.Go(func() {
			for i := 0; i < lookups || cycles.Load() < 20_000 || hits.Load() < 2000 && time.Now().Before(deadline); i++ {
				k := churnKey((i + r) % tuples)
				if i&1 == 1 {
					k = natOf(k).Apply(k).Reverse()
				}
				c, ok := tab.Lookup(k, 1)
				if !ok {
					continue
				}
				hits.Add(1)
				if msg := consistent(k, &c); msg != "" && failures.Add(1) <= 5 {
					t.Errorf("Lookup: %s", msg)
				}
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writer.Wait()
	t.Logf("%d hits, %+v", hits.Load(), tab.Stats())
	if hits.Load() < 2000 {
		t.Errorf("only %d lookups hit", hits.Load())
	}
	if err := tab.check(); err != nil {
		t.Error(err)
	}
}

// TestReadDetectsReuse plays the interleaving the live word guards
// against, step by step: a reader loads the live word and matches the key,
// then the connection is removed (and its record reused) before the reader
// reads the rest.
func TestReadDetectsReuse(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		tab := mustNew(t, Config{Capacity: 1})
		a, b := churnKey(1), churnKey(2)
		tab.Insert(a, natOf(a), labelOf(a), 1)
		p := a.pack()
		idx, d, ok, _ := tab.find(&p, hash(&p, &tab.seed))
		if !ok {
			t.Fatal("inserted key not found")
		}
		r := &tab.recs[idx]
		live := r.live.Load() // the reader's first load; the key matches

		var c Conn
		if !snapshot(r, idx, d, live, &a, &c) || consistent(a, &c) != "" {
			t.Fatalf("snapshot of an unchanged record failed: %+v", c)
		}
		tab.Delete(a)
		if reuse {
			if got, _ := tab.Insert(b, natOf(b), labelOf(b), 1); got.idx != idx {
				t.Fatalf("record %d not reused (got %d)", idx, got.idx)
			}
		}
		if snapshot(r, idx, d, live, &a, &c) {
			t.Errorf("reuse %v: the reader's snapshot succeeded after removal: %+v", reuse, c)
		}
	}
}
