package pipeline

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
)

// pairPort attaches a port backed by xsk.NewPair sockets, whose Peers stand
// in for the kernel: no root, no syscalls, the real rings and worker code.
func pairPort(t testing.TB, d *Dataplane, spec PortSpec) []*xsk.Peer {
	t.Helper()
	p := &Port{Spec: spec}
	var peers []*xsk.Peer
	for range d.cfg.Workers {
		s, peer, err := xsk.NewPair(xsk.Config{NumFrames: 1024, FillSize: 256, CompletionSize: 512, RxSize: 256, TxSize: 512})
		if err != nil {
			t.Fatal(err)
		}
		p.socks = append(p.socks, s)
		peers = append(peers, peer)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkSpec(spec); err != nil {
		t.Fatal(err)
	}
	if err := d.addPort(p); err != nil {
		t.Fatal(err)
	}
	return peers
}

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0xa}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0xb}
)

// twoPods is a dataplane with pods A (10.244.0.10, fd00::a) and B
// (10.244.0.11, fd00::b) on pair ports, with one worker not running.
func twoPods(t testing.TB) (*Dataplane, *Worker, *xsk.Peer, *xsk.Peer) {
	t.Helper()
	d, err := New(Config{Gateway: testGW})
	if err != nil {
		t.Fatal(err)
	}
	a := pairPort(t, d, PortSpec{Ifname: "a", MAC: net.HardwareAddr(macA[:]),
		IPv4: netip.MustParseAddr("10.244.0.10"), IPv6: netip.MustParseAddr("fd00::a")})
	b := pairPort(t, d, PortSpec{Ifname: "b", MAC: net.HardwareAddr(macB[:]),
		IPv4: netip.MustParseAddr("10.244.0.11"), IPv6: netip.MustParseAddr("fd00::b")})
	return d, d.workers[0], a[0], b[0]
}

func sent(p *xsk.Peer) [][]byte {
	var out [][]byte
	p.Sent(func(f []byte) { out = append(out, append([]byte(nil), f...)) })
	return out
}

func counts(w *Worker) map[string]uint64 {
	w.Counters.Publish()
	m := map[string]uint64{}
	for _, r := range stats.Reasons() {
		if n := w.Counters.Load(r); n > 0 {
			m[r.String()] = n
		}
	}
	return m
}

func TestForwardIPv4(t *testing.T) {
	_, w, a, b := twoPods(t)
	in := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
	if a.Deliver(in) != 1 {
		t.Fatal("deliver failed")
	}
	if n := w.step(); n != 1 {
		t.Fatalf("step did %d work, want 1", n)
	}
	got := sent(b)
	if len(got) != 1 {
		t.Fatalf("B got %d frames, want 1; counters %v", len(got), counts(w))
	}
	want := append([]byte(nil), in...)
	copy(want[0:6], macB[:])
	copy(want[6:12], gwMAC[:])
	want[14+8] = 63 // TTL
	binary.BigEndian.PutUint16(want[14+10:], 0)
	binary.BigEndian.PutUint16(want[14+10:], packet.Checksum(want[14:34], 0))
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("forwarded frame (-want +got):\n%s", diff)
	}
	if len(sent(a)) != 0 {
		t.Error("A got a frame back")
	}
	if diff := cmp.Diff(map[string]uint64{"forwarded": 1}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	w.publish()
	if pa, pb := &w.set.ports[0].counters[0], &w.set.ports[1].counters[0]; pa.rx.Load() != 1 || pb.tx.Load() != 1 {
		t.Errorf("port counters: A rx %d, B tx %d; want 1, 1", pa.rx.Load(), pb.tx.Load())
	}
}

func TestForwardIPv6(t *testing.T) {
	_, w, a, b := twoPods(t)
	a.Deliver(udp6Frame(macA, "fd00::a", "fd00::b", 2))
	w.step()
	got := sent(b)
	if len(got) != 1 {
		t.Fatalf("B got %d frames, want 1; counters %v", len(got), counts(w))
	}
	if hop := got[0][14+7]; hop != 1 {
		t.Errorf("hop limit %d, want 1", hop)
	}
	if dst := [6]byte(got[0][0:6]); dst != macB {
		t.Errorf("dst MAC %x, want %x", dst, macB)
	}
}

