package conntrack

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// The reference model: a Go map from tuple to connection, explicit
// timestamps, a readable TCP state machine, and no concurrency. Where the
// table has freedom (which connection to evict, which records a partial
// Sweep reaches), the driver learns the table's choice through the removed
// hook and checks that the model allows it.

type mconn struct {
	orig, reply Key
	label       uint32
	state       State
	fin         [2]bool
	last        Time
	idx, gen    uint32 // the table's record and generation, to tell whether it is still there
}

type model struct {
	capacity int
	to       Timeouts
	byIdx    map[uint32]*mconn
	keys     map[Key]*mconn
	stats    Stats
}

func newModel(capacity int, to Timeouts) *model {
	d := DefaultTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{
		{&to.TCPSynSent, &d.TCPSynSent}, {&to.TCPSynRecv, &d.TCPSynRecv},
		{&to.TCPEstablished, &d.TCPEstablished}, {&to.TCPFinWait, &d.TCPFinWait},
		{&to.TCPTimeWait, &d.TCPTimeWait}, {&to.TCPClose, &d.TCPClose},
		{&to.UDP, &d.UDP}, {&to.UDPStream, &d.UDPStream}, {&to.ICMP, &d.ICMP}, {&to.Other, &d.Other},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return &model{capacity: capacity, to: to, byIdx: map[uint32]*mconn{}, keys: map[Key]*mconn{}}
}

// timeout is the idle time the connection may have, in seconds.
func (m *model) timeout(c *mconn) int64 {
	var d time.Duration
	switch c.orig.Proto {
	case ProtoTCP:
		switch c.state {
		case StateNew, StateSynSent:
			d = m.to.TCPSynSent
		case StateSynRecv:
			d = m.to.TCPSynRecv
		case StateEstablished:
			d = m.to.TCPEstablished
		case StateFinWait:
			d = m.to.TCPFinWait
		case StateTimeWait:
			d = m.to.TCPTimeWait
		case StateClosed:
			d = m.to.TCPClose
		}
	case ProtoUDP:
		d = m.to.UDP
		if c.state == StateReplied {
			d = m.to.UDPStream
		}
	case ProtoICMP, ProtoICMPv6:
		d = m.to.ICMP
	default:
		d = m.to.Other
	}
	return int64(d / time.Second)
}

// idle is how long the connection has been idle at now; a last-seen time
// ahead of now counts as 0.
func idle(c *mconn, now Time) int64 {
	diff := int64(now) - int64(c.last)
	// The clock wraps at 2^32: take the difference modulo 2^32, signed.
	if diff > 1<<31 {
		diff -= 1 << 32
	} else if diff < -(1 << 31) {
		diff += 1 << 32
	}
	return max(diff, 0)
}

func (m *model) expired(c *mconn, now Time) bool    { return idle(c, now) > m.timeout(c) }
func (m *model) remaining(c *mconn, now Time) int64 { return m.timeout(c) - idle(c, now) }

func (m *model) lookup(k Key, now Time) (*mconn, Dir, bool) {
	c := m.keys[k]
	if c == nil || m.expired(c, now) {
		return nil, 0, false
	}
	if k == c.orig {
		return c, Original, true
	}
	return c, Reply, true
}

func (m *model) add(c *mconn) {
	m.byIdx[c.idx] = c
	m.keys[c.orig] = c
	m.keys[c.reply] = c
}

func (m *model) remove(c *mconn) {
	delete(m.byIdx, c.idx)
	delete(m.keys, c.orig)
	delete(m.keys, c.reply)
}

// packet applies a packet in direction d with TCP flags f at now.
func (m *model) packet(c *mconn, d Dir, f uint8, now Time) {
	if int32(now-c.last) > 0 {
		c.last = now
	}
	if c.orig.Proto != ProtoTCP {
		if d == Reply && c.state == StateNew {
			c.state = StateReplied
		}
		return
	}
	syn, ack, fin, rst := f&TCPFlagSYN != 0, f&TCPFlagACK != 0, f&TCPFlagFIN != 0, f&TCPFlagRST != 0
	switch {
	case rst:
		c.state = StateClosed
	case syn && !ack:
		if d == Original {
			switch c.state {
			case StateNew, StateSynSent, StateTimeWait, StateClosed:
				c.state, c.fin = StateSynSent, [2]bool{}
			}
		}
	case syn && ack:
		if d == Reply && (c.state == StateSynSent || c.state == StateSynRecv) {
			c.state = StateSynRecv
		}
	case fin:
		if c.state == StateTimeWait || c.state == StateClosed {
			return
		}
		c.fin[d] = true
		c.state = StateFinWait
		if c.fin[Original] && c.fin[Reply] {
			c.state = StateTimeWait
		}
	case c.state == StateNew:
		c.state = StateEstablished
	case c.state == StateSynRecv && d == Original && ack:
		c.state = StateEstablished
	}
}

// view is what a Lookup shows of a connection.
type view struct {
	Orig, Reply Key
	Dir         Dir
	State       State
	LastSeen    Time
	Label       uint32
}

func viewOf(c Conn) view {
	return view{c.Orig(), c.Reply(), c.Dir, c.State, c.LastSeen, c.Label}
}

func (c *mconn) view(d Dir) view {
	return view{c.orig, c.reply, d, c.state, c.last, c.label}
}

var keyString = gocmp.Transformer("key", func(k Key) string { return k.String() })

// Test universe: few addresses and ports, so tuples repeat, reply tuples
// collide with other connections' tuples, and NAT creates conflicts.
var (
	uAddrs = []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("fd00::1"), netip.MustParseAddr("10.96.0.10"),
	}
	uPorts  = []uint16{80, 1000}
	uProtos = []uint8{ProtoTCP, ProtoUDP, ProtoICMP, 47}
	uFlags  = []uint8{TCPFlagSYN, TCPFlagSYN | TCPFlagACK, TCPFlagACK, TCPFlagFIN | TCPFlagACK,
		TCPFlagRST, TCPFlagRST | TCPFlagACK, 0x18, 0, TCPFlagFIN, TCPFlagSYN | TCPFlagFIN}
	uMasq = netip.MustParseAddr("192.168.0.1").As16()
	uPod  = netip.MustParseAddr("10.0.0.2").As16()
)

