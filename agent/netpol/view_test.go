package netpol

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ringnet/ringnet/tables/policy"
)

// A shop: web pods whose named port http differs, a client, Prometheus in
// ops, two databases whose port pgsql differs, a pod with a broken policy
// and one no policy selects.
var (
	viewNamespaces = []Namespace{{Name: "shop", Labels: labels("team", "a")}, {Name: "ops", Labels: labels("team", "ops")}, {Name: "db"}}
	viewPods       = []Pod{
		{Namespace: "shop", Name: "web-1", Labels: labels("app", "web"), IPs: addrs("10.0.0.1", "fd00::1"), Ports: []NamedPort{{"http", policy.TCP, 8080}}},
		{Namespace: "shop", Name: "web-2", Labels: labels("app", "web"), IPs: addrs("10.0.0.2"), Ports: []NamedPort{{"http", policy.TCP, 9090}}},
		{Namespace: "shop", Name: "client", Labels: labels("role", "client"), IPs: addrs("10.0.0.3")},
		{Namespace: "shop", Name: "broken", Labels: labels("role", "broken"), IPs: addrs("10.0.0.4")},
		{Namespace: "ops", Name: "prom", Labels: labels("app", "prom"), IPs: addrs("10.0.1.1")},
		{Namespace: "db", Name: "pg-1", Labels: labels("app", "pg"), IPs: addrs("10.0.2.1"), Ports: []NamedPort{{"pgsql", policy.TCP, 5432}}},
		{Namespace: "db", Name: "pg-2", Labels: labels("app", "pg"), IPs: addrs("10.0.2.2"), Ports: []NamedPort{{"pgsql", policy.TCP, 5433}}},
		{Namespace: "other", Name: "lonely", IPs: addrs("10.0.3.1")},
	}
	viewPolicies = []NetworkPolicy{
		{Namespace: "shop", Name: "web-in", PodSelector: *sel("app", "web"), Ingress: []Rule{
			{Peers: []Peer{pods(sel("role", "client")), podsIn(sel("app", "prom"), sel("team", "ops"))}, Ports: []PolicyPort{named("", "http")}},
			{Peers: []Peer{block("192.168.0.0/16", "192.168.1.0/24")}, Ports: []PolicyPort{port("UDP", 53)}},
		}},
		{Namespace: "shop", Name: "web-out", PodSelector: *sel("app", "web"), PolicyTypes: egress, Egress: []Rule{
			{Peers: []Peer{nss(ns("db"))}, Ports: []PolicyPort{named("TCP", "pgsql")}},
		}},
		{Namespace: "shop", Name: "deny-in", PodSelector: all},
		{Namespace: "shop", Name: "bad", PodSelector: *sel("role", "broken"), PolicyTypes: egress, Egress: []Rule{{Peers: []Peer{block("10.0.0.0/33")}}}},
	}
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func shopView(t *testing.T) *View {
	t.Helper()
	c, err := Compile(1, nil, viewNamespaces, viewPods, viewPolicies)
	if err != nil {
		t.Fatal(err)
	}
	return NewView(c, viewPods)
}

// TestViewEndpoint: what the view says each pod may do: a pod two
// policies isolate for ingress, with a rule of a pod selector and one of
// a pod and a namespace selector on a named port (resolved on the pod),
// and an ipBlock rule with an except; egress to a namespace on a named
// port (resolved on each destination); a pod isolated with no rules; one
// a broken policy isolates; one no policy selects; one the policy does
// not know.
func TestViewEndpoint(t *testing.T) {
	v := shopView(t)
	web1, pg1, pg2 := PodRef{"shop", "web-1"}, PodRef{"db", "pg-1"}, PodRef{"db", "pg-2"}
	tests := []struct {
		pod  PodRef
		want *Endpoint
	}{
		{web1, &Endpoint{Pod: web1, IPs: addrs("10.0.0.1", "fd00::1"), Labels: labels("app", "web"),
			Namespace: labels("team", "a", LabelMetadataName, "shop"), Ports: []NamedPort{{"http", policy.TCP, 8080}},
			Ways: [2]Way{
				policy.Ingress: {IsolatedBy: []string{"shop/deny-in", "shop/web-in"}, Rules: []ResolvedRule{
					{Policy: "shop/web-in", Index: 0,
						Peers: []PeerMatch{
							{Selector: "pods role=client in namespace shop", Pods: []PodRef{{"shop", "client"}}},
							{Selector: "pods app=prom in namespaces team=ops", Pods: []PodRef{{"ops", "prom"}}},
						},
						Ports: []PortMatch{{Proto: policy.TCP, Name: "http", Resolved: []Resolved{{Port: 8080}}}}},
					{Policy: "shop/web-in", Index: 1,
						Peers: []PeerMatch{{Block: netip.MustParsePrefix("192.168.0.0/16"), Except: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}},
						Ports: []PortMatch{{Proto: policy.UDP, Port: 53}}},
				}},
				policy.Egress: {IsolatedBy: []string{"shop/web-out"}, Rules: []ResolvedRule{
					{Policy: "shop/web-out", Index: 0,
						Peers: []PeerMatch{{Selector: "all pods in namespaces kubernetes.io/metadata.name=db", Pods: []PodRef{pg1, pg2}}},
						Ports: []PortMatch{{Proto: policy.TCP, Name: "pgsql", Resolved: []Resolved{{5432, []PodRef{pg1}}, {5433, []PodRef{pg2}}}}}},
				}},
			}}},
		{PodRef{"shop", "client"}, &Endpoint{Pod: PodRef{"shop", "client"}, IPs: addrs("10.0.0.3"), Labels: labels("role", "client"),
			Namespace: labels("team", "a", LabelMetadataName, "shop"),
			Ways:      [2]Way{policy.Ingress: {IsolatedBy: []string{"shop/deny-in"}}}}},
		{PodRef{"shop", "broken"}, &Endpoint{Pod: PodRef{"shop", "broken"}, IPs: addrs("10.0.0.4"), Labels: labels("role", "broken"),
			Namespace: labels("team", "a", LabelMetadataName, "shop"),
			Ways:      [2]Way{policy.Ingress: {IsolatedBy: []string{"shop/deny-in"}}, policy.Egress: {IsolatedBy: []string{"shop/bad"}}},
			Problems:  []error{errors.New(`networkpolicy shop/bad: spec.egress[0].to[0].ipBlock.cidr: "10.0.0.0/33" is not a CIDR such as 10.0.0.0/16 or fd00::/64; its pods are isolated and none of its rules apply until it is fixed`)}}},
		{PodRef{"other", "lonely"}, &Endpoint{Pod: PodRef{"other", "lonely"}, IPs: addrs("10.0.3.1"), Namespace: labels(LabelMetadataName, "other")}},
	}
	opts := cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty(),
		cmpopts.IgnoreFields(Endpoint{}, "Identity"), cmp.Transformer("error", func(e error) string { return e.Error() })}
	for _, tc := range tests {
		got, err := v.Endpoint(tc.pod)
		if err != nil {
			t.Fatalf("%s: %v", tc.pod, err)
		}
		if diff := cmp.Diff(tc.want, got, opts); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.pod, diff)
		}
		if got.Identity != v.c.Identity[tc.pod] || got.Identity == 0 {
			t.Errorf("%s: identity %d, want %d", tc.pod, got.Identity, v.c.Identity[tc.pod])
		}
	}
	if _, err := v.Endpoint(PodRef{"shop", "nope"}); !errors.Is(err, ErrNoPod) {
		t.Errorf("unknown pod: %v, want ErrNoPod", err)
	}
	if ref, id, ok := v.PodAt(netip.MustParseAddr("::ffff:10.0.0.2")); !ok || ref != (PodRef{"shop", "web-2"}) || id != v.c.Identity[ref] {
		t.Errorf("PodAt(10.0.0.2) = %v %d %v", ref, id, ok)
	}
	if _, _, ok := v.PodAt(netip.MustParseAddr("10.9.9.9")); ok {
		t.Error("PodAt found a pod at an address of none")
	}
}

