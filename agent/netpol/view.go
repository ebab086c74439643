package netpol

// The view: what a compiled policy lets one pod do and why, and whether
// it allows one connection and by which rule, for ringnet policy.
//
// Nothing here decides anew. Whether a pod is isolated and whether a
// packet passes come from the compiled table (Compiled.Table), looked up
// as the fast path looks it up; which rule allows it comes from running
// the same table code over each compiled rule alone, and naming the
// NetworkPolicy rule Compile recorded it comes from. What a rule's peers
// match is what Compile resolved them to. So the answers cannot drift from
// enforcement. None of it is on the fast path.

import (
	"cmp"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/tables/policy"
)

// View answers questions about one compiled policy. Make one with
// NewView; it is read-only after, safe for use by many goroutines, and
// keeps its Compiled (which is read-only too).
type View struct {
	c       *Compiled
	addrs   map[PodRef][]netip.Addr // every known pod, with the addresses ByIP gives it
	owner   map[netip.Addr]podID    // every pod address to its pod
	members map[uint32][]PodRef     // identity to its pods, by namespace and name
}

// podID is a pod and its identity.
type podID struct {
	ref PodRef
	id  uint32
}

// NewView returns the view of c, which Compile made from pods (and
// namespaces and policies). It keeps nothing of pods.
func NewView(c *Compiled, pods []Pod) *View {
	v := &View{c: c, addrs: make(map[PodRef][]netip.Addr, len(pods)),
		owner: make(map[netip.Addr]podID, len(c.ByIP)), members: make(map[uint32][]PodRef, len(c.idents))}
	// In namespace/name order, as Compile gives an address two pods claim
	// to the first, and a pod given twice is the first one given.
	order := make([]*Pod, len(pods))
	for i := range pods {
		order[i] = &pods[i]
	}
	slices.SortStableFunc(order, func(a, b *Pod) int {
		return cmpRef(PodRef{a.Namespace, a.Name}, PodRef{b.Namespace, b.Name})
	})
	for _, p := range order {
		ref := PodRef{p.Namespace, p.Name}
		id, ok := c.Identity[ref]
		if _, seen := v.addrs[ref]; seen || !ok {
			continue
		}
		addrs := []netip.Addr{}
		for _, a := range p.IPs {
			a = a.Unmap()
			if _, taken := v.owner[a]; !taken && c.ByIP[a] == id {
				v.owner[a] = podID{ref, id}
				addrs = append(addrs, a)
			}
		}
		v.addrs[ref] = addrs
		v.members[id] = append(v.members[id], ref)
	}
	return v
}

// PodAt returns the pod that address a is of, and its identity; false
// for an address of no pod the policy knows.
func (v *View) PodAt(a netip.Addr) (PodRef, uint32, bool) {
	p, ok := v.owner[a.Unmap()]
	return p.ref, p.id, ok
}

// Addrs returns pod ref's addresses; false for no pod the policy knows.
func (v *View) Addrs(ref PodRef) ([]netip.Addr, bool) {
	a, ok := v.addrs[ref]
	return a, ok
}

// Endpoint is what policy lets one pod do, and why.
type Endpoint struct {
	Pod       PodRef
	Identity  uint32
	IPs       []netip.Addr
	Labels    map[string]string
	Namespace map[string]string // its namespace's labels, LabelMetadataName included
	Ports     []NamedPort       // its named ports
	// Ways are its ingress and egress, by policy.Direction.
	Ways [2]Way
	// Problems are the compiler's with the NetworkPolicies isolating it.
	Problems []error
}

// Way is one direction of a pod's policy.
type Way struct {
	// IsolatedBy are the NetworkPolicies (namespace/name, in that order)
	// that select the pod this way. None: the pod is not isolated, all
	// traffic is allowed; some: only what one of Rules allows is.
	IsolatedBy []string
	// Rules are every rule of those policies this way: none, nothing is
	// allowed. A policy compiled with no rules for a problem has none.
	Rules []ResolvedRule
}

// ResolvedRule is a rule of a NetworkPolicy as it resolves now, for one pod.
type ResolvedRule struct {
	Policy string // namespace/name
	Index  int    // in spec.ingress or spec.egress
	// Peers are its from (ingress) or to (egress) peers; none: every
	// peer, pods and addresses outside the cluster.
	Peers []PeerMatch
	// Ports are its ports, numeric first; none: every protocol and port.
	Ports []PortMatch
}