var testTimeouts = Timeouts{
	TCPSynSent: 5 * time.Second, TCPSynRecv: 4 * time.Second, TCPEstablished: 30 * time.Second,
	TCPFinWait: 3 * time.Second, TCPTimeWait: 2 * time.Second, TCPClose: time.Second,
	UDP: 3 * time.Second, UDPStream: 10 * time.Second, ICMP: 4 * time.Second, Other: 6 * time.Second,
}

var testSeed = [keyWords]uint64{0x243f6a8885a308d3, 0x13198a2e03707345, 0xa4093822299f31d1, 0x082efa98ec4e6c89, 0x452821e638d01377}

// handle is a Conn the driver got, and the model connection it was for.
type handle struct {
	c Conn
	m *mconn
}

type event struct {
	idx uint32
	why int
}

// driver runs operations decoded from bytes on a table and the model.
type driver struct {
	tb      testing.TB
	tab     *Table
	m       *model
	now     Time
	data    []byte
	handles []handle
	events  []event
	history []string
}

func (d *driver) byte() byte {
	if len(d.data) == 0 {
		return 0
	}
	b := d.data[0]
	d.data = d.data[1:]
	return b
}

func (d *driver) fatalf(format string, args ...any) {
	d.tb.Helper()
	h := d.history
	if len(h) > 30 {
		h = h[len(h)-30:]
	}
	d.tb.Fatalf("after:\n  %s\n"+format, append([]any{strings.Join(h, "\n  ")}, args...)...)
}

func (d *driver) logf(format string, args ...any) {
	d.history = append(d.history, fmt.Sprintf("t=%d ", d.now)+fmt.Sprintf(format, args...))
}

func newDriver(tb testing.TB, data []byte) *driver {
	d := &driver{tb: tb, data: data}
	capacity := 1 + int(d.byte()%48)
	nb := 0
	switch d.byte() % 3 {
	case 1:
		nb = 2 // one bucket pair: constant window pressure
	case 2:
		nb = 4
	}
	d.now = 1000
	fc := 0
	switch b := d.byte(); {
	case b%4 == 0:
		d.now = ^Time(0) - 20 // the clock wraps during the run
	case b%4 == 1:
		fc = 2 + int(b/4%3) // shards cache free records
	}
	tab, err := newTable(Config{Capacity: capacity, Timeouts: testTimeouts}, testSeed, nb, fc)
	if err != nil {
		tb.Fatal(err)
	}
	tab.removed = func(idx uint32, why int) { d.events = append(d.events, event{idx, why}) }
	d.tab, d.m = tab, newModel(capacity, testTimeouts)
	d.logf("new capacity=%d buckets=%d shards=%d cache=%d", capacity, len(tab.buckets), len(tab.shards), fc)
	return d
}

