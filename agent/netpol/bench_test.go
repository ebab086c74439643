package netpol

import (
	"fmt"
	"net/netip"
	"testing"
)

// benchCluster makes a cluster shaped like a real one: nNS application
// namespaces of 10 deployments with replicas (so that pods share
// identities as they do), kube-system with DNS and a monitoring
// namespace; and 10 policies per application namespace of the kinds
// clusters run: default deny, DNS egress, same-namespace, named-port
// ingress from a tier, monitoring scrapes by named port, egress to the
// database, ingress from a team's namespaces, internet egress by ipBlock
// with excepts, a NodePort range from an ipBlock, and cross-namespace
// egress by named port.
func benchCluster(nNS, podsPerNS int) ([]Namespace, []Pod, []NetworkPolicy) {
	var namespaces []Namespace
	var podList []Pod
	ip := 0
	addPod := func(ns, name string, l map[string]string, ports ...NamedPort) {
		ip++
		podList = append(podList, Pod{Namespace: ns, Name: name, Labels: l, Ports: ports,
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(ip >> 16), byte(ip >> 8), byte(ip)})}})
	}
	http := NamedPort{Name: "http", Proto: 6, Port: 8080}
	metrics := NamedPort{Name: "metrics", Proto: 6, Port: 9090}
	grpc := NamedPort{Name: "grpc", Proto: 6, Port: 9000}

	namespaces = append(namespaces, Namespace{Name: "kube-system"}, Namespace{Name: "monitoring", Labels: labels("purpose", "monitoring")})
	for i := range 2 {
		addPod("kube-system", fmt.Sprintf("coredns-%d", i), labels("k8s-app", "kube-dns", "pod-template-hash", "5d78c9869d"),
			NamedPort{Name: "dns", Proto: 17, Port: 53}, NamedPort{Name: "dns-tcp", Proto: 6, Port: 53}, metrics)
	}
	addPod("monitoring", "prometheus-0", labels("app", "prometheus"), NamedPort{Name: "web", Proto: 6, Port: 9090})

	tiers := []string{"fe", "be", "db"}
	for n := range nNS {
		ns := fmt.Sprintf("ns-%03d", n)
		namespaces = append(namespaces, Namespace{Name: ns, Labels: labels("team", fmt.Sprintf("team-%d", n%10), "env", []string{"prod", "dev", "staging"}[n%3])})
		for p := range podsPerNS {
			app := p % 10
			l := labels("app", fmt.Sprintf("app-%d", app), "tier", tiers[app%3], "pod-template-hash", fmt.Sprintf("h%d", app))
			if app < 5 && p/10%2 == 1 {
				l["version"] = "v2" // a rollout in progress: two identities
				l["pod-template-hash"] += "v2"
			}
			ports := []NamedPort{http, metrics}
			if app%3 == 1 {
				ports = append(ports, grpc)
			}
			addPod(ns, fmt.Sprintf("app-%d-%d", app, p), l, ports...)
		}
	}

	var pols []NetworkPolicy
	for n := range nNS {
		ns := fmt.Sprintf("ns-%03d", n)
		pol := func(name string, sel LabelSelector, types []string, in, out []Rule) {
			pols = append(pols, NetworkPolicy{Namespace: ns, Name: name, PodSelector: sel, PolicyTypes: types, Ingress: in, Egress: out})
		}
		app := func(i int) *LabelSelector { return sel("app", fmt.Sprintf("app-%d", i)) }
		pol("default-deny", all, both, nil, nil)
		pol("allow-dns", all, egress, nil, []Rule{{
			Peers: []Peer{podsIn(sel("k8s-app", "kube-dns"), sel(LabelMetadataName, "kube-system"))},
			Ports: []PolicyPort{port("UDP", 53), port("TCP", 53)},
		}})
		pol("same-namespace", all, ingress, []Rule{{Peers: []Peer{pods(&all)}}}, nil)
		pol("fe-to-be", *sel("tier", "be"), ingress, []Rule{{
			Peers: []Peer{pods(sel("tier", "fe"))}, Ports: []PolicyPort{named("", "http"), named("", "grpc")},
		}}, nil)
		pol("scrape", all, ingress, []Rule{{
			Peers: []Peer{podsIn(sel("app", "prometheus"), sel("purpose", "monitoring"))}, Ports: []PolicyPort{named("", "metrics")},
		}}, nil)
		pol("to-db", *sel("tier", "be"), egress, nil, []Rule{{
			Peers: []Peer{pods(sel("tier", "db"))}, Ports: []PolicyPort{port("TCP", 5432)},
		}})
		pol("from-team", *app(n % 10), ingress, []Rule{{
			Peers: []Peer{podsIn(expr("app", OpIn, "app-1", "app-2"), sel("team", fmt.Sprintf("team-%d", (n+1)%10)))},
			Ports: []PolicyPort{port("TCP", 8080)},
		}}, nil)
		pol("internet", *sel("tier", "fe"), egress, nil, []Rule{{
			Peers: []Peer{block("0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")},
			Ports: []PolicyPort{port("TCP", 443)},
		}})
		pol("nodeports", *sel("tier", "fe"), ingress, []Rule{{
			Peers: []Peer{block("192.168.0.0/16", fmt.Sprintf("192.168.%d.0/24", n%256))},
			Ports: []PolicyPort{portRange("TCP", 30000, 32767)},
		}}, nil)
		pol("to-app-0", *app((n + 3) % 10), egress, nil, []Rule{{
			Peers: []Peer{podsIn(app(0), &all)}, Ports: []PolicyPort{named("", "http")},
		}})
	}
	return namespaces, podList, pols
}

