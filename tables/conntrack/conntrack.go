// Package conntrack is the connection tracking table of the fast path: a
// fixed-size concurrent hash table of flows, shared by all workers, for
// stateful NetworkPolicy and NAT (Service DNAT, egress masquerade).
//
// # Model
//
// A connection has two keys: the 5-tuple of its original direction, and
// the tuple replies arrive with, which is the original tuple translated by
// the connection's NAT and reversed. Both keys lead to one record holding
// the two tuples (so the rewrite for either direction is the other tuple
// reversed, see [Conn.Out]), a state (the TCP state machine, or New/Replied
// for other protocols), a last-seen time in coarse seconds and a 32-bit
// label for the policy layer (verdict and identity bits; the table does not
// interpret it). A connection expires when it has been idle longer than
// the timeout of its protocol and state ([Timeouts]); an expired connection
// is invisible to lookups at once and is removed later by [Table.Sweep], or
// by an [Table.Insert] that needs its room.
//
// Workers call [Table.LookupBatch] (or [Table.Lookup]) for their RX batch,
// [Table.Update] with each packet's direction and TCP flags, and Insert on
// a miss, or, for connections nothing in the batch needs at once,
// [Table.InsertBatch] at the end of the batch. The agent's background
// goroutine calls Sweep with a budget, and [Table.Delete] when policy or
// services change. Nothing allocates after
// [New]; nothing grows: the table holds at most Capacity connections and
// makes room by evicting.
//
// # Layout
//
// Records: one array of Capacity records of 128 bytes (two cache lines),
// never moved or freed. A record is a live word (last seen, state, FIN
// bits, protocol class, used bit, 24-bit generation), a label word, and the
// two keys. An IPv4 key is packed into two 64-bit words (ports, protocol
// and family; the two addresses), an IPv6 key into five; the words of the
// two directions are interleaved so that an IPv4 record is read from its
// first cache line alone. Free records wait on a free list.
//
// Index: a power-of-two array of 64-byte buckets, one per three
// connections of capacity (rounded up), so at most 40% of the slots are
// used when the table is full. A bucket is a spill count and 15 slots; a
// slot is 32 bits: the record index, the direction, and a 7-bit tag from
// the key's hash (the top bits; the bucket comes from the low bits). A key
// lives in its home bucket or, when that is full, in its buddy, the other
// bucket of the same aligned 128-byte pair; the home's spill count says
// how many did so. A lookup reads one bucket (two adjacent ones only after
// a spill, which at this load is rare), compares the tags of its 15 slots
// at once (SSE2 on amd64, scan in asm_amd64.s: no branch per slot to
// mispredict), and reads the record of each slot whose tag matches (a
// wrong match costs an extra record read for 1 in 128 other keys in the
// bucket): two cache misses in a big table, one after the other, since
// the record is known only once the bucket has arrived. That is the floor
// of a single Lookup in a table larger than the caches: on the 2-core
// machine of docs/benchmarks.md one miss costs 155-190 ns, depending on
// the hour (BenchmarkMemoryLatency), and a Lookup in a 1M-flow table a
// little more, since the CPU runs ahead into the next call while it waits.
// LookupBatch is the way past it: a software pipeline that fetches key
// i's bucket while it searches key i-12's and reads key i-24's record, with
// PREFETCHT0 (asm_amd64.s) rather than loads, which would hold back
// every instruction after them until the line arrives. Both arrays ask
// for transparent huge pages (hugepage_linux.go): with 4 KiB pages every
// one of these misses would also miss the TLB. There are
// no tombstones and nothing is ever moved: a key stays in the slot it was
// published in until it is removed.
//
// # Concurrency: what is atomic and why readers are safe
//
// Every word that more than one goroutine touches (slots, spill counts,
// record words) is a sync/atomic value, read with atomic loads and written
// with atomic stores or CAS; on amd64 the loads are plain MOVs. The
// exception: on amd64, outside the race detector, Insert writes a record's
// keys and label, and the slots it publishes, with plain stores, since
// only the live word's store orders anything (store.go says why that is
// safe). Readers
// (Lookup, LookupBatch) take no lock, write nothing and never wait: a
// lookup is a bounded number of loads, with no retry loop.
//
// A reader can meet a slot that was just cleared and whose record is being
// reused for another connection. The live word guards against that, acting
// as the record's sequence lock: a writer removes a connection by clearing
// its used bit (CAS) before anything else, and reuses a record by writing
// its keys and label first and its live word last, with the generation
// incremented. A reader loads the live word, requires the used bit, reads
// the key and compares, reads the rest, and loads the live word again: if
// the used bit or generation differ, the record changed under it and the
// slot is skipped (the connection it pointed at was removed during the
// lookup, so a miss is a correct answer). Go's atomics are sequentially
// consistent, so a reader that saw any word written by a reuse also sees
// the cleared used bit or the new generation: torn reads are detected,
// never returned. The generation is 24 bits; a stale [Conn] is only
// mistaken for a new one if its record is reused 2^24 times in between.
// Slots are single words, so they cannot tear; a slot is stored after its
// record is complete, and a spill count is raised before the slot it
// counts is stored and lowered after it is cleared.
//
// Last-seen time and state change without the generation, by CAS on the
// live word in Update, from any worker and without locks; Update writes
// only when something changed, so with a clock in seconds most packets
// leave the cache line shared. The label changes by CAS (with the
// generation in its upper bits) in SetLabel.
//
// Writers (Insert, Delete, Sweep) serialize per shard: the bucket pairs
// are dealt to up to 256 shards, each with a lock (a spin lock, see
// store.go), and a writer holds the shards of both keys of every
// connection it adds or removes, taken in ascending order. A writer that
// must remove a connection whose other key lies in a shard it does not
// hold (an eviction victim) only tries that lock (TryLock) and picks
// another victim if it is taken, so writers never deadlock. Beside its lock a shard keeps, under it, its counts and
// statistics and (in tables of 128K connections or more) a cache of up to
// 64 free records, so that writers in different shards share no cache line
// and rarely take the free list's own mutex (taken last). Len and Stats
// take the shard locks one at a time.
//
// Atomic writes and locks are full barriers on amd64 (XCHG, LOCK
// CMPXCHG), and one that waits for a miss stalls for all of it. Insert
// therefore first touches (loads) the two buckets of its keys, the record
// its shard will hand out next (a hint the shard publishes), and, when the
// table is full, the buckets of the connection it will evict, so that all
// these misses overlap before it takes the first lock. A caller that calls
// Prefetch for its keys first has them fetched before Insert is called;
// InsertBatch fetches them with PREFETCHT0 several inserts ahead, so that
// no lock waits for a miss.
//
// # Eviction
//
// Insert makes room rather than fail. When no record is free (in the free
// list or any shard's cache), it samples 8 records at a rotating clock hand
// and evicts the one closest to expiry (expired ones first: what is left of
// their timeout is least), like Redis's sampled LRU. When a key's bucket pair is full (30 keys: at
// 40% load practically never), it evicts the entry of that pair closest to
// expiry. Evictions of live connections are counted apart from expiries in
// [Stats]. Insert returns [Busy] only if every candidate was locked by
// other writers. Inserts of the same tuple from two workers resolve to one
// connection ([Exists]); the table never holds a tuple twice.
package conntrack

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"unsafe"
)

