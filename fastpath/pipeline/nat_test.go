package pipeline

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/route"
	"github.com/ringnet/ringnet/tables/service"
)

var (
	vip   = netip.MustParseAddr("10.96.0.10")
	vip6  = netip.MustParseAddr("fd96::10")
	macC  = [6]byte{0x02, 0, 0, 0, 0, 0xc}
	podC4 = netip.MustParseAddr("10.244.0.12")
)

// threePods is twoPods with pod C (10.244.0.12, fd00::c).
func threePods(t testing.TB) (*Dataplane, *Worker, *xsk.Peer, *xsk.Peer, *xsk.Peer) {
	t.Helper()
	d, w, a, b := twoPods(t)
	c := pairPort(t, d, PortSpec{Ifname: "c", MAC: net.HardwareAddr(macC[:]), IPv4: podC4, IPv6: netip.MustParseAddr("fd00::c")})
	return d, w, a, b, c[0]
}

func setServices(t testing.TB, d *Dataplane, specs ...service.Spec) {
	t.Helper()
	tbl, err := service.Build(1, specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetServices(tbl); err != nil {
		t.Fatal(err)
	}
}

func backends(port uint16, addrs ...string) []service.Backend {
	var bs []service.Backend
	for _, a := range addrs {
		bs = append(bs, service.Backend{Addr: netip.MustParseAddr(a), Port: port})
	}
	return bs
}

// tcpFrame is a TCP segment with a correct checksum and 6 bytes of data,
// IPv4 or IPv6 by the addresses.
func tcpFrame(srcMAC [6]byte, src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	t := make([]byte, 26)
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], dport)
	binary.BigEndian.PutUint32(t[4:8], 0x01020304)
	t[12] = 5 << 4
	t[13] = flags
	copy(t[20:], "ringnt")
	binary.BigEndian.PutUint16(t[16:], packet.Checksum(t, packet.PseudoHeaderSum(packet.ProtoTCP, src, dst, uint16(len(t)))))
	if src.Is4() {
		return ether(gwMAC, srcMAC, packet.EtherTypeIPv4, ipv4(src.String(), dst.String(), 64, packet.ProtoTCP, nil, t))
	}
	return ether(gwMAC, srcMAC, packet.EtherTypeIPv6, ipv6(src.String(), dst.String(), 64, packet.ProtoTCP, t))
}

// seg is what a test reads back from a translated frame, after checking
// that every checksum in it is right (computed afresh, not incrementally).
type seg struct {
	src, dst netip.AddrPort
}

func readSeg(t *testing.T, f []byte) seg {
	t.Helper()
	p := decode(t, f) // verifies the IPv4 header checksum
	if want := packet.L4Checksum(&p, f); want != binary.BigEndian.Uint16(f[int(p.L4Off)+l4ChecksumAt(p.IPProto):]) {
		t.Fatalf("L4 checksum %#04x, want %#04x", binary.BigEndian.Uint16(f[int(p.L4Off)+l4ChecksumAt(p.IPProto):]), want)
	}
	return seg{netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}
}

func l4ChecksumAt(proto uint8) int {
	switch proto {
	case packet.ProtoTCP:
		return 16
	case packet.ProtoUDP:
		return 6
	}
	return 2
}

// one delivers f on from, steps, and returns the single frame port to
// got, failing otherwise.
func one(t *testing.T, w *Worker, from, to *xsk.Peer, f []byte) []byte {
	t.Helper()
	from.Deliver(f)
	w.step()
	got := sent(to)
	if len(got) != 1 {
		t.Fatalf("got %d frames, want 1; counters %v", len(got), counts(w))
	}
	return got[0]
}

