package hardening_test

import (
	"context"
	"slices"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/internal/topo"
)

// counts are ringnetd's counters at one moment, or the difference of two.
type counts struct {
	reasons map[string]uint64
	groups  map[string]string        // reason → api.Group*
	ports   map[string]api.PortStats // by interface
}

// slowPathStages are the reasons the slow path's goroutines count, not
// the workers (fastpath/stats): a frame from the host is counted by them
// and again by the worker that takes it.
var slowPathStages = []string{"host_rx", "host_rx_queue_full", "host_tx", "host_tx_error"}

func (n *node) counts() counts {
	n.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.api.Stats(ctx)
	if err != nil {
		n.tb.Fatalf("stats: %v", err)
	}
	return countsOf(st)
}

func countsOf(st api.Stats) counts {
	c := counts{reasons: map[string]uint64{}, groups: map[string]string{}, ports: map[string]api.PortStats{}}
	for _, r := range st.Reasons {
		c.reasons[r.Reason], c.groups[r.Reason] = r.Count, r.Group
	}
	for _, p := range st.Ports {
		c.ports[p.Interface] = p
	}
	return c
}

// settled reads the counters once the ports' have stopped moving: trafgen
// has stopped, the rings are drained.
func (n *node) settled() counts {
	n.tb.Helper()
	c, ok := holdStill(200*time.Millisecond, n.counts, func(a, b counts) bool { return a.rxTotal() == b.rxTotal() })
	if !ok {
		n.tb.Fatalf("ringnetd's counters still move 10 s after the flood")
	}
	return c
}

// sub is c − b, counter by counter.
func (c counts) sub(b counts) counts {
	d := counts{reasons: map[string]uint64{}, groups: c.groups, ports: map[string]api.PortStats{}}
	for r, v := range c.reasons {
		d.reasons[r] = v - b.reasons[r]
	}
	for name, p := range c.ports {
		q := b.ports[name]
		d.ports[name] = api.PortStats{ID: p.ID, Interface: p.Interface, Kind: p.Kind,
			RxFrames: p.RxFrames - q.RxFrames, TxFrames: p.TxFrames - q.TxFrames,
			XSKRxDropped: p.XSKRxDropped - q.XSKRxDropped, XSKRxRingFull: p.XSKRxRingFull - q.XSKRxRingFull,
			XSKRxFillRingEmpty: p.XSKRxFillRingEmpty - q.XSKRxFillRingEmpty}
	}
	return d
}

// junkRx is the frames the workers took from the junk pod's port (on
// interface ifname) and from the uplink.
func (c counts) junkRx(ifname string) uint64 {
	return c.ports[ifname].RxFrames + c.ports[topo.Uplink].RxFrames
}

// workerTotal is the frames counted under the workers' reasons.
func (c counts) workerTotal() uint64 {
	var s uint64
	for r, v := range c.reasons {
		if !slices.Contains(slowPathStages, r) {
			s += v
		}
	}
	return s
}

// rxTotal is the frames the workers took from every port, the host's
// included.
func (c counts) rxTotal() uint64 {
	var s uint64
	for _, p := range c.ports {
		s += p.RxFrames
	}
	return s
}

// hostRx is the frames the workers took from the host (the slow path).
func (c counts) hostRx() uint64 {
	var s uint64
	for _, p := range c.ports {
		if p.Kind == api.PortHost {
			s += p.RxFrames
		}
	}
	return s
}

// group is the frames counted under the workers' reasons of group g.
func (c counts) group(g string) uint64 {
	var s uint64
	for r, v := range c.reasons {
		if c.groups[r] == g && !slices.Contains(slowPathStages, r) {
			s += v
		}
	}
	return s
}

// others lists the nonzero reasons that no bucket holds, e.g. the good
// traffic's.
func (c counts) others(bs []bucket) map[string]uint64 {
	out := map[string]uint64{}
	for r, v := range c.reasons {
		if v == 0 || slices.ContainsFunc(bs, func(b bucket) bool { return slices.Contains(b.reasons, r) }) {
			continue
		}
		out[r] = v
	}
	return out
}