// MaxCapacity is the largest Capacity New accepts: record indexes have 24
// bits in a slot.
const MaxCapacity = 1<<24 - 1

// Config configures a table.
type Config struct {
	// Capacity is the number of connections the table holds at most.
	// Each connection has two keys. It costs about 160 bytes per
	// connection, allocated at New.
	Capacity int
	// Timeouts are the idle timeouts; zero fields take the defaults.
	Timeouts Timeouts
}

// Result is the outcome of Insert.
type Result uint8

const (
	Inserted Result = iota // a new connection was inserted
	Exists                 // the tuple is already tracked (another worker won the race); the returned Conn is that connection
	Conflict               // refused: the reply tuple belongs to another live connection (pick another NAT port)
	Invalid                // refused: the reply tuple equals the original one
	Busy                   // refused: no room could be made without waiting for another writer
	numResults
)

var resultNames = [numResults]string{"inserted", "exists", "conflict", "invalid", "busy"}

func (r Result) String() string {
	if r < numResults {
		return resultNames[r]
	}
	return "unknown"
}

// Stats counts what writers did. The counts only grow.
type Stats struct {
	Inserted  uint64 // connections inserted
	Exists    uint64 // inserts that found the tuple already tracked
	Conflicts uint64 // inserts refused: reply tuple taken
	Invalid   uint64 // inserts refused: reply tuple equals the original
	Busy      uint64 // inserts refused: no room without waiting

	EvictedFull   uint64 // live connections evicted because the table was full
	EvictedWindow uint64 // live connections evicted because a key's bucket pair was full
	Expired       uint64 // expired connections removed (by Sweep, or reclaimed by Insert)
	Deleted       uint64 // connections removed by Delete
}

const (
	ctrInserted = iota // ctrInserted + Result counts that Result
	ctrExists
	ctrConflict
	ctrInvalid
	ctrBusy
	ctrEvictedFull
	ctrEvictedWindow
	ctrExpired
	ctrDeleted
	numCounters
)

// Conn is a consistent snapshot of one connection, as a lookup or Insert
// saw it, and the handle Update and SetLabel take. It holds no pointer into
// the table; a worker keeps one per packet of its batch and reuses it. It
// keeps the tuple of the other direction packed, as the table stores it,
// and unpacks it only when asked (Orig, Reply, Out).
type Conn struct {
	Dir      Dir    // direction of the key that was looked up
	State    State  // state when seen; Update refreshes it
	LastSeen Time   // last-seen time when seen; Update refreshes it
	Label    uint32 // the policy layer's bits

	key   Key    // tuple of direction Dir
	other packed // tuple of the other direction
	idx   uint32 // record index
	gen   uint32 // record generation the snapshot belongs to
}

// Key is the tuple of direction c.Dir: the looked-up key.
func (c *Conn) Key() Key { return c.key }

// Orig is the tuple of packets in the original direction, as they arrive.
func (c *Conn) Orig() Key {
	if c.Dir == Original {
		return c.key
	}
	return c.other.unpack()
}

// Reply is the tuple of packets in the reply direction, as they arrive:
// the original tuple translated by the NAT, reversed.
func (c *Conn) Reply() Key {
	if c.Dir == Reply {
		return c.key
	}
	return c.other.unpack()
}

// Out is the tuple packets of direction c.Dir must leave with: the other
// direction's tuple reversed (for the original direction the NAT applied,
// for the reply direction the NAT undone).
func (c *Conn) Out() Key { return c.other.unpack().Reverse() }

// NATed reports whether the connection has a translation, that is whether
// Out differs from Key.
func (c *Conn) NATed() bool {
	r := c.key.Reverse()
	return r.pack() != c.other
}

// NAT is the rewrite taking Key to Out, with zero fields where they agree.
func (c *Conn) NAT() NAT {
	in, out := c.key, c.Out()
	var n NAT
	if out.Src != in.Src {
		n.Src = out.Src
	}
	if out.Dst != in.Dst {
		n.Dst = out.Dst
	}
	if out.SrcPort != in.SrcPort {
		n.SrcPort = out.SrcPort
	}
	if out.DstPort != in.DstPort {
		n.DstPort = out.DstPort
	}
	return n
}

// The live word of a record.
const (
	lastBits   = 1<<32 - 1 // last seen, Time
	stateShift = 32        // 3 bits, State
	finShift   = 35        // 2 bits: bit d set when direction d sent FIN
	classShift = 37        // 2 bits, protocol class
	usedBit    = 1 << 39   // the record holds a connection
	genShift   = 40        // 24 bits, generation: incremented on every reuse
	genMask    = 1<<24 - 1

	stateBits = 7 << stateShift
	finBits   = 3 << finShift
	genBits   = genMask << genShift
)

// record is one connection. Which goroutine writes what:
//   - live: Insert (under the shards of both keys) initializes it last;
//     removal (same locks) clears usedBit by CAS first; Update (any worker,
//     no lock) changes last seen, state and FIN bits by CAS.
//   - label: Insert initializes; SetLabel (any goroutine) by CAS.
//   - kw: Insert only, while usedBit is clear.
//
// Readers load any of them at any time; see the package doc.
type record struct {
	live  atomic.Uint64
	label atomic.Uint64 // gen<<32 | label
	// kw[j][d] is word j of the packed key of direction d. IPv4 keys use
	// j < 2, so an IPv4 record is read from its first cache line.
	kw [keyWords][2]atomic.Uint64
	_  [4]uint64
}

// bucketWords is the size of a bucket in 32-bit words: word 0 counts the
// keys homed here that live in the buddy bucket, words 1..15 are slots.
const bucketWords = 16

// bucket is 64 bytes; the bucket array is allocated page-aligned by the Go
// runtime, so every bucket is one cache line and every pair two adjacent
// ones. Written under the shard lock of its pair, read by anyone.
type bucket [bucketWords]atomic.Uint32

// A slot word: the record index plus one (so a used slot is never 0), the
// direction, and the top 7 bits of the key's hash as a tag. A lookup reads
// the record of a slot only when the tag matches: for 1 in 128 of the
// other keys in the bucket.
const (
	idxBits  = 1<<24 - 1
	dirShift = 24
	tagBits  = 0x7f << 25
)

func tagOf(h uint64) uint32 { return uint32(h>>57) << 25 }

// matchBits are the bits of scan's result for slots whose tag matches.
const matchBits = 1<<bucketWords - 1

func slotWord(h uint64, idx uint32, d Dir) uint32 {
	return tagOf(h) | uint32(d)<<dirShift | (idx + 1)
}

func slotRef(s uint32) (uint32, Dir) { return s&idxBits - 1, Dir(s >> dirShift & 1) }

// maxShards bounds the number of writer locks.
const maxShards = 256

