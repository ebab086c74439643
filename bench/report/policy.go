package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/chart"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/program"
)

// policyReport is what bench/policy writes with --json: for each datapath
// (ringnet, iptables on nf_tables, iptables-legacy) and rule count, a
// point with each load's summary (one flow, new flows).
type policyReport struct {
	Meta struct {
		program.Meta
		WarmupSeconds float64           `json:"warmup_seconds"`
		WindowSeconds float64           `json:"window_seconds"`
		Rules         []int             `json:"rules"`
		Variants      []program.Variant `json:"variants"`
		Loads         []struct {
			ID    string `json:"id"`
			Name  string `json:"name"`
			Frame string `json:"frame"`
		} `json:"loads"`
		Method []string `json:"method"`
	} `json:"meta"`
	Points []policyPoint `json:"points"`
	Ratios []ratio       `json:"ratios"`
}

type policyPoint struct {
	Variant string `json:"variant"`
	Rules   int    `json:"rules"`
	Runs    []struct {
		Round  int      `json:"round"`
		Errors []string `json:"errors"`
		Loads  []struct {
			Load   string   `json:"load"`
			Errors []string `json:"errors"`
		} `json:"loads"`
	} `json:"runs"`
	program.Tally
	LeftOut int `json:"left_out_runs"`
	Loads   map[string]struct {
		RxPPS    *figure.Stat `json:"rx_pps"`
		CPUNsPkt *figure.Stat `json:"cpu_ns_per_packet"`
	} `json:"summary"` // by load ID
}

// rxPPS is the point's rate for a load, nil if not measured.
func (p *policyPoint) rxPPS(load string) *figure.Stat {
	if p == nil {
		return nil
	}
	return p.Loads[load].RxPPS
}

func (r *policyReport) find(variant string, rules int) *policyPoint {
	i := slices.IndexFunc(r.Points, func(p policyPoint) bool { return p.Variant == variant && p.Rules == rules })
	if i < 0 {
		return nil
	}
	return &r.Points[i]
}

// policyColors are the datapaths' palette indices: ringnet's colour for
// ringnet, the others in turn for the iptables datapaths.
func policyColors(vs []program.Variant) []int {
	out, others := make([]int, len(vs)), []int{0, 2, 3, 4, 5}
	for i, v := range vs {
		if strings.Contains(strings.ToLower(v.Name), "ringnet") {
			out[i] = 1
			continue
		}
		out[i], others = others[0], append(others[1:], others[0])
	}
	return out
}

func renderPolicy(s *section, data []byte) (outcome, error) {
	r, err := decode(data, "points", func(r *policyReport) int { return min(len(r.Points), len(r.Meta.Rules), len(r.Meta.Variants)) })
	if err != nil {
		return outcome{}, err
	}
	m := r.Meta
	s.header(m.Meta, fmt.Sprintf("%d round(s); each load 64-byte UDP over a %g s window after %g s of warm-up, at %s rules applying to the receiver. "+
		"Each figure is the median over rounds, the min – max of the rounds beside it.", m.Runs, m.WindowSeconds, m.WarmupSeconds, rulesList(m.Rules)))

	colors := policyColors(m.Variants)
	for _, l := range m.Loads {
		var lines []chart.Line
		for i, v := range m.Variants {
			line := chart.Line{Name: v.Name, Color: chart.Palette[colors[i]]}
			for _, n := range m.Rules {
				line.X = append(line.X, float64(n))
				line.Values = append(line.Values, value(r.find(v.ID, n).rxPPS(l.ID)))
			}
			lines = append(lines, line)
		}
		err := s.chart("policy-"+l.ID+".png", fmt.Sprintf("Policy cost against rule count, %s: packets per second, median and min–max of the rounds", l.Name),
			chart.Lines{Title: "NetworkPolicy cost, " + l.Name + ": packets per second received", XLabel: "rules applying to the receiver (log scale)",
				YLabel: "packets per second (log scale)", LogX: true, LogY: true, ZeroName: "no rules", Series: lines})
		if err != nil {
			return outcome{}, err
		}
		fmt.Fprintf(s, "**%s**: 64-byte UDP pps at the receiver pod, median (min – max), and below it the CPU time of the whole machine per packet:\n\n| rules |", l.Name)
		for _, v := range m.Variants {
			fmt.Fprintf(s, " (%s) %s |", v.ID, v.Name)
		}
		s.WriteString("\n|--:|" + strings.Repeat("--:|", len(m.Variants)) + "\n")
		for _, n := range m.Rules {
			fmt.Fprintf(s, "| %s |", figure.Group(float64(n)))
			for _, v := range m.Variants {
				p := r.find(v.ID, n)
				c := groupedCell(p.rxPPS(l.ID))
				if p != nil && p.Loads[l.ID].CPUNsPkt != nil {
					c += "<br>" + figure.Median(p.Loads[l.ID].CPUNsPkt, "%.0f") + " ns"
				}
				fmt.Fprintf(s, " %s |", c)
			}
			s.WriteString("\n")
		}
		s.WriteString("\n")
	}
	s.ratios("**Ratios** of the medians, measured in the same run:", r.Ratios)

	var failed []string
	for _, p := range r.Points {
		for _, run := range p.Runs {
			for _, e := range run.Errors {
				failed = append(failed, fmt.Sprintf("(%s) %d rules, round %d: %s", p.Variant, p.Rules, run.Round, e))
			}
			for _, lr := range run.Loads {
				for _, e := range lr.Errors {
					failed = append(failed, fmt.Sprintf("(%s) %d rules, round %d, %s: %s", p.Variant, p.Rules, run.Round, lr.Load, e))
				}
			}
		}
	}
	s.list("**Failed rounds** (left out of the figures; the JSON keeps them):", failed)
	var vs []string
	for _, v := range m.Variants {
		vs = append(vs, fmt.Sprintf("**(%s) %s**: %s", v.ID, v.Name, v.Desc))
	}
	for _, l := range m.Loads {
		if l.Frame != "" {
			vs = append(vs, fmt.Sprintf("load **%s**: %s", l.Name, l.Frame))
		}
	}
	s.list("Variants and loads:", vs)
	s.list("Method:", m.Method)
	return outcome{title: "NetworkPolicy", date: m.Date, machine: machineLine(m.Meta), targets: withTargets(r.Ratios)}, nil
}

func rulesList(rules []int) string {
	var parts []string
	for _, n := range rules {
		parts = append(parts, figure.Group(float64(n)))
	}
	return strings.Join(parts, ", ")
}
