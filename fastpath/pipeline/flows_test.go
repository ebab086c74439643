package pipeline

import (
	"net/netip"
	"testing"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/service"
)

func TestFlowEvents(t *testing.T) {
	d, w, toB, toA := policyPods(t, 1, fromAOn80)
	a, b := netip.MustParseAddr("10.244.0.10"), netip.MustParseAddr("10.244.0.11")
	toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, syn))    // allowed: a new connection
	toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40000, 80, ack))    // the same connection: no event
	toA(tcp4(macB, "10.244.0.11", "10.244.0.10", 80, 40000, synAck)) // its reply: no event
	toB(tcp4(macA, "10.244.0.10", "10.244.0.11", 40001, 81, syn))    // denied
	setServices(t, d, service.Spec{VIP: vip, Proto: packet.ProtoTCP, Port: 80, Backends: backends(80, "10.244.0.11")})
	toB(tcp4(macA, "10.244.0.10", vip.String(), 40002, 80, syn)) // to a service: allowed, translated
	got := d.ReadFlows(nil)
	want := []struct {
		v        FlowVerdict
		src, dst netip.AddrPort
		natDst   netip.Addr
	}{
		{FlowAllowed, netip.AddrPortFrom(a, 40000), netip.AddrPortFrom(b, 80), netip.Addr{}},
		{FlowDenied, netip.AddrPortFrom(a, 40001), netip.AddrPortFrom(b, 81), netip.Addr{}},
		{FlowAllowed, netip.AddrPortFrom(a, 40002), netip.AddrPortFrom(vip, 80), b},
	}
	if len(got) != len(want) {
		t.Fatalf("%d flow events, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		w := want[i]
		var natDst netip.Addr
		if e.NAT.Dst != ([16]byte{}) {
			natDst = netip.AddrFrom16(e.NAT.Dst).Unmap()
		}
		if e.Verdict != w.v || e.Src() != w.src || e.Dst() != w.dst || natDst != w.natDst || e.Port != 0 {
			t.Errorf("event %d: %v %v > %v (to %v) port %d; want %v %v > %v (to %v) from port 0", i, e.Verdict, e.Src(), e.Dst(), natDst, e.Port,
				w.v, w.src, w.dst, w.natDst)
		}
		if e.Time.IsZero() {
			t.Errorf("event %d has no time", i)
		}
	}
	if got := d.ReadFlows(nil); len(got) != 0 {
		t.Errorf("a second read returned %d events again", len(got))
	}
	// A full ring drops and counts; the fast path goes on, and once the
	// agent has read, events fit again.
	for sport := uint16(1); sport <= FlowRingSize+10; sport++ {
		w.fwd.p.SrcPort = sport
		w.fwd.flow(FlowDenied, conntrack.NAT{})
	}
	w.flowRing.publish()
	if n := d.FlowsLost(); n != 10 {
		t.Errorf("FlowsLost %d, want 10", n)
	}
	if got := d.ReadFlows(nil); len(got) != FlowRingSize || got[0].Tuple.SrcPort != 1 || got[FlowRingSize-1].Tuple.SrcPort != FlowRingSize {
		t.Errorf("read %d events (first port %d), want the %d first", len(got), got[0].Tuple.SrcPort, FlowRingSize)
	}
	w.fwd.flow(FlowDenied, conntrack.NAT{})
	w.flowRing.publish()
	if got := d.ReadFlows(nil); len(got) != 1 || d.FlowsLost() != 10 {
		t.Errorf("after the read: %d events, %d lost; want 1, 10", len(got), d.FlowsLost())
	}
}

// TestFlowRingConcurrent runs a producer and a consumer at once (run with
// -race): every event is read once and in order, or counted lost.
func TestFlowRingConcurrent(t *testing.T) {
	d, w, _, _ := twoPods(t)
	const n = 200000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range uint64(n) {
			w.flowRing.put(&flowEvent{now: int64(i)})
			if i%64 == 0 {
				w.flowRing.publish()
			}
		}
		w.flowRing.publish()
	}()
	var read uint64
	next := int64(-1)
	var buf []FlowEvent
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		buf = d.ReadFlows(buf[:0])
		for _, e := range buf {
			at := e.Time.Sub(d.epoch).Nanoseconds()
			if at <= next {
				t.Fatalf("event %d after event %d", at, next)
			}
			next = at
		}
		read += uint64(len(buf))
	}
	if read+d.FlowsLost() != n {
		t.Errorf("read %d + lost %d != %d written", read, d.FlowsLost(), n)
	}
}

// TestFlowAllocs: recording a flow event allocates nothing.
func TestFlowAllocs(t *testing.T) {
	_, w, _, _ := twoPods(t)
	nat := conntrack.NAT{DstPort: 8080}
	if n := testing.AllocsPerRun(1000, func() { w.fwd.flow(FlowAllowed, nat) }); n != 0 {
		t.Errorf("flow allocates %v times", n)
	}
}
