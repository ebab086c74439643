package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/ringnet/ringnet/internal/ringnode"
)

// topoPrefix scopes the benchmark's topologies (rntpolb...), so that a run
// sweeps only what an earlier, killed run of it left.
const topoPrefix = "polb"

const (
	// sinkPort is the one flow's destination port. With new flows the
	// destination port is random in the 256 ports sharing its high byte
	// (trafgen.Flow.DstPorts), which the rules allow and the receiver
	// binds.
	sinkPort = 9000
	// denyPort is a port of the receiver no rule allows: the probe that
	// proves the rules are enforced sends to it.
	denyPort = 7
	// probes is how many datagrams that probe sends.
	probes = 5
)

// A variant is one datapath with its way of holding the rules.
type variant struct {
	ID   string
	Name string // short, for the tables
	Desc string // one line, for the reports
	// Iptables is the iptables command that holds the rules on the kernel
	// path (its -restore installs them); empty for ringnet.
	Iptables string
}

var variants = []variant{
	{ID: "r", Name: "ringnet",
		Desc: "ringnetd on both nodes, cluster file `tunnel: {mode: direct}` (as bench/crossnode's (c)); the rules as N/10 NetworkPolicies of 10 ingress rules each selecting the receiver, in the cluster file's `policies:` with the two pods and their labels in `pods:`, applied by SIGHUP to both daemons."},
	{ID: "k", Name: "iptables", Iptables: "iptables",
		Desc: "Linux routing between the nodes (host-gw, as bench/crossnode's (a)); the rules in n2's FORWARD chain, `-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` first, the N rules in order, then `-d <receiver> -j DROP`, installed with iptables-restore; iptables 1.8 on its nf_tables backend (Debian's default `iptables`, iptables-nft)."},
	{ID: "l", Name: "iptables-legacy", Iptables: "iptables-legacy",
		Desc: "as (k), with iptables-legacy: the x_tables backend, whose rule walk is the classic one."},
}

func variantByID(id string) (variant, bool) {
	if i := slices.IndexFunc(variants, func(v variant) bool { return v.ID == id }); i >= 0 {
		return variants[i], true
	}
	return variant{}, false
}

// A load is one way of sending: one flow, or a new flow every packet.
type load struct {
	ID   string
	Name string
	// NewFlows: trafgen's random ports (trafgen.Flow.NewFlows).
	NewFlows bool
}

var loads = []load{
	{ID: "one", Name: "one flow"},
	{ID: "new", Name: "new flows", NewFlows: true},
}

// setup is one variant's Bed, built once; it holds one rule set at a
// time.
type setup struct {
	*testbed.Bed
	v     variant
	rules int             // the rule count installed now; 0: none yet
	flows [2]trafgen.Flow // per load
	confs [2]string       // trafgen config files, per load
	base  []byte          // ringnet: the cluster file without pods and policies
	dir   string          // the variant's folder: cluster file, rule files
	// lo to hi are the sink ports: the new flows' destination ports, which
	// the rules allow and the receiver binds.
	lo, hi uint16
}

// newSetup builds variant v's topology and pods, binds the receiver's
// sinks and writes both loads' trafgen configs. On error, what was built
// is in the setup and Close removes it.
func newSetup(ctx context.Context, r *runner, v variant, bins ringnode.Binaries) (*setup, error) {
	b, err := testbed.New(topoPrefix)
	if err != nil {
		return nil, err
	}
	s := &setup{Bed: b, v: v, dir: filepath.Join(r.dir, v.ID)}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return s, err
	}
	if v.Iptables != "" {
		err = s.HostGW(ctx)
		s.Extra = s.kernelCounters
	} else {
		err = s.Ringnet(ctx, bins, s.dir, "direct", r.o.Ringnetd)
		s.Extra = s.ringnetCounters
	}
	if err != nil {
		return s, err
	}
	if err := s.Open(ctx); err != nil {
		return s, err
	}
	for i, l := range loads {
		s.confs[i] = filepath.Join(s.dir, "udp64-"+l.ID+".trafgen")
		if s.flows[i], err = s.WriteFlow(ctx, s.confs[i], func(f *trafgen.Flow) { f.DstPort, f.NewFlows = sinkPort, l.NewFlows }); err != nil {
			return s, err
		}
	}
	s.lo, s.hi = s.flows[1].DstPorts()
	if err := s.Sink(s.lo, s.hi); err != nil {
		return s, err
	}
	if s.Cluster != nil {
		if s.base, err = os.ReadFile(s.Cluster.File); err != nil {
			return s, err
		}
	}
	return s, nil
}

