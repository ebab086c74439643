package netpol

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringnet/ringnet/tables/policy"
)

// The reference: NetworkPolicy semantics read straight off the API's field
// documentation, one packet at a time, walking every policy, selector and
// port, with no identities, no memo and no table. Slow and obviously
// right; the compiled table must agree with it everywhere.

// endpoint is one side of a packet: a pod at one of its addresses, or an
// address that is no pod's.
type endpoint struct {
	pod  *Pod // nil: not a pod
	addr netip.Addr
}

func (e endpoint) String() string {
	if e.pod == nil {
		return e.addr.String()
	}
	return fmt.Sprintf("%s/%s(%s)", e.pod.Namespace, e.pod.Name, e.addr)
}

// refAllowed says whether the API allows a packet from src to dst: the
// source's egress and the destination's ingress must both allow it.
func refAllowed(nss []Namespace, pols []NetworkPolicy, src, dst endpoint, proto uint8, port uint16) bool {
	return refSide(nss, pols, policy.Egress, src, dst, proto, port) &&
		refSide(nss, pols, policy.Ingress, dst, src, proto, port)
}

// refSide decides one direction for the pod local (if it is one) and the
// other side peer.
func refSide(nss []Namespace, pols []NetworkPolicy, dir policy.Direction, local, peer endpoint, proto uint8, port uint16) bool {
	if local.pod == nil {
		return true // policies apply to pods only
	}
	isolated, allowed := false, false
	for i := range pols {
		pol := &pols[i]
		if pol.Namespace != local.pod.Namespace {
			continue
		}
		selected, valid := refSelects(&pol.PodSelector, local.pod.Labels)
		if !valid || !selected {
			continue // a bad podSelector selects nothing
		}
		ingress, egress := refTypes(pol)
		if dir == policy.Ingress && !ingress || dir == policy.Egress && !egress {
			continue
		}
		isolated = true
		if !refValid(pol) {
			continue // isolates, allows nothing
		}
		rules := pol.Ingress
		if dir == policy.Egress {
			rules = pol.Egress
		}
		for _, r := range rules {
			matched, byPod := refPeers(nss, pol, r.Peers, peer)
			// An egress rule's named ports resolve against the destination
			// pod when a selector picks it (or the rule has no peers), not
			// when only an ipBlock holds its address (the package's reading).
			if matched && refPorts(r.Ports, dir, local, peer, byPod || len(r.Peers) == 0, proto, port) {
				allowed = true
			}
		}
	}
	return !isolated || allowed
}

// refTypes is policyTypes with the API server's default; an unknown type
// isolates both ways.
func refTypes(pol *NetworkPolicy) (ingress, egress bool) {
	if len(pol.PolicyTypes) == 0 {
		return true, len(pol.Egress) > 0
	}
	for _, t := range pol.PolicyTypes {
		switch t {
		case "Ingress":
			ingress = true
		case "Egress":
			egress = true
		default:
			return true, true
		}
	}
	return ingress, egress
}

// refSelects evaluates a label selector on labels; valid is false for a
// selector the API would reject.
func refSelects(s *LabelSelector, labels map[string]string) (selected, valid bool) {
	selected, valid = true, true
	for k, v := range s.MatchLabels {
		if k == "" {
			valid = false
		}
		if got, ok := labels[k]; !ok || got != v {
			selected = false
		}
	}
	for _, e := range s.MatchExpressions {
		got, has := labels[e.Key]
		in := slices.Contains(e.Values, got)
		switch {
		case e.Key == "":
			valid = false
		case e.Operator == "In" && len(e.Values) > 0:
			selected = selected && has && in
		case e.Operator == "NotIn" && len(e.Values) > 0:
			selected = selected && !(has && in)
		case e.Operator == "Exists" && len(e.Values) == 0:
			selected = selected && has
		case e.Operator == "DoesNotExist" && len(e.Values) == 0:
			selected = selected && !has
		default:
			valid = false
		}
	}
	return selected, valid
}