func TestServiceClusterIP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			d, w, a, b, c := threePods(t)
			client, svcIP, bAddr, cAddr := netip.MustParseAddr("10.244.0.10"), vip, "10.244.0.11", "10.244.0.12"
			if v6 {
				client, svcIP, bAddr, cAddr = netip.MustParseAddr("fd00::a"), vip6, "fd00::b", "fd00::c"
			}
			setServices(t, d, service.Spec{VIP: svcIP, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, bAddr, cAddr)})
			peers := map[netip.Addr]*xsk.Peer{netip.MustParseAddr(bAddr): b, netip.MustParseAddr(cAddr): c}
			chosen := map[uint16]netip.Addr{}
			for sport := uint16(40000); sport < 40064; sport++ {
				a.Deliver(tcpFrame(macA, client, svcIP, sport, 80, syn))
				w.step()
				var got []byte
				for addr, p := range peers {
					if fs := sent(p); len(fs) == 1 {
						got, chosen[sport] = fs[0], addr
					}
				}
				if got == nil {
					t.Fatalf("SYN from port %d reached no backend; counters %v", sport, counts(w))
				}
				s := readSeg(t, got)
				if s.src != netip.AddrPortFrom(client, sport) || s.dst != netip.AddrPortFrom(chosen[sport], 8080) {
					t.Fatalf("backend got %v > %v, want %v > %v:8080", s.src, s.dst, netip.AddrPortFrom(client, sport), chosen[sport])
				}
			}
			spread := map[netip.Addr]int{}
			for _, a := range chosen {
				spread[a]++
			}
			if len(spread) != 2 || spread[netip.MustParseAddr(bAddr)] < 16 || spread[netip.MustParseAddr(cAddr)] < 16 {
				t.Errorf("64 connections spread %v over the two backends", spread)
			}
			// The reply is translated back to the service address, and
			// the connection's later packets keep their backend.
			for sport, be := range chosen {
				from := peers[be]
				s := readSeg(t, one(t, w, from, a, tcpFrame(macFor(be, bAddr), be, client, 8080, sport, synAck)))
				if s.src != netip.AddrPortFrom(svcIP, 80) || s.dst != netip.AddrPortFrom(client, sport) {
					t.Fatalf("reply reached the client as %v > %v, want %v:80 > %v", s.src, s.dst, svcIP, netip.AddrPortFrom(client, sport))
				}
				s = readSeg(t, one(t, w, a, from, tcpFrame(macA, client, svcIP, sport, 80, ack)))
				if s.dst != netip.AddrPortFrom(be, 8080) {
					t.Fatalf("the connection's ACK went to %v, its backend is %v", s.dst, be)
				}
			}
			if ct := d.Conntrack().Len(); ct != 64 {
				t.Errorf("%d connections tracked, want 64", ct)
			}
		})
	}
}

func macFor(be netip.Addr, bAddr string) [6]byte {
	if be == netip.MustParseAddr(bAddr) {
		return macB
	}
	return macC
}

func TestServiceBackendRemoved(t *testing.T) {
	d, w, a, b, c := threePods(t)
	client := netip.MustParseAddr("10.244.0.10")
	spec := service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.11", "10.244.0.12")}
	setServices(t, d, spec)
	// Connections open while C is removed keep going to C (they drain);
	// new connections go to B only.
	one(t, w, a, c, tcpFrame(macA, client, vip, firstTo(t, w, a, c, client), 80, ack))
	spec.Backends = backends(8080, "10.244.0.11")
	tbl, err := d.Services().Next(2, []service.Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetServices(tbl); err != nil {
		t.Fatal(err)
	}
	for sport := uint16(50000); sport < 50032; sport++ {
		one(t, w, a, b, tcpFrame(macA, client, vip, sport, 80, syn))
	}
	if n := len(sent(c)); n != 0 {
		t.Errorf("C got %d new connections after its removal", n)
	}
}

// firstTo opens connections from client until one lands on backend want,
// and returns its source port.
func firstTo(t *testing.T, w *Worker, a, want *xsk.Peer, client netip.Addr) uint16 {
	t.Helper()
	for sport := uint16(30000); sport < 30100; sport++ {
		a.Deliver(tcpFrame(macA, client, vip, sport, 80, syn))
		w.step()
		if len(sent(want)) == 1 {
			return sport
		}
	}
	t.Fatal("100 connections and none reached the backend")
	return 0
}

func TestServiceHairpin(t *testing.T) {
	d, w, a, _ := twoPods(t)
	client := netip.MustParseAddr("10.244.0.10")
	gw := netip.AddrFrom4(testGW.IPv4)
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.10")})
	// A reaches its own service: it sees the connection come from the
	// gateway (else its reply would stay inside it)...
	s := readSeg(t, one(t, w, a, a, tcpFrame(macA, client, vip, 41000, 80, syn)))
	if s.src.Addr() != gw || s.dst != netip.AddrPortFrom(client, 8080) {
		t.Fatalf("hairpin SYN arrived as %v > %v, want %v > %v:8080", s.src, s.dst, gw, client)
	}
	// ...and its reply to the gateway is translated back.
	s = readSeg(t, one(t, w, a, a, tcpFrame(macA, client, s.src.Addr(), 8080, s.src.Port(), synAck)))
	if s.src != netip.AddrPortFrom(vip, 80) || s.dst != netip.AddrPortFrom(client, 41000) {
		t.Fatalf("hairpin reply arrived as %v > %v, want %v:80 > %v:41000", s.src, s.dst, vip, client)
	}
}

func TestServiceAffinity(t *testing.T) {
	d, w, a, b, c := threePods(t)
	client := netip.MustParseAddr("10.244.0.10")
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.11", "10.244.0.12"),
		Affinity: time.Hour})
	spread := func(base uint16) (nb, nc int) {
		for sport := base; sport < base+32; sport++ {
			a.Deliver(tcpFrame(macA, client, vip, sport, 80, syn))
			w.step()
			nb += len(sent(b))
			nc += len(sent(c))
		}
		return nb, nc
	}
	nb, nc := spread(42000)
	if nb+nc != 32 || (nb != 0 && nc != 0) {
		t.Fatalf("with ClientIP affinity 32 connections went %d to B, %d to C; want all to one", nb, nc)
	}
	first := nb == 0 // true: C
	// Past the timeout, the client is balanced afresh (by its next
	// connection's hash): over many expiries it must meet the other
	// backend.
	other := false
	for round := range uint16(20) {
		d.epoch = d.epoch.Add(-2 * time.Hour)
		nb, nc = spread(43000 + 32*round)
		if nb+nc != 32 || (nb != 0 && nc != 0) {
			t.Fatalf("after the timeout 32 connections went %d to B, %d to C; want all to one", nb, nc)
		}
		if (nb == 0) != first {
			other = true
			break
		}
	}
	if !other {
		t.Error("after 20 affinity timeouts the client never moved to the other backend")
	}
}

