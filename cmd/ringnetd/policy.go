package main

// NetworkPolicy: the cluster's namespaces, pods and policies, from the
// Kubernetes API or the cluster file, compiled (agent/netpol) into the
// fast path's policy table and pod identities, and the connection
// tracking table swept.

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	agentd "github.com/ringnet/ringnet/agent/daemon"
	"github.com/ringnet/ringnet/agent/k8s"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/tables/conntrack"
)

// policyCompiler compiles NetworkPolicy inputs and publishes them as
// policy snapshots, and what ringnet policy shows with them. Its methods
// run on one goroutine at a time, and there is one writer for the life of
// the process: the Kubernetes source's RunPolicy goroutine with
// --kubernetes, ringnetd's main goroutine with --cluster (at start and on
// SIGHUP).
type policyCompiler struct {
	dp   *pipeline.Dataplane
	m    *metrics.Metrics
	log  *slog.Logger
	view *agentd.Policies // the policy view's source

	last *compiledPolicy  // the published policy; nil when none is enforced
	prev *netpol.Compiled // the last published compile, whose identity numbers the next keeps
	gen  uint32
}

// compiledPolicy is a policy compiled but not yet published, with the
// input it was compiled from.
type compiledPolicy struct {
	c    *netpol.Compiled
	nss  []netpol.Namespace
	pods []netpol.Pod
	pols []netpol.NetworkPolicy
	took time.Duration
}

// compile compiles the input as the next generation. It publishes
// nothing: an error leaves the fast path as it was.
func (pc *policyCompiler) compile(nss []netpol.Namespace, pods []netpol.Pod, pols []netpol.NetworkPolicy) (*compiledPolicy, error) {
	start := time.Now()
	c, err := netpol.Compile(uint64(pc.gen)+1, pc.prev, nss, pods, pols)
	if err != nil {
		return nil, fmt.Errorf("compile NetworkPolicy: %w", err)
	}
	return &compiledPolicy{c: c, nss: nss, pods: pods, pols: pols, took: time.Since(start)}, nil
}

// publish makes cp the fast path's policy, logging its problems; first,
// if not zero, is when the change it carries began (for the convergence
// metric).
func (pc *policyCompiler) publish(cp *compiledPolicy, first time.Time) error {
	for _, p := range cp.c.Problems {
		pc.log.Warn("NetworkPolicy problem", "err", p)
	}
	gen := pc.gen + 1
	if err := pc.dp.SetPolicy(&pipeline.Policy{Table: cp.c.Table, Identity: cp.c.ByIP, Gen: gen}); err != nil {
		return fmt.Errorf("publish NetworkPolicy: %w", err)
	}
	pc.gen, pc.prev, pc.last = gen, cp.c, cp
	pc.view.Publish(uint64(gen), cp.c, cp.pods, cp.pols)
	pc.m.ObserveCompile(cp.took)
	attrs := []any{"gen", gen, "policies", len(cp.pols), "pods", len(cp.pods), "identities", cp.c.Stats.Identities, "compile", cp.took}
	if !first.IsZero() {
		d := time.Since(first)
		pc.m.ObserveConvergence(d)
		attrs = append(attrs, "event_to_table", d)
	}
	pc.log.Info("policy published", attrs...)
	return nil
}

// update compiles in and publishes it, keeping the last policy on
// failure: RunPolicy's publish function.
func (pc *policyCompiler) update(in k8s.PolicyInput, first, _ time.Time) {
	cp, err := pc.compile(in.Namespaces, in.Pods, in.Policies)
	if err == nil {
		err = pc.publish(cp, first)
	}
	if err != nil {
		pc.log.Error("NetworkPolicy not updated; the previous policy stays", "err", err)
	}
}

// compileFile compiles the cluster file's policies, with its namespaces
// and pods: nil when it lists no policies (then nothing is enforced), the
// published policy when its input is what that was compiled from.
func (pc *policyCompiler) compileFile(c *cluster.Cluster) (*compiledPolicy, error) {
	if len(c.Policies) == 0 {
		return nil, nil
	}
	if l := pc.last; l != nil && reflect.DeepEqual(l.nss, c.Namespaces) && reflect.DeepEqual(l.pods, c.Pods) && reflect.DeepEqual(l.pols, c.Policies) {
		return l, nil
	}
	return pc.compile(c.Namespaces, c.Pods, c.Policies)
}

// applyFile publishes what compileFile made: a new policy, nothing for
// the one already published, and for nil it stops enforcing.
func (pc *policyCompiler) applyFile(cp *compiledPolicy) error {
	switch {
	case cp == nil && pc.last == nil:
		return nil
	case cp == nil:
		if err := pc.dp.SetPolicy(nil); err != nil {
			return fmt.Errorf("stop enforcing NetworkPolicy: %w", err)
		}
		pc.last = nil
		pc.view.Clear()
		pc.log.Info("policy enforcement off: the cluster file lists no policies")
		return nil
	case cp == pc.last:
		return nil
	}
	return pc.publish(cp, time.Time{})
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
