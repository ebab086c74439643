package pipeline

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/tables/policy"
)

// tcp4 is a TCP segment from src:sport to dst:dport with flags, in a frame
// from srcMAC.
func tcp4(srcMAC [6]byte, src, dst string, sport, dport uint16, flags uint8) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], dport)
	t[12] = 5 << 4
	t[13] = flags
	return ether(gwMAC, srcMAC, packet.EtherTypeIPv4, ipv4(src, dst, 64, packet.ProtoTCP, nil, t))
}

const (
	syn    = 0x02
	synAck = 0x12
	ack    = 0x10
)

// policyPods is twoPods with pod A (10.244.0.10) identity 1 and pod B
// (10.244.0.11) identity 2, under policies: B accepts TCP 80 from A only;
// A accepts nothing (ingress default deny).
func policyPods(t *testing.T, gen uint32, bIngress []policy.Rule) (*Dataplane, *Worker, func([]byte) int, func([]byte) int) {
	t.Helper()
	d, w, a, b := twoPods(t)
	policyA, policyB = a, b
	setPolicy(t, d, gen, bIngress)
	toB := func(f []byte) int { a.Deliver(f); w.step(); return len(sent(b)) }
	toA := func(f []byte) int { b.Deliver(f); w.step(); return len(sent(a)) }
	return d, w, toB, toA
}

func setPolicy(t *testing.T, d *Dataplane, gen uint32, bIngress []policy.Rule) {
	t.Helper()
	tbl, err := policy.Build(uint64(gen), []policy.Policy{
		{Name: "default/b", Selected: []uint32{2}, Types: []policy.Direction{policy.Ingress}, Ingress: bIngress},
		{Name: "default/a-deny", Selected: []uint32{1}, Types: []policy.Direction{policy.Ingress}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[netip.Addr]uint32{netip.MustParseAddr("10.244.0.10"): 1, netip.MustParseAddr("10.244.0.11"): 2}
	if err := d.SetPolicy(&Policy{Table: tbl, Identity: ids, Gen: gen}); err != nil {
		t.Fatal(err)
	}
}

var policyA, policyB *xsk.Peer

var fromAOn80 = []policy.Rule{{Peers: []policy.Peer{{Identities: []uint32{1}}}, Ports: []policy.Port{{Proto: policy.TCP, Port: 80}}}}

func TestPolicyStateful(t *testing.T) {
	d, w, toB, toA := policyPods(t, 1, fromAOn80)
	if n := toB(udp4Frame(macA, "10.244.0.10", "10.244.0.11", 64)); n != 0 {
		t.Error("UDP from A to B passed; B accepts only TCP 80")
	}
	if n := toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 81, syn)); n != 0 {
		t.Error("TCP 81 from A to B passed")
	}
	if n := toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, syn)); n != 1 {
		t.Fatalf("TCP 80 SYN from A to B: %d frames, want 1; counters %v", n, counts(w))
	}
	// The reply is admitted by the tracked connection, though A's own
	// ingress policy denies everything.
	if n := toA(tcp4(macB, "10.244.0.11", "10.244.0.10", 80, 40000, synAck)); n != 1 {
		t.Fatalf("SYN-ACK from B to A: %d frames, want 1 (tracked connection); counters %v", n, counts(w))
	}
	if n := toA(tcp4(macB, "10.244.0.11", "10.244.0.10", 40001, 22, syn)); n != 0 {
		t.Error("a new connection from B to A passed; A's ingress is default deny")
	}
	if diff := cmp.Diff(map[string]uint64{"forwarded": 2, "policy_denied": 3}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	// Tracked packets allocate nothing.
	seg := tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, ack)
	if n := testing.AllocsPerRun(100, func() {
		policyA.Deliver(seg)
		w.step()
		policyB.Sent(func([]byte) {})
	}); n != 0 {
		t.Errorf("%v allocations per tracked packet", n)
	}
	// A policy that no longer allows A cuts the connection at its next
	// packet, in both directions.
	setPolicy(t, d, 2, nil)
	if n := toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, ack)); n != 0 {
		t.Error("an existing connection still passes after the policy removed it")
	}
	if n := toA(tcp4(macB, "10.244.0.11", "10.244.0.10", 80, 40000, ack)); n != 0 {
		t.Error("the reply direction of a cut connection still passes")
	}
	// And one that allows it again admits it again.
	setPolicy(t, d, 3, fromAOn80)
	if n := toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, syn)); n != 1 {
		t.Error("TCP 80 from A refused after the policy allowed it again")
	}
	// No policy: everything passes.
	if err := d.SetPolicy(nil); err != nil {
		t.Fatal(err)
	}
	if n := toA(tcp4(macB, "10.244.0.11", "10.244.0.10", 40002, 22, syn)); n != 1 {
		t.Error("with no policy a packet was dropped")
	}
}