var refPortName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// refValid reports whether every rule of pol (either direction) and its
// types are valid.
func refValid(pol *NetworkPolicy) bool {
	for _, t := range pol.PolicyTypes {
		if t != "Ingress" && t != "Egress" {
			return false
		}
	}
	for _, r := range slices.Concat(pol.Ingress, pol.Egress) {
		for _, pe := range r.Peers {
			sel := pe.PodSelector != nil || pe.NamespaceSelector != nil
			if sel == (pe.IPBlock != nil) {
				return false
			}
			for _, s := range []*LabelSelector{pe.PodSelector, pe.NamespaceSelector} {
				if s != nil {
					if _, ok := refSelects(s, nil); !ok {
						return false
					}
				}
			}
			if b := pe.IPBlock; b != nil {
				c, err := netip.ParsePrefix(b.CIDR)
				if err != nil || c.Addr().Is4In6() {
					return false
				}
				for _, s := range b.Except {
					e, err := netip.ParsePrefix(s)
					if err != nil || e.Addr().BitLen() != c.Addr().BitLen() || e.Bits() <= c.Bits() || !c.Masked().Contains(e.Addr()) {
						return false
					}
				}
			}
		}
		for _, po := range r.Ports {
			if !slices.Contains([]string{"", "TCP", "UDP", "SCTP"}, po.Protocol) {
				return false
			}
			switch {
			case po.Port == nil:
				if po.EndPort != 0 {
					return false
				}
			case po.Port.Name != "":
				n := po.Port.Name
				if po.Port.Num != 0 || po.EndPort != 0 || len(n) > 15 || !refPortName.MatchString(n) ||
					strings.Contains(n, "--") || strings.Trim(n, "0123456789-") == "" {
					return false
				}
			case po.Port.Num == 0 || po.EndPort != 0 && po.EndPort < po.Port.Num:
				return false
			}
		}
	}
	return true
}

// refNamespaceLabels are the labels of the namespace called name, with the
// one the API server sets.
func refNamespaceLabels(nss []Namespace, name string) map[string]string {
	l := map[string]string{}
	for _, ns := range nss {
		if ns.Name == name {
			for k, v := range ns.Labels {
				l[k] = v
			}
			break
		}
	}
	l["kubernetes.io/metadata.name"] = name
	return l
}

// refPeers reports whether peer matches one of peers of a rule of pol,
// and whether a pod selector does.
func refPeers(nss []Namespace, pol *NetworkPolicy, peers []Peer, peer endpoint) (matched, byPod bool) {
	if len(peers) == 0 {
		return true, false
	}
	for _, pe := range peers {
		if b := pe.IPBlock; b != nil {
			c := netip.MustParsePrefix(b.CIDR)
			if !c.Contains(peer.addr) {
				continue
			}
			excepted := false
			for _, e := range b.Except {
				if netip.MustParsePrefix(e).Contains(peer.addr) {
					excepted = true
				}
			}
			if !excepted {
				matched = true
			}
			continue
		}
		if peer.pod == nil {
			continue
		}
		if pe.NamespaceSelector == nil {
			if peer.pod.Namespace != pol.Namespace {
				continue
			}
		} else if ok, _ := refSelects(pe.NamespaceSelector, refNamespaceLabels(nss, peer.pod.Namespace)); !ok {
			continue
		}
		if pe.PodSelector != nil {
			if ok, _ := refSelects(pe.PodSelector, peer.pod.Labels); !ok {
				continue
			}
		}
		return true, true
	}
	return matched, false
}

