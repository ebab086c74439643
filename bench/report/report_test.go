package main

// The fixtures in testdata/run are what the benchmarks wrote in their
// --quick runs on the project's 2-core VM while other work ran (so the
// figures are noisy, and some targets are missed), less the raw counters of
// each round, which the report does not read:
//
//	go run ./bench/e2e --quick --json e2e.json
//	go run ./bench/crossnode --quick --json crossnode.json
//	go run ./bench/cni --pods 5 --runs 2 --json cni.json
//	go run ./bench/policy --quick --json policy.json
//	go run ./bench/slowpath --runs 2 --window 2s --json slowpath.json
//	micro.txt: go run ./bench/report --describe, then
//	go test -run '^$' -bench 'Decode|Lookup' -benchtime 2000x -count 2 -benchmem ./fastpath/packet ./tables/endpoint
//
// testdata/benchmarks.md is a document with every region and prose around
// them. Nothing here needs root or measures anything.

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/bench/internal/chart"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/machine"
	"github.com/ringnet/ringnet/bench/internal/program"
	"github.com/ringnet/ringnet/bench/internal/region"
)

// workspace copies the fixtures into a fresh run directory (those named,
// or all) and docs directory, and returns their paths.
func workspace(t *testing.T, doc string, inputs ...string) (in, out string) {
	t.Helper()
	in, out = filepath.Join(t.TempDir(), "run"), filepath.Join(t.TempDir(), "docs")
	for _, d := range []string{in, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if len(inputs) == 0 {
		inputs = inputFiles()
	}
	for _, f := range inputs {
		copyFile(t, filepath.Join("testdata", "run", f), filepath.Join(in, f))
	}
	copyFile(t, filepath.Join("testdata", doc), filepath.Join(out, "benchmarks.md"))
	return in, out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// prose is doc with every region's body cut out: what the author wrote.
func prose(t *testing.T, doc []byte) string {
	t.Helper()
	names, err := region.Names(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if doc, _, err = region.Replace(doc, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	return string(doc)
}

// contains checks that text, named what, holds each of wants.
func contains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}

func body(t *testing.T, doc []byte, name string) string {
	t.Helper()
	b, ok, err := region.Body(doc, name)
	if err != nil || !ok {
		t.Fatalf("region %s: found %v, %v", name, ok, err)
	}
	return string(b)
}

// checkPNGs checks that each chart is a PNG of the charts' size.
func checkPNGs(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != int(chart.Width.Dots(chart.DPI)) || h != int(chart.Height.Dots(chart.DPI)) {
			t.Errorf("%s: %dx%d", n, w, h)
		}
	}
}

func TestRunAll(t *testing.T) {
	in, out := workspace(t, "benchmarks.md")
	before := readFile(t, filepath.Join(out, "benchmarks.md"))
	var log bytes.Buffer
	if err := run(options{In: in, Out: out, Elapsed: 47 * time.Minute}, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	after := readFile(t, filepath.Join(out, "benchmarks.md"))
	if d := cmp.Diff(prose(t, before), prose(t, after)); d != "" {
		t.Errorf("the hand-written text changed (-before +after):\n%s", d)
	}
	if bytes.Contains(after, []byte("old ")) {
		t.Errorf("a region kept its old body:\n%s", after)
	}

	// Every region says how, when and where it was measured, and embeds
	// its charts, which are PNG files of the charts' size.
	charts := map[string][]string{
		"micro":     nil,
		"e2e":       {"e2e-pps.png", "e2e-latency.png"},
		"crossnode": {"crossnode-pps.png", "crossnode-latency.png", "crossnode-tcp.png"},
		"policy":    {"policy-one.png", "policy-new.png"},
		"cni":       {"cni-add.png"},
		"slowpath":  {"slowpath-tcp.png"},
	}
	for name, pngs := range charts {
		b := body(t, after, name)
		contains(t, "region "+name, b, "Measured 2026-11-21 ", "```\ngo ", "Machine: AMD EPYC, 2 cores, kernel `6.18.44-fc-v669`, go1.26.8.")
		for _, p := range pngs {
			if !strings.Contains(b, "](img/"+p+")") {
				t.Errorf("region %s does not embed %s", name, p)
			}
		}
		checkPNGs(t, filepath.Join(out, "img"), pngs...)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "img"))
	if len(entries) != 9 {
		t.Errorf("%d files in img, want the 9 charts", len(entries))
	}

	// Tables: medians with ranges, ratios with their verdicts, and what
	// limited each figure where the benchmark says.
	for name, wants := range map[string][]string{
		"e2e": {
			"| (a) kernel routing | 3\u202f060 | 3\u202f060 – 3\u202f060 |",
			"| ringnetd / kernel routing, 64-byte pps (c/a) | 20.58 | ≥ 1.5 | met |",
			"| ringnetd busy-poll / asavie/xdp fwd, 64-byte pps (d/b) | 0.31 | ≥ 1 | **missed** |",
			"| ringnetd / kernel routing, p99 latency (c/a) |",
			"- **(b) asavie/xdp fwd**: bench/asaviefwd",
		},
		"crossnode": {
			"| ringnet VXLAN / kernel VXLAN, 64-byte pps (d/b) | 2.66 | ≥ 1.5 | met |",
			"| ringnet VXLAN / kernel VXLAN, p99 latency (d/b) | 14.92 | ≤ 1 | **missed** |",
			"**What limited each figure**",
			"- (d) ringnet VXLAN — pps: the path: 39% of what trafgen offered was lost",
			"**TCP** (iperf3, one stream)",
		},
		"cni": {
			"Measured 2026-11-21 11:08 UTC",
			"| ringnet + ringnetd | ADD | 10 | 39.1 (39.1 – 39.4) |",
			"| ringnet ADD p99, ms | 66.90 | ≤ 20 | **missed** |",
			"| ringnet / bridge + host-local, ADD p50 | 2.05 | - | for information |",
			"the largest step is attach (XDP, AF_XDP, workers), p50 18.0 ms of 25.6 ms",
		},
		"policy": {
			"| 10\u202f000 | 88\u202f572<br>22467 ns | 149\u202f076<br>10776 ns | 108\u202f227<br>17758 ns |",
			"| ringnet, new flows: 10\u202f000 rules / 10 rules | 0.61 | ≥ 0.9 | **missed** |",
		},
		"micro": {
			"go test -run '^$' -bench 'Decode|Lookup'",
			"`fastpath/packet`:",
			"| `Decode/IPv4UDP` | 8.18 | 8.06 – 8.3 | 0 | 0 | 7828 MB/s |",
			"| per-packet benchmarks that allocate, of 7 | 0 | 0 | met |",
		},
		"slowpath": {
			"2 round(s) per variant, interleaved; TCP from 2 s iperf3 runs (one stream), latency from 2 s sockperf ping-pongs, the flood at 200\u202f000 pps.",
			"| (k) kernel: route to the pod's veth | 8.32 (5.10 – 11.55) | 3.17 (2.33 – 4.01) | 5.3 (5.2 – 5.4) |",
			"| (default) flood, ringnetd's default limits | 1.04 (0.97 – 1.11) | 134\u202f367 (77\u202f306 – 191\u202f428) |",
			"| ringnetd slow path (TAP) / kernel path, node → pod TCP (t/k) | 0.06 | - | for information |",
			// The flood fell short of 200k pps: said beside the target.
			"| pod A → pod B TCP, flood, ringnetd's default limits / no flood (the flood reached only 134\u202f367 of 200\u202f000 pps) | 0.57 | ≥ 0.9 | **missed** |",
			"| pod A → pod B TCP, flood, ringnetd's default limits / the flood dropped at the bucket (the slow path's share) | 0.57 | - | for information |",
			"- (default) flood, ringnetd's default limits: trafgen sent 134\u202f367 pps of the 200\u202f000 asked for",
			"- **(0) flood, all dropped at the bucket (to_host=0)**: ringnetd --punt-limit to_host=0",
		},
	} {
		contains(t, name, body(t, after, name), wants...)
	}

	// The summary gathers every target, and says how long the run took.
	sum := body(t, after, "summary")
	contains(t, "summary", sum, "47m0s in all", "**Targets: 7 of 14 met.**", "| CNI ADD/DEL | ringnet ADD p99, ms | 66.90 | ≤ 20 | **missed** |",
		"| Slow path | pod A → pod B TCP, flood, ringnetd's default limits / no flood (the flood reached only 134\u202f367 of 200\u202f000 pps) | 0.57 | ≥ 0.9 | **missed** |")
	if n := strings.Count(sum, "\n| "); n != 14+1 {
		t.Errorf("summary has %d table rows, want a header and 14 targets:\n%s", n, sum)
	}

	// A second run over the same input changes nothing.
	if err := run(options{In: in, Out: out, Elapsed: 47 * time.Minute}, &log); err != nil {
		t.Fatal(err)
	}
	if again := readFile(t, filepath.Join(out, "benchmarks.md")); !bytes.Equal(again, after) {
		t.Errorf("a second run changed the document:\n%s", cmp.Diff(string(after), string(again)))
	}
}

// A run of one benchmark rewrites its region and charts and nothing else,
// and the others' missing input is no error.
func TestRunOne(t *testing.T) {
	in, out := workspace(t, "benchmarks.md", "crossnode.json")
	before := readFile(t, filepath.Join(out, "benchmarks.md"))
	var log bytes.Buffer
	if err := run(options{In: in, Out: out, Only: []string{"crossnode"}}, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	after := readFile(t, filepath.Join(out, "benchmarks.md"))
	for _, name := range []string{"summary", "micro", "e2e", "policy", "cni", "slowpath"} {
		if b := body(t, after, name); b != "old "+name+"\n" {
			t.Errorf("region %s changed to:\n%s", name, b)
		}
	}
	if !strings.Contains(body(t, after, "crossnode"), "ringnet VXLAN / kernel VXLAN") {
		t.Errorf("crossnode not written")
	}
	if d := cmp.Diff(prose(t, before), prose(t, after)); d != "" {
		t.Errorf("the hand-written text changed (-before +after):\n%s", d)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "img"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"crossnode-latency.png", "crossnode-pps.png", "crossnode-tcp.png"}; !slices.Equal(names, want) {
		t.Errorf("img holds %q, want %q", names, want)
	}

	// Without --only, a run directory with one benchmark fills its region
	// and the summary, and says which inputs it did not find.
	log.Reset()
	if err := run(options{In: in, Out: out}, &log); err != nil {
		t.Fatal(err)
	}
	contains(t, "log", log.String(), "report: policy: no ", "report: summary: region written from 1 benchmarks")
	after = readFile(t, filepath.Join(out, "benchmarks.md"))
	if b := body(t, after, "policy"); b != "old policy\n" {
		t.Errorf("policy changed with no input:\n%s", b)
	}
	if !strings.Contains(body(t, after, "summary"), "**Targets: 3 of 4 met.**") {
		t.Errorf("summary:\n%s", body(t, after, "summary"))
	}
}

func TestRunErrors(t *testing.T) {
	in, out := workspace(t, "benchmarks.md", "e2e.json")
	var log bytes.Buffer
	err := run(options{In: in, Out: out, Only: []string{"policy"}}, &log)
	if err == nil || !strings.Contains(err.Error(), "run `make bench-policy`") {
		t.Errorf("--only policy without policy.json: %v", err)
	}
	if err := run(options{In: t.TempDir(), Out: out}, &log); err == nil || !strings.Contains(err.Error(), "holds no benchmark output") {
		t.Errorf("empty run directory: %v", err)
	}
	if err := (options{In: in, Only: []string{"e2e", "bogus"}}).check(); err == nil {
		t.Error("--only bogus: no error")
	}
	if err := (options{}).check(); err == nil {
		t.Error("no --in: no error")
	}
	bad := filepath.Join(in, "e2e.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(options{In: in, Out: out, Only: []string{"e2e"}}, &log); err == nil || !strings.Contains(err.Error(), "e2e: ") {
		t.Errorf("broken JSON: %v", err)
	}
}

// A region the document lacks is added at its end, and said.
func TestRunAddsRegion(t *testing.T) {
	in, out := workspace(t, "benchmarks.md", "cni.json")
	doc := filepath.Join(out, "benchmarks.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\nNothing generated yet.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := run(options{In: in, Out: out, Only: []string{"cni"}}, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), `had no region "cni": added at the end`) {
		t.Errorf("log:\n%s", log.String())
	}
	got := readFile(t, doc)
	if !bytes.HasPrefix(got, []byte("# Benchmarks\n\nNothing generated yet.\n\n<!-- generated: cni -->\nMeasured ")) || !bytes.HasSuffix(got, []byte("<!-- end -->\n")) {
		t.Errorf("document:\n%s", got)
	}
}

func TestMeets(t *testing.T) {
	for _, tc := range []struct {
		v      float64
		target string
		want   bool
	}{
		{1.5, "≥ 1.5", true}, {1.49, "≥ 1.5", false}, {0.9, ">= 0.9", true},
		{1, "≤ 1", true}, {1.01, "≤ 1", false}, {20, "<= 20", true},
		{5, "", false}, {5, "about 5", false}, {5, "≥ five", false},
	} {
		if got := meets(tc.v, tc.target); got != tc.want {
			t.Errorf("meets(%v, %q) = %v, want %v", tc.v, tc.target, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	// Two rounds of four calls: p50 over all is the 4th of 8, each round's
	// p50 its 2nd of 4.
	samples := []float64{4, 1, 3, 2, 10, 40, 30, 20}
	got := percentile(samples, 4, 0.5)
	if want := (chart.Value{Median: 4, Min: 2, Max: 20}); got != want {
		t.Errorf("percentile = %+v, want %+v", got, want)
	}
	if got := percentile(samples, 0, 0.99); got != chart.Point(40) {
		t.Errorf("percentile without rounds = %+v", got)
	}
	if got := percentile(nil, 4, 0.5); got.Measured() {
		t.Errorf("percentile(nil) = %+v", got)
	}
}

func TestMicroNames(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"Decode/*", "Decode/IPv4UDP", true}, {"Decode/*", "Decoder", false},
		{"PipelineForward*", "PipelineForwardService", true}, {"PipelineForward", "PipelineForwardService", false},
	} {
		if got := (microTarget{name: tc.pattern}).matches(tc.name); got != tc.want {
			t.Errorf("%q matches %q = %v", tc.pattern, tc.name, got)
		}
	}
	if got := nsString(7.1e6); got != "7.1 ms" {
		t.Errorf("nsString = %q", got)
	}
	if got := nsString(162); got != "162" {
		t.Errorf("nsString = %q", got)
	}
	if got := nsString(25_400); got != "25.4 µs" {
		t.Errorf("nsString = %q", got)
	}
}

// The micro region describes each benchmark with its doc comment, read
// from the source tree.
func TestMicroDocs(t *testing.T) {
	data := []byte("pkg: github.com/ringnet/ringnet/fastpath/pipeline\n" +
		"BenchmarkPipelineForward-2 1000 43.1 ns/op 0 B/op 0 allocs/op\n" +
		"BenchmarkPipelineForward-2 1000 45.2 ns/op 0 B/op 0 allocs/op\n")
	s := newSection(t.TempDir(), "img")
	res, err := renderMicroFrom(s, data, filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.String(), "Measured (date not recorded) with:\n\n```\n(command not recorded)\n```\n\nMachine: not recorded.") {
		t.Errorf("header without a description:\n%s", s.String())
	}
	if !regexp.MustCompile("\\| `PipelineForward` \\| 44.2 \\| 43.1 – 45.2 \\| 0 \\| 0 \\|  \\| measures the same-node forward per packet").MatchString(s.String()) {
		t.Errorf("table row:\n%s", s.String())
	}
	if len(res.targets) != 2 || !res.targets[1].Met || res.targets[1].Shown != "44.2" || res.targets[1].Target != "≤ 60" {
		t.Errorf("targets %+v", res.targets)
	}
}

func TestDescribe(t *testing.T) {
	var b bytes.Buffer
	writeDescription(&b, machine.Machine{Kernel: "6.1", CPUModel: "AMD EPYC", Cores: 2, GoVersion: "go1.26.8"}, time.Date(2026, 11, 21, 6, 59, 30, 0, time.UTC))
	want := "date: 2026-11-21 06:59 UTC\nkernel: 6.1\ncpu-model: AMD EPYC\ncores: 2\ngo-version: go1.26.8\n"
	if b.String() != want {
		t.Errorf("description:\n%s\nwant:\n%s", b.String(), want)
	}
	m := microMeta(map[string]string{"date": "2026-11-21 06:59 UTC", "kernel": "6.1", "cpu-model": "AMD EPYC", "cores": "2", "go-version": "go1.26.8", "command": "go test"})
	if machineLine(m) != "AMD EPYC, 2 cores, kernel `6.1`, go1.26.8" || m.Command != "go test" {
		t.Errorf("microMeta = %+v", m)
	}
}

func TestCell(t *testing.T) {
	if got := cell(&figure.Stat{Median: 18.6, Min: 17, Max: 20.25, N: 3}, "%.1f"); got != "18.6 (17.0 – 20.2)" {
		t.Errorf("cell = %q", got)
	}
	if got := cell(&figure.Stat{Median: 18.6, Min: 18.6, Max: 18.6, N: 1}, "%.1f"); got != "18.6" {
		t.Errorf("cell = %q", got)
	}
	if got := groupedCell(&figure.Stat{Median: 190940, Min: 180200, Max: 195010, N: 3}); got != "190\u202f940 (180\u202f200 – 195\u202f010)" {
		t.Errorf("groupedCell = %q", got)
	}
}

// slowpathFixture is testdata/run/slowpath.json, changed by edit.
func slowpathFixture(t *testing.T, edit func(r *slowpathReport)) []byte {
	t.Helper()
	var r slowpathReport
	if err := json.Unmarshal(readFile(t, filepath.Join("testdata", "run", "slowpath.json")), &r); err != nil {
		t.Fatal(err)
	}
	edit(&r)
	data, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// setFlood gives every round of a flood variant the same figures.
func setFlood(r *slowpathReport, id string, gbps, offered float64) {
	for i := range r.Flood[id] {
		r.Flood[id][i].PodToPodGbps, r.Flood[id][i].OfferedPPS = gbps, offered
	}
}

// The flood target is met only by the flood it speaks of: a run whose
// flood fell short says so and does not count the target as met. The
// slow path's share needs the flood dropped at the bucket; failed rounds
// are left out and listed.
func TestSlowpath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(r *slowpathReport)
		met    bool
		wants  []string
		lacks  []string
		nRatio int
	}{{
		name: "full flood, met",
		edit: func(r *slowpathReport) {
			setFlood(r, "none", 2, 0)
			setFlood(r, "default", 1.9, 199_000)
		},
		met:    true,
		wants:  []string{"| pod A → pod B TCP, flood, ringnetd's default limits / no flood | 0.95 | ≥ 0.9 | met |"},
		lacks:  []string{"trafgen sent 199"},
		nRatio: 13,
	}, {
		name: "short flood, met at a lighter one",
		edit: func(r *slowpathReport) {
			setFlood(r, "none", 2, 0)
			setFlood(r, "default", 1.9, 100_000)
		},
		wants: []string{"| pod A → pod B TCP, flood, ringnetd's default limits / no flood (the flood reached only 100\u202f000 of 200\u202f000 pps: met at a lighter flood, so not counted) | 0.95 | ≥ 0.9 | **missed** |",
			"- (default) flood, ringnetd's default limits: trafgen sent 100\u202f000 pps of the 200\u202f000 asked for"},
		nRatio: 13,
	}, {
		name: "full flood missed, no bucket variant, a failed round",
		edit: func(r *slowpathReport) {
			setFlood(r, "none", 2, 0)
			setFlood(r, "default", 1.5, 200_000)
			r.FloodVariants = slices.DeleteFunc(r.FloodVariants, func(v program.Variant) bool { return v.ID == "0" })
			r.Host["t"][1].Error = "ringnetd read only 12 frames from the TAP: the traffic went elsewhere"
			r.Host["t"][1].ToPodGbps = 99
		},
		wants: []string{"| pod A → pod B TCP, flood, ringnetd's default limits / no flood | 0.75 | ≥ 0.9 | **missed** |",
			"| (t) ringnetd slow path (TAP) | 0.83 | 0.48 | 33.8 | 84.7 | 101.6 | 1/2 |",
			"- (t) round 2: ringnetd read only 12 frames from the TAP"},
		lacks:  []string{"the slow path's share", "(0) flood", "| 99"},
		nRatio: 10,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSection(t.TempDir(), "img")
			res, err := renderSlowpath(s, slowpathFixture(t, tc.edit))
			if err != nil {
				t.Fatal(err)
			}
			contains(t, "region", s.String(), tc.wants...)
			for _, l := range tc.lacks {
				if strings.Contains(s.String(), l) {
					t.Errorf("region holds %q:\n%s", l, s.String())
				}
			}
			if len(res.targets) != 1 || res.targets[0].Met != tc.met || res.title != "Slow path" {
				t.Errorf("outcome %q, targets %+v; want one target, met %v", res.title, res.targets, tc.met)
			}
			if n := strings.Count(s.String(), "| for information |") + len(res.targets); n != tc.nRatio {
				t.Errorf("%d ratios, want %d:\n%s", n, tc.nRatio, s.String())
			}
			checkPNGs(t, s.imgDir, "slowpath-tcp.png")
		})
	}

	// A JSON from before bench/slowpath named its variants.
	old := slowpathFixture(t, func(r *slowpathReport) { r.HostVariants, r.FloodVariants = nil, nil })
	if _, err := renderSlowpath(newSection(t.TempDir(), "img"), old); err == nil || !strings.Contains(err.Error(), "measure again") {
		t.Errorf("JSON without variants: %v", err)
	}
}
