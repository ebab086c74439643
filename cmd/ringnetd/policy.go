package main

// NetworkPolicy: the cluster's namespaces, pods and policies from the
// Kubernetes API, compiled (agent/netpol) into the fast path's policy
// table and pod identities, and the connection tracking table swept.

import (
	"context"
	"log/slog"
	"time"

	"github.com/ringnet/ringnet/agent/k8s"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/tables/conntrack"
)

// policyCompiler publishes each policy input as a new policy snapshot.
// publish runs on the policy source's goroutine only.
type policyCompiler struct {
	dp  *pipeline.Dataplane
	m   *metrics.Metrics
	log *slog.Logger

	prev *netpol.Compiled
	gen  uint32
}

// publish compiles in and publishes it; on failure the last good policy
// stays.
func (pc *policyCompiler) publish(in k8s.PolicyInput, first, _ time.Time) {
	start := time.Now()
	c, err := netpol.Compile(uint64(pc.gen)+1, pc.prev, in.Namespaces, in.Pods, in.Policies)
	if err != nil {
		pc.log.Error("NetworkPolicy compile failed; the previous policy stays", "err", err)
		return
	}
	for _, p := range c.Problems {
		pc.log.Warn("NetworkPolicy problem", "err", p)
	}
	pc.gen++
	if err := pc.dp.SetPolicy(&pipeline.Policy{Table: c.Table, Identity: c.ByIP, Gen: pc.gen}); err != nil {
		pc.log.Error("publish NetworkPolicy", "err", err)
		return
	}
	pc.prev = c
	pc.m.ObserveCompile(time.Since(start))
	d := time.Since(first)
	pc.m.ObserveConvergence(d)
	pc.log.Info("policy published", "gen", pc.gen, "policies", len(in.Policies), "pods", len(in.Pods),
		"identities", c.Stats.Identities, "compile", time.Since(start), "event_to_table", d)
}

// sweepConntrack removes expired connections once a second until ctx is
// done.
func sweepConntrack(ctx context.Context, dp *pipeline.Dataplane) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, ct := range []*conntrack.Table{dp.Conntrack(), dp.Affinity()} {
				if ct != nil {
					ct.Sweep(dp.ConntrackNow(), 1<<16)
				}
			}
		}
	}
}
