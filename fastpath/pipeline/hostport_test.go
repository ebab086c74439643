package pipeline

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
)

var (
	tapMAC   = [6]byte{0x02, 0, 0, 0, 0, 0xff}
	nodeIPv4 = netip.MustParseAddr("192.168.50.1")
	nodeIPv6 = netip.MustParseAddr("fd50::1")
	testHost = Host{
		MAC:         tapMAC,
		Addrs:       []netip.Addr{nodeIPv4, nodeIPv6, netip.MustParseAddr("10.0.0.1")},
		PodPrefixes: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24"), netip.MustParsePrefix("fd00::/120")},
		ICMPSource4: nodeIPv4,
		ICMPSource6: nodeIPv6,
	}
)

// slowPods is twoPods with the slow path enabled and testHost published.
func slowPods(t testing.TB, cfg SlowPathConfig) (*Dataplane, *Worker, *HostPort, *xsk.Peer, *xsk.Peer) {
	t.Helper()
	d, w, a, b := twoPods(t)
	hp, err := d.EnableSlowPath(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetHost(testHost); err != nil {
		t.Fatal(err)
	}
	return d, w, hp, a, b
}

// drain takes every frame the workers queued to the host, as the slow
// path's writer would.
func drain(hp *HostPort) [][]byte {
	var out [][]byte
	for i := range hp.Workers() {
		q := hp.ToHost(i)
		n := q.Peek(q.Len())
		for j := range n {
			out = append(out, append([]byte(nil), q.Frame(j)...))
		}
		q.Release(n)
	}
	return out
}

// inject queues frames from the host to worker 0, as the slow path's
// reader would.
func inject(t testing.TB, hp *HostPort, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if !hp.FromHost(0).Push(f) {
			t.Fatal("queue from the host is full")
		}
	}
	hp.FromHost(0).Flush()
}

func decode(t testing.TB, f []byte) packet.Parsed {
	t.Helper()
	var p packet.Parsed
	if m := packet.Decode(f, &p); m != packet.OK {
		t.Fatalf("frame does not decode (%v): % x", m, f)
	}
	return p
}

// checkICMPError checks that got is a well-formed ICMP error of type typ
// and code from src to dst, quoting the start of the IP packet of orig.
func checkICMPError(t *testing.T, got, orig []byte, src, dst netip.Addr, typ, code uint8, dstMAC [6]byte) {
	t.Helper()
	p := decode(t, got) // Decode verifies the IPv4 header checksum
	if p.Src != src || p.Dst != dst || p.ICMPType != typ || p.ICMPCode != code {
		t.Errorf("ICMP error %s -> %s type %d code %d; want %s -> %s type %d code %d",
			p.Src, p.Dst, p.ICMPType, p.ICMPCode, src, dst, typ, code)
	}
	if [6]byte(got[0:6]) != dstMAC || [6]byte(got[6:12]) != gwMAC {
		t.Errorf("ICMP error MACs %x <- %x; want %x <- %x", got[0:6], got[6:12], dstMAC, gwMAC)
	}
	if c, have := packet.L4Checksum(&p, got), binary.BigEndian.Uint16(got[p.L4Off+2:]); c != have {
		t.Errorf("ICMP checksum %#04x, want %#04x", have, c)
	}
	quoted := got[int(p.L4Off)+8:]
	if want := orig[14:]; len(quoted) > len(want) || string(quoted) != string(want[:len(quoted)]) {
		t.Errorf("quoted packet differs from the original:\n got % x\nwant % x", quoted, want)
	}
	if len(quoted) < 28 {
		t.Errorf("only %d bytes quoted", len(quoted))
	}
}

