package pipeline

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/tables/route"
)

// A two-node cluster on pair sockets: node 1 (192.168.50.1, pods
// 10.244.1.0/24 and fd00:1::/64) with pod A, node 2 (192.168.50.2, pods
// 10.244.2.0/24 and fd00:2::/64) with pod B. The underlay is the test:
// what one node's uplink sends, it delivers to the other's.
var (
	upMAC1  = [6]byte{0x02, 0xaa, 0, 0, 0, 1}
	upMAC2  = [6]byte{0x02, 0xaa, 0, 0, 0, 2}
	vtep2   = [6]byte{0x02, 0xbb, 0, 0, 0, 2}
	under1  = netip.MustParseAddr("192.168.50.1")
	under2  = netip.MustParseAddr("192.168.50.2")
	podA    = netip.MustParseAddr("10.244.1.10")
	podB    = netip.MustParseAddr("10.244.2.20")
	podA6   = netip.MustParseAddr("fd00:1::a")
	podB6   = netip.MustParseAddr("fd00:2::b")
	pfx1    = []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:1::/64")}
	pfx2    = []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24"), netip.MustParsePrefix("fd00:2::/64")}
	pairMTU = 1500
)

type node struct {
	d      *Dataplane
	w      *Worker
	pod    *xsk.Peer
	uplink *xsk.Peer
}

