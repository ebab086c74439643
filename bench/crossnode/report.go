package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// Report is everything one benchmark run measured: the raw figures of every
// round and their summaries. It is what --json writes.
type Report struct {
	Meta     Meta             `json:"meta"`
	Variants []*VariantReport `json:"variants"`
	Ratios   []program.Ratio  `json:"ratios"`
}

// Meta describes the run and the machine.
type Meta struct {
	program.Meta
	WarmupSeconds  float64  `json:"warmup_seconds"`
	WindowSeconds  float64  `json:"window_seconds"`
	LatencySeconds int      `json:"latency_seconds"`
	TCPSeconds     int      `json:"tcp_seconds"`
	Frame          string   `json:"frame"`
	Method         []string `json:"method"`
}

// VariantReport holds one variant's rounds and summary.
type VariantReport struct {
	program.Variant
	Wire    int          `json:"expected_wire_bytes"`
	PodMTU  int          `json:"pod_mtu"`
	Runs    []*RunResult `json:"runs"`
	Summary Summary      `json:"summary"`
}

// Summary summarises the rounds: each figure over the rounds that measured
// it.
type Summary struct {
	program.Tally

	RxPPS      *figure.Stat    `json:"rx_pps,omitempty"`
	OfferedPPS *figure.Stat    `json:"offered_pps,omitempty"`
	CPUNsPkt   *figure.Stat    `json:"cpu_ns_per_packet,omitempty"`
	WireBytes  *figure.Stat    `json:"wire_bytes_per_frame,omitempty"`
	LoadCPU    []cpustat.Share `json:"load_cpu,omitempty"`
	// RingnetdCPU is each ringnetd's CPU time over the window, in percent
	// of one core, by node (ringnet variants).
	RingnetdCPU map[string]*figure.Stat `json:"ringnetd_cpu_percent,omitempty"`
	// LoadLosses is, per loss counter, the median count over rounds.
	LoadLosses map[string]float64 `json:"load_losses,omitempty"`
	PPSLimit   string             `json:"pps_limit,omitempty"`

	P50us  *figure.Stat `json:"p50_us,omitempty"`
	P99us  *figure.Stat `json:"p99_us,omitempty"`
	P999us *figure.Stat `json:"p99_9_us,omitempty"`

	TCPGbps     *figure.Stat       `json:"tcp_gbit_per_s,omitempty"`
	Retransmits *figure.Stat       `json:"tcp_retransmits,omitempty"`
	SenderCPU   *figure.Stat       `json:"tcp_sender_cpu_percent,omitempty"`
	ReceiverCPU *figure.Stat       `json:"tcp_receiver_cpu_percent,omitempty"`
	TCPCPU      []cpustat.Share    `json:"tcp_cpu,omitempty"`
	TCPLosses   map[string]float64 `json:"tcp_losses,omitempty"`
	TCPLimit    string             `json:"tcp_limit,omitempty"`

	// Background is how busy other work kept the machine just before the
	// rounds (percent of all CPUs).
	Background *figure.Stat `json:"background_busy_percent,omitempty"`
	// OtherWork is the CPU time other work took during the rounds, in
	// percent of one core.
	OtherWork *figure.Stat `json:"other_work_cpu_percent,omitempty"`
	// LeftOut counts the rounds the figures above leave out because other
	// work kept the machine busy when they began (RunResult.Disturbed);
	// when every round was, none is left out.
	LeftOut int `json:"left_out_runs"`
}

