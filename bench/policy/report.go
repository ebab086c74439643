package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// Report is everything one benchmark run measured: the raw figures of every
// round and their summaries. It is what --json writes.
type Report struct {
	Meta   Meta            `json:"meta"`
	Points []*Point        `json:"points"` // by variant, then rule count
	Ratios []program.Ratio `json:"ratios"`
}

// Meta describes the run and the machine.
type Meta struct {
	program.Meta
	WarmupSeconds float64           `json:"warmup_seconds"`
	WindowSeconds float64           `json:"window_seconds"`
	Rules         []int             `json:"rules"`
	Variants      []program.Variant `json:"variants"`
	Loads         []LoadMeta        `json:"loads"`
	// ConntrackCapacity is the connections ringnetd's table holds
	// (pipeline.DefaultConntrackCapacity; ringnetd has no flag for it);
	// KernelConntrackMax the kernel's limit (nf_conntrack_max), 0 if
	// unknown.
	ConntrackCapacity  int      `json:"ringnet_conntrack_capacity"`
	KernelConntrackMax int      `json:"kernel_nf_conntrack_max"`
	Method             []string `json:"method"`
}

// LoadMeta describes a load.
type LoadMeta struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Frame string `json:"frame"`
	// TrackedShare bounds the share of the load's frames that can find
	// their tuple in ringnet's connection table (trafgen.Flow.NewFlowShare).
	TrackedShare float64 `json:"ringnet_tracked_share_max"`
}

// Point is one variant with one rule count: its rounds, and each load's
// summary.
type Point struct {
	Variant string       `json:"variant"`
	Rules   int          `json:"rules"`
	Runs    []*RunResult `json:"runs"`
	program.Tally
	Loads map[string]*Summary `json:"summary"` // by load ID
}

// Summary is one load at one point over the rounds that measured it and
// proved its path.
type Summary struct {
	// LeftOut counts the rounds the summary leaves out because other work
	// disturbed the load (cpustat.Kept).
	LeftOut    int          `json:"left_out_runs"`
	RxPPS      *figure.Stat `json:"rx_pps,omitempty"`
	OfferedPPS *figure.Stat `json:"offered_pps,omitempty"`
	CPUNsPkt   *figure.Stat `json:"cpu_ns_per_packet,omitempty"`
	// CheckedPerPkt is LoadResult.Checked per delivered packet: about 1
	// when every packet was checked against the rules, about 0 when one
	// tracked connection carried them; EvictedPerPkt the same of Evicted.
	CheckedPerPkt *figure.Stat    `json:"n2_checked_per_packet,omitempty"`
	EvictedPerPkt *figure.Stat    `json:"n2_evicted_per_packet,omitempty"`
	Tracked       *figure.Stat    `json:"n2_tracked_after,omitempty"` // LoadResult.Tracked
	CPU           []cpustat.Share `json:"cpu,omitempty"`
	// RingnetdCPU is each ringnetd's CPU time over the window, in percent
	// of one core, by node.
	RingnetdCPU map[string]*figure.Stat `json:"ringnetd_cpu_percent,omitempty"`
	// Losses is, per loss counter, the median count over rounds; Conntrack
	// the same for n2's kernel connection tracking statistics.
	Losses    map[string]float64 `json:"losses,omitempty"`
	Conntrack map[string]float64 `json:"n2_nf_conntrack,omitempty"`
}