// shard is a writer lock and what writers holding it keep: counts and a
// cache of free records. Fields but mu and next are guarded by mu.
type shard struct {
	mu   spinLock
	n    int                 // connections whose original key homes in this shard
	ctr  [numCounters]uint64 // statistics
	free []uint32            // free records, at most Table.freeCache
	// next is the record pop will likely hand out next (the top of
	// free), for Insert to fetch before it takes the lock. Written under
	// mu, read without: it is only a hint.
	next atomic.Uint32
	_    [128 - 16 - 8*numCounters - 24 - 4]byte
}

type cachePad [64]byte

// Table is a connection tracking table. All methods are safe for
// concurrent use; Lookup never blocks.
type Table struct {
	// Set by New, read-only afterwards.
	buckets   []bucket
	recs      []record
	shards    []shard
	bmask     uint64 // len(buckets) - 1
	smask     uint64 // len(shards) - 1
	seed      [keyWords]uint64
	timeout   timeoutTable
	freeCache int // capacity of each shard's cache of free records (0: none)

	// removed, if set (by tests, before use), is called by take after
	// each removal, with the shards held.
	removed func(idx uint32, why int)

	_     cachePad
	alloc struct {
		mu   sync.Mutex
		free []uint32 // free record indexes (a stack); guarded by mu
	}
	_    cachePad
	hand atomic.Uint64 // eviction clock: next record to sample; any writer
	full atomic.Bool   // the last pop found no free record; any writer
	_    cachePad
	// cached counts the shards whose cache of free records is not empty;
	// writers change it when a cache empties or fills (rarely), and pop
	// reads it to know whether there are free records to steal.
	cached  atomic.Int32
	_       cachePad
	sweepAt atomic.Uint64 // next record Sweep examines; any sweeper
	_       cachePad
	// sweepUsed counts the records in use that Sweep saw since its pass
	// began; at the end of the pass it sets large (see Large), which
	// workers read once per batch.
	sweepUsed atomic.Uint64
	large     atomic.Bool
	_         cachePad
}

// New allocates a table for cfg.Capacity connections.
func New(cfg Config) (*Table, error) {
	var seed [keyWords]uint64
	for i := range seed {
		seed[i] = rand.Uint64() | 1
	}
	return newTable(cfg, seed, 0, -1)
}

// newTable is New with a chosen seed and, for tests, if nbuckets > 0, the
// bucket count (a power of two), and if freeCache >= 0, the size of the
// shards' caches of free records.
func newTable(cfg Config, seed [keyWords]uint64, nbuckets, freeCache int) (*Table, error) {
	c := cfg.Capacity
	if c < 1 || c > MaxCapacity {
		return nil, fmt.Errorf("conntrack: capacity %d out of range [1, %d]", c, MaxCapacity)
	}
	if nbuckets == 0 {
		// 2c keys in 15-slot buckets at most 40% full: one bucket per 3
		// connections, rounded up to a power of two.
		nbuckets = max(2, 1<<bits.Len(uint((c+2)/3-1)))
	}
	if nbuckets < 2 || nbuckets&(nbuckets-1) != 0 {
		return nil, errors.New("conntrack: bucket count must be a power of two >= 2")
	}
	nshards := min(maxShards, nbuckets/2)
	t := &Table{
		buckets: make([]bucket, nbuckets),
		recs:    make([]record, c),
		shards:  make([]shard, nshards),
		bmask:   uint64(nbuckets - 1),
		smask:   uint64(nshards - 1),
		seed:    seed,
		timeout: cfg.Timeouts.table(),
	}
	adviseHugePages(t.buckets)
	adviseHugePages(t.recs)
	t.alloc.free = make([]uint32, c)
	for i := range t.alloc.free {
		t.alloc.free[i] = uint32(c - 1 - i) // pop hands out 0, 1, 2, ...
	}
	// Big tables give each shard a cache of free records, so that a writer
	// rarely takes the free list's mutex (a cache line every writer would
	// share). The caches hold at most 1/64 of the records; a writer that
	// finds none free steals another shard's cache before it evicts.
	if fc := c / (nshards * 64); fc >= 8 {
		t.freeCache = min(fc, 64)
	}
	if freeCache >= 0 {
		t.freeCache = freeCache
	}
	if t.freeCache > 0 {
		for i := range t.shards {
			t.shards[i].free = make([]uint32, 0, t.freeCache)
		}
	}
	return t, nil
}

// Capacity is the number of connections the table holds at most.
func (t *Table) Capacity() int { return len(t.recs) }

// Bytes is the memory the table holds, all allocated by New.
func (t *Table) Bytes() int {
	return len(t.buckets)*bucketWords*4 + len(t.recs)*128 + cap(t.alloc.free)*4 + len(t.shards)*(128+4*t.freeCache)
}

// Len is the number of connections in the table, expired ones not yet
// removed included. It takes each shard's lock in turn, briefly: it is for
// the control plane, not the packet path. With concurrent writers it is
// approximate.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// Stats returns the counters, summed over shards. Like Len, it takes each
// shard's lock in turn.
func (t *Table) Stats() Stats {
	var c [numCounters]uint64
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for j := range c {
			c[j] += sh.ctr[j]
		}
		sh.mu.Unlock()
	}
	return Stats{
		Inserted: c[ctrInserted], Exists: c[ctrExists], Conflicts: c[ctrConflict],
		Invalid: c[ctrInvalid], Busy: c[ctrBusy],
		EvictedFull: c[ctrEvictedFull], EvictedWindow: c[ctrEvictedWindow],
		Expired: c[ctrExpired], Deleted: c[ctrDeleted],
	}
}

func (t *Table) shardOf(h uint64) uint32 { return uint32((h & t.bmask) >> 1 & t.smask) }

// expired reports whether the connection with live word live has been idle
// longer than its timeout at now. A last-seen time after now (another
// worker's clock ran ahead) counts as idle for 0 seconds.
func (t *Table) expired(live uint64, now Time) bool {
	age := int32(uint32(now) - uint32(live))
	return age > t.timeout[live>>classShift&3][live>>stateShift&7]
}

// remaining is how many seconds the connection has left before it expires
// (negative: expired that long ago).
func (t *Table) remaining(live uint64, now Time) int64 {
	age := max(int64(int32(uint32(now)-uint32(live))), 0)
	return int64(t.timeout[live>>classShift&3][live>>stateShift&7]) - age
}

func sameConn(a, b uint64) bool { return (a^b)&(usedBit|genBits) == 0 }

// Lookup returns the live connection that k belongs to, in either
// direction (c.Dir says which). It takes no lock and does not allocate;
// expired connections are not returned.
func (t *Table) Lookup(k Key, now Time) (c Conn, ok bool) {
	var p packed
	k.packInto(&p)
	h := hash(&p, &t.seed)
	ok = t.lookup(&k, &p, h, now, &c)
	return c, ok
}

// LookupBatch's software pipeline: key i is hashed and its bucket fetched
// at step i, its bucket searched and the matching record fetched at step
// i+batchDist, and the record read at step i+2*batchDist. batchDist steps
// take about as long as one cache miss, so the misses of about 2*batchDist
// keys are in flight at any time. batchRing holds the keys between steps.
const (
	batchDist = 12
	batchRing = 32 // a power of two > 2*batchDist
)

