package pipeline

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ringnet/ringnet/tables/conntrack"
)

// Flow events: what the fast path decided about each new connection
// (tracked, denied by policy, refused for want of a backend or a port),
// for the agent's flow log. A worker writes one event per decision, not
// per packet: the later packets of a tracked connection make none. Each
// worker has its own ring of FlowRingSize events, which it fills and the
// agent drains (ReadFlows); when the agent falls behind, new events are
// dropped and counted (FlowsLost), the fast path never waits.

// FlowVerdict is what became of a new connection.
type FlowVerdict uint8

const (
	FlowAllowed   FlowVerdict = iota // tracked: forwarded, with its translation if any
	FlowDenied                       // NetworkPolicy does not allow it (or no longer does: a tracked connection cut)
	FlowNoBackend                    // to a service port without a backend
	FlowNoPort                       // masqueraded, but no NAT port was free
	FlowBusy                         // the connection table could not make room
	numFlowVerdicts
)

var flowVerdictNames = [numFlowVerdicts]string{"allowed", "denied", "no_backend", "no_nat_port", "conntrack_busy"}

func (v FlowVerdict) String() string {
	if v < numFlowVerdicts {
		return flowVerdictNames[v]
	}
	return "unknown"
}

// FlowEvent is one decision about a connection, as the fast path saw its
// packet: the tuple as it arrived, and its translation (zero fields: none).
type FlowEvent struct {
	Time    time.Time
	Tuple   conntrack.Key // as the packet arrived (IPv4 as IPv4-mapped)
	NAT     conntrack.NAT // what the connection's packets become (service backend, masquerade, hairpin)
	Verdict FlowVerdict
	// Port is the ID of the pod port the packet came from; NoFlowPort for
	// the host and the uplink.
	Port uint16
}

// NoFlowPort is FlowEvent.Port for packets that came from no pod port.
const NoFlowPort = 0xffff

// Src, Dst and friends give the event's tuple as addresses.
func (e *FlowEvent) Src() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(e.Tuple.Src).Unmap(), e.Tuple.SrcPort)
}

func (e *FlowEvent) Dst() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(e.Tuple.Dst).Unmap(), e.Tuple.DstPort)
}

// FlowRingSize is the capacity of each worker's flow event ring.
const FlowRingSize = 4096

// flowEvent is a FlowEvent as the worker writes it: the time on the
// dataplane's clock, no conversion on the hot path.
type flowEvent struct {
	now     int64 // ns since the dataplane's epoch
	tuple   conntrack.Key
	nat     conntrack.NAT
	verdict FlowVerdict
	port    uint16
}

// flowRing is a single-producer (the worker), single-consumer (ReadFlows,
// under Dataplane.flowMu) ring. The worker writes slots beyond the
// consumer's head and publishes its tail once per step; the consumer
// publishes its head after copying the slots out.
type flowRing struct {
	slots [FlowRingSize]flowEvent
	tail  uint64 // the worker's; published in pubTail
	head  uint64 // the worker's view of the consumer's head, refreshed when the ring looks full
	lost  uint64 // the worker's; published in pubLost

	pubTail, pubHead, pubLost atomic.Uint64
}

// put adds an event, or counts it lost when the ring is full.
func (r *flowRing) put(e *flowEvent) {
	if r.tail-r.head == FlowRingSize {
		r.head = r.pubHead.Load()
		if r.tail-r.head == FlowRingSize {
			r.lost++
			return
		}
	}
	r.slots[r.tail%FlowRingSize] = *e
	r.tail++
}

// publish makes the events written so far visible to the consumer.
func (r *flowRing) publish() {
	r.pubTail.Store(r.tail)
	r.pubLost.Store(r.lost)
}

// flow records the fast path's decision v about the parsed packet's new
// connection, whose translation is nat.
func (f *forwarder) flow(v FlowVerdict, nat conntrack.NAT) {
	if f.flows == nil {
		return
	}
	k := keyOf(&f.p)
	f.flowOf(v, &k, nat)
}

// flowOf records the fast path's decision v about the new connection with
// original tuple k, from the port of the batch.
func (f *forwarder) flowOf(v FlowVerdict, k *conntrack.Key, nat conntrack.NAT) {
	if f.flows == nil {
		return
	}
	e := flowEvent{now: f.now, tuple: *k, nat: nat, verdict: v, port: NoFlowPort}
	if f.from != nil {
		e.port = f.from.ID
	}
	f.flows.put(&e)
}

// ReadFlows appends to buf the flow events the workers have published
// since the last call, oldest first per worker, and returns it. One
// caller at a time is served; the agent calls it from one goroutine, a
// few times a second.
func (d *Dataplane) ReadFlows(buf []FlowEvent) []FlowEvent {
	d.flowMu.Lock()
	defer d.flowMu.Unlock()
	for _, w := range d.workers {
		r := &w.flowRing
		head, tail := r.pubHead.Load(), r.pubTail.Load()
		for ; head < tail; head++ {
			e := &r.slots[head%FlowRingSize]
			buf = append(buf, FlowEvent{Time: d.epoch.Add(time.Duration(e.now)), Tuple: e.tuple, NAT: e.nat,
				Verdict: e.verdict, Port: e.port})
		}
		r.pubHead.Store(head)
	}
	return buf
}

// FlowsLost is the number of flow events the workers dropped because the
// agent had not read their rings in time.
func (d *Dataplane) FlowsLost() uint64 {
	var n uint64
	for _, w := range d.workers {
		n += w.flowRing.pubLost.Load()
	}
	return n
}