// TestPuntList sends one frame per punt-list case from pod A and checks
// where it went: forwarded, handed to the host (with the TAP's MAC as
// destination, the gateway's as source, the rest unchanged), answered with
// an ICMP error, or dropped; and under which reason it was counted.
func TestPuntList(t *testing.T) {
	withOpts := ether(gwMAC, macA, packet.EtherTypeIPv4,
		ipv4("10.244.0.10", "10.244.0.11", 64, packet.ProtoUDP, []byte{1, 1, 1, 0}, udpPayload(4)))
	frag := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
	frag[14+6] = 0x20 // MF
	binary.BigEndian.PutUint16(frag[14+10:], 0)
	binary.BigEndian.PutUint16(frag[14+10:], packet.Checksum(frag[14:34], 0))
	hopByHop := ether(gwMAC, macA, packet.EtherTypeIPv6,
		ipv6("fd00::a", "fd00::b", 64, packet.ProtoHopByHop, append([]byte{packet.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}, udpPayload(4)...)))

	type where int
	const (
		toHost where = iota
		backToA
		toB
		nowhere
	)
	cases := []struct {
		name   string
		frame  []byte
		where  where
		reason string
		// for backToA: the ICMP error expected
		icmpSrc   string
		typ, code uint8
	}{
		{"pod to pod", udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64), toB, "forwarded", "", 0, 0},
		// A flow the node has not sent on; TestToHostAnswered has the others.
		{"to node ipv4", udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64), toHost, "to_host_new", "", 0, 0},
		{"to node ipv4 ttl 1", udp4Frame(macA, "10.244.0.10", "10.0.0.1", 1), toHost, "to_host_new", "", 0, 0},
		{"to node ipv6", udp6Frame(macA, "fd00::a", "fd50::1", 64), toHost, "to_host_new", "", 0, 0},
		{"off node", udp4Frame(macA, "10.244.0.10", "8.8.8.8", 64), toHost, "no_route", "", 0, 0},
		{"off node ipv6", udp6Frame(macA, "fd00::a", "2001:db8::1", 64), toHost, "no_route", "", 0, 0},
		{"ip options", withOpts, toHost, "ip_options", "", 0, 0},
		{"ipv6 hop-by-hop", hopByHop, toHost, "ip_options", "", 0, 0},
		{"fragment", frag, toHost, "fragment", "", 0, 0},
		{"unknown ethertype", ether(gwMAC, macA, 0x88b5, make([]byte, 46)), toHost, "unknown_ethertype", "", 0, 0},
		{"ttl 1 to pod", udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1), backToA, "ttl_expired",
			"192.168.50.1", packet.ICMPv4TimeExceeded, 0},
		{"hop limit 1 to pod", udp6Frame(macA, "fd00::a", "fd00::b", 1), backToA, "ttl_expired",
			"fd50::1", packet.ICMPv6TimeExceeded, 0},
		{"no such pod", udp4Frame(macA, "10.244.0.10", "10.244.0.99", 64), backToA, "unreachable",
			"192.168.50.1", packet.ICMPv4DestUnreachable, icmp4CodeHostUnreachable},
		{"no such pod ipv6", udp6Frame(macA, "fd00::a", "fd00::99", 64), backToA, "unreachable",
			"fd50::1", packet.ICMPv6DestUnreachable, icmp6CodeAddrUnreachable},
		{"to gateway", udp4Frame(macA, "10.244.0.10", "169.254.1.1", 64), nowhere, "to_gateway", "", 0, 0},
		{"multicast", udp4Frame(macA, "10.244.0.10", "224.0.0.251", 64), nowhere, "multicast", "", 0, 0},
		{"broadcast", udp4Frame(macA, "10.244.0.10", "255.255.255.255", 64), nowhere, "multicast", "", 0, 0},
		{"malformed", udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64)[:20], nowhere,
			"malformed_" + packet.TruncatedIPv4.String(), "", 0, 0},
		{"ttl 1 to multicast", udp4Frame(macA, "10.244.0.10", "224.0.0.251", 1), nowhere, "multicast", "", 0, 0},
		{"mld report", ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6("fe80::a", "ff02::16", 1, packet.ProtoHopByHop,
			[]byte{packet.ProtoICMPv6, 0, 5, 2, 0, 0, 1, 0, 143, 0, 0, 0, 0, 0, 0, 0})), nowhere, "multicast", "", 0, 0},
		{"router solicitation", ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6("fe80::a", "ff02::2", 255, packet.ProtoICMPv6,
			[]byte{packet.ICMPv6RouterSolicitation, 0, 0, 0, 0, 0, 0, 0})), nowhere, "icmpv6_ignored", "", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, w, hp, a, b := slowPods(t, SlowPathConfig{})
			if a.Deliver(c.frame) != 1 {
				t.Fatal("deliver failed")
			}
			w.step()
			host, gotA, gotB := drain(hp), sent(a), sent(b)
			var want []int
			switch c.where {
			case toHost:
				want = []int{1, 0, 0}
			case backToA:
				want = []int{0, 1, 0}
			case toB:
				want = []int{0, 0, 1}
			default:
				want = []int{0, 0, 0}
			}
			if got := []int{len(host), len(gotA), len(gotB)}; !cmp.Equal(got, want) {
				t.Fatalf("frames to host, A, B: %v, want %v; counters %v", got, want, counts(w))
			}
			if diff := cmp.Diff(map[string]uint64{c.reason: 1}, counts(w)); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
			switch c.where {
			case toHost:
				want := append([]byte(nil), c.frame...)
				copy(want[0:6], tapMAC[:])
				copy(want[6:12], gwMAC[:])
				if diff := cmp.Diff(want, host[0]); diff != "" {
					t.Errorf("frame to the host (-want +got):\n%s", diff)
				}
			case backToA:
				p := decode(t, c.frame)
				checkICMPError(t, gotA[0], c.frame, netip.MustParseAddr(c.icmpSrc), p.Src, c.typ, c.code, macA)
			}
		})
	}
}