// TestViewCheck: the verdict on connections and the rules it names: a
// named port that resolves per pod, an ipBlock and its except, egress to
// a named port per destination, any traffic, and ends that are no pods.
func TestViewCheck(t *testing.T) {
	v := shopView(t)
	for _, tc := range []struct {
		src, dst        string
		proto           uint8
		port            uint16
		egress, ingress string
		allowed         bool
		srcPod, dstPod  string
	}{
		{"10.0.0.3", "10.0.0.1", policy.TCP, 8080, "unselected", "allow shop/web-in[0] [{6 8080 0}]", true, "shop/client", "shop/web-1"},
		{"10.0.0.3", "10.0.0.1", policy.TCP, 9090, "unselected", "deny (shop/web-in[0] only [{6 8080 0}])", false, "shop/client", "shop/web-1"},
		{"10.0.0.3", "10.0.0.2", policy.TCP, 9090, "unselected", "allow shop/web-in[0] [{6 9090 0}]", true, "shop/client", "shop/web-2"},
		{"10.0.1.1", "10.0.0.1", policy.TCP, 8080, "unselected", "allow shop/web-in[0] [{6 8080 0}]", true, "ops/prom", "shop/web-1"},
		{"10.0.3.1", "10.0.0.1", policy.TCP, 8080, "unselected", "deny", false, "other/lonely", "shop/web-1"},
		{"192.168.2.5", "10.0.0.1", policy.UDP, 53, "not checked", "allow shop/web-in[1] [{17 53 0}]", true, "", "shop/web-1"},
		{"192.168.1.5", "10.0.0.1", policy.UDP, 53, "not checked", "deny", false, "", "shop/web-1"},
		{"10.0.0.1", "10.0.2.2", policy.TCP, 5433, "allow shop/web-out[0] [{6 5433 0}]", "unselected", true, "shop/web-1", "db/pg-2"},
		{"10.0.0.1", "10.0.2.2", policy.TCP, 5432, "deny (shop/web-out[0] only [{6 5433 0}])", "unselected", false, "shop/web-1", "db/pg-2"},
		{"10.0.0.1", "10.0.2.1", 0, 0, "allow shop/web-out[0] [{6 5432 0}]", "unselected", true, "shop/web-1", "db/pg-1"},
		{"10.0.0.3", "10.0.0.1", 0, 0, "unselected", "allow shop/web-in[0] [{6 8080 0}]", true, "shop/client", "shop/web-1"},
		{"10.0.0.4", "10.0.3.1", 0, 0, "deny", "unselected", false, "shop/broken", "other/lonely"},
		{"10.0.0.1", "10.0.0.3", policy.TCP, 80, "deny", "deny", false, "shop/web-1", "shop/client"},
	} {
		c := v.Check(netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst), tc.proto, tc.port)
		name := fmt.Sprintf("%s > %s %d/%d", tc.src, tc.dst, tc.port, tc.proto)
		if got := summary(c.Ways[policy.Egress]); got != tc.egress {
			t.Errorf("%s: egress %q, want %q", name, got, tc.egress)
		}
		if got := summary(c.Ways[policy.Ingress]); got != tc.ingress {
			t.Errorf("%s: ingress %q, want %q", name, got, tc.ingress)
		}
		if c.Allowed() != tc.allowed || ref(c.SrcPod) != tc.srcPod || ref(c.DstPod) != tc.dstPod {
			t.Errorf("%s: allowed %v, pods %q %q; want %v, %q %q", name, c.Allowed(), ref(c.SrcPod), ref(c.DstPod), tc.allowed, tc.srcPod, tc.dstPod)
		}
	}
}