func (d *driver) key() Key {
	a, b := d.byte(), d.byte()
	src, dst := uAddrs[a%4], uAddrs[a/4%4]
	proto := uProtos[b%4]
	p1, p2 := uPorts[b/4%2], uPorts[b/8%2]
	if proto == ProtoICMP {
		if src.Is6() && dst.Is6() {
			proto = ProtoICMPv6
		}
		return EchoKey(src, dst, p1, proto)
	}
	return KeyFrom(src, dst, p1, p2, proto)
}

func (d *driver) nat() NAT {
	b := d.byte()
	var n NAT
	if b&1 != 0 { // DNAT, as to a Service backend
		n.Dst, n.DstPort = uPod, 8080
	}
	if b&2 != 0 { // SNAT, as egress masquerade
		n.Src, n.SrcPort = uMasq, 2000+uint16(b>>2)%3
	}
	return n
}

func (d *driver) run() {
	for len(d.data) > 0 {
		switch d.byte() % 14 {
		case 0, 1, 2:
			d.insert(d.key(), d.nat(), uint32(d.byte()))
		case 3, 4:
			d.lookup(d.key(), d.byte())
		case 5:
			d.lookupKnown(d.byte(), d.byte())
		case 6:
			d.updateHandle(d.byte(), d.byte())
		case 7:
			d.delete(d.key())
		case 8:
			d.advance(d.byte())
		case 9:
			d.sweep(d.byte())
		case 10:
			d.setLabel(d.byte(), uint32(d.byte()))
		case 11:
			d.checkAll()
		case 12:
			d.lookupBatch(d.byte(), d.byte())
		case 13:
			d.refreshHandle(d.byte())
		}
		d.checkLight()
	}
	d.checkAll()
	d.sweep(255)
	d.advance(255)
	d.sweep(255)
	d.checkAll()
}

func (d *driver) remember(c Conn, m *mconn) {
	d.handles = append(d.handles, handle{c, m})
	if len(d.handles) > 16 {
		d.handles = d.handles[1:]
	}
}

// present reports whether model connection c is still in the table.
func (d *driver) present(c *mconn) bool {
	live := d.tab.recs[c.idx].live.Load()
	return live&usedBit != 0 && uint32(live>>genShift) == c.gen
}

func (d *driver) pairOf(k Key) uint64 {
	p := k.pack()
	return (hash(&p, &d.tab.seed) & d.tab.bmask) >> 1
}

// applyEvent applies a removal the table reported, checking it against
// the model: ev.why says what the table claimed, ok(c) whether the model
// allows it.
func (d *driver) applyEvent(ev event, what string, ok func(c *mconn) error) {
	d.tb.Helper()
	c := d.m.byIdx[ev.idx]
	if c == nil {
		d.fatalf("%s: table removed record %d, which the model does not have", what, ev.idx)
	}
	if err := ok(c); err != nil {
		d.fatalf("%s: removing %v (why %d): %v", what, c.orig, ev.why, err)
	}
	switch {
	case d.m.expired(c, d.now):
		d.m.stats.Expired++
	case ev.why == whyFull:
		d.m.stats.EvictedFull++
	default:
		d.m.stats.EvictedWindow++
	}
	d.m.remove(c)
}