// TestFromHost sends frames from the host (the slow path's queue) and
// checks they reach pods like any frame, that answers go back to the host,
// and that nothing is handed back to the host as a punt.
func TestFromHost(t *testing.T) {
	frag := fromNode(udp4Frame(macA, "192.168.50.1", "10.244.0.11", 64))
	frag[14+6] = 0x20
	binary.BigEndian.PutUint16(frag[14+10:], 0)
	binary.BigEndian.PutUint16(frag[14+10:], packet.Checksum(frag[14:34], 0))

	t.Run("to pod", func(t *testing.T) {
		_, w, hp, _, b := slowPods(t, SlowPathConfig{})
		in := fromNode(udp4Frame(macA, "192.168.50.1", "10.244.0.11", 64))
		inject(t, hp, in, frag, fromNode(udp6Frame(macA, "fd50::1", "fd00::b", 64)))
		if n := w.step(); n != 3 {
			t.Errorf("step did %d work, want 3", n)
		}
		got := sent(b)
		if len(got) != 3 {
			t.Fatalf("B got %d frames, want 3; counters %v", len(got), counts(w))
		}
		// Only L2 changes: the host and the fast path are one hop.
		want := append([]byte(nil), in...)
		copy(want[0:6], macB[:])
		copy(want[6:12], gwMAC[:])
		if diff := cmp.Diff(want, got[0]); diff != "" {
			t.Errorf("forwarded frame (-want +got):\n%s", diff)
		}
		if p := decode(t, got[1]); !p.Fragment {
			t.Error("fragment from the host not forwarded as it was")
		}
		if diff := cmp.Diff(map[string]uint64{"forwarded": 3}, counts(w)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
		if h := drain(hp); len(h) != 0 {
			t.Errorf("%d frames went back to the host", len(h))
		}
		w.publish()
		ps := hp.stats()
		if ps.RxFrames != 3 || ps.TxFrames != 0 {
			t.Errorf("host port rx %d tx %d, want 3 and 0", ps.RxFrames, ps.TxFrames)
		}
	})

	t.Run("never back to the host", func(t *testing.T) {
		_, w, hp, a, b := slowPods(t, SlowPathConfig{})
		inject(t, hp,
			fromNode(udp4Frame(macA, "192.168.50.1", "8.8.8.8", 64)),
			fromNode(udp4Frame(macA, "192.168.50.1", "192.168.50.1", 64)),
			fromNode(ether(gwMAC, tapMAC, 0x88b5, make([]byte, 46))),
			fromNode(udp6Frame(macA, "fe80::1234", "ff02::16", 1)))
		w.step()
		if n := len(drain(hp)) + len(sent(a)) + len(sent(b)); n != 0 {
			t.Errorf("%d frames sent", n)
		}
		want := map[string]uint64{"no_route": 1, "to_host_new": 1, "unknown_ethertype": 1, "multicast": 1}
		if diff := cmp.Diff(want, counts(w)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})

	t.Run("ttl 1 reaches the pod", func(t *testing.T) {
		_, w, hp, _, b := slowPods(t, SlowPathConfig{})
		inject(t, hp, fromNode(udp4Frame(macA, "192.168.50.1", "10.244.0.11", 1)),
			fromNode(udp6Frame(macA, "fd50::1", "fd00::b", 1)))
		w.step()
		got := sent(b)
		if len(got) != 2 || got[0][14+8] != 1 || got[1][14+7] != 1 {
			t.Fatalf("B got %d frames, want 2 with TTL 1; counters %v", len(got), counts(w))
		}
	})

	t.Run("answers go to the host", func(t *testing.T) {
		_, w, hp, _, b := slowPods(t, SlowPathConfig{})
		unreach := fromNode(udp4Frame(macA, "192.168.50.1", "10.244.0.99", 64))
		unreach6 := fromNode(udp6Frame(macA, "fd50::1", "fd00::99", 64))
		arp := arpRequest(tapMAC, "192.168.50.1", "169.254.1.1")
		ns := neighborSolicit(tapMAC, "fe80::2", "fe80::1")
		inject(t, hp, unreach, unreach6, arp, ns)
		w.step()
		if n := len(sent(b)); n != 0 {
			t.Errorf("B got %d frames", n)
		}
		host := drain(hp)
		if len(host) != 4 {
			t.Fatalf("host got %d frames, want 4; counters %v", len(host), counts(w))
		}
		// ICMP errors to the host come from the gateway, never from a node
		// address (the host would drop its own address as a martian).
		checkICMPError(t, host[0], unreach, netip.MustParseAddr("169.254.1.1"), netip.MustParseAddr("192.168.50.1"),
			packet.ICMPv4DestUnreachable, icmp4CodeHostUnreachable, tapMAC)
		checkICMPError(t, host[1], unreach6, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd50::1"),
			packet.ICMPv6DestUnreachable, icmp6CodeAddrUnreachable, tapMAC)
		if a := packet.ARP(host[2][14:]); a.Op() != packet.ARPReply || a.SenderHW() != gwMAC || [6]byte(host[2][0:6]) != tapMAC {
			t.Errorf("bad ARP reply to the host: % x", host[2])
		}
		if p := decode(t, host[3]); p.ICMPType != packet.ICMPv6NeighborAdvertisement || [6]byte(host[3][0:6]) != tapMAC {
			t.Errorf("bad NA to the host: % x", host[3])
		}
		want := map[string]uint64{"unreachable": 2, "arp_reply": 1, "nd_reply": 1}
		if diff := cmp.Diff(want, counts(w)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})
}

// TestNoHostYet checks that with the slow path enabled but no Host
// published the punt list drops, as without a slow path.
func TestNoHostYet(t *testing.T) {
	d, w, a, _ := twoPods(t)
	hp, err := d.EnableSlowPath(SlowPathConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a.Deliver(udp4Frame(macA, "10.244.0.10", "8.8.8.8", 64), udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1))
	w.step()
	if n := len(drain(hp)) + len(sent(a)); n != 0 {
		t.Errorf("%d frames sent", n)
	}
	if diff := cmp.Diff(map[string]uint64{"no_route": 1, "ttl_expired": 1}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if _, err := d.EnableSlowPath(SlowPathConfig{}); err == nil {
		t.Error("second EnableSlowPath succeeded")
	}
}

func TestBucket(t *testing.T) {
	b := newBucket(Limit{Rate: 1000, Burst: 5}) // 1 ms per frame
	now := int64(time.Hour)
	got := 0
	for range 20 {
		if b.take(now) {
			got++
		}
	}
	if got != 5 {
		t.Errorf("burst let %d through, want 5", got)
	}
	// 3.5 ms later: 3 more.
	now += 3500 * int64(time.Microsecond)
	got = 0
	for range 20 {
		if b.take(now) {
			got++
		}
	}
	if got != 3 {
		t.Errorf("after 3.5 ms %d through, want 3", got)
	}
	// A long pause refills to the burst, not beyond.
	now += int64(time.Minute)
	got = 0
	for range 20 {
		if b.take(now) {
			got++
		}
	}
	if got != 5 {
		t.Errorf("after a minute %d through, want 5", got)
	}
	closed := newBucket(Limit{})
	if closed.take(now) {
		t.Error("rate 0 let a frame through")
	}
	// Over a simulated second at 10x the rate, about Rate+Burst pass.
	b = newBucket(Limit{Rate: 1000, Burst: 5})
	got = 0
	for i := range 10000 {
		if b.take(now + int64(i)*int64(100*time.Microsecond)) {
			got++
		}
	}
	if got < 1000 || got > 1006 {
		t.Errorf("one second at 10 kpps let %d through, want 1000..1005", got)
	}
}

func TestPuntRateLimit(t *testing.T) {
	_, w, hp, a, _ := slowPods(t, SlowPathConfig{Limits: map[PuntClass]Limit{PuntToHostNew: {Rate: 1, Burst: 10}}})
	frames := make([][]byte, 100)
	for i := range frames {
		frames[i] = udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64)
	}
	a.Deliver(frames[:50]...)
	w.step()
	a.Deliver(frames[50:]...)
	w.step()
	if n := len(drain(hp)); n != 10 {
		t.Errorf("host got %d frames, want the burst of 10", n)
	}
	if diff := cmp.Diff(map[string]uint64{"to_host_new": 10, "to_host_new_over_limit": 90}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	// Other classes have their own bucket.
	a.Deliver(udp4Frame(macA, "10.244.0.10", "8.8.8.8", 64))
	w.step()
	if n := len(drain(hp)); n != 1 {
		t.Errorf("no_route frame: host got %d, want 1", n)
	}
}

func TestPuntQueueFull(t *testing.T) {
	_, w, hp, a, b := slowPods(t, SlowPathConfig{QueueLen: 8})
	frames := make([][]byte, 20)
	for i := range frames {
		frames[i] = udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64)
	}
	a.Deliver(frames...)
	w.step()
	if n := len(drain(hp)); n != 8 {
		t.Errorf("host got %d frames, want 8", n)
	}
	if diff := cmp.Diff(map[string]uint64{"to_host_new": 8, "punt_queue_full": 12}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	// Drained, the queue takes frames again, and pod traffic never stopped.
	a.Deliver(frames[0], udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64))
	w.step()
	if n, m := len(drain(hp)), len(sent(b)); n != 1 || m != 1 {
		t.Errorf("after draining: host got %d, B got %d; want 1, 1", n, m)
	}
}

// TestSlowPathAllocs asserts that a batch mixing forwarding, punting, ICMP
// errors and frames from the host allocates nothing on the worker.
func TestSlowPathAllocs(t *testing.T) {
	_, w, hp, a, b := slowPods(t, SlowPathConfig{Limits: map[PuntClass]Limit{
		PuntTTLExpired: {Rate: 1e9, Burst: 1 << 20}}})
	batch := [][]byte{
		udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64),
		udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64),
		udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1),
		udp6Frame(macA, "fd00::a", "fd00::b", 1),
		udp6Frame(macA, "fd00::a", "fd50::1", 64),
	}
	fromHost := [][]byte{ // on the flows of A's frames to the node: from the second batch on, those are to_host
		udp4Frame(tapMAC, "192.168.50.1", "10.244.0.10", 64),
		udp6Frame(tapMAC, "fd50::1", "fd00::a", 64),
	}
	w.step()
	if n := testing.AllocsPerRun(200, func() {
		a.Deliver(batch...)
		for _, f := range fromHost {
			hp.FromHost(0).Push(f)
		}
		hp.FromHost(0).Flush()
		w.step()
		a.Sent(nil)
		b.Sent(nil)
		q := hp.ToHost(0)
		q.Release(q.Peek(q.Len()))
	}); n != 0 {
		t.Errorf("a batch allocates %v times", n)
	}
	c := counts(w)
	if c["forwarded"] < 200*3 || c["to_host"] < 200*2 || c["ttl_expired"] < 200*2 {
		t.Errorf("counters %v", c)
	}
}

