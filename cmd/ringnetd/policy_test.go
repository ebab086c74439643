package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/ringnet/ringnet/agent/cluster"
	agentd "github.com/ringnet/ringnet/agent/daemon"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// testDataplane is a dataplane with no ports (no privileges needed),
// closed when the test ends.
func testDataplane(t *testing.T) *pipeline.Dataplane {
	t.Helper()
	dp, err := pipeline.New(pipeline.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	return dp
}

// TestPolicyCompilerFile follows a cluster file through reloads, as
// ringnetd with --cluster does (on a dataplane with no ports: no
// privileges needed): no policies, nothing enforced; policies, published;
// the same input again, nothing republished; a changed input, the next
// generation; every policy removed, enforcement off.
func TestPolicyCompilerFile(t *testing.T) {
	dp := testDataplane(t)
	var log bytes.Buffer
	var view agentd.Policies
	pc := &policyCompiler{dp: dp, m: metrics.New(nil, metrics.Options{}), log: slog.New(slog.NewTextHandler(&log, nil)), view: &view}
	d := agentd.New(dp, nil, 1500, slog.New(slog.DiscardHandler))
	d.SetPolicies(&view)
	const nodes = "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n"
	const pods = "pods:\n- {name: w, labels: {app: web}, addresses: [10.244.1.2]}\n- {name: c, labels: {role: client}, addresses: [10.244.1.3]}\n"
	const policies = "policies:\n- {name: allow-web, spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {role: client}}}]}]}}\n"
	// reload compiles and applies a file as crossNode.reload does, and
	// returns what ringnet policy would show.
	reload := func(file string) (enforcing bool, gen uint64, selected int) {
		t.Helper()
		c, err := cluster.Parse([]byte(file))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := pc.compileFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.applyFile(cp); err != nil {
			t.Fatal(err)
		}
		pl, err := d.Policy(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pl.Policies {
			selected += p.Selected
		}
		return pl.Enforcing, pl.Generation, selected
	}
	type state struct {
		enforcing bool
		gen       uint64
		selected  int
	}
	for _, step := range []struct {
		name string
		file string
		want state
	}{
		{"pods, no policies", nodes + pods, state{}},
		{"a policy", nodes + pods + policies, state{true, 1, 1}},
		{"the same again", nodes + pods + policies, state{true, 1, 1}},
		{"w's labels changed", nodes + strings.Replace(pods, "app: web}", "app: web, tier: x}", 1) + policies, state{true, 2, 1}},
		{"no policies", nodes + pods, state{}},
		{"still none", nodes, state{}},
		{"a policy again", nodes + policies, state{true, 3, 0}},
	} {
		var got state
		got.enforcing, got.gen, got.selected = reload(step.file)
		if got != step.want {
			t.Errorf("%s: enforcing, generation, selected = %+v; want %+v", step.name, got, step.want)
		}
	}
	if dp.Conntrack() == nil {
		t.Error("a policy was published and there is no connection tracking table")
	}
	for s, n := range map[string]int{`msg="policy published"`: 3, `msg="policy enforcement off: the cluster file lists no policies"`: 1} {
		if got := strings.Count(log.String(), s); got != n {
			t.Errorf("the log says %s %d times, want %d:\n%s", s, got, n, log.String())
		}
	}
}