// refPorts reports whether the packet matches one of ports. A named port
// is looked up on the destination pod: the local pod for ingress, the
// peer for egress when podPeer says the rule picks it as a pod.
func refPorts(ports []PolicyPort, dir policy.Direction, local, peer endpoint, podPeer bool, proto uint8, port uint16) bool {
	if len(ports) == 0 {
		return true
	}
	dst := local
	if dir == policy.Egress {
		dst = peer
		if !podPeer {
			dst.pod = nil
		}
	}
	for _, po := range ports {
		want := map[string]uint8{"": 6, "TCP": 6, "UDP": 17, "SCTP": 132}[po.Protocol]
		if want != proto {
			continue
		}
		switch {
		case po.Port == nil:
			return true
		case po.Port.Name != "":
			if dst.pod == nil {
				continue
			}
			for _, np := range dst.pod.Ports {
				if np.Name == po.Port.Name && np.Proto == proto && np.Port == port {
					return true
				}
			}
		case po.EndPort == 0 && port == po.Port.Num,
			po.EndPort != 0 && po.Port.Num <= port && port <= po.EndPort:
			return true
		}
	}
	return false
}

// compiledAllowed asks c about the same packet the way the fast path
// does: the source's egress and the destination's ingress verdicts, with
// identities from the pods' addresses.
func compiledAllowed(c *Compiled, src, dst endpoint, proto uint8, port uint16) bool {
	side := func(dir policy.Direction, local, peer endpoint) bool {
		id, ok := c.ByIP[local.addr]
		if !ok {
			return true // not a pod: nothing to decide
		}
		return c.Table.Verdict(policy.Key{
			Local: id, Peer: c.ByIP[peer.addr], PeerCIDR: c.Table.CIDR(peer.addr),
			Port: port, Proto: proto, Dir: dir,
		}).Allowed()
	}
	return side(policy.Egress, src, dst) && side(policy.Ingress, dst, src)
}

// probe is a protocol and destination port.
type probe struct {
	proto uint8
	port  uint16
}

func (p probe) String() string {
	name := map[uint8]string{6: "tcp", 17: "udp", 132: "sctp", 1: "icmp"}[p.proto]
	if p.proto == 1 {
		return name
	}
	return fmt.Sprintf("%s/%d", name, p.port)
}

// endpoints are the pods at each of their addresses, and the extra
// addresses.
func endpoints(pods []Pod, extra ...netip.Addr) []endpoint {
	var eps []endpoint
	for i := range pods {
		for _, a := range pods[i].IPs {
			eps = append(eps, endpoint{&pods[i], a})
		}
	}
	for _, a := range extra {
		eps = append(eps, endpoint{addr: a})
	}
	return eps
}

// compareAll returns the packets on which c and the reference differ, and
// how many packets the reference allows.
func compareAll(c *Compiled, nss []Namespace, pols []NetworkPolicy, eps []endpoint, probes []probe) (diffs []string, allowed int) {
	for _, src := range eps {
		for _, dst := range eps {
			for _, pr := range probes {
				want := refAllowed(nss, pols, src, dst, pr.proto, pr.port)
				if want {
					allowed++
				}
				if got := compiledAllowed(c, src, dst, pr.proto, pr.port); got != want {
					diffs = append(diffs, fmt.Sprintf("%s -> %s %s: reference %v, compiled %v", src, dst, pr, want, got))
				}
			}
		}
	}
	return diffs, allowed
}

// clusterGen makes random small clusters: namespaces x, y, z; pods a, b, c
// in each, with labels and named ports from small vocabularies so that
// selectors and names hit and miss; policies over them.
type clusterGen struct{ r *rand.Rand }

func (g clusterGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }
func (g clusterGen) chance(n int) bool       { return g.r.IntN(n) == 0 }

