package main

import (
	"flag"
	"fmt"
	"log/slog"

	agentd "github.com/ringnet/ringnet/agent/daemon"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// metricsFlags are the flags of the metrics and probe server.
type metricsFlags struct {
	addr string
}

func addMetricsFlags(fs *flag.FlagSet) *metricsFlags {
	c := &metricsFlags{}
	fs.StringVar(&c.addr, "metrics-addr", metrics.DefaultAddr,
		`host:port serving Prometheus metrics (/metrics) and the health and readiness probes (/healthz, /readyz); localhost only unless you name another address; "" disables the server`)
	return c
}

// startMetrics makes the daemon's metrics over dp and, unless --metrics-addr
// is empty, serves them. The Metrics is returned either way, so the daemon
// can observe timings and call SetReady(true) once it forwards, whether or
// not anyone scrapes. stop stops the server.
func startMetrics(c *metricsFlags, dp *pipeline.Dataplane, log *slog.Logger) (stop func(), _ *metrics.Metrics, err error) {
	m := metrics.New(dp, metrics.Options{
		Tables: func() map[string]int { return agentd.TableSizes(dp) },
		Logger: log,
	})
	if c.addr == "" {
		log.Info("metrics server disabled (--metrics-addr is empty)")
		return func() {}, m, nil
	}
	stop, err = m.Serve(c.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr: %w (give another address, or \"\" to disable the server)", err)
	}
	log.Info("serving metrics and probes", "addr", m.Addr().String(), "paths", "/metrics /healthz /readyz")
	return stop, m, nil
}