func (d *driver) insert(orig Key, nat NAT, label uint32) {
	d.logf("insert %v nat=%v label=%d", orig, nat.Apply(orig), label)
	m := d.m
	reply := nat.Apply(orig).Reverse()
	d.events = d.events[:0]
	got, res := d.tab.Insert(orig, nat, label, d.now)

	want := Inserted
	var existing *mconn
	var existingDir Dir
	if reply == orig {
		want = Invalid
	}
	evs := d.events
	next := func() (event, bool) {
		if len(evs) == 0 {
			return event{}, false
		}
		ev := evs[0]
		evs = evs[1:]
		return ev, true
	}
	// Tuples held by expired connections give way, original first.
	for _, k := range []Key{orig, reply} {
		if want != Inserted {
			break
		}
		c := m.keys[k]
		if c == nil {
			continue
		}
		if !m.expired(c, d.now) {
			if k == orig {
				want, existing = Exists, c
				existingDir = Original
				if orig != c.orig {
					existingDir = Reply
				}
			} else {
				want = Conflict
			}
			break
		}
		ev, ok := next()
		if !ok || ev.idx != c.idx || ev.why != whyExpired {
			d.fatalf("insert: expected expired %v to give way, got event %v (%v)", c.orig, ev, ok)
		}
		d.applyEvent(ev, "insert", func(*mconn) error { return nil })
	}
	if res != want {
		d.fatalf("Insert(%v) = %v, want %v", orig, res, want)
	}
	if want != Inserted {
		if len(evs) > 0 {
			d.fatalf("Insert(%v) = %v but removed more: %v", orig, res, evs)
		}
		if want == Exists {
			if diff := gocmp.Diff(existing.view(existingDir), viewOf(got), keyString); diff != "" {
				d.fatalf("Insert(%v) Exists conn (-want +got):\n%s", orig, diff)
			}
			d.remember(got, existing)
		}
		m.stats.Exists += b2u(want == Exists)
		m.stats.Conflicts += b2u(want == Conflict)
		m.stats.Invalid += b2u(want == Invalid)
		return
	}

	// Room: evictions from full bucket pairs, then from a full table.
	need := map[uint64]int{}
	need[d.pairOf(orig)]++
	need[d.pairOf(reply)]++
	occ := func(p uint64) int {
		n := 0
		for _, c := range m.byIdx {
			n += int(b2u(d.pairOf(c.orig) == p) + b2u(d.pairOf(c.reply) == p))
		}
		return n
	}
	const pairSlots = 2 * (bucketWords - 1)
	for ev, ok := next(); ok; ev, ok = next() {
		switch ev.why {
		case whyWindow:
			// The victim must be in a full pair of a new key, and no
			// other connection there closer to expiry.
			d.applyEvent(ev, "insert", func(c *mconn) error {
				err := fmt.Errorf("not in a full bucket pair")
			pairs:
				for p, n := range need {
					if d.pairOf(c.orig) != p && d.pairOf(c.reply) != p || occ(p)+n <= pairSlots {
						continue
					}
					for _, x := range m.byIdx {
						if (d.pairOf(x.orig) == p || d.pairOf(x.reply) == p) && m.remaining(x, d.now) < m.remaining(c, d.now) {
							err = fmt.Errorf("%v has less time left", x.orig)
							continue pairs
						}
					}
					return nil
				}
				return err
			})
		case whyFull:
			d.applyEvent(ev, "insert", func(c *mconn) error {
				if len(m.byIdx) != m.capacity {
					return fmt.Errorf("table not full: %d of %d", len(m.byIdx), m.capacity)
				}
				return nil
			})
		default:
			d.fatalf("insert: unexpected removal %v", ev)
		}
	}
	for p, n := range need {
		if occ(p)+n > pairSlots {
			d.fatalf("insert: bucket pair %d over full: %d + %d", p, occ(p), n)
		}
	}
	if len(m.byIdx) >= m.capacity {
		d.fatalf("insert: table full (%d) and nothing evicted", len(m.byIdx))
	}
	c := &mconn{orig: orig, reply: reply, label: label, state: StateNew, last: d.now, idx: got.idx, gen: got.gen}
	if other := m.byIdx[c.idx]; other != nil {
		d.fatalf("insert: record %d reused while the model holds %v there", c.idx, other.orig)
	}
	m.add(c)
	m.stats.Inserted++
	if diff := gocmp.Diff(c.view(Original), viewOf(got), keyString); diff != "" {
		d.fatalf("Insert(%v) conn (-want +got):\n%s", orig, diff)
	}
	d.remember(got, c)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// lookup looks k up and, unless f%4 == 0, updates the connection with
// flags from f. Both use a clock f>>6 seconds behind, like a worker whose
// batch started earlier.
func (d *driver) lookup(k Key, f byte) {
	at := d.now - Time(f>>6)
	d.logf("lookup %v flags %#x at %d", k, f, at)
	got, gok := d.tab.Lookup(k, at)
	c, dir, wok := d.m.lookup(k, at)
	if gok != wok {
		d.fatalf("Lookup(%v) ok = %v, want %v", k, gok, wok)
	}
	if !wok {
		return
	}
	if diff := gocmp.Diff(c.view(dir), viewOf(got), keyString); diff != "" {
		d.fatalf("Lookup(%v) (-want +got):\n%s", k, diff)
	}
	if got.Key() != k {
		d.fatalf("Lookup(%v).Key() = %v", k, got.Key())
	}
	d.remember(got, c)
	if f%4 == 0 {
		return // look, don't touch
	}
	flags := uFlags[int(f)%len(uFlags)]
	d.logf("  update %v flags %#x", got.Dir, flags)
	if !d.tab.Update(&got, flags, at) {
		d.fatalf("Update after Lookup(%v) failed", k)
	}
	d.m.packet(c, dir, flags, at)
	if diff := gocmp.Diff(c.view(dir), viewOf(got), keyString); diff != "" {
		d.fatalf("Update(%v, %#x) (-want +got):\n%s", k, flags, diff)
	}
}

// lookupBatch looks up n keys at once, tuples of the model's connections
// and random ones mixed, in batches of lengths around the pipeline's
// distances.
func (d *driver) lookupBatch(n, lag byte) {
	at := d.now - Time(lag>>6)
	known := make([]Key, 0, len(d.m.keys))
	for k := range d.m.keys {
		known = append(known, k)
	}
	keys := make([]Key, int(n)%100)
	for i := range keys {
		if len(known) > 0 && d.byte()%2 == 0 {
			keys[i] = known[int(d.byte())%len(known)] // map order: fine, nothing depends on it
		} else {
			keys[i] = d.key()
		}
	}
	d.logf("lookup batch of %d at %d", len(keys), at)
	conns, found := make([]Conn, len(keys)), make([]bool, len(keys))
	hits := d.tab.LookupBatch(keys, at, conns, found)
	want := 0
	for i, k := range keys {
		c, dir, ok := d.m.lookup(k, at)
		if found[i] != ok {
			d.fatalf("LookupBatch: key %d %v found %v, want %v", i, k, found[i], ok)
		}
		if !ok {
			continue
		}
		want++
		if diff := gocmp.Diff(c.view(dir), viewOf(conns[i]), keyString); diff != "" {
			d.fatalf("LookupBatch: key %d %v (-want +got):\n%s", i, k, diff)
		}
	}
	if hits != want {
		d.fatalf("LookupBatch = %d hits, want %d", hits, want)
	}
}

// lookupKnown looks up a tuple of a connection the model has.
func (d *driver) lookupKnown(i, f byte) {
	if len(d.m.keys) == 0 {
		return
	}
	keys := make([]Key, 0, len(d.m.keys))
	for k := range d.m.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys) // map order is random; runs must repeat
	d.lookup(keys[int(i)%len(keys)], f)
}

