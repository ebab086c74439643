package main

// Services: the cluster's Services (from the cluster file, or from the
// Kubernetes API) compiled for this node (agent/cluster ServiceSpecs) into
// the fast path's service table, each snapshot reusing the last one's
// Maglev tables.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/slowpath"
	"github.com/ringnet/ringnet/tables/service"
)

// serviceCompiler turns service lists into service table snapshots and
// publishes them. Its methods run on one goroutine at a time, and there
// is one writer for the life of the process: ringnetd's main goroutine
// with --cluster (at start and on SIGHUP), the Kubernetes source's
// RunServices goroutine with --kubernetes.
type serviceCompiler struct {
	self *cluster.Node // fixed
	dp   *pipeline.Dataplane
	sp   *slowpath.SlowPath // nil without a slow path
	m    *metrics.Metrics
	log  *slog.Logger

	prev     *service.Table  // the published table; nil before the first
	problems map[string]bool // the problems of prev's compile, logged once each
	external []netip.Prefix  // the external IPs the uplink redirects (externalPrefixes)
	routed   []netip.Prefix  // the service addresses routed to the TAP (servicePrefixes)
}

// compiledServices is a service table built but not yet published.
type compiledServices struct {
	table    *service.Table
	services int // the Services it was compiled from
	problems []error
	took     time.Duration
}

// compile builds the table of svcs for this node as the next generation,
// sharing prev's Maglev tables where backends did not change. It
// publishes nothing: an error leaves the fast path as it was.
func (sc *serviceCompiler) compile(svcs []cluster.Service) (*compiledServices, error) {
	start := time.Now()
	specs, problems := cluster.ServiceSpecs(sc.self, svcs)
	var t *service.Table
	var err error
	if sc.prev == nil {
		t, err = service.Build(1, specs)
	} else {
		t, err = sc.prev.Next(sc.prev.Generation()+1, specs)
	}
	if err != nil {
		return nil, fmt.Errorf("compile the service table: %w", err)
	}
	return &compiledServices{table: t, services: len(svcs), problems: problems, took: time.Since(start)}, nil
}

// publish makes c's table the fast path's and logs what changed: entries
// added, removed and changed (in backends or settings) since the last
// table, and each problem not logged before. An empty table before any
// other is not published: to the fast path it is the same as none, and
// none needs no connection tracking.
func (sc *serviceCompiler) publish(c *compiledServices) error {
	sc.m.ObserveCompile(c.took)
	seen := make(map[string]bool, len(c.problems))
	for _, p := range c.problems {
		if s := p.Error(); !sc.problems[s] {
			sc.log.Warn("service problem", "problem", s)
		}
		seen[p.Error()] = true
	}
	sc.problems = seen
	if sc.prev == nil && c.table.Len() == 0 {
		sc.log.Info("no service entries to publish", "services", c.services)
		return nil
	}
	if err := sc.dp.SetServices(c.table); err != nil {
		return fmt.Errorf("publish services: %w", err)
	}
	var old []service.Spec
	if sc.prev != nil {
		old = sc.prev.All()
	}
	now := c.table.All()
	added, removed, changed := diffServices(old, now)
	for _, e := range added {
		sc.log.Debug("service entry added", "entry", e.String(), "backends", len(e.Backends))
	}
	for _, e := range removed {
		sc.log.Debug("service entry removed", "entry", e.String())
	}
	for _, e := range changed {
		sc.log.Debug("service entry changed", "entry", e.String(), "backends", len(e.Backends))
	}
	backends := 0
	for _, e := range now {
		backends += len(e.Backends)
	}
	sc.log.Info("services published", "gen", c.table.Generation(), "services", c.services, "entries", len(now), "backends", backends,
		"added", len(added), "removed", len(removed), "changed", len(changed), "compile", c.took)
	sc.prev = c.table
	sc.redirect(externalPrefixes(now, sc.self.Address.Addr()))
	sc.routeHost(servicePrefixes(now, sc.self.Address.Addr()))
	return nil
}

