package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// summary is the region at the top of benchmarks.md: when the run was, on
// which machine, how long it took, and every target it was held to.
func summary(all []outcome, runDir string, elapsed time.Duration) string {
	var b strings.Builder
	var dates, machines []string
	for _, o := range all {
		dates = append(dates, o.date)
		machines = append(machines, o.machine)
	}
	slices.Sort(dates)
	fmt.Fprintf(&b, "Latest run: %s", strings.Join(slices.Compact(dates[:1]), ""))
	if len(dates) > 1 && dates[len(dates)-1] != dates[0] {
		fmt.Fprintf(&b, " to %s", dates[len(dates)-1])
	}
	if elapsed > 0 {
		round := time.Minute
		if elapsed < 10*time.Minute {
			round = time.Second
		}
		fmt.Fprintf(&b, ", %s in all", elapsed.Round(round))
	}
	fmt.Fprintf(&b, "; every round's figures are kept as JSON in the run directory, `%s` (not committed).\n", runDir)
	slices.Sort(machines)
	for _, m := range slices.Compact(machines) {
		fmt.Fprintf(&b, "Machine: %s.\n", m)
	}
	met, n := 0, 0
	var rows strings.Builder
	for _, o := range all {
		for _, r := range o.targets {
			n++
			if r.Met {
				met++
			}
			fmt.Fprintf(&rows, "| %s | %s | %s | %s | %s |\n", o.title, r.What, r.shown(), r.Target, r.verdict())
		}
	}
	if n == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "\n**Targets: %d of %d met.**\n\n| benchmark | figure | value | target | |\n|---|---|--:|---|---|\n%s", met, n, rows.String())
	return b.String()
}