func compareKeys(a, b Key) int {
	return cmp.Or(bytes.Compare(a.Src[:], b.Src[:]), bytes.Compare(a.Dst[:], b.Dst[:]),
		cmp.Compare(a.SrcPort, b.SrcPort), cmp.Compare(a.DstPort, b.DstPort), cmp.Compare(a.Proto, b.Proto))
}

// updateHandle updates a connection through a possibly stale handle.
func (d *driver) updateHandle(i, f byte) {
	if len(d.handles) == 0 {
		return
	}
	hd := d.handles[int(i)%len(d.handles)]
	h, c := hd.c, hd.m
	flags := uFlags[int(f)%len(uFlags)]
	at := d.now - Time(f>>6)
	d.logf("update handle %v %v flags %#x at %d", h.Key(), h.Dir, flags, at)
	want := d.m.byIdx[c.idx] == c // the very connection is still there
	if got := d.tab.Update(&h, flags, at); got != want {
		d.fatalf("Update(handle %v gen %d) = %v, want %v", h.Key(), h.gen, got, want)
	}
	if want {
		d.m.packet(c, h.Dir, flags, at)
		if h.State != c.state || h.LastSeen != c.last {
			d.fatalf("Update(handle %v) = %v at %d, want %v at %d", h.Key(), h.State, h.LastSeen, c.state, c.last)
		}
	}
}