var (
	genNamespaces = []string{"x", "y", "z"}
	genPods       = []string{"a", "b", "c"}
	genPortNames  = []string{"http", "dns", "metrics"}
	genPorts      = []uint16{53, 80, 81}
	genProbes     = []probe{{6, 53}, {6, 80}, {6, 81}, {17, 53}, {17, 80}, {17, 81}, {132, 80}, {132, 81}, {1, 0}}
	genExternal   = []netip.Addr{netip.MustParseAddr("10.0.9.9"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fd00::9:9")}
)

func (g clusterGen) labels(keys map[string][]string) map[string]string {
	l := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if vs := keys[k]; !g.chance(3) {
			l[k] = vs[g.r.IntN(len(vs))]
		}
	}
	return l
}

func (g clusterGen) cluster() ([]Namespace, []Pod) {
	var nss []Namespace
	var pods []Pod
	for i, ns := range genNamespaces {
		if !g.chance(6) { // sometimes a namespace only its pods name
			nss = append(nss, Namespace{Name: ns, Labels: g.labels(map[string][]string{"team": {"red", "blue"}, "env": {"prod", "dev"}})})
		}
		for j, name := range genPods {
			if g.chance(5) {
				continue
			}
			p := Pod{Namespace: ns, Name: name, Labels: g.labels(map[string][]string{"app": {"web", "db"}, "tier": {"fe", "be"}, "pod": {name}})}
			p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j + 1)})}
			if g.chance(3) {
				p.IPs = append(p.IPs, netip.AddrFrom16([16]byte{0: 0xfd, 13: byte(i), 15: byte(j + 1)}))
			}
			for range g.r.IntN(4) {
				p.Ports = append(p.Ports, NamedPort{
					Name:  g.pick(genPortNames...),
					Proto: []uint8{6, 6, 17, 132}[g.r.IntN(4)],
					Port:  genPorts[g.r.IntN(len(genPorts))],
				})
			}
			if g.chance(4) {
				p.Ports = append(p.Ports, NamedPort{Proto: 6, Port: 80}) // unnamed: ignored
			}
			pods = append(pods, p)
		}
	}
	return nss, pods
}

func (g clusterGen) selector(keys map[string][]string) *LabelSelector {
	s := &LabelSelector{}
	for range g.r.IntN(3) {
		names := slices.Sorted(maps.Keys(keys))
		k := names[g.r.IntN(len(names))]
		vs := keys[k]
		if g.chance(2) {
			if s.MatchLabels == nil {
				s.MatchLabels = map[string]string{}
			}
			s.MatchLabels[k] = vs[g.r.IntN(len(vs))]
			continue
		}
		r := Requirement{Key: k, Operator: g.pick("In", "NotIn", "Exists", "DoesNotExist")}
		if r.Operator == "In" || r.Operator == "NotIn" {
			for range 1 + g.r.IntN(2) {
				r.Values = append(r.Values, vs[g.r.IntN(len(vs))])
			}
		}
		if g.chance(60) {
			r.Operator = "Equals" // invalid
		}
		s.MatchExpressions = append(s.MatchExpressions, r)
	}
	return s
}

var (
	podKeys = map[string][]string{"app": {"web", "db"}, "tier": {"fe", "be"}, "pod": {"a", "b", "c"}}
	nsKeys  = map[string][]string{"team": {"red", "blue"}, "env": {"prod", "dev"}, "kubernetes.io/metadata.name": {"x", "y", "z"}}
)

