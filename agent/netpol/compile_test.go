package netpol

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ringnet/ringnet/tables/policy"
)

// TestProblems gives the compiler one bad policy at a time, beside a good
// one, and checks the problem names the policy and field, says what
// becomes of the policy, and that both policies compile as promised.
func TestProblems(t *testing.T) {
	good := NetworkPolicy{Namespace: "y", Name: "good", PodSelector: all} // isolates y
	tests := []struct {
		name    string
		pol     NetworkPolicy
		field   string
		msg     string
		leftOut bool
	}{
		{"unknown operator in podSelector", NetworkPolicy{PodSelector: *expr("pod", "Equals", "a")},
			"spec.podSelector.matchExpressions[0].operator", `unknown operator "Equals"`, true},
		{"In without values in podSelector", NetworkPolicy{PodSelector: *expr("pod", OpIn)},
			"spec.podSelector.matchExpressions[0].values", "needs values", true},
		{"Exists with values in podSelector", NetworkPolicy{PodSelector: *expr("pod", OpExists, "a")},
			"spec.podSelector.matchExpressions[0].values", "takes no values", true},
		{"empty key in podSelector", NetworkPolicy{PodSelector: LabelSelector{MatchLabels: labels("", "a")}},
			"spec.podSelector.matchLabels", "empty key", true},
		{"unknown policy type", NetworkPolicy{PodSelector: all, PolicyTypes: []string{"Ingress", "ingress"}},
			"spec.policyTypes[1]", `"ingress" is neither Ingress nor Egress`, false},
		{"unknown operator in a peer", NetworkPolicy{PodSelector: all, Ingress: []Rule{{}, {Peers: []Peer{pods(&all), nss(expr("env", "Has"))}}}},
			"spec.ingress[1].from[1].namespaceSelector.matchExpressions[0].operator", `unknown operator "Has"`, false},
		{"empty peer", NetworkPolicy{PodSelector: all, Egress: []Rule{{Peers: []Peer{{}}}}},
			"spec.egress[0].to[0]", "needs a podSelector, a namespaceSelector or an ipBlock", false},
		{"ipBlock with a selector", NetworkPolicy{PodSelector: all, Egress: []Rule{{Peers: []Peer{{IPBlock: &IPBlock{CIDR: "10.0.0.0/8"}, NamespaceSelector: &all}}}}},
			"spec.egress[0].to[0]", "ipBlock cannot go with", false},
		{"bad cidr", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Peers: []Peer{block("10.0.0.0/33")}}}},
			"spec.ingress[0].from[0].ipBlock.cidr", `"10.0.0.0/33" is not a CIDR`, false},
		{"mapped cidr", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Peers: []Peer{block("::ffff:10.0.0.0/104")}}}},
			"spec.ingress[0].from[0].ipBlock.cidr", "write it as IPv4", false},
		{"except outside cidr", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Peers: []Peer{block("10.0.0.0/16", "10.0.1.0/24", "10.1.0.0/24")}}}},
			"spec.ingress[0].from[0].ipBlock.except[1]", `"10.1.0.0/24" is not strictly inside cidr 10.0.0.0/16`, false},
		{"except equal to cidr", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Peers: []Peer{block("10.0.0.0/16", "10.0.0.0/16")}}}},
			"spec.ingress[0].from[0].ipBlock.except[0]", "not strictly inside", false},
		{"except of another family", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Peers: []Peer{block("::/0", "10.0.0.0/8")}}}},
			"spec.ingress[0].from[0].ipBlock.except[0]", "not strictly inside", false},
		{"bad protocol", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{port("", 80), {Protocol: "tcp"}}}}},
			"spec.ingress[0].ports[1].protocol", `"tcp" is not TCP, UDP or SCTP`, false},
		{"port 0", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{{Port: &PortRef{}}}}}},
			"spec.ingress[0].ports[0].port", "neither a port number", false},
		{"number and name", NetworkPolicy{PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{{Port: &PortRef{Num: 80, Name: "http"}}}}}},
			"spec.ingress[0].ports[0].port", "both a number", false},
		{"bad port name", NetworkPolicy{PodSelector: all, Egress: []Rule{{Ports: []PolicyPort{named("", "HTTP")}}}},
			"spec.egress[0].ports[0].port", `"HTTP" is neither a port number`, false},
		{"numeric port name", NetworkPolicy{PodSelector: all, Egress: []Rule{{Ports: []PolicyPort{named("", "8080")}}}},
			"spec.egress[0].ports[0].port", `"8080" is neither`, false},
		{"endPort without port", NetworkPolicy{PodSelector: all, Egress: []Rule{{Ports: []PolicyPort{{EndPort: 90}}}}},
			"spec.egress[0].ports[0].endPort", "endPort 90 without a port", false},
		{"endPort below port", NetworkPolicy{PodSelector: all, Egress: []Rule{{Ports: []PolicyPort{portRange("UDP", 90, 80)}}}},
			"spec.egress[0].ports[0].endPort", "endPort 80 is below port 90", false},
		{"endPort with a named port", NetworkPolicy{PodSelector: all, Egress: []Rule{{Ports: []PolicyPort{{Port: &PortRef{Name: "http"}, EndPort: 90}}}}},
			"spec.egress[0].ports[0].endPort", "needs a numeric port", false},
		{"bad rule of a direction the policy does not apply to", NetworkPolicy{PodSelector: all, PolicyTypes: ingress, Ingress: []Rule{{}}, Egress: []Rule{{Peers: []Peer{{}}}}},
			"spec.egress[0].to[0]", "needs a podSelector", false},
	}
	xa := endpoint{&e2ePods[0], e2ePods[0].IPs[0]}
	ya := endpoint{&e2ePods[3], e2ePods[3].IPs[0]}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.pol
			bad.Namespace, bad.Name = "x", "bad"
			c, err := Compile(1, nil, e2eNamespaces, e2ePods, []NetworkPolicy{bad, good})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Problems) != 1 {
				t.Fatalf("Problems = %v, want one", c.Problems)
			}
			var pe *PolicyError
			if !errors.As(c.Problems[0], &pe) {
				t.Fatalf("problem %v is not a *PolicyError", c.Problems[0])
			}
			want := &PolicyError{Policy: "x/bad", Field: tc.field, LeftOut: tc.leftOut}
			if diff := cmp.Diff(want, pe, cmpopts.IgnoreFields(PolicyError{}, "Msg")); diff != "" || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("problem (-want +got):\n%s\nmessage %q, want it to say %q", diff, pe.Msg, tc.msg)
			}
			if msg := pe.Error(); !strings.HasPrefix(msg, "networkpolicy x/bad: "+tc.field+": ") || !strings.Contains(msg, "until it is fixed") {
				t.Errorf("Error() = %q", msg)
			}
			// The good policy compiled: y's pods are isolated.
			if compiledAllowed(c, xa, ya, policy.TCP, 80) {
				t.Errorf("x/a -> y/a allowed: the good policy beside the bad one did not compile")
			}
			// The bad one is left out (x/a stays open) or isolates x/a.
			if got := compiledAllowed(c, ya, xa, policy.TCP, 80); got != tc.leftOut {
				t.Errorf("y/a -> x/a allowed = %v, want %v", got, tc.leftOut)
			}
			wantStats := [2]int{0, 1}
			if tc.leftOut {
				wantStats = [2]int{1, 0}
			}
			if got := [2]int{c.Stats.LeftOut, c.Stats.IsolationOnly}; got != wantStats {
				t.Errorf("Stats LeftOut, IsolationOnly = %v, want %v", got, wantStats)
			}
		})
	}
}