func TestServiceNoBackend(t *testing.T) {
	d, w, a, _ := twoPods(t)
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80})
	a.Deliver(tcpFrame(macA, netip.MustParseAddr("10.244.0.10"), vip, 40000, 80, syn))
	w.step()
	if c := counts(w); c["service_no_backend"] != 1 {
		t.Errorf("counters %v, want service_no_backend 1", c)
	}
}

// TestServiceCrossNode: pod A on node 1 reaches a service whose backend
// is pod B on node 2. Node 1 translates and tunnels; node 2 delivers;
// B's reply is tunnelled back and node 1 translates it back.
func TestServiceCrossNode(t *testing.T) {
	n1, n2 := twoNodes(t, route.VXLAN)
	setServices(t, n1.d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: []service.Backend{{Addr: podB, Port: 8080}}})
	setServices(t, n2.d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: []service.Backend{{Addr: podB, Port: 8080}}})
	_, got := cross(t, n1, n2, tcpFrame(macA, podA, vip, 40000, 80, syn))
	if s := readSeg(t, got); s.src != netip.AddrPortFrom(podA, 40000) || s.dst != netip.AddrPortFrom(podB, 8080) {
		t.Fatalf("pod B got %v > %v", s.src, s.dst)
	}
	_, back := cross(t, n2, n1, tcpFrame(macA, podB, podA, 8080, 40000, synAck))
	if s := readSeg(t, back); s.src != netip.AddrPortFrom(vip, 80) || s.dst != netip.AddrPortFrom(podA, 40000) {
		t.Fatalf("pod A got the reply as %v > %v, want %v:80 > %v:40000", s.src, s.dst, vip, podA)
	}
}

