package netpol

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/tables/policy"
)

// Compiled is what Compile makes: the policy table and the identities it
// is keyed by. Nothing in it changes after Compile returns; treat it as
// read-only (the next Compile reads it).
type Compiled struct {
	// Table decides packets (tables/policy); its generation is Compile's.
	Table *policy.Table
	// Identity is every pod's identity, the Local or Peer of a
	// policy.Key.
	Identity map[PodRef]uint32
	// ByIP maps every pod address (IPv4-mapped ones unmapped) to its pod's
	// identity: the Peer of a policy.Key for a peer that is a pod.
	ByIP map[netip.Addr]uint32
	// Policies is what Table was built from, for debugging and tests: the
	// NetworkPolicies with selectors resolved and named ports expanded.
	Policies []policy.Policy
	// Problems are the inputs that could not be compiled as given, each a
	// *PolicyError or an error naming the pod or namespace, with what was
	// done instead. The rest compiled.
	Problems []error
	Stats    Stats

	keys map[string]uint32 // identity key to number, for the next Compile

	// What View (view.go) explains verdicts with: the identities by
	// number, each NetworkPolicy that selects a pod as parsed (its selector
	// peers' picked identities set), and, by index into Policies and by
	// direction, the index in spec.ingress or spec.egress of the rule each
	// compiled rule comes from.
	idents  []*identity
	parsed  map[string]*parsedPolicy
	origins [][2][]int
}

// Stats describes a compilation, for the agent's metrics and logs.
type Stats struct {
	Namespaces      int // known namespaces, given or named by a pod or policy
	Pods            int
	Identities      int
	NewIdentities   int // identities the previous Compiled did not have
	NetworkPolicies int // given
	LeftOut         int // NetworkPolicies left out (bad podSelector)
	IsolationOnly   int // NetworkPolicies compiled without their rules (a bad rule)
	Policies        int // tables/policy policies (named ports split some NetworkPolicies)
	Rules           int // tables/policy rules
	Table           policy.Stats
}

// Compile compiles the NetworkPolicies of a cluster, with its namespaces
// and pods, into the policy table for generation gen. prev is the previous
// result, whose identity numbers it keeps (nil for none). It does not keep
// or change its inputs.
//
// A policy it cannot compile as given is reported in Problems and
// compiled as the package documentation says (left out, or isolating with
// no rules); the others compile regardless. The error is for a table that
// could not be built at all, which would be a bug here.
func Compile(gen uint64, prev *Compiled, nss []Namespace, pods []Pod, pols []NetworkPolicy) (*Compiled, error) {
	c := &compiler{
		nss:     make(map[string]*namespace, len(nss)),
		named:   map[portName][]holder{},
		podSets: map[string]*podSet{},
		nsSets:  map[string][]*namespace{},
		parsed:  map[string]*parsedPolicy{},
	}
	for i := range nss {
		n := &nss[i]
		if _, dup := c.nss[n.Name]; dup {
			c.problems = append(c.problems, fmt.Errorf("namespace %s is given twice; the first is used", n.Name))
			continue
		}
		c.namespace(n.Name, n.Labels)
	}
	out := &Compiled{
		Identity: make(map[PodRef]uint32, len(pods)),
		ByIP:     make(map[netip.Addr]uint32, len(pods)),
	}
	var prevKeys map[string]uint32
	if prev != nil {
		prevKeys = prev.keys
	}
	podIdent := c.identities(pods)
	number(c.idents, prevKeys)
	c.sortIdentities(podIdent)
	out.keys = make(map[string]uint32, len(c.idents))
	for _, in := range c.idents {
		out.keys[in.key] = in.id
		if _, ok := prevKeys[in.key]; !ok {
			out.Stats.NewIdentities++
		}
		for _, p := range in.ports {
			n := portName{p.Name, p.Proto}
			c.named[n] = append(c.named[n], holder{c.index[in], p.Port})
		}
	}
	owner := make(map[netip.Addr]int, len(pods)) // address to pod index
	for i := range pods {
		p := &pods[i]
		ref := PodRef{p.Namespace, p.Name}
		id := c.idents[podIdent[i]].id
		if _, dup := out.Identity[ref]; dup {
			c.problems = append(c.problems, fmt.Errorf("pod %s is given twice; the first is used", ref))
			continue
		}
		out.Identity[ref] = id
		for _, a := range p.IPs {
			a = a.Unmap()
			if j, ok := owner[a]; ok && j != i {
				q := PodRef{pods[j].Namespace, pods[j].Name}
				keep, lose := q, ref
				if cmpRef(ref, q) < 0 {
					keep, lose = ref, q
				}
				c.problems = append(c.problems, fmt.Errorf("pods %s and %s both have address %s; it is taken as %s's", keep, lose, a, keep))
				if keep == q {
					continue
				}
			}
			owner[a] = i
			out.ByIP[a] = id
		}
	}

	// Policies in name order, so that equal inputs give equal tables
	// whatever order the informers list them in.
	order := make([]int, len(pols))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmpRef(PodRef{pols[a].Namespace, pols[a].Name}, PodRef{pols[b].Namespace, pols[b].Name})
	})
	for _, i := range order {
		pp, errs := parse(&pols[i])
		c.problems = append(c.problems, errs...)
		switch {
		case pp == nil:
			out.Stats.LeftOut++
			continue
		case pp.bad:
			out.Stats.IsolationOnly++
		}
		c.policy(pp)
	}

	tab, err := policy.Build(gen, c.out)
	if err != nil {
		return nil, fmt.Errorf("build policy table: %w", err)
	}
	out.Table = tab
	out.Policies = c.out
	out.Problems = c.problems
	out.idents, out.parsed, out.origins = c.idents, c.parsed, c.origins
	s := &out.Stats
	s.Namespaces, s.Pods, s.Identities = len(c.nss), len(pods), len(c.idents)
	s.NetworkPolicies, s.Policies = len(pols), len(c.out)
	for i := range c.out {
		s.Rules += len(c.out[i].Ingress) + len(c.out[i].Egress)
	}
	s.Table = tab.Stats()
	return out, nil
}

