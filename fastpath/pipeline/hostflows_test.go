package pipeline

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/tables/service"
)

func TestHostFlowHash(t *testing.T) {
	pod, node := netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("192.168.50.1")
	pod6, node6 := netip.MustParseAddr("fd00::a"), netip.MustParseAddr("fd50::1")
	hash := func(f []byte) uint64 {
		p := decode(t, f)
		return hostFlowHash(&p)
	}
	same := []struct {
		name string
		a, b []byte
	}{
		{"udp, both ways", l4Frame(packet.ProtoUDP, pod, node, 40000, 53, false), l4Frame(packet.ProtoUDP, node, pod, 53, 40000, false)},
		{"tcp ipv6, both ways", l4Frame(packet.ProtoTCP, pod6, node6, 40000, 10250, false), l4Frame(packet.ProtoTCP, node6, pod6, 10250, 40000, false)},
		{"icmp echo and reply", l4Frame(packet.ProtoICMP, pod, node, 0, 0x4242, false), echoReply(node, pod, 0x4242)},
	}
	for _, c := range same {
		if hash(c.a) != hash(c.b) {
			t.Errorf("%s: hashes differ", c.name)
		}
	}
	base := l4Frame(packet.ProtoUDP, pod, node, 40000, 53, false)
	differ := []struct {
		name string
		f    []byte
	}{
		{"other source port", l4Frame(packet.ProtoUDP, pod, node, 40001, 53, false)},
		{"other protocol", l4Frame(packet.ProtoTCP, pod, node, 40000, 53, false)},
		{"other pod", l4Frame(packet.ProtoUDP, netip.MustParseAddr("10.244.0.11"), node, 40000, 53, false)},
		{"other node address", l4Frame(packet.ProtoUDP, pod, netip.MustParseAddr("192.168.50.2"), 40000, 53, false)},
	}
	for _, c := range differ {
		if hash(c.f) == hash(base) {
			t.Errorf("%s: same hash as the base flow", c.name)
		}
	}
}

func TestHostFlowsTable(t *testing.T) {
	var tb hostFlows
	const s = int64(1) << hostFlowTimeShift // one time unit
	now := 5000 * s
	h := uint64(0x0123456789abcdef)
	if tb.answered(h, now) {
		t.Fatal("an empty table answered a flow")
	}
	tb.mark(h, now)
	for _, c := range []struct {
		name string
		h    uint64
		at   int64
		want bool
	}{
		{"marked", h, now, true},
		{"a little later", h, now + (hostFlowTTL-1)*s, true},
		{"after the TTL", h, now + hostFlowTTL*s, false},
		{"another flow, same slot", h ^ 1<<60, now, false},
		{"another flow, other slot", h ^ 1<<30, now, false},
		{"18 hours later", h, now + (1<<16+2)*s, false},
		{"long ago", h, now - 10*s, false},
	} {
		if got := tb.answered(c.h, c.at); got != c.want {
			t.Errorf("%s: answered %v, want %v", c.name, got, c.want)
		}
	}
	// Marked again, a flow is fresh again; another in its slot evicts it.
	tb.mark(h, now+100*s)
	if !tb.answered(h, now+100*s+10*s) {
		t.Error("re-marked flow not answered")
	}
	tb.mark(h^1<<60, now+100*s)
	if tb.answered(h, now+100*s) || !tb.answered(h^1<<60, now+100*s) {
		t.Error("the later flow in a slot did not take it over")
	}
	var none *hostFlows
	none.mark(h, now)
	if !none.answered(h, now) {
		t.Error("without a table, every flow must count as answered")
	}
}

// echoReply is an ICMP (or ICMPv6) echo reply from pod A's MAC, as
// l4Frame builds the request.
func echoReply(src, dst netip.Addr, id uint16) []byte {
	proto, typ := uint8(packet.ProtoICMP), uint8(packet.ICMPv4EchoReply)
	var initial uint32
	if src.Is6() {
		proto, typ = packet.ProtoICMPv6, packet.ICMPv6EchoReply
	}
	seg := l4Segment(proto, src, dst, 0, id, false)
	seg[0], seg[2], seg[3] = typ, 0, 0
	if src.Is6() {
		initial = packet.PseudoHeaderSum(proto, src, dst, uint16(len(seg)))
	}
	binary.BigEndian.PutUint16(seg[2:], packet.Checksum(seg, initial))
	if src.Is4() {
		return ether(gwMAC, macA, packet.EtherTypeIPv4, ipv4(src.String(), dst.String(), 64, proto, nil, seg))
	}
	return ether(gwMAC, macA, packet.EtherTypeIPv6, ipv6(src.String(), dst.String(), 64, proto, seg))
}

// fromNode makes a frame one the TAP would deliver: from the TAP's MAC to
// the gateway's.
func fromNode(f []byte) []byte {
	copy(f[0:6], gwMAC[:])
	copy(f[6:12], tapMAC[:])
	return f
}

// TestToHostAnswered runs the split through a worker: a pod's frames to the
// node on a flow the node has sent on are to_host, on any other flow
// to_host_new; a flood of the second, over its small budget, leaves the
// first's alone; and it holds across service NAT, where the node's frame
// and the pod's answer carry different addresses.
func TestToHostAnswered(t *testing.T) {
	d, w, hp, a, _ := slowPods(t, SlowPathConfig{Limits: map[PuntClass]Limit{PuntToHostNew: {Rate: 1, Burst: 3}}})
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(8080, "10.244.0.10")})
	pod, node := netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("192.168.50.1")
	pod6, node6 := netip.MustParseAddr("fd00::a"), netip.MustParseAddr("fd50::1")

	// The node probes the pod (TCP, as kubelet does), pings it (IPv6), and
	// opens a connection to a service the pod backs.
	inject(t, hp,
		fromNode(l4Frame(packet.ProtoTCP, node, pod, 51000, 8080, false)),
		fromNode(l4Frame(packet.ProtoICMPv6, node6, pod6, 0, 0x77, false)),
		fromNode(tcpFrame(tapMAC, node, vip, 52000, 80, syn)))
	w.step()
	if n := len(sent(a)); n != 3 {
		t.Fatalf("the pod got %d of the node's 3 frames; counters %v", n, counts(w))
	}
	before := counts(w)

	var batch [][]byte
	for range 5 { // the probe's answers
		batch = append(batch, l4Frame(packet.ProtoTCP, pod, node, 8080, 51000, false))
	}
	batch = append(batch, echoReply(pod6, node6, 0x77))                   // the ping's
	batch = append(batch, tcpFrame(macA, pod, node, 8080, 52000, synAck)) // the service's, translated back to vip:80
	for i := range 10 {                                                   // a flood, each frame its own flow
		batch = append(batch, l4Frame(packet.ProtoUDP, pod, node, uint16(40000+i), 9, false))
	}
	a.Deliver(batch...)
	w.step()
	host := drain(hp)
	got := counts(w)
	for r, n := range before {
		got[r] -= n
		if got[r] == 0 {
			delete(got, r)
		}
	}
	want := map[string]uint64{"to_host": 7, "to_host_new": 3, "to_host_new_over_limit": 7}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if len(host) != 10 {
		t.Errorf("the host got %d frames, want 10", len(host))
	}
	// The service's answer reached the host as from the service.
	if len(host) > 6 {
		if s := readSeg(t, host[6]); s.src != netip.AddrPortFrom(vip, 80) || s.dst != netip.AddrPortFrom(node, 52000) {
			t.Errorf("the service's answer reached the host as %v > %v, want %v:80 > %v:52000", s.src, s.dst, vip, node)
		}
	}
}