// LookupBatch looks up every key of keys, as Lookup does, into conns[i]
// and found[i] (conns and found must be at least as long as keys), and
// returns how many it found. In a table larger than the CPU caches it
// costs a fraction of as many Lookup calls: a lookup is two dependent
// cache misses (the bucket, then the record), and LookupBatch runs the
// keys through a software pipeline in which the misses of about 24 keys
// overlap instead of following one another. It takes no lock and does
// not allocate.
func (t *Table) LookupBatch(keys []Key, now Time, conns []Conn, found []bool) (hits int) {
	n := len(keys)
	conns, found = conns[:n], found[:n]
	var ps [batchRing]packed
	var hs [batchRing]uint64
	var cand [batchRing]uint32
	for i := range n + 2*batchDist {
		if i < n {
			r := i & (batchRing - 1)
			keys[i].packInto(&ps[r])
			hs[r] = hash(&ps[r], &t.seed)
			prefetch(uintptr(unsafe.Pointer(&t.buckets[hs[r]&t.bmask])))
		}
		if j := i - batchDist; j >= 0 && j < n {
			r := j & (batchRing - 1)
			cand[r] = t.candidate(hs[r])
			if cand[r] != 0 {
				prefetch(uintptr(unsafe.Pointer(&t.recs[cand[r]&idxBits-1])))
			}
		}
		if m := i - 2*batchDist; m >= 0 {
			r := m & (batchRing - 1)
			ok := cand[r] != 0 && t.read(cand[r], &keys[m], &ps[r], now, &conns[m]) ||
				t.lookup(&keys[m], &ps[r], hs[r], now, &conns[m])
			found[m] = ok
			if ok {
				hits++
			}
		}
	}
	return hits
}

// Prefetch starts fetching what Lookup and Insert of keys will read: the
// bucket of each key and the record its tag points at, through the same
// pipeline as LookupBatch, without reading the records; for a key whose
// bucket has no candidate, what its Insert without NAT will write (the
// reversed key's bucket, the record its shard hands out next). A caller
// that handles a batch packet by packet calls it first with the batch's
// keys, so that each packet's Lookup then finds its lines in the cache (the
// workers look their batch up with LookupBatch instead, which does not
// look each key up twice). It is
// worth its cost (about as much as hashing the keys) only when the table is
// larger than the caches; see [Table.Large]. It takes no lock, writes
// nothing and does not allocate.
func (t *Table) Prefetch(keys []Key) {
	n := len(keys)
	var ps packed
	var hs [batchRing]uint64
	for i := range n + batchDist {
		if i < n {
			keys[i].packInto(&ps)
			hs[i&(batchRing-1)] = hash(&ps, &t.seed)
			prefetch(uintptr(unsafe.Pointer(&t.buckets[hs[i&(batchRing-1)]&t.bmask])))
		}
		if j := i - batchDist; j >= 0 {
			h := hs[j&(batchRing-1)]
			if s := t.candidate(h); s != 0 {
				prefetch(uintptr(unsafe.Pointer(&t.recs[s&idxBits-1])))
				continue
			}
			// Likely a new connection: fetch what inserting it without
			// NAT will touch, the reply key's bucket and the record the
			// shard will hand out.
			r := keys[j].Reverse()
			r.packInto(&ps)
			prefetch(uintptr(unsafe.Pointer(&t.buckets[hash(&ps, &t.seed)&t.bmask])))
			if r := t.nextRecord(h); r != nil {
				prefetch(uintptr(unsafe.Pointer(r)))
			}
		}
	}
}

// largeConns is the number of connections above which looking a batch up
// ahead (LookupBatch, Prefetch) pays for itself. Below it the lines
// lookups read (two buckets and a record per connection) mostly stay in
// the L3 cache, and a worker's pass over its batch (a second decode of
// every frame) costs more than it saves. On the machine of
// docs/benchmarks.md (32 MiB of L3, shared),
// BenchmarkPipelineForwardServiceFlows forwards a packet with 16K
// connections in 184 ns with the pass and 165 without, with 32K in 179
// and 204, with 60K in 191 and 332, with 250K in 193 and 450: the edge
// lies between 16K and 60K, and moves with what else uses the L3.
const largeConns = 48 << 10

// Large reports whether the table held more than 49,152 connections, as
// counted by the last full pass of Sweep over the records (an estimate:
// connections come and go during the pass), which is good enough to
// decide whether to look a batch up ahead. False until Sweep has made a pass.
func (t *Table) Large() bool { return t.large.Load() }

// candidate is the first slot of the home bucket of a key with hash h
// whose tag matches, or 0. LookupBatch reads its record first; if that is
// not the key's, it falls back to lookup.
func (t *Table) candidate(h uint64) uint32 {
	bk := &t.buckets[h&t.bmask]
	if m := scan(bk, tagOf(h)) & matchBits; m != 0 {
		return bk[bits.TrailingZeros32(m)].Load()
	}
	return 0
}

func (t *Table) lookup(k *Key, p *packed, h uint64, now Time, c *Conn) bool {
	b := h & t.bmask
	tag := tagOf(h)
	bk := &t.buckets[b]
	for m := scan(bk, tag) & matchBits; m != 0; m &= m - 1 {
		// The slot may have been cleared since scan read it.
		if s := bk[bits.TrailingZeros32(m)].Load(); s != 0 && t.read(s, k, p, now, c) {
			return true
		}
	}
	if bk[0].Load() == 0 {
		return false
	}
	bk = &t.buckets[b^1]
	for m := scan(bk, tag) & matchBits; m != 0; m &= m - 1 {
		// The slot may have been cleared since scan read it.
		if s := bk[bits.TrailingZeros32(m)].Load(); s != 0 && t.read(s, k, p, now, c) {
			return true
		}
	}
	return false
}

// read fills c from the record slot s points at if the record holds key k
// (packed p) in the slot's direction, is live at now, and did not change
// while it was read.
func (t *Table) read(s uint32, k *Key, p *packed, now Time, c *Conn) bool {
	idx, d := slotRef(s)
	r := &t.recs[idx]
	live := r.live.Load()
	if live&usedBit == 0 || r.kw[0][d].Load() != p.w[0] || r.kw[1][d].Load() != p.w[1] {
		return false
	}
	for j := 2; j < p.n; j++ {
		if r.kw[j][d].Load() != p.w[j] {
			return false
		}
	}
	if t.expired(live, now) {
		return false
	}
	return snapshot(r, idx, d, live, k, c)
}

// snapshot fills c from record r (index idx), in which the caller found
// key k in direction d while the live word was live. It fails if the
// record was removed or reused since.
func snapshot(r *record, idx uint32, d Dir, live uint64, k *Key, c *Conn) bool {
	readKey(r, d^1, &c.other)
	label := r.label.Load()
	if !sameConn(r.live.Load(), live) {
		return false
	}
	c.key = *k
	c.Dir = d
	c.State = State(live >> stateShift & 7)
	c.LastSeen = Time(live)
	c.Label = uint32(label)
	c.idx, c.gen = idx, uint32(live>>genShift)
	return true
}