// apply installs n rules: the kernel's with iptables-restore in n2, ringnet's
// as a new cluster file that both daemons reload.
func (s *setup) apply(ctx context.Context, n int) error {
	rs := ruleSet(n, s.lo, s.hi)
	if s.v.Iptables != "" {
		file := filepath.Join(s.dir, fmt.Sprintf("rules-%d.iptables", n))
		if err := os.WriteFile(file, []byte(iptablesRules(rs, s.Send.IP, s.Recv.IP)), 0o644); err != nil {
			return err
		}
		if _, err := child.Run(ctx, s.N2.NS, s.v.Iptables+"-restore", file); err != nil {
			return err
		}
	} else {
		data := append(slices.Clip(s.base), clusterPolicies(rs, s.Send.IP, s.Recv.IP)...)
		if err := s.Cluster.Replace(data); err != nil {
			return err
		}
		if err := s.checkPolicy(ctx, n); err != nil {
			return err
		}
	}
	s.rules = n
	return nil
}

// checkPolicy asks ringnetd on n2 what it enforces now: the n/10 policies,
// compiled without a problem, selecting the receiver.
func (s *setup) checkPolicy(ctx context.Context, n int) error {
	l, err := api.NewClient(s.Cluster.Daemons["n2"].Socket).Policy(ctx)
	if err != nil {
		return fmt.Errorf("ringnetd on n2: policy: %w", err)
	}
	if !l.Enforcing || len(l.Policies) != n/rulesPerPolicy || l.LocalSelected != 1 || len(l.Problems) > 0 {
		return fmt.Errorf("ringnetd on n2 enforces %d policies selecting %d local pods (enforcing %v, problems %q); want %d selecting the receiver",
			len(l.Policies), l.LocalSelected, l.Enforcing, l.Problems, n/rulesPerPolicy)
	}
	return nil
}

// kernelCounters reads, for the Bed's snapshots, n2's FORWARD chain by row
// ("n2.ipt.allow", see rowName) and n2's connection tracking statistics
// ("n2.nf_conntrack.insert").
func (s *setup) kernelCounters(ctx context.Context) (map[string]uint64, error) {
	m := map[string]uint64{}
	if s.rules > 0 {
		rows, err := counters.IPTables(ctx, s.N2.NS, s.v.Iptables, "FORWARD")
		if err != nil {
			return nil, fmt.Errorf("n2: %w", err)
		}
		if len(rows) != s.rules+2 {
			return nil, fmt.Errorf("n2: the FORWARD chain holds %d rules, want %d (%d, the ESTABLISHED rule and the DROP)", len(rows), s.rules+2, s.rules)
		}
		for _, name := range []string{rowEstablished, rowOthers, rowAllow, rowDrop} {
			m["n2.ipt."+name] = 0
		}
		for i, n := range rows {
			m["n2.ipt."+rowName(i, s.rules)] += n
		}
	}
	ct, err := counters.Conntrack(ctx, s.N2.NS)
	if err != nil {
		return nil, fmt.Errorf("n2: %w", err)
	}
	for k, v := range ct {
		m["n2.nf_conntrack."+k] = v
	}
	return m, nil
}

// ringnetCounters reads, for the Bed's snapshots, what each ringnetd's
// flow log has counted ("n2.flows.allowed", "n2.flows.lost"): one event
// per connection its fast path decided about and, for policy, tracked.
func (s *setup) ringnetCounters(ctx context.Context) (map[string]uint64, error) {
	m := map[string]uint64{}
	for _, name := range s.Cluster.Order {
		fl, err := api.NewClient(s.Cluster.Daemons[name].Socket).Flows(ctx)
		if err != nil {
			return nil, fmt.Errorf("ringnetd on %s: flows: %w", name, err)
		}
		for verdict, n := range fl.Total {
			m[name+".flows."+verdict] = n
		}
		m[name+".flows.lost"] = fl.Lost
	}
	return m, nil
}

