package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// TestPolicyView: what the policy view shows of a compiled policy on a
// node with some of its pods: every policy by namespace and name, the
// pods each selects on every node, the local ones with their addresses
// (a policy split by named ports counted once), and the local addresses
// of no pod the policy knows.
func TestPolicyView(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	sel := func(k, v string) netpol.LabelSelector {
		return netpol.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	pods := []netpol.Pod{
		// web-1 and web-2 resolve the named port http differently: two
		// tables/policy policies of one NetworkPolicy.
		{Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"}, IPs: addrs("10.244.1.2", "fd00:1::2"),
			Ports: []netpol.NamedPort{{Name: "http", Proto: 6, Port: 8080}}},
		{Namespace: "shop", Name: "web-2", Labels: map[string]string{"app": "web"}, IPs: addrs("10.244.1.3"),
			Ports: []netpol.NamedPort{{Name: "http", Proto: 6, Port: 9090}}},
		{Namespace: "shop", Name: "web-3", Labels: map[string]string{"app": "web"}, IPs: addrs("10.244.2.2")},
		{Namespace: "shop", Name: "client", Labels: map[string]string{"role": "client"}, IPs: addrs("10.244.1.4")},
	}
	pols := []netpol.NetworkPolicy{
		{Namespace: "shop", Name: "web", PodSelector: sel("app", "web"), PolicyTypes: []string{"Ingress", "Egress"},
			Ingress: []netpol.Rule{{Ports: []netpol.PolicyPort{{Port: &netpol.PortRef{Name: "http"}}}}}},
		{Namespace: "shop", Name: "nothing", PodSelector: sel("app", "none")},
		{Namespace: "default", Name: "bad", PodSelector: netpol.LabelSelector{MatchExpressions: []netpol.Requirement{{Key: "a", Operator: "Has"}}}},
	}
	c, err := netpol.Compile(1, nil, nil, pods, pols)
	if err != nil {
		t.Fatal(err)
	}
	var p Policies
	if got := policyList(p.cur.Load(), nil); !cmp.Equal(got, api.PolicyList{Policies: []api.NetworkPolicy{}}) {
		t.Errorf("before Publish: %+v", got)
	}
	p.Publish(3, c, pods, pols)
	eps := []pipeline.EndpointInfo{
		{Addr: netip.MustParseAddr("10.244.1.2")}, {Addr: netip.MustParseAddr("10.244.1.3")},
		{Addr: netip.MustParseAddr("10.244.1.4")}, {Addr: netip.MustParseAddr("10.244.1.9")}, // no pod of the policy
		{Addr: netip.MustParseAddr("fd00:1::2")},
	}
	want := api.PolicyList{Enforcing: true, Generation: 3, Pods: 4, Identities: c.Stats.Identities,
		LocalEndpoints: 5, LocalSelected: 3, LocalUnknown: 1,
		Policies: []api.NetworkPolicy{
			{Namespace: "default", Name: "bad", Types: []string{}, Local: []api.PolicyPod{}},
			{Namespace: "shop", Name: "nothing", Types: []string{}, Local: []api.PolicyPod{}},
			{Namespace: "shop", Name: "web", Types: []string{"Egress", "Ingress"}, Selected: 3, Local: []api.PolicyPod{
				{Namespace: "shop", Name: "web-1", Addresses: []string{"10.244.1.2", "fd00:1::2"}},
				{Namespace: "shop", Name: "web-2", Addresses: []string{"10.244.1.3"}},
			}},
		},
		Problems: []string{`networkpolicy default/bad: spec.podSelector.matchExpressions[0].operator: unknown operator "Has"; use In, NotIn, Exists or DoesNotExist; it is left out and selects no pods until it is fixed`},
	}
	if diff := cmp.Diff(want, policyList(p.cur.Load(), eps)); diff != "" {
		t.Errorf("policy view (-want +got):\n%s", diff)
	}
	// Describe names flows' pods, and for a denied one the policies
	// isolating either end ("web" selects web-1 both ways, so it isolates
	// it as a source and as a destination; the client is isolated by none).
	for _, tc := range []struct {
		src, dst       string
		denied         bool
		srcPod, dstPod string
		isolating      []string
	}{
		{"10.244.1.4", "10.244.1.2", true, "shop/client", "shop/web-1", []string{"shop/web"}},
		{"10.244.1.2", "10.244.1.4", true, "shop/web-1", "shop/client", []string{"shop/web"}},
		{"10.244.1.4", "10.244.1.2", false, "shop/client", "shop/web-1", nil},
		{"10.244.1.4", "192.0.2.1", true, "shop/client", "", nil},
	} {
		s, d, iso := p.Describe(netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst), tc.denied)
		if s != tc.srcPod || d != tc.dstPod || !slices.Equal(iso, tc.isolating) {
			t.Errorf("Describe(%s > %s, denied %v) = %q, %q, %v; want %q, %q, %v", tc.src, tc.dst, tc.denied, s, d, iso, tc.srcPod, tc.dstPod, tc.isolating)
		}
	}
	p.Clear()
	if s, d, iso := p.Describe(netip.MustParseAddr("10.244.1.4"), netip.MustParseAddr("10.244.1.2"), true); s != "" || d != "" || iso != nil {
		t.Errorf("Describe with no policy: %q %q %v", s, d, iso)
	}
	if p.cur.Load() != nil {
		t.Error("Clear left a policy")
	}
}

// TestPolicyOverAPI: a daemon with no policy source, or one with nothing
// published, says it enforces nothing; then it shows what is published.
func TestPolicyOverAPI(t *testing.T) {
	d, c := newDaemon(t)
	ctx := context.Background()
	none := api.PolicyList{Policies: []api.NetworkPolicy{}}
	got, err := c.Policy(ctx)
	if err != nil || !cmp.Equal(none, got) {
		t.Errorf("Policy without a source: %+v, %v; want %+v", got, err, none)
	}
	var p Policies
	d.SetPolicies(&p)
	if got, err = c.Policy(ctx); err != nil || !cmp.Equal(none, got) {
		t.Errorf("Policy before Publish: %+v, %v; want %+v", got, err, none)
	}
	pols := []netpol.NetworkPolicy{{Namespace: "default", Name: "deny-all"}}
	comp, err := netpol.Compile(1, nil, nil, nil, pols)
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(1, comp, nil, pols)
	want := api.PolicyList{Enforcing: true, Generation: 1,
		Policies: []api.NetworkPolicy{{Namespace: "default", Name: "deny-all", Types: []string{}, Local: []api.PolicyPod{}}}}
	if got, err = c.Policy(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Policy (-want +got):\n%s", diff)
	}
}