// PeerMatch is a rule's peer and the pods it matches.
type PeerMatch struct {
	// Selector describes a peer by pods and namespaces, such as "pods
	// app=web in namespace shop"; empty for an ipBlock.
	Selector string
	Pods     []PodRef // the pods the selector matches, by namespace and name
	// Block and Except are an ipBlock's.
	Block  netip.Prefix
	Except []netip.Prefix
}

// PortMatch is a rule's port: a number or a range, every port of a
// protocol, or a named port with what it resolves to.
type PortMatch struct {
	Proto         uint8
	Port, EndPort uint16 // Port 0 (without Name): every port of Proto
	Name          string // a named port
	// Resolved are the numbers a named port has: on the pod itself for
	// ingress (no Pods), on each destination pod for egress. None: no pod
	// has it, so it allows nothing.
	Resolved []Resolved
}

// Resolved is a number a named port has, and the pods it has it on.
type Resolved struct {
	Port uint16
	Pods []PodRef
}

// ErrNoPod is the error of a question about a pod the policy does not know.
var ErrNoPod = errors.New("no pod NetworkPolicy knows")

// Endpoint explains what policy lets pod ref do: ErrNoPod for a pod it
// does not know.
func (v *View) Endpoint(ref PodRef) (*Endpoint, error) {
	id, ok := v.c.Identity[ref]
	if !ok {
		return nil, ErrNoPod
	}
	in := v.identity(id)
	e := &Endpoint{Pod: ref, Identity: id, IPs: v.addrs[ref], Labels: in.labels, Namespace: in.ns.labels, Ports: in.ports}
	for d := range e.Ways {
		dir := policy.Direction(d)
		w := &e.Ways[d]
		w.IsolatedBy, _ = v.isolating(id, dir)
		for _, name := range w.IsolatedBy {
			pp := v.c.parsed[name]
			for k := range pp.rules[d] {
				w.Rules = append(w.Rules, v.rule(pp, dir, k, in))
			}
		}
	}
	e.Problems = v.problems(slices.Concat(e.Ways[0].IsolatedBy, e.Ways[1].IsolatedBy))
	return e, nil
}

// identity returns the identity numbered id, which must exist.
func (v *View) identity(id uint32) *identity {
	i, _ := slices.BinarySearchFunc(v.c.idents, id, func(in *identity, id uint32) int { return cmp.Compare(in.id, id) })
	return v.c.idents[i]
}

// isolating returns the NetworkPolicies that select identity id for d,
// by namespace and name, and the compiled policies (indexes into
// Compiled.Policies) that do: named ports split one NetworkPolicy.
func (v *View) isolating(id uint32, d policy.Direction) (names []string, compiled []int) {
	if !v.c.Table.Selects(id, d) {
		return nil, nil
	}
	for i := range v.c.Policies {
		p := &v.c.Policies[i]
		if !slices.Contains(p.Types, d) || !slices.Contains(p.Selected, id) {
			continue
		}
		compiled = append(compiled, i)
		if len(names) == 0 || names[len(names)-1] != p.Name { // a NetworkPolicy's are adjacent
			names = append(names, p.Name)
		}
	}
	return names, compiled
}

// problems returns the compiler's problems with the NetworkPolicies
// named.
func (v *View) problems(names []string) []error {
	var out []error
	for _, err := range v.c.Problems {
		var pe *PolicyError
		if errors.As(err, &pe) && slices.Contains(names, pe.Policy) {
			out = append(out, err)
		}
	}
	return out
}

// rule resolves rule k of pp's rules for d, for a pod of identity local.
func (v *View) rule(pp *parsedPolicy, d policy.Direction, k int, local *identity) ResolvedRule {
	r := &pp.rules[d][k]
	out := ResolvedRule{Policy: pp.name, Index: k}
	for i := range r.peers {
		pe := &r.peers[i]
		if pe.block {
			out.Peers = append(out.Peers, PeerMatch{Block: pe.cidr, Except: pe.except})
			continue
		}
		out.Peers = append(out.Peers, PeerMatch{Selector: pe.describe(pp.ns), Pods: v.pods(pe.picked)})
	}
	for _, p := range r.ports {
		out.Ports = append(out.Ports, PortMatch{Proto: p.Proto, Port: p.Port, EndPort: p.EndPort})
	}
	for _, n := range r.named {
		pm := PortMatch{Proto: n.proto, Name: n.name}
		if d == policy.Ingress {
			for port := range local.numbers(n) {
				pm.Resolved = append(pm.Resolved, Resolved{Port: port})
			}
		} else {
			pm.Resolved = v.destinations(r, n)
		}
		out.Ports = append(out.Ports, pm)
	}
	return out
}