// readKey loads the packed key of direction d. Unless the caller holds the
// record's shards, it must check the live word afterwards.
func readKey(r *record, d Dir, p *packed) {
	p.w[0] = r.kw[0][d].Load()
	p.n = wordsFor(p.w[0])
	for j := 1; j < p.n; j++ {
		p.w[j] = r.kw[j][d].Load()
	}
	clear(p.w[p.n:])
}

// Refresh brings c, which a lookup returned earlier, up to date, as a new
// Lookup of c.Key() at now would: its state, last-seen time and label. It
// reports false if the connection has been removed (or its record reused)
// or is expired at now; a Lookup then tells whether the key belongs to
// another connection. A worker that looked its RX batch up in one
// LookupBatch refreshes each packet's connection before using it, since an
// earlier packet of the batch may have changed it. It reads one record and
// takes no lock.
func (t *Table) Refresh(c *Conn, now Time) bool {
	if int(c.idx) >= len(t.recs) {
		return false
	}
	r := &t.recs[c.idx]
	live := r.live.Load()
	label := r.label.Load()
	if live&usedBit == 0 || uint32(live>>genShift) != c.gen || uint32(label>>32) != c.gen || t.expired(live, now) ||
		!sameConn(r.live.Load(), live) {
		return false
	}
	c.State, c.LastSeen, c.Label = State(live>>stateShift&7), Time(live), uint32(label)
	return true
}

// Update records a packet of connection c in direction c.Dir with TCP
// flags tcpFlags (ignored for other protocols) at now: it refreshes the
// last-seen time and advances the state, and copies both into c. It takes
// no lock, does not allocate, and writes to the table only when something
// changed. It reports false if the connection is gone (removed, or its
// record reused).
func (t *Table) Update(c *Conn, tcpFlags uint8, now Time) bool {
	if int(c.idx) >= len(t.recs) {
		return false
	}
	r := &t.recs[c.idx]
	for {
		old := r.live.Load()
		if old&usedBit == 0 || uint32(old>>genShift) != c.gen {
			return false
		}
		nw := advance(old, c.Dir, tcpFlags, now)
		if nw == old || r.live.CompareAndSwap(old, nw) {
			c.State, c.LastSeen = State(nw>>stateShift&7), Time(nw)
			return true
		}
	}
}

// advance is the live word after a packet in direction d with TCP flags f
// at now.
func advance(live uint64, d Dir, f uint8, now Time) uint64 {
	st, fin := State(live>>stateShift&7), uint8(live>>finShift&3)
	if live>>classShift&3 == classTCP {
		st, fin = tcpNext(st, fin, d, f)
	} else if d == Reply && st == StateNew {
		st = StateReplied
	}
	last := Time(live)
	if int32(now-last) > 0 {
		last = now
	}
	return live&^(lastBits|stateBits|finBits) | uint64(last) | uint64(st)<<stateShift | uint64(fin)<<finShift
}

// SetLabel replaces the label of connection c (and c.Label). It reports
// false if the connection is gone.
func (t *Table) SetLabel(c *Conn, label uint32) bool {
	if int(c.idx) >= len(t.recs) {
		return false
	}
	r := &t.recs[c.idx]
	for {
		old := r.label.Load()
		if uint32(old>>32) != c.gen {
			return false
		}
		if r.label.CompareAndSwap(old, uint64(c.gen)<<32|uint64(label)) {
			break
		}
	}
	live := r.live.Load()
	if live&usedBit == 0 || uint32(live>>genShift) != c.gen {
		return false
	}
	c.Label = label
	return true
}

// lockset is the shard locks a writer holds: at most two, one per key of
// the connection it works on.
type lockset struct {
	s [2]uint32
	n int
}

func (l *lockset) has(s uint32) bool {
	return (l.n > 0 && l.s[0] == s) || (l.n > 1 && l.s[1] == s)
}

// lock takes shards a and b in ascending order.
func (l *lockset) lock(t *Table, a, b uint32) {
	if a > b {
		a, b = b, a
	}
	t.shards[a].mu.Lock()
	l.s[0], l.n = a, 1
	if b != a {
		t.shards[b].mu.Lock()
		l.s[1], l.n = b, 2
	}
}

// tryLock takes those of shards a and b that held does not hold, without
// waiting; on failure it holds nothing and returns false.
func (l *lockset) tryLock(t *Table, held *lockset, a, b uint32) bool {
	for _, s := range [2]uint32{a, b} {
		if held.has(s) || l.has(s) {
			continue
		}
		if !t.shards[s].mu.TryLock() {
			l.unlock(t)
			return false
		}
		l.s[l.n] = s
		l.n++
	}
	return true
}

func (l *lockset) unlock(t *Table) {
	for l.n > 0 {
		l.n--
		t.shards[l.s[l.n]].mu.Unlock()
	}
}

// find returns the record and direction of key p (hash h) whether live or
// expired, or, if it is not there, the first empty slot of its home bucket
// (0: none). The caller holds the shard of h, so the pair's entries and
// their records are stable.
func (t *Table) find(p *packed, h uint64) (idx uint32, d Dir, ok bool, empty int) {
	b := h & t.bmask
	tag := tagOf(h)
	bk := &t.buckets[b]
	m := scan(bk, tag)
	for tags := m & matchBits; tags != 0; tags &= tags - 1 {
		if idx, d = slotRef(bk[bits.TrailingZeros32(tags)].Load()); keyIs(&t.recs[idx], d, p) {
			return idx, d, true, 0
		}
	}
	if m>>16 != 0 {
		empty = bits.TrailingZeros32(m >> 16)
	}
	if bk[0].Load() != 0 {
		bk = &t.buckets[b^1]
		for tags := scan(bk, tag) & matchBits; tags != 0; tags &= tags - 1 {
			if idx, d = slotRef(bk[bits.TrailingZeros32(tags)].Load()); keyIs(&t.recs[idx], d, p) {
				return idx, d, true, 0
			}
		}
	}
	return 0, 0, false, empty
}

func keyIs(r *record, d Dir, p *packed) bool {
	for j := range p.n {
		if r.kw[j][d].Load() != p.w[j] {
			return false
		}
	}
	return true
}

// fill copies record idx into c, looked up in direction d. The caller
// holds the record's shards.
func (t *Table) fill(c *Conn, idx uint32, d Dir, live uint64) {
	r := &t.recs[idx]
	var p packed
	readKey(r, d, &p)
	*c = Conn{
		Dir: d, State: State(live >> stateShift & 7), LastSeen: Time(live), Label: uint32(r.label.Load()),
		key: p.unpack(), idx: idx, gen: uint32(live >> genShift),
	}
	readKey(r, d^1, &c.other)
}

