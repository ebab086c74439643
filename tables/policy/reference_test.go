package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// packet is what the reference evaluator decides: the peer's address
// instead of its CIDR identity.
type packet struct {
	Local, Peer uint32
	Addr        netip.Addr // the peer's address; zero when unknown
	Dir         Direction
	Proto       uint8
	Port        uint16
}

func (p packet) String() string {
	return fmt.Sprintf("%s local=%d peer=%d addr=%v proto=%d port=%d", p.Dir, p.Local, p.Peer, p.Addr, p.Proto, p.Port)
}

// reference decides p by walking every rule of every policy, literally
// as the Kubernetes NetworkPolicy documentation reads: obviously right
// and slow.
func reference(policies []Policy, p packet) Verdict {
	selected, allowed := false, false
	for _, pol := range policies {
		if !slices.Contains(pol.Selected, p.Local) || !slices.Contains(pol.Types, p.Dir) {
			continue
		}
		selected = true
		rules := pol.Ingress
		if p.Dir == Egress {
			rules = pol.Egress
		}
		for _, r := range rules {
			if refPeers(r.Peers, p) && refPorts(r.Ports, p) {
				allowed = true
			}
		}
	}
	switch {
	case !selected:
		return Unselected
	case allowed:
		return Allow
	}
	return Deny
}

func refPeers(peers []Peer, p packet) bool {
	if len(peers) == 0 {
		return true
	}
	a := p.Addr.Unmap()
	for _, pe := range peers {
		if p.Peer != 0 && slices.Contains(pe.Identities, p.Peer) {
			return true
		}
		if !pe.CIDR.IsValid() || !a.IsValid() || !pe.CIDR.Contains(a) {
			continue
		}
		excepted := false
		for _, e := range pe.Except {
			if e.Contains(a) {
				excepted = true
			}
		}
		if !excepted {
			return true
		}
	}
	return false
}

func refPorts(ports []Port, p packet) bool {
	if len(ports) == 0 {
		return true
	}
	for _, po := range ports {
		if po.Proto != p.Proto {
			continue
		}
		switch {
		case po.Port == 0,
			po.EndPort == 0 && p.Port == po.Port,
			po.EndPort != 0 && po.Port <= p.Port && p.Port <= po.EndPort:
			return true
		}
	}
	return false
}

// verdictOf asks t about p the way the fast path does.
func verdictOf(t *Table, p packet) Verdict {
	var cidr uint32
	if p.Addr.IsValid() {
		cidr = t.CIDR(p.Addr)
	}
	return t.Verdict(Key{Local: p.Local, Peer: p.Peer, PeerCIDR: cidr, Port: p.Port, Proto: p.Proto, Dir: p.Dir})
}

// decided is one packet and its verdict, so that a diff names the packet.
type decided struct {
	Packet  string
	Verdict string
}

// compare checks t against the reference on every packet and returns the
// diff (-reference +table), empty when they agree.
func compare(t *Table, policies []Policy, packets []packet) string {
	var want, got []decided
	for _, p := range packets {
		w, g := reference(policies, p), verdictOf(t, p)
		if w != g { // keep the diff to the packets that differ
			want = append(want, decided{p.String(), w.String()})
			got = append(got, decided{p.String(), g.String()})
		}
	}
	return cmp.Diff(want, got)
}

// gen makes random inputs over small universes, so that identities,
// prefixes and ports collide, nest and overlap.
type gen struct{ r *rand.Rand }

const maxIdentity = 8

func (g gen) identity() uint32 { return uint32(1 + g.r.IntN(maxIdentity)) }

func (g gen) addr() netip.Addr {
	if g.r.IntN(4) == 0 {
		var b [16]byte
		b[0], b[1] = 0xfd, 0
		b[14], b[15] = byte(g.r.IntN(2)), byte(g.r.IntN(256))
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, 0, byte(g.r.IntN(2)), byte(g.r.IntN(256))})
}