// BenchmarkCompile compiles 10k pods and 1k policies (100 namespaces of
// 100 pods, 10 policies each) as the agent does on a change: with the
// previous result, into a built tables/policy table. The target
// is 200 ms for this size plus 1k services: BenchmarkCompileNode
// (node_bench_test.go) measures the two together.
func BenchmarkCompile(b *testing.B) {
	nss, pods, pols := benchCluster(100, 100)
	prev, err := Compile(1, nil, nss, pods, pols)
	if err != nil {
		b.Fatal(err)
	}
	if len(prev.Problems) > 0 {
		b.Fatal(prev.Problems)
	}
	b.ReportAllocs()
	gen := uint64(1)
	for b.Loop() {
		gen++
		if prev, err = Compile(gen, prev, nss, pods, pols); err != nil {
			b.Fatal(err)
		}
	}
	s := prev.Stats
	b.ReportMetric(float64(s.Pods), "pods")
	b.ReportMetric(float64(s.NetworkPolicies), "netpols")
	b.ReportMetric(float64(s.Identities), "identities")
	b.ReportMetric(float64(s.Rules), "rules")
	b.ReportMetric(float64(s.Table.Entries), "entries")
}

// TestBenchCluster checks that the benchmark's cluster compiles as
// intended, so that the figure is for policies that do something.
func TestBenchCluster(t *testing.T) {
	nss, pods, pols := benchCluster(12, 30)
	c, err := Compile(1, nil, nss, pods, pols)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Problems) > 0 {
		t.Fatal(c.Problems)
	}
	if len(pods) != 12*30+3 || len(pols) != 12*10 {
		t.Fatalf("%d pods, %d policies", len(pods), len(pols))
	}
	// Check the compiled table against the reference on a sample.
	eps := endpoints(pods, netip.MustParseAddr("192.168.7.1"), netip.MustParseAddr("8.8.8.8"))
	var sample []endpoint
	for i := 0; i < len(eps); i += 7 {
		sample = append(sample, eps[i])
	}
	sample = append(sample, eps[0], eps[2], eps[len(eps)-1]) // DNS, prometheus, an outside address
	probes := []probe{{17, 53}, {6, 53}, {6, 443}, {6, 5432}, {6, 8080}, {6, 9000}, {6, 9090}, {6, 30080}}
	diffs, allowed := compareAll(c, nss, pols, sample, probes)
	if len(diffs) > 0 {
		t.Fatalf("compiled and reference differ:\n%v", diffs[:min(len(diffs), 20)])
	}
	if total := len(sample) * len(sample) * len(probes); allowed == 0 || allowed == total {
		t.Fatalf("%d of %d allowed: the cluster's policies do not bite", allowed, total)
	}
	t.Logf("%+v; %d of %d sampled packets allowed", c.Stats, allowed, len(sample)*len(sample)*len(probes))
}
