package main

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/metrics"
	"github.com/ringnet/ringnet/tables/service"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func backends(ss ...string) []service.Backend {
	var out []service.Backend
	for _, s := range ss {
		ap := netip.MustParseAddrPort(s)
		out = append(out, service.Backend{Addr: ap.Addr(), Port: ap.Port()})
	}
	return out
}

func TestDiffServices(t *testing.T) {
	vip := netip.MustParseAddr("10.96.0.10")
	web := service.Spec{VIP: vip, Proto: 6, Port: 80, Backends: backends("10.244.1.2:8080")}
	dns := service.Spec{VIP: vip, Proto: 17, Port: 53, Backends: backends("10.244.1.3:53")}
	dnsTCP := service.Spec{VIP: vip, Proto: 6, Port: 53, Backends: backends("10.244.1.3:53")}
	with := func(s service.Spec, f func(*service.Spec)) service.Spec { f(&s); return s }
	moved := with(web, func(s *service.Spec) { s.Backends = backends("10.244.1.4:8080") })
	sticky := with(dns, func(s *service.Spec) { s.Affinity = time.Hour })
	local := with(dnsTCP, func(s *service.Spec) { s.External, s.Local = true, true })
	added, removed, changed := diffServices([]service.Spec{web, dns, dnsTCP}, []service.Spec{moved, sticky, local,
		{VIP: netip.MustParseAddr("fd00:96::10"), Proto: 6, Port: 80}})
	type diff struct{ Added, Removed, Changed []service.Spec }
	want := diff{Added: []service.Spec{{VIP: netip.MustParseAddr("fd00:96::10"), Proto: 6, Port: 80}}, Changed: []service.Spec{moved, sticky, local}}
	if d := cmp.Diff(want, diff{added, removed, changed}, cmpAddr, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	added, removed, changed = diffServices([]service.Spec{web, dns}, []service.Spec{web})
	if d := cmp.Diff(diff{Removed: []service.Spec{dns}}, diff{added, removed, changed}, cmpAddr, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("one removed (-want +got):\n%s", d)
	}
}

func TestExternalPrefixes(t *testing.T) {
	node := netip.MustParseAddr("192.168.50.1")
	specs := []service.Spec{
		{VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Backends: backends("10.244.1.2:80")},                         // cluster IP
		{VIP: node, Port: 30080, External: true, Backends: backends("10.244.1.2:80")},                                   // NodePort
		{VIP: netip.MustParseAddr("192.168.50.100"), Port: 80, External: true, Backends: backends("10.244.1.2:80")},     // external IP
		{VIP: netip.MustParseAddr("192.168.50.100"), Port: 443, External: true, Backends: backends("10.244.1.2:443")},   // the same, once
		{VIP: netip.MustParseAddr("192.168.50.101"), Port: 80, External: true, Local: true},                             // no backends here
		{VIP: netip.MustParseAddr("2001:db8::100"), Port: 80, External: true, Backends: backends("[fd00:244:1::2]:80")}, // IPv6
		{VIP: netip.MustParseAddr("192.168.50.99"), Port: 80, External: true, Backends: backends("10.244.1.2:80")},
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.168.50.99/32"), netip.MustParsePrefix("192.168.50.100/32"), netip.MustParsePrefix("2001:db8::100/128")}
	if d := cmp.Diff(want, externalPrefixes(specs, node), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("externalPrefixes (-want +got):\n%s", d)
	}
}

func TestSameNode(t *testing.T) {
	a := cluster.Node{Name: "a", Address: netip.MustParsePrefix("192.168.50.1/24"), PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")},
		Backend: cluster.BackendRingnet, VtepMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	for name, change := range map[string]func(*cluster.Node){
		"address":   func(n *cluster.Node) { n.Address = netip.MustParsePrefix("192.168.50.1/25") },
		"pod CIDRs": func(n *cluster.Node) { n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix("fd00::/64")) },
		"backend":   func(n *cluster.Node) { n.Backend = cluster.BackendFlannel },
		"vtepMAC":   func(n *cluster.Node) { n.VtepMAC = nil },
	} {
		b := a
		b.PodCIDRs = append([]netip.Prefix(nil), a.PodCIDRs...)
		if !sameNode(&a, &b) {
			t.Fatalf("a copy is not the same node")
		}
		change(&b)
		if sameNode(&a, &b) {
			t.Errorf("a node whose %s changed is the same", name)
		}
	}
}

// TestServiceCompiler compiles and publishes services on a dataplane (no
// ports: no privileges needed): generations count up, an empty first
// table is not published, a problem is logged once while it lasts.
func TestServiceCompiler(t *testing.T) {
	dp := testDataplane(t)
	var log bytes.Buffer
	self := &cluster.Node{Name: "a", Address: netip.MustParsePrefix("192.168.50.1/24")}
	sc := &serviceCompiler{self: self, dp: dp, m: metrics.New(nil, metrics.Options{}), log: slog.New(slog.NewTextHandler(&log, nil))}
	publish := func(svcs []cluster.Service) {
		t.Helper()
		c, err := sc.compile(svcs)
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.publish(c); err != nil {
			t.Fatal(err)
		}
	}
	publish(nil)
	if dp.Services() != nil {
		t.Errorf("an empty first table was published")
	}
	web := cluster.Service{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		ExternalIPs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}, // no IPv6 cluster IP: a problem
		Ports:       []cluster.ServicePort{{Name: "http", Protocol: cluster.ProtoTCP, Port: 80}},
		Endpoints: []cluster.ServiceEndpoint{{Addr: netip.MustParseAddr("10.244.1.2"), Ready: true,
			Ports: []cluster.EndpointPort{{Name: "http", Protocol: cluster.ProtoTCP, Port: 8080}}}}}
	publish([]cluster.Service{web})
	publish([]cluster.Service{web})
	tb := dp.Services()
	if tb == nil || tb.Generation() != 2 || tb.Len() != 1 {
		t.Fatalf("published table: %+v; want generation 2 with one entry", tb)
	}
	want := []service.Spec{{VIP: netip.MustParseAddr("10.96.0.10"), Proto: 6, Port: 80, Backends: backends("10.244.1.2:8080"), TableSize: 4093}}
	if d := cmp.Diff(want, tb.All(), cmpAddr); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	if n := strings.Count(log.String(), "no IPv6 cluster IP"); n != 1 {
		t.Errorf("the problem was logged %d times, want once:\n%s", n, log.String())
	}
	for _, s := range []string{`msg="no service entries to publish" services=0`,
		`msg="services published" gen=1 services=1 entries=1 backends=1 added=1 removed=0 changed=0`,
		`msg="services published" gen=2 services=1 entries=1 backends=1 added=0 removed=0 changed=0`} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("the log does not say %q:\n%s", s, log.String())
		}
	}
	// Now empty: published as such.
	publish(nil)
	if tb := dp.Services(); tb == nil || tb.Generation() != 3 || tb.Len() != 0 {
		t.Errorf("after the last service went: %+v; want an empty table of generation 3", tb)
	}
}