func newReport(o options) *Report {
	r := &Report{Meta: Meta{
		Meta:           program.NewMeta(o.Command, o.Runs),
		WarmupSeconds:  o.Warmup.Seconds(),
		WindowSeconds:  o.Window.Seconds(),
		LatencySeconds: o.latencySeconds(),
		TCPSeconds:     int(o.TCPTime / time.Second),
		Frame:          fmt.Sprintf("%d bytes + FCS: Ethernet, IPv4, UDP sender pod:40000 -> receiver pod:%d, 18 bytes payload", trafgen.FrameLen, sinkPort),
		Method: []string{
			"Topology per variant: an underlay bridge in the root namespace, nodes n1 (192.168.50.1) and n2 (192.168.50.2) as namespaces with a veth uplink each, pod CIDRs 10.244.1.0/24 and 10.244.2.0/24, a sender pod on n1 and a receiver pod on n2. Kernel nodes' uplinks have tx checksumming off (`ethtool -K uplink0 tx off`): the veth stands in for a NIC, which would complete the checksums the kernel leaves to it. ringnet pods are made by the CNI plugin through libcni (tx checksum/TSO/GSO off in the pod, MTU sized for the tunnel); kernel pods hang off a bridge with offloads on.",
			"64-byte UDP: " + trafgen.Method(o.Generator, "the sender pod") + ", one 60-byte frame (64 on the wire) repeated, to the gateway MAC the sender pod resolved; figure: the receiver pod's eth0 rx_packets over the window (a UDP socket is bound to the port and never read). Offered: the sender's eth0 tx_packets + tx_dropped; loss = 1 - rx/offered.",
			"Path proof, each round: n2's uplink must have received at least 90% of the delivered frames, at the variant's size on the wire (60 bytes routed, 80 IPIP, 110 VXLAN, ±2; with ringnetd's XDP program on the uplink the veth counts bytes without the 14-byte Ethernet header, which the benchmark adds back); (a)/(b) n2's Ip ForwDatagrams, (b) n2's flannel.1 rx_packets, (c)–(e) ringnetd's to_peer on n1 and from_peer on n2 (SIGUSR1 counters) must each count at least 90% of them too.",
			"Before each round the benchmark waits (up to --quiet-wait) until other work keeps the machine at most 10% busy, and records what it found (background_busy_percent). It also counts the CPU time that processes outside its own namespaces (and their children) take during each round (other_work_cpu_percent). A round that began on a busier machine (the wait ran out), or during which other work took more than 10% of a core, is marked disturbed and left out of the medians and ranges, unless every round of the variant was; the JSON keeps it.",
			"Losses: ringnetd's drop reasons and its sockets' xsk_* drop counters (xsk_rx_ring_full: the socket's RX ring was full; xsk_rx_dropped: no free frame in the fill ring), and for the kernel variants n2's uplink rx_dropped, over the load and over the TCP run (median count per round).",
			"Latency: `sockperf ping-pong -m 64 -t <window>` from the sender pod to `sockperf server` in the receiver pod, neither pinned; sockperf's percentiles (half round trip, µs).",
			"TCP: `iperf3 -c <receiver pod> -t <tcp-time>`, one stream, sender pod to receiver pod; received Gbit/s, the sender's retransmits, iperf3's own process CPU shares, and /proc/stat over the run.",
		},
	}}
	for _, id := range o.Variants {
		v, _ := variantByID(id)
		r.variant(v)
	}
	return r
}

func (r *Report) variant(v variant) *VariantReport {
	i := slices.IndexFunc(r.Variants, func(vr *VariantReport) bool { return vr.ID == v.ID })
	if i < 0 {
		r.Variants = append(r.Variants, &VariantReport{Variant: program.Variant{ID: v.ID, Name: v.Name, Desc: v.Desc}, Wire: v.Wire})
		i = len(r.Variants) - 1
	}
	return r.Variants[i]
}

// Failed reports whether any round of any variant failed, or a variant has
// no round.
func (r *Report) Failed() bool {
	return slices.ContainsFunc(r.Variants, func(v *VariantReport) bool { return v.Summary.Failed() })
}