// refreshHandle refreshes a possibly stale handle: it must succeed, with
// the model's state, exactly when the very connection is still there and
// not expired.
func (d *driver) refreshHandle(i byte) {
	if len(d.handles) == 0 {
		return
	}
	hd := d.handles[int(i)%len(d.handles)]
	h, c := hd.c, hd.m
	d.logf("refresh handle %v %v", h.Key(), h.Dir)
	want := d.m.byIdx[c.idx] == c && !d.m.expired(c, d.now)
	if got := d.tab.Refresh(&h, d.now); got != want {
		d.fatalf("Refresh(handle %v gen %d) = %v, want %v", h.Key(), h.gen, got, want)
	}
	if want {
		if diff := gocmp.Diff(c.view(h.Dir), viewOf(h), keyString); diff != "" {
			d.fatalf("Refresh(handle %v) (-want +got):\n%s", h.Key(), diff)
		}
	}
}

func (d *driver) setLabel(i byte, label uint32) {
	if len(d.handles) == 0 {
		return
	}
	hd := d.handles[int(i)%len(d.handles)]
	h, c := hd.c, hd.m
	d.logf("set label %v %d", h.Key(), label)
	want := d.m.byIdx[c.idx] == c
	if got := d.tab.SetLabel(&h, label); got != want {
		d.fatalf("SetLabel(handle %v gen %d) = %v, want %v", h.Key(), h.gen, got, want)
	}
	if want {
		c.label = label
	}
}

func (d *driver) delete(k Key) {
	d.logf("delete %v", k)
	c := d.m.keys[k]
	if got := d.tab.Delete(k); got != (c != nil) {
		d.fatalf("Delete(%v) = %v, want %v", k, got, c != nil)
	}
	if c != nil {
		d.m.remove(c)
		d.m.stats.Deleted++
	}
}

func (d *driver) advance(b byte) {
	dt := Time(b % 6)
	if b >= 250 {
		dt = 100
	}
	d.now += dt
	d.logf("advance %d", dt)
}

func (d *driver) sweep(b byte) {
	budget := int(b) % (d.m.capacity + 2)
	if b == 255 {
		budget = d.m.capacity
	}
	d.logf("sweep %d", budget)
	d.events = d.events[:0]
	n := d.tab.Sweep(d.now, budget)
	if n != len(d.events) {
		d.fatalf("Sweep = %d, reported %d removals", n, len(d.events))
	}
	for _, ev := range d.events {
		d.applyEvent(ev, "sweep", func(c *mconn) error {
			if ev.why != whyExpired || !d.m.expired(c, d.now) {
				return fmt.Errorf("not expired: idle %d of %d", idle(c, d.now), d.m.timeout(c))
			}
			return nil
		})
	}
	if budget >= d.m.capacity {
		for _, c := range d.m.byIdx {
			if d.m.expired(c, d.now) {
				d.fatalf("full Sweep left expired %v", c.orig)
			}
		}
	}
}

func (d *driver) checkLight() {
	d.tb.Helper()
	if got, want := d.tab.Len(), len(d.m.byIdx); got != want {
		d.fatalf("Len = %d, want %d", got, want)
	}
	if diff := gocmp.Diff(d.m.stats, d.tab.Stats()); diff != "" {
		d.fatalf("Stats (-want +got):\n%s", diff)
	}
}

// checkAll compares every connection and the table's internal invariants.
func (d *driver) checkAll() {
	d.tb.Helper()
	for _, c := range d.m.byIdx {
		if !d.present(c) {
			d.fatalf("table lost %v", c.orig)
		}
		for _, k := range []Key{c.orig, c.reply} {
			got, gok := d.tab.Lookup(k, d.now)
			want, dir, wok := d.m.lookup(k, d.now)
			if gok != wok {
				d.fatalf("Lookup(%v) ok = %v, want %v", k, gok, wok)
			}
			if wok {
				if diff := gocmp.Diff(want.view(dir), viewOf(got), keyString); diff != "" {
					d.fatalf("Lookup(%v) (-want +got):\n%s", k, diff)
				}
			}
		}
	}
	if err := d.tab.check(); err != nil {
		d.fatalf("invariants: %v", err)
	}
}

