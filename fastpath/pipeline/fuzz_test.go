package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/encap"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/policy"
	"github.com/ringnet/ringnet/tables/route"
	"github.com/ringnet/ringnet/tables/service"
)

// FuzzProcess feeds arbitrary frames to the whole per-packet path of a
// worker: its step, which runs process (ARP and ND for the gateway, the
// punt list and its ICMP errors, policy, the NAT step, routing to pods and
// peers) or fromUplink (decapsulation, replies to translated connections)
// on the frame and then forwards, answers, punts or tunnels it. The
// dataplane is node 1 of peer_test.go, built once with everything on (see
// newFuzzRig); the input is one frame and a selector byte that picks where
// it comes in (a pod port, the uplink, the slow path's queue from the host)
// and a few modes (see the sel constants).
//
// Per input, the target asserts:
//
//   - no panic;
//   - the worker counts the frame exactly once, under one reason, and
//     sends at most one frame, where that reason says (expectOutcome);
//   - every frame it sends lies within its UMEM chunk (or queue slot), is
//     at least an Ethernet header long and decodes with packet.Decode;
//     a tunnelled one decapsulates at its peer, which its inner destination
//     routes to, into an inner frame that decodes and fits the tunnel's MTU;
//   - forwarded, tunnelled and punted frames go where their destination
//     says, from the gateway's MAC, with the TTL decremented once (not at
//     all from the host) and, if the L4 checksum was right, still right
//     after the NAT step's rewrite;
//   - ARP and ND replies answer a request for the gateway, addressed back
//     to the requester's MAC (ARP: the sender hardware address; ND: the
//     solicitation's source MAC), with every field of the answer right and
//     the ICMPv6 checksum computed;
//   - ICMP errors go back to the sender from the node's address (to the
//     host: from the gateway's), quote the offending packet within RFC 1812
//     and RFC 4443's limits, carry the tunnel's MTU (fragmentation needed)
//     and a right checksum; without NAT, which may rewrite the packet an
//     error is about, they quote the input and are sent exactly when RFC
//     1812 and RFC 4443 allow (icmpErrorForbidden, a reference model);
//   - no UMEM chunk leaks and no queue slot stays taken.
//
// State that outlives a step is reset before each input, so that an input
// gives the same verdict whichever inputs ran before it: the connection
// and affinity tables are made afresh with a fixed set of connections
// (fuzzConns), the token buckets are refilled (or emptied, by a mode), and
// the IPv4 identification counters restart at zero. The flow event ring
// fills up and then counts its events lost, which changes no verdict.
func FuzzProcess(f *testing.F) {
	r := newFuzzRig(f)
	for _, s := range fuzzSeeds() {
		f.Add(s.sel, s.frame)
	}
	f.Fuzz(func(t *testing.T, sel byte, frame []byte) {
		r.run(t, sel, frame)
	})
}

// TestFuzzProcessSeeds checks that each of FuzzProcess's seeds takes the
// path it is there for, so that the fuzzer starts from every deep path of
// the rig and not from drops the rig's setup turned them into; and that
// the rig is deterministic: the seeds run again in reverse order give the
// same verdicts and the same frames, byte for byte.
func TestFuzzProcessSeeds(t *testing.T) {
	r := newFuzzRig(t)
	seeds := fuzzSeeds()
	dest := func(to int) string {
		if to < 0 {
			return "nowhere"
		}
		return ingressNames[to]
	}
	sentFirst := make([][]byte, len(seeds))
	for pass := range 2 {
		for j := range seeds {
			i := j
			if pass == 1 {
				i = len(seeds) - 1 - j
			}
			s := &seeds[i]
			reason, to := r.run(t, s.sel, s.frame)
			if reason != s.reason || to != s.to {
				t.Errorf("pass %d, seed %d (selector %#02x, from %s): counted as %v, sent %s; want %v, %s", pass, i, s.sel,
					ingressNames[int(s.sel&selIngress)%numIngress], reason, dest(to), s.reason, dest(s.to))
			}
			var sent []byte
			if len(r.out) == 1 {
				sent = r.out[0].frame
			}
			if pass == 0 {
				sentFirst[i] = bytes.Clone(sent)
			} else if !bytes.Equal(sent, sentFirst[i]) {
				t.Errorf("seed %d sent\n% x\nafter the seeds before it, and\n% x\nafter those after it", i, sentFirst[i], sent)
			}
		}
	}
}

// The selector byte: the ingress in the low three bits, modulo numIngress,
// and modes in the others.
const (
	selIngress  = 0x07
	selFixSums  = 0x08 // recompute IPv4 header checksums (outer, and inner of VXLAN or IPIP to us) before delivery
	selNoTokens = 0x10 // every token bucket empty: the punt list's over-limit reasons
	selNoPolicy = 0x20 // no NetworkPolicy published
	selPending  = 0x40 // with selNoPolicy: fail closed (Config.PolicyRequired before the first policy)
	selNoNAT    = 0x80 // no services and no masquerade: the NAT step does not run
)

// Ingresses, and destinations of what the worker sends: the pods' ports,
// the uplink, the host.
const (
	ingA = iota
	ingB
	ingC
	ingUplink
	ingHost
	numIngress
)

var ingressNames = [numIngress]string{"pod A", "pod B", "pod C", "uplink", "host"}

// Node 1's pods and the rest of the cluster.
var (
	fzA4, fzA6   = podA, podA6
	fzB4, fzB6   = netip.MustParseAddr("10.244.1.11"), netip.MustParseAddr("fd00:1::b")
	fzC4, fzC6   = netip.MustParseAddr("10.244.1.12"), netip.MustParseAddr("fd00:1::c")
	fzR2, fzR2v6 = podB, podB6                                                          // a pod on node 2 (VXLAN)
	fzR3, fzR3v6 = netip.MustParseAddr("10.244.3.30"), netip.MustParseAddr("fd00:3::c") // a pod on node 3 (IPIP)
	fzR4         = netip.MustParseAddr("10.244.4.40")                                   // a pod on node 4 (direct routing)
	fzR5         = netip.MustParseAddr("10.244.5.50")                                   // a pod on node 5, whose MAC is not resolved
	fzExt        = netip.MustParseAddr("192.168.60.5")                                  // a client outside the cluster
	fzServer     = netip.MustParseAddr("203.0.113.7")                                   // a server outside the cluster
	fzExtMAC     = [6]byte{0x02, 0xee, 0, 0, 0, 5}                                      // the underlay router's MAC
	fzGW4        = netip.AddrFrom4(testGW.IPv4)                                         // 169.254.1.1
)

// fuzzPeers are nodes 2 to 5, in route.NextHop.Node order, with their pod
// prefixes.
var fuzzPeers = []struct {
	Peer
	prefixes []netip.Prefix
}{
	{Peer{Name: "node2", Address: under2, Tunnel: route.VXLAN, VtepMAC: vtep2, MAC: upMAC2}, pfx2},
	{Peer{Name: "node3", Address: netip.MustParseAddr("192.168.50.3"), Tunnel: route.IPIP, MAC: [6]byte{0x02, 0xaa, 0, 0, 0, 3}},
		[]netip.Prefix{netip.MustParsePrefix("10.244.3.0/24"), netip.MustParsePrefix("fd00:3::/64")}},
	{Peer{Name: "node4", Address: netip.MustParseAddr("192.168.50.4"), Tunnel: route.Direct, MAC: [6]byte{0x02, 0xaa, 0, 0, 0, 4}},
		[]netip.Prefix{netip.MustParsePrefix("10.244.4.0/24"), netip.MustParsePrefix("fd00:4::/64")}},
	{Peer{Name: "node5", Address: netip.MustParseAddr("192.168.50.5"), Tunnel: route.VXLAN, VtepMAC: [6]byte{0x02, 0xbb, 0, 0, 0, 5}},
		[]netip.Prefix{netip.MustParsePrefix("10.244.5.0/24")}},
}

