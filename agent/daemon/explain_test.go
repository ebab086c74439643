package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/fastpath/pipeline"
)

// explainCluster is web in default, isolated for ingress by allow-web
// (clients of every namespace on the named port http, and a block) and
// by deny-all; 60 clients in shop, more than an answer lists; a pod no
// policy selects.
func explainCluster(t *testing.T) *Policies {
	t.Helper()
	pods := []netpol.Pod{
		{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}, IPs: addrs("10.244.1.2", "fd00:1::2"),
			Ports: []netpol.NamedPort{{Name: "http", Proto: 6, Port: 8080}}},
		{Namespace: "default", Name: "open", IPs: addrs("10.244.1.3")},
		{Namespace: "default", Name: "v6", Labels: map[string]string{"role": "client"}, IPs: addrs("fd00:1::9")},
	}
	for i := range 60 {
		pods = append(pods, netpol.Pod{Namespace: "shop", Name: fmt.Sprintf("client-%02d", i), Labels: map[string]string{"role": "client"},
			IPs: addrs(fmt.Sprintf("10.244.2.%d", 10+i))})
	}
	pols := []netpol.NetworkPolicy{
		{Namespace: "default", Name: "allow-web", PodSelector: netpol.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []netpol.Rule{{
				Peers: []netpol.Peer{
					{PodSelector: &netpol.LabelSelector{MatchLabels: map[string]string{"role": "client"}}, NamespaceSelector: &netpol.LabelSelector{}},
					{IPBlock: &netpol.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				},
				Ports: []netpol.PolicyPort{{Port: &netpol.PortRef{Name: "http"}}},
			}}},
		{Namespace: "default", Name: "deny-all", PodSelector: netpol.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	c, err := netpol.Compile(1, nil, nil, pods, pols)
	if err != nil {
		t.Fatal(err)
	}
	var p Policies
	p.Publish(4, c, pods, pols)
	return &p
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestEndpointPolicy: what ringnet policy POD shows of web, asked by
// name and by address, on a node where web is local: its rule, the
// clients it matches (the first api.MaxPolicyPods of 61), the block, the
// named port resolved on web; egress not isolated.
func TestEndpointPolicy(t *testing.T) {
	st := explainCluster(t).cur.Load()
	eps := []pipeline.EndpointInfo{{Addr: netip.MustParseAddr("10.244.1.2")}, {Addr: netip.MustParseAddr("fd00:1::2")}}
	var clients []string
	for i := range api.MaxPolicyPods - 1 {
		clients = append(clients, fmt.Sprintf("shop/client-%02d", i))
	}
	want := api.EndpointPolicy{Generation: 4,
		Pod:    api.PolicyTarget{Namespace: "default", Name: "web", Addresses: []string{"10.244.1.2", "fd00:1::2"}, Local: true},
		Labels: map[string]string{"app": "web"}, NamespaceLabels: map[string]string{netpol.LabelMetadataName: "default"},
		Ports: []api.PolicyPort{{Protocol: "TCP", Port: 8080, Name: "http"}},
		Ingress: api.PolicyDirection{IsolatedBy: []string{"default/allow-web", "default/deny-all"}, Rules: []api.PolicyRule{{
			Policy: "default/allow-web", Index: 0,
			Peers: []api.PolicyPeer{
				{Selector: "pods role=client in all namespaces", PolicyPods: api.PolicyPods{Pods: append([]string{"default/v6"}, clients...), PodCount: 61}},
				{IPBlock: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}},
			},
			Ports: []api.PolicyPort{{Protocol: "TCP", Name: "http", Resolved: []api.ResolvedPort{{Port: 8080}}}},
		}}},
		Egress: api.PolicyDirection{IsolatedBy: []string{}, Rules: []api.PolicyRule{}},
	}
	for _, pod := range []string{"default/web", "web", "fd00:1::2"} {
		got, err := endpointPolicy(st, eps, pod)
		if err != nil {
			t.Fatalf("%s: %v", pod, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(api.EndpointPolicy{}, "Identity")); diff != "" || got.Identity == 0 {
			t.Errorf("%s (-want +got):\n%s\nidentity %d", pod, diff, got.Identity)
		}
	}
	// Not local, and isolated nowhere.
	got, err := endpointPolicy(st, eps, "default/open")
	if err != nil || got.Pod.Local || len(got.Ingress.IsolatedBy)+len(got.Egress.IsolatedBy) != 0 || got.Pod.Addresses[0] != "10.244.1.3" {
		t.Errorf("default/open: %+v, %v", got, err)
	}
}

// TestPolicyCheck: ringnet policy --from --to: allowed by the rule that
// does, denied with the rule whose peers match but not its port, from a
// block's except, any traffic, an IPv6 pod and an IPv4 one.
func TestPolicyCheck(t *testing.T) {
	st := explainCluster(t).cur.Load()
	eps := []pipeline.EndpointInfo{{Addr: netip.MustParseAddr("10.244.1.2")}}
	rule := func(peer, allows bool, ports ...int) api.PolicyRuleVerdict {
		r := api.PolicyRuleVerdict{Policy: "default/allow-web", Peer: peer, Allows: allows}
		for _, p := range ports {
			r.Ports = append(r.Ports, api.PolicyPort{Protocol: "TCP", Port: p})
		}
		return r
	}
	isolated := []string{"default/allow-web", "default/deny-all"}
	for _, tc := range []struct {
		req     api.PolicyCheckRequest
		want    api.PolicyDirectionVerdict // web's ingress
		from    api.PolicyTarget
		allowed bool
	}{
		{api.PolicyCheckRequest{From: "shop/client-07", To: "web", Protocol: "TCP", Port: 8080},
			api.PolicyDirectionVerdict{Verdict: api.PolicyAllowed, IsolatedBy: isolated, Rules: []api.PolicyRuleVerdict{rule(true, true, 8080)}},
			api.PolicyTarget{Namespace: "shop", Name: "client-07", Addresses: []string{"10.244.2.17"}}, true},
		{api.PolicyCheckRequest{From: "10.244.2.17", To: "default/web", Protocol: "TCP", Port: 80},
			api.PolicyDirectionVerdict{Verdict: api.PolicyDenied, IsolatedBy: isolated, Rules: []api.PolicyRuleVerdict{rule(true, false, 8080)}},
			api.PolicyTarget{Namespace: "shop", Name: "client-07", Addresses: []string{"10.244.2.17"}}, false},
		{api.PolicyCheckRequest{From: "192.168.1.9", To: "default/web", Protocol: "TCP", Port: 8080},
			api.PolicyDirectionVerdict{Verdict: api.PolicyDenied, IsolatedBy: isolated, Rules: []api.PolicyRuleVerdict{rule(false, false)}},
			api.PolicyTarget{Addresses: []string{"192.168.1.9"}}, false},
		{api.PolicyCheckRequest{From: "192.168.2.9", To: "default/web"},
			api.PolicyDirectionVerdict{Verdict: api.PolicyAllowed, IsolatedBy: isolated, Rules: []api.PolicyRuleVerdict{rule(true, true, 8080)}},
			api.PolicyTarget{Addresses: []string{"192.168.2.9"}}, true},
		{api.PolicyCheckRequest{From: "default/v6", To: "default/web", Protocol: "ICMP"},
			api.PolicyDirectionVerdict{Verdict: api.PolicyDenied, IsolatedBy: isolated, Rules: []api.PolicyRuleVerdict{rule(true, false, 8080)}},
			api.PolicyTarget{Namespace: "default", Name: "v6", Addresses: []string{"fd00:1::9"}}, false},
	} {
		got, err := policyCheck(st, eps, tc.req)
		if err != nil {
			t.Fatalf("%+v: %v", tc.req, err)
		}
		if diff := cmp.Diff(tc.want, got.Ingress); diff != "" {
			t.Errorf("%+v: ingress (-want +got):\n%s", tc.req, diff)
		}
		if got.Egress.Verdict != api.PolicyNotIsolated && got.Egress.Verdict != api.PolicyNotChecked || got.Allowed != tc.allowed ||
			!cmp.Equal(got.From, tc.from) || got.To.Name != "web" || !got.To.Local || got.Generation != 4 {
			t.Errorf("%+v: %+v; want allowed %v, from %+v", tc.req, got, tc.allowed, tc.from)
		}
	}
	if _, err := policyCheck(st, eps, api.PolicyCheckRequest{From: "default/v6", To: "default/open"}); err == nil ||
		!strings.Contains(err.Error(), "no addresses of one IP family") {
		t.Errorf("v6 to an IPv4-only pod: %v", err)
	}
}

// TestPolicyExplainErrors: over the API, a daemon without a policy says
// where policies come from; a pod it does not know, how to list pods.
func TestPolicyExplainErrors(t *testing.T) {
	d, c := newDaemon(t)
	ctx := context.Background()
	check := func(err error, want ...string) {
		t.Helper()
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
			t.Fatalf("error %v, want a %s", err, api.CodeNotFound)
		}
		for _, w := range want {
			if !strings.Contains(ae.Message, w) {
				t.Errorf("error %q does not say %q", ae.Message, w)
			}
		}
	}
	_, err := c.PolicyEndpoint(ctx, "default/web")
	check(err, "enforces no NetworkPolicy", "without --cluster and --kubernetes")
	var p Policies
	d.SetPolicies(&p)
	_, err = c.PolicyCheck(ctx, api.PolicyCheckRequest{From: "a", To: "b"})
	check(err, "enforces no NetworkPolicy", "lists no policies")
	d.SetPolicies(explainCluster(t))
	_, err = c.PolicyEndpoint(ctx, "nope")
	check(err, "no pod default/nope among the 63 pods", "namespace default: give NAMESPACE/NAME", "ringnet endpoints")
	_, err = c.PolicyCheck(ctx, api.PolicyCheckRequest{From: "default/web", To: "shop/nope"})
	check(err, "no pod shop/nope", "ringnet endpoints")
	_, err = c.PolicyEndpoint(ctx, "10.244.9.9")
	check(err, "10.244.9.9 is the address of no pod NetworkPolicy knows", "no policy isolates it")
	if got, err := c.PolicyEndpoint(ctx, "default/web"); err != nil || got.Ingress.Rules[0].Policy != "default/allow-web" || got.Pod.Local {
		t.Errorf("PolicyEndpoint over the API: %+v, %v", got, err)
	}
	if got, err := c.PolicyCheck(ctx, api.PolicyCheckRequest{From: "shop/client-00", To: "default/web", Protocol: "TCP", Port: 8080}); err != nil || !got.Allowed {
		t.Errorf("PolicyCheck over the API: %+v, %v", got, err)
	}
}
