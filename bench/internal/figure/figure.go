// Package figure summarises a benchmark's rounds and prints its numbers:
// the median and range of a figure over rounds (a noisy machine makes the
// mean misleading), of each CPU's shares and of counters, and large
// numbers with thin-space thousands for the markdown reports.
package figure

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/cpustat"
)

// Stat is the median, minimum and maximum over rounds.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// Of summarises xs; nil if there are none.
func Of(xs []float64) *Stat {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Group writes v rounded, with thin thousands separators: 1 234 567.
func Group(v float64) string {
	s := fmt.Sprintf("%d", int64(math.Round(v)))
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, []byte("\u202f")...)
		}
		out = append(out, s[i])
	}
	return string(out)
}

// CPUs summarises per-CPU shares over rounds: each CPU's median of each
// share.
func CPUs(rounds [][]cpustat.Share) []cpustat.Share {
	var out []cpustat.Share
	for i := 0; ; i++ {
		var busy, user, sys, sirq, steal []float64
		for _, r := range rounds {
			if i < len(r) {
				busy, user, sys = append(busy, r[i].Busy), append(user, r[i].User), append(sys, r[i].System)
				sirq, steal = append(sirq, r[i].Softirq), append(steal, r[i].Steal)
			}
		}
		if len(busy) == 0 {
			return out
		}
		out = append(out, cpustat.Share{Busy: Of(busy).Median, User: Of(user).Median, System: Of(sys).Median,
			Softirq: Of(sirq).Median, Steal: Of(steal).Median})
	}
}

// Counts is the median of each counter over rounds (a round without it
// counts 0), for the counters whose median is not 0.
func Counts(rounds []map[string]uint64) map[string]float64 {
	keys := map[string]bool{}
	for _, m := range rounds {
		for k := range m {
			keys[k] = true
		}
	}
	out := map[string]float64{}
	for k := range keys {
		var xs []float64
		for _, m := range rounds {
			xs = append(xs, float64(m[k]))
		}
		if med := Of(xs).Median; med > 0 {
			out[k] = med
		}
	}
	return out
}

// Formatting for tables: "-" for a figure no round measured.

// Median is s's median in format.
func Median(s *Stat, format string) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf(format, s.Median)
}

// Max is s's maximum in format.
func Max(s *Stat, format string) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf(format, s.Max)
}

// Span is s's range, "min – max", in format.
func Span(s *Stat, format string) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf(format+" – "+format, s.Min, s.Max)
}

// Grouped is s's median and range with thousands separators (Group).
func Grouped(s *Stat) (median, span string) {
	if s == nil {
		return "-", "-"
	}
	return Group(s.Median), Group(s.Min) + " – " + Group(s.Max)
}

// Loss is the share of what was offered that was not received, from the
// medians: "12.3%".
func Loss(rx, offered *Stat) string {
	if rx == nil || offered == nil || offered.Median == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", max(0, 100*(1-rx.Median/offered.Median)))
}

// CPU joins one share of each CPU, in percent without the sign, with
// "/": busy, or with softirq set the softirq share. "-" for none.
func CPU(c []cpustat.Share, softirq bool) string {
	if len(c) == 0 {
		return "-"
	}
	var parts []string
	for _, x := range c {
		v := x.Busy
		if softirq {
			v = x.Softirq
		}
		parts = append(parts, fmt.Sprintf("%.0f", v))
	}
	return strings.Join(parts, "/")
}

// Largest names the n largest counts of m, largest first, then by name:
// "a 1 234, b 12, and 3 more"; "" when m is empty.
func Largest(m map[string]float64, n int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(keys)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", k, Group(m[k])))
	}
	return strings.Join(parts, ", ")
}