// fuzzConns are the connections tracked before every input, so that
// replies and later packets take the tracked paths: DNAT back, masquerade
// back, replies routed to another node, and connections a newer policy
// checks again.
func fuzzConns() []fuzzConn {
	tcp := func(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) conntrack.Key {
		return conntrack.KeyFrom(src, dst, sport, dport, packet.ProtoTCP)
	}
	to := func(a netip.Addr, port uint16) conntrack.NAT { return conntrack.NAT{Dst: a.As16(), DstPort: port} }
	return []fuzzConn{
		// A to the ClusterIP, to B.
		{tcp(fzA4, 40000, vip, 80), to(fzB4, 8080), fuzzGen},
		// A to a server outside, masqueraded.
		{tcp(fzA4, 40001, fzServer, 443), conntrack.NAT{Src: under1.As16(), SrcPort: 61000}, fuzzGen},
		// A client outside to the NodePort, to B, masqueraded.
		{tcp(fzExt, 5555, under1, 30080), conntrack.NAT{Dst: fzB4.As16(), DstPort: 8080, Src: under1.As16(), SrcPort: 61001}, fuzzGen},
		// A to the ClusterIP's port with a backend on node 2.
		{tcp(fzA4, 40002, vip, 81), to(fzR2, 8080), fuzzGen},
		// Node 2's pod to the ClusterIP, translated here to node 3's pod:
		// its replies come in from node 3 and leave for node 2.
		{tcp(fzR2, 40005, vip, 80), to(fzR3, 8080), fuzzGen},
		// A client outside to the NodePort, to node 3's pod, masqueraded:
		// its replies come in from node 3 and leave for the host.
		{tcp(fzExt, 5558, under1, 30082), conntrack.NAT{Dst: fzR3.As16(), DstPort: 8080, Src: under1.As16(), SrcPort: 61002}, fuzzGen},
		// C to B under the previous policy: checked again, allowed.
		{tcp(fzC4, 40003, fzB4, 80), conntrack.NAT{}, fuzzGen - 1},
		// C to B under the previous policy: checked again, denied.
		{tcp(fzC4, 40004, fzB4, 22), conntrack.NAT{}, fuzzGen - 1},
	}
}

// fuzzConn is a connection tracked with its translation, by the policy of
// generation label.
type fuzzConn struct {
	k     conntrack.Key
	nat   conntrack.NAT
	label uint32
}

// fuzzGen is the generation of the published policy.
const fuzzGen = 2

type fuzzPod struct {
	peer     *xsk.Peer
	sock     *xsk.Socket
	mac      [6]byte
	ipv4     netip.Addr
	ipv6     netip.Addr
	sentFunc func([]byte)
}

// fuzzOut is a frame the worker sent, to a pod port, the uplink or the
// host (an ingress index), as it lies in the UMEM chunk or queue slot.
type fuzzOut struct {
	to    int
	frame []byte
}

// fuzzRig is the dataplane FuzzProcess drives, and the state one input
// needs, allocated once.
type fuzzRig struct {
	d      *Dataplane
	w      *Worker
	hp     *HostPort
	pods   [3]fuzzPod
	up     *xsk.Peer
	upSock *xsk.Socket
	upSent func([]byte)
	routes *route.Table
	pol    *Policy
	svc    *service.Table
	masq   *Masquerade
	conns  []fuzzConn

	prev    [stats.NumReasons]uint64 // the worker's counters after the previous input
	in      []byte                   // the input frame, as delivered
	inner   []byte                   // the uplink input's inner frame, decapsulated in a copy
	scratch []byte                   // a copy of a tunnelled frame to decapsulate
	out     []fuzzOut
}