func TestARPReply(t *testing.T) {
	_, w, a, b := twoPods(t)
	a.Deliver(arpRequest(macA, "10.244.0.10", "169.254.1.1"))
	w.step()
	got := sent(a)
	if len(got) != 1 {
		t.Fatalf("A got %d frames, want the ARP reply; counters %v", len(got), counts(w))
	}
	r := got[0]
	arp := packet.ARP(r[14:])
	if [6]byte(r[0:6]) != macA || [6]byte(r[6:12]) != gwMAC || arp.Op() != packet.ARPReply ||
		arp.SenderHW() != gwMAC || arp.SenderIP() != testGW.IPv4 ||
		arp.TargetHW() != macA || arp.TargetIP() != netip.MustParseAddr("10.244.0.10").As4() {
		t.Errorf("bad ARP reply: % x", r)
	}
	if len(sent(b)) != 0 {
		t.Error("B got a frame")
	}
	if diff := cmp.Diff(map[string]uint64{"arp_reply": 1}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestNeighborAdvert(t *testing.T) {
	_, w, a, _ := twoPods(t)
	a.Deliver(neighborSolicit(macA, "fd00::a", "fe80::1"))
	w.step()
	got := sent(a)
	if len(got) != 1 {
		t.Fatalf("A got %d frames, want the NA; counters %v", len(got), counts(w))
	}
	var p packet.Parsed
	if m := packet.Decode(got[0], &p); m != packet.OK {
		t.Fatalf("NA does not decode: %v", m)
	}
	na := packet.ICMPv6(got[0][p.L4Off:])
	r, s, o := na.NAFlags()
	lla, ok := na.NDLinkLayerAddr(packet.NDOptTargetLinkLayerAddr)
	if p.ICMPType != packet.ICMPv6NeighborAdvertisement || p.TTL != 255 || !r || !s || !o ||
		p.Src != netip.MustParseAddr("fe80::1") || p.Dst != netip.MustParseAddr("fd00::a") ||
		na.TargetAddress() != testGW.IPv6 || !ok || lla != gwMAC || [6]byte(got[0][0:6]) != macA {
		t.Errorf("bad NA %+v: % x", p, got[0])
	}
	if c := packet.L4Checksum(&p, got[0]); c != na.Checksum() {
		t.Errorf("NA checksum %#04x, want %#04x", na.Checksum(), c)
	}
}

// TestDrops sends one bad or unroutable frame per case and checks it is
// counted under its reason, nothing is sent, and its frame is freed.
func TestDrops(t *testing.T) {
	good := func() []byte { return udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64) }
	mod := func(f func([]byte) []byte) []byte { return f(good()) }
	vlan := func() []byte {
		g := good()
		f := append([]byte(nil), g[:12]...)
		f = append(f, 0x81, 0x00, 0x00, 0x05)
		return append(f, g[12:]...)
	}
	cases := []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"ttl 1", udp4Frame(macA, "10.244.0.10", "10.244.0.11", 1), "ttl_expired"},
		{"hop limit 1", udp6Frame(macA, "fd00::a", "fd00::b", 1), "ttl_expired"},
		{"unknown destination", udp4Frame(macA, "10.244.0.10", "10.9.9.9", 64), "no_route"},
		{"unknown v6 destination", udp6Frame(macA, "fd00::a", "fd00::99", 64), "no_route"},
		{"to gateway", udp4Frame(macA, "10.244.0.10", "169.254.1.1", 64), "to_gateway"},
		{"multicast", udp4Frame(macA, "10.244.0.10", "224.0.0.251", 64), "multicast"},
		{"ip options", ether(gwMAC, macA, packet.EtherTypeIPv4,
			ipv4("10.244.0.10", "10.244.0.11", 64, packet.ProtoUDP, []byte{1, 1, 1, 0}, udpPayload(4))), "ip_options"},
		{"fragment", mod(func(f []byte) []byte {
			f[14+6] = 0x20 // MF
			binary.BigEndian.PutUint16(f[14+10:], 0)
			binary.BigEndian.PutUint16(f[14+10:], packet.Checksum(f[14:34], 0))
			return f
		}), "fragment"},
		{"unknown ethertype", ether(gwMAC, macA, 0x88b5, make([]byte, 46)), "unknown_ethertype"},
		{"vlan", vlan(), "vlan_tagged"},
		{"arp not for gateway", arpRequest(macA, "10.244.0.10", "10.244.0.11"), "arp_ignored"},
		{"truncated ethernet", good()[:10], "malformed_" + packet.TruncatedEthernet.String()},
		{"truncated ip", good()[:14+12], "malformed_" + packet.TruncatedIPv4.String()},
		{"bad ihl", mod(func(f []byte) []byte { f[14] = 0x43; return f }), "malformed_" + packet.BadIHL.String()},
		{"bad total length", mod(func(f []byte) []byte {
			binary.BigEndian.PutUint16(f[14+2:], 2000)
			return f
		}), "malformed_" + packet.BadTotalLength.String()},
		{"bad checksum", mod(func(f []byte) []byte { f[14+10] ^= 0xff; return f }), "malformed_" + packet.BadIPv4Checksum.String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, w, a, b := twoPods(t)
			free := w.dp.ports.Load().ports[0].socks[0].FreeFrames() + a.FillCount()
			if a.Deliver(c.frame) != 1 {
				t.Fatal("deliver failed")
			}
			w.step()
			if n := len(sent(a)) + len(sent(b)); n != 0 {
				t.Errorf("%d frames sent", n)
			}
			if diff := cmp.Diff(map[string]uint64{c.reason: 1}, counts(w)); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
			if got := w.dp.ports.Load().ports[0].socks[0].FreeFrames() + a.FillCount(); got != free {
				t.Errorf("frames free or on the fill ring: %d, want %d (frame leaked)", got, free)
			}
			// Good traffic still flows after the bad frame.
			a.Deliver(good())
			w.step()
			if n := len(sent(b)); n != 1 {
				t.Errorf("good frame after the bad one: B got %d frames", n)
			}
		})
	}
}