// pods returns the pods of identities ids, by namespace and name.
func (v *View) pods(ids []uint32) []PodRef {
	var out []PodRef
	for _, id := range ids {
		out = append(out, v.members[id]...)
	}
	slices.SortFunc(out, cmpRef)
	return out
}

// destinations resolves egress rule r's named port n on each destination
// pod, as Compile does: every pod for a rule without peers, else those its
// selector peers pick; an ipBlock peer has no named ports.
func (v *View) destinations(r *parsedRule, n portName) []Resolved {
	var ids []uint32
	if r.anyPeer {
		for _, in := range v.c.idents {
			ids = append(ids, in.id)
		}
	}
	for i := range r.peers {
		ids = append(ids, r.peers[i].picked...)
	}
	slices.Sort(ids)
	byPort := map[uint16][]uint32{}
	for _, id := range slices.Compact(ids) {
		for port := range v.identity(id).numbers(n) {
			byPort[port] = append(byPort[port], id)
		}
	}
	var out []Resolved
	for _, port := range slices.Sorted(maps.Keys(byPort)) {
		out = append(out, Resolved{Port: port, Pods: v.pods(byPort[port])})
	}
	return out
}

// describe says which pods a selector peer of a policy in namespace ns
// picks, such as "pods app=web in namespace shop".
func (pe *parsedPeer) describe(ns string) string {
	pods := "all pods"
	if pe.pods != nil && !pe.pods.empty() {
		pods = "pods " + pe.pods.String()
	}
	switch {
	case pe.nss == nil:
		return pods + " in namespace " + ns
	case pe.nss.empty():
		return pods + " in all namespaces"
	}
	return pods + " in namespaces " + pe.nss.String()
}

// empty reports whether s selects everything.
func (s *selector) empty() bool { return len(s.labels) == 0 && len(s.exprs) == 0 }

// String writes s as kubectl does: key=value, key in (a,b), key notin
// (a,b), key, !key; joined by commas.
func (s *selector) String() string {
	var parts []string
	for _, l := range s.labels {
		parts = append(parts, l.k+"="+l.v)
	}
	for _, r := range s.exprs {
		switch r.Operator {
		case OpIn:
			parts = append(parts, r.Key+" in ("+strings.Join(r.Values, ",")+")")
		case OpNotIn:
			parts = append(parts, r.Key+" notin ("+strings.Join(r.Values, ",")+")")
		case OpExists:
			parts = append(parts, r.Key)
		case OpDoesNotExist:
			parts = append(parts, "!"+r.Key)
		}
	}
	return strings.Join(parts, ",")
}

// Connection is policy's verdict on a connection, and why.
type Connection struct {
	Src, Dst       netip.Addr
	SrcPod, DstPod PodRef // zero: the address is no pod's the policy knows
	// Proto and Port are the connection's first packet's IP protocol and
	// destination port; Proto 0 asks about any traffic.
	Proto uint8
	Port  uint16
	// Ways are the source pod's egress and the destination pod's
	// ingress, by policy.Direction; each is decided on its pod's node.
	Ways [2]WayCheck
}

// Allowed reports whether both ways allow the connection (without a
// protocol: some traffic).
func (c *Connection) Allowed() bool {
	return c.Ways[policy.Ingress].Allowed() && c.Ways[policy.Egress].Allowed()
}

// WayCheck is one way's verdict on a connection.
type WayCheck struct {
	// Checked: the pod this way (the source for egress, the destination
	// for ingress) is one the policy knows; otherwise nothing checks it.
	Checked bool
	// Verdict is the table's, Unselected when no policy isolates the pod
	// this way. Without a protocol: Allow when some rule's peers include
	// the other side, else Deny.
	Verdict    policy.Verdict
	IsolatedBy []string // as Way's
	// Rules are every rule of the isolating policies this way.
	Rules []RuleCheck
}