func (g clusterGen) peer() Peer {
	switch g.r.IntN(5) {
	case 0:
		return Peer{PodSelector: g.selector(podKeys)}
	case 1:
		return Peer{NamespaceSelector: g.selector(nsKeys)}
	case 2:
		return Peer{PodSelector: g.selector(podKeys), NamespaceSelector: g.selector(nsKeys)}
	}
	var b IPBlock
	cidrs := []string{"10.0.0.0/8", "10.0.0.0/16", "10.0.1.0/24", "10.0.0.2/32", "10.0.0.0/22", "0.0.0.0/0", "10.0.1.7/24"}
	excepts := []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.2/32", "10.0.0.1/32", "10.0.1.0/25", "10.0.9.0/24"}
	if g.chance(4) {
		cidrs = []string{"fd00::/8", "fd00::/112", "::/0", "fd00::1:0/112"}
		excepts = []string{"fd00::1:0/112", "fd00::1:2/127", "fd00::9:9/128", "fd00::/120"}
	}
	b.CIDR = g.pick(cidrs...)
	c := netip.MustParsePrefix(b.CIDR).Masked()
	for range g.r.IntN(3) {
		e := g.pick(excepts...)
		if ep := netip.MustParsePrefix(e); ep.Bits() > c.Bits() && c.Contains(ep.Addr()) || g.chance(40) {
			b.Except = append(b.Except, e) // inside, or now and then not: invalid
		}
	}
	if g.chance(80) {
		return Peer{IPBlock: &b, PodSelector: &LabelSelector{}} // invalid
	}
	return Peer{IPBlock: &b}
}

func (g clusterGen) port() PolicyPort {
	po := PolicyPort{Protocol: g.pick("", "TCP", "UDP", "SCTP")}
	switch g.r.IntN(7) {
	case 0: // every port
	case 1, 2:
		po.Port = &PortRef{Num: genPorts[g.r.IntN(len(genPorts))]}
	case 3:
		lo := genPorts[g.r.IntN(len(genPorts))]
		po.Port, po.EndPort = &PortRef{Num: lo}, lo+uint16(g.r.IntN(30))
	default:
		po.Port = &PortRef{Name: g.pick(append(genPortNames, "nope")...)}
	}
	if g.chance(80) {
		po.Protocol = "ICMP" // invalid
	}
	return po
}

func (g clusterGen) rules() []Rule {
	var rules []Rule
	for range g.r.IntN(4) {
		var r Rule
		if !g.chance(3) {
			for range 1 + g.r.IntN(2) {
				r.Peers = append(r.Peers, g.peer())
			}
		}
		if !g.chance(3) {
			for range 1 + g.r.IntN(3) {
				r.Ports = append(r.Ports, g.port())
			}
		}
		rules = append(rules, r)
	}
	return rules
}

func (g clusterGen) policies() []NetworkPolicy {
	var pols []NetworkPolicy
	for i := range g.r.IntN(5) {
		p := NetworkPolicy{Namespace: g.pick(genNamespaces...), Name: fmt.Sprintf("p%d", i)}
		if !g.chance(4) {
			p.PodSelector = *g.selector(podKeys)
		}
		switch g.r.IntN(5) {
		case 0:
			p.PolicyTypes = []string{"Ingress"}
		case 1:
			p.PolicyTypes = []string{"Egress"}
		case 2:
			p.PolicyTypes = []string{"Ingress", "Egress"}
		}
		if g.chance(80) {
			p.PolicyTypes = append(p.PolicyTypes, "Sideways") // invalid
		}
		p.Ingress, p.Egress = g.rules(), g.rules()
		pols = append(pols, p)
	}
	return pols
}