// TestNodePortFromOutside: a client outside the cluster reaches a NodePort
// on node 2's address; the backend is node 2's pod. With
// externalTrafficPolicy Cluster the client is masqueraded to the node's
// address, with Local it keeps its own.
func TestNodePortFromOutside(t *testing.T) {
	ext := netip.MustParseAddr("192.168.60.5")
	extMAC := [6]byte{0x02, 0xee, 0, 0, 0, 5}
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%v", local), func(t *testing.T) {
			_, n2 := twoNodes(t, route.VXLAN)
			setServices(t, n2.d, service.Spec{VIP: under2, Proto: packet.ProtoTCP, Port: 30080, External: true, Local: local,
				Backends: []service.Backend{{Addr: podB, Port: 8080}}})
			in := tcpFrame(extMAC, ext, under2, 5555, 30080, syn)
			copy(in[0:6], upMAC2[:])
			s := readSeg(t, one(t, n2.w, n2.uplink, n2.pod, in))
			if s.dst != netip.AddrPortFrom(podB, 8080) {
				t.Fatalf("backend got %v > %v", s.src, s.dst)
			}
			switch {
			case local && s.src != netip.AddrPortFrom(ext, 5555):
				t.Fatalf("externalTrafficPolicy Local: backend sees client %v, want %v:5555", s.src, ext)
			case !local && (s.src.Addr() != under2 || s.src.Port() < DefaultNATPorts.First):
				t.Fatalf("externalTrafficPolicy Cluster: backend sees client %v, want %v and a port from %d", s.src, under2, DefaultNATPorts.First)
			}
			// The backend's reply leaves for the host (no slow path in
			// this rig: counted as no_route) translated back; the
			// conntrack entry says what it becomes.
			c, ok := n2.d.Conntrack().Lookup(keyOfAddrs(podB, s.src.Addr(), 8080, s.src.Port()), n2.d.ConntrackNow())
			if !ok {
				t.Fatal("no connection tracked for the reply")
			}
			if out := c.Out(); netip.AddrFrom16(out.Src).Unmap() != under2 || out.SrcPort != 30080 ||
				netip.AddrFrom16(out.Dst).Unmap() != ext || out.DstPort != 5555 {
				t.Fatalf("the reply would leave as %v, want %v:30080 > %v:5555", out, under2, ext)
			}
		})
	}
}

func keyOfAddrs(src, dst netip.Addr, sport, dport uint16) conntrack.Key {
	return conntrack.KeyFrom(src, dst, sport, dport, packet.ProtoTCP)
}

func TestServiceAllocs(t *testing.T) {
	d, w, a, b, c := threePods(t)
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.11")},
		service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 81, Backends: backends(8080, "10.244.0.11", "10.244.0.12"), Affinity: time.Hour})
	client := netip.MustParseAddr("10.244.0.10")
	batch := [][]byte{
		tcpFrame(macA, client, vip, 40000, 80, syn),
		tcpFrame(macA, client, vip, 40001, 81, syn),
		tcpFrame(macA, client, netip.MustParseAddr("10.244.0.11"), 40002, 80, syn),
	}
	w.step()
	if n := testing.AllocsPerRun(100, func() {
		a.Deliver(batch...)
		w.step()
		b.Sent(nil)
		c.Sent(nil)
	}); n != 0 {
		t.Errorf("a batch of service traffic allocates %v times", n)
	}
	if c := counts(w); c["forwarded"] < 300 || len(c) != 1 {
		t.Errorf("counters %v, want only forwarded, at least 300", c)
	}
}

// BenchmarkPipelineForwardService is BenchmarkPipelineForward to a
// ClusterIP: the same frames, to the service, DNATed to pod B by the
// tracked connection (64 flows).
func BenchmarkPipelineForwardService(b *testing.B) {
	benchService(b, vip)
}

// BenchmarkPipelineForwardServicePodIP is the same dataplane (services
// published, so every packet takes the conntrack lookup) sending to the
// pod IP: the baseline for the ClusterIP figure.
func BenchmarkPipelineForwardServicePodIP(b *testing.B) {
	benchService(b, netip.MustParseAddr("10.244.0.11"))
}

func benchService(b *testing.B, dst netip.Addr) {
	d, w, pa, pb := twoPods(b)
	setServices(b, d, service.Spec{VIP: vip, Proto: packet.ProtoUDP, Port: 5001, Backends: backends(5001, "10.244.0.11")})
	batch := make([][]byte, 64)
	for i := range batch {
		f := udp4Frame(macA, "10.244.0.10", dst.String(), 64)
		binary.BigEndian.PutUint16(f[34:], uint16(40000+i)) // 64 flows
		binary.BigEndian.PutUint16(f[34+6:], 0)
		batch[i] = f
	}
	forwardLoop(b, w, pa, pb, batch)
}