func (r *Report) summarise() {
	for _, v := range r.Variants {
		var s Summary
		var rx, off, nspkt, wire, p50, p99, p999, gbps, retr, scpu, rcpu []float64
		var loadCPU, tcpCPU [][]cpustat.Share
		var loadLoss, tcpLoss []map[string]uint64
		daemonCPU := map[string][]float64{}
		var background, other []float64
		noise := make([]cpustat.Noise, len(v.Runs))
		for i, run := range v.Runs {
			noise[i] = run.Noise
		}
		kept := cpustat.Kept(noise)
		for i, run := range v.Runs {
			if len(run.Errors) > 0 {
				s.FailedRuns++
			} else {
				s.OKRuns++
			}
			background, other = append(background, run.BackgroundBusy), append(other, run.OtherWork)
			if !kept[i] {
				s.LeftOut++
				continue
			}
			if tp := run.Throughput; tp != nil && run.PathOK {
				rx, off = append(rx, tp.RxPPS), append(off, tp.OfferedPPS)
				if tp.CPUNsPerPacket > 0 {
					nspkt = append(nspkt, tp.CPUNsPerPacket)
				}
				wire = append(wire, run.WireBytes)
				loadCPU = append(loadCPU, tp.CPU)
				loadLoss = append(loadLoss, run.LoadLosses)
				for k, v := range tp.Probe {
					if node, ok := strings.CutSuffix(k, ".ringnetd_cpu_ms"); ok {
						daemonCPU[node] = append(daemonCPU[node], v/10) // ms per s to % of a core
					}
				}
			}
			if l := run.Latency; l != nil {
				p50, p99, p999 = append(p50, l.P50us), append(p99, l.P99us), append(p999, l.P999us)
			}
			if t := run.TCP; t != nil {
				gbps, retr = append(gbps, t.Gbps), append(retr, float64(t.Retransmits))
				scpu, rcpu = append(scpu, t.SenderCPU), append(rcpu, t.ReceiverCPU)
				tcpCPU = append(tcpCPU, t.CPU)
				tcpLoss = append(tcpLoss, run.TCPLosses)
			}
		}
		s.RxPPS, s.OfferedPPS, s.CPUNsPkt, s.WireBytes = figure.Of(rx), figure.Of(off), figure.Of(nspkt), figure.Of(wire)
		s.LoadCPU, s.LoadLosses = figure.CPUs(loadCPU), figure.Counts(loadLoss)
		for node, xs := range daemonCPU {
			if s.RingnetdCPU == nil {
				s.RingnetdCPU = map[string]*figure.Stat{}
			}
			s.RingnetdCPU[node] = figure.Of(xs)
		}
		s.P50us, s.P99us, s.P999us = figure.Of(p50), figure.Of(p99), figure.Of(p999)
		s.TCPGbps, s.Retransmits, s.SenderCPU, s.ReceiverCPU = figure.Of(gbps), figure.Of(retr), figure.Of(scpu), figure.Of(rcpu)
		s.TCPCPU, s.TCPLosses = figure.CPUs(tcpCPU), figure.Counts(tcpLoss)
		s.PPSLimit, s.TCPLimit = ppsLimit(s), tcpLimit(s)
		s.Background, s.OtherWork = figure.Of(background), figure.Of(other)
		v.Summary = s
	}
	r.Ratios = r.ratios()
}

// ratios compares the medians: the targets ringnet VXLAN is held to
// against the kernel's VXLAN (Flannel), and for information ringnet
// direct against kernel host-gw.
func (r *Report) ratios() []program.Ratio {
	get := func(id string, f func(Summary) *figure.Stat) float64 {
		for _, v := range r.Variants {
			if v.ID == id {
				if st := f(v.Summary); st != nil {
					return st.Median
				}
			}
		}
		return 0
	}
	pps := func(s Summary) *figure.Stat { return s.RxPPS }
	p99 := func(s Summary) *figure.Stat { return s.P99us }
	tcp := func(s Summary) *figure.Stat { return s.TCPGbps }
	var out []program.Ratio
	add := func(what, num, den string, f func(Summary) *figure.Stat, target string, met func(float64) bool) {
		n, d := get(num, f), get(den, f)
		if n <= 0 || d <= 0 {
			return
		}
		x := program.Ratio{What: what, Value: n / d, Target: target}
		if met != nil {
			x.Met = met(x.Value)
		}
		out = append(out, x)
	}
	add("ringnet VXLAN / kernel VXLAN, 64-byte pps (d/b)", "d", "b", pps, "≥ 1.5", func(x float64) bool { return x >= 1.5 })
	add("ringnet VXLAN, idle spin / kernel VXLAN, p99 latency (g/b)", "g", "b", p99, "≤ 1", func(x float64) bool { return x <= 1 })
	add("ringnet VXLAN (workers sleep when idle) / kernel VXLAN, p99 latency (d/b)", "d", "b", p99, "", nil)
	add("ringnet VXLAN, idle spin / kernel VXLAN, p50 latency (g/b)", "g", "b", func(s Summary) *figure.Stat { return s.P50us }, "", nil)
	add("ringnet VXLAN / kernel VXLAN, TCP (d/b)", "d", "b", tcp, "≥ 0.5", func(x float64) bool { return x >= 0.5 })
	add("ringnet to a ClusterIP / to the pod IP, 64-byte pps (f/d)", "f", "d", pps, "≥ 0.9", func(x float64) bool { return x >= 0.9 })
	add("ringnet direct / kernel host-gw, 64-byte pps (c/a)", "c", "a", pps, "", nil)
	add("ringnet direct / kernel host-gw, p99 latency (c/a)", "c", "a", p99, "", nil)
	add("ringnet direct / kernel host-gw, TCP (c/a)", "c", "a", tcp, "", nil)
	return out
}

