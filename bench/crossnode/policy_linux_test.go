package main

// End-to-end test of NetworkPolicy from the cluster file: ringnetd on two
// nodes with --cluster, pods made by the CNI plugin whose addresses the
// test writes into the file with their labels, policies written beside
// them and applied on SIGHUP, real TCP connections between the pods, and
// the ringnet CLI's policy view.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/internal/topo"
)

// Policies of TestStaticPolicy.
const (
	// openWeb selects w and allows everything in: w is isolated, and
	// every connection to it is tracked under this policy's generation.
	openWeb = `
- name: open-web
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress: [{}]
`
	// allowWeb lets only role=client pods reach app=web pods, on TCP 8080.
	allowWeb = `
- name: allow-web
  spec:
    podSelector: {matchLabels: {app: web}}
    policyTypes: [Ingress]
    ingress:
    - from: [{podSelector: {matchLabels: {role: client}}}]
      ports: [{protocol: TCP, port: 8080}]
`
	// denyClientEgress isolates role=client pods for egress, with no rule:
	// they reach nothing (but their node).
	denyClientEgress = `
- name: deny-client-egress
  spec:
    podSelector: {matchLabels: {role: client}}
    policyTypes: [Egress]
`
	// badSelector does not validate.
	badSelector = `
- name: bad
  spec:
    podSelector: {matchExpressions: [{key: app, operator: in, values: [web]}]}
`
)