func cmpRef(a, b PodRef) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// compiler holds what one Compile works with.
type compiler struct {
	nss      map[string]*namespace
	nsSorted []*namespace // by name; nil when a namespace was added since
	idents   []*identity
	index    map[*identity]int32 // identity to its index in idents
	named    map[portName][]holder
	podSets  map[string]*podSet      // memo: scope and pod selector to the pods they select
	nsSets   map[string][]*namespace // memo: namespace selector to the namespaces it selects
	out      []policy.Policy
	origins  [][2][]int               // by index into out: Compiled.origins
	parsed   map[string]*parsedPolicy // the policies in out, by name
	problems []error
	marks    []bool // scratch, by identity index
}

// compiledRules are the rules of one direction of a compiled policy and,
// for each, the index of the NetworkPolicy rule it comes from.
type compiledRules struct {
	rules []policy.Rule
	from  []int
}

// from records that the rules appended since there were n compile rule i
// of the NetworkPolicy.
func (cr *compiledRules) note(n, i int) {
	for range len(cr.rules) - n {
		cr.from = append(cr.from, i)
	}
}

// emit adds a compiled policy with the rules of each direction.
func (c *compiler) emit(p policy.Policy, ingress, egress compiledRules) {
	p.Ingress, p.Egress = ingress.rules, egress.rules
	c.out = append(c.out, p)
	c.origins = append(c.origins, [2][]int{ingress.from, egress.from})
}

// holder is an identity that has a named port, and the port's number.
type holder struct {
	ident int32
	port  uint16
}

// podSet is the identities a selector picks: their indexes in
// compiler.idents and their numbers.
type podSet struct {
	idx []int32
	ids []uint32
}

// namespace returns the namespace called name, adding it with labels (or
// none) if it is new. Every namespace carries LabelMetadataName, as the
// API server makes sure.
func (c *compiler) namespace(name string, labels map[string]string) *namespace {
	if ns, ok := c.nss[name]; ok {
		return ns
	}
	l := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		l[k] = v
	}
	l[LabelMetadataName] = name
	ns := &namespace{name: name, labels: l}
	c.nss[name] = ns
	c.nsSorted = nil
	return ns
}

// identities gives every pod its identity (unnumbered) and returns the
// index of each pod's.
func (c *compiler) identities(pods []Pod) []int32 {
	byKey := make(map[string]int32, len(pods))
	c.index = make(map[*identity]int32, len(pods))
	podIdent := make([]int32, len(pods))
	var buf []byte
	for i := range pods {
		p := &pods[i]
		var named []NamedPort
		buf, named = identityKey(buf[:0], p.Namespace, p.Labels, p.Ports)
		x, ok := byKey[string(buf)]
		if !ok {
			ns := c.namespace(p.Namespace, nil)
			x = int32(len(c.idents))
			in := &identity{key: string(buf), ns: ns, labels: p.Labels, ports: named}
			c.idents = append(c.idents, in)
			c.index[in] = x
			byKey[in.key] = x
			ns.idents = append(ns.idents, x)
		}
		podIdent[i] = x
	}
	c.marks = make([]bool, len(c.idents))
	return podIdent
}

