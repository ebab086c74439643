package deptest

// Tests that keep the operator documentation true to the code:
//
//   - TestDocsDependencyDiagram: the Mermaid diagram in docs/architecture.md
//     (between <!-- deps:begin --> and <!-- deps:end -->) has exactly the
//     packages and the imports between them that `go list` reports, each
//     package in its layer, and every import points down or sideways.
//     `go test ./internal/deptest -run Docs -update` rewrites the diagram.
//   - TestDocsRingnetdFlags: every flag `ringnetd --help` lists has a row in
//     docs/configuration.md (between <!-- flags:ringnetd:begin --> and
//     <!-- flags:ringnetd:end -->) with its default, and no row names a flag
//     that is gone.
//   - TestDocsCLI: every command `ringnet --help` lists has a section in
//     docs/configuration.md (between <!-- cli:begin --> and <!-- cli:end -->)
//     naming each of its flags, and no section names a command that is gone.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the dependency diagram in docs/architecture.md from go list")

// layer is one group of the dependency diagram, as in ARCHITECTURE.md's
// table of layers. An import may point to its own layer or a lower rank.
type layer struct {
	id    string // the Mermaid subgraph's id
	title string
	rank  int
}

var layers = []layer{
	{"EDGE", "edge: the binaries and the CNI plugin", 4},
	{"L3", "3 control: the agent", 3},
	{"L2", "2 pipelines: fast path workers, slow path", 2},
	{"L1", "1 tables, tunnels, OS edge", 1},
	{"L0", "0 leaves", 0},
}

// layerOf places a package (path inside the module) in a layer. support
// reports a package of the support layer (benchmarks, test helpers), which
// the diagram leaves out: anything may import them, no product package
// does. An empty id with support false is a package nobody has placed yet.
func layerOf(pkg string) (id string, support bool) {
	under := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if pkg == p || strings.HasPrefix(pkg, p+"/") {
				return true
			}
		}
		return false
	}
	switch {
	case under("bench", "internal", "test", "cni/cnitest"):
		return "", true
	case under("cmd", "cni", "deploy"):
		return "EDGE", false
	case under("agent"):
		return "L3", false
	case under("fastpath/pipeline") || pkg == "slowpath":
		return "L2", false
	case under("tables", "encap", "fastpath/xsk", "fastpath/xdp", "slowpath/tap", "podport", "nsnetlink"):
		return "L1", false
	case under("fastpath/packet", "fastpath/stats"):
		return "L0", false
	}
	return "", false
}

func rankOf(id string) int {
	for _, l := range layers {
		if l.id == id {
			return l.rank
		}
	}
	return -1
}

// graph is the module's product packages (path -> layer id) and the
// imports between them ("from to" -> true).
type graph struct {
	nodes map[string]string
	edges map[[2]string]bool
}

// moduleGraph asks go list for every package of the module and its
// imports, without tests.
func moduleGraph(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"...")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	g := graph{nodes: map[string]string{}, edges: map[[2]string]bool{}}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], mod) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], mod)
		id, support := layerOf(pkg)
		switch {
		case support:
			continue
		case id == "":
			t.Errorf("package %s has no layer: place it in layerOf (internal/deptest/docs_test.go) as ARCHITECTURE.md's table says, then run go test ./internal/deptest -run Docs -update", pkg)
			continue
		}
		g.nodes[pkg] = id
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				imports[pkg] = append(imports[pkg], strings.TrimPrefix(imp, mod))
			}
		}
	}
	for from, imps := range imports {
		for _, to := range imps {
			if _, support := layerOf(to); support {
				t.Errorf("%s imports %s: product packages must not import benchmarks or test helpers", from, to)
				continue
			}
			g.edges[[2]string{from, to}] = true
		}
	}
	return g
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go env GOMOD: %v (%q)", err, out)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

// mermaidID is a package's node id in the diagram.
func mermaidID(pkg string) string {
	return strings.NewReplacer("/", "_", "-", "_", ".", "_").Replace(pkg)
}