// TestManyBatches pushes more frames than any ring holds through the
// worker, checking every frame arrives once and no UMEM frame leaks.
func TestManyBatches(t *testing.T) {
	d, w, a, b := twoPods(t)
	const total = 20000
	frames := make([][]byte, 100)
	for i := range frames {
		frames[i] = udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
		frames[i][len(frames[i])-1] = byte(i)
	}
	got := 0
	for delivered := 0; delivered < total; {
		off := delivered % len(frames)
		delivered += a.Deliver(frames[off:min(len(frames), off+total-delivered)]...)
		w.step()
		b.Sent(func(f []byte) {
			if f[len(f)-1] != byte(got%len(frames)) {
				t.Fatalf("frame %d out of order: tag %d", got, f[len(f)-1])
			}
			got++
		})
	}
	// Drain: RX batches left behind, then the last completions.
	for {
		n := w.step()
		m := b.Sent(nil)
		got += m
		if n == 0 && m == 0 {
			break
		}
	}
	if got != total {
		t.Errorf("B got %d frames, want %d", got, total)
	}
	for i, p := range d.ports.Load().ports {
		s := p.socks[0]
		peer := []*xsk.Peer{a, b}[i]
		if n := s.FreeFrames() + peer.FillCount(); n != int(s.Config().NumFrames) {
			t.Errorf("port %s: %d frames free or on the fill ring, want %d", p.Spec.Ifname, n, s.Config().NumFrames)
		}
	}
}

// TestStepAllocs asserts that a whole batch through the worker — receive,
// decode, lookup, rewrite, copy, transmit, complete, refill — allocates
// nothing.
func TestStepAllocs(t *testing.T) {
	_, w, a, b := twoPods(t)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
	}
	w.step() // adopt the port set (allocates once, by design)
	if n := testing.AllocsPerRun(200, func() {
		a.Deliver(batch...)
		w.step()
		b.Sent(nil)
	}); n != 0 {
		t.Errorf("a batch allocates %v times", n)
	}
	if c := counts(w); c["forwarded"] < 200*64 {
		t.Errorf("forwarded %d, want at least %d", c["forwarded"], 200*64)
	}
}

func TestProcessAllocs(t *testing.T) {
	d, w, _, _ := twoPods(t)
	eps := d.endpoints.Load()
	f4 := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 255)
	f6 := udp6Frame(macA, "fd00::a", "fd00::b", 255)
	arp := arpRequest(macA, "10.244.0.10", "169.254.1.1")
	if n := testing.AllocsPerRun(100, func() {
		w.fwd.process(f4, eps)
		w.fwd.process(f6, eps)
		w.fwd.process(arp, eps)
	}); n != 0 {
		t.Errorf("process allocates %v times", n)
	}
}

