// Package metrics exports ringnetd's state to Prometheus and answers the
// kubelet's health and readiness probes.
//
// # Model
//
// Nothing here runs per packet. The fast path counts in its workers'
// memory and publishes once per batch (package stats); a scrape of
// /metrics reads those published counters through a [Source] (the
// Dataplane), the workers' busy time, and the agent's table sizes through a
// func it provides, and turns them into metrics on the spot: the
// collector keeps no copy of any count. The agent's own timings (table
// compiles, convergence) are histograms it observes as they happen.
//
// Every [Metrics] has its own registry; nothing is registered with
// Prometheus's global default registry, so two daemons in one test binary
// do not collide.
//
// # Series
//
//	ringnet_port_rx_packets_total{port}      frames taken off a port's RX rings
//	ringnet_port_tx_packets_total{port}      frames put on a port's TX rings
//	ringnet_xsk_<field>_total{port}          the port's AF_XDP socket counters (xsk.Stats)
//	ringnet_packets_total{reason}            frames delivered, by outcome (not drops)
//	ringnet_punts_total{reason}              frames of a punt-list class, within its limit
//	ringnet_drops_total{reason}              frames dropped, by reason
//	ringnet_worker_busy_ratio{worker}        busy share since the previous scrape
//	ringnet_worker_busy_seconds_total{worker}
//	ringnet_table_entries{table}             sizes of the tables the fast path reads
//	ringnet_compile_duration_seconds         histogram: compiling a table snapshot
//	ringnet_convergence_seconds              histogram: API event to snapshot published
//
// plus the Go runtime's go_* and the process's process_* series. Every
// stats.Reason is exported under exactly one of packets, punts and drops:
// punts are the reasons of the pipeline's punt list (pipeline.PuntClass),
// drops the other reasons with IsDrop. Bytes are not counted yet: the
// pipeline counts frames per batch, and summing frame lengths would be
// work per frame.
//
// # Goroutines
//
// Collect runs on the HTTP server's goroutines, possibly several at once;
// the one piece of collector state, the busy ratio's previous reading, is
// guarded by a mutex. Observe and SetReady are safe from any goroutine.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where ringnetd serves metrics and probes unless told
// otherwise: localhost only. Exposing them beyond the node is the
// operator's choice (ringnetd --metrics-addr).
const DefaultAddr = "127.0.0.1:9464"

// Options configures New. The zero value of each field is a default.
type Options struct {
	// Tables reports the number of entries of each table the fast path
	// reads, by table name ("endpoints", "routes", ...), for
	// ringnet_table_entries. It is called on every scrape and must be
	// cheap and safe from any goroutine. Nil: no table metrics (until
	// SetTables).
	Tables func() map[string]int
	// Logger receives the server's errors (never per scrape unless a
	// scrape fails); default slog.Default().
	Logger *slog.Logger
}

// Metrics is ringnetd's metrics registry and probe state.
type Metrics struct {
	// CompileDuration observes how long one compile of a table snapshot
	// took, in seconds (or use ObserveCompile).
	CompileDuration prometheus.Histogram
	// Convergence observes the seconds from an API event (a Pod, Node,
	// NetworkPolicy, ... change) to the publication of the table snapshot
	// that reflects it (or use ObserveConvergence).
	Convergence prometheus.Histogram

	reg *prometheus.Registry
	log *slog.Logger
	col *collector

	// notReady is why /readyz fails; nil once the daemon is ready.
	notReady atomic.Pointer[string]

	mu   sync.Mutex // guards addr
	addr net.Addr   // the last Serve's listener; nil: not serving
}

// New makes the registry over src, which may be nil (no dataplane
// metrics). The daemon is not ready until SetReady(true).
func New(src Source, opts Options) *Metrics {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Metrics{
		CompileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringnet_compile_duration_seconds",
			Help:    "Time the agent took to compile one table snapshot from the desired state.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		Convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ringnet_convergence_seconds",
			Help:    "Time from an API event the agent saw to the publication of the table snapshot that reflects it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		reg: prometheus.NewRegistry(),
		log: opts.Logger,
		col: &collector{src: src},
	}
	m.SetTables(opts.Tables)
	m.SetNotReady("starting")
	m.reg.MustRegister(
		m.col,
		m.CompileDuration, m.Convergence,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the registry /metrics serves, for the agent's other parts
// to register their own collectors with.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetTables replaces Options.Tables, e.g. once the agent that knows the
// routes runs. Safe from any goroutine.
func (m *Metrics) SetTables(fn func() map[string]int) { m.col.tables.Store(&fn) }

// ObserveCompile records one table compile that took d.
func (m *Metrics) ObserveCompile(d time.Duration) { m.CompileDuration.Observe(d.Seconds()) }

// ObserveConvergence records that the table snapshot reflecting an API
// event was published d after the event.
func (m *Metrics) ObserveConvergence(d time.Duration) { m.Convergence.Observe(d.Seconds()) }

// SetReady marks the daemon ready (/readyz answers 200) or not (503, "not
// ready").
func (m *Metrics) SetReady(ready bool) {
	if ready {
		m.notReady.Store(nil)
	} else {
		m.SetNotReady("not ready")
	}
}

// SetNotReady marks the daemon not ready; /readyz answers 503 with reason.
func (m *Metrics) SetNotReady(reason string) { m.notReady.Store(&reason) }

// Handler serves /metrics (the registry, in any format Prometheus asks
// for), /healthz (200 while the process runs) and /readyz (200 once the
// daemon is ready, 503 with the reason before).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError, // a broken series must not hide the others
		Registry:      m.reg,                    // counts errors as promhttp_metric_handler_errors_total
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r := m.notReady.Load(); r != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", *r)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve serves Handler on addr (host:port; DefaultAddr in ringnetd) until
// stop is called. It returns once the address is bound, so a busy port is
// reported here; Addr then gives the bound address (e.g. for port 0).
// stop waits up to 5s for scrapes in progress, then closes what remains.
func (m *Metrics) Serve(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	m.mu.Lock()
	m.addr = ln.Addr()
	m.mu.Unlock()
	done := make(chan struct{}) // closed when Serve has returned
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
			}
			<-done
			m.mu.Lock()
			if m.addr == ln.Addr() {
				m.addr = nil
			}
			m.mu.Unlock()
		})
	}, nil
}

// Addr is the address the running Serve listens on, or nil.
func (m *Metrics) Addr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}
