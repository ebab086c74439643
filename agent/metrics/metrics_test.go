package metrics

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xsk"
)

var _ Source = (*pipeline.Dataplane)(nil)

// fakeSource is a dataplane's Stats with a real dataplane's workers
// (never started: BusyTime reads 0, 0).
type fakeSource struct {
	ports   []pipeline.PortStats
	reasons [stats.NumReasons]uint64
	dp      *pipeline.Dataplane
}

func (f *fakeSource) Stats() ([]pipeline.PortStats, [stats.NumReasons]uint64) {
	return f.ports, f.reasons
}

func (f *fakeSource) Workers() []*pipeline.Worker { return f.dp.Workers() }

func newFake(t *testing.T) *fakeSource {
	t.Helper()
	dp, err := pipeline.New(pipeline.Config{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSource{dp: dp, ports: []pipeline.PortStats{
		{ID: 0, Ifname: "rna", RxFrames: 10, TxFrames: 7, Sockets: []xsk.Stats{
			{RxDropped: 1, RxRingFull: 2, Kicks: 5}, {RxDropped: 3, RxFillRingEmpty: 4, Kicks: 1},
		}},
		{ID: 1, Ifname: "rnb", RxFrames: 7, TxFrames: 10, Sockets: []xsk.Stats{{}, {}}},
		{ID: pipeline.HostPortID, Ifname: "ringnet0", RxFrames: 2, TxFrames: 3},
	}}
	f.reasons[stats.Forwarded] = 17
	f.reasons[stats.ARPReply] = 2
	f.reasons[stats.HostRx] = 2
	f.reasons[stats.HostTx] = 3
	f.reasons[stats.ToHost] = 3
	f.reasons[stats.TTLExpired] = 1
	f.reasons[stats.ToHostOverLimit] = 4
	f.reasons[stats.PuntQueueFull] = 1
	f.reasons[stats.TxRingFull] = 6
	return f
}

func tables() map[string]int { return map[string]int{"endpoints": 4, "routes": 2} }

// TestReasonFamilies pins which reasons are packets, punts and drops: the
// punts are exactly the punt list's classes, and every reason is in one
// family.
func TestReasonFamilies(t *testing.T) {
	f, unmatched := reasonFamilies()
	if len(unmatched) > 0 {
		t.Errorf("punt classes %v name no drop reason", unmatched)
	}
	got := map[family][]string{}
	for _, r := range stats.Reasons() {
		got[f[r]] = append(got[f[r]], r.String())
	}
	var classes []string
	for c := range pipeline.NumPuntClasses {
		classes = append(classes, c.String())
	}
	if diff := cmp.Diff(classes, got[familyPunt], cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("punts are not the punt list (-list +punts):\n%s", diff)
	}
	wantPunts := []string{"ttl_expired", "no_route", "ip_options", "fragment", "unknown_ethertype",
		"to_host", "unreachable", "frag_needed", "to_host_new"} // in Reason order
	if diff := cmp.Diff(wantPunts, got[familyPunt]); diff != "" {
		t.Errorf("punts (-want +got):\n%s", diff)
	}
	wantPackets := []string{"forwarded", "arp_reply", "nd_reply", "host_rx", "host_tx", "to_peer", "from_peer"}
	if diff := cmp.Diff(wantPackets, got[familyPacket]); diff != "" {
		t.Errorf("packets (-want +got):\n%s", diff)
	}
	for _, name := range got[familyDrop] {
		if slices.Contains(wantPunts, name) || slices.Contains(wantPackets, name) {
			t.Errorf("%s is a drop too", name)
		}
	}
	for _, must := range []string{"to_host_over_limit", "punt_queue_full", "tx_ring_full", "to_gateway", "host_tx_error"} {
		if !slices.Contains(got[familyDrop], must) {
			t.Errorf("%s is not a drop", must)
		}
	}
	if n := len(got[familyPacket]) + len(got[familyPunt]) + len(got[familyDrop]); n != stats.NumReasons {
		t.Errorf("%d reasons in the families, want %d", n, stats.NumReasons)
	}
}

const wantPorts = `
# HELP ringnet_port_rx_packets_total Frames the fast path took off the port's receive rings (the host port: from the slow path's queues). Bytes are not counted yet.
# TYPE ringnet_port_rx_packets_total counter
ringnet_port_rx_packets_total{port="ringnet0"} 2
ringnet_port_rx_packets_total{port="rna"} 10
ringnet_port_rx_packets_total{port="rnb"} 7
# HELP ringnet_port_tx_packets_total Frames the fast path put on the port's transmit rings (the host port: on the slow path's queues). Bytes are not counted yet.
# TYPE ringnet_port_tx_packets_total counter
ringnet_port_tx_packets_total{port="ringnet0"} 3
ringnet_port_tx_packets_total{port="rna"} 7
ringnet_port_tx_packets_total{port="rnb"} 10
# HELP ringnet_xsk_rx_dropped_total Frames the kernel dropped on receive for reasons other than a full RX ring (XDP_STATISTICS rx_dropped). Summed over the port's AF_XDP sockets.
# TYPE ringnet_xsk_rx_dropped_total counter
ringnet_xsk_rx_dropped_total{port="rna"} 4
ringnet_xsk_rx_dropped_total{port="rnb"} 0
# HELP ringnet_xsk_tx_kicks_total sendto(2) calls the workers made because the kernel asked to be woken to transmit (need_wakeup). Summed over the port's AF_XDP sockets.
# TYPE ringnet_xsk_tx_kicks_total counter
ringnet_xsk_tx_kicks_total{port="rna"} 6
ringnet_xsk_tx_kicks_total{port="rnb"} 0
`

const wantReasons = `
# HELP ringnet_packets_total Frames the dataplane delivered, by outcome: forwarded, answered for the gateway (arp_reply, nd_reply), sent to or received from another node (to_peer, from_peer), and the slow path's stages (host_rx read from the TAP, host_tx written to it; such a frame is also counted under its outcome).
# TYPE ringnet_packets_total counter
ringnet_packets_total{reason="arp_reply"} 2
ringnet_packets_total{reason="forwarded"} 17
ringnet_packets_total{reason="from_peer"} 0
ringnet_packets_total{reason="host_rx"} 2
ringnet_packets_total{reason="host_tx"} 3
ringnet_packets_total{reason="nd_reply"} 0
ringnet_packets_total{reason="to_peer"} 0
# HELP ringnet_punts_total Frames of a punt-list class within its rate limit: handed to the node's stack through the slow path (to_host, to_host_new, no_route, ip_options, fragment, unknown_ethertype) or answered with an ICMP error (ttl_expired, unreachable, frag_needed). Without a slow path they are dropped and counted here all the same.
# TYPE ringnet_punts_total counter
ringnet_punts_total{reason="frag_needed"} 0
ringnet_punts_total{reason="fragment"} 0
ringnet_punts_total{reason="ip_options"} 0
ringnet_punts_total{reason="no_route"} 0
ringnet_punts_total{reason="to_host"} 3
ringnet_punts_total{reason="to_host_new"} 0
ringnet_punts_total{reason="ttl_expired"} 1
ringnet_punts_total{reason="unknown_ethertype"} 0
ringnet_punts_total{reason="unreachable"} 0
`

const wantWorkersTables = `
# HELP ringnet_worker_busy_ratio Share of the worker's time spent in steps that found frames to move (the rest it slept in poll(2) or spun idle), over the time since the previous scrape of this endpoint (the first scrape: since the worker started). With several scrapers, prefer rate(ringnet_worker_busy_seconds_total[...]).
# TYPE ringnet_worker_busy_ratio gauge
ringnet_worker_busy_ratio{worker="0"} 0
ringnet_worker_busy_ratio{worker="1"} 0
# HELP ringnet_table_entries Entries in the table snapshot the fast path reads now (endpoints: pod addresses; routes: prefixes of other nodes), as the agent reports them.
# TYPE ringnet_table_entries gauge
ringnet_table_entries{table="endpoints"} 4
ringnet_table_entries{table="routes"} 2
`

func TestExposition(t *testing.T) {
	m := New(newFake(t), Options{Tables: tables})
	for _, c := range []struct {
		want  string
		names []string
	}{
		{wantPorts, []string{"ringnet_port_rx_packets_total", "ringnet_port_tx_packets_total",
			"ringnet_xsk_rx_dropped_total", "ringnet_xsk_tx_kicks_total"}},
		{wantReasons, []string{"ringnet_packets_total", "ringnet_punts_total"}},
		{wantWorkersTables, []string{"ringnet_worker_busy_ratio", "ringnet_table_entries"}},
	} {
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(c.want), c.names...); err != nil {
			t.Error(err)
		}
	}
	got := gather(t, m.Registry())
	for series, want := range map[string]float64{
		`ringnet_drops_total{reason="to_host_over_limit"}`: 4,
		`ringnet_drops_total{reason="punt_queue_full"}`:    1,
		`ringnet_drops_total{reason="tx_ring_full"}`:       6,
		`ringnet_drops_total{reason="to_gateway"}`:         0,
		`ringnet_xsk_rx_ring_full_total{port="rna"}`:       2,
		`ringnet_xsk_rx_fill_ring_empty_total{port="rna"}`: 4,
		`ringnet_worker_busy_seconds_total{worker="1"}`:    0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	for series := range got {
		if strings.HasPrefix(series, "ringnet_xsk_") && strings.Contains(series, "ringnet0") {
			t.Errorf("%s: the host port has no sockets", series)
		}
	}
	// Every reason once, in one family.
	n := 0
	for series := range got {
		for _, f := range []string{"ringnet_packets_total{", "ringnet_punts_total{", "ringnet_drops_total{"} {
			if strings.HasPrefix(series, f) {
				n++
			}
		}
	}
	if n != stats.NumReasons {
		t.Errorf("%d reason series, want %d", n, stats.NumReasons)
	}
}

// gather returns every sample of g as "name{labels}" → value; histograms
// as their _count and _sum.
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"] = float64(m.Histogram.GetSampleCount())
				out[mf.GetName()+"_sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func TestLint(t *testing.T) {
	m := New(newFake(t), Options{Tables: tables})
	m.ObserveCompile(3 * time.Millisecond)
	m.ObserveConvergence(40 * time.Millisecond)
	for _, c := range []prometheus.Collector{m.col, m.CompileDuration, m.Convergence} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestHistograms(t *testing.T) {
	m := New(nil, Options{})
	m.ObserveCompile(3 * time.Millisecond)
	m.ObserveCompile(2 * time.Second)
	m.Convergence.Observe(0.02)
	got := gather(t, m.Registry())
	for series, want := range map[string]float64{
		"ringnet_compile_duration_seconds_count": 2,
		"ringnet_compile_duration_seconds_sum":   2.003,
		"ringnet_convergence_seconds_count":      1,
		"ringnet_convergence_seconds_sum":        0.02,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	for series := range got {
		if strings.HasPrefix(series, "ringnet_") && !strings.HasPrefix(series, "ringnet_compile") &&
			!strings.HasPrefix(series, "ringnet_convergence") {
			t.Errorf("%s without a dataplane or tables", series)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no go_* series")
	}
}

func TestBusySample(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name        string
		prev        busySample
		busy, total time.Duration
		want        float64
	}{
		{"first reading", busySample{}, 25 * ms, 100 * ms, 0.25},
		{"since the previous", busySample{busy: 25 * ms, total: 100 * ms, ratio: 0.25}, 125 * ms, 200 * ms, 1},
		{"idle", busySample{busy: 25 * ms, total: 100 * ms, ratio: 0.25}, 25 * ms, 300 * ms, 0},
		{"no time passed", busySample{busy: 25 * ms, total: 100 * ms, ratio: 0.25}, 25 * ms, 100 * ms, 0.25},
		{"never ran", busySample{}, 0, 0, 0},
	}
	for _, c := range cases {
		got := c.prev.next(c.busy, c.total)
		if got.ratio != c.want || got.busy != c.busy || got.total != c.total {
			t.Errorf("%s: %+v.next(%v, %v) = %+v, want ratio %v", c.name, c.prev, c.busy, c.total, got, c.want)
		}
	}
}

// TestStartedDataplane scrapes a real, running dataplane with no ports:
// its workers sleep in poll(2), so their time advances and they are idle.
func TestStartedDataplane(t *testing.T) {
	dp, err := pipeline.New(pipeline.Config{Workers: 2, IdleTimeout: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := dp.Start(); err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	m := New(dp, Options{})
	gather(t, m.Registry())
	time.Sleep(50 * time.Millisecond)
	got := gather(t, m.Registry())
	for i, w := range dp.Workers() {
		r, ok := got[fmt.Sprintf("ringnet_worker_busy_ratio{worker=\"%d\"}", i)]
		if !ok || r < 0 || r > 0.5 {
			t.Errorf("worker %d: busy ratio %v (present %v), want an idle worker's", i, r, ok)
		}
		if _, total := w.BusyTime(); total < 20*time.Millisecond {
			t.Errorf("worker %d: total time %v after 50ms running", i, total)
		}
	}
	for series := range got {
		if strings.HasPrefix(series, "ringnet_port_") {
			t.Errorf("%s with no ports", series)
		}
	}
}

func TestProbes(t *testing.T) {
	m := New(nil, Options{})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	steps := []struct {
		do         func()
		path       string
		code       int
		body       string
		bodyPrefix bool
	}{
		{nil, "/healthz", 200, "ok\n", false},
		{nil, "/readyz", 503, "not ready: starting\n", false},
		{func() { m.SetReady(true) }, "/readyz", 200, "ok\n", false},
		{func() { m.SetNotReady("dataplane closed") }, "/readyz", 503, "not ready: dataplane closed\n", false},
		{nil, "/healthz", 200, "ok\n", false},
		{func() { m.SetReady(false) }, "/readyz", 503, "not ready: not ready\n", false},
		{nil, "/metrics", 200, "# HELP ", true},
		{nil, "/nothing", 404, "", true},
	}
	for i, s := range steps {
		if s.do != nil {
			s.do()
		}
		code, body := get(s.path)
		if code != s.code || (s.bodyPrefix && !strings.HasPrefix(body, s.body)) || (!s.bodyPrefix && body != s.body) {
			t.Errorf("step %d: GET %s = %d %q, want %d %q", i, s.path, code, body, s.code, s.body)
		}
	}
}

func TestServe(t *testing.T) {
	m := New(newFake(t), Options{Tables: tables})
	stop, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr, ok := m.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() || addr.Port == 0 {
		t.Fatalf("Addr() = %v, want 127.0.0.1:<port>", m.Addr())
	}
	url := "http://" + addr.String()
	if err := testutil.ScrapeAndCompare(url+"/metrics", strings.NewReader(wantWorkersTables),
		"ringnet_worker_busy_ratio", "ringnet_table_entries"); err != nil {
		t.Error(err)
	}
	if _, err := m.Serve(addr.String()); err == nil || !strings.Contains(err.Error(), "listen on "+addr.String()) {
		t.Errorf("Serve on a bound address: err %v", err)
	}
	stop()
	stop() // idempotent
	if m.Addr() != nil {
		t.Errorf("Addr() = %v after stop", m.Addr())
	}
	if resp, err := http.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("still serving after stop")
	}
}

func TestSetTables(t *testing.T) {
	m := New(nil, Options{Tables: tables})
	if got := gather(t, m.Registry())[`ringnet_table_entries{table="routes"}`]; got != 2 {
		t.Errorf("routes = %v, want 2", got)
	}
	m.SetTables(func() map[string]int { return map[string]int{"routes": 7} })
	got := gather(t, m.Registry())
	if got[`ringnet_table_entries{table="routes"}`] != 7 {
		t.Errorf("after SetTables: routes = %v, want 7", got[`ringnet_table_entries{table="routes"}`])
	}
	if _, ok := got[`ringnet_table_entries{table="endpoints"}`]; ok {
		t.Error("after SetTables: the old func's endpoints are still there")
	}
	m.SetTables(nil)
	for series := range gather(t, m.Registry()) {
		if strings.HasPrefix(series, "ringnet_table_entries") {
			t.Errorf("%s after SetTables(nil)", series)
		}
	}
}