// TestWakeups runs the workers interrupt-driven with an idle timeout far
// longer than the test's deadline: frames from the host must wake the
// worker, and frames punted by the worker must wake the slow path's
// writer, or the test times out.
func TestWakeups(t *testing.T) {
	d, _, hp, a, b := slowPods(t, SlowPathConfig{})
	d.cfg.IdleTimeout = time.Minute
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	time.Sleep(50 * time.Millisecond) // let the worker fall asleep

	// Host → pod: queue, wake, and B receives.
	hp.FromHost(0).Push(udp4Frame(tapMAC, "192.168.50.1", "10.244.0.11", 64))
	hp.FromHost(0).Flush()
	hp.Wake(0)
	deadline := time.Now().Add(5 * time.Second)
	for b.Sent(nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not wake for a frame from the host")
		}
		time.Sleep(time.Millisecond)
	}

	// Pod → host: the writer parks, a punted frame wakes it. The pair
	// socket has no fd for poll to watch, so wake the worker by hand, as
	// the kernel's RX interrupt would.
	woke := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(woke)
		for !hp.ToHost(0).Pending() {
			hp.WaitToHost(stop, nil)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	a.Deliver(udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64))
	d.wakeWorkers()
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		close(stop)
		t.Fatal("the writer did not wake for a punted frame")
	}
}