// TestClusterProblems: a pod or namespace given twice, and an address two
// pods claim.
func TestClusterProblems(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	pods := []Pod{
		{Namespace: "x", Name: "b", Labels: labels("pod", "b"), IPs: []netip.Addr{a}},
		{Namespace: "x", Name: "a", Labels: labels("pod", "a"), IPs: []netip.Addr{netip.AddrFrom16(a.As16())}}, // mapped: the same address
		{Namespace: "x", Name: "a", Labels: labels("pod", "other")},
	}
	nss := []Namespace{{Name: "x"}, {Name: "x", Labels: labels("dup", "yes")}}
	c, err := Compile(1, nil, nss, pods, nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, p := range c.Problems {
		msgs = append(msgs, p.Error())
	}
	want := []string{
		"namespace x is given twice; the first is used",
		"pods x/a and x/b both have address 10.0.0.1; it is taken as x/a's",
		"pod x/a is given twice; the first is used",
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if c.ByIP[a] != c.Identity[PodRef{"x", "a"}] {
		t.Errorf("ByIP[%s] = %d, want x/a's %d", a, c.ByIP[a], c.Identity[PodRef{"x", "a"}])
	}
}

// TestDeterministic: the order of the inputs does not change the result.
func TestDeterministic(t *testing.T) {
	pols := slices.Concat(e2eCases[5].pols, e2eCases[20].pols, e2eCases[21].pols, e2eCases[35].pols)
	a, err := Compile(1, nil, e2eNamespaces, e2ePods, pols)
	if err != nil {
		t.Fatal(err)
	}
	rpods, rpols, rnss := slices.Clone(e2ePods), slices.Clone(pols), slices.Clone(e2eNamespaces)
	slices.Reverse(rpods)
	slices.Reverse(rpols)
	slices.Reverse(rnss)
	b, err := Compile(1, nil, rnss, rpods, rpols)
	if err != nil {
		t.Fatal(err)
	}
	opts := cmp.Options{cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })}
	if diff := cmp.Diff(a.Policies, b.Policies, opts); diff != "" {
		t.Errorf("compiled policies depend on input order (-forward +reversed):\n%s", diff)
	}
	if diff := cmp.Diff(a.Identity, b.Identity); diff != "" {
		t.Errorf("identities depend on input order (-forward +reversed):\n%s", diff)
	}
}