// check verifies the table's internal invariants. The table must be
// quiescent.
func (t *Table) check() error {
	type place struct {
		b uint64
		i int
	}
	slots := map[uint32]place{}
	spill := make([]uint32, len(t.buckets))
	for b := range t.buckets {
		for i := 1; i < bucketWords; i++ {
			if s := t.buckets[b][i].Load(); s != 0 {
				if _, dup := slots[s]; dup {
					return fmt.Errorf("slot word %#x twice", s)
				}
				slots[s] = place{uint64(b), i}
			}
		}
	}
	keys := map[packed]uint32{}
	perShard := make([]int64, len(t.shards))
	used := 0
	for idx := range t.recs {
		r := &t.recs[idx]
		if r.live.Load()&usedBit == 0 {
			continue
		}
		used++
		for d := range Dir(2) {
			var p packed
			readKey(r, d, &p)
			if other, dup := keys[p]; dup {
				return fmt.Errorf("key %v in records %d and %d", p.unpack(), other, idx)
			}
			keys[p] = uint32(idx)
			h := hash(&p, &t.seed)
			w := slotWord(h, uint32(idx), d)
			pl, ok := slots[w]
			if !ok {
				return fmt.Errorf("record %d %v key %v has no slot", idx, d, p.unpack())
			}
			delete(slots, w)
			home := h & t.bmask
			switch pl.b {
			case home:
			case home ^ 1:
				spill[home]++
			default:
				return fmt.Errorf("key %v in bucket %d, home %d", p.unpack(), pl.b, home)
			}
			if d == Original {
				perShard[t.shardOf(h)]++
			}
		}
	}
	for w, pl := range slots {
		return fmt.Errorf("slot %#x in bucket %d[%d] points at no live record", w, pl.b, pl.i)
	}
	for b := range t.buckets {
		if got := t.buckets[b][0].Load(); got != spill[b] {
			return fmt.Errorf("bucket %d spill count %d, want %d", b, got, spill[b])
		}
	}
	free := map[uint32]bool{}
	addFree := func(where string, idxs []uint32) error {
		for _, idx := range idxs {
			if free[idx] || t.recs[idx].live.Load()&usedBit != 0 {
				return fmt.Errorf("%s: record %d twice or in use", where, idx)
			}
			free[idx] = true
		}
		return nil
	}
	for s := range t.shards {
		if got := t.shards[s].n; got != int(perShard[s]) {
			return fmt.Errorf("shard %d count %d, want %d", s, got, perShard[s])
		}
		if len(t.shards[s].free) > t.freeCache {
			return fmt.Errorf("shard %d caches %d free records, more than %d", s, len(t.shards[s].free), t.freeCache)
		}
		if err := addFree(fmt.Sprint("shard ", s), t.shards[s].free); err != nil {
			return err
		}
	}
	if err := addFree("free list", t.alloc.free); err != nil {
		return err
	}
	nonEmpty := 0
	for s := range t.shards {
		if len(t.shards[s].free) > 0 {
			nonEmpty++
		}
	}
	if got := int(t.cached.Load()); got != nonEmpty {
		return fmt.Errorf("%d shards counted with cached free records, %d have some", got, nonEmpty)
	}
	if len(free)+used != len(t.recs) {
		return fmt.Errorf("%d free + %d used != capacity %d", len(free), used, len(t.recs))
	}
	return nil
}

// TestAgainstModel runs random operation sequences on small tables, with
// full, nearly full and one-pair bucket arrays, against the model.
func TestAgainstModel(t *testing.T) {
	randomRounds(t, 7, 11, 3000, func(t *testing.T, data []byte) { newDriver(t, data).run() })
}

// randomRounds runs 300 subtests (30 with -short), each on size random
// bytes from a generator seeded with a and b.
func randomRounds(t *testing.T, a, b uint64, size int, run func(*testing.T, []byte)) {
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	r := rand.New(rand.NewPCG(a, b))
	for round := range rounds {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		t.Run(fmt.Sprint(round), func(t *testing.T) { run(t, data) })
	}
}

// FuzzTable drives the table and the model from the fuzzer's bytes.
func FuzzTable(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 1, 1, 0, 1, 2, 3, 4, 3, 1, 2, 9, 8, 255, 9, 255})
	r := rand.New(rand.NewPCG(1, 1))
	for range 8 {
		b := make([]byte, 400)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		newDriver(t, data).run()
	})
}