func ref(r PodRef) string {
	if r == (PodRef{}) {
		return ""
	}
	return r.String()
}

// summary is a way's verdict, the rules that allow the connection, and
// those whose peers match only, each with the ports it allows the peer.
func summary(w WayCheck) string {
	if !w.Checked {
		return "not checked"
	}
	s := w.Verdict.String()
	for _, rc := range w.Rules {
		name := fmt.Sprintf("%s[%d]", rc.Policy, rc.Index)
		ports := "any"
		if !rc.AnyPort {
			ports = fmt.Sprint(rc.Ports)
		}
		switch {
		case rc.Allows:
			s += fmt.Sprintf(" %s %s", name, ports)
		case rc.Peer:
			s += fmt.Sprintf(" (%s only %s)", name, ports)
		}
	}
	return s
}

// TestViewAgainstReference compiles random clusters and checks every
// connection the view explains against the reference model: the verdict
// (which is the table's), the policies that isolate each end, and for
// each of their rules whether the view says it allows the connection, which
// must be what the reference says of a policy with that rule alone.
// Without a protocol a rule allows when the reference lets some probe
// through it.
func TestViewAgainstReference(t *testing.T) {
	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	g := clusterGen{rand.New(rand.NewPCG(21, 22))}
	var rulesChecked, allowing int
	for round := range rounds {
		nss, pods := g.cluster()
		pols := g.policies()
		c, err := Compile(uint64(round), nil, nss, pods, pols)
		if err != nil {
			t.Fatal(err)
		}
		v := NewView(c, pods)
		eps := endpoints(pods, genExternal...)
		fail := func(format string, args ...any) {
			t.Fatalf("round %d: %s\n%s", round, fmt.Sprintf(format, args...), dump(nss, pods, pols))
		}
		for _, src := range eps {
			for _, dst := range eps {
				for _, pr := range append(genProbes, probe{}) {
					cn := v.Check(src.addr, dst.addr, pr.proto, pr.port)
					if pr.proto != 0 && cn.Allowed() != refAllowed(nss, pols, src, dst, pr.proto, pr.port) {
						fail("%s -> %s %s: view says allowed %v", src, dst, pr, cn.Allowed())
					}
					for _, side := range []struct {
						dir         policy.Direction
						local, peer endpoint
					}{{policy.Egress, src, dst}, {policy.Ingress, dst, src}} {
						w := cn.Ways[side.dir]
						if want := refIsolating(pols, side.dir, side.local); !slices.Equal(w.IsolatedBy, want) || w.Checked != (side.local.pod != nil) {
							fail("%s -> %s %s %v: isolated by %v (checked %v), want %v", src, dst, pr, side.dir, w.IsolatedBy, w.Checked, want)
						}
						some := false
						for _, rc := range w.Rules {
							one := []NetworkPolicy{onlyRule(pols, rc.Policy, side.dir, rc.Index)}
							want := refSide(nss, one, side.dir, side.local, side.peer, pr.proto, pr.port)
							if pr.proto == 0 {
								want = slices.ContainsFunc(anyProbes, func(p probe) bool {
									return refSide(nss, one, side.dir, side.local, side.peer, p.proto, p.port)
								})
							}
							if rc.Allows != want {
								fail("%s -> %s %s %v: %s[%d] allows %v, the reference %v", src, dst, pr, side.dir, rc.Policy, rc.Index, rc.Allows, want)
							}
							some = some || rc.Allows
							rulesChecked++
						}
						if len(w.IsolatedBy) > 0 && some != (w.Verdict == policy.Allow) {
							fail("%s -> %s %s %v: verdict %v, yet a rule allows: %v", src, dst, pr, side.dir, w.Verdict, some)
						}
						if some {
							allowing++
						}
					}
				}
			}
		}
	}
	t.Logf("%d rounds, %d rule verdicts checked, %d ways allowed by a rule", rounds, rulesChecked, allowing)
	if allowing*20 < rulesChecked || allowing == 0 {
		t.Errorf("random inputs too tame: %d of %d rule verdicts allow", allowing, rulesChecked)
	}
}