// TestSlowPathConcurrent runs a busy-polling worker with a stand-in reader
// and writer on their own goroutines, as the slow path runs them; under
// -race it checks the queues' and the host snapshot's publication.
func TestSlowPathConcurrent(t *testing.T) {
	d, _, hp, a, b := slowPods(t, SlowPathConfig{QueueLen: 64})
	d.cfg.BusyPoll = true
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	const total = 10000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var toHost, toB int
	wg.Add(3)
	go func() { // reader: host → B
		defer wg.Done()
		f := udp4Frame(tapMAC, "192.168.50.1", "10.244.0.11", 64)
		q := hp.FromHost(0)
		for sent := 0; sent < total; {
			if q.Push(f) {
				sent++
			} else {
				runtime.Gosched()
			}
			q.Flush()
			hp.Wake(0)
		}
	}()
	go func() { // writer: drains what A sends the host
		defer wg.Done()
		q := hp.ToHost(0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := q.Peek(64)
			for i := range n {
				if f := q.Frame(i); [6]byte(f[0:6]) != tapMAC {
					t.Errorf("frame to the host has dst MAC %x", f[0:6])
				}
			}
			q.Release(n)
			toHost += n
			if n == 0 {
				runtime.Gosched()
			}
		}
	}()
	go func() { // control plane: republish the host while traffic flows
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := d.SetHost(testHost); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	f := udp4Frame(macA, "10.244.0.10", "192.168.50.1", 64)
	for sent := 0; sent < total; {
		n := a.Deliver(f)
		sent += n
		m := b.Sent(nil)
		toB += m
		if n+m == 0 {
			runtime.Gosched()
		}
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && toB < total; {
		m := b.Sent(nil)
		toB += m
		if m == 0 {
			runtime.Gosched()
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	d.Close()
	toB += b.Sent(nil) // what the worker left on B's TX ring
	_, reasons := d.Stats()
	t.Logf("host → B: %d delivered, %d tx_ring_full, %d tx_no_frame; A → host: %d, %d over limit, %d queue full",
		toB, reasons[stats.TxRingFull], reasons[stats.TxNoFrame], toHost, reasons[stats.ToHostOverLimit]+reasons[stats.ToHostNewOverLimit], reasons[stats.PuntQueueFull])
	if lost := reasons[stats.TxRingFull] + reasons[stats.TxNoFrame]; uint64(toB)+lost != total {
		t.Errorf("B received %d of %d from the host, %d counted lost", toB, total, lost)
	}
	punted := reasons[stats.ToHost] + reasons[stats.ToHostNew]
	over := reasons[stats.ToHostOverLimit] + reasons[stats.ToHostNewOverLimit]
	if uint64(toHost) != punted || punted+reasons[stats.PuntQueueFull]+over != total {
		t.Errorf("host received %d; counted to_host and to_host_new %d, punt_queue_full %d, over limit %d; want %d in all",
			toHost, punted, reasons[stats.PuntQueueFull], over, total)
	}
}