// TestStaticPolicy: NetworkPolicy from the cluster file, enforced by
// ringnetd --cluster. Pods a (role=client) and b (role=other) on na, w
// (app=web) serving TCP 8080 and 9090 on nb. Without policies both reach
// w. A policy allowing only role=client to app=web on TCP 8080 lets a in
// (on 8080 only) and refuses b; connections open before it are checked
// again at their next packet: a's stays, b's are cut, whether they were
// tracked under an earlier policy or made before any. ringnet policy
// shows it on both nodes. A file that does not validate changes nothing.
// Removing the policy lets b in again and stops enforcement. A default
// deny egress policy on the client side refuses a's connections on na and
// leaves b's alone.
func TestStaticPolicy(t *testing.T) {
	c := startCluster(t, "vxlan", []testbed.NodeSpec{
		{Name: "na", Addr: "192.168.50.1/24", Pod4: "10.244.1.0/24"},
		{Name: "nb", Addr: "192.168.50.2/24", Pod4: "10.244.2.0/24"},
	})
	cli := buildCLI(t)
	a, b, w := c.addPod("na", "a"), c.addPod("na", "b"), c.addPod("nb", "w")
	greeter(t, w.NS, "w", 8080)
	greeter(t, w.NS, "w", 9090)
	web, web9090 := netip.AddrPortFrom(w.IPv4, 8080), netip.AddrPortFrom(w.IPv4, 9090)

	base, err := os.ReadFile(c.File)
	if err != nil {
		t.Fatal(err)
	}
	pods := fmt.Sprintf(`
pods:
- {name: a, labels: {role: client}, addresses: [%s]}
- {name: b, labels: {role: other}, addresses: [%s]}
- {name: w, labels: {app: web}, addresses: [%s]}
`, a.IPv4, b.IPv4, w.IPv4)
	// file is the cluster file with the pods and these policies.
	file := func(policies ...string) []byte {
		f := string(base) + pods
		if len(policies) > 0 {
			f += "policies:" + strings.Join(policies, "")
		}
		return []byte(f)
	}
	// reload has every ringnetd apply the file with these policies; each
	// has applied it when Replace returns.
	reload := func(policies ...string) {
		t.Helper()
		if err := c.Replace(file(policies...)); err != nil {
			t.Fatal(err)
		}
	}
	// policyView runs ringnet policy -o json against node's ringnetd, and
	// the table too, which it logs.
	policyView := func(node string) api.PolicyList {
		t.Helper()
		sock := c.Daemons[node].Socket
		table, err := exec.Command(cli, "policy", "--socket", sock).CombinedOutput()
		if err != nil {
			t.Fatalf("ringnet policy on %s: %v\n%s", node, err, table)
		}
		t.Logf("ringnet policy on %s:\n%s", node, table)
		out, err := exec.Command(cli, "policy", "-o", "json", "--socket", sock).Output()
		if err != nil {
			t.Fatalf("ringnet policy -o json on %s: %v", node, err)
		}
		var l api.PolicyList
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatalf("ringnet policy -o json on %s printed no JSON: %v\n%s", node, err, out)
		}
		return l
	}

	// Before any policy: both pods reach w, and a connection made now is
	// tracked by no policy.
	reload()
	greet(t, a.NS, web)
	greet(t, b.NS, web)
	untracked := dial(t, b.NS, web)
	if l := policyView("nb"); l.Enforcing {
		t.Errorf("ringnet policy without policies: %+v; want nothing enforced", l)
	}

	// A policy that isolates w and allows all: connections made now are
	// tracked under it.
	reload(openWeb)
	greet(t, b.NS, web)
	fromA, fromB := dial(t, a.NS, web), dial(t, b.NS, web)

	deniedBefore := c.counters("nb", nil)["policy_denied"]
	reload(allowWeb)
	t.Run("allow role=client to app=web on TCP 8080", func(t *testing.T) {
		greet(t, a.NS, web)
		refused(t, a.NS, web9090, "a to w on 9090, a port the policy does not allow")
		refused(t, b.NS, web, "b (role=other) to w")
		if n := c.counters("nb", more("policy_denied", deniedBefore))["policy_denied"]; n <= deniedBefore {
			t.Errorf("nb counted %d policy_denied, as before the policy; want more (it enforces w's ingress)", n)
		}
	})
	t.Run("open connections are checked again at their next packet", func(t *testing.T) {
		if err := fromA.Echo(); err != nil {
			t.Errorf("a's connection to w, which the new policy allows, broke: %v", err)
		}
		if err := fromB.Echo(); err == nil {
			t.Error("b's connection to w, tracked under the earlier policy, still carries data")
		}
		if err := untracked.Echo(); err == nil {
			t.Error("b's connection to w, made before any policy, still carries data")
		}
	})
	t.Run("ringnet policy", func(t *testing.T) {
		l := policyView("nb")
		if l.Generation == 0 {
			t.Errorf("ringnet policy on nb: generation 0 while enforcing")
		}
		want := api.PolicyList{Enforcing: true, Generation: l.Generation, Pods: 3, Identities: 3, LocalEndpoints: 1, LocalSelected: 1,
			Policies: []api.NetworkPolicy{{Namespace: "default", Name: "allow-web", Types: []string{"Ingress"}, Selected: 1,
				Local: []api.PolicyPod{{Namespace: "default", Name: "w", Addresses: []string{w.IPv4.String()}}}}}}
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("ringnet policy on nb (-want +got):\n%s", diff)
		}
		if l := policyView("na"); len(l.Policies) != 1 || len(l.Policies[0].Local) != 0 || l.Policies[0].Selected != 1 || l.LocalSelected != 0 {
			t.Errorf("ringnet policy on na: %+v; want allow-web selecting no pod here", l)
		}
	})
	t.Run("a file that does not validate changes nothing", func(t *testing.T) {
		err := c.Replace(file(badSelector))
		if err == nil || !strings.Contains(err.Error(), "policies[0].spec.podSelector.matchExpressions[0].operator") {
			t.Errorf("reload of a bad policy: %v; want it refused, naming the field", err)
		}
		greet(t, a.NS, web)
	})

	reload()
	t.Run("removing the policy lets b in again", func(t *testing.T) {
		greet(t, b.NS, web)
		greet(t, a.NS, web9090)
		if l := policyView("nb"); l.Enforcing {
			t.Errorf("ringnet policy after the last policy went: %+v; want nothing enforced", l)
		}
	})

	t.Run("default deny egress on the client side", func(t *testing.T) {
		deniedBefore := c.counters("na", nil)["policy_denied"]
		reload(denyClientEgress)
		refused(t, a.NS, web, "a (role=client, egress isolated) to w")
		greet(t, b.NS, web)
		if n := c.counters("na", more("policy_denied", deniedBefore))["policy_denied"]; n <= deniedBefore {
			t.Errorf("na counted %d policy_denied, as before the policy; want more (it enforces a's egress)", n)
		}
		if l := policyView("na"); len(l.Policies) != 1 || len(l.Policies[0].Local) != 1 || l.Policies[0].Local[0].Name != "a" ||
			strings.Join(l.Policies[0].Types, ",") != "Egress" {
			t.Errorf("ringnet policy on na: %+v; want deny-client-egress selecting a here", l)
		}
		reload()
		greet(t, a.NS, web)
	})
}

// dial opens a connection from namespace ns to a greeter at addr, closed
// when the test ends.
func dial(t *testing.T, ns string, addr netip.AddrPort) *topo.Session {
	t.Helper()
	s, err := topo.Dial(ns, addr)
	if err != nil {
		t.Fatalf("connect from %s to %v: %v", ns, addr, err)
	}
	t.Cleanup(func() { s.Conn.Close() })
	return s
}

// refused checks that a connection from ns to addr gets no greeting (the
// fast path drops its SYN: the dial times out).
func refused(t *testing.T, ns string, addr netip.AddrPort, what string) {
	t.Helper()
	if s, err := topo.Dial(ns, addr); err == nil {
		s.Conn.Close()
		t.Errorf("%s: connected to %s; want it refused", what, s.Server)
	}
}

// buildCLI builds the ringnet CLI for the test.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ringnet")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ringnet/ringnet/cmd/ringnet").CombinedOutput(); err != nil {
		t.Fatalf("build ringnet: %v\n%s", err, out)
	}
	return bin
}
