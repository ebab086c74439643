package conntrack

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustNew(tb testing.TB, cfg Config) *Table {
	tb.Helper()
	t, err := newTable(cfg, testSeed, 0, -1)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

var (
	podA = netip.MustParseAddr("10.244.1.5")
	podB = netip.MustParseAddr("10.244.2.7")
	vip  = netip.MustParseAddr("10.96.0.10")
	node = netip.MustParseAddr("192.168.1.10")
	ext  = netip.MustParseAddr("203.0.113.9")
	pod6 = netip.MustParseAddr("fd00:10:244:1::5")
	vip6 = netip.MustParseAddr("fd00:10:96::a")
)

// TestLayout pins the sizes the package doc promises.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"record", reflect.TypeFor[record]().Size(), 128},
		{"bucket", reflect.TypeFor[bucket]().Size(), 64},
		{"Key", reflect.TypeFor[Key]().Size(), 38},
		{"shard", reflect.TypeFor[shard]().Size(), 128},
	} {
		if c.got != c.want {
			t.Errorf("size of %s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if MaxCapacity > idxBits {
		t.Errorf("MaxCapacity %d does not fit a slot's index", MaxCapacity)
	}
	for _, c := range []int{0, -1, MaxCapacity + 1} {
		if _, err := New(Config{Capacity: c}); err == nil {
			t.Errorf("New(Capacity %d) succeeded", c)
		}
	}
	tab, err := New(Config{Capacity: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Capacity() != 1 || tab.Len() != 0 || tab.Bytes() <= 0 {
		t.Errorf("Capacity %d Len %d Bytes %d", tab.Capacity(), tab.Len(), tab.Bytes())
	}
}

func TestKeyPacking(t *testing.T) {
	for _, k := range []Key{
		KeyFrom(podA, vip, 40000, 53, ProtoUDP),
		KeyFrom(pod6, vip6, 1, 65535, ProtoTCP),
		KeyFrom(podA, vip6, 7, 8, ProtoTCP), // mixed families: packed as IPv6
		EchoKey(podA, podB, 99, ProtoICMP),
		{},
	} {
		p := k.pack()
		if got := p.unpack(); got != k {
			t.Errorf("unpack(pack(%v)) = %v", k, got)
		}
		if n := wordsFor(p.w[0]); n != p.n {
			t.Errorf("%v: wordsFor = %d, packed %d", k, n, p.n)
		}
	}
	if k := EchoKey(podA, podB, 99, ProtoICMP); k.Reverse() != EchoKey(podB, podA, 99, ProtoICMP) {
		t.Errorf("echo key %v reversed is not the reply's key", k)
	}
}

// TestServiceDNATAndMasquerade follows a connection to a Service VIP
// translated to a backend pod, and an egress connection masqueraded to the
// node address.
func TestServiceDNATAndMasquerade(t *testing.T) {
	tab := mustNew(t, Config{Capacity: 16})
	now := Time(100)

	// podA -> VIP:80, DNAT to podB:8080.
	orig := KeyFrom(podA, vip, 40000, 80, ProtoTCP)
	dnat := NAT{Dst: podB.As16(), DstPort: 8080}
	c, res := tab.Insert(orig, dnat, 7, now)
	if res != Inserted {
		t.Fatalf("Insert = %v", res)
	}
	wantReply := KeyFrom(podB, podA, 8080, 40000, ProtoTCP)
	if c.Reply() != wantReply || !c.NATed() {
		t.Fatalf("Reply = %v, want %v", c.Reply(), wantReply)
	}
	if got, want := c.Out(), KeyFrom(podA, podB, 40000, 8080, ProtoTCP); got != want {
		t.Errorf("Out (original) = %v, want %v", got, want)
	}
	if diff := cmp.Diff(dnat, c.NAT()); diff != "" {
		t.Errorf("NAT (original) (-want +got):\n%s", diff)
	}
	// The backend's answer is found in the reply direction and goes back
	// from the VIP.
	r, ok := tab.Lookup(wantReply, now)
	if !ok || r.Dir != Reply || r.Label != 7 {
		t.Fatalf("Lookup(reply) = %+v, %v", r, ok)
	}
	if got, want := r.Out(), KeyFrom(vip, podA, 80, 40000, ProtoTCP); got != want {
		t.Errorf("Out (reply) = %v, want %v", got, want)
	}
	if diff := cmp.Diff(NAT{Src: vip.As16(), SrcPort: 80}, r.NAT()); diff != "" {
		t.Errorf("NAT (reply) (-want +got):\n%s", diff)
	}

	// podA -> external, SNAT to the node's address and port 61000.
	orig = KeyFrom(podA, ext, 40001, 443, ProtoTCP)
	if _, res := tab.Insert(orig, NAT{Src: node.As16(), SrcPort: 61000}, 0, now); res != Inserted {
		t.Fatalf("Insert = %v", res)
	}
	r, ok = tab.Lookup(KeyFrom(ext, node, 443, 61000, ProtoTCP), now)
	if !ok || r.Dir != Reply || r.Orig() != orig {
		t.Fatalf("Lookup(masqueraded reply) = %+v, %v", r, ok)
	}
	if got, want := r.Out(), KeyFrom(ext, podA, 443, 40001, ProtoTCP); got != want {
		t.Errorf("Out (masqueraded reply) = %v, want %v", got, want)
	}
	// Another pod may not take the same masquerade port towards the same
	// peer: its reply tuple would be the same.
	if _, res := tab.Insert(KeyFrom(podB, ext, 40001, 443, ProtoTCP), NAT{Src: node.As16(), SrcPort: 61000}, 0, now); res != Conflict {
		t.Errorf("Insert with a taken masquerade port = %v, want %v", res, Conflict)
	}
	// Both sides of a UDP flow starting at once: the second insert finds
	// the first connection, in the reply direction.
	u := KeyFrom(podA, podB, 5000, 5001, ProtoUDP)
	if _, res := tab.Insert(u, NAT{}, 0, now); res != Inserted {
		t.Fatalf("Insert = %v", res)
	}
	if c, res := tab.Insert(u.Reverse(), NAT{}, 0, now); res != Exists || c.Dir != Reply || c.Orig() != u {
		t.Errorf("Insert(reverse) = %+v, %v; want the first connection, Reply, Exists", c, res)
	}
	// A packet to itself on the same port has the same tuple both ways.
	self := KeyFrom(podA, podA, 9, 9, ProtoUDP)
	if _, res := tab.Insert(self, NAT{}, 0, now); res != Invalid {
		t.Errorf("Insert(self) = %v, want %v", res, Invalid)
	}
	want := Stats{Inserted: 3, Exists: 1, Conflicts: 1, Invalid: 1}
	if diff := cmp.Diff(want, tab.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

type pkt struct {
	dir   Dir
	flags uint8
}

// TestTCPStates walks connections through the state machine.
func TestTCPStates(t *testing.T) {
	const (
		syn    = TCPFlagSYN
		synack = TCPFlagSYN | TCPFlagACK
		ack    = TCPFlagACK
		finack = TCPFlagFIN | TCPFlagACK
		rst    = TCPFlagRST
	)
	o, r := Original, Reply
	for _, c := range []struct {
		name string
		pkts []pkt
		want []State
	}{
		{"handshake and close", []pkt{{o, syn}, {r, synack}, {o, ack}, {o, 0x18}, {r, finack}, {o, ack}, {o, finack}, {r, ack}},
			[]State{StateSynSent, StateSynRecv, StateEstablished, StateEstablished, StateFinWait, StateFinWait, StateTimeWait, StateTimeWait}},
		{"refused", []pkt{{o, syn}, {r, rst | ack}}, []State{StateSynSent, StateClosed}},
		{"retransmitted syn", []pkt{{o, syn}, {o, syn}, {r, synack}, {r, synack}, {o, ack}},
			[]State{StateSynSent, StateSynSent, StateSynRecv, StateSynRecv, StateEstablished}},
		{"syn-ack from the wrong side", []pkt{{o, syn}, {o, synack}, {r, syn}}, []State{StateSynSent, StateSynSent, StateSynSent}},
		{"picked up mid-stream", []pkt{{r, ack}, {o, 0x18}}, []State{StateEstablished, StateEstablished}},
		{"reopened after close", []pkt{{o, ack}, {o, rst}, {o, syn}, {r, synack}, {o, ack}},
			[]State{StateEstablished, StateClosed, StateSynSent, StateSynRecv, StateEstablished}},
		{"fin after rst ignored", []pkt{{o, syn}, {o, rst}, {r, finack}}, []State{StateSynSent, StateClosed, StateClosed}},
		{"fin from the same side twice", []pkt{{o, ack}, {o, finack}, {o, finack}, {r, finack}},
			[]State{StateEstablished, StateFinWait, StateFinWait, StateTimeWait}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := mustNew(t, Config{Capacity: 4})
			conn, res := tab.Insert(KeyFrom(podA, podB, 1234, 80, ProtoTCP), NAT{}, 0, 1)
			if res != Inserted || conn.State != StateNew {
				t.Fatalf("Insert = %v, %v", res, conn.State)
			}
			var got []State
			for i, p := range c.pkts {
				conn.Dir = p.dir
				if !tab.Update(&conn, p.flags, Time(2+i)) {
					t.Fatalf("Update %d failed", i)
				}
				got = append(got, conn.State)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
		})
	}
	// Other protocols: New until a reply, then Replied.
	tab := mustNew(t, Config{Capacity: 4})
	conn, _ := tab.Insert(KeyFrom(podA, podB, 1234, 53, ProtoUDP), NAT{}, 0, 1)
	tab.Update(&conn, TCPFlagSYN, 2) // flags mean nothing to UDP
	if conn.State != StateNew {
		t.Errorf("UDP after original packet: %v", conn.State)
	}
	conn.Dir = Reply
	tab.Update(&conn, 0, 3)
	if conn.State != StateReplied || conn.LastSeen != 3 {
		t.Errorf("UDP after reply: %v at %d", conn.State, conn.LastSeen)
	}
}

// TestTimeouts checks each timeout at its boundary: a connection idle for
// exactly its timeout is alive, one second more and it is gone.
func TestTimeouts(t *testing.T) {
	def := DefaultTimeouts()
	for _, c := range []struct {
		name  string
		key   Key
		pkts  []pkt
		state State
		d     time.Duration
	}{
		{"tcp new", KeyFrom(podA, podB, 1, 2, ProtoTCP), nil, StateNew, def.TCPSynSent},
		{"tcp syn", KeyFrom(podA, podB, 1, 2, ProtoTCP), []pkt{{Original, TCPFlagSYN}}, StateSynSent, def.TCPSynSent},
		{"tcp syn-ack", KeyFrom(podA, podB, 1, 2, ProtoTCP), []pkt{{Original, TCPFlagSYN}, {Reply, TCPFlagSYN | TCPFlagACK}}, StateSynRecv, def.TCPSynRecv},
		{"tcp established", KeyFrom(podA, podB, 1, 2, ProtoTCP), []pkt{{Original, TCPFlagACK}}, StateEstablished, def.TCPEstablished},
		{"tcp fin", KeyFrom(podA, podB, 1, 2, ProtoTCP), []pkt{{Original, TCPFlagFIN}}, StateFinWait, def.TCPFinWait},
		{"tcp fin both", KeyFrom(podA, podB, 1, 2, ProtoTCP), []pkt{{Original, TCPFlagFIN}, {Reply, TCPFlagFIN}}, StateTimeWait, def.TCPTimeWait},
		{"tcp rst", KeyFrom(podA, podB, 1, 2, ProtoTCP), []pkt{{Original, TCPFlagRST}}, StateClosed, def.TCPClose},
		{"udp", KeyFrom(podA, podB, 1, 2, ProtoUDP), []pkt{{Original, 0}}, StateNew, def.UDP},
		{"udp stream", KeyFrom(podA, podB, 1, 2, ProtoUDP), []pkt{{Reply, 0}}, StateReplied, def.UDPStream},
		{"icmp", EchoKey(podA, podB, 1, ProtoICMP), nil, StateNew, def.ICMP},
		{"icmpv6", EchoKey(pod6, vip6, 1, ProtoICMPv6), []pkt{{Reply, 0}}, StateReplied, def.ICMP},
		{"sctp", KeyFrom(pod6, vip6, 1, 2, 132), nil, StateNew, def.Other},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := mustNew(t, Config{Capacity: 4})
			const t0 = Time(1 << 31) // far from 0, so the clock wraps for long timeouts
			conn, _ := tab.Insert(c.key, NAT{}, 0, t0)
			for _, p := range c.pkts {
				conn.Dir = p.dir
				tab.Update(&conn, p.flags, t0)
			}
			if conn.State != c.state {
				t.Fatalf("state %v, want %v", conn.State, c.state)
			}
			limit := t0 + TimeOf(c.d)
			if _, ok := tab.Lookup(c.key, limit); !ok {
				t.Errorf("gone after %v idle, its timeout", c.d)
			}
			if _, ok := tab.Lookup(c.key.Reverse(), limit+1); ok && c.key.Reverse() != c.key {
				t.Errorf("reply direction alive after %v + 1s idle", c.d)
			}
			if _, ok := tab.Lookup(c.key, limit+1); ok {
				t.Errorf("alive after %v + 1s idle", c.d)
			}
			if n := tab.Sweep(limit, 4); n != 0 {
				t.Errorf("Sweep at the limit removed %d", n)
			}
			if n := tab.Sweep(limit+1, 4); n != 1 || tab.Len() != 0 {
				t.Errorf("Sweep after the limit removed %d, Len %d", n, tab.Len())
			}
		})
	}
	// Configured timeouts replace defaults; sub-second ones round up.
	tab := mustNew(t, Config{Capacity: 4, Timeouts: Timeouts{UDP: 1500 * time.Millisecond}})
	k := KeyFrom(podA, podB, 1, 2, ProtoUDP)
	tab.Insert(k, NAT{}, 0, 10)
	if _, ok := tab.Lookup(k, 12); !ok {
		t.Error("UDP timeout 1.5s: gone after 2s")
	}
	if _, ok := tab.Lookup(k, 13); ok {
		t.Error("UDP timeout 1.5s: alive after 3s")
	}
}

// TestBoundedMemory inserts ten times the capacity: the table stays at its
// capacity, counts every eviction and allocates nothing.
func TestBoundedMemory(t *testing.T) {
	const capacity = 1000
	tab := mustNew(t, Config{Capacity: capacity})
	bytes := tab.Bytes()
	key := func(i int) Key { return KeyFrom(podA, podB, uint16(i), 80, ProtoTCP) }
	next := 0
	// AllocsPerRun runs the function twice: once to warm up, once measured.
	allocs := testing.AllocsPerRun(1, func() {
		for range 10 * capacity {
			if _, res := tab.Insert(key(next), NAT{}, 0, Time(next/100)); res != Inserted {
				t.Fatalf("Insert %d = %v", next, res)
			}
			if tab.Len() > capacity {
				t.Fatalf("Len %d > capacity after %d inserts", tab.Len(), next+1)
			}
			next++
		}
	})
	if allocs != 0 {
		t.Errorf("%d inserts allocated %v times", 10*capacity, allocs)
	}
	s := tab.Stats()
	if tab.Len() != capacity || s.Inserted != uint64(next) || s.EvictedFull+s.EvictedWindow+s.Expired != uint64(next-capacity) {
		t.Errorf("Len %d, Stats %+v; want %d, %d inserted, %d removed", tab.Len(), s, capacity, next, next-capacity)
	}
	// The clock evicts the oldest of its sample: the survivors are recent.
	old := 0
	for i := range next - 2*capacity {
		if _, ok := tab.Lookup(key(i), Time(next/100)); ok {
			old++
		}
	}
	if old > capacity/10 {
		t.Errorf("%d connections older than the last %d inserts survived", old, 2*capacity)
	}
	if tab.Bytes() != bytes {
		t.Errorf("Bytes grew from %d to %d", bytes, tab.Bytes())
	}
	if err := tab.check(); err != nil {
		t.Error(err)
	}
}

// TestNoEvictionBelowCapacity fills a table to its capacity with keys as a
// node sees them (sequential ports, few addresses): the bucket pairs must
// not overflow, so nothing is evicted.
func TestNoEvictionBelowCapacity(t *testing.T) {
	for _, capacity := range []int{1000, 1 << 16, 1 << 18} { // the last with free-record caches
		tab := mustNew(t, Config{Capacity: capacity})
		for i := range capacity {
			src := netip.AddrFrom4([4]byte{10, 244, 0, byte(i / 60000)})
			k := KeyFrom(src, vip, uint16(1024+i%60000), 80, ProtoTCP)
			if _, res := tab.Insert(k, NAT{Dst: podB.As16(), DstPort: 8080}, 0, 1); res != Inserted {
				t.Fatalf("Insert %d = %v", i, res)
			}
		}
		if s := tab.Stats(); s.EvictedWindow+s.EvictedFull != 0 || tab.Len() != capacity {
			t.Errorf("capacity %d: Len %d, Stats %+v", capacity, tab.Len(), s)
		}
	}
}

// TestAllocs checks that the per-packet and per-flow operations allocate
// nothing.
func TestAllocs(t *testing.T) {
	tab := mustNew(t, Config{Capacity: 256})
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = KeyFrom(podA, podB, uint16(i), 80, ProtoTCP)
		if i%2 == 1 {
			keys[i] = KeyFrom(pod6, vip6, uint16(i), 80, ProtoUDP)
		}
	}
	for _, k := range keys[:200] {
		tab.Insert(k, NAT{Dst: podB.As16()}, 0, 1)
	}
	i := 0
	now := Time(1)
	conns, found := make([]Conn, 100), make([]bool, 100)
	ins, res := make([]Insertion, 50), make([]Result, 50)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Lookup", func() { tab.Lookup(keys[i%200], now); i++ }},
		{"LookupBatch", func() { tab.LookupBatch(keys[:100], now, conns, found) }},
		{"Prefetch", func() { tab.Prefetch(keys[:100]) }},
		{"Update", func() {
			if c, ok := tab.Lookup(keys[i%200], now); ok {
				tab.Update(&c, TCPFlagACK, now)
			}
			i++
		}},
		{"Insert", func() { tab.Insert(keys[i%len(keys)], NAT{}, 0, now); i++; now++ }}, // evicts once full
		{"InsertBatch", func() {
			for j := range ins {
				ins[j] = Insertion{Orig: keys[i%len(keys)]}
				i++
			}
			tab.InsertBatch(ins, now, res)
			now++
		}},
		{"Sweep", func() { tab.Sweep(now+1000, 64) }},
		{"Delete", func() { tab.Delete(keys[i%len(keys)]); i++ }},
		{"Stats", func() { tab.Stats() }},
	} {
		if n := testing.AllocsPerRun(1000, c.f); n != 0 {
			t.Errorf("%s allocates %v times per run", c.name, n)
		}
	}
}

// TestLarge: Large follows the number of connections as Sweep's passes
// count them, whatever the budget per call.
func TestLarge(t *testing.T) {
	tab := mustNew(t, Config{Capacity: 3 * largeConns})
	if tab.Large() {
		t.Fatal("Large before any sweep")
	}
	pass := func(budget int, now Time) {
		for range (tab.Capacity() + budget - 1) / budget {
			tab.Sweep(now, budget)
		}
	}
	for i := range largeConns + 100 {
		if _, r := tab.Insert(KeyFrom(podA, podB, uint16(i), uint16(80+i>>16), ProtoUDP), NAT{}, 0, 1); r != Inserted {
			t.Fatalf("Insert %d: %v", i, r)
		}
	}
	for _, budget := range []int{1000, 3 * largeConns} {
		pass(budget, 1)
		pass(budget, 1)
		if !tab.Large() {
			t.Errorf("budget %d: not Large with %d connections", budget, tab.Len())
		}
	}
	for i := range 200 {
		tab.Delete(KeyFrom(podA, podB, uint16(i), uint16(80+i>>16), ProtoUDP))
	}
	pass(1000, 1)
	pass(1000, 1)
	if tab.Large() {
		t.Errorf("Large with %d connections", tab.Len())
	}
	for i := range 200 {
		tab.Insert(KeyFrom(podA, podB, uint16(i), uint16(80+i>>16), ProtoUDP), NAT{}, 0, 1)
	}
	pass(1000, 1)
	pass(1000, 1)
	if !tab.Large() {
		t.Errorf("not Large again with %d connections", tab.Len())
	}
}

func TestRange(t *testing.T) {
	tbl, err := New(Config{Capacity: 1024})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Key]Key{}
	for i := range 100 {
		k := KeyFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), netip.MustParseAddr("10.96.0.1"), uint16(1000+i), 53, ProtoUDP)
		nat := NAT{Dst: netip.MustParseAddr("10.244.0.5").As16(), DstPort: 5353}
		if _, r := tbl.Insert(k, nat, 0, 1); r != Inserted {
			t.Fatal(r)
		}
		want[k] = nat.Apply(k).Reverse()
	}
	gone := KeyFrom(netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.96.0.1"), 1007, 53, ProtoUDP)
	tbl.Delete(gone)
	delete(want, gone)
	got := map[Key]Key{}
	tbl.Range(1, func(orig, reply Key) bool {
		got[orig] = reply
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("Range saw %d connections, want %d", len(got), len(want))
	}
	for k, r := range want {
		if got[k] != r {
			t.Fatalf("Range: %v has reply %v, want %v", k, got[k], r)
		}
	}
	n := 0
	tbl.Range(1, func(Key, Key) bool { n++; return n < 10 })
	if n != 10 {
		t.Errorf("Range went on after fn returned false: %d calls", n)
	}
	// Expired connections are not seen.
	n = 0
	tbl.Range(1+TimeOf(time.Hour), func(Key, Key) bool { n++; return true })
	if n != 0 {
		t.Errorf("Range saw %d connections an hour later (UDP timeout 30 s)", n)
	}
}