// Insert adds the connection whose original-direction packets have tuple
// orig and are translated by nat (the zero NAT: none), with the policy
// label, last seen at now, in state New. It returns the connection and
// Inserted, or the connection already tracked for orig (in either
// direction) and Exists, or a refusal (Conflict, Invalid, Busy) with the
// zero Conn. To make room it removes expired connections and evicts live
// ones; see the package doc. It does not allocate.
func (t *Table) Insert(orig Key, nat NAT, label uint32, now Time) (Conn, Result) {
	var p prepared
	t.prepare(&orig, &nat, &p)
	// Fetch both buckets and the record the insert will likely use before
	// locking: their cache misses overlap, and the lock (a full barrier)
	// waits for them once, not three times.
	t.buckets[p.ho&t.bmask][0].Load()
	t.buckets[p.hr&t.bmask][0].Load()
	if r := t.nextRecord(p.ho); r != nil {
		r.live.Load()
	}
	var c Conn
	res := t.insertPrepared(&orig, &p, label, now, &c, true)
	return c, res
}

// prepared is a connection to insert, packed and hashed: its original key
// (po, hash ho) and its reply key (pr, hash hr).
type prepared struct {
	po, pr packed
	ho, hr uint64
}

func (t *Table) prepare(orig *Key, nat *NAT, p *prepared) {
	orig.packInto(&p.po)
	orig.packReply(nat, &p.pr)
	p.ho, p.hr = hash(&p.po, &t.seed), hash(&p.pr, &t.seed)
}

// insertPrepared is Insert of p once its lines have been fetched (or
// touched): it takes the shards of both keys and inserts, filling c (if
// not nil) as Insert returns it. If touch, and the table is full, it picks
// the connection to evict and touches its buckets before locking.
func (t *Table) insertPrepared(orig *Key, p *prepared, label uint32, now Time, c *Conn, touch bool) Result {
	so, sr := t.shardOf(p.ho), t.shardOf(p.hr)
	if p.po == p.pr { // packing is one to one: reply == orig
		sh := &t.shards[so]
		sh.mu.Lock()
		sh.ctr[ctrInvalid]++
		sh.mu.Unlock()
		return Invalid
	}
	// A full table: choose the connection to evict now and fetch its
	// buckets too. take checks the choice again under the locks.
	victim := noVictim
	if t.full.Load() {
		if v, ok := t.clockVictim(now); ok {
			victim = v
			if touch {
				t.prefetchConn(v)
			}
		}
	}
	var held lockset
	held.lock(t, so, sr)
	res := t.insertLocked(orig, &p.po, &p.pr, p.ho, p.hr, &held, label, now, victim, c)
	t.shards[so].ctr[ctrInserted+int(res)]++
	held.unlock(t)
	return res
}

// An Insertion is one connection for InsertBatch: Insert's arguments.
type Insertion struct {
	Orig  Key
	NAT   NAT
	Label uint32
}

// InsertBatch's software pipeline: insertion i is packed and hashed, and
// its two buckets and the record its shard will likely hand out are
// fetched, at step i; it is inserted at step i+insertDist, when they have
// arrived. insertDist inserts take longer than one cache miss.
const (
	insertDist = 8
	insertRing = 16 // a power of two > insertDist
)

// InsertBatch inserts every connection of ins, as Insert would, in order,
// and sets res[i] (res must be at least as long as ins) to the result of
// ins[i]. An insertion of a tuple inserted earlier in the batch is Exists.
// In a table larger than the caches it costs a fraction of as many Insert
// calls: an insert touches three lines of the table at random (two
// buckets and a record), and its locks wait until they have arrived;
// InsertBatch fetches them several insertions ahead. A worker that tracks
// the connections of its RX batch without needing the Conn at once (the
// NetworkPolicy connections) inserts them with it. It does not allocate.
func (t *Table) InsertBatch(ins []Insertion, now Time, res []Result) {
	n := len(ins)
	res = res[:n]
	var ring [insertRing]prepared
	for i := range n + insertDist {
		if i < n {
			p := &ring[i&(insertRing-1)]
			t.prepare(&ins[i].Orig, &ins[i].NAT, p)
			prefetch(uintptr(unsafe.Pointer(&t.buckets[p.ho&t.bmask])))
			prefetch(uintptr(unsafe.Pointer(&t.buckets[p.hr&t.bmask])))
			if r := t.nextRecord(p.ho); r != nil {
				prefetch(uintptr(unsafe.Pointer(r)))
			}
		}
		if j := i - insertDist; j >= 0 {
			res[j] = t.insertPrepared(&ins[j].Orig, &ring[j&(insertRing-1)], ins[j].Label, now, nil, false)
		}
	}
}

// noVictim is no record.
const noVictim = ^uint32(0)

// nextRecord is the record the shard of a key with hash h will likely hand
// out to its next insert (the shard's hint), or nil if it has none.
func (t *Table) nextRecord(h uint64) *record {
	if next := t.shards[t.shardOf(h)].next.Load(); int(next) < len(t.recs) {
		return &t.recs[next]
	}
	return nil
}

// prefetchConn touches the buckets of connection idx's keys.
func (t *Table) prefetchConn(idx uint32) {
	r := &t.recs[idx]
	var p packed
	for d := range Dir(2) {
		readKey(r, d, &p)
		t.buckets[hash(&p, &t.seed)&t.bmask][0].Load()
	}
}

// insertLocked inserts under the shards in held, filling c (if not nil)
// when it returns Inserted or Exists.
func (t *Table) insertLocked(orig *Key, po, pr *packed, ho, hr uint64, held *lockset, label uint32, now Time, victim uint32, c *Conn) Result {
	// An expired connection on either tuple gives way; a live one wins.
	// find also returns a free slot of the home bucket (eo, er): usually
	// where the new keys go.
	var eo, er int
	for {
		idx, d, ok, empty := t.find(po, ho)
		if !ok {
			eo = empty
			break
		}
		live := t.recs[idx].live.Load()
		if !t.expired(live, now) {
			if c != nil {
				t.fill(c, idx, d, live)
			}
			return Exists
		}
		if t.take(idx, held, now, whyExpired, false) == takeBusy {
			return Busy
		}
	}
	for {
		idx, _, ok, empty := t.find(pr, hr)
		if !ok {
			er = empty
			break
		}
		if !t.expired(t.recs[idx].live.Load(), now) {
			return Conflict
		}
		if t.take(idx, held, now, whyExpired, false) == takeBusy {
			return Busy
		}
	}
	// Room in both bucket pairs, then a record.
	bo, br := ho&t.bmask, hr&t.bmask
	direct := bo != br && eo != 0 && er != 0 // both home buckets have room
	if !direct {
		if bo>>1 == br>>1 {
			if !t.makeRoom(bo, 2, held, now) {
				return Busy
			}
		} else if !t.makeRoom(bo, 1, held, now) || !t.makeRoom(br, 1, held, now) {
			return Busy
		}
	}
	idx, ok := t.pop(&t.shards[t.shardOf(ho)], held)
	if !ok && victim != noVictim && t.take(victim, held, now, whyFull, true) == takeOK {
		idx, ok = victim, true
	}
	for try := 0; !ok && try < maxEvictTries; try++ {
		if v, found := t.clockVictim(now); found && t.take(v, held, now, whyFull, true) == takeOK {
			idx, ok = v, true
		}
	}
	if !ok {
		return Busy
	}

	// Initialize the record (keys and label first, live word last: see
	// the package doc), then publish its two slots.
	r := &t.recs[idx]
	gen := (r.live.Load()>>genShift + 1) & genMask
	for j := range po.n {
		storeRelaxed64(&r.kw[j][Original], po.w[j])
	}
	for j := range pr.n {
		storeRelaxed64(&r.kw[j][Reply], pr.w[j])
	}
	storeRelaxed64(&r.label, gen<<32|uint64(label))
	live := gen<<genShift | usedBit | classOf(uint8(po.w[0]>>32))<<classShift | uint64(StateNew)<<stateShift | uint64(now)
	r.live.Store(live)
	if direct {
		storeRelaxed32(&t.buckets[bo][eo], slotWord(ho, idx, Original))
		storeRelaxed32(&t.buckets[br][er], slotWord(hr, idx, Reply))
	} else {
		t.place(ho, slotWord(ho, idx, Original))
		t.place(hr, slotWord(hr, idx, Reply))
	}
	t.shards[t.shardOf(ho)].n++
	if c != nil {
		*c = Conn{
			Dir: Original, State: StateNew, LastSeen: now, Label: label,
			key: *orig, other: *pr, idx: idx, gen: uint32(gen),
		}
	}
	return Inserted
}

