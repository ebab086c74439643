package netpol

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Cases after the upstream NetworkPolicy e2e suite
// (kubernetes/test/e2e/network/netpol): namespaces x, y, z; pods a, b, c in
// each, labelled pod=<name>, each serving ports 80 and 81 over TCP, UDP
// and SCTP, with container ports named serve-<port>-<proto> as upstream.
// Besides, pod a names TCP 80 "web" and pod b names TCP 81 "web", so that a
// named port resolves differently per pod. Each case is a truth table over
// every (from, to) pair and probe, written like upstream's Reachability:
// everything allowed, then expectations applied in order.

var (
	e2eNamespaces = []Namespace{
		{Name: "x", Labels: map[string]string{"ns": "x", "env": "prod"}},
		{Name: "y", Labels: map[string]string{"ns": "y", "env": "dev"}},
		{Name: "z", Labels: map[string]string{"ns": "z"}},
	}
	e2ePods = func() []Pod {
		var pods []Pod
		for i, ns := range []string{"x", "y", "z"} {
			for j, name := range []string{"a", "b", "c"} {
				p := Pod{Namespace: ns, Name: name, Labels: map[string]string{"pod": name},
					IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j + 1)})}}
				for _, port := range []uint16{80, 81} {
					for _, pp := range []struct {
						proto uint8
						name  string
					}{{6, "tcp"}, {17, "udp"}, {132, "sctp"}} {
						proto, pname := pp.proto, pp.name
						p.Ports = append(p.Ports, NamedPort{Name: fmt.Sprintf("serve-%d-%s", port, pname), Proto: proto, Port: port})
					}
				}
				switch name {
				case "a":
					p.Ports = append(p.Ports, NamedPort{Name: "web", Proto: 6, Port: 80})
				case "b":
					p.Ports = append(p.Ports, NamedPort{Name: "web", Proto: 6, Port: 81})
				}
				pods = append(pods, p)
			}
		}
		return pods
	}()
	e2eProbes = []probe{{6, 80}, {6, 81}, {17, 80}, {17, 81}}
)

// expect sets the expected verdict of the pairs from -> to (patterns such
// as "x/a", "x/*", "*/b", "*") on the probes named (all when none).
type expect struct {
	from, to string
	allow    bool
	probes   []string
}

func deny(from, to string, probes ...string) expect  { return expect{from, to, false, probes} }
func allow(from, to string, probes ...string) expect { return expect{from, to, true, probes} }

// Policy-building shorthands.
func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
func sel(kv ...string) *LabelSelector { return &LabelSelector{MatchLabels: labels(kv...)} }
func expr(key, op string, values ...string) *LabelSelector {
	return &LabelSelector{MatchExpressions: []Requirement{{Key: key, Operator: op, Values: values}}}
}
func pods(s *LabelSelector) Peer      { return Peer{PodSelector: s} }
func nss(s *LabelSelector) Peer       { return Peer{NamespaceSelector: s} }
func podsIn(p, n *LabelSelector) Peer { return Peer{PodSelector: p, NamespaceSelector: n} }
func block(cidr string, except ...string) Peer {
	return Peer{IPBlock: &IPBlock{CIDR: cidr, Except: except}}
}
func ns(name string) *LabelSelector { return sel(LabelMetadataName, name) }
func port(proto string, n uint16) PolicyPort {
	return PolicyPort{Protocol: proto, Port: &PortRef{Num: n}}
}
func named(proto, name string) PolicyPort {
	return PolicyPort{Protocol: proto, Port: &PortRef{Name: name}}
}
func portRange(proto string, lo, hi uint16) PolicyPort {
	return PolicyPort{Protocol: proto, Port: &PortRef{Num: lo}, EndPort: hi}
}

var (
	all     = LabelSelector{}
	podA    = *sel("pod", "a")
	ingress = []string{PolicyTypeIngress}
	egress  = []string{PolicyTypeEgress}
	both    = []string{PolicyTypeIngress, PolicyTypeEgress}
)