func (g gen) prefix() netip.Prefix {
	a := g.addr()
	var bits int
	if a.Is4() {
		bits = []int{0, 8, 16, 23, 24, 25, 28, 30, 32}[g.r.IntN(9)]
	} else {
		bits = []int{0, 64, 119, 120, 124, 128}[g.r.IntN(6)]
	}
	p, _ := a.Prefix(bits)
	if g.r.IntN(4) == 0 {
		return netip.PrefixFrom(a, bits) // not masked: Build must mask
	}
	return p
}

func (g gen) port() uint16 {
	return []uint16{1, 53, 79, 80, 81, 443, 1000, 1005, 1010, 65535}[g.r.IntN(10)]
}

func (g gen) ports() []Port {
	var ports []Port
	for range g.r.IntN(6) {
		po := Port{Proto: []uint8{TCP, UDP, SCTP}[g.r.IntN(3)]}
		switch g.r.IntN(6) {
		case 0: // every port
		case 1, 2:
			lo := g.port()
			hi := int(lo) + g.r.IntN(65535-int(lo)+1)
			if g.r.IntN(2) == 0 {
				hi = min(hi, int(lo)+g.r.IntN(12))
			}
			po.Port, po.EndPort = lo, uint16(hi)
		default:
			po.Port = g.port()
		}
		ports = append(ports, po)
	}
	return ports
}

func (g gen) peers() []Peer {
	var peers []Peer
	for range g.r.IntN(4) {
		if g.r.IntN(3) == 0 {
			pe := Peer{CIDR: g.prefix()}
			for range g.r.IntN(3) {
				if g.r.IntN(4) == 0 {
					pe.Except = append(pe.Except, g.prefix())
					continue
				}
				// Usually inside the block, as Kubernetes requires.
				bits := pe.CIDR.Bits() + g.r.IntN(pe.CIDR.Addr().BitLen()-pe.CIDR.Bits()+1)
				e, _ := g.addrIn(pe.CIDR).Prefix(bits)
				pe.Except = append(pe.Except, e)
			}
			peers = append(peers, pe)
			continue
		}
		var pe Peer
		for range g.r.IntN(3) {
			pe.Identities = append(pe.Identities, g.identity())
		}
		peers = append(peers, pe)
	}
	return peers
}

