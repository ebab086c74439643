package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
)

// Source is the dataplane as the collector reads it, once per scrape.
// *pipeline.Dataplane is one.
type Source interface {
	// Stats returns the counters of every port and the per-reason totals.
	Stats() ([]pipeline.PortStats, [stats.NumReasons]uint64)
	// Workers returns the workers, for their BusyTime.
	Workers() []*pipeline.Worker
}

// family is the metric a stats.Reason is exported under.
type family uint8

const (
	familyPacket family = iota // not a drop: ringnet_packets_total
	familyPunt                 // a punt-list class's own reason: ringnet_punts_total
	familyDrop                 // any other drop: ringnet_drops_total
)

// reasonFamilies sorts every reason into its family: the reasons of the
// punt list (pipeline.PuntClass, whose String is its reason's name) are
// punts, other reasons with IsDrop drops, the rest packets. unmatched lists
// the punt classes that name no drop reason (none, as a test checks).
func reasonFamilies() (f [stats.NumReasons]family, unmatched []string) {
	byName := make(map[string]stats.Reason, stats.NumReasons)
	for _, r := range stats.Reasons() {
		byName[r.String()] = r
		if r.IsDrop() {
			f[r] = familyDrop
		} else {
			f[r] = familyPacket
		}
	}
	for c := range pipeline.NumPuntClasses {
		r, ok := byName[c.String()]
		if !ok || !r.IsDrop() {
			unmatched = append(unmatched, c.String())
			continue
		}
		f[r] = familyPunt
	}
	return f, unmatched
}

var families, _ = reasonFamilies()

// Descriptions of the dataplane's metrics. Counts are frames: a frame is
// what the pipeline calls a packet. Bytes are not counted yet (the
// pipeline counts frames per batch; adding their lengths would be work per
// frame), so there are no _bytes_total series.
var (
	descPortRx = prometheus.NewDesc("ringnet_port_rx_packets_total",
		"Frames the fast path took off the port's receive rings (the host port: from the slow path's queues). Bytes are not counted yet.",
		[]string{"port"}, nil)
	descPortTx = prometheus.NewDesc("ringnet_port_tx_packets_total",
		"Frames the fast path put on the port's transmit rings (the host port: on the slow path's queues). Bytes are not counted yet.",
		[]string{"port"}, nil)

	descPackets = prometheus.NewDesc("ringnet_packets_total",
		"Frames the dataplane delivered, by outcome: forwarded, answered for the gateway (arp_reply, nd_reply), sent to or received from another node (to_peer, from_peer), and the slow path's stages (host_rx read from the TAP, host_tx written to it; such a frame is also counted under its outcome).",
		[]string{"reason"}, nil)
	descPunts = prometheus.NewDesc("ringnet_punts_total",
		"Frames of a punt-list class within its rate limit: handed to the node's stack through the slow path (to_host, to_host_new, no_route, ip_options, fragment, unknown_ethertype) or answered with an ICMP error (ttl_expired, unreachable, frag_needed). Without a slow path they are dropped and counted here all the same.",
		[]string{"reason"}, nil)
	descDrops = prometheus.NewDesc("ringnet_drops_total",
		"Frames the dataplane dropped, by reason, including punt-list frames over their rate limit (*_over_limit) or kept from a full queue to the slow path (punt_queue_full).",
		[]string{"reason"}, nil)

	descBusyRatio = prometheus.NewDesc("ringnet_worker_busy_ratio",
		"Share of the worker's time spent in steps that found frames to move (the rest it slept in poll(2) or spun idle), over the time since the previous scrape of this endpoint (the first scrape: since the worker started). With several scrapers, prefer rate(ringnet_worker_busy_seconds_total[...]).",
		[]string{"worker"}, nil)
	descBusySeconds = prometheus.NewDesc("ringnet_worker_busy_seconds_total",
		"Seconds the worker spent in steps that found frames to move, since it started.",
		[]string{"worker"}, nil)

	descTables = prometheus.NewDesc("ringnet_table_entries",
		"Entries in the table snapshot the fast path reads now (endpoints: pod addresses; routes: prefixes of other nodes), as the agent reports them.",
		[]string{"table"}, nil)
)

// xskField is one counter of xsk.Stats, summed over a port's sockets (one
// per worker).
type xskField struct {
	desc *prometheus.Desc
	get  func(*xsk.Stats) uint64
}

func newXSKField(name, help string, get func(*xsk.Stats) uint64) xskField {
	return xskField{prometheus.NewDesc("ringnet_xsk_"+name+"_total", help+" Summed over the port's AF_XDP sockets.",
		[]string{"port"}, nil), get}
}