// anyProbes are a probe on every protocol and port a random policy can
// name (a range starts at one of genPorts).
var anyProbes = func() []probe {
	out := []probe{{1, 0}}
	for _, proto := range []uint8{policy.TCP, policy.UDP, policy.SCTP} {
		for _, port := range genPorts {
			out = append(out, probe{proto, port})
		}
	}
	return out
}()

// refIsolating names the policies that select local's pod for dir, as the
// reference reads them.
func refIsolating(pols []NetworkPolicy, dir policy.Direction, local endpoint) []string {
	var out []string
	for i := range pols {
		pol := &pols[i]
		if local.pod == nil || pol.Namespace != local.pod.Namespace {
			continue
		}
		ingress, egress := refTypes(pol)
		if selected, valid := refSelects(&pol.PodSelector, local.pod.Labels); valid && selected && (dir == policy.Ingress && ingress || dir == policy.Egress && egress) {
			out = append(out, pol.Namespace+"/"+pol.Name)
		}
	}
	slices.Sort(out)
	return out
}

// onlyRule is the policy named with rule i of its rules for dir alone,
// and its types made explicit (they may depend on its egress rules).
func onlyRule(pols []NetworkPolicy, name string, dir policy.Direction, i int) NetworkPolicy {
	idx := slices.IndexFunc(pols, func(p NetworkPolicy) bool { return p.Namespace+"/"+p.Name == name })
	p := pols[idx]
	ingress, egress := refTypes(&p)
	p.PolicyTypes = nil
	if ingress {
		p.PolicyTypes = append(p.PolicyTypes, PolicyTypeIngress)
	}
	if egress {
		p.PolicyTypes = append(p.PolicyTypes, PolicyTypeEgress)
	}
	if dir == policy.Ingress {
		p.Ingress = []Rule{p.Ingress[i]}
	} else {
		p.Egress = []Rule{p.Egress[i]}
	}
	return p
}
