package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ringnet/ringnet/tables/endpoint"
)

// clusterPolicies makes nPolicies policies of a cluster with nIdentities
// identities, each policy selecting one to three identities and holding
// up to maxRules rules (exactly maxRules when exact), and returns them
// with packets aimed at them: most match a rule, some miss by port.
func clusterPolicies(r *rand.Rand, nPolicies, maxRules, nIdentities int, exact bool) ([]Policy, []packet) {
	id := func() uint32 { return uint32(1 + r.IntN(nIdentities)) }
	common := []uint16{53, 80, 443, 8080, 5432, 6379, 9090}
	policies := make([]Policy, nPolicies)
	var packets []packet
	for i := range policies {
		p := Policy{Name: fmt.Sprintf("ns%d/p%d", i%50, i), Types: []Direction{Ingress, Egress}}
		for range 1 + r.IntN(3) {
			p.Selected = append(p.Selected, id())
		}
		n := maxRules
		if !exact {
			n = 1 + r.IntN(maxRules)
		}
		for j := range n {
			var rule Rule
			for range 1 + r.IntN(3) {
				if r.IntN(10) == 0 {
					a := netip.AddrFrom4([4]byte{172, byte(16 + r.IntN(16)), byte(r.IntN(256)), 0})
					rule.Peers = append(rule.Peers, Peer{CIDR: netip.PrefixFrom(a, 24)})
					continue
				}
				var pe Peer
				for range 1 + r.IntN(5) {
					pe.Identities = append(pe.Identities, id())
				}
				rule.Peers = append(rule.Peers, pe)
			}
			for range 1 + r.IntN(2) {
				po := Port{Proto: TCP, Port: common[r.IntN(len(common))]}
				switch r.IntN(10) {
				case 0:
					po.Proto = UDP
				case 1:
					po.Port = uint16(1024 + r.IntN(60000))
					po.EndPort = po.Port + uint16(r.IntN(100))
				case 2:
					po.Port = uint16(1 + r.IntN(65535))
				}
				rule.Ports = append(rule.Ports, po)
			}
			if j%2 == 0 {
				p.Ingress = append(p.Ingress, rule)
			} else {
				p.Egress = append(p.Egress, rule)
			}
			// A packet this rule allows, or one a port away.
			pk := packet{Local: p.Selected[r.IntN(len(p.Selected))], Dir: Direction(j % 2)}
			pe := rule.Peers[r.IntN(len(rule.Peers))]
			if pe.CIDR.IsValid() {
				b := pe.CIDR.Addr().As4()
				b[3] = byte(r.IntN(256))
				pk.Addr = netip.AddrFrom4(b)
			} else {
				pk.Peer = pe.Identities[r.IntN(len(pe.Identities))]
			}
			po := rule.Ports[r.IntN(len(rule.Ports))]
			pk.Proto, pk.Port = po.Proto, po.Port
			if r.IntN(4) == 0 {
				pk.Port += 1 + uint16(r.IntN(1000))
			}
			packets = append(packets, pk)
		}
		policies[i] = p
	}
	return policies, packets
}

func BenchmarkPolicyVerdict(b *testing.B) {
	for _, n := range []struct {
		name  string
		rules int
	}{{"10", 10}, {"1k", 1000}, {"10k", 10000}} {
		b.Run(n.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, uint64(n.rules)))
			policies, packets := clusterPolicies(r, n.rules/10, 10, 1000, true)
			tab, err := Build(1, policies)
			if err != nil {
				b.Fatal(err)
			}
			// The same number of distinct keys at every size, so that the
			// figure compares the work per verdict, not cache footprints
			// of different traffic mixes.
			keys := make([]Key, 1024)
			for i := range keys {
				p := packets[r.IntN(len(packets))]
				keys[i] = Key{Local: p.Local, Peer: p.Peer, Port: p.Port, Proto: p.Proto, Dir: p.Dir}
				if p.Addr.IsValid() {
					keys[i].PeerCIDR = tab.CIDR(p.Addr)
				}
			}
			b.ReportAllocs()
			var allowed int
			for i := 0; b.Loop(); i++ {
				if tab.Verdict(keys[i&(len(keys)-1)]) == Allow {
					allowed++
				}
			}
			if allowed == 0 {
				b.Fatal("nothing allowed")
			}
		})
	}
}

// BenchmarkSnapshotBuild builds what the agent builds when a node's
// policy changes: the endpoint table of 10k local endpoints and the
// policy table of 1k policies.
func BenchmarkSnapshotBuild(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const nEndpoints, nIdentities = 10000, 1000
	eps := make(map[netip.Addr]endpoint.Endpoint, nEndpoints)
	for i := range nEndpoints {
		a := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)})
		eps[a] = endpoint.Endpoint{Port: uint16(i), MAC: [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}, Identity: uint32(1 + i%nIdentities)}
	}
	policies, _ := clusterPolicies(r, 1000, 5, nIdentities, false)
	b.ReportAllocs()
	var gen uint64
	for b.Loop() {
		gen++
		if _, err := endpoint.New(gen, eps); err != nil {
			b.Fatal(err)
		}
		if _, err := Build(gen, policies); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyCIDR is the other half of a verdict for a peer that may
// lie in an ipBlock: the longest-prefix match of its address, over the
// ipBlocks of the 10k-rule cluster.
func BenchmarkPolicyCIDR(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 10000))
	policies, _ := clusterPolicies(r, 1000, 10, 1000, true)
	tab, err := Build(1, policies)
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{172, byte(16 + r.IntN(16)), byte(r.IntN(256)), byte(r.IntN(256))})
	}
	b.ReportAllocs()
	var hits int
	for i := 0; b.Loop(); i++ {
		if tab.CIDR(addrs[i&(len(addrs)-1)]) != 0 {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no address in a block")
	}
}
