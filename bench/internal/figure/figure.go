// Package figure summarises a benchmark's rounds and prints its numbers:
// the median and range of a figure over rounds (a noisy machine makes the
// mean misleading), and large numbers with thin-space thousands for the
// markdown reports.
package figure

import (
	"fmt"
	"math"
	"slices"
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