// tracked is how many connections n2's datapath tracks now: ringnetd's
// connection table's entries (its status), or the kernel's
// nf_conntrack_count in n2.
func (s *setup) tracked(ctx context.Context) (uint64, error) {
	if s.v.Iptables != "" {
		out, err := child.Run(ctx, s.N2.NS, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	}
	st, err := api.NewClient(s.Cluster.Daemons["n2"].Socket).Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("ringnetd on n2: status: %w", err)
	}
	return uint64(st.Tables["conntrack"]), nil
}

// checked is how many packets n2's datapath checked against the rules,
// from counter deltas: for ringnet the connections its fast path started
// tracking, each after a verdict (its flow log's allowed events, and
// those its ring had no room for); for iptables the packets that were not
// ESTABLISHED and walked the chain to a rule or its end.
func (s *setup) checked(d map[string]uint64) uint64 {
	if s.v.Iptables != "" {
		return d["n2.ipt."+rowOthers] + d["n2.ipt."+rowAllow] + d["n2.ipt."+rowDrop]
	}
	return d["n2.flows.allowed"] + d["n2.flows.lost"]
}

// evicted is how many tracked connections n2's datapath dropped to make
// room, from counter deltas: the kernel's early_drop; for ringnet, which
// exports no such count, a lower bound: its table holds at most
// capacity connections, so of inserts beyond that, each evicted one.
func (s *setup) evicted(d map[string]uint64, capacity int) uint64 {
	if s.v.Iptables != "" {
		return d["n2.nf_conntrack.early_drop"]
	}
	return max(s.checked(d), uint64(capacity)) - uint64(capacity)
}

// checkDenied proves from counter deltas over the probe that the rules
// are enforced: every probe was dropped by the expected counter.
func (s *setup) checkDenied(d map[string]uint64) error {
	what, key := "n2's DROP rule", "n2.ipt."+rowDrop
	if s.v.Iptables == "" {
		what, key = "ringnetd on n2, policy_denied", "n2.reason.policy_denied"
	}
	if d[key] < probes {
		return fmt.Errorf("%d datagrams to port %d, which no rule allows, but %s counted %d: the rules are not enforced", probes, denyPort, what, d[key])
	}
	return nil
}

// checkLoad proves from counter deltas over load l that delivered frames
// took the way of the variant and the load: for iptables, the rule that
// must have accepted them; for ringnet, no verdict against the sender,
// and on n2 a new connection for every packet of new flows and none for
// one flow.
func (s *setup) checkLoad(l load, d map[string]uint64, delivered uint64) error {
	var errs []error
	if s.v.Iptables != "" {
		if l.NewFlows {
			errs = append(errs, testbed.Need(fmt.Sprintf("n2's rule allowing the sender (the last of %d)", s.rules), d["n2.ipt."+rowAllow], delivered))
		} else {
			errs = append(errs, testbed.Need("n2's ESTABLISHED rule", d["n2.ipt."+rowEstablished], delivered))
		}
		for _, row := range []string{rowOthers, rowDrop} {
			if n := d["n2.ipt."+row]; n > 0 {
				errs = append(errs, fmt.Errorf("n2's FORWARD chain: %d packets hit %s", n, row))
			}
		}
		return errors.Join(errs...)
	}
	for _, node := range []string{"n1", "n2"} {
		if n := d[node+".reason.policy_denied"]; n > 0 {
			errs = append(errs, fmt.Errorf("ringnetd on %s denied %d packets of the allowed sender", node, n))
		}
	}
	conns := s.checked(d)
	if l.NewFlows {
		errs = append(errs, testbed.Need("ringnetd on n2, new connections (flow events allowed + lost)", conns, delivered))
	} else if conns > delivered/100 {
		errs = append(errs, fmt.Errorf("ringnetd on n2 tracked %d new connections for %d packets of one flow: the flow was not tracked", conns, delivered))
	}
	return errors.Join(errs...)
}