// pairUplink attaches an uplink backed by an xsk.NewPair socket.
func pairUplink(t testing.TB, d *Dataplane, spec UplinkSpec, mac [6]byte) *xsk.Peer {
	t.Helper()
	s, peer, err := xsk.NewPair(xsk.Config{NumFrames: 1024, FillSize: 256, CompletionSize: 512, RxSize: 256, TxSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	spec = spec.withDefaults()
	p := &Port{Spec: PortSpec{Ifname: spec.Ifname, MAC: net.HardwareAddr(mac[:])}, uplink: &spec, mtu: pairMTU, socks: []*xsk.Socket{s}}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.addPort(p); err != nil {
		t.Fatal(err)
	}
	if err := d.publishUnderlay(d.routes); err != nil {
		t.Fatal(err)
	}
	return peer
}

// newNode makes a node with one pod and an uplink, routing the other
// node's prefixes to it (peer 0) through tunnel t.
func newNode(t testing.TB, self, other netip.Addr, mine, theirs []netip.Prefix, pod4, pod6 netip.Addr, upMAC, otherMAC [6]byte, tun route.Tunnel) *node {
	t.Helper()
	d, err := New(Config{Gateway: testGW})
	if err != nil {
		t.Fatal(err)
	}
	pod := pairPort(t, d, PortSpec{Ifname: "pod", MAC: net.HardwareAddr(macA[:]), IPv4: pod4, IPv6: pod6})
	up := pairUplink(t, d, UplinkSpec{Ifname: "up", Address: self, LocalPrefixes: mine, VtepMAC: net.HardwareAddr(upMAC[:])}, upMAC)
	routes := map[netip.Prefix]route.NextHop{}
	for _, p := range theirs {
		routes[p] = route.NextHop{Kind: route.RemoteNode, Tunnel: tun, Node: 0}
	}
	rt, err := route.New(1, routes)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetRoutes(Routes{Table: rt, Peers: []Peer{{Name: "other", Address: other, Tunnel: tun, VtepMAC: vtep2, MAC: otherMAC}}}); err != nil {
		t.Fatal(err)
	}
	return &node{d: d, w: d.workers[0], pod: pod[0], uplink: up}
}

func twoNodes(t testing.TB, tun route.Tunnel) (*node, *node) {
	n1 := newNode(t, under1, under2, pfx1, pfx2, podA, podA6, upMAC1, upMAC2, tun)
	n2 := newNode(t, under2, under1, pfx2, pfx1, podB, podB6, upMAC2, upMAC1, tun)
	return n1, n2
}

// cross sends in from pod A on node 1 and returns what node 1 put on the
// underlay and what pod B received after node 2 took it.
func cross(t *testing.T, n1, n2 *node, in []byte) (wire, got []byte) {
	t.Helper()
	if n1.pod.Deliver(in) != 1 {
		t.Fatal("deliver to node 1 failed")
	}
	n1.w.step()
	out := sent(n1.uplink)
	if len(out) != 1 {
		t.Fatalf("node 1 put %d frames on the underlay, want 1; counters %v", len(out), counts(n1.w))
	}
	if n2.uplink.Deliver(out[0]) != 1 {
		t.Fatal("deliver to node 2 failed")
	}
	n2.w.step()
	at := sent(n2.pod)
	if len(at) != 1 {
		t.Fatalf("pod B got %d frames, want 1; node 2 counters %v", len(at), counts(n2.w))
	}
	return out[0], at[0]
}

// routed is in as pod B receives it after two routers: MACs from the
// gateway to pod B's, TTL (hop limit) less 2.
func routed(in []byte) []byte {
	want := append([]byte(nil), in...)
	copy(want[0:6], macA[:]) // pod B's MAC in newNode
	copy(want[6:12], gwMAC[:])
	if binary.BigEndian.Uint16(in[12:14]) == packet.EtherTypeIPv4 {
		ip := packet.IPv4(want[14:])
		ip.SetTTL(ip.TTL() - 2)
		ip.SetChecksum(0)
		ip.SetChecksum(packet.Checksum(ip[:20], 0))
	} else {
		want[14+7] -= 2
	}
	return want
}

func TestCrossNode(t *testing.T) {
	for _, tun := range []route.Tunnel{route.Direct, route.VXLAN, route.IPIP} {
		for _, v6 := range []bool{false, true} {
			name := tun.String() + map[bool]string{false: "/IPv4", true: "/IPv6"}[v6]
			t.Run(name, func(t *testing.T) {
				n1, n2 := twoNodes(t, tun)
				in := udp4Frame(macA, podA.String(), podB.String(), 64)
				if v6 {
					in = udp6Frame(macA, podA6.String(), podB6.String(), 64)
				}
				wire, got := cross(t, n1, n2, in)
				if diff := cmp.Diff(routed(in), got); diff != "" {
					t.Errorf("pod B got (-want +got):\n%s", diff)
				}
				eth := packet.Ethernet(wire)
				if eth.Dst() != upMAC2 || eth.Src() != upMAC1 {
					t.Errorf("underlay frame %v -> %v, want %v -> %v", eth.Src(), eth.Dst(), upMAC1, upMAC2)
				}
				wantLen := len(in) + map[route.Tunnel]int{route.Direct: 0, route.VXLAN: 50, route.IPIP: 20}[tun]
				if len(wire) != wantLen {
					t.Errorf("underlay frame is %d bytes, want %d", len(wire), wantLen)
				}
				switch tun {
				case route.VXLAN:
					inner := packet.Ethernet(wire[50:])
					if inner.Dst() != vtep2 || inner.Src() != upMAC1 {
						t.Errorf("inner MACs %v -> %v, want %v -> %v (VtepMACs)", inner.Src(), inner.Dst(), upMAC1, vtep2)
					}
					fallthrough
				case route.IPIP:
					ip := packet.IPv4(wire[14:])
					if ip.Src() != under1.As4() || ip.Dst() != under2.As4() {
						t.Errorf("outer %v -> %v", ip.Src(), ip.Dst())
					}
				}
				if diff := cmp.Diff(map[string]uint64{"to_peer": 1}, counts(n1.w)); diff != "" {
					t.Errorf("node 1 counters (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(map[string]uint64{"from_peer": 1}, counts(n2.w)); diff != "" {
					t.Errorf("node 2 counters (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestCrossNodeDrops(t *testing.T) {
	t.Run("unresolved", func(t *testing.T) {
		n1, _ := twoNodes(t, route.VXLAN)
		rt := n1.d.routes.Table
		if err := n1.d.SetRoutes(Routes{Table: rt, Peers: []Peer{{Name: "other", Address: under2, Tunnel: route.VXLAN}}}); err != nil {
			t.Fatal(err)
		}
		n1.pod.Deliver(udp4Frame(macA, podA.String(), podB.String(), 64))
		n1.w.step()
		if len(sent(n1.uplink)) != 0 {
			t.Error("a frame left for an unresolved peer")
		}
		if diff := cmp.Diff(map[string]uint64{"peer_unresolved": 1}, counts(n1.w)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})
	// Frames on node 2's uplink that must not reach pod B.
	vxlanFrom := func(t *testing.T, n1 *node, mutate func([]byte)) []byte {
		n1.pod.Deliver(udp4Frame(macA, podA.String(), podB.String(), 64))
		n1.w.step()
		out := sent(n1.uplink)
		if len(out) != 1 {
			t.Fatalf("node 1 sent %d frames", len(out))
		}
		mutate(out[0])
		return out[0]
	}
	reseal := func(f []byte) {
		ip := packet.IPv4(f[14:])
		ip.SetChecksum(0)
		ip.SetChecksum(packet.Checksum(ip[:20], 0))
	}
	for _, tc := range []struct {
		name   string
		mutate func([]byte)
		reason string
	}{
		{"unknown VTEP", func(f []byte) { packet.IPv4(f[14:]).SetSrc([4]byte{192, 168, 50, 9}); reseal(f) }, "unknown_vtep"},
		{"wrong VNI", func(f []byte) { f[14+20+8+6] = 7 }, "decap_wrong_vni"},
		{"bad outer checksum", func(f []byte) { f[14+10] ^= 0xff }, "decap_bad_checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n1, n2 := twoNodes(t, route.VXLAN)
			n2.uplink.Deliver(vxlanFrom(t, n1, tc.mutate))
			n2.w.step()
			if got := sent(n2.pod); len(got) != 0 {
				t.Error("pod B got the frame")
			}
			if diff := cmp.Diff(map[string]uint64{tc.reason: 1}, counts(n2.w)); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("for no pod", func(t *testing.T) {
		n1, n2 := twoNodes(t, route.Direct)
		n1.pod.Deliver(udp4Frame(macA, podA.String(), "10.244.2.99", 64))
		n1.w.step()
		out := sent(n1.uplink)
		if len(out) != 1 {
			t.Fatalf("node 1 sent %d frames", len(out))
		}
		n2.uplink.Deliver(out[0])
		n2.w.step()
		if diff := cmp.Diff(map[string]uint64{"peer_no_pod": 1}, counts(n2.w)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})
}

// TestFragNeeded: a DF packet too big for the tunnel is answered with ICMP
// fragmentation needed carrying the tunnel's MTU; without DF it is dropped.
func TestFragNeeded(t *testing.T) {
	n1, _ := twoNodes(t, route.VXLAN)
	if _, err := n1.d.EnableSlowPath(SlowPathConfig{}); err != nil {
		t.Fatal(err)
	}
	h := testHost
	h.PodPrefixes = pfx1
	if err := n1.d.SetHost(h); err != nil {
		t.Fatal(err)
	}
	big := func(df bool) []byte {
		f := ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4(podA.String(), podB.String(), 64, packet.ProtoUDP, nil, udpPayload(1500-20-8)))
		ip := packet.IPv4(f[14:])
		ip.SetFlags(0)
		if df {
			ip.SetFlags(packet.IPv4FlagDontFragment)
		}
		ip.SetChecksum(0)
		ip.SetChecksum(packet.Checksum(ip[:20], 0))
		return f
	}
	n1.pod.Deliver(big(true))
	n1.w.step()
	back := sent(n1.pod)
	if len(back) != 1 {
		t.Fatalf("pod A got %d frames back, want the ICMP error; counters %v", len(back), counts(n1.w))
	}
	var p packet.Parsed
	if m := packet.Decode(back[0], &p); m != packet.OK {
		t.Fatalf("ICMP error malformed: %v", m)
	}
	icmp := back[0][p.L4Off:]
	if p.IPProto != packet.ProtoICMP || icmp[0] != 3 || icmp[1] != 4 || binary.BigEndian.Uint16(icmp[6:8]) != uint16(pairMTU-50) {
		t.Errorf("got ICMP type %d code %d mtu %d, want 3/4 mtu %d", icmp[0], icmp[1], binary.BigEndian.Uint16(icmp[6:8]), pairMTU-50)
	}
	if p.Dst != podA {
		t.Errorf("ICMP error to %v, want pod A", p.Dst)
	}
	n1.pod.Deliver(big(false))
	n1.w.step()
	if len(sent(n1.uplink)) != 0 || len(sent(n1.pod)) != 0 {
		t.Error("a too-big packet without DF was sent somewhere")
	}
	if diff := cmp.Diff(map[string]uint64{"frag_needed": 1, "tunnel_too_big": 1}, counts(n1.w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestSetRoutesErrors(t *testing.T) {
	d, err := New(Config{Gateway: testGW})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := route.New(1, map[netip.Prefix]route.NextHop{pfx2[0]: {Kind: route.RemoteNode, Tunnel: route.VXLAN}})
	if err := d.SetRoutes(Routes{Table: rt, Peers: []Peer{{Address: under2}}}); err == nil {
		t.Error("routes to peers accepted without an uplink")
	}
	pairUplink(t, d, UplinkSpec{Ifname: "up", Address: under1}, upMAC1)
	if err := d.SetRoutes(Routes{Table: rt}); err == nil {
		t.Error("a route to peer 0 of none accepted")
	}
	if err := d.SetRoutes(Routes{Table: rt, Peers: []Peer{{Address: netip.MustParseAddr("fd00::1")}}}); err == nil {
		t.Error("an IPv6 underlay address accepted")
	}
	if err := d.SetRoutes(Routes{Table: rt, Peers: []Peer{{Address: under2, Tunnel: route.VXLAN}}}); err != nil {
		t.Error(err)
	}
}

// TestTunnelAllocs: sending to a peer and receiving from one allocate
// nothing.
func TestTunnelAllocs(t *testing.T) {
	for _, tun := range []route.Tunnel{route.Direct, route.VXLAN, route.IPIP} {
		n1, n2 := twoNodes(t, tun)
		in := udp4Frame(macA, podA.String(), podB.String(), 64)
		var wire []byte
		n := testing.AllocsPerRun(200, func() {
			n1.pod.Deliver(in)
			n1.w.step()
			n1.uplink.Sent(func(f []byte) { wire = append(wire[:0], f...) })
			n2.uplink.Deliver(wire)
			n2.w.step()
			n2.pod.Sent(func([]byte) {})
		})
		if n != 0 {
			t.Errorf("%v: %v allocations per frame", tun, n)
		}
		if c := counts(n2.w)["from_peer"]; c < 200 {
			t.Errorf("%v: node 2 delivered %d frames, want >= 200", tun, c)
		}
	}
}

// TestDecapReasons: every decapsulation failure is counted under the reason
// of the same name, and no two share one.
func TestDecapReasons(t *testing.T) {
	seen := map[string]bool{}
	for e := encap.Error(1); e < encap.NumErrors; e++ {
		got := decapReason[e].String()
		if got != "decap_"+e.String() || seen[got] {
			t.Errorf("encap.%v counted as %q", e, got)
		}
		seen[got] = true
	}
}