var xskFields = []xskField{
	newXSKField("rx_dropped", "Frames the kernel dropped on receive for reasons other than a full RX ring (XDP_STATISTICS rx_dropped).",
		func(s *xsk.Stats) uint64 { return s.RxDropped }),
	newXSKField("rx_invalid_descs", "Invalid descriptors the kernel found on the fill ring (XDP_STATISTICS rx_invalid_descs).",
		func(s *xsk.Stats) uint64 { return s.RxInvalidDescs }),
	newXSKField("tx_invalid_descs", "Invalid descriptors the kernel found on the TX ring (XDP_STATISTICS tx_invalid_descs).",
		func(s *xsk.Stats) uint64 { return s.TxInvalidDescs }),
	newXSKField("rx_ring_full", "Frames the kernel dropped because the socket's RX ring was full: the worker fell behind (XDP_STATISTICS rx_ring_full).",
		func(s *xsk.Stats) uint64 { return s.RxRingFull }),
	newXSKField("rx_fill_ring_empty", "Times a frame arrived and the fill ring had no free chunk for it (XDP_STATISTICS rx_fill_ring_empty_descs).",
		func(s *xsk.Stats) uint64 { return s.RxFillRingEmpty }),
	newXSKField("tx_ring_empty", "Times the kernel was woken to transmit and found the TX ring empty (XDP_STATISTICS tx_ring_empty_descs).",
		func(s *xsk.Stats) uint64 { return s.TxRingEmpty }),
	newXSKField("tx_kicks", "sendto(2) calls the workers made because the kernel asked to be woken to transmit (need_wakeup).",
		func(s *xsk.Stats) uint64 { return s.Kicks }),
	newXSKField("tx_kick_errors", "sendto(2) calls to wake the kernel to transmit that failed.",
		func(s *xsk.Stats) uint64 { return s.KickErrors }),
	newXSKField("rx_wakeups", "recvfrom(2) calls the workers made because the kernel asked to be woken to take chunks off the fill ring (need_wakeup).",
		func(s *xsk.Stats) uint64 { return s.RxWakeups }),
	newXSKField("bad_frees", "UMEM chunks freed more often than allocated: a bug in ringnet; stays 0.",
		func(s *xsk.Stats) uint64 { return s.BadFrees }),
}

// collector reads the dataplane and the agent's tables on each scrape; it
// holds no counts of its own but the busy ratio's previous reading.
type collector struct {
	src    Source                                // nil: no dataplane metrics
	tables atomic.Pointer[func() map[string]int] // set by New and SetTables; nil: no table metrics

	mu   sync.Mutex   // serialises scrapes' use of busy
	busy []busySample // by worker: the previous scrape's reading
}

// busySample is a worker's BusyTime at a scrape and the ratio exported then.
type busySample struct {
	busy, total time.Duration
	ratio       float64
}

// next is the sample after s given a new reading: the ratio of the busy
// time to the total time elapsed between the two readings, or the previous
// ratio if no time was accounted in between (a worker sleeps in poll(2) up
// to its idle timeout between publishes; a stopped worker publishes no
// more).
func (s busySample) next(busy, total time.Duration) busySample {
	n := busySample{busy: busy, total: total, ratio: s.ratio}
	if dt := total - s.total; dt > 0 {
		n.ratio = min(max(float64(busy-s.busy)/float64(dt), 0), 1)
	}
	return n
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPortRx, descPortTx, descPackets, descPunts, descDrops,
		descBusyRatio, descBusySeconds, descTables} {
		ch <- d
	}
	for _, f := range xskFields {
		ch <- f.desc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.src != nil {
		c.collectDataplane(ch)
	}
	if fn := c.tables.Load(); fn != nil && *fn != nil {
		for name, n := range (*fn)() {
			ch <- prometheus.MustNewConstMetric(descTables, prometheus.GaugeValue, float64(n), name)
		}
	}
}

func (c *collector) collectDataplane(ch chan<- prometheus.Metric) {
	ports, reasons := c.src.Stats()
	for _, p := range ports {
		ch <- prometheus.MustNewConstMetric(descPortRx, prometheus.CounterValue, float64(p.RxFrames), p.Ifname)
		ch <- prometheus.MustNewConstMetric(descPortTx, prometheus.CounterValue, float64(p.TxFrames), p.Ifname)
		if len(p.Sockets) == 0 {
			continue // the host port: queues, no sockets
		}
		for _, f := range xskFields {
			var sum uint64
			for i := range p.Sockets {
				sum += f.get(&p.Sockets[i])
			}
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(sum), p.Ifname)
		}
	}
	for _, r := range stats.Reasons() {
		d := descDrops
		switch families[r] {
		case familyPacket:
			d = descPackets
		case familyPunt:
			d = descPunts
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(reasons[r]), r.String())
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range c.src.Workers() {
		if i == len(c.busy) {
			c.busy = append(c.busy, busySample{})
		}
		busy, total := w.BusyTime()
		c.busy[i] = c.busy[i].next(busy, total)
		id := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(descBusyRatio, prometheus.GaugeValue, c.busy[i].ratio, id)
		ch <- prometheus.MustNewConstMetric(descBusySeconds, prometheus.CounterValue, busy.Seconds(), id)
	}
}