// maxEvictTries bounds the clock samples one Insert takes when the table
// is full, and evictSample is the number of records per sample.
const (
	maxEvictTries = 4
	evictSample   = 8
)

// hasRoom reports whether the pair of bucket b has need empty slots.
func (t *Table) hasRoom(b uint64, need int) bool {
	for _, bk := range [2]*bucket{&t.buckets[b], &t.buckets[b^1]} {
		for i := 1; i < bucketWords; i++ {
			if bk[i].Load() == 0 {
				if need--; need == 0 {
					return true
				}
			}
		}
	}
	return false
}

// makeRoom evicts from the pair of bucket b (whose shard the caller holds)
// until it has need free slots, taking first the entries closest to expiry
// and skipping those it cannot lock.
func (t *Table) makeRoom(b uint64, need int, held *lockset, now Time) bool {
	var skip [2 * (bucketWords - 1)]uint32
	nskip := 0
	for !t.hasRoom(b, need) {
		victim, best := uint32(0), int64(math.MaxInt64)
		found := false
		for _, bk := range [2]*bucket{&t.buckets[b], &t.buckets[b^1]} {
		slots:
			for i := 1; i < bucketWords; i++ {
				s := bk[i].Load()
				if s == 0 {
					continue
				}
				idx, _ := slotRef(s)
				for _, x := range skip[:nskip] {
					if x == idx {
						continue slots
					}
				}
				if rem := t.remaining(t.recs[idx].live.Load(), now); rem < best {
					victim, best, found = idx, rem, true
				}
			}
		}
		if !found {
			return false
		}
		if t.take(victim, held, now, whyWindow, false) != takeOK {
			skip[nskip] = victim
			nskip++
		}
	}
	return true
}

// clockVictim samples evictSample records at the clock hand and returns
// the used one closest to expiry.
func (t *Table) clockVictim(now Time) (uint32, bool) {
	n := uint64(len(t.recs))
	k := min(evictSample, n)
	i := (t.hand.Add(k) - k) % n
	victim, best, found := uint32(0), int64(math.MaxInt64), false
	for range k {
		if live := t.recs[i].live.Load(); live&usedBit != 0 {
			if rem := t.remaining(live, now); rem < best {
				victim, best, found = uint32(i), rem, true
			}
		}
		if i++; i == n {
			i = 0
		}
	}
	return victim, found
}

// place stores slot word w for a key with hash h in its home bucket, or
// its buddy if the home is full. The caller holds the pair's shard and
// made room.
func (t *Table) place(h uint64, w uint32) {
	b := h & t.bmask
	home := &t.buckets[b]
	for i := 1; i < bucketWords; i++ {
		if home[i].Load() == 0 {
			storeRelaxed32(&home[i], w)
			return
		}
	}
	home[0].Add(1) // before the slot: a reader that sees the slot sees the count
	buddy := &t.buckets[b^1]
	for i := 1; i < bucketWords; i++ {
		if buddy[i].Load() == 0 {
			storeRelaxed32(&buddy[i], w)
			return
		}
	}
	panic("conntrack: place without room")
}

// clearSlot removes slot word w of a key with hash h.
func (t *Table) clearSlot(h uint64, w uint32) {
	b := h & t.bmask
	home := &t.buckets[b]
	for i := 1; i < bucketWords; i++ {
		if home[i].Load() == w {
			home[i].Store(0)
			return
		}
	}
	buddy := &t.buckets[b^1]
	for i := 1; i < bucketWords; i++ {
		if buddy[i].Load() == w {
			buddy[i].Store(0)
			home[0].Add(^uint32(0)) // after the slot
			return
		}
	}
	panic("conntrack: slot not found")
}

// pop takes a free record for a writer holding shard sh (and the shards
// in held): from the shard's cache, else from the free list (refilling the
// cache with up to half its capacity on the way), else from another
// shard's cache.
func (t *Table) pop(sh *shard, held *lockset) (uint32, bool) {
	idx, ok := t.popFree(sh)
	if !ok && t.steal(sh, held) {
		idx, ok = t.popFree(sh)
	}
	if ok == t.full.Load() { // write only on a change
		t.full.Store(!ok)
	}
	return idx, ok
}

func (t *Table) popFree(sh *shard) (uint32, bool) {
	if n := len(sh.free); n > 0 {
		idx := sh.free[n-1]
		sh.free = sh.free[:n-1]
		if n > 1 {
			storeRelaxed32(&sh.next, sh.free[n-2])
		} else {
			t.cached.Add(-1)
		}
		return idx, true
	}
	t.alloc.mu.Lock()
	g := t.alloc.free
	if len(g) == 0 {
		t.alloc.mu.Unlock()
		return 0, false
	}
	k := min(len(g)-1, t.freeCache/2)
	idx := g[len(g)-1]
	sh.free = append(sh.free, g[len(g)-1-k:len(g)-1]...)
	t.alloc.free = g[:len(g)-1-k]
	t.alloc.mu.Unlock()
	if k > 0 {
		sh.next.Store(sh.free[k-1])
		t.cached.Add(1)
	}
	return idx, true
}

// steal moves the free records cached by another shard into the empty
// cache of sh, so that a table is full only when no record is free
// anywhere. It only tries the other shards' locks.
func (t *Table) steal(sh *shard, held *lockset) bool {
	if t.cached.Load() == 0 {
		return false
	}
	start := uint32(len(sh.free)) // any start will do; sh's own cache is empty
	for i := range uint32(len(t.shards)) {
		s := (start + i) & uint32(t.smask)
		o := &t.shards[s]
		if o == sh {
			continue
		}
		mine := !held.has(s)
		if mine && !o.mu.TryLock() {
			continue
		}
		n := len(o.free)
		if n > 0 { // o's cache empties and sh's fills: cached is unchanged
			sh.free = append(sh.free, o.free...)
			o.free = o.free[:0]
			sh.next.Store(sh.free[len(sh.free)-1])
		}
		if mine {
			o.mu.Unlock()
		}
		if n > 0 {
			return true
		}
	}
	return false
}