// TestPolicyEcho: a ping's reply is admitted as its request's connection.
func TestPolicyEcho(t *testing.T) {
	_, w, toB, toA := policyPods(t, 1, []policy.Rule{{Peers: []policy.Peer{{Identities: []uint32{1}}}}})
	echo := func(mac [6]byte, src, dst string, typ uint8, id uint16) []byte {
		m := make([]byte, 16)
		m[0] = typ
		binary.BigEndian.PutUint16(m[4:6], id)
		binary.BigEndian.PutUint16(m[2:4], packet.Checksum(m, 0))
		return ether(gwMAC, mac, packet.EtherTypeIPv4, ipv4(src, dst, 64, packet.ProtoICMP, nil, m))
	}
	if n := toB(echo(macA, "10.244.0.10", "10.244.0.11", 8, 0x77)); n != 1 {
		t.Fatalf("echo request A->B: %d, counters %v", n, counts(w))
	}
	if n := toA(echo(macB, "10.244.0.11", "10.244.0.10", 0, 0x77)); n != 1 {
		t.Fatalf("echo reply B->A: %d, counters %v", n, counts(w))
	}
	// (An echo request B->A with the same identifier would share the
	// connection's key: echo keys carry the identifier both ways.)
	if n := toA(echo(macB, "10.244.0.11", "10.244.0.10", 8, 0x78)); n != 0 {
		t.Error("an echo request B->A passed; A's ingress is default deny")
	}
}

// TestPolicyRequired: a dataplane that fails closed forwards nothing
// between pods until a policy is published, then what it allows.
func TestPolicyRequired(t *testing.T) {
	d, err := New(Config{Gateway: testGW, PolicyRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	a := pairPort(t, d, PortSpec{Ifname: "a", MAC: macA[:], IPv4: netip.MustParseAddr("10.244.0.10")})[0]
	b := pairPort(t, d, PortSpec{Ifname: "b", MAC: macB[:], IPv4: netip.MustParseAddr("10.244.0.11")})[0]
	w := d.workers[0]
	send := func() int {
		a.Deliver(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, syn))
		w.step()
		return len(sent(b))
	}
	if send() != 0 {
		t.Fatal("a frame passed before any policy was published")
	}
	setPolicy(t, d, 1, fromAOn80)
	if send() != 1 {
		t.Fatalf("TCP 80 A->B refused under a policy that allows it; counters %v", counts(w))
	}
	if diff := cmp.Diff(map[string]uint64{"forwarded": 1, "policy_pending": 1}, counts(w)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// TestPolicyTrackBatch sends new connections in one RX batch, one of them
// twice (a retransmitted SYN): the worker tracks them at the end of the
// batch (trackBatch), once each, with one flow event each, and their
// replies pass A's default-deny ingress in the next batch.
func TestPolicyTrackBatch(t *testing.T) {
	d, w, _, toA := policyPods(t, 1, fromAOn80)
	syn1 := tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, syn)
	syn2 := tcp4(macA, "10.244.0.10", "10.244.0.11", 40001, 80, syn)
	policyA.Deliver(syn1, syn2, syn1)
	w.step()
	if n := len(sent(policyB)); n != 3 {
		t.Fatalf("B got %d frames of the batch, want 3; counters %v", n, counts(w))
	}
	if n := d.ct.Load().Len(); n != 2 {
		t.Errorf("%d connections tracked after the batch, want 2", n)
	}
	if ev := d.ReadFlows(nil); len(ev) != 2 || ev[0].Verdict != FlowAllowed || ev[0].Tuple.SrcPort != 40000 || ev[1].Tuple.SrcPort != 40001 {
		t.Errorf("flow events %+v, want allowed 40000, then allowed 40001", ev)
	}
	for _, sport := range []uint16{40000, 40001} {
		if n := toA(tcp4(macB, "10.244.0.11", "10.244.0.10", 80, sport, synAck)); n != 1 {
			t.Errorf("SYN-ACK to port %d: %d frames, want 1 (tracked connection); counters %v", sport, n, counts(w))
		}
	}
}