// diagram renders g as the Mermaid block that sits between the markers.
func (g graph) diagram() string {
	var b strings.Builder
	b.WriteString("```mermaid\ngraph TD\n")
	for _, l := range layers {
		var pkgs []string
		for p, id := range g.nodes {
			if id == l.id {
				pkgs = append(pkgs, p)
			}
		}
		if len(pkgs) == 0 {
			continue
		}
		slices.Sort(pkgs)
		fmt.Fprintf(&b, "  subgraph %s[\"%s\"]\n", l.id, l.title)
		for _, p := range pkgs {
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", mermaidID(p), p)
		}
		b.WriteString("  end\n")
	}
	for _, e := range sortedEdges(g.edges) {
		fmt.Fprintf(&b, "  %s --> %s\n", mermaidID(e[0]), mermaidID(e[1]))
	}
	b.WriteString("```")
	return b.String()
}

func sortedEdges(m map[[2]string]bool) [][2]string {
	var es [][2]string
	for e := range m {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	return es
}

var (
	reSubgraph = regexp.MustCompile(`^\s*subgraph\s+(\w+)`)
	reNode     = regexp.MustCompile(`^\s*(\w+)\["([^"]+)"\]\s*$`)
	reEdge     = regexp.MustCompile(`^\s*(\w+)\s*-->\s*(\w+)\s*$`)
)

// parseDiagram reads the packages (with their subgraph) and the imports
// from the text between the markers.
func parseDiagram(block string) (graph, error) {
	g := graph{nodes: map[string]string{}, edges: map[[2]string]bool{}}
	label := map[string]string{}
	var edges [][2]string
	sub := ""
	for _, line := range strings.Split(block, "\n") {
		switch {
		case reSubgraph.MatchString(line):
			sub = reSubgraph.FindStringSubmatch(line)[1]
		case strings.TrimSpace(line) == "end":
			sub = ""
		case reNode.MatchString(line):
			m := reNode.FindStringSubmatch(line)
			label[m[1]] = m[2]
			g.nodes[m[2]] = sub
		case reEdge.MatchString(line):
			m := reEdge.FindStringSubmatch(line)
			edges = append(edges, [2]string{m[1], m[2]})
		}
	}
	for _, e := range edges {
		from, ok1 := label[e[0]]
		to, ok2 := label[e[1]]
		if !ok1 || !ok2 {
			return g, fmt.Errorf("edge %s --> %s names a node the diagram does not declare", e[0], e[1])
		}
		g.edges[[2]string{from, to}] = true
	}
	return g, nil
}

// between returns the text between the begin and end markers in doc and
// where it starts and ends.
func between(doc, begin, end string) (text string, start, stop int, err error) {
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < 0 || j < i {
		return "", 0, 0, fmt.Errorf("markers %s ... %s not found (in that order)", begin, end)
	}
	start, stop = i+len(begin), j
	return doc[start:stop], start, stop, nil
}

const (
	depsBegin = "<!-- deps:begin -->"
	depsEnd   = "<!-- deps:end -->"
)

func TestDocsDependencyDiagram(t *testing.T) {
	g := moduleGraph(t)
	if len(g.nodes) < 10 {
		t.Fatalf("go list found only %d product packages: is this the ringnet module?", len(g.nodes))
	}
	for _, e := range sortedEdges(g.edges) {
		if rankOf(g.nodes[e[0]]) < rankOf(g.nodes[e[1]]) {
			t.Errorf("%s (layer %s) imports %s (layer %s): imports must point down the layers", e[0], g.nodes[e[0]], e[1], g.nodes[e[1]])
		}
	}
	path := filepath.Join(moduleRoot(t), "docs", "architecture.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	block, start, stop, err := between(doc, depsBegin, depsEnd)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if *update {
		next := doc[:start] + "\n" + g.diagram() + "\n" + doc[stop:]
		if next != doc {
			if err := os.WriteFile(path, []byte(next), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the dependency diagram in %s", path)
		}
		return
	}
	have, err := parseDiagram(block)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var problems []string
	for p, id := range g.nodes {
		switch hid, ok := have.nodes[p]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("package %s is missing", p))
		case hid != id:
			problems = append(problems, fmt.Sprintf("package %s is in subgraph %q, its layer is %s", p, hid, id))
		}
	}
	for p := range have.nodes {
		if _, ok := g.nodes[p]; !ok {
			problems = append(problems, fmt.Sprintf("package %s is no longer in the module (or is support code)", p))
		}
	}
	for _, e := range sortedEdges(g.edges) {
		if !have.edges[e] {
			problems = append(problems, fmt.Sprintf("edge %s --> %s is missing", e[0], e[1]))
		}
	}
	for _, e := range sortedEdges(have.edges) {
		if !g.edges[e] {
			problems = append(problems, fmt.Sprintf("edge %s --> %s no longer exists", e[0], e[1]))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Errorf("%s: the dependency diagram is out of date:\n\t%s\nrun: go test ./internal/deptest -run Docs -update",
			path, strings.Join(problems, "\n\t"))
	}
}

// buildCommand builds the module's command cmd/name into a temporary
// directory and returns the binary's path.
func buildCommand(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, mod+"cmd/"+name)
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/%s: %v\n%s", name, err, out)
	}
	return bin
}