// addrIn returns a random address inside p.
func (g gen) addrIn(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if g.r.IntN(2) == 0 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (g gen) rules() []Rule {
	var rules []Rule
	for range g.r.IntN(4) {
		rules = append(rules, Rule{Peers: g.peers(), Ports: g.ports()})
	}
	return rules
}

func (g gen) policies() []Policy {
	var policies []Policy
	for i := range g.r.IntN(6) {
		p := Policy{Name: fmt.Sprintf("p%d", i)}
		for range 1 + g.r.IntN(3) {
			p.Selected = append(p.Selected, g.identity())
		}
		switch g.r.IntN(4) {
		case 0:
			p.Types = []Direction{Ingress}
		case 1:
			p.Types = []Direction{Egress}
		default:
			p.Types = []Direction{Ingress, Egress}
		}
		p.Ingress, p.Egress = g.rules(), g.rules()
		policies = append(policies, p)
	}
	return policies
}

// packets returns random packets, many of them aimed at what policies
// name: their identities, addresses inside their blocks, their ports and
// the ports just outside their ranges.
func (g gen) packets(policies []Policy, n int) []packet {
	var addrs []netip.Addr
	var ports []uint16
	var locals, peers []uint32
	for _, pol := range policies {
		locals = append(locals, pol.Selected...)
		for _, r := range slices.Concat(pol.Ingress, pol.Egress) {
			for _, pe := range r.Peers {
				peers = append(peers, pe.Identities...)
				if pe.CIDR.IsValid() {
					addrs = append(addrs, g.addrIn(pe.CIDR), pe.CIDR.Masked().Addr())
				}
				for _, e := range pe.Except {
					addrs = append(addrs, g.addrIn(e))
				}
			}
			for _, po := range r.Ports {
				ports = append(ports, po.Port, po.Port-1, po.Port+1, po.EndPort, po.EndPort+1)
			}
		}
	}
	out := make([]packet, n)
	for i := range out {
		p := packet{
			Local: uint32(g.r.IntN(maxIdentity + 2)),
			Dir:   Direction(g.r.IntN(2)),
			Proto: []uint8{TCP, UDP, SCTP, 1, 58, 0}[g.r.IntN(6)],
			Port:  g.port(),
		}
		if len(locals) > 0 && g.r.IntN(4) > 0 {
			p.Local = locals[g.r.IntN(len(locals))]
		}
		switch {
		case len(peers) > 0 && g.r.IntN(2) == 0:
			p.Peer = peers[g.r.IntN(len(peers))]
		case g.r.IntN(3) > 0:
			p.Peer = uint32(g.r.IntN(maxIdentity + 2))
		}
		switch {
		case len(addrs) > 0 && g.r.IntN(2) == 0:
			p.Addr = addrs[g.r.IntN(len(addrs))]
		case g.r.IntN(4) > 0:
			p.Addr = g.addr()
		}
		if p.Addr.Is4() && g.r.IntN(8) == 0 {
			p.Addr = netip.AddrFrom16(p.Addr.As16()) // IPv4-mapped
		}
		if len(ports) > 0 && g.r.IntN(2) == 0 {
			p.Port = ports[g.r.IntN(len(ports))]
		}
		out[i] = p
	}
	return out
}

// TestAgainstReference checks compiled tables against the reference
// evaluator on random policies and random packets.
func TestAgainstReference(t *testing.T) {
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	g := gen{rand.New(rand.NewPCG(3, 4))}
	var stats Stats
	for round := range rounds {
		policies := g.policies()
		tab, err := Build(uint64(round), policies)
		if err != nil {
			t.Fatalf("round %d: Build: %v", round, err)
		}
		if tab.Generation() != uint64(round) {
			t.Fatalf("round %d: Generation() = %d", round, tab.Generation())
		}
		if diff := compare(tab, policies, g.packets(policies, 500)); diff != "" {
			t.Fatalf("round %d: verdicts (-reference +table):\n%s\npolicies: %+v", round, diff, policies)
		}
		s := tab.Stats()
		stats.Entries += s.Entries
		stats.CIDRs += s.CIDRs
		stats.Bitmaps += s.Bitmaps
		stats.Groups += s.Groups
	}
	// The random inputs must exercise every part of the table.
	if stats.Entries == 0 || stats.CIDRs == 0 || stats.Bitmaps == 0 || stats.Groups == 0 {
		t.Errorf("random inputs left a part of the table unused: %+v", stats)
	}
}

// TestCIDRIndex checks the LPM step against a scan of every prefix.
func TestCIDRIndex(t *testing.T) {
	g := gen{rand.New(rand.NewPCG(5, 6))}
	for round := range 300 {
		ids := map[netip.Prefix]uint32{}
		for i := range g.r.IntN(40) {
			ids[g.prefix().Masked()] = uint32(i + 1)
		}
		x := &Table{cidrs: newCIDRIndex(ids)}
		for range 500 {
			a := g.addr()
			if g.r.IntN(8) == 0 && a.Is4() {
				a = netip.AddrFrom16(a.As16()) // IPv4-mapped: treated as IPv4
			}
			var want uint32
			best := -1
			for p, id := range ids {
				if p.Contains(a.Unmap()) && p.Bits() > best {
					want, best = id, p.Bits()
				}
			}
			if got := x.CIDR(a); got != want {
				t.Fatalf("round %d: CIDR(%s) = %d, want %d", round, a, got, want)
			}
		}
	}
}
