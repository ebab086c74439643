package policy_test

import (
	"fmt"
	"net/netip"

	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/policy"
)

// A worker decides the first packet of a flow to a local pod: the
// endpoint table gives the local identity (and the peer's, when the peer
// is a local pod too), the policy table the verdict.
func ExampleTable_Verdict() {
	const web, client = 10, 11
	eps, _ := endpoint.New(1, map[netip.Addr]endpoint.Endpoint{
		netip.MustParseAddr("10.244.0.5"): {Port: 1, Identity: web},
		netip.MustParseAddr("10.244.0.6"): {Port: 2, Identity: client},
	})
	pols, _ := policy.Build(1, []policy.Policy{{
		Name:     "shop/web",
		Selected: []uint32{web},
		Types:    []policy.Direction{policy.Ingress},
		Ingress: []policy.Rule{
			{Peers: []policy.Peer{{Identities: []uint32{client}}}, Ports: []policy.Port{{Proto: policy.TCP, Port: 80}}},
			{Peers: []policy.Peer{{CIDR: netip.MustParsePrefix("192.0.2.0/24")}}},
		},
	}})

	decide := func(src, dst string, port uint16) policy.Verdict {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		local, _ := eps.Lookup(d)
		peer, _ := eps.Lookup(s) // zero Identity when not a local pod
		return pols.Verdict(policy.Key{
			Local: local.Identity, Peer: peer.Identity, PeerCIDR: pols.CIDR(s),
			Dir: policy.Ingress, Proto: policy.TCP, Port: port,
		})
	}
	fmt.Println(decide("10.244.0.6", "10.244.0.5", 80))
	fmt.Println(decide("10.244.0.6", "10.244.0.5", 22))
	fmt.Println(decide("192.0.2.7", "10.244.0.5", 22))
	fmt.Println(decide("10.244.0.5", "10.244.0.6", 22))
	// Output:
	// allow
	// deny
	// allow
	// unselected
}