// busyCore is the busiest CPU in a summary: its number and shares.
func busyCore(cpus []cpustat.Share) (int, cpustat.Share) {
	best := -1
	for i, c := range cpus {
		if best < 0 || c.Busy > cpus[best].Busy {
			best = i
		}
	}
	if best < 0 {
		return -1, cpustat.Share{}
	}
	return best, cpus[best]
}

// full is the busy share above which a core counts as saturated.
const full = 90

// ppsLimit says what set a variant's 64-byte rate, from the medians: the
// sender (trafgen's core full and nothing lost on the way), or the path
// (frames lost: which counters saw them), and how busy the cores were.
func ppsLimit(s Summary) string {
	if s.RxPPS == nil || s.OfferedPPS == nil || s.OfferedPPS.Median == 0 {
		return ""
	}
	loss := max(0, 1-s.RxPPS.Median/s.OfferedPPS.Median)
	var cpu0, cpu1 cpustat.Share
	if len(s.LoadCPU) > 0 {
		cpu0 = s.LoadCPU[0]
	}
	if len(s.LoadCPU) > 1 {
		cpu1 = s.LoadCPU[1]
	}
	cores := fmt.Sprintf("CPU 0 %.0f%% busy (%.0f%% softirq), CPU 1 %.0f%% (%.0f%% softirq)", cpu0.Busy, cpu0.Softirq, cpu1.Busy, cpu1.Softirq)
	if len(s.RingnetdCPU) > 0 {
		cores += "; ringnetd on n1 / n2 used " + testbed.PerNode(s.RingnetdCPU, " / ") + " of a core"
	}
	switch {
	case loss < 0.02 && cpu0.Busy >= full:
		return "the sender: the generator's core is full and the path carried all it offered; " + cores
	case loss < 0.02:
		return "the sender, held back by its own veth (no loss, the generator's core not full); " + cores
	default:
		where := figure.Largest(s.LoadLosses, 3)
		if where == "" {
			where = "not counted by ringnetd or n2's uplink: on the sender's side or in the receiving pod's kernel"
		}
		return fmt.Sprintf("the path: %.0f%% of what the generator offered was lost (%s); %s", 100*loss, where, cores)
	}
}

// tcpLimit says what held back the TCP stream, from the medians.
func tcpLimit(s Summary) string {
	if s.TCPGbps == nil {
		return ""
	}
	i, c := busyCore(s.TCPCPU)
	var b strings.Builder
	if i >= 0 && c.Busy >= full {
		fmt.Fprintf(&b, "CPU %d full (%.0f%%: %.0f%% softirq, %.0f%% system, %.0f%% user)", i, c.Busy, c.Softirq, c.System, c.User)
	} else if i >= 0 {
		fmt.Fprintf(&b, "no core full (busiest CPU %d at %.0f%%)", i, c.Busy)
	}
	fmt.Fprintf(&b, "; iperf3 sender %.0f%%, receiver %.0f%% of a core", s.SenderCPU.Median, s.ReceiverCPU.Median)
	if s.Retransmits != nil && s.Retransmits.Median > 0 {
		fmt.Fprintf(&b, "; %.0f retransmits", s.Retransmits.Median)
	}
	if l := figure.Largest(s.TCPLosses, 3); l != "" {
		fmt.Fprintf(&b, "; losses: %s", l)
	}
	return b.String()
}

// Formatting helpers: "-" for a figure no round measured.

// okRuns is "ok/all", and how many of them the figures leave out.
func okRuns(s Summary) string {
	ok := fmt.Sprintf("%d/%d", s.OKRuns, s.OKRuns+s.FailedRuns)
	if s.LeftOut > 0 {
		ok += fmt.Sprintf(" (%d out)", s.LeftOut)
	}
	return ok
}