// sortIdentities orders c.idents by number, and the indexes into it
// (podIdent, each namespace's), so that what the compiler derives from
// them does not depend on the order of the pods.
func (c *compiler) sortIdentities(podIdent []int32) {
	old := slices.Clone(c.idents)
	slices.SortFunc(c.idents, func(a, b *identity) int { return cmp.Compare(a.id, b.id) })
	for x, in := range c.idents {
		c.index[in] = int32(x)
	}
	for i, x := range podIdent {
		podIdent[i] = c.index[old[x]]
	}
	for _, ns := range c.nss {
		for i, x := range ns.idents {
			ns.idents[i] = c.index[old[x]]
		}
		slices.Sort(ns.idents)
	}
}

// sortedNamespaces returns the namespaces by name.
func (c *compiler) sortedNamespaces() []*namespace {
	if c.nsSorted == nil {
		for _, ns := range c.nss {
			c.nsSorted = append(c.nsSorted, ns)
		}
		slices.SortFunc(c.nsSorted, func(a, b *namespace) int { return strings.Compare(a.name, b.name) })
	}
	return c.nsSorted
}

// pods returns the pods of the namespaces nss (named scope, for the memo)
// that sel (nil: every pod) selects.
func (c *compiler) pods(scope string, nss []*namespace, sel *selector) *podSet {
	key := scope + "\x00*"
	if sel != nil {
		key = scope + "\x00" + sel.key
	}
	if s, ok := c.podSets[key]; ok {
		return s
	}
	s := &podSet{}
	for _, ns := range nss {
		for _, x := range ns.idents {
			if sel == nil || sel.matches(c.idents[x].labels) {
				s.idx = append(s.idx, x)
				s.ids = append(s.ids, c.idents[x].id)
			}
		}
	}
	c.podSets[key] = s
	return s
}

// peerPods returns the pods a selector peer of a policy in namespace ns
// picks.
func (c *compiler) peerPods(ns *namespace, pe *parsedPeer) *podSet {
	if pe.nss == nil {
		return c.pods("n"+ns.name, []*namespace{ns}, pe.pods)
	}
	nss, ok := c.nsSets[pe.nss.key]
	if !ok {
		for _, n := range c.sortedNamespaces() {
			if pe.nss.matches(n.labels) {
				nss = append(nss, n)
			}
		}
		c.nsSets[pe.nss.key] = nss
	}
	return c.pods("s"+pe.nss.key, nss, pe.pods)
}