var e2eCases = []struct {
	name   string
	pols   []NetworkPolicy
	probes []probe // besides e2eProbes
	want   []expect
}{
	{
		name: "default deny ingress",
		pols: []NetworkPolicy{{Namespace: "x", Name: "deny-ingress", PodSelector: all}},
		want: []expect{deny("*", "x/*")},
	},
	{
		name: "default deny egress",
		pols: []NetworkPolicy{{Namespace: "x", Name: "deny-egress", PodSelector: all, PolicyTypes: egress}},
		want: []expect{deny("x/*", "*")},
	},
	{
		name: "default deny all",
		pols: []NetworkPolicy{{Namespace: "x", Name: "deny-all", PodSelector: all, PolicyTypes: both}},
		want: []expect{deny("*", "x/*"), deny("x/*", "*")},
	},
	{
		name: "allow all ingress beside a default deny",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "deny-all", PodSelector: all},
			{Namespace: "x", Name: "allow-all", PodSelector: all, Ingress: []Rule{{}}},
		},
	},
	{
		name: "allow ingress to a target from every pod",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "deny-all", PodSelector: all},
			{Namespace: "x", Name: "allow-all-to-a", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{podsIn(&all, &all)}}}},
		},
		want: []expect{deny("*", "x/b"), deny("*", "x/c")},
	},
	{
		name: "allow from namespace y",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-y", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(ns("y"))}}}}},
		want: []expect{deny("x/*", "x/a"), deny("z/*", "x/a")},
	},
	{
		name: "allow from pod b in namespace y: both selectors in one peer",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-y-b", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{podsIn(sel("pod", "b"), ns("y"))}}}}},
		want: []expect{deny("*", "x/a"), allow("y/b", "x/a")},
	},
	{
		name: "pod selector or namespace selector: two peers",
		pols: []NetworkPolicy{{Namespace: "x", Name: "or", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{
			nss(expr(LabelMetadataName, OpNotIn, "x")), pods(sel("pod", "b")),
		}}}}},
		want: []expect{deny("x/c", "x/a")},
	},
	{
		name: "allow from pod b of any namespace",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-any-b", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{podsIn(sel("pod", "b"), &all)}}}}},
		want: []expect{deny("*", "x/a"), allow("*/b", "x/a")},
	},
	{
		name: "pod selector alone picks the policy's namespace",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-b", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{pods(sel("pod", "b"))}}}}},
		want: []expect{deny("*", "x/a"), allow("x/b", "x/a")},
	},
	{
		name: "any pod selectors: several peers",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-b-c", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{pods(sel("pod", "b")), pods(sel("pod", "c"))}}}}},
		want: []expect{deny("*", "x/a"), allow("x/b", "x/a"), allow("x/c", "x/a")},
	},
	{
		name: "empty pod selector in a peer: own namespace only",
		pols: []NetworkPolicy{{Namespace: "x", Name: "deny-other-ns", PodSelector: all, Ingress: []Rule{{Peers: []Peer{pods(&all)}}}}},
		want: []expect{deny("y/*", "x/*"), deny("z/*", "x/*")},
	},
	{
		name: "empty namespace selector: every namespace",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-all-ns", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(&all)}}}}},
	},
	{
		name: "ipBlock with except, egress",
		pols: []NetworkPolicy{{Namespace: "x", Name: "cidr-except", PodSelector: podA, PolicyTypes: egress,
			Egress: []Rule{{Peers: []Peer{block("10.0.0.0/16", "10.0.0.2/32")}}}}},
		want: []expect{deny("x/a", "x/b")},
	},
	{
		name: "ipBlock: an address in an except allowed by another policy",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "cidr-except", PodSelector: podA, PolicyTypes: egress, Egress: []Rule{{Peers: []Peer{block("10.0.0.0/24", "10.0.0.2/32")}}}},
			{Namespace: "x", Name: "cidr-b", PodSelector: podA, PolicyTypes: egress, Egress: []Rule{{Peers: []Peer{block("10.0.0.2/32")}}}},
		},
		want: []expect{deny("x/a", "y/*"), deny("x/a", "z/*")},
	},
	{
		name: "ipBlock ingress from namespace y's addresses",
		pols: []NetworkPolicy{{Namespace: "x", Name: "cidr-in", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{block("10.0.1.0/24")}}}}},
		want: []expect{deny("*", "x/a"), allow("y/*", "x/a")},
	},
	{
		name: "named port ingress",
		pols: []NetworkPolicy{{Namespace: "x", Name: "serve-81", PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{named("", "serve-81-tcp")}}}}},
		want: []expect{deny("*", "x/*"), allow("*", "x/*", "tcp/81")},
	},
	{
		name: "named port ingress from namespace y",
		pols: []NetworkPolicy{{Namespace: "x", Name: "y-serve-80", PodSelector: podA, Ingress: []Rule{{
			Peers: []Peer{nss(ns("y"))}, Ports: []PolicyPort{named("TCP", "serve-80-tcp")},
		}}}},
		want: []expect{deny("*", "x/a"), allow("y/*", "x/a", "tcp/80")},
	},
	{
		name: "named port egress",
		pols: []NetworkPolicy{{Namespace: "x", Name: "egress-serve-80", PodSelector: all, PolicyTypes: egress,
			Egress: []Rule{{Ports: []PolicyPort{named("", "serve-80-tcp")}}}}},
		want: []expect{deny("x/*", "*"), allow("x/*", "*", "tcp/80")},
	},
	{
		name: "named port ingress resolved per selected pod",
		pols: []NetworkPolicy{{Namespace: "x", Name: "web", PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{named("", "web")}}}}},
		want: []expect{deny("*", "x/*"), allow("*", "x/a", "tcp/80"), allow("*", "x/b", "tcp/81")},
	},
	{
		name: "named port egress resolved per destination pod",
		pols: []NetworkPolicy{{Namespace: "x", Name: "to-web", PodSelector: podA, PolicyTypes: egress,
			Egress: []Rule{{Peers: []Peer{podsIn(&all, &all)}, Ports: []PolicyPort{named("", "web"), port("UDP", 80)}}}}},
		want: []expect{deny("x/a", "*"), allow("x/a", "*/a", "tcp/80"), allow("x/a", "*/b", "tcp/81"), allow("x/a", "*", "udp/80")},
	},
	{
		name: "named port of another protocol matches nothing",
		pols: []NetworkPolicy{{Namespace: "x", Name: "udp-name", PodSelector: podA, Ingress: []Rule{{Ports: []PolicyPort{named("UDP", "serve-80-tcp")}}}}},
		want: []expect{deny("*", "x/a")},
	},
	{
		name: "named port egress to an ipBlock matches nothing",
		pols: []NetworkPolicy{{Namespace: "x", Name: "cidr-named", PodSelector: podA, PolicyTypes: egress,
			Egress: []Rule{{Peers: []Peer{block("10.0.0.0/8")}, Ports: []PolicyPort{named("", "serve-80-tcp"), port("", 81)}}}}},
		want: []expect{deny("x/a", "*"), allow("x/a", "*", "tcp/81")},
	},
	{
		name: "named port ingress from an ipBlock resolves on the local pod",
		pols: []NetworkPolicy{{Namespace: "x", Name: "cidr-named-in", PodSelector: podA, Ingress: []Rule{{
			Peers: []Peer{block("10.0.1.0/24")}, Ports: []PolicyPort{named("", "serve-80-tcp")},
		}}}},
		want: []expect{deny("*", "x/a"), allow("y/*", "x/a", "tcp/80")},
	},
	{
		name: "endPort range",
		pols: []NetworkPolicy{{Namespace: "x", Name: "range", PodSelector: podA, Ingress: []Rule{{Ports: []PolicyPort{portRange("TCP", 80, 81)}}}}},
		want: []expect{deny("*", "x/a", "udp/80", "udp/81")},
	},
	{
		name: "endPort range starting above a port",
		pols: []NetworkPolicy{{Namespace: "x", Name: "range", PodSelector: podA, Ingress: []Rule{{Ports: []PolicyPort{portRange("UDP", 81, 90)}}}}},
		want: []expect{deny("*", "x/a"), allow("*", "x/a", "udp/81")},
	},
	{
		name: "several policies unioned",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "y-81", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(ns("y"))}, Ports: []PolicyPort{port("TCP", 81)}}}},
			{Namespace: "x", Name: "y-80", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(ns("y"))}, Ports: []PolicyPort{port("TCP", 80)}}}},
		},
		want: []expect{deny("*", "x/a"), allow("y/*", "x/a", "tcp/80", "tcp/81")},
	},
	{
		name: "stacked ingress policies: allow-all takes precedence",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "port-80", PodSelector: all, Ingress: []Rule{{Ports: []PolicyPort{port("", 80)}}}},
			{Namespace: "x", Name: "allow-all", PodSelector: all, Ingress: []Rule{{}}},
		},
	},
	{
		name: "stacked egress policies: allow-all takes precedence",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "port-80", PodSelector: all, PolicyTypes: egress, Egress: []Rule{{Ports: []PolicyPort{port("", 80)}}}},
			{Namespace: "x", Name: "allow-all", PodSelector: all, PolicyTypes: egress, Egress: []Rule{{}}},
		},
	},
	{
		name: "policy of egress type only leaves ingress alone",
		pols: []NetworkPolicy{{Namespace: "x", Name: "to-y", PodSelector: podA, PolicyTypes: egress, Egress: []Rule{{Peers: []Peer{nss(ns("y"))}}}}},
		want: []expect{deny("x/a", "*"), allow("x/a", "y/*")},
	},
	{
		name: "policyTypes default: egress rules add Egress to Ingress",
		pols: []NetworkPolicy{{Namespace: "x", Name: "to-y", PodSelector: podA, Egress: []Rule{{Peers: []Peer{nss(ns("y"))}}}}},
		want: []expect{deny("*", "x/a"), deny("x/a", "*"), allow("x/a", "y/*")},
	},
	{
		name: "egress rules without the Egress type do nothing",
		pols: []NetworkPolicy{{Namespace: "x", Name: "ingress-only", PodSelector: podA, PolicyTypes: ingress,
			Ingress: []Rule{{}}, Egress: []Rule{{Peers: []Peer{nss(ns("y"))}}}}},
	},
	{
		name: "ingress and egress controlled independently",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "allow-egress", PodSelector: podA, PolicyTypes: egress, Egress: []Rule{{}}},
			{Namespace: "x", Name: "deny-ingress", PodSelector: podA, PolicyTypes: ingress},
		},
		want: []expect{deny("*", "x/a")},
	},
	{
		name: "deny all egress except DNS",
		pols: []NetworkPolicy{{Namespace: "x", Name: "dns-only", PodSelector: all, PolicyTypes: egress,
			Egress: []Rule{{Ports: []PolicyPort{port("UDP", 53)}}}}},
		probes: []probe{{17, 53}, {6, 53}},
		want:   []expect{deny("x/*", "*"), allow("x/*", "*", "udp/53")},
	},
	{
		name: "SCTP is not TCP",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "deny-ingress", PodSelector: all},
			{Namespace: "x", Name: "sctp-81", PodSelector: podA, Ingress: []Rule{{Ports: []PolicyPort{port("SCTP", 81)}}}},
		},
		probes: []probe{{132, 80}, {132, 81}},
		want:   []expect{deny("*", "x/*"), allow("*", "x/a", "sctp/81")},
	},
	{
		name: "protocol without a port: every port of it",
		pols: []NetworkPolicy{{Namespace: "x", Name: "tcp", PodSelector: podA, Ingress: []Rule{{Ports: []PolicyPort{{Protocol: "TCP"}}}}}},
		want: []expect{deny("*", "x/a", "udp/80", "udp/81")},
	},
	{
		name: "UDP only does not allow TCP",
		pols: []NetworkPolicy{{Namespace: "x", Name: "udp-81", PodSelector: podA, Ingress: []Rule{{Ports: []PolicyPort{port("UDP", 81)}}}}},
		want: []expect{deny("*", "x/a"), allow("*", "x/a", "udp/81")},
	},
	{
		name: "matchExpressions In on pods",
		pols: []NetworkPolicy{{Namespace: "x", Name: "in", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{pods(expr("pod", OpIn, "b", "c"))}}}}},
		want: []expect{deny("*", "x/a"), allow("x/b", "x/a"), allow("x/c", "x/a")},
	},
	{
		name: "matchExpressions NotIn on namespaces with In on pods",
		pols: []NetworkPolicy{{Namespace: "x", Name: "not-in", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{
			podsIn(expr("pod", OpIn, "b", "c"), expr(LabelMetadataName, OpNotIn, "x")),
		}}}}},
		want: []expect{deny("*", "x/a"), allow("y/b", "x/a"), allow("y/c", "x/a"), allow("z/b", "x/a"), allow("z/c", "x/a")},
	},
	{
		name: "matchExpressions NotIn holds where the key is absent",
		pols: []NetworkPolicy{{Namespace: "x", Name: "not-prod", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(expr("env", OpNotIn, "prod"))}}}}},
		want: []expect{deny("x/*", "x/a")},
	},
	{
		name: "matchExpressions Exists and DoesNotExist on namespaces",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "exists", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(expr("env", OpExists))}}}},
			{Namespace: "x", Name: "not-exists", PodSelector: *sel("pod", "b"), Ingress: []Rule{{Peers: []Peer{nss(expr("env", OpDoesNotExist))}}}},
		},
		want: []expect{deny("z/*", "x/a"), deny("*", "x/b"), allow("z/*", "x/b")},
	},
	{
		name: "matchExpressions selecting the policy's pods",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "no-pod-label", PodSelector: *expr("pod", OpDoesNotExist)}, // selects nobody
			{Namespace: "y", Name: "not-a", PodSelector: *expr("pod", OpNotIn, "a")},
		},
		want: []expect{deny("*", "y/b"), deny("*", "y/c")},
	},
	{
		name: "namespace selector on a label of its own",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-prod", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{nss(sel("env", "dev"))}}}}},
		want: []expect{deny("*", "x/a"), allow("y/*", "x/a")},
	},
	{
		name: "policy in another namespace does not apply",
		pols: []NetworkPolicy{{Namespace: "z", Name: "deny-a", PodSelector: podA}},
		want: []expect{deny("*", "z/a")},
	},
	{
		name: "egress denied on the client side though the server allows it",
		pols: []NetworkPolicy{
			{Namespace: "x", Name: "to-y-a", PodSelector: podA, PolicyTypes: egress, Egress: []Rule{{Peers: []Peer{podsIn(sel("pod", "a"), ns("y"))}}}},
			{Namespace: "y", Name: "from-x-a-on-a", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{podsIn(sel("pod", "a"), ns("x"))}}}},
			{Namespace: "y", Name: "from-x-a-on-b", PodSelector: *sel("pod", "b"), Ingress: []Rule{{Peers: []Peer{podsIn(sel("pod", "a"), ns("x"))}}}},
		},
		want: []expect{deny("x/a", "*"), deny("*", "y/a"), allow("x/a", "y/a"), deny("*", "y/b")},
	},
	{
		name: "peers that select no pods allow nothing",
		pols: []NetworkPolicy{{Namespace: "x", Name: "from-nobody", PodSelector: podA, Ingress: []Rule{{Peers: []Peer{
			pods(sel("pod", "nobody")), nss(sel("ns", "nowhere")),
		}}}}},
		want: []expect{deny("*", "x/a")},
	},
	{
		name: "an invalid policy isolates its pods and allows nothing",
		pols: []NetworkPolicy{{Namespace: "x", Name: "bad-rule", PodSelector: podA, Ingress: []Rule{
			{},
			{Ports: []PolicyPort{{Protocol: "ICMP"}}},
		}}},
		want: []expect{deny("*", "x/a")},
	},
}