// helpFlag is one flag as a flag.FlagSet's PrintDefaults shows it.
type helpFlag struct {
	name  string
	def   string // the default as PrintDefaults shows it, unquoted; "" for a zero value
	usage string
}

var (
	reFlagLine = regexp.MustCompile(`^  -(\S+)(?: \S+)?$`)
	// PrintDefaults ends a non-zero default's usage with (default X), X
	// quoted for strings. "(default: ...)" with a colon is prose.
	reDefault = regexp.MustCompile(`\(default ("(?:[^"\\]|\\.)*"|[^):\s][^)]*)\)$`)
)

// parseFlags reads the flags from a PrintDefaults listing.
func parseFlags(help string) []helpFlag {
	var flags []helpFlag
	for _, line := range strings.Split(help, "\n") {
		if m := reFlagLine.FindStringSubmatch(line); m != nil {
			flags = append(flags, helpFlag{name: m[1]})
			continue
		}
		if len(flags) > 0 && strings.HasPrefix(line, "    \t") {
			f := &flags[len(flags)-1]
			f.usage = strings.TrimSpace(f.usage + " " + strings.TrimSpace(line))
		}
	}
	for i := range flags {
		if m := reDefault.FindStringSubmatch(flags[i].usage); m != nil {
			flags[i].def = strings.Trim(m[1], `"`)
		}
	}
	return flags
}

// run runs bin with args and returns what it wrote to stdout and stderr,
// and whether it exited 0.
func run(t *testing.T, bin string, args ...string) (string, bool) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return string(out), err == nil
}

func readConfigurationDoc(t *testing.T) (path, doc string) {
	t.Helper()
	path = filepath.Join(moduleRoot(t), "docs", "configuration.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, string(data)
}

// reFlagRow is a table row documenting a flag: | `--name` ... | default | meaning |
var reFlagRow = regexp.MustCompile("^\\|\\s*`--?([a-z0-9-]+)`[^|]*\\|([^|]*)\\|")

func TestDocsRingnetdFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ringnetd")
	}
	help, ok := run(t, buildCommand(t, "ringnetd"), "--help")
	if !ok {
		t.Fatalf("ringnetd --help failed:\n%s", help)
	}
	flags := parseFlags(help)
	if len(flags) < 20 {
		t.Fatalf("found only %d flags in ringnetd --help:\n%s", len(flags), help)
	}
	path, doc := readConfigurationDoc(t)
	section, _, _, err := between(doc, "<!-- flags:ringnetd:begin -->", "<!-- flags:ringnetd:end -->")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rows := map[string]string{} // flag -> default cell
	for _, line := range strings.Split(section, "\n") {
		if m := reFlagRow.FindStringSubmatch(line); m != nil {
			rows[m[1]] = strings.TrimSpace(m[2])
		}
	}
	known := map[string]bool{}
	for _, f := range flags {
		known[f.name] = true
		cell, ok := rows[f.name]
		if !ok {
			t.Errorf("%s: ringnetd flag --%s is not documented; add a row | `--%s` | %s | ... | (its help: %q)", path, f.name, f.name, orNone(f.def), f.usage)
			continue
		}
		if got := strings.Trim(cell, "`\" "); f.def != "" && !strings.HasPrefix(got, f.def) {
			t.Errorf("%s: --%s's default is documented as %q; ringnetd says %q", path, f.name, cell, f.def)
		}
	}
	for name := range rows {
		if !known[name] {
			t.Errorf("%s: documents ringnetd flag --%s, which ringnetd --help no longer lists", path, name)
		}
	}
}