// policy compiles one NetworkPolicy into c.out.
func (c *compiler) policy(pp *parsedPolicy) {
	ns := c.namespace(pp.ns, nil)
	sel := c.pods("n"+ns.name, []*namespace{ns}, &pp.podSel)
	if len(sel.idx) == 0 {
		return // selects nothing: no effect
	}
	c.parsed[pp.name] = pp
	var types []policy.Direction
	for d, on := range pp.types {
		if on {
			types = append(types, policy.Direction(d))
		}
	}
	if pp.bad {
		c.emit(policy.Policy{Name: pp.name, Selected: sel.ids, Types: types}, compiledRules{}, compiledRules{})
		return
	}

	var egress compiledRules
	for i := range pp.rules[policy.Egress] {
		n := len(egress.rules)
		egress.rules = c.egressRules(egress.rules, ns, &pp.rules[policy.Egress][i])
		egress.note(n, i)
	}
	ingress := pp.rules[policy.Ingress]
	peers := make([][]policy.Peer, len(ingress))
	var names []portName // the ingress rules' named ports
	for i := range ingress {
		r := &ingress[i]
		var none bool
		if peers[i], none = c.peers(ns, r); none {
			continue // no peer: ingressRule drops it
		}
		for _, n := range r.named {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	// ingressRules compiles the ingress rules for the local pods of
	// identity local (nil when they have no named ports).
	ingressRules := func(local *identity) compiledRules {
		var out compiledRules
		for i := range ingress {
			n := len(out.rules)
			out.rules = ingressRule(out.rules, &ingress[i], peers[i], local)
			out.note(n, i)
		}
		return out
	}
	if len(names) == 0 {
		c.emit(policy.Policy{Name: pp.name, Selected: sel.ids, Types: types}, ingressRules(nil), egress)
		return
	}

	// Named ports in ingress rules resolve against each selected pod's own
	// ports: one policy per set of selected pods for which they resolve
	// alike, and the egress part (if any) on its own for all of them.
	if pp.types[policy.Egress] {
		c.emit(policy.Policy{Name: pp.name, Selected: sel.ids, Types: []policy.Direction{policy.Egress}}, compiledRules{}, egress)
	}
	type group struct {
		local *identity
		ids   []uint32
	}
	var groups []*group
	bySig := map[string]*group{}
	var sig []byte
	for _, x := range sel.idx {
		in := c.idents[x]
		sig = sig[:0]
		for _, n := range names {
			for port := range in.numbers(n) {
				sig = append(sig, byte(port>>8), byte(port))
			}
			sig = append(sig, '|')
		}
		g, ok := bySig[string(sig)]
		if !ok {
			g = &group{local: in}
			bySig[string(sig)] = g
			groups = append(groups, g)
		}
		g.ids = append(g.ids, in.id)
	}
	for _, g := range groups {
		c.emit(policy.Policy{Name: pp.name, Selected: g.ids, Types: []policy.Direction{policy.Ingress}}, ingressRules(g.local), compiledRules{})
	}
}

// peers resolves a rule's peers. none reports a rule whose peers select
// nothing (so the rule allows nothing); peers is nil for every peer.
func (c *compiler) peers(ns *namespace, r *parsedRule) (peers []policy.Peer, none bool) {
	if r.anyPeer {
		return nil, false
	}
	for i := range r.peers {
		pe := &r.peers[i]
		if pe.block {
			peers = append(peers, policy.Peer{CIDR: pe.cidr, Except: pe.except})
			continue
		}
		s := c.peerPods(ns, pe)
		pe.picked = s.ids
		if len(s.ids) > 0 {
			peers = append(peers, policy.Peer{Identities: s.ids})
		}
	}
	return peers, len(peers) == 0
}

// ingressRule appends the compiled r, whose resolved peers are peers, for
// the local pods of identity local (whose ports its named ports resolve
// against; nil when r's policy has none).
func ingressRule(out []policy.Rule, r *parsedRule, peers []policy.Peer, local *identity) []policy.Rule {
	switch {
	case !r.anyPeer && peers == nil:
		return out // no peer
	case r.anyPort:
		return append(out, policy.Rule{Peers: peers})
	}
	ports := r.ports
	if len(r.named) > 0 {
		ports = slices.Clip(ports)
		for _, n := range r.named {
			for port := range local.numbers(n) {
				ports = append(ports, policy.Port{Proto: n.proto, Port: port})
			}
		}
	}
	if len(ports) == 0 {
		return out // only named ports, none of which the pod has
	}
	return append(out, policy.Rule{Peers: peers, Ports: ports})
}

// egressRules appends the compiled r. Its named ports resolve against each
// destination pod: the rule becomes one rule for its numeric ports and
// every peer, and one per set of destination pods for which the names
// resolve alike. A destination that is not a pod (an ipBlock, or any
// address for a rule without peers) has no named ports, so named ports
// never match it.
func (c *compiler) egressRules(out []policy.Rule, ns *namespace, r *parsedRule) []policy.Rule {
	peers, none := c.peers(ns, r)
	switch {
	case none:
		return out
	case r.anyPort:
		return append(out, policy.Rule{Peers: peers})
	}
	if len(r.ports) > 0 {
		out = append(out, policy.Rule{Peers: peers, Ports: r.ports})
	}
	if len(r.named) == 0 {
		return out
	}

	// The destination pods in scope: every pod for a rule without peers,
	// else the pods its selector peers pick.
	var marked []int32
	if !r.anyPeer {
		for i := range r.peers {
			if pe := &r.peers[i]; !pe.block {
				for _, x := range c.peerPods(ns, pe).idx {
					if !c.marks[x] {
						c.marks[x] = true
						marked = append(marked, x)
					}
				}
			}
		}
	}
	type resolved struct {
		ident int32
		port  policy.Port
	}
	var rs []resolved
	for _, n := range r.named {
		for _, h := range c.named[n] {
			if r.anyPeer || c.marks[h.ident] {
				rs = append(rs, resolved{h.ident, policy.Port{Proto: n.proto, Port: h.port}})
			}
		}
	}
	for _, x := range marked {
		c.marks[x] = false
	}
	slices.SortFunc(rs, func(a, b resolved) int {
		if c := cmp.Compare(a.ident, b.ident); c != 0 {
			return c
		}
		if c := cmp.Compare(a.port.Proto, b.port.Proto); c != 0 {
			return c
		}
		return cmp.Compare(a.port.Port, b.port.Port)
	})
	rs = slices.Compact(rs)

	// Group the pods by the ports they resolve to.
	bySig := map[string]int{} // to index in out
	var sig []byte
	for i := 0; i < len(rs); {
		x := rs[i].ident
		j := i
		sig = sig[:0]
		for ; j < len(rs) && rs[j].ident == x; j++ {
			sig = append(sig, rs[j].port.Proto, byte(rs[j].port.Port>>8), byte(rs[j].port.Port))
		}
		k, ok := bySig[string(sig)]
		if !ok {
			k = len(out)
			bySig[string(sig)] = k
			ports := make([]policy.Port, 0, j-i)
			for _, e := range rs[i:j] {
				ports = append(ports, e.port)
			}
			out = append(out, policy.Rule{Peers: []policy.Peer{{}}, Ports: ports})
		}
		out[k].Peers[0].Identities = append(out[k].Peers[0].Identities, c.idents[x].id)
		i = j
	}
	return out
}