// TestIdentityNumbers: numbers start at 1, stay with their class across
// compilations, and a number freed by one compilation is not reused by
// the next.
func TestIdentityNumbers(t *testing.T) {
	pod := func(ns, name, app string, ports ...NamedPort) Pod {
		return Pod{Namespace: ns, Name: name, Labels: labels("app", app), Ports: ports}
	}
	http80 := NamedPort{Name: "http", Proto: policy.TCP, Port: 80}
	http81 := NamedPort{Name: "http", Proto: policy.TCP, Port: 81}
	c1, err := Compile(1, nil, nil, []Pod{
		pod("x", "web-1", "web", http80),
		pod("x", "web-2", "web", http80, NamedPort{Proto: policy.TCP, Port: 9}, http80), // unnamed and repeated ports: same class
		pod("x", "web-3", "web", http81),                                                // another named port: another class
		pod("y", "web-1", "web", http80),                                                // another namespace: another class
		pod("x", "db-1", "db"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[PodRef]uint32{
		// Fresh classes are numbered in the order of their keys.
		{"x", "db-1"}: 1, {"x", "web-1"}: 2, {"x", "web-2"}: 2, {"x", "web-3"}: 3, {"y", "web-1"}: 4,
	}
	if diff := cmp.Diff(want, c1.Identity); diff != "" {
		t.Fatalf("identities (-want +got):\n%s", diff)
	}
	// Drop db (1) and web-3 (3); add two classes: they take 5 and 6, not
	// the numbers just freed.
	c2, err := Compile(2, c1, nil, []Pod{
		pod("y", "web-1", "web", http80),
		pod("x", "web-1", "web", http80),
		pod("x", "cache-1", "cache"),
		pod("z", "cache-1", "cache"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = map[PodRef]uint32{{"x", "web-1"}: 2, {"y", "web-1"}: 4, {"x", "cache-1"}: 5, {"z", "cache-1"}: 6}
	if diff := cmp.Diff(want, c2.Identity); diff != "" {
		t.Fatalf("identities after a change (-want +got):\n%s", diff)
	}
	if c2.Stats.NewIdentities != 2 {
		t.Errorf("NewIdentities = %d, want 2", c2.Stats.NewIdentities)
	}
	// One compilation later, 1 and 3 are free again.
	c3, err := Compile(3, c2, nil, []Pod{
		pod("x", "web-1", "web", http80),
		pod("x", "a", "a"),
		pod("x", "b", "b"),
		pod("x", "c", "c"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = map[PodRef]uint32{{"x", "web-1"}: 2, {"x", "a"}: 1, {"x", "b"}: 3, {"x", "c"}: 7}
	if diff := cmp.Diff(want, c3.Identity); diff != "" {
		t.Fatalf("identities two compilations on (-want +got):\n%s", diff)
	}
}

// TestNamedPortSplits looks at what the compiler hands tables/policy for
// named ports: one policy per way the ingress names resolve, one rule per
// way the egress names resolve, nothing for pods without the name.
func TestNamedPortSplits(t *testing.T) {
	c, err := Compile(1, nil, e2eNamespaces, e2ePods, []NetworkPolicy{
		{Namespace: "x", Name: "web-in", PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{named("", "web"), port("UDP", 53)}}}},
		{Namespace: "y", Name: "web-out", PodSelector: podA, PolicyTypes: egress, Egress: []Rule{{
			Peers: []Peer{pods(&all), block("192.0.2.0/24")}, Ports: []PolicyPort{named("", "web")},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := func(ref string) uint32 {
		ns, name, _ := strings.Cut(ref, "/")
		return c.Identity[PodRef{ns, name}]
	}
	in := []policy.Direction{policy.Ingress}
	want := []policy.Policy{
		{Name: "x/web-in", Selected: []uint32{id("x/a")}, Types: in, Ingress: []policy.Rule{{Ports: []policy.Port{{Proto: policy.UDP, Port: 53}, {Proto: policy.TCP, Port: 80}}}}},
		{Name: "x/web-in", Selected: []uint32{id("x/b")}, Types: in, Ingress: []policy.Rule{{Ports: []policy.Port{{Proto: policy.UDP, Port: 53}, {Proto: policy.TCP, Port: 81}}}}},
		{Name: "x/web-in", Selected: []uint32{id("x/c")}, Types: in, Ingress: []policy.Rule{{Ports: []policy.Port{{Proto: policy.UDP, Port: 53}}}}},
		{Name: "y/web-out", Selected: []uint32{id("y/a")}, Types: []policy.Direction{policy.Egress}, Egress: []policy.Rule{
			{Peers: []policy.Peer{{Identities: []uint32{id("y/a")}}}, Ports: []policy.Port{{Proto: policy.TCP, Port: 80}}},
			{Peers: []policy.Peer{{Identities: []uint32{id("y/b")}}}, Ports: []policy.Port{{Proto: policy.TCP, Port: 81}}},
		}},
	}
	opts := cmp.Options{cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(want, c.Policies, opts); diff != "" {
		t.Errorf("compiled policies (-want +got):\n%s", diff)
	}
	if c.Stats.Policies != 4 || c.Stats.Rules != 5 || c.Stats.Identities != 9 || c.Stats.Namespaces != 3 {
		t.Errorf("Stats = %+v", c.Stats)
	}
}