func newFuzzRig(tb testing.TB) *fuzzRig {
	d, err := New(Config{Gateway: testGW})
	if err != nil {
		tb.Fatal(err)
	}
	r := &fuzzRig{d: d, w: d.workers[0], conns: fuzzConns(), in: make([]byte, 0, 4096),
		inner: make([]byte, 0, 4096), scratch: make([]byte, 0, 4096)}
	for i, p := range []struct {
		name       string
		mac        [6]byte
		ipv4, ipv6 netip.Addr
	}{{"a", macA, fzA4, fzA6}, {"b", macB, fzB4, fzB6}, {"c", macC, fzC4, fzC6}} {
		peer := pairPort(tb, d, PortSpec{Ifname: p.name, MAC: net.HardwareAddr(p.mac[:]), IPv4: p.ipv4, IPv6: p.ipv6})[0]
		port, _ := d.Port(p.name)
		r.pods[i] = fuzzPod{peer: peer, sock: port.socks[0], mac: p.mac, ipv4: p.ipv4, ipv6: p.ipv6,
			sentFunc: func(f []byte) { r.out = append(r.out, fuzzOut{i, f}) }}
	}
	r.up = pairUplink(tb, d, UplinkSpec{Ifname: "up", Address: under1, LocalPrefixes: pfx1, VtepMAC: net.HardwareAddr(upMAC1[:])}, upMAC1)
	up, _ := d.Port("up")
	r.upSock = up.socks[0]
	r.upSent = func(f []byte) { r.out = append(r.out, fuzzOut{ingUplink, f}) }

	routes := map[netip.Prefix]route.NextHop{}
	var peers []Peer
	for i, p := range fuzzPeers {
		for _, pfx := range p.prefixes {
			routes[pfx] = route.NextHop{Kind: route.RemoteNode, Tunnel: p.Tunnel, Node: uint16(i)}
		}
		peers = append(peers, p.Peer)
	}
	if r.routes, err = route.New(1, routes); err != nil {
		tb.Fatal(err)
	}
	if err := d.SetRoutes(Routes{Table: r.routes, Peers: peers}); err != nil {
		tb.Fatal(err)
	}

	if r.hp, err = d.EnableSlowPath(SlowPathConfig{}); err != nil {
		tb.Fatal(err)
	}
	host := testHost // the node's address is under1, 192.168.50.1
	host.PodPrefixes = pfx1
	if err := d.SetHost(host); err != nil {
		tb.Fatal(err)
	}

	tcp, udp := uint8(packet.ProtoTCP), uint8(packet.ProtoUDP)
	one := func(a netip.Addr, port uint16) []service.Backend { return []service.Backend{{Addr: a, Port: port}} }
	setServices(tb, d,
		service.Spec{VIP: vip, Proto: tcp, Port: 80, Backends: append(one(fzA4, 8080), one(fzB4, 8080)...)}, // A reaches itself: hairpin
		service.Spec{VIP: vip, Proto: udp, Port: 53, Backends: one(fzB4, 5353)},
		service.Spec{VIP: vip, Proto: tcp, Port: 81, Backends: one(fzR2, 8080)},
		service.Spec{VIP: vip, Proto: tcp, Port: 82},
		service.Spec{VIP: vip, Proto: tcp, Port: 83, Backends: append(one(fzB4, 8080), one(fzC4, 8080)...), Affinity: time.Hour},
		service.Spec{VIP: vip, Proto: packet.ProtoSCTP, Port: 84, Backends: one(fzB4, 8084)},
		service.Spec{VIP: vip6, Proto: tcp, Port: 80, Backends: append(one(fzB6, 8080), one(fzR2v6, 8080)...)},
		service.Spec{VIP: under1, Proto: tcp, Port: 30080, External: true, Backends: one(fzB4, 8080)},
		service.Spec{VIP: under1, Proto: udp, Port: 30081, External: true, Local: true, Backends: one(fzB4, 5353)},
		service.Spec{VIP: under1, Proto: tcp, Port: 30082, External: true, Backends: one(fzR3, 8080)},
	)
	r.svc = d.Services()
	r.masq = &Masquerade{Except: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	if err := d.SetMasquerade(r.masq); err != nil {
		tb.Fatal(err)
	}

	// B takes anything from A and from node 2's pod, TCP 80 and 8080 from
	// C, and anything from the underlay's addresses (NodePort clients,
	// masqueraded or not); C may send TCP to pods only. A is not selected.
	tbl, err := policy.Build(fuzzGen, []policy.Policy{
		{Name: "default/b", Selected: []uint32{2}, Types: []policy.Direction{policy.Ingress}, Ingress: []policy.Rule{
			{Peers: []policy.Peer{{Identities: []uint32{1, 4}}}},
			{Peers: []policy.Peer{{Identities: []uint32{3}}}, Ports: []policy.Port{{Proto: policy.TCP, Port: 80}, {Proto: policy.TCP, Port: 8080}}},
			{Peers: []policy.Peer{{CIDR: netip.MustParsePrefix("192.168.0.0/16")}}},
		}},
		{Name: "default/c", Selected: []uint32{3}, Types: []policy.Direction{policy.Egress}, Egress: []policy.Rule{
			{Peers: []policy.Peer{{CIDR: netip.MustParsePrefix("10.244.0.0/16")}}, Ports: []policy.Port{{Proto: policy.TCP}}},
		}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	r.pol = &Policy{Table: tbl, Gen: fuzzGen, Identity: map[netip.Addr]uint32{
		fzA4: 1, fzA6: 1, fzB4: 2, fzB6: 2, fzC4: 3, fzC6: 3, fzR2: 4, fzR2v6: 4, fzR3: 5, fzR3v6: 5,
	}}
	if err := d.SetPolicy(r.pol); err != nil {
		tb.Fatal(err)
	}
	r.w.step() // adopt the port set (allocates once, by design)
	r.w.Counters.Publish()
	for i := range r.prev {
		r.prev[i] = r.w.Counters.Load(stats.Reason(i))
	}
	return r
}

// maxFrame is the largest frame ingress in can carry: a UMEM chunk behind
// the kernel's headroom, or a queue slot.
func (r *fuzzRig) maxFrame(in int) int {
	switch in {
	case ingHost:
		return r.hp.FromHost(0).SlotSize()
	case ingUplink:
		return int(r.upSock.Config().FrameSize - uint32(r.up.Headroom))
	}
	return int(r.pods[in].sock.Config().FrameSize - uint32(r.pods[in].peer.Headroom))
}

// reset puts back what the previous input may have changed, and sets the
// modes sel asks for.
func (r *fuzzRig) reset(t *testing.T, sel byte) {
	d, fw := r.d, &r.w.fwd
	ct, err := conntrack.New(conntrack.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	aff, err := conntrack.New(conntrack.Config{Capacity: 16, Timeouts: conntrack.Timeouts{Other: service.MaxAffinity}})
	if err != nil {
		t.Fatal(err)
	}
	now := d.ConntrackNow()
	for _, c := range r.conns {
		if _, res := ct.Insert(c.k, c.nat, c.label, now); res != conntrack.Inserted {
			t.Fatalf("tracking %v: %v", c.k, res)
		}
	}
	d.ct.Store(ct)
	d.aff.Store(aff)
	*fw.hflows = hostFlows{} // no flow answered by an earlier input
	for c := range NumPuntClasses {
		fw.buckets[c] = newBucket(c.DefaultLimit())
		if sel&selNoTokens != 0 {
			// A cost beyond any credit the worker's clock can accrue.
			fw.buckets[c] = bucket{cost: 1 << 62, max: 1 << 62}
		}
	}
	fw.ipID, r.w.outerID = 0, 0
	pol, pending := r.pol, false
	if sel&selNoPolicy != 0 {
		pol, pending = nil, sel&selPending != 0
	}
	d.policy.Store(pol)
	d.pending.Store(pending)
	svc, masq := r.svc, r.masq
	if sel&selNoNAT != 0 {
		svc, masq = nil, nil
	}
	d.services.Store(svc)
	d.masq.Store(masq)
}

// run sends data, truncated to what the ingress carries, in as sel says,
// steps the worker and checks what it did. It returns the reason the frame
// was counted under and where the worker sent a frame for it (-1: nowhere).
func (r *fuzzRig) run(t *testing.T, sel byte, data []byte) (stats.Reason, int) {
	ing := int(sel&selIngress) % numIngress
	in := append(r.in[:0], data[:min(len(data), r.maxFrame(ing))]...)
	r.in = in
	if sel&selFixSums != 0 {
		fixIPv4Sums(in)
	}
	r.reset(t, sel)

	switch ing {
	case ingUplink:
		if r.up.Deliver(in) != 1 {
			t.Fatal("uplink: deliver failed")
		}
	case ingHost:
		if !r.hp.FromHost(0).Push(in) {
			t.Fatal("host: queue full")
		}
		r.hp.FromHost(0).Flush()
	default:
		if r.pods[ing].peer.Deliver(in) != 1 {
			t.Fatalf("%s: deliver failed", ingressNames[ing])
		}
	}
	r.w.step()

	reason, n := r.counted()
	r.out = r.out[:0]
	for i := range r.pods {
		r.pods[i].peer.Sent(r.pods[i].sentFunc)
	}
	r.up.Sent(r.upSent)
	toHost := r.hp.ToHost(0)
	queued := toHost.Peek(toHost.Len())
	for i := range queued {
		r.out = append(r.out, fuzzOut{ingHost, toHost.Frame(i)})
	}
	defer func() {
		toHost.Release(queued)
		r.checkNoLeak(t)
	}()

	if n != 1 {
		t.Fatalf("%s: the frame was counted %s; want exactly once\nframe % x", ingressNames[ing], r.describeCounts(), in)
	}
	r.checkOutcome(t, ing, sel, reason)
	if len(r.out) == 0 {
		return reason, -1
	}
	return reason, r.out[0].to
}

// counted returns the reason the worker's counters grew by since the
// previous input, and by how much they grew in all.
func (r *fuzzRig) counted() (stats.Reason, uint64) {
	c := &r.w.Counters
	c.Publish()
	var reason stats.Reason
	var n uint64
	for i := range r.prev {
		v := c.Load(stats.Reason(i))
		if v != r.prev[i] {
			reason, n = stats.Reason(i), n+v-r.prev[i]
		}
	}
	return reason, n
}

// describeCounts lists the counters that grew, for a failure message; it
// updates prev.
func (r *fuzzRig) describeCounts() string {
	var s []string
	for i := range r.prev {
		if v := r.w.Counters.Load(stats.Reason(i)); v != r.prev[i] {
			s = append(s, fmt.Sprintf("%v +%d", stats.Reason(i), v-r.prev[i]))
			r.prev[i] = v
		}
	}
	if len(s) == 0 {
		return "under no reason"
	}
	return "as " + strings.Join(s, ", ")
}

// checkNoLeak: every UMEM chunk of every socket is free or on its fill
// ring again, and the queue from the host is empty. It runs deferred,
// after a failure too, so it reports with Error, not Fatal.
func (r *fuzzRig) checkNoLeak(t *testing.T) {
	r.w.Counters.Publish()
	for i := range r.prev {
		r.prev[i] = r.w.Counters.Load(stats.Reason(i))
	}
	check := func(name string, s *xsk.Socket, p *xsk.Peer) {
		s.Complete() // as the worker's next step would
		if n := s.FreeFrames() + p.FillCount(); n != int(s.Config().NumFrames) {
			t.Errorf("%s: %d UMEM chunks free or on the fill ring, want %d: a chunk leaked or was freed twice", name, n, s.Config().NumFrames)
		}
	}
	for i := range r.pods {
		check(ingressNames[i], r.pods[i].sock, r.pods[i].peer)
	}
	check("uplink", r.upSock, r.up)
	if r.hp.FromHost(0).Pending() {
		t.Error("the frame from the host is still in its queue")
	}
}

// Where the frame of a reason goes, and how many of it.
const (
	wantNone = iota // nothing is sent
	wantOne         // exactly one frame
	wantMay         // one frame or none
)

// Destinations besides the ingress indexes.
const (
	toAnyPod  = -1
	toIngress = -2
)

// expectOutcome says what the worker sends for a frame from ingress in
// that it counted under reason: how many frames, and to where.
func expectOutcome(in int, reason stats.Reason) (want, to int) {
	switch reason {
	case stats.Forwarded, stats.FromPeer:
		return wantOne, toAnyPod
	case stats.ARPReply, stats.NDReply:
		return wantOne, toIngress
	case stats.ToPeer:
		return wantOne, ingUplink
	case stats.ToHost, stats.ToHostNew, stats.NoRoute, stats.IPOptions, stats.Fragment, stats.UnknownEtherType:
		switch in {
		case ingHost:
			return wantNone, 0 // never handed back to the host
		case ingUplink:
			return wantMay, ingHost // a reply translated back to a client off the cluster: no_route
		}
		return wantOne, ingHost
	case stats.TTLExpired, stats.Unreachable, stats.FragNeeded:
		if in == ingUplink {
			return wantNone, 0 // nothing from the uplink is answered
		}
		return wantMay, toIngress // an ICMP error, if one may be sent (checkOutcome)
	}
	return wantNone, 0
}

func (r *fuzzRig) checkOutcome(t *testing.T, in int, sel byte, reason stats.Reason) {
	switch reason {
	case stats.TxNoFrame, stats.TxRingFull, stats.NoPort, stats.PuntQueueFull:
		t.Fatalf("%s: counted as %v: the rig drains every ring and queue after each frame", ingressNames[in], reason)
	}
	want, to := expectOutcome(in, reason)
	switch to {
	case toIngress:
		to = in
	}
	out := r.out
	switch {
	case len(out) > 1,
		want == wantNone && len(out) != 0,
		want == wantOne && len(out) != 1:
		t.Fatalf("%s: counted as %v, sent %d frames (%s)\nframe % x", ingressNames[in], reason, len(out), r.destinations(), r.in)
	}
	if len(out) == 0 {
		if in != ingUplink && isICMPCause(reason) && sel&selNoNAT != 0 {
			// Without NAT the packet the error is about is the input.
			if p, ok := r.parsedInput(in); ok && !icmpErrorForbidden(&p) {
				t.Fatalf("%s: counted as %v, but no ICMP error was sent about a packet RFC 1812 and RFC 4443 allow one for\nframe % x", ingressNames[in], reason, r.in)
			}
		}
		return
	}
	o := out[0]
	if to == toAnyPod && o.to > ingC || to != toAnyPod && o.to != to {
		t.Fatalf("%s: counted as %v, sent to %s\nframe % x", ingressNames[in], reason, ingressNames[o.to], r.in)
	}
	f := o.frame
	limit := r.maxFrame(ingHost)
	if o.to != ingHost {
		s := r.upSock
		if o.to <= ingC {
			s = r.pods[o.to].sock
		}
		limit = int(s.Config().FrameSize)
		if !inChunk(s, f) {
			t.Fatalf("%s: counted as %v, sent a frame of %d bytes that runs past its UMEM chunk", ingressNames[in], reason, len(f))
		}
	}
	if len(f) < packet.EthernetLen || len(f) > limit {
		t.Fatalf("%s: counted as %v, sent a frame of %d bytes (want %d to %d)", ingressNames[in], reason, len(f), packet.EthernetLen, limit)
	}
	var p packet.Parsed
	if m := packet.Decode(f, &p); m != packet.OK {
		t.Fatalf("%s: counted as %v, sent a frame to %s that does not decode (%v)\nin  % x\nout % x",
			ingressNames[in], reason, ingressNames[o.to], m, r.in, f)
	}
	pin, ok := r.parsedInput(in)
	if !ok {
		t.Fatalf("%s: counted as %v, sent a frame, but the input does not decode\nframe % x", ingressNames[in], reason, r.in)
	}
	c := fuzzCheck{t: t, r: r, in: in, reason: reason, sel: sel, pin: &pin, p: &p, f: f, to: o.to}
	switch {
	case reason == stats.Forwarded || reason == stats.FromPeer:
		c.delivered()
	case reason == stats.ToPeer:
		c.tunnelled()
	case reason == stats.ARPReply:
		c.arpReply()
	case reason == stats.NDReply:
		c.neighborAdvert()
	case isICMPCause(reason):
		c.icmpError()
	default:
		c.punted()
	}
}

func isICMPCause(r stats.Reason) bool {
	return r == stats.TTLExpired || r == stats.Unreachable || r == stats.FragNeeded
}

// destinations names where the frames sent went, for a failure message.
func (r *fuzzRig) destinations() string {
	var s []string
	for _, o := range r.out {
		s = append(s, ingressNames[o.to])
	}
	return strings.Join(s, ", ")
}

// parsedInput decodes the input as the pipeline took it: the frame itself,
// or from the uplink the inner frame of tunnel traffic for this node. The
// frame decoded is the rig's own copy (r.in, r.inner).
func (r *fuzzRig) parsedInput(in int) (packet.Parsed, bool) {
	var p packet.Parsed
	f := r.in
	if in == ingUplink {
		f = r.uplinkInner()
	}
	return p, f != nil && packet.Decode(f, &p) == packet.OK
}

// uplinkInner returns the frame fromUplink hands on to fromPeer: the
// input, or the inner frame of a tunnelled one (nil if decapsulation
// fails), decapsulated in a copy.
func (r *fuzzRig) uplinkInner() []byte {
	f := append(r.inner[:0], r.in...)
	r.inner = f
	u := r.d.under.Load()
	if len(f) < packet.EthernetLen+packet.IPv4MinLen || packet.Ethernet(f).EtherType() != packet.EtherTypeIPv4 ||
		packet.IPv4(f[packet.EthernetLen:]).Dst() != u.local {
		return f
	}
	var start, end int
	var err encap.Error
	switch u.tunnel(f) {
	case packet.ProtoUDP:
		start, end, _, err = u.vx.Decap(f, u.local)
	case packet.ProtoIPIP:
		start, end, _, err = encap.DecapIPIP(f, u.local)
	default:
		return f
	}
	if err != encap.OK {
		return nil
	}
	return f[start:end]
}

// inputFrame is the frame the pipeline took: the input, or from the
// uplink its inner frame (after parsedInput).
func (r *fuzzRig) inputFrame(in int) []byte {
	if in == ingUplink {
		return r.uplinkInner()
	}
	return r.in
}

// inChunk reports whether f, a frame the stand-in kernel (xsk.Peer.Sent)
// took off a TX ring, lies within one UMEM chunk of s. Sent slices the
// UMEM from the descriptor's address without bounding the capacity, so
// cap(f) says where in the UMEM f starts.
func inChunk(s *xsk.Socket, f []byte) bool {
	size := int(s.Config().FrameSize)
	at := int(s.Config().NumFrames)*size - cap(f)
	return at >= 0 && at%size+len(f) <= size
}

// fuzzCheck checks one frame the worker sent: f, parsed into p, sent to
// to, for the input from in, parsed into pin, counted under reason.
type fuzzCheck struct {
	t      *testing.T
	r      *fuzzRig
	in     int
	reason stats.Reason
	sel    byte
	pin, p *packet.Parsed
	f      []byte
	to     int
}

func (c *fuzzCheck) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s, counted as %v, to %s: %s\nin  % x\nout % x", ingressNames[c.in], c.reason, ingressNames[c.to],
		fmt.Sprintf(format, args...), c.r.in, c.f)
}

func (c *fuzzCheck) macs(dst, src [6]byte) {
	c.t.Helper()
	eth := packet.Ethernet(c.f)
	if eth.Dst() != dst || eth.Src() != src {
		c.fatalf("MACs %x -> %x, want %x -> %x", eth.Src(), eth.Dst(), src, dst)
	}
}

// routedOnce checks that the packet p in f is the input packet pin, in
// frame inFrame, routed by one hop: the TTL decremented once (not from the
// host, which is the same router), the same family, and if the input's L4
// checksum was right, the output's still is (through the NAT step's
// rewrite); without NAT, the same addresses and ports.
func (c *fuzzCheck) routedOnce(p *packet.Parsed, f []byte, inFrame []byte) {
	c.t.Helper()
	pin := c.pin
	if p.EtherType != pin.EtherType || p.IPProto != pin.IPProto {
		c.fatalf("EtherType %#04x protocol %d, input %#04x protocol %d", p.EtherType, p.IPProto, pin.EtherType, pin.IPProto)
	}
	want := pin.TTL - 1
	if c.in == ingHost {
		want = pin.TTL
	}
	if p.TTL != want {
		c.fatalf("TTL %d, input %d", p.TTL, pin.TTL)
	}
	if v, ok := l4Valid(pin, inFrame); ok && v {
		if v, ok := l4Valid(p, f); !ok || !v {
			c.fatalf("the input's L4 checksum was right, the output's is not")
		}
	}
	if c.sel&selNoNAT != 0 && (p.Src != pin.Src || p.Dst != pin.Dst || p.SrcPort != pin.SrcPort || p.DstPort != pin.DstPort) {
		c.fatalf("%v:%d > %v:%d, input %v:%d > %v:%d, with no NAT", p.Src, p.SrcPort, p.Dst, p.DstPort, pin.Src, pin.SrcPort, pin.Dst, pin.DstPort)
	}
}

// delivered: a frame to a pod goes to the pod its destination is.
func (c *fuzzCheck) delivered() {
	pod := &c.r.pods[c.to]
	c.macs(pod.mac, gwMAC)
	if c.p.Dst != pod.ipv4 && c.p.Dst != pod.ipv6 {
		c.fatalf("to %v at %s (%v, %v)", c.p.Dst, ingressNames[c.to], pod.ipv4, pod.ipv6)
	}
	inFrame := c.r.inputFrame(c.in)
	if len(c.f) != len(inFrame) {
		c.fatalf("%d bytes, the input %d", len(c.f), len(inFrame))
	}
	c.routedOnce(c.p, c.f, inFrame)
}

// tunnelled: a frame on the uplink goes to the peer node its destination
// routes to, encapsulated as that peer's tunnel says, within its MTU.
func (c *fuzzCheck) tunnelled() {
	eth := packet.Ethernet(c.f)
	peer := -1
	for i, p := range fuzzPeers {
		if p.MAC == eth.Dst() && p.MAC != ([6]byte{}) {
			peer = i
		}
	}
	if peer < 0 || eth.Src() != upMAC1 {
		c.fatalf("on the underlay %x -> %x: no peer's MAC, or not the uplink's", eth.Src(), eth.Dst())
	}
	p := &fuzzPeers[peer]
	inner := c.f
	switch p.Tunnel {
	case route.VXLAN:
		vx := encap.VXLAN{VNI: encap.FlannelVNI, Port: encap.FlannelPort}
		start, end, src, err := vx.Decap(c.f, p.Address.As4())
		if err != encap.OK || src != under1.As4() {
			c.fatalf("VXLAN to %s does not decapsulate there: %v (from %v)", p.Name, err, netip.AddrFrom4(src))
		}
		inner = c.f[start:end]
		if e := packet.Ethernet(inner); e.Dst() != p.VtepMAC || e.Src() != upMAC1 {
			c.fatalf("inner MACs %x -> %x, want %x -> %x (VTEPs)", e.Src(), e.Dst(), upMAC1, p.VtepMAC)
		}
	case route.IPIP:
		s := append(c.r.scratch[:0], c.f...)
		c.r.scratch = s
		start, end, src, err := encap.DecapIPIP(s, p.Address.As4())
		if err != encap.OK || src != under1.As4() {
			c.fatalf("IPIP to %s does not decapsulate there: %v (from %v)", p.Name, err, netip.AddrFrom4(src))
		}
		inner = s[start:end]
	}
	var pi packet.Parsed
	if m := packet.Decode(inner, &pi); m != packet.OK {
		c.fatalf("the inner frame does not decode: %v", m)
	}
	if nh, ok := c.r.routes.Lookup(pi.Dst); !ok || nh.Kind != route.RemoteNode || int(nh.Node) != peer {
		c.fatalf("inner destination %v does not route to %s", pi.Dst, p.Name)
	}
	if mtu := TunnelMTU(pairMTU, p.Tunnel); len(inner)-int(pi.L3Off) > mtu {
		c.fatalf("an inner packet of %d bytes through a tunnel of MTU %d", len(inner)-int(pi.L3Off), mtu)
	}
	c.routedOnce(&pi, inner, c.r.inputFrame(c.in))
}

// punted: a frame for the host goes to the TAP's MAC, otherwise unchanged
// (but for the NAT step's rewrite).
func (c *fuzzCheck) punted() {
	c.macs(tapMAC, gwMAC)
	inFrame := c.r.inputFrame(c.in)
	if len(c.f) != len(inFrame) {
		c.fatalf("%d bytes, the input %d", len(c.f), len(inFrame))
	}
	if c.sel&selNoNAT != 0 && !bytes.Equal(c.f[12:], inFrame[12:]) {
		c.fatalf("changed beyond its MACs, with no NAT")
	}
	if v, ok := l4Valid(c.pin, inFrame); ok && v {
		if v, ok := l4Valid(c.p, c.f); !ok || !v {
			c.fatalf("the input's L4 checksum was right, the output's is not")
		}
	}
}

// arpReply: the answer to a request for the gateway, in place, to the
// requester's hardware address.
func (c *fuzzCheck) arpReply() {
	q := packet.ARP(c.r.in[c.pin.L3Off:])
	if c.pin.EtherType != packet.EtherTypeARP || q.Op() != packet.ARPRequest || q.TargetIP() != testGW.IPv4 {
		c.fatalf("an ARP reply to something that is no request for the gateway")
	}
	if c.p.EtherType != packet.EtherTypeARP || c.p.L3Off != c.pin.L3Off || len(c.f) != len(c.r.in) {
		c.fatalf("the reply is no ARP frame of the request's length")
	}
	c.macs(q.SenderHW(), gwMAC)
	a := packet.ARP(c.f[c.p.L3Off:])
	if a.Op() != packet.ARPReply || a.SenderHW() != gwMAC || a.SenderIP() != testGW.IPv4 ||
		a.TargetHW() != q.SenderHW() || a.TargetIP() != q.SenderIP() {
		c.fatalf("op %d, %x %v -> %x %v; want a reply from the gateway to %x %v",
			a.Op(), a.SenderHW(), a.SenderIP(), a.TargetHW(), a.TargetIP(), q.SenderHW(), q.SenderIP())
	}
}

// neighborAdvert: the solicited advertisement for a solicitation of the
// gateway, to the soliciting address and MAC.
func (c *fuzzCheck) neighborAdvert() {
	pin, p := c.pin, c.p
	ns := packet.ICMPv6(c.r.in[pin.L4Off:])
	if pin.IPProto != packet.ProtoICMPv6 || pin.ICMPType != packet.ICMPv6NeighborSolicitation || pin.ICMPCode != 0 ||
		pin.TTL != 255 || pin.Src.IsUnspecified() || ns.TargetAddress() != testGW.IPv6 {
		c.fatalf("an advertisement for something that is no solicitation of the gateway")
	}
	c.macs(packet.Ethernet(c.r.in).Src(), gwMAC)
	if len(c.f) != int(pin.L3Off)+packet.IPv6Len+naLen {
		c.fatalf("%d bytes, want %d", len(c.f), int(pin.L3Off)+packet.IPv6Len+naLen)
	}
	na := packet.ICMPv6(c.f[p.L4Off:])
	router, solicited, override := na.NAFlags()
	lla, ok := na.NDLinkLayerAddr(packet.NDOptTargetLinkLayerAddr)
	if p.IPProto != packet.ProtoICMPv6 || p.ICMPType != packet.ICMPv6NeighborAdvertisement || p.ICMPCode != 0 || p.TTL != 255 ||
		p.Src != netip.AddrFrom16(testGW.IPv6) || p.Dst != pin.Src || na.TargetAddress() != testGW.IPv6 ||
		!router || !solicited || !override || !ok || lla != gwMAC {
		c.fatalf("not the gateway's solicited advertisement to %v: %+v", pin.Src, *p)
	}
	if sum := packet.L4Checksum(p, c.f); sum != na.Checksum() {
		c.fatalf("ICMPv6 checksum %#04x, want %#04x", na.Checksum(), sum)
	}
}

// icmpError: the error the reason names, back to the sender, quoting the
// packet.
func (c *fuzzCheck) icmpError() {
	pin, p, f := c.pin, c.p, c.f
	c.macs(packet.Ethernet(c.r.in).Src(), gwMAC)
	v4 := pin.EtherType == packet.EtherTypeIPv4
	typ, code := icmpTypeCode(v4, c.reason)
	proto, src, maxLen := uint8(packet.ProtoICMPv6), netip.AddrFrom16(testGW.IPv6), 1280
	if v4 {
		proto, src, maxLen = packet.ProtoICMP, fzGW4, 576
	}
	if c.to != ingHost {
		src = nodeIPv6
		if v4 {
			src = nodeIPv4
		}
	}
	if p.EtherType != pin.EtherType || p.IPProto != proto || p.ICMPType != typ || p.ICMPCode != code ||
		p.Src != src || p.TTL != icmpHopLimit || p.HasOptions || p.Fragment {
		c.fatalf("%v -> %v protocol %d type %d code %d TTL %d; want from %v, protocol %d type %d code %d TTL %d",
			p.Src, p.Dst, p.IPProto, p.ICMPType, p.ICMPCode, p.TTL, src, proto, typ, code, icmpHopLimit)
	}
	if sum, have := packet.L4Checksum(p, f), binary.BigEndian.Uint16(f[p.L4Off+2:]); sum != have {
		c.fatalf("ICMP checksum %#04x, want %#04x", have, sum)
	}
	if len(f)-int(p.L3Off) > maxLen {
		c.fatalf("an error of %d bytes, more than %d", len(f)-int(p.L3Off), maxLen)
	}
	// The quote: the start of the packet as the pipeline had it, which
	// without NAT is the input's.
	quote := f[int(p.L4Off)+icmpHeaderLen:]
	orig := c.r.in[pin.L3Off:]
	var total, hdr int
	var qsrc, qdst netip.Addr
	if v4 {
		total, hdr = int(packet.IPv4(orig).TotalLength()), packet.IPv4(orig).IHL()
		if len(quote) >= packet.IPv4MinLen {
			qsrc, qdst = netip.AddrFrom4(packet.IPv4(quote).Src()), netip.AddrFrom4(packet.IPv4(quote).Dst())
		}
	} else {
		total, hdr = packet.IPv6Len+int(packet.IPv6(orig).PayloadLength()), packet.IPv6Len
		if len(quote) >= packet.IPv6Len {
			qsrc, qdst = netip.AddrFrom16(packet.IPv6(quote).Src()), netip.AddrFrom16(packet.IPv6(quote).Dst())
		}
	}
	if len(quote) > total || len(quote) < min(total, hdr+8) {
		c.fatalf("quotes %d bytes of a packet of %d", len(quote), total)
	}
	if p.Dst != qsrc {
		c.fatalf("to %v about a packet from %v", p.Dst, qsrc)
	}
	if c.sel&selNoNAT != 0 && !bytes.Equal(quote, orig[:len(quote)]) {
		c.fatalf("the quote is not the start of the input packet, with no NAT")
	}
	if c.reason == stats.FragNeeded {
		nh, ok := c.r.routes.Lookup(qdst)
		if !ok || nh.Kind != route.RemoteNode {
			c.fatalf("fragmentation needed about a packet to %v, which no peer has", qdst)
		}
		mtu := TunnelMTU(pairMTU, fuzzPeers[nh.Node].Tunnel)
		msg := f[p.L4Off:]
		got := int(binary.BigEndian.Uint32(msg[4:8]))
		if v4 {
			got = int(binary.BigEndian.Uint16(msg[6:8]))
		}
		// The IP packet is what must exceed the MTU, not the frame:
		// corpus entry padded-frag-needed is a small packet in a frame
		// padded past it, which toPeer once answered with an MTU the
		// packet already fitted (docs/reliability.md, "Fuzzing").
		if got != mtu || total <= mtu {
			c.fatalf("announces MTU %d about a packet of %d in %d bytes; the tunnel to %s has %d", got, total, len(orig), fuzzPeers[nh.Node].Name, mtu)
		}
	}
	if c.sel&selNoNAT != 0 && icmpErrorForbidden(pin) {
		c.fatalf("an ICMP error about a packet RFC 1812 and RFC 4443 forbid one for")
	}
}

// icmpTypeCode is the ICMP error of a punt-list reason, ICMPv4 or ICMPv6.
func icmpTypeCode(v4 bool, r stats.Reason) (typ, code uint8) {
	switch {
	case r == stats.TTLExpired && v4:
		return packet.ICMPv4TimeExceeded, 0
	case r == stats.TTLExpired:
		return packet.ICMPv6TimeExceeded, 0
	case r == stats.Unreachable && v4:
		return packet.ICMPv4DestUnreachable, icmp4CodeHostUnreachable
	case r == stats.Unreachable:
		return packet.ICMPv6DestUnreachable, icmp6CodeAddrUnreachable
	case v4:
		return packet.ICMPv4DestUnreachable, icmp4CodeFragNeeded
	}
	return packet.ICMPv6PacketTooBig, 0
}

// icmpErrorForbidden is the reference model of when no ICMP error may be
// sent about a packet (RFC 1812 4.3.2.7, RFC 4443 2.4(e)): about a
// fragment other than the first, a packet to a multicast or broadcast
// address, from an address that is not one host's (unspecified, multicast,
// broadcast, loopback), or about an ICMP error or redirect.
func icmpErrorForbidden(p *packet.Parsed) bool {
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	switch {
	case p.Fragment && !p.FirstFragment,
		p.Dst.IsMulticast() || p.Dst == bcast,
		p.Src.IsUnspecified() || p.Src.IsMulticast() || p.Src.IsLoopback() || p.Src == bcast:
		return true
	case p.L4Off == 0:
		return false
	case p.IPProto == packet.ProtoICMP && p.EtherType == packet.EtherTypeIPv4:
		switch p.ICMPType {
		case 3, 4, 5, 11, 12: // unreachable, source quench, redirect, time exceeded, parameter problem
			return true
		}
	case p.IPProto == packet.ProtoICMPv6 && p.EtherType == packet.EtherTypeIPv6:
		return p.ICMPType < 128 || p.ICMPType == packet.ICMPv6Redirect
	}
	return false
}

// l4Valid reports whether the L4 checksum of the packet parsed into p is
// right, and whether it has one to check: TCP, UDP (IPv4 UDP without a
// checksum has none), ICMP and ICMPv6, unfragmented. 0 and 0xffff are the
// same one's complement sum, except for UDP, where 0 means none.
func l4Valid(p *packet.Parsed, f []byte) (valid, ok bool) {
	if p.L4Off == 0 || p.Fragment {
		return false, false
	}
	at := 2
	switch {
	case p.IPProto == packet.ProtoTCP:
		at = 16
	case p.IPProto == packet.ProtoUDP:
		at = 6
	case p.IPProto == packet.ProtoICMP && p.EtherType == packet.EtherTypeIPv4,
		p.IPProto == packet.ProtoICMPv6 && p.EtherType == packet.EtherTypeIPv6:
	default:
		return false, false
	}
	if int(p.L4Off)+at+2 > len(f) {
		return false, false
	}
	have, want := binary.BigEndian.Uint16(f[int(p.L4Off)+at:]), packet.L4Checksum(p, f)
	if p.IPProto == packet.ProtoUDP {
		if want == 0 || have == 0 && p.EtherType == packet.EtherTypeIPv4 {
			return false, false // no checksum, or no UDP length to compute one over
		}
		return have == want, true
	}
	return have == want || have^want == 0xffff && (have == 0 || want == 0), true
}

// fixIPv4Sums recomputes the IPv4 header checksum of frame, and of the
// inner packet of a VXLAN or IPIP packet in it, so that mutations of the
// headers reach past the checksum; a VXLAN packet's UDP checksum is
// cleared (none).
func fixIPv4Sums(frame []byte) {
	if len(frame) < packet.EthernetLen || packet.Ethernet(frame).EtherType() != packet.EtherTypeIPv4 ||
		!fixIPv4At(frame, packet.EthernetLen) {
		return
	}
	ip := packet.IPv4(frame[packet.EthernetLen:])
	l4 := packet.EthernetLen + ip.IHL()
	switch ip.Protocol() {
	case packet.ProtoIPIP:
		fixIPv4At(frame, l4)
	case packet.ProtoUDP:
		inner := l4 + packet.UDPLen + 8 // after the UDP and VXLAN headers
		if len(frame) < inner+packet.EthernetLen || packet.UDP(frame[l4:]).DstPort() != encap.FlannelPort {
			return
		}
		binary.BigEndian.PutUint16(frame[l4+6:], 0)
		if packet.Ethernet(frame[inner:]).EtherType() == packet.EtherTypeIPv4 {
			fixIPv4At(frame, inner+packet.EthernetLen)
		}
	}
}

// fixIPv4At recomputes the checksum of the IPv4 header at frame[off:], if
// one is there and fits; it reports whether it did.
func fixIPv4At(frame []byte, off int) bool {
	if len(frame) < off+packet.IPv4MinLen {
		return false
	}
	ip := packet.IPv4(frame[off:])
	if ip.Version() != 4 || ip.IHL() < packet.IPv4MinLen || off+ip.IHL() > len(frame) {
		return false
	}
	ip.SetChecksum(0)
	ip.SetChecksum(ip.CalculateChecksum())
	return true
}

type fuzzSeed struct {
	sel   byte
	frame []byte
	// What becomes of it (TestFuzzProcessSeeds): the reason it is counted
	// under, and where the worker sends a frame for it (-1: nowhere).
	reason stats.Reason
	to     int
}

// fuzzSeeds are valid frames down every path of the rig, from each
// ingress, most with the checksum fixing on so that their mutations keep
// valid IPv4 headers, each with what becomes of it.
func fuzzSeeds() []fuzzSeed {
	const fix = selFixSums
	s := func(a netip.Addr) string { return a.String() }
	a4, a6, b4, b6, c4 := s(fzA4), s(fzA6), s(fzB4), s(fzB6), s(fzC4)
	fromMAC := func(mac [6]byte, f []byte) []byte { copy(f[6:12], mac[:]); return f }
	toMAC := func(mac [6]byte, f []byte) []byte { copy(f[0:6], mac[:]); return f }
	l4 := func(mac [6]byte, proto uint8, src, dst netip.Addr, sport, dport uint16) []byte {
		seg := l4Segment(proto, src, dst, sport, dport, false)
		if src.Is4() {
			return ether(gwMAC, mac, packet.EtherTypeIPv4, ipv4(s(src), s(dst), 64, proto, nil, seg))
		}
		return ether(gwMAC, mac, packet.EtherTypeIPv6, ipv6(s(src), s(dst), 64, proto, seg))
	}
	big := func(mac [6]byte, src, dst string, df bool) []byte {
		f := ether(gwMAC, mac, packet.EtherTypeIPv4, ipv4(src, dst, 64, packet.ProtoUDP, nil, udpPayload(1500-28)))
		if !df {
			packet.IPv4(f[14:]).SetFlags(0)
			fixIPv4At(f, 14)
		}
		return f
	}
	big6 := ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6(a6, s(fzR2v6), 64, packet.ProtoUDP, udpPayload(1500-48)))
	frag := udp4Frame(macA, a4, b4, 64)
	frag[14+6] = 0x20 // MF
	fixIPv4At(frag, 14)
	withTTL := func(ttl uint8, f []byte) []byte {
		packet.IPv4(f[14:]).SetTTL(ttl)
		fixIPv4At(f, 14)
		return f
	}
	vlan := func(f []byte) []byte { return append(append(append([]byte(nil), f[:12]...), 0x81, 0, 0, 5), f[12:]...) }
	opts := ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4(a4, b4, 64, packet.ProtoUDP, []byte{1, 1, 1, 0}, udpPayload(4)))
	hopByHop := ether(gwMAC, macA, packet.EtherTypeIPv6,
		ipv6(a6, b6, 64, packet.ProtoHopByHop, append([]byte{packet.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}, udpPayload(4)...)))
	timeExceeded := ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4(a4, b4, 64, packet.ProtoICMP, nil,
		append([]byte{packet.ICMPv4TimeExceeded, 0, 0, 0, 0, 0, 0, 0}, ipv4(b4, a4, 1, packet.ProtoUDP, nil, udpPayload(0))...)))
	binary.BigEndian.PutUint16(timeExceeded[14+20+2:], packet.Checksum(timeExceeded[14+20:], 0))

	// From other nodes, on the uplink.
	vxlan := func(from int, src netip.Addr, inner []byte) []byte {
		p := &fuzzPeers[from].Peer
		buf := make([]byte, encap.VXLANOverhead+len(inner))
		copy(buf[encap.VXLANOverhead:], inner)
		o := encap.NewOuter(p.MAC, upMAC1, src.As4(), under1.As4())
		vx := encap.VXLAN{VNI: encap.FlannelVNI, Port: encap.FlannelPort}
		if _, ok := vx.Encap(buf, encap.VXLANOverhead, len(inner), &o, 1); !ok {
			panic("vxlan seed")
		}
		return buf
	}
	ipip := func(inner []byte) []byte {
		p := &fuzzPeers[1].Peer
		buf := make([]byte, encap.IPIPOverhead+len(inner))
		copy(buf[encap.IPIPOverhead:], inner)
		o := encap.NewOuter(p.MAC, upMAC1, p.Address.As4(), under1.As4())
		if _, ok := encap.EncapIPIP(buf, encap.IPIPOverhead, len(inner), &o, 1); !ok {
			panic("ipip seed")
		}
		return buf
	}
	vtep := func(f []byte) []byte { return fromMAC(vtep2, toMAC(upMAC1, f)) }
	wrongVNI := vxlan(0, under2, vtep(udp4Frame(vtep2, s(fzR2), a4, 64)))
	wrongVNI[14+20+8+6] = 7
	// From outside the cluster, on the uplink.
	outside := func(f []byte) []byte { return fromMAC(fzExtMAC, toMAC(upMAC1, f)) }
	// From the host, through the slow path.
	tap := func(f []byte) []byte { return fromMAC(tapMAC, f) }
	bigHost := tap(big(tapMAC, "192.168.50.1", s(fzR2), true))

	const A, B, C, U, H = ingA | fix, ingB | fix, ingC | fix, ingUplink | fix, ingHost | fix
	const none = -1
	return []fuzzSeed{
		// ARP and ND for the gateway, and not.
		{A, arpRequest(macA, a4, "169.254.1.1"), stats.ARPReply, ingA},
		{A, arpRequest(macA, a4, b4), stats.ARPIgnored, none},
		{A, neighborSolicit(macA, a6, "fe80::1"), stats.NDReply, ingA},
		{A, neighborSolicit(macA, "fe80::a", "fe80::1"), stats.NDReply, ingA},
		{A, neighborSolicit(macA, "::", "fe80::1"), stats.ICMPv6Ignored, none},
		{A, neighborSolicit(macA, a6, b6), stats.ICMPv6Ignored, none},
		{H, arpRequest(tapMAC, "192.168.50.1", "169.254.1.1"), stats.ARPReply, ingHost},
		{H, neighborSolicit(tapMAC, "fe80::2", "fe80::1"), stats.NDReply, ingHost},
		// Pod to pod.
		{A, udp4Frame(macA, a4, b4, 64), stats.Forwarded, ingB},
		{A, udp6Frame(macA, a6, b6, 64), stats.Forwarded, ingB},
		{A, tcpFrame(macA, fzA4, fzB4, 40100, 80, syn), stats.Forwarded, ingB},
		{A, tcpFrame(macA, fzA6, fzB6, 40101, 80, syn), stats.Forwarded, ingB},
		{A, l4(macA, packet.ProtoICMP, fzA4, fzB4, 0x77, 0x77), stats.Forwarded, ingB},
		{A, l4(macA, packet.ProtoICMPv6, fzA6, fzB6, 0x78, 0x78), stats.Forwarded, ingB},
		{A, l4(macA, packet.ProtoSCTP, fzA4, fzB4, 40102, 9), stats.Forwarded, ingB},
		{B, tcpFrame(macB, fzB4, fzA4, 80, 40103, syn), stats.Forwarded, ingA},
		{A, timeExceeded, stats.Forwarded, ingB},
		// The punt list and ICMP errors.
		{A, udp4Frame(macA, a4, b4, 1), stats.TTLExpired, ingA},
		{A, udp6Frame(macA, a6, b6, 1), stats.TTLExpired, ingA},
		{A, udp4Frame(macA, a4, "10.244.1.99", 64), stats.Unreachable, ingA},
		{A, udp6Frame(macA, a6, "fd00:1::99", 64), stats.Unreachable, ingA},
		{A, udp4Frame(macA, a4, "192.168.50.1", 64), stats.ToHostNew, ingHost},
		{A, udp6Frame(macA, a6, "fd50::1", 64), stats.ToHostNew, ingHost},
		{A, udp6Frame(macA, a6, "2001:db8::1", 64), stats.NoRoute, ingHost},
		{A, opts, stats.IPOptions, ingHost},
		{A, frag, stats.Fragment, ingHost},
		{A, hopByHop, stats.IPOptions, ingHost},
		{A, ether(gwMAC, macA, 0x88b5, make([]byte, 46)), stats.UnknownEtherType, ingHost},
		{A, vlan(udp4Frame(macA, a4, b4, 64)), stats.VLANTagged, none},
		{A, udp4Frame(macA, a4, "224.0.0.251", 64), stats.Multicast, none},
		{A, udp4Frame(macA, a4, "255.255.255.255", 64), stats.Multicast, none},
		{A, udp4Frame(macA, a4, "169.254.1.1", 64), stats.ToGateway, none},
		{A, ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6("fe80::a", "ff02::2", 255, packet.ProtoICMPv6,
			[]byte{packet.ICMPv6RouterSolicitation, 0, 0, 0, 0, 0, 0, 0})), stats.ICMPv6Ignored, none},
		{A, udp4Frame(macB, a4, b4, 64), stats.SpoofedMAC, none},
		{A, udp4Frame(macA, b4, b4, 64), stats.SpoofedIP, none},
		// Services, masquerade and the connections tracked (fuzzConns).
		{A, tcpFrame(macA, fzA4, vip, 40020, 80, syn), stats.Forwarded, ingB},
		{A, tcpFrame(macA, fzA6, vip6, 40021, 80, syn), stats.Forwarded, ingB},
		{A, l4(macA, packet.ProtoUDP, fzA4, vip, 40022, 53), stats.Forwarded, ingB},
		{A, tcpFrame(macA, fzA4, vip, 40023, 81, syn), stats.ToPeer, ingUplink},
		{A, tcpFrame(macA, fzA4, vip, 40024, 82, syn), stats.ServiceNoBackend, none},
		{A, tcpFrame(macA, fzA4, vip, 40025, 83, syn), stats.Forwarded, ingC},
		{A, l4(macA, packet.ProtoSCTP, fzA4, vip, 40026, 84), stats.Forwarded, ingB},
		{A, tcpFrame(macA, fzA4, vip, 40000, 80, ack), stats.Forwarded, ingB},
		{A, tcpFrame(macA, fzA4, vip, 40300, 80, syn), stats.Forwarded, ingA}, // to A itself: hairpin
		{B, tcpFrame(macB, fzB4, fzA4, 8080, 40000, synAck), stats.Forwarded, ingA},
		{A, tcpFrame(macA, fzA4, fzServer, 40030, 443, syn), stats.NoRoute, ingHost},
		{A, udp4Frame(macA, a4, "8.8.8.8", 64), stats.NoRoute, ingHost},
		{A, tcpFrame(macA, fzA4, fzServer, 40001, 443, ack), stats.NoRoute, ingHost},
		{B, tcpFrame(macB, fzB4, under1, 8080, 61001, synAck), stats.NoRoute, ingHost},
		// Policy.
		{C, tcpFrame(macC, fzC4, fzB4, 40003, 80, ack), stats.Forwarded, ingB},
		{C, tcpFrame(macC, fzC4, fzB4, 40004, 22, ack), stats.PolicyDenied, none},
		{C, tcpFrame(macC, fzC4, fzB4, 40040, 80, syn), stats.Forwarded, ingB},
		{C, tcpFrame(macC, fzC4, fzB4, 40041, 443, syn), stats.PolicyDenied, none},
		{C, udp4Frame(macC, c4, "8.8.8.8", 64), stats.PolicyDenied, none},
		// To other nodes.
		{A, udp4Frame(macA, a4, s(fzR2), 64), stats.ToPeer, ingUplink},
		{A, udp6Frame(macA, a6, s(fzR2v6), 64), stats.ToPeer, ingUplink},
		{A, udp4Frame(macA, a4, s(fzR3), 64), stats.ToPeer, ingUplink},
		{A, udp6Frame(macA, a6, s(fzR3v6), 64), stats.ToPeer, ingUplink},
		{A, udp4Frame(macA, a4, s(fzR4), 64), stats.ToPeer, ingUplink},
		{A, udp4Frame(macA, a4, s(fzR5), 64), stats.PeerUnresolved, none},
		{A, udp4Frame(macA, a4, s(fzR2), 1), stats.TTLExpired, ingA},
		{A, big(macA, a4, s(fzR2), true), stats.FragNeeded, ingA},
		{A, big(macA, a4, s(fzR2), false), stats.TunnelTooBig, none},
		{A, big(macA, a4, s(fzR3), true), stats.FragNeeded, ingA},
		{A, big6, stats.FragNeeded, ingA},
		// From other nodes and from outside, on the uplink.
		{U, vxlan(0, under2, vtep(udp4Frame(vtep2, s(fzR2), a4, 64))), stats.FromPeer, ingA},
		{U, vxlan(0, under2, vtep(udp6Frame(vtep2, s(fzR2v6), a6, 64))), stats.FromPeer, ingA},
		{U, vxlan(0, under2, vtep(udp4Frame(vtep2, s(fzR2), a4, 1))), stats.TTLExpired, none},
		{U, vxlan(0, under2, vtep(udp4Frame(vtep2, s(fzR2), "10.244.1.99", 64))), stats.PeerNoPod, none},
		{U, vxlan(0, netip.MustParseAddr("192.168.50.9"), vtep(udp4Frame(vtep2, s(fzR2), a4, 64))), stats.UnknownVTEP, none},
		{U, wrongVNI, stats.DecapWrongVNI, none},
		{U, vxlan(0, under2, vtep(tcpFrame(vtep2, fzR2, fzA4, 8080, 40002, synAck))), stats.FromPeer, ingA},
		{U, ipip(udp4Frame(upMAC1, s(fzR3), a4, 64)), stats.FromPeer, ingA},
		{U, ipip(udp6Frame(upMAC1, s(fzR3v6), a6, 64)), stats.FromPeer, ingA},
		{U, ipip(tcpFrame(upMAC1, fzR3, fzR2, 8080, 40005, synAck)), stats.ToPeer, ingUplink},
		// Counted as ttl_expired and not sent: nothing from the uplink is
		// answered (the worker drops the ICMP error toPeer builds).
		{U, ipip(withTTL(1, tcpFrame(upMAC1, fzR3, fzR2, 8080, 40005, synAck))), stats.TTLExpired, none},
		{U, ipip(tcpFrame(upMAC1, fzR3, under1, 8080, 61002, synAck)), stats.NoRoute, ingHost},
		{U, fromMAC(fuzzPeers[2].MAC, toMAC(upMAC1, udp4Frame(macA, s(fzR4), a4, 64))), stats.FromPeer, ingA},
		{U, outside(tcpFrame(fzExtMAC, fzExt, under1, 5555, 30080, syn)), stats.FromPeer, ingB},
		{U, outside(l4(fzExtMAC, packet.ProtoUDP, fzExt, under1, 5556, 30081)), stats.FromPeer, ingB},
		{U, outside(tcpFrame(fzExtMAC, fzExt, under1, 5557, 30082, syn)), stats.ToPeer, ingUplink},
		{U, outside(tcpFrame(fzExtMAC, fzServer, under1, 443, 61000, synAck)), stats.FromPeer, ingA},
		{U, outside(udp4Frame(fzExtMAC, s(fzExt), "192.168.50.1", 64)), stats.PeerNoPod, none},
		// From the host.
		{H, tap(udp4Frame(tapMAC, "192.168.50.1", b4, 64)), stats.Forwarded, ingB},
		{H, tap(udp6Frame(tapMAC, "fd50::1", b6, 1)), stats.Forwarded, ingB},
		{H, tap(udp4Frame(tapMAC, "192.168.50.1", "10.244.1.99", 64)), stats.Unreachable, ingHost},
		{H, tap(udp6Frame(tapMAC, "fd50::1", "fd00:1::99", 64)), stats.Unreachable, ingHost},
		{H, tap(udp4Frame(tapMAC, "192.168.50.1", s(fzR2), 64)), stats.ToPeer, ingUplink},
		{H, tap(tcpFrame(tapMAC, under1, vip, 50000, 80, syn)), stats.Forwarded, ingA},
		{H, tap(udp4Frame(tapMAC, "192.168.50.1", "8.8.8.8", 64)), stats.NoRoute, none},
		{H, bigHost, stats.FragNeeded, ingHost},
		// The modes.
		{A | selNoTokens, udp4Frame(macA, a4, b4, 1), stats.TTLExpiredOverLimit, none},
		{A | selNoTokens, udp4Frame(macA, a4, "8.8.8.8", 64), stats.NoRouteOverLimit, none},
		{A | selNoPolicy | selPending, tcpFrame(macA, fzA4, fzB4, 40200, 80, syn), stats.PolicyPending, none},
		{C | selNoPolicy, tcpFrame(macC, fzC4, fzB4, 40004, 22, ack), stats.Forwarded, ingB},
		{A | selNoNAT, tcpFrame(macA, fzA4, vip, 40201, 80, syn), stats.NoRoute, ingHost},
		{A | selNoNAT, udp4Frame(macA, a4, b4, 1), stats.TTLExpired, ingA},
		{A | selNoNAT, big(macA, a4, s(fzR2), true), stats.FragNeeded, ingA},
		{H | selNoNAT, bigHost, stats.FragNeeded, ingHost},
		{ingA, udp4Frame(macA, a4, b4, 64), stats.Forwarded, ingB}, // checksums as they come
		{ingUplink, vxlan(0, under2, vtep(udp4Frame(vtep2, s(fzR2), a4, 64))), stats.FromPeer, ingA},
	}
}