func newReport(o options) *Report {
	r := &Report{Meta: Meta{
		Meta:               program.NewMeta(o.Command, o.Runs),
		WarmupSeconds:      o.Warmup.Seconds(),
		WindowSeconds:      o.Window.Seconds(),
		Rules:              o.Rules,
		ConntrackCapacity:  pipeline.DefaultConntrackCapacity,
		KernelConntrackMax: conntrackMax(),
		Method: []string{
			"Topology per variant (testbed.Bed): an underlay bridge in the root namespace, nodes n1 (192.168.50.1) and n2 (192.168.50.2) as namespaces with a veth uplink each, pod CIDRs 10.244.1.0/24 and 10.244.2.0/24, a sender pod on n1 and a receiver pod on n2: two nodes, so that the kernel's packets cross n2's FORWARD chain (pods on one node talk over a bridge, which iptables sees only with br_netfilter) and so that ringnet's verdict is taken where Kubernetes takes it, at the receiver's node; the sender's node checks egress, which no policy selects.",
			fmt.Sprintf("Rules: N rules allow UDP to the receiver: the last from the sender to the sink ports %d–%d, the one that lets the load through; of the others, one in ten the sender to another port (%d + its index), the rest the sink ports from an address of %s where no pod is. ringnet holds them as N/%d NetworkPolicies of %d ingress rules (ipBlock /32 peers, and a podSelector matching the sender's labels), iptables as N rules in that order between the ESTABLISHED rule and the DROP. Installed anew whenever a round comes to a rule count.", sinkPort&^0xff, sinkPort|0xff, otherPortBase, otherPeers, rulesPerPolicy, rulesPerPolicy),
			fmt.Sprintf("Enforcement, proved at every variant and rule count: %d datagrams from the sender to port %d, which no rule allows, must be counted by n2's DROP rule (iptables) or ringnetd's policy_denied on n2.", probes, denyPort),
			"Loads: trafgen in the sender pod (`taskset -c 0 trafgen --cpus 1`, one worker on CPU 0), 60-byte frames (64 on the wire) to the gateway MAC the sender pod resolved; figure: the receiver pod's eth0 rx_packets over the window (UDP sockets are bound to the 256 sink ports and never read). One flow: 10.244.1.x:40000 → 10.244.2.x:9000, which the receiver answers once, just before (one datagram back from port 9000, received by a socket on the sender's port 40000), so that a stateful firewall holds it as established — without an answer the kernel keeps a one-way UDP flow NEW and walks the rules for every packet. New flows: trafgen writes random bytes over the source port and the destination port's low byte of every frame (drnd()), 2^24 tuples.",
			fmt.Sprintf("Path proof, each load: n2's uplink must have received at least 90%% of the delivered frames at 60 bytes each; for iptables, n2's Ip ForwDatagrams, and the rule that took them: ESTABLISHED for one flow, the last of the N for new flows (at least 90%% of the delivered frames), none of the other N − 1 rules nor the DROP any; for ringnet, ringnetd's to_peer on n1 and from_peer on n2 (at least 90%%), policy_denied 0 on both nodes, and n2's flow log (one event per connection its fast path starts tracking; allowed plus lost, the events its ring had no room for) at least 90%% of the delivered frames for new flows, at most 1%% for one flow. ringnet's connection table holds %d connections and a tuple lives 30 s, so with 2^24 tuples at most %.2f%% of new-flow frames can find theirs tracked; the table is full within a fraction of a second (ringnetd's status counts its entries after the load) and every insert evicts a connection (ringnetd exports no eviction count; inserts − capacity bounds the evictions from below).", pipeline.DefaultConntrackCapacity, 100*float64(pipeline.DefaultConntrackCapacity)/(1<<24)),
			"Kernel connection tracking: n2's /proc/net/stat/nf_conntrack over each load, summed over CPUs (early_drop: an unreplied connection dropped to make room for a new one; drop: a packet dropped for want of room); its limit is the machine's nf_conntrack_max (in the JSON's meta), an unreplied UDP connection lives nf_conntrack_udp_timeout (30 s).",
			fmt.Sprintf("Before each load the benchmark waits (up to --quiet-wait) until other work keeps the machine at most %.0f%% busy, and counts the CPU time processes outside its namespaces take meanwhile; a load that began on a busier machine, or during which other work took more than %.0f%% of a core, is left out of the medians (unless it was in every round); the JSON keeps it.", cpustat.QuietBusy, cpustat.OtherWorkMax),
		},
	}}
	for _, id := range o.Variants {
		v, _ := variantByID(id)
		r.Meta.Variants = append(r.Meta.Variants, program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc})
	}
	for _, l := range loads {
		r.Meta.Loads = append(r.Meta.Loads, LoadMeta{ID: l.ID, Name: l.Name})
	}
	return r
}