// TestAgainstReference compiles random clusters and compares every
// (source, destination, protocol, port) with the reference, and checks
// that identities tell apart exactly the pods that differ in namespace,
// labels or named ports.
func TestAgainstReference(t *testing.T) {
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	g := clusterGen{rand.New(rand.NewPCG(11, 12))}
	var prev *Compiled
	var checked, allowed, problems, splits int
	for round := range rounds {
		nss, pods := g.cluster()
		pols := g.policies()
		c, err := Compile(uint64(round), prev, nss, pods, pols)
		if err != nil {
			t.Fatalf("round %d: Compile: %v", round, err)
		}
		eps := endpoints(pods, genExternal...)
		diffs, n := compareAll(c, nss, pols, eps, genProbes)
		if len(diffs) > 0 {
			if len(diffs) > 20 {
				diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
			}
			t.Fatalf("round %d: compiled and reference differ:\n%s\n%s", round, strings.Join(diffs, "\n"), dump(nss, pods, pols))
		}
		wantProblems := false
		for i := range pols {
			_, validSel := refSelects(&pols[i].PodSelector, nil)
			wantProblems = wantProblems || !validSel || !refValid(&pols[i])
		}
		if got := len(c.Problems) > 0; got != wantProblems {
			t.Fatalf("round %d: problems %v, want some: %v\n%s", round, c.Problems, wantProblems, dump(nss, pods, pols))
		}
		checkIdentities(t, c, pods)
		checked += len(eps) * len(eps) * len(genProbes)
		allowed += n
		problems += len(c.Problems)
		for i := 1; i < len(c.Policies); i++ {
			if c.Policies[i].Name == c.Policies[i-1].Name {
				splits++ // one NetworkPolicy, several tables/policy policies
			}
		}
		prev = c
	}
	t.Logf("%d rounds, %d packets checked, %d problems, %d policy splits", rounds, checked, problems, splits)
	// The random clusters must exercise denial, problems and named port
	// splits, or the comparison proves little.
	if allowed*10 < checked || allowed*10 > checked*9 || problems == 0 || splits == 0 {
		t.Errorf("random inputs too tame: allowed %d of %d, %d problems, %d splits", allowed, checked, problems, splits)
	}
}

// checkIdentities checks that pods share an identity exactly when their
// namespace, labels and named ports are equal, that every identity is
// nonzero, and that ByIP agrees with Identity.
func checkIdentities(t *testing.T, c *Compiled, pods []Pod) {
	t.Helper()
	type class struct{ ns, labels, ports string }
	classOf := func(p *Pod) class {
		var ports []string
		for _, np := range p.Ports {
			if np.Name != "" {
				ports = append(ports, fmt.Sprint(np))
			}
		}
		slices.Sort(ports)
		return class{p.Namespace, fmt.Sprint(p.Labels), fmt.Sprint(slices.Compact(ports))} // fmt sorts map keys
	}
	byClass := map[class]uint32{}
	byID := map[uint32]class{}
	for i := range pods {
		p := &pods[i]
		id := c.Identity[PodRef{p.Namespace, p.Name}]
		if id == 0 {
			t.Fatalf("pod %s/%s has no identity", p.Namespace, p.Name)
		}
		k := classOf(p)
		if old, ok := byClass[k]; ok && old != id {
			t.Fatalf("pods of one class %v have identities %d and %d", k, old, id)
		}
		if old, ok := byID[id]; ok && old != k {
			t.Fatalf("identity %d is both %v and %v", id, old, k)
		}
		byClass[k], byID[id] = id, k
		for _, a := range p.IPs {
			if c.ByIP[a] != id {
				t.Fatalf("ByIP[%s] = %d, want %d (pod %s/%s)", a, c.ByIP[a], id, p.Namespace, p.Name)
			}
		}
	}
}

// dump prints a cluster for a failure message.
func dump(nss []Namespace, pods []Pod, pols []NetworkPolicy) string {
	var b strings.Builder
	for _, ns := range nss {
		fmt.Fprintf(&b, "namespace %s %v\n", ns.Name, ns.Labels)
	}
	for _, p := range pods {
		fmt.Fprintf(&b, "pod %s/%s %v %v ports %v\n", p.Namespace, p.Name, p.Labels, p.IPs, p.Ports)
	}
	for _, p := range pols {
		fmt.Fprintf(&b, "policy %s/%s sel=%s types=%v\n", p.Namespace, p.Name, fmtSel(&p.PodSelector), p.PolicyTypes)
		for d, rules := range [][]Rule{p.Ingress, p.Egress} {
			for _, r := range rules {
				fmt.Fprintf(&b, "  %s rule peers=[", []string{"ingress", "egress"}[d])
				for _, pe := range r.Peers {
					switch {
					case pe.IPBlock != nil:
						fmt.Fprintf(&b, " ipBlock{%s except %v}", pe.IPBlock.CIDR, pe.IPBlock.Except)
						if pe.PodSelector != nil {
							b.WriteString("+podSelector")
						}
					default:
						fmt.Fprintf(&b, " {pods %s ns %s}", fmtSel(pe.PodSelector), fmtSel(pe.NamespaceSelector))
					}
				}
				b.WriteString(" ] ports=[")
				for _, po := range r.Ports {
					fmt.Fprintf(&b, " %q", po.Protocol)
					if po.Port != nil {
						fmt.Fprintf(&b, ":%d%s", po.Port.Num, po.Port.Name)
					}
					if po.EndPort != 0 {
						fmt.Fprintf(&b, "-%d", po.EndPort)
					}
				}
				b.WriteString(" ]\n")
			}
		}
	}
	return b.String()
}

