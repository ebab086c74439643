package netpol_test

import (
	"fmt"
	"net/netip"

	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/policy"
)

// The agent compiles what the informers hold, then the fast path decides
// a packet from the identities of its addresses.
func ExampleCompile() {
	nss := []netpol.Namespace{{Name: "shop"}, {Name: "monitoring"}}
	pods := []netpol.Pod{
		{Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"},
			IPs: []netip.Addr{netip.MustParseAddr("10.244.0.5")}, Ports: []netpol.NamedPort{{Name: "metrics", Proto: policy.TCP, Port: 9090}}},
		{Namespace: "monitoring", Name: "prometheus-0", Labels: map[string]string{"app": "prometheus"},
			IPs: []netip.Addr{netip.MustParseAddr("10.244.1.7")}},
	}
	pols := []netpol.NetworkPolicy{{
		Namespace: "shop", Name: "scrape",
		PodSelector: netpol.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: []netpol.Rule{{
			Peers: []netpol.Peer{{NamespaceSelector: &netpol.LabelSelector{MatchLabels: map[string]string{netpol.LabelMetadataName: "monitoring"}}}},
			Ports: []netpol.PolicyPort{{Port: &netpol.PortRef{Name: "metrics"}}},
		}},
	}}
	c, err := netpol.Compile(1, nil, nss, pods, pols)
	if err != nil {
		panic(err)
	}

	ingress := func(src, dst string, port uint16) policy.Verdict {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		return c.Table.Verdict(policy.Key{
			Local: c.ByIP[d], Peer: c.ByIP[s], PeerCIDR: c.Table.CIDR(s),
			Port: port, Proto: policy.TCP, Dir: policy.Ingress,
		})
	}
	fmt.Println(ingress("10.244.1.7", "10.244.0.5", 9090)) // prometheus scrapes web
	fmt.Println(ingress("10.244.1.7", "10.244.0.5", 80))   // but nothing else
	fmt.Println(ingress("10.244.0.5", "10.244.1.7", 9090)) // prometheus is not isolated
	fmt.Println(c.Problems)
	// Output:
	// allow
	// deny
	// unselected
	// []
}