// WriteTable writes the human-readable summary.
func (r *Report) WriteTable(w io.Writer) {
	m := r.Meta
	fmt.Fprintf(w, "\nringnet cross-node: pod on n1 -> pod on n2; %d round(s); %gs UDP window after %gs warm-up, %ds sockperf, %ds iperf3\n",
		m.Runs, m.WindowSeconds, m.WarmupSeconds, m.LatencySeconds, m.TCPSeconds)
	fmt.Fprintf(w, "%s, %d cores, kernel %s\n\n", m.CPUModel, m.Cores, m.Kernel)

	fmt.Fprintf(w, "64-byte UDP (one generator core), rx at the receiver pod:\n")
	const row = "%-20s %8s %17s %8s %6s %8s %8s %9s %6s %6s %11s %6s\n"
	fmt.Fprintf(w, row, "variant", "rx pps", "min – max", "offered", "loss", "cpu0/1%", "sirq0/1%", "rnd n1/n2", "ns/pkt", "wire B", "ok", "other")
	for _, v := range r.Variants {
		s := v.Summary
		rx, span := figure.Grouped(s.RxPPS)
		fmt.Fprintf(w, row, "("+v.ID+") "+v.Name, rx, span, figure.Median(s.OfferedPPS, "%.0f"), figure.Loss(s.RxPPS, s.OfferedPPS), figure.CPU(s.LoadCPU, false), figure.CPU(s.LoadCPU, true),
			testbed.PerNode(s.RingnetdCPU, "/"), figure.Median(s.CPUNsPkt, "%.0f"), figure.Median(s.WireBytes, "%.0f"), okRuns(s), figure.Max(s.OtherWork, "%.0f%%"))
	}
	fmt.Fprintf(w, "\nlatency (sockperf ping-pong, 64 bytes, half round trip, µs): median (min – max)\n")
	const lrow = "%-20s %22s %22s %22s\n"
	fmt.Fprintf(w, lrow, "variant", "p50", "p99", "p99.9")
	for _, v := range r.Variants {
		s := v.Summary
		cell := func(st *figure.Stat) string { return figure.Median(st, "%.1f") + " (" + figure.Span(st, "%.1f") + ")" }
		fmt.Fprintf(w, lrow, "("+v.ID+") "+v.Name, cell(s.P50us), cell(s.P99us), cell(s.P999us))
	}
	fmt.Fprintf(w, "\nTCP (iperf3, one stream):\n")
	const trow = "%-20s %7s %13s %8s %9s %9s %8s %7s\n"
	fmt.Fprintf(w, trow, "variant", "Gbit/s", "min – max", "retrans", "snd cpu%", "rcv cpu%", "cpu0/1%", "pod MTU")
	for _, v := range r.Variants {
		s := v.Summary
		fmt.Fprintf(w, trow, "("+v.ID+") "+v.Name, figure.Median(s.TCPGbps, "%.2f"), figure.Span(s.TCPGbps, "%.2f"), figure.Median(s.Retransmits, "%.0f"),
			figure.Median(s.SenderCPU, "%.0f"), figure.Median(s.ReceiverCPU, "%.0f"), figure.CPU(s.TCPCPU, false), fmt.Sprint(v.PodMTU))
	}
	fmt.Fprintf(w, "\nwhat limited each figure:\n")
	for _, v := range r.Variants {
		if s := v.Summary; s.PPSLimit != "" || s.TCPLimit != "" {
			fmt.Fprintf(w, "  (%s) pps: %s\n      TCP: %s\n", v.ID, s.PPSLimit, s.TCPLimit)
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(w, "\nratios of the medians, same run:\n")
		for _, x := range r.Ratios {
			fmt.Fprintf(w, "  %-52s %5.2f  (%s)\n", x.What, x.Value, strings.ReplaceAll(x.Verdict(), "**", ""))
		}
	}
	for _, v := range r.Variants {
		for _, run := range v.Runs {
			for _, e := range run.Errors {
				fmt.Fprintf(w, "FAILED (%s) round %d: %s\n", v.ID, run.Round, e)
			}
		}
	}
}

// WriteMarkdown writes a section for docs/benchmarks.md.
func (r *Report) WriteMarkdown(path string) error {
	m := r.Meta
	b := program.NewSection("Cross-node: pod to pod between two nodes", m.Meta)
	fmt.Fprintf(b, "64-byte UDP over a %g s window after %g s of warm-up, latency from a %d s sockperf ping-pong, "+
		"TCP from a %d s iperf3 run. Median over rounds, min – max beside it.\n\n", m.WindowSeconds, m.WarmupSeconds, m.LatencySeconds, m.TCPSeconds)

	b.WriteString("**64-byte UDP, pod to pod** (received by the receiver pod's eth0):\n\n")
	b.WriteString("| variant | rx pps | min – max | offered pps | loss | CPU 0 / 1 busy | softirq 0 / 1 | ringnetd n1 / n2 | CPU ns per packet | bytes on the wire | rounds ok (left out) | other work during a round, max (% of a core) |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, v := range r.Variants {
		s := v.Summary
		rx, span := figure.Grouped(s.RxPPS)
		off, _ := figure.Grouped(s.OfferedPPS)
		fmt.Fprintf(b, "| (%s) %s | %s | %s | %s | %s | %s%% | %s%% | %s | %s | %s | %s | %s |\n", v.ID, v.Name, rx, span, off, figure.Loss(s.RxPPS, s.OfferedPPS),
			strings.ReplaceAll(figure.CPU(s.LoadCPU, false), "/", "% / "), strings.ReplaceAll(figure.CPU(s.LoadCPU, true), "/", "% / "),
			testbed.PerNode(s.RingnetdCPU, " / "), figure.Median(s.CPUNsPkt, "%.0f"), figure.Median(s.WireBytes, "%.0f"), okRuns(s), figure.Max(s.OtherWork, "%.0f%%"))
	}
	b.WriteString("\n**Latency** (sockperf ping-pong, 64-byte messages, half round trip, µs):\n\n")
	b.WriteString("| variant | p50 | min – max | p99 | min – max | p99.9 | min – max |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, v := range r.Variants {
		s := v.Summary
		fmt.Fprintf(b, "| (%s) %s | %s | %s | %s | %s | %s | %s |\n", v.ID, v.Name, figure.Median(s.P50us, "%.1f"), figure.Span(s.P50us, "%.1f"),
			figure.Median(s.P99us, "%.1f"), figure.Span(s.P99us, "%.1f"), figure.Median(s.P999us, "%.1f"), figure.Span(s.P999us, "%.1f"))
	}
	b.WriteString("\n**TCP** (iperf3, one stream, sender pod to receiver pod):\n\n")
	b.WriteString("| variant | Gbit/s | min – max | retransmits | iperf3 sender / receiver CPU | CPU 0 / 1 busy | pod MTU |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, v := range r.Variants {
		s := v.Summary
		fmt.Fprintf(b, "| (%s) %s | %s | %s | %s | %s%% / %s%% | %s%% | %d |\n", v.ID, v.Name, figure.Median(s.TCPGbps, "%.2f"), figure.Span(s.TCPGbps, "%.2f"),
			figure.Median(s.Retransmits, "%.0f"), figure.Median(s.SenderCPU, "%.0f"), figure.Median(s.ReceiverCPU, "%.0f"), strings.ReplaceAll(figure.CPU(s.TCPCPU, false), "/", "% / "), v.PodMTU)
	}
	if len(r.Ratios) > 0 {
		b.WriteString("\n**Ratios** of the medians, measured in the same run:\n\n| ratio | value | |\n|---|--:|---|\n")
		for _, x := range r.Ratios {
			fmt.Fprintf(b, "| %s | %.2f | %s |\n", x.What, x.Value, x.Verdict())
		}
	}
	b.WriteString("\n**What limited each figure** (from the medians, as the benchmark reads them):\n\n")
	for _, v := range r.Variants {
		s := v.Summary
		fmt.Fprintf(b, "- (%s) %s — pps: %s. TCP: %s.\n", v.ID, v.Name, orDash(s.PPSLimit), orDash(s.TCPLimit))
	}
	vs := make([]program.Variant, len(r.Variants))
	for i, v := range r.Variants {
		vs[i] = v.Variant
	}
	return b.Save(path, vs, m.Method, r.Failed())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