// BenchmarkPipelineForward measures the same-node forward per packet: the
// worker's whole step (receive, decode, lookup, rewrite, TTL, copy into the
// destination UMEM, transmit, complete, refill) on batches of 64 64-byte
// frames, plus the stand-in kernel's delivery and TX drain.
func BenchmarkPipelineForward(b *testing.B) {
	_, w, pa, pb := twoPods(b)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)[:60]
		// 64 bytes on the wire with the FCS: trim the UDP payload to fit.
		binary.BigEndian.PutUint16(batch[i][14+2:], 46)
		binary.BigEndian.PutUint16(batch[i][14+10:], 0)
		binary.BigEndian.PutUint16(batch[i][14+10:], packet.Checksum(batch[i][14:34], 0))
		binary.BigEndian.PutUint16(batch[i][34+4:], 26)
	}
	forwardLoop(b, w, pa, pb, batch)
}

// forwardLoop is the timed part of the forwarding benchmarks: batch
// delivered on pa, one worker step, pb's TX drained, b.N frames in all;
// it fails unless every frame was forwarded.
func forwardLoop(b *testing.B, w *Worker, pa, pb *xsk.Peer, batch [][]byte) {
	w.step()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		pa.Deliver(batch...)
		w.step()
		pb.Sent(nil)
	}
	b.StopTimer()
	if c := counts(w); c["forwarded"] < uint64(b.N) {
		b.Fatalf("forwarded %d of %d: %v", c["forwarded"], b.N, c)
	}
}

// TestPortChurnWhileForwarding adds and removes ports while a running,
// busy-polling worker forwards A→B, with the stand-in kernel on its own
// goroutine as the real one is. Run with -race it checks the snapshot and
// quiesce protocol; in any mode it checks that every frame for B is either
// delivered or counted.
func TestPortChurnWhileForwarding(t *testing.T) {
	d, _, a, b := twoPods(t)
	d.cfg.BusyPoll = true
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	frame := udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)
	const total = 30000
	var received int
	kernelDone := make(chan struct{})
	go func() {
		defer close(kernelDone)
		for sent := 0; sent < total; {
			sent += a.Deliver(frame)
			received += b.Sent(nil)
		}
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			received += b.Sent(nil)
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-kernelDone:
			goto done
		default:
		}
		mac := net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}
		spec := PortSpec{Ifname: fmt.Sprintf("c%d", i), MAC: mac, IPv4: netip.AddrFrom4([4]byte{10, 244, 1, byte(i)})}
		pairPort(t, d, spec)
		d.mu.Lock()
		var p *Port
		for _, q := range d.ports.Load().ports {
			if q != nil && q.Spec.Ifname == spec.Ifname {
				p = q
			}
		}
		if err := d.unpublish(p); err != nil {
			d.mu.Unlock()
			t.Fatal(err)
		}
		d.mu.Unlock()
	}
done:
	d.Close()
	_, reasons := d.Stats()
	lost := reasons[stats.TxRingFull] + reasons[stats.TxNoFrame] + reasons[stats.NoPort]
	if uint64(received)+lost != total || received == 0 {
		t.Errorf("B received %d, %d counted lost; want %d in all", received, lost, total)
	}
}

// TestAntiSpoofing: a pod's frames with another MAC or another source
// address are dropped and counted; its own (and IPv6 link-local, for
// neighbour discovery) pass.
func TestAntiSpoofing(t *testing.T) {
	_, w, a, b := twoPods(t)
	other := [6]byte{0x02, 0, 0, 0, 0, 0x99}
	for _, f := range [][]byte{
		udp4Frame(other, "10.244.0.10", "10.244.0.11", 64), // pod A's address, another MAC
		udp4Frame(macA, "10.244.0.11", "10.244.0.11", 64),  // pod B's address from pod A
		udp4Frame(macA, "10.9.9.9", "10.244.0.11", 64),     // an address nobody has
		udp6Frame(macA, "fd00::b", "fd00::b", 64),          // pod B's IPv6 address from pod A
		udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64),  // pod A's own: forwarded
		udp6Frame(macA, "fd00::a", "fd00::b", 64),          // pod A's own: forwarded
	} {
		a.Deliver(f)
	}
	w.step()
	if got := len(sent(b)); got != 2 {
		t.Errorf("pod B got %d frames, want pod A's own 2", got)
	}
	if diff := cmp.Diff(map[string]uint64{"forwarded": 2, "spoofed_mac": 1, "spoofed_ip": 3}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}