// push frees record idx into the cache of shard sh, which the caller
// holds, or, when the cache is full, into the free list with the older
// half of the cache. Neither ever grows past the capacity made at New.
func (t *Table) push(sh *shard, idx uint32) {
	if len(sh.free) < t.freeCache {
		if len(sh.free) == 0 {
			t.cached.Add(1)
		}
		sh.free = append(sh.free, idx)
		return
	}
	k := t.freeCache / 2
	t.alloc.mu.Lock()
	t.alloc.free = append(append(t.alloc.free, sh.free[:k]...), idx)
	t.alloc.mu.Unlock()
	sh.free = sh.free[:copy(sh.free, sh.free[k:])]
}

// Why take removes a connection.
const (
	whyExpired = iota // only if expired: Sweep, or an Insert reclaiming a tuple
	whyFull           // the table is full
	whyWindow         // a bucket pair is full
)

type takeResult uint8

const (
	takeOK   takeResult = iota
	takeGone            // the connection changed or vanished, or (whyExpired) is live
	takeBusy            // another writer holds a shard of the connection
)

// take removes the connection in record idx and frees the record, or, if
// keep, leaves it to the caller. With held nil it locks the connection's
// shards, waiting; otherwise the caller holds the shards in held and take
// only tries the others.
func (t *Table) take(idx uint32, held *lockset, now Time, why int, keep bool) takeResult {
	r := &t.recs[idx]
	live := r.live.Load()
	if live&usedBit == 0 {
		return takeGone
	}
	var po, pr packed
	readKey(r, Original, &po)
	readKey(r, Reply, &pr)
	if !sameConn(r.live.Load(), live) {
		return takeGone
	}
	ho, hr := hash(&po, &t.seed), hash(&pr, &t.seed)
	t.buckets[ho&t.bmask][0].Load() // fetch both buckets at once
	t.buckets[hr&t.bmask][0].Load()
	var mine lockset
	if held == nil {
		mine.lock(t, t.shardOf(ho), t.shardOf(hr))
	} else if !mine.tryLock(t, held, t.shardOf(ho), t.shardOf(hr)) {
		return takeBusy
	}
	defer mine.unlock(t)
	// Holding both shards, the keys read above are the connection's as
	// long as the generation is unchanged.
	var cur uint64
	for {
		cur = r.live.Load()
		if !sameConn(cur, live) || (why == whyExpired && !t.expired(cur, now)) {
			return takeGone
		}
		if r.live.CompareAndSwap(cur, cur&^usedBit) {
			break
		}
	}
	t.clearSlot(ho, slotWord(ho, idx, Original))
	t.clearSlot(hr, slotWord(hr, idx, Reply))
	sh := &t.shards[t.shardOf(ho)]
	sh.n--
	switch {
	case t.expired(cur, now):
		sh.ctr[ctrExpired]++
	case why == whyFull:
		sh.ctr[ctrEvictedFull]++
	default:
		sh.ctr[ctrEvictedWindow]++
	}
	if t.removed != nil {
		t.removed(idx, why)
	}
	if !keep {
		t.push(sh, idx)
	}
	return takeOK
}

// Delete removes the connection that k belongs to (in either direction,
// live or expired) and reports whether there was one.
func (t *Table) Delete(k Key) bool {
	p := k.pack()
	h := hash(&p, &t.seed)
	s := t.shardOf(h)
	for {
		// Learn the shard of the connection's other key under the lock
		// of this one, then lock both in order and look again.
		t.shards[s].mu.Lock()
		idx, d, ok, _ := t.find(&p, h)
		var o packed
		if ok {
			readKey(&t.recs[idx], d^1, &o)
		}
		t.shards[s].mu.Unlock()
		if !ok {
			return false
		}
		ho := hash(&o, &t.seed)
		var held lockset
		held.lock(t, s, t.shardOf(ho))
		idx2, d2, ok, _ := t.find(&p, h)
		if !ok {
			held.unlock(t)
			return false
		}
		if idx2 == idx && d2 == d && keyIs(&t.recs[idx], d^1, &o) {
			r := &t.recs[idx]
			var cur uint64
			for cur = r.live.Load(); !r.live.CompareAndSwap(cur, cur&^usedBit); cur = r.live.Load() {
			}
			var ko, kr packed
			readKey(r, Original, &ko)
			readKey(r, Reply, &kr)
			hOrig, hReply := hash(&ko, &t.seed), hash(&kr, &t.seed)
			t.clearSlot(hOrig, slotWord(hOrig, idx, Original))
			t.clearSlot(hReply, slotWord(hReply, idx, Reply))
			sh := &t.shards[t.shardOf(hOrig)]
			sh.n--
			sh.ctr[ctrDeleted]++
			t.push(sh, idx)
			held.unlock(t)
			return true
		}
		held.unlock(t) // the connection changed meanwhile: start over
	}
}

// Range calls fn with the tuples of every connection live at now (as
// packets of each direction arrive), until fn returns false: for the
// control plane, for example to find the connections translated to a
// backend that is gone. It takes no lock and does not stop writers; a
// connection inserted or removed during the walk may or may not be seen,
// any other is seen once.
func (t *Table) Range(now Time, fn func(orig, reply Key) bool) {
	var po, pr packed
	for i := range t.recs {
		r := &t.recs[i]
		live := r.live.Load()
		if live&usedBit == 0 || t.expired(live, now) {
			continue
		}
		readKey(r, Original, &po)
		readKey(r, Reply, &pr)
		if !sameConn(r.live.Load(), live) {
			continue
		}
		if !fn(po.unpack(), pr.unpack()) {
			return
		}
	}
}

// Sweep examines the next budget records (at most Capacity) in a circular
// scan and removes the connections expired at now, returning how many. A
// full pass costs Capacity record reads; call it from a background
// goroutine often enough that a pass takes about the shortest timeout. It
// takes only the locks of the connections it removes, two at a time; it
// never stops the workers. It does not allocate.
func (t *Table) Sweep(now Time, budget int) (expired int) {
	n := uint64(len(t.recs))
	k := uint64(min(max(budget, 0), len(t.recs)))
	i := (t.sweepAt.Add(k) - k) % n
	used := uint64(0) // records in use, since the call began or the pass ended
	for range k {
		if live := t.recs[i].live.Load(); live&usedBit != 0 {
			used++
			if t.expired(live, now) && t.take(uint32(i), nil, now, whyExpired, false) == takeOK {
				expired++
				used--
			}
		}
		if i++; i == n {
			i = 0
			t.large.Store(t.sweepUsed.Swap(0)+used > largeConns) // a pass ended
			used = 0
		}
	}
	t.sweepUsed.Add(used)
	return expired
}