// TestMasquerade: pod A on node 1 reaches a server outside the cluster.
// The packet reaches the host (which routes it out) from the node's
// address and a NAT port; the server's reply, arriving on the uplink, is
// translated back to the pod. Cluster destinations keep the pod's address.
func TestMasquerade(t *testing.T) {
	n1, _ := twoNodes(t, route.VXLAN)
	hp, err := n1.d.EnableSlowPath(SlowPathConfig{})
	if err != nil {
		t.Fatal(err)
	}
	host := testHost
	host.PodPrefixes = pfx1[:1]
	if err := n1.d.SetHost(host); err != nil {
		t.Fatal(err)
	}
	if err := n1.d.SetMasquerade(&Masquerade{Except: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddr("203.0.113.7")
	n1.pod.Deliver(tcpFrame(macA, podA, server, 40000, 443, syn))
	n1.w.step()
	out := drain(hp)
	if len(out) != 1 {
		t.Fatalf("the host got %d frames, want 1; counters %v", len(out), counts(n1.w))
	}
	s := readSeg(t, out[0])
	if s.src.Addr() != under1 || s.src.Port() < DefaultNATPorts.First || s.dst != netip.AddrPortFrom(server, 443) {
		t.Fatalf("left as %v > %v, want %v:[%d-] > %v:443", s.src, s.dst, under1, DefaultNATPorts.First, server)
	}
	reply := tcpFrame([6]byte{0x02, 0xee, 0, 0, 0, 1}, server, under1, 443, s.src.Port(), synAck)
	copy(reply[0:6], upMAC1[:])
	back := readSeg(t, one(t, n1.w, n1.uplink, n1.pod, reply))
	if back.src != netip.AddrPortFrom(server, 443) || back.dst != netip.AddrPortFrom(podA, 40000) {
		t.Fatalf("the reply reached the pod as %v > %v, want %v:443 > %v:40000", back.src, back.dst, server, podA)
	}
	// Not masqueraded: another node's pod (tunnelled as it is).
	n1.pod.Deliver(tcpFrame(macA, podA, podB, 40001, 80, syn))
	n1.w.step()
	if wire := sent(n1.uplink); len(wire) != 1 {
		t.Fatalf("to pod B: %d frames on the underlay, want 1; counters %v", len(wire), counts(n1.w))
	} else if p := decode(t, wire[0][encap.VXLANOverhead:]); p.Src != podA {
		t.Errorf("a packet to another node's pod left with source %v, want the pod's %v", p.Src, podA)
	}
	// Many connections to one server get distinct ports.
	ports := map[uint16]bool{s.src.Port(): true}
	for sport := uint16(41000); sport < 41200; sport++ {
		n1.pod.Deliver(tcpFrame(macA, podA, server, sport, 443, syn))
		n1.w.step()
		for _, f := range drain(hp) {
			ports[readSeg(t, f).src.Port()] = true
		}
	}
	if len(ports) != 201 {
		t.Errorf("201 connections to one server got %d distinct NAT ports", len(ports))
	}
}

// TestServiceUDPBackendRemoved: UDP flows pinned to a removed backend move
// at their next packet; the others keep theirs.
func TestServiceUDPBackendRemoved(t *testing.T) {
	d, w, a, b, c := threePods(t)
	macD := [6]byte{0x02, 0, 0, 0, 0, 0xd}
	pd := pairPort(t, d, PortSpec{Ifname: "d", MAC: net.HardwareAddr(macD[:]), IPv4: netip.MustParseAddr("10.244.0.13")})[0]
	client := netip.MustParseAddr("10.244.0.10")
	spec := service.Spec{VIP: vip, Proto: packet.ProtoUDP, Port: 53, Backends: backends(5353, "10.244.0.11", "10.244.0.12", "10.244.0.13")}
	setServices(t, d, spec)
	peers := map[string]*xsk.Peer{"b": b, "c": c, "d": pd}
	send := func(sport uint16) string {
		f := udp4Frame(macA, client.String(), vip.String(), 64)
		binary.BigEndian.PutUint16(f[34:], sport)
		binary.BigEndian.PutUint16(f[36:], 53)
		binary.BigEndian.PutUint16(f[40:], 0)
		a.Deliver(f)
		w.step()
		got := ""
		for name, p := range peers {
			if n := len(sent(p)); n == 1 && got == "" {
				got = name
			} else if n != 0 {
				t.Fatalf("a UDP packet reached more than one backend; counters %v", counts(w))
			}
		}
		if got == "" {
			t.Fatalf("a UDP packet reached no backend; counters %v", counts(w))
		}
		return got
	}
	before := map[uint16]string{}
	for sport := uint16(45000); sport < 45060; sport++ {
		before[sport] = send(sport)
	}
	spec.Backends = backends(5353, "10.244.0.11", "10.244.0.13")
	tbl, err := d.Services().Next(2, []service.Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetServices(tbl); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for sport, was := range before {
		now := send(sport)
		switch {
		case now == "c":
			t.Fatalf("flow %d still reaches C after its removal", sport)
		case was != "c" && now != was:
			t.Fatalf("flow %d moved from %s to %s, though its backend stayed", sport, was, now)
		case was == "c":
			moved++
		}
	}
	if moved == 0 {
		t.Error("no flow was on C: the test needs some")
	}
}

// TestServiceSharedBackendClash: a client reaches two services with a
// backend in common from the same source port (a kernel may reuse a port
// towards another destination). Both connections would have the same
// reply tuple; the second gets a port of the NAT range instead of the
// client's, and the replies of each reach the client from its own
// service.
func TestServiceSharedBackendClash(t *testing.T) {
	d, w, a, b := twoPods(t)
	vip2 := netip.MustParseAddr("10.96.0.11")
	client := netip.MustParseAddr("10.244.0.10")
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.11")},
		service.Spec{VIP: vip2, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.11")})
	first := readSeg(t, one(t, w, a, b, tcpFrame(macA, client, vip, 40000, 80, syn)))
	second := readSeg(t, one(t, w, a, b, tcpFrame(macA, client, vip2, 40000, 80, syn)))
	if first.src != netip.AddrPortFrom(client, 40000) {
		t.Errorf("first connection reached the backend from %v, want the client's own %v:40000", first.src, client)
	}
	if second.src.Addr() != client || second.src.Port() < DefaultNATPorts.First {
		t.Fatalf("second connection reached the backend from %v, want %v and a port of the NAT range", second.src, client)
	}
	for _, c := range []struct {
		seen seg
		vip  netip.Addr
	}{{first, vip}, {second, vip2}} {
		r := readSeg(t, one(t, w, b, a, tcpFrame(macB, c.seen.dst.Addr(), client, 8080, c.seen.src.Port(), synAck)))
		if r.src != netip.AddrPortFrom(c.vip, 80) || r.dst != netip.AddrPortFrom(client, 40000) {
			t.Errorf("reply reached the client as %v > %v, want %v:80 > %v:40000", r.src, r.dst, c.vip, client)
		}
	}
}

// manyFlows is a dataplane whose pod A has flows connections open to
// nvip ClusterIPs (flows/nvip client ports each), all served by pod B, a
// port per service so that the connections' reply tuples differ; its
// conntrack table holds capacity connections and has been swept once.
type manyFlows struct {
	d      *Dataplane
	w      *Worker
	pa, pb *xsk.Peer
	tmpl   [][]byte // a frame to each ClusterIP
	batch  [][]byte
}

func newManyFlows(tb testing.TB, nvip, flows, capacity int) *manyFlows {
	tb.Helper()
	d, err := New(Config{Gateway: testGW, ConntrackCapacity: capacity})
	if err != nil {
		tb.Fatal(err)
	}
	m := &manyFlows{d: d, w: d.workers[0],
		pa: pairPort(tb, d, PortSpec{Ifname: "a", MAC: net.HardwareAddr(macA[:]), IPv4: netip.MustParseAddr("10.244.0.10")})[0],
		pb: pairPort(tb, d, PortSpec{Ifname: "b", MAC: net.HardwareAddr(macB[:]), IPv4: netip.MustParseAddr("10.244.0.11")})[0]}
	var specs []service.Spec
	for v := range nvip {
		addr := netip.AddrFrom4([4]byte{10, 96, 1, byte(v)})
		specs = append(specs, service.Spec{VIP: addr, Proto: packet.ProtoUDP, Port: 5001, Backends: backends(uint16(6000+v), "10.244.0.11")})
		f := udp4Frame(macA, "10.244.0.10", addr.String(), 64)
		binary.BigEndian.PutUint16(f[34+6:], 0)
		m.tmpl = append(m.tmpl, f)
	}
	setServices(tb, d, specs...)
	m.batch = make([][]byte, 64)
	for i := range m.batch {
		m.batch[i] = make([]byte, len(m.tmpl[0]))
	}
	for first := 0; first < flows; first += len(m.batch) {
		m.fill(func(j int) int { return (first + j) % flows })
		m.step()
	}
	ct := d.Conntrack()
	ct.Sweep(d.ConntrackNow(), ct.Capacity())
	if n := ct.Len(); n != flows {
		tb.Fatalf("%d connections tracked, want %d", n, flows)
	}
	return m
}

// fill makes frame j of the batch one of flow(j).
func (m *manyFlows) fill(flow func(j int) int) {
	for j, f := range m.batch {
		n := flow(j)
		copy(f, m.tmpl[n%len(m.tmpl)])
		binary.BigEndian.PutUint16(f[34:], uint16(1024+n/len(m.tmpl)))
	}
}

// step has pod A send the batch; what reaches pod B goes to sent (nil:
// dropped).
func (m *manyFlows) step(sent ...func([]byte)) {
	m.pa.Deliver(m.batch...)
	m.w.step()
	var fn func([]byte)
	if len(sent) > 0 {
		fn = sent[0]
	}
	m.pb.Sent(fn)
}

// TestServiceManyFlows: with more connections than Large's threshold the
// worker looks each batch's connections up ahead; packets are translated
// by their own connections all the same, without allocating.
func TestServiceManyFlows(t *testing.T) {
	const nvip, flows = 4, 70_000
	m := newManyFlows(t, nvip, flows, 1<<17)
	if !m.d.Conntrack().Large() {
		t.Fatal("the table is not Large")
	}
	m.fill(func(j int) int { return j * 1009 % flows })
	var got []uint16
	m.step(func(f []byte) { got = append(got, binary.BigEndian.Uint16(f[34+2:])) })
	if len(got) != len(m.batch) {
		t.Fatalf("pod B got %d frames, want %d; counters %v", len(got), len(m.batch), counts(m.w))
	}
	for j, port := range got {
		if want := uint16(6000 + j*1009%flows%nvip); port != want {
			t.Errorf("frame %d reached pod B at port %d, want %d", j, port, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.step() }); n != 0 {
		t.Errorf("a prefetched batch allocates %v times", n)
	}
	if c := counts(m.w); c["forwarded"] < 101*64+flows || len(c) != 1 {
		t.Errorf("counters %v, want only forwarded", c)
	}
}

// BenchmarkPipelineForwardServiceFlows is BenchmarkPipelineForwardService
// with many tracked connections (16 ClusterIPs, the client's ports spread
// over them; pod B serves each on a port of its own): 16K, 32K and 60K in
// a table of 64K (the default), 250K in one of 256K, 1M in one of 1M. The
// packets of each batch come from flows scattered over all of them, so
// that the lookups miss the caches the table does not fit in. The worker
// looks each batch's connections up ahead in one LookupBatch, which
// prefetches their lines ("prefetch", whatever the table's size), or one
// frame at a time ("off"); by default it looks ahead when the table is
// Large (more than 48K connections).
func BenchmarkPipelineForwardServiceFlows(b *testing.B) {
	for _, size := range []struct {
		name            string
		flows, capacity int
	}{{"16k", 16 << 10, 1 << 16}, {"32k", 32 << 10, 1 << 16}, {"60k", 60_000, 1 << 16}, {"250k", 250_000, 1 << 18}, {"1M", 1_000_000, 1 << 20}} {
		m := newManyFlows(b, 16, size.flows, size.capacity)
		for _, mode := range []string{"prefetch", "off"} {
			b.Run(size.name+"/"+mode, func(b *testing.B) {
				m.w.prefetch = prefetchAlways
				if mode == "off" {
					m.w.prefetch = prefetchNever
				}
				before := counts(m.w)["forwarded"]
				b.ReportAllocs()
				k := uint64(0)
				for i := 0; i < b.N; i += len(m.batch) {
					m.fill(func(int) int { k++; return int(k * 0x9E3779B1 % uint64(size.flows)) })
					m.step()
				}
				b.StopTimer()
				if got := counts(m.w)["forwarded"] - before; got < uint64(b.N) {
					b.Fatalf("forwarded %d of %d: %v", got, b.N, counts(m.w))
				}
			})
		}
	}
}