func orNone(def string) string {
	if def == "" {
		return "(zero value)"
	}
	return "`" + def + "`"
}

var (
	reCLIHeading = regexp.MustCompile("^#+ .*`ringnet ")
	reCLIName    = regexp.MustCompile("`ringnet ([a-z ]+)`")
)

// cliCommands reads the commands from ringnet --help's Usage lines: "pod
// add", "status", and each of "policy | services | flows".
func cliCommands(help string) []string {
	var cmds []string
	inUsage := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.TrimSpace(line) == "Usage:":
			inUsage = true
			continue
		case inUsage && strings.TrimSpace(line) == "":
			inUsage = false
		}
		if !inUsage || !strings.HasPrefix(strings.TrimSpace(line), "ringnet ") {
			continue
		}
		// The synopsis ends at the first run of two spaces.
		syn := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)[0]
		words := strings.Fields(strings.TrimPrefix(syn, "ringnet "))
		if slices.Contains(words, "|") {
			for _, w := range words {
				if w != "|" {
					cmds = append(cmds, w)
				}
			}
			continue
		}
		var cmd []string
		for _, w := range words {
			if !regexp.MustCompile(`^[a-z]+$`).MatchString(w) {
				break
			}
			cmd = append(cmd, w)
		}
		if len(cmd) > 0 {
			cmds = append(cmds, strings.Join(cmd, " "))
		}
	}
	return cmds
}

func TestDocsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ringnet")
	}
	bin := buildCommand(t, "ringnet")
	help, _ := run(t, bin, "--help")
	cmds := cliCommands(help)
	if len(cmds) < 3 {
		t.Fatalf("found only %d commands (%q) in ringnet --help:\n%s", len(cmds), cmds, help)
	}
	path, doc := readConfigurationDoc(t)
	section, _, _, err := between(doc, "<!-- cli:begin -->", "<!-- cli:end -->")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// Each heading naming `ringnet CMD` opens the section of every command
	// it names, up to the next heading.
	sections := map[string]string{}
	var open []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "#") {
			open = nil
			if reCLIHeading.MatchString(line) {
				for _, m := range reCLIName.FindAllStringSubmatch(line, -1) {
					c := strings.TrimSpace(m[1])
					open = append(open, c)
					sections[c] += ""
				}
			}
			continue
		}
		for _, c := range open {
			sections[c] += line + "\n"
		}
	}
	for _, c := range cmds {
		text, ok := sections[c]
		if !ok {
			t.Errorf("%s: command `ringnet %s` has no section (a heading naming it) between the cli markers", path, c)
			continue
		}
		out, ok := run(t, bin, append(strings.Fields(c), "--help")...)
		if !ok {
			continue // a command that is not available takes no flags
		}
		for _, f := range parseFlags(out) {
			if !strings.Contains(text, "`--"+f.name+"`") && !strings.Contains(text, "`-"+f.name+"`") {
				t.Errorf("%s: `ringnet %s` flag --%s is not documented in its section (its help: %q)", path, c, f.name, f.usage)
			}
		}
	}
	for c := range sections {
		if !slices.Contains(cmds, c) {
			t.Errorf("%s: documents `ringnet %s`, which ringnet --help no longer lists", path, c)
		}
	}
}