// routeHost routes the service addresses vips through the slow path's
// TAP, if they changed, so that the node's own connections to them
// (kubelet, host-network pods) are translated by the fast path too. A
// failure is logged: pods reach the services all the same.
func (sc *serviceCompiler) routeHost(vips []netip.Prefix) {
	if sc.sp == nil || slices.Equal(vips, sc.routed) {
		return
	}
	if err := sc.sp.SetServicePrefixes(vips); err != nil {
		sc.log.Error("service addresses not routed to the fast path: the node's own connections to them fail", "err", err)
		return
	}
	sc.routed = vips
}

// servicePrefixes are the host prefixes (/32, /128) of every service
// address but the node's own (its NodePorts), sorted, each once.
func servicePrefixes(specs []service.Spec, node netip.Addr) []netip.Prefix {
	return hostPrefixes(specs, func(e *service.Spec) bool { return e.VIP != node })
}

// redirect has the uplink hand frames for the external IPs ext to the
// fast path, besides the pod CIDRs (NodePorts on the node's address it
// redirects anyway), if they changed. A failure is logged: the table is
// published, and clients inside the cluster reach the external IPs
// through it all the same.
func (sc *serviceCompiler) redirect(ext []netip.Prefix) {
	if slices.Equal(ext, sc.external) {
		return
	}
	prefixes := append(slices.Clone(sc.self.PodCIDRs), ext...)
	if err := sc.dp.SetUplinkPrefixes(prefixes); err != nil {
		sc.log.Error("external IPs not redirected from the uplink: clients outside the cluster do not reach them", "external_ips", fmt.Sprint(ext), "err", err)
		return
	}
	sc.external = ext
	sc.log.Info("uplink redirects", "pod_cidrs", fmt.Sprint(sc.self.PodCIDRs), "external_ips", fmt.Sprint(ext))
}

// update compiles svcs and publishes them, keeping the last table on
// failure: RunServices's publish function.
func (sc *serviceCompiler) update(svcs []cluster.Service, first, _ time.Time) {
	c, err := sc.compile(svcs)
	if err == nil {
		err = sc.publish(c)
	}
	if err != nil {
		sc.log.Error("services not updated; the previous service table stays", "err", err)
		return
	}
	sc.m.ObserveConvergence(time.Since(first))
}

// diffServices compares two lists of service entries by address,
// protocol and port: the entries only in now, only in old, and in both
// but different (backends, table size, affinity, external, local). Both
// lists are as Table.All returns them: backends sorted.
func diffServices(old, now []service.Spec) (added, removed, changed []service.Spec) {
	type key struct {
		vip   netip.Addr
		proto uint8
		port  uint16
	}
	before := make(map[key]*service.Spec, len(old))
	for i := range old {
		before[key{old[i].VIP, old[i].Proto, old[i].Port}] = &old[i]
	}
	for _, e := range now {
		k := key{e.VIP, e.Proto, e.Port}
		o, ok := before[k]
		delete(before, k)
		switch {
		case !ok:
			added = append(added, e)
		case !slices.Equal(o.Backends, e.Backends) || o.TableSize != e.TableSize || o.Affinity != e.Affinity ||
			o.External != e.External || o.Local != e.Local:
			changed = append(changed, e)
		}
	}
	for _, e := range old {
		if _, ok := before[key{e.VIP, e.Proto, e.Port}]; ok {
			removed = append(removed, e)
		}
	}
	return added, removed, changed
}

// externalPrefixes are the host prefixes (/32, /128) of the external IPs
// with backends: the addresses the node's uplink must redirect to the fast
// path besides the pod CIDRs. NodePort entries, on the node's own address
// (node), are not among them. Sorted, each once.
func externalPrefixes(specs []service.Spec, node netip.Addr) []netip.Prefix {
	return hostPrefixes(specs, func(e *service.Spec) bool { return e.External && e.VIP != node && len(e.Backends) > 0 })
}

// hostPrefixes are the host prefixes (/32, /128) of the addresses of the
// entries keep takes, sorted, each once.
func hostPrefixes(specs []service.Spec, keep func(*service.Spec) bool) []netip.Prefix {
	var out []netip.Prefix
	for i := range specs {
		if e := &specs[i]; keep(e) {
			out = append(out, netip.PrefixFrom(e.VIP, e.VIP.BitLen()))
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return slices.Compact(out)
}