// e2ePodNames are the pods in table order.
var e2ePodNames = func() []string {
	var names []string
	for _, p := range e2ePods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return names
}()

// truth renders a verdict function as one grid per probe, rows from,
// columns to: "." allowed, "X" denied, "-" a pod to itself, which never
// reaches the dataplane (upstream ignores loopback too).
func truth(probes []probe, allowed func(from, to int, pr probe) bool) []string {
	var lines []string
	for _, pr := range probes {
		head := fmt.Sprintf("%-8s", pr)
		for _, n := range e2ePodNames {
			head += " " + strings.ReplaceAll(n, "/", "")
		}
		lines = append(lines, head)
		for i, from := range e2ePodNames {
			row := fmt.Sprintf("%-8s", from)
			for j := range e2ePodNames {
				switch {
				case i == j:
					row += "  -"
				case allowed(i, j, pr):
					row += "  ."
				default:
					row += "  X"
				}
			}
			lines = append(lines, row)
		}
	}
	return lines
}

func TestE2ECases(t *testing.T) {
	if len(e2eCases) < 20 {
		t.Fatalf("%d cases; the suite promises at least 20", len(e2eCases))
	}
	eps := endpoints(e2ePods)
	for _, tc := range e2eCases {
		t.Run(tc.name, func(t *testing.T) {
			probes := append(append([]probe(nil), e2eProbes...), tc.probes...)
			names := map[string]bool{}
			for _, pr := range probes {
				names[pr.String()] = true
			}
			want := make(map[[2]int]map[probe]bool)
			for i := range e2ePodNames {
				for j := range e2ePodNames {
					want[[2]int{i, j}] = map[probe]bool{}
					for _, pr := range probes {
						want[[2]int{i, j}][pr] = true
					}
				}
			}
			for _, e := range tc.want {
				for _, n := range e.probes {
					if !names[n] {
						t.Fatalf("expectation names probe %q, not one of %v", n, probes)
					}
				}
				for i, from := range e2ePodNames {
					for j, to := range e2ePodNames {
						if !match(e.from, from) || !match(e.to, to) {
							continue
						}
						for _, pr := range probes {
							if len(e.probes) == 0 || contains(e.probes, pr.String()) {
								want[[2]int{i, j}][pr] = e.allow
							}
						}
					}
				}
			}
			wantLines := truth(probes, func(i, j int, pr probe) bool { return want[[2]int{i, j}][pr] })

			c, err := Compile(1, nil, e2eNamespaces, e2ePods, tc.pols)
			if err != nil {
				t.Fatal(err)
			}
			got := truth(probes, func(i, j int, pr probe) bool { return compiledAllowed(c, eps[i], eps[j], pr.proto, pr.port) })
			if diff := cmp.Diff(wantLines, got); diff != "" {
				t.Errorf("compiled truth table (-want +got):\n%s\nproblems: %v", diff, c.Problems)
			}
			ref := truth(probes, func(i, j int, pr probe) bool {
				return refAllowed(e2eNamespaces, tc.pols, eps[i], eps[j], pr.proto, pr.port)
			})
			if diff := cmp.Diff(wantLines, ref); diff != "" {
				t.Errorf("reference truth table (-want +reference):\n%s", diff)
			}
		})
	}
}

// match reports whether pod ("x/a") matches pattern ("x/a", "x/*",
// "*/a", "*").
func match(pattern, pod string) bool {
	if pattern == "*" {
		return true
	}
	ok, err := path.Match(pattern, pod)
	if err != nil {
		panic(err)
	}
	return ok
}