func fmtSel(s *LabelSelector) string {
	if s == nil {
		return "nil"
	}
	return fmt.Sprintf("{%v %v}", s.MatchLabels, s.MatchExpressions)
}

// TestReferenceDisagrees checks that the comparison can fail: a table
// compiled from different policies must differ from the reference
// somewhere.
func TestReferenceDisagrees(t *testing.T) {
	g := clusterGen{rand.New(rand.NewPCG(13, 14))}
	found := 0
	for round := 0; round < 200 && found < 20; round++ {
		nss, pods := g.cluster()
		pols, other := g.policies(), g.policies()
		c, err := Compile(1, nil, nss, pods, other)
		if err != nil {
			t.Fatal(err)
		}
		if diffs, _ := compareAll(c, nss, pols, endpoints(pods, genExternal...), genProbes); len(diffs) > 0 {
			found++
		}
	}
	if found < 20 {
		t.Errorf("only %d of the rounds with swapped policies differ from the reference", found)
	}
}

// TestIdentitiesStable recompiles changing clusters with the previous
// result: unchanged classes keep their numbers, and no number a previous
// class had goes to a new class in the next compilation.
func TestIdentitiesStable(t *testing.T) {
	g := clusterGen{rand.New(rand.NewPCG(15, 16))}
	nss, pods := g.cluster()
	prev, err := Compile(1, nil, nss, pods, nil)
	if err != nil {
		t.Fatal(err)
	}
	reversed := slices.Clone(pods)
	slices.Reverse(reversed)
	same, err := Compile(2, prev, nss, reversed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prev.Identity, same.Identity); diff != "" {
		t.Fatalf("recompiling the same pods changed identities (-before +after):\n%s", diff)
	}
	if same.Stats.NewIdentities != 0 {
		t.Errorf("NewIdentities = %d, want 0", same.Stats.NewIdentities)
	}
	for round := range 500 {
		_, more := g.cluster()
		// Keep some pods, drop some, relabel some, add others.
		var next []Pod
		for _, p := range pods {
			switch g.r.IntN(4) {
			case 0:
				continue
			case 1:
				p.Labels = map[string]string{"relabelled": fmt.Sprint(round)}
			}
			next = append(next, p)
		}
		for k, p := range more {
			p.Name += fmt.Sprintf("-%d", round)
			p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{11, byte(round >> 8), byte(round), byte(k)})}
			next = append(next, p)
		}
		c, err := Compile(uint64(round+3), prev, nss, next, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkIdentities(t, c, next)
		prevKeys := map[string]uint32{}
		for k, id := range prev.keys {
			prevKeys[k] = id
		}
		used := map[uint32]bool{}
		for _, id := range prev.keys {
			used[id] = true
		}
		for k, id := range c.keys {
			if old, ok := prevKeys[k]; ok && old != id {
				t.Fatalf("round %d: class %q renumbered %d -> %d", round, k, old, id)
			}
			if _, ok := prevKeys[k]; !ok && used[id] {
				t.Fatalf("round %d: new class %q took %d, which the previous compilation used", round, k, id)
			}
		}
		pods, prev = next, c
	}
}