// flows records the loads' frames, as one setup sends them.
func (r *Report) flows(fs [2]trafgen.Flow) {
	for i, f := range fs {
		r.Meta.Loads[i].Frame, r.Meta.Loads[i].TrackedShare = f.String(), f.NewFlowShare(r.Meta.ConntrackCapacity)
	}
}

// conntrackMax is the kernel's nf_conntrack_max, 0 if it cannot be read.
func conntrackMax() int {
	data, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

// point returns the point of variant v with n rules, adding it if new.
func (r *Report) point(v string, n int) *Point {
	i := slices.IndexFunc(r.Points, func(p *Point) bool { return p.Variant == v && p.Rules == n })
	if i < 0 {
		r.Points = append(r.Points, &Point{Variant: v, Rules: n})
		slices.SortStableFunc(r.Points, func(a, b *Point) int {
			if a.Variant != b.Variant {
				return slices.Index(r.variantIDs(), a.Variant) - slices.Index(r.variantIDs(), b.Variant)
			}
			return a.Rules - b.Rules
		})
		i = slices.IndexFunc(r.Points, func(p *Point) bool { return p.Variant == v && p.Rules == n })
	}
	return r.Points[i]
}

func (r *Report) variantIDs() []string {
	var ids []string
	for _, v := range r.Meta.Variants {
		ids = append(ids, v.ID)
	}
	return ids
}

// add records a round of variant v with n rules.
func (r *Report) add(v variant, n int, res *RunResult) {
	p := r.point(v.ID, n)
	p.Runs = append(p.Runs, res)
}

// Failed reports whether any round failed, or a point has none.
func (r *Report) Failed() bool {
	return len(r.Points) == 0 || slices.ContainsFunc(r.Points, func(p *Point) bool { return p.Failed() })
}

func (r *Report) summarise() {
	for _, p := range r.Points {
		p.Tally, p.Loads = program.Tally{}, map[string]*Summary{}
		for _, run := range p.Runs {
			if run.failed() {
				p.FailedRuns++
			} else {
				p.OKRuns++
			}
		}
		for _, l := range loads {
			// This load's result in each round that ran it.
			var lrs []*LoadResult
			var noise []cpustat.Noise
			for _, run := range p.Runs {
				if j := slices.IndexFunc(run.Loads, func(lr *LoadResult) bool { return lr.Load == l.ID }); j >= 0 {
					lrs, noise = append(lrs, run.Loads[j]), append(noise, run.Loads[j].Noise)
				}
			}
			kept := cpustat.Kept(noise)
			var rx, off, nspkt, checked, evicted, tracked []float64
			var cpu [][]cpustat.Share
			var losses, ct []map[string]uint64
			daemonCPU := map[string][]float64{}
			leftOut := 0
			for i, lr := range lrs {
				if !kept[i] {
					leftOut++
				}
				if !kept[i] || !lr.PathOK {
					continue
				}
				tp := lr.Throughput
				rx, off = append(rx, tp.RxPPS), append(off, tp.OfferedPPS)
				if tp.CPUNsPerPacket > 0 {
					nspkt = append(nspkt, tp.CPUNsPerPacket)
				}
				delivered := float64(max(tp.Delivered, 1))
				checked, evicted = append(checked, float64(lr.Checked)/delivered), append(evicted, float64(lr.Evicted)/delivered)
				tracked = append(tracked, float64(lr.Tracked))
				cpu, losses = append(cpu, tp.CPU), append(losses, lr.Losses)
				ct = append(ct, conntrackCounts(lr.Counters))
				for k, v := range tp.Probe {
					if node, ok := strings.CutSuffix(k, ".ringnetd_cpu_ms"); ok {
						daemonCPU[node] = append(daemonCPU[node], v/10) // ms per s to % of a core
					}
				}
			}
			s := &Summary{LeftOut: leftOut, RxPPS: figure.Of(rx), OfferedPPS: figure.Of(off), CPUNsPkt: figure.Of(nspkt),
				CheckedPerPkt: figure.Of(checked), EvictedPerPkt: figure.Of(evicted), Tracked: figure.Of(tracked),
				CPU: figure.CPUs(cpu), Losses: figure.Counts(losses), Conntrack: figure.Counts(ct)}
			for node, xs := range daemonCPU {
				if s.RingnetdCPU == nil {
					s.RingnetdCPU = map[string]*figure.Stat{}
				}
				s.RingnetdCPU[node] = figure.Of(xs)
			}
			p.Loads[l.ID] = s
		}
	}
	r.Ratios = r.ratios()
}

// conntrackCounts picks n2's kernel connection tracking statistics out of
// a load's counters, by their own names.
func conntrackCounts(c map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range c {
		if name, ok := strings.CutPrefix(k, "n2.nf_conntrack."); ok {
			out[name] = v
		}
	}
	return out
}

// pps is the median rate of a load at a point; 0 if none was measured.
func (p *Point) pps(load string) float64 {
	if s := p.Loads[load]; s != nil && s.RxPPS != nil {
		return s.RxPPS.Median
	}
	return 0
}

// find returns the point of variant v with n rules, or nil.
func (r *Report) find(v string, n int) *Point {
	i := slices.IndexFunc(r.Points, func(p *Point) bool { return p.Variant == v && p.Rules == n })
	if i < 0 {
		return nil
	}
	return r.Points[i]
}

// Target is what the benchmark holds ringnet to: its rate with the most
// rules at least this share of its rate with the fewest.
const target = 0.9

// ratios compares, for each load, every variant with the most rules to
// itself with the fewest (ringnet's held to target), and ringnet to each
// iptables with the most rules.
func (r *Report) ratios() []program.Ratio {
	rs := r.Meta.Rules
	if len(rs) == 0 {
		return nil
	}
	lo, hi := rs[0], rs[len(rs)-1]
	var out []program.Ratio
	for _, l := range loads {
		for _, v := range r.Meta.Variants {
			a, b := r.find(v.ID, hi), r.find(v.ID, lo)
			if a == nil || b == nil || hi == lo || a.pps(l.ID) == 0 || b.pps(l.ID) == 0 {
				continue
			}
			x := program.Ratio{What: fmt.Sprintf("%s, %s: %s rules / %s rules", v.Name, l.Name, figure.Group(float64(hi)), figure.Group(float64(lo))),
				Value: a.pps(l.ID) / b.pps(l.ID)}
			if v.ID == "r" {
				x.Target, x.Met = fmt.Sprintf("≥ %g", target), x.Value >= target
			}
			out = append(out, x)
		}
		for _, v := range r.Meta.Variants {
			a, b := r.find("r", hi), r.find(v.ID, hi)
			if v.ID == "r" || a == nil || b == nil || a.pps(l.ID) == 0 || b.pps(l.ID) == 0 {
				continue
			}
			out = append(out, program.Ratio{What: fmt.Sprintf("ringnet / %s, %s, %s rules", v.Name, l.Name, figure.Group(float64(hi))),
				Value: a.pps(l.ID) / b.pps(l.ID)})
		}
	}
	return out
}

// cell is a point's median rate for a load and its ratio to the same
// variant with the fewest rules: "250 000 (0.98)".
func (r *Report) cell(v string, n int, load string) (median, span, ratio string) {
	p := r.find(v, n)
	if p == nil || p.Loads[load] == nil || p.Loads[load].RxPPS == nil {
		return "-", "-", "-"
	}
	median, span = figure.Grouped(p.Loads[load].RxPPS)
	ratio = "-"
	if base := r.find(v, r.Meta.Rules[0]); base != nil && base.pps(load) > 0 {
		ratio = fmt.Sprintf("%.2f", p.pps(load)/base.pps(load))
	}
	return median, span, ratio
}

// detailRow is one (load, variant, rule count) of the details.
type detailRow struct {
	load, variant, rules, span, offered, loss, cpu, ringnetd, nsPkt, checked, evicted, tracked, losses, runs string
}

func (r *Report) details(cpuSep string) []detailRow {
	var rows []detailRow
	for _, l := range loads {
		for _, v := range r.Meta.Variants {
			for _, n := range r.Meta.Rules {
				p := r.find(v.ID, n)
				if p == nil || p.Loads[l.ID] == nil {
					continue
				}
				s := p.Loads[l.ID]
				_, span := figure.Grouped(s.RxPPS)
				off, _ := figure.Grouped(s.OfferedPPS)
				evicted := figure.Median(s.EvictedPerPkt, "%.2f")
				if v.ID == "r" && evicted != "-" {
					evicted = "≥ " + evicted
				}
				runs := fmt.Sprintf("%d/%d", p.OKRuns, p.OKRuns+p.FailedRuns)
				if s.LeftOut > 0 {
					runs += fmt.Sprintf(" (%d out)", s.LeftOut)
				}
				rows = append(rows, detailRow{l.Name, "(" + v.ID + ") " + v.Name, figure.Group(float64(n)), span, off, figure.Loss(s.RxPPS, s.OfferedPPS),
					cpus(s.CPU, cpuSep), testbed.PerNode(s.RingnetdCPU, cpuSep), figure.Median(s.CPUNsPkt, "%.0f"), figure.Median(s.CheckedPerPkt, "%.2f"), evicted, groupMedian(s.Tracked),
					orDash(figure.Largest(s.Losses, 2)), runs})
			}
		}
	}
	return rows
}

// WriteTable writes the human-readable summary.
func (r *Report) WriteTable(w io.Writer) {
	m := r.Meta
	fmt.Fprintf(w, "\nringnet NetworkPolicy: pod on n1 -> pod on n2, N rules applying to the receiver; %d round(s); %gs window after %gs warm-up\n",
		m.Runs, m.WindowSeconds, m.WarmupSeconds)
	fmt.Fprintf(w, "%s, %d cores, kernel %s\n", m.CPUModel, m.Cores, m.Kernel)
	for _, l := range loads {
		fmt.Fprintf(w, "\n%s: 64-byte UDP pps at the receiver pod, median (ratio to %d rules)\n", l.Name, m.Rules[0])
		fmt.Fprintf(w, "%8s", "rules")
		for _, v := range m.Variants {
			fmt.Fprintf(w, " %26s", "("+v.ID+") "+v.Name)
		}
		fmt.Fprintln(w)
		for _, n := range m.Rules {
			fmt.Fprintf(w, "%8d", n)
			for _, v := range m.Variants {
				med, _, ratio := r.cell(v.ID, n, l.ID)
				fmt.Fprintf(w, " %26s", med+" ("+ratio+")")
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "\ndetails (medians): load, variant, rules: rx min – max, offered, loss, CPU 0/1 busy, ringnetd n1/n2, CPU ns per packet; at n2: checked against the rules and connections evicted per packet, connections tracked after; losses, rounds ok\n")
	for _, d := range r.details("/") {
		fmt.Fprintf(w, "  %-9s %-20s %6s: %19s %9s %6s %9s %9s %6s %5s %6s %8s  %s  %s\n", d.load, d.variant, d.rules, d.span, d.offered, d.loss, d.cpu, d.ringnetd, d.nsPkt, d.checked, d.evicted, d.tracked, d.losses, d.runs)
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(w, "\nratios of the medians, same run:\n")
		for _, x := range r.Ratios {
			fmt.Fprintf(w, "  %-52s %5.2f  (%s)\n", x.What, x.Value, strings.ReplaceAll(x.Verdict(), "**", ""))
		}
	}
	for _, p := range r.Points {
		for _, run := range p.Runs {
			for _, e := range run.Errors {
				fmt.Fprintf(w, "FAILED (%s) %d rules, round %d: %s\n", p.Variant, p.Rules, run.Round, e)
			}
			for _, lr := range run.Loads {
				for _, e := range lr.Errors {
					fmt.Fprintf(w, "FAILED (%s) %d rules, round %d, %s: %s\n", p.Variant, p.Rules, run.Round, lr.Load, e)
				}
			}
		}
	}
}

// WriteMarkdown writes a section for docs/benchmarks.md.
func (r *Report) WriteMarkdown(path string) error {
	m := r.Meta
	b := program.NewSection("NetworkPolicy: 10 to 10 000 rules, ringnet against iptables", m.Meta)
	fmt.Fprintf(b, "each load %g s after %g s of warm-up. Median over rounds, and its ratio to the same datapath with %d rules.\n\n",
		m.WindowSeconds, m.WarmupSeconds, m.Rules[0])
	for _, l := range loads {
		fmt.Fprintf(b, "**%s**, 64-byte UDP pps received by the receiver pod:\n\n| rules |", capitalize(l.Name))
		for _, v := range m.Variants {
			fmt.Fprintf(b, " (%s) %s | × %d rules |", v.ID, v.Name, m.Rules[0])
		}
		b.WriteString("\n|--:|")
		for range m.Variants {
			b.WriteString("--:|--:|")
		}
		b.WriteString("\n")
		for _, n := range m.Rules {
			fmt.Fprintf(b, "| %s |", figure.Group(float64(n)))
			for _, v := range m.Variants {
				med, _, ratio := r.cell(v.ID, n, l.ID)
				fmt.Fprintf(b, " %s | %s |", med, ratio)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	if len(r.Ratios) > 0 {
		b.WriteString("**Ratios** of the medians, measured in the same run:\n\n| ratio | value | |\n|---|--:|---|\n")
		for _, x := range r.Ratios {
			fmt.Fprintf(b, "| %s | %.2f | %s |\n", x.What, x.Value, x.Verdict())
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "**Details** (medians). CPU ns per packet: the whole machine's busy CPU time over the window per delivered packet (trafgen, both nodes' forwarding, the receiver's stack; frames lost on the way included). Per delivered packet, at n2: *checked*, the packets checked against the rules (ringnet: connections its fast path started tracking after a verdict, from its flow log; iptables: packets that were not ESTABLISHED and walked the FORWARD chain); *evicted*, tracked connections dropped to make room (iptables: the kernel's early_drop; ringnet, which exports no such count: at least its inserts beyond the table's capacity). *Tracked after*: the connections n2 tracked when the load ended (ringnetd's status, of a table of %d; the kernel's nf_conntrack_count in n2, of nf_conntrack_max %d).\n\n", m.ConntrackCapacity, m.KernelConntrackMax)
	b.WriteString("| load | variant | rules | rx pps min – max | offered pps | loss | CPU 0 / 1 busy | ringnetd n1 / n2 | CPU ns per packet | checked | evicted | tracked after | largest losses | rounds ok (left out) |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
	for _, d := range r.details(" / ") {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d.load, d.variant, d.rules, d.span, d.offered, d.loss, d.cpu, d.ringnetd, d.nsPkt, d.checked, d.evicted, d.tracked, d.losses, d.runs)
	}
	method := m.Method
	for _, l := range m.Loads {
		method = append(method, fmt.Sprintf("Frame, %s: %s.", l.Name, l.Frame))
	}
	return b.Save(path, m.Variants, method, r.Failed())
}

// cpus is each CPU's median busy share, joined by sep.
func cpus(c []cpustat.Share, sep string) string {
	if len(c) == 0 {
		return "-"
	}
	return strings.ReplaceAll(figure.CPU(c, false), "/", "%"+sep) + "%"
}

// groupMedian is s's median with thousands separators.
func groupMedian(s *figure.Stat) string {
	m, _ := figure.Grouped(s)
	return m
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