// Allowed reports whether the way lets the connection through.
func (w *WayCheck) Allowed() bool { return !w.Checked || w.Verdict.Allowed() }

// RuleCheck is what one NetworkPolicy rule says of a connection.
type RuleCheck struct {
	Policy string // namespace/name
	Index  int    // in spec.ingress or spec.egress
	// Peer: its peers include the other side.
	Peer bool
	// Allows: its peers and its ports match (without a protocol: its
	// peers).
	Allows bool
	// AnyPort and Ports, when Peer, are what the rule allows the other
	// side, named ports resolved: every protocol and port, or these.
	AnyPort bool
	Ports   []policy.Port
}

// Check explains policy's verdict on a connection from src to dst whose
// first packet has IP protocol proto and destination port port; proto 0
// asks which rules allow any traffic between them, and on what ports.
func (v *View) Check(src, dst netip.Addr, proto uint8, port uint16) *Connection {
	src, dst = src.Unmap(), dst.Unmap()
	c := &Connection{Src: src, Dst: dst, Proto: proto, Port: port}
	c.SrcPod, c.DstPod = v.owner[src].ref, v.owner[dst].ref
	// As the fast path: identities from ByIP, which Compiled gives it.
	sid, did := v.c.ByIP[src], v.c.ByIP[dst]
	c.Ways[policy.Egress] = v.check(policy.Key{Local: sid, Peer: did, Port: port, Proto: proto, Dir: policy.Egress}, dst)
	c.Ways[policy.Ingress] = v.check(policy.Key{Local: did, Peer: sid, Port: port, Proto: proto, Dir: policy.Ingress}, src)
	return c
}

// check decides one way of a connection, k as the fast path makes it but
// for PeerCIDR, from peer, the other side's address.
func (v *View) check(k policy.Key, peer netip.Addr) WayCheck {
	if k.Local == 0 {
		return WayCheck{}
	}
	w := WayCheck{Checked: true, Verdict: policy.Unselected}
	names, compiled := v.isolating(k.Local, k.Dir)
	if len(names) == 0 {
		return w
	}
	w.IsolatedBy = names
	for _, name := range names {
		for i := range v.c.parsed[name].rules[k.Dir] {
			w.Rules = append(w.Rules, RuleCheck{Policy: name, Index: i})
		}
	}
	k.PeerCIDR = v.c.Table.CIDR(peer)
	for _, i := range compiled {
		p := &v.c.Policies[i]
		rules := p.Ingress
		if k.Dir == policy.Egress {
			rules = p.Egress
		}
		for j, r := range rules {
			rc := &w.Rules[slices.IndexFunc(w.Rules, func(rc RuleCheck) bool {
				return rc.Policy == p.Name && rc.Index == v.c.origins[i][k.Dir][j]
			})]
			if !ruleAllows(policy.Rule{Peers: r.Peers}, k, peer) {
				continue
			}
			rc.Peer = true
			rc.AnyPort = rc.AnyPort || len(r.Ports) == 0
			rc.Ports = append(rc.Ports, r.Ports...)
			rc.Allows = rc.Allows || k.Proto == 0 || ruleAllows(r, k, peer)
		}
	}
	w.Verdict = policy.Deny
	for i := range w.Rules {
		rc := &w.Rules[i]
		if rc.AnyPort {
			rc.Ports = nil
		}
		if rc.Allows && k.Proto == 0 {
			w.Verdict = policy.Allow
		}
	}
	if k.Proto != 0 {
		w.Verdict = v.c.Table.Verdict(k)
	}
	return w
}

// ruleAllows reports whether rule r alone allows the packet k from or to
// the address peer: it builds the table of r and looks k up in it, with
// the code and in the way the fast path's table is built and read.
func ruleAllows(r policy.Rule, k policy.Key, peer netip.Addr) bool {
	p := policy.Policy{Selected: []uint32{k.Local}, Types: []policy.Direction{k.Dir}}
	if k.Dir == policy.Ingress {
		p.Ingress = []policy.Rule{r}
	} else {
		p.Egress = []policy.Rule{r}
	}
	t, err := policy.Build(0, []policy.Policy{p})
	if err != nil {
		return false // r is a rule of a table that was built
	}
	k.PeerCIDR = t.CIDR(peer)
	return t.Verdict(k) == policy.Allow
}
