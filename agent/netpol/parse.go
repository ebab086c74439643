package netpol

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/tables/policy"
)

// PolicyError is a problem with one NetworkPolicy. The compiler reports it
// in Compiled.Problems and compiles the other policies; what becomes of
// this one depends on where the problem is (see the package
// documentation): a bad podSelector leaves the policy out, anything else
// keeps it selecting its pods, isolated, with none of its rules.
type PolicyError struct {
	Policy  string // namespace/name
	Field   string // such as spec.ingress[0].from[1].ipBlock.cidr
	Msg     string // what is wrong
	LeftOut bool   // true: the policy selects no pods; false: it isolates them and allows nothing
}

func (e *PolicyError) Error() string {
	effect := "its pods are isolated and none of its rules apply until it is fixed"
	if e.LeftOut {
		effect = "it is left out and selects no pods until it is fixed"
	}
	return fmt.Sprintf("networkpolicy %s: %s: %s; %s", e.Policy, e.Field, e.Msg, effect)
}

// Check reports what is wrong with np, each problem as Compile would
// report it, without compiling: a source that no API server validates
// first, such as the cluster file, refuses the policy instead. nil: Compile
// takes np as given.
func Check(np *NetworkPolicy) []*PolicyError {
	_, errs := parse(np)
	out := make([]*PolicyError, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.(*PolicyError)) // parser.fail makes every one
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// parsedPolicy is a validated NetworkPolicy.
type parsedPolicy struct {
	name   string // namespace/name
	ns     string
	podSel selector
	types  [2]bool         // by policy.Direction
	rules  [2][]parsedRule // by policy.Direction; nil when bad
	bad    bool            // a rule is invalid: isolate, allow nothing
}

// parsedRule is one validated rule.
type parsedRule struct {
	anyPeer bool // no peers: every peer
	peers   []parsedPeer
	anyPort bool          // no ports: every protocol and port
	ports   []policy.Port // the numeric ports
	named   []portName    // the named ports
}

// parsedPeer is a validated peer: an ipBlock, or pods by selectors.
type parsedPeer struct {
	block  bool
	cidr   netip.Prefix
	except []netip.Prefix
	pods   *selector // nil: every pod of the namespaces in scope
	nss    *selector // nil: only the policy's namespace
	picked []uint32  // the identities the selectors pick; Compile sets it
}

// portName is a named port with its protocol.
type portName struct {
	name  string
	proto uint8
}

// parser collects the problems of one policy.
type parser struct {
	name string
	errs []error
}

func (p *parser) fail(leftOut bool, field, format string, args ...any) {
	p.errs = append(p.errs, &PolicyError{Policy: p.name, Field: field, Msg: fmt.Sprintf(format, args...), LeftOut: leftOut})
}

// parse validates np. It returns nil when the policy must be left out
// (its podSelector is bad); otherwise a policy whose bad field marks it
// isolation-only. errs are its problems either way.
func parse(np *NetworkPolicy) (_ *parsedPolicy, errs []error) {
	p := parser{name: np.Namespace + "/" + np.Name}
	sel, ok := p.selector(&np.PodSelector, "spec.podSelector", true)
	if !ok {
		return nil, p.errs
	}
	pp := &parsedPolicy{name: p.name, ns: np.Namespace, podSel: sel}

	if len(np.PolicyTypes) == 0 {
		pp.types[policy.Ingress] = true
		pp.types[policy.Egress] = len(np.Egress) > 0
	}
	for i, t := range np.PolicyTypes {
		switch t {
		case PolicyTypeIngress:
			pp.types[policy.Ingress] = true
		case PolicyTypeEgress:
			pp.types[policy.Egress] = true
		default:
			// Fail closed: isolate both ways rather than guess.
			p.fail(false, fmt.Sprintf("spec.policyTypes[%d]", i), "%q is neither %s nor %s", t, PolicyTypeIngress, PolicyTypeEgress)
			pp.types = [2]bool{true, true}
		}
	}

	// Every rule is checked, whether or not its direction applies: the API
	// server validates them all, and so problems are reported alike.
	for d, rules := range [2][]Rule{np.Ingress, np.Egress} {
		field, peers := "spec.ingress", "from"
		if policy.Direction(d) == policy.Egress {
			field, peers = "spec.egress", "to"
		}
		out := make([]parsedRule, 0, len(rules))
		for i := range rules {
			out = append(out, p.rule(&rules[i], fmt.Sprintf("%s[%d]", field, i), peers))
		}
		if pp.types[d] {
			pp.rules[d] = out
		}
	}
	if len(p.errs) > 0 {
		pp.bad = true
		pp.rules = [2][]parsedRule{}
	}
	return pp, p.errs
}

func (p *parser) rule(r *Rule, field, peers string) parsedRule {
	var pr parsedRule
	pr.anyPeer = len(r.Peers) == 0
	for i := range r.Peers {
		if pe, ok := p.peer(&r.Peers[i], fmt.Sprintf("%s.%s[%d]", field, peers, i)); ok {
			pr.peers = append(pr.peers, pe)
		}
	}
	pr.anyPort = len(r.Ports) == 0
	for i := range r.Ports {
		po := &r.Ports[i]
		f := fmt.Sprintf("%s.ports[%d]", field, i)
		proto, ok := ProtocolNumber(po.Protocol)
		if !ok {
			p.fail(false, f+".protocol", "%q is not %s, %s or %s", po.Protocol, ProtocolTCP, ProtocolUDP, ProtocolSCTP)
			continue
		}
		switch {
		case po.Port == nil:
			if po.EndPort != 0 {
				p.fail(false, f+".endPort", "endPort %d without a port; give port, the first of the range, or remove endPort", po.EndPort)
				continue
			}
			pr.ports = append(pr.ports, policy.Port{Proto: proto})
		case po.Port.Name != "" && po.Port.Num != 0:
			p.fail(false, f+".port", "both a number (%d) and a name (%q)", po.Port.Num, po.Port.Name)
		case po.Port.Name != "":
			switch {
			case !ValidPortName(po.Port.Name):
				p.fail(false, f+".port", "%q is neither a port number (1-65535) nor a port name (up to 15 lowercase letters, digits and single inner hyphens, with a letter)", po.Port.Name)
			case po.EndPort != 0:
				p.fail(false, f+".endPort", "endPort %d with the named port %q; endPort needs a numeric port", po.EndPort, po.Port.Name)
			default:
				pr.named = append(pr.named, portName{po.Port.Name, proto})
			}
		case po.Port.Num == 0:
			p.fail(false, f+".port", "neither a port number (1-65535) nor a port name")
		case po.EndPort != 0 && po.EndPort < po.Port.Num:
			p.fail(false, f+".endPort", "endPort %d is below port %d; give the last port of the range, at least port", po.EndPort, po.Port.Num)
		default:
			pr.ports = append(pr.ports, policy.Port{Proto: proto, Port: po.Port.Num, EndPort: po.EndPort})
		}
	}
	return pr
}

func (p *parser) peer(pe *Peer, field string) (parsedPeer, bool) {
	switch {
	case pe.IPBlock != nil && (pe.PodSelector != nil || pe.NamespaceSelector != nil):
		p.fail(false, field, "ipBlock cannot go with podSelector or namespaceSelector; make it a peer of its own")
		return parsedPeer{}, false
	case pe.IPBlock != nil:
		return p.block(pe.IPBlock, field+".ipBlock")
	case pe.PodSelector == nil && pe.NamespaceSelector == nil:
		p.fail(false, field, "a peer needs a podSelector, a namespaceSelector or an ipBlock")
		return parsedPeer{}, false
	}
	var out parsedPeer
	ok := true
	if pe.PodSelector != nil {
		s, good := p.selector(pe.PodSelector, field+".podSelector", false)
		out.pods, ok = &s, good
	}
	if pe.NamespaceSelector != nil {
		s, good := p.selector(pe.NamespaceSelector, field+".namespaceSelector", false)
		out.nss, ok = &s, ok && good
	}
	return out, ok
}

func (p *parser) block(b *IPBlock, field string) (parsedPeer, bool) {
	c, err := netip.ParsePrefix(b.CIDR)
	switch {
	case err != nil:
		p.fail(false, field+".cidr", "%q is not a CIDR such as 10.0.0.0/16 or fd00::/64", b.CIDR)
		return parsedPeer{}, false
	case c.Addr().Is4In6():
		p.fail(false, field+".cidr", "%q is an IPv4-mapped IPv6 block; write it as IPv4", b.CIDR)
		return parsedPeer{}, false
	}
	out := parsedPeer{block: true, cidr: c.Masked()}
	ok := true
	for i, s := range b.Except {
		e, err := netip.ParsePrefix(s)
		f := fmt.Sprintf("%s.except[%d]", field, i)
		switch {
		case err != nil:
			p.fail(false, f, "%q is not a CIDR such as 10.0.1.0/24", s)
			ok = false
		case e.Addr().Is4() != c.Addr().Is4() || e.Bits() <= c.Bits() || !out.cidr.Contains(e.Addr()):
			p.fail(false, f, "%q is not strictly inside cidr %s; each except is a part of cidr, with a longer prefix", s, b.CIDR)
			ok = false
		default:
			out.except = append(out.except, e.Masked())
		}
	}
	return out, ok
}

// selector validates s as the API server does (operators and their
// values); leftOut says what a problem does to the policy.
func (p *parser) selector(s *LabelSelector, field string, leftOut bool) (selector, bool) {
	ok := true
	var out selector
	for k, v := range s.MatchLabels {
		if k == "" {
			p.fail(leftOut, field+".matchLabels", "empty key")
			ok = false
		}
		out.labels = append(out.labels, labelPair{k, v})
	}
	slices.SortFunc(out.labels, func(a, b labelPair) int { return strings.Compare(a.k, b.k) })
	for i, r := range s.MatchExpressions {
		f := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		switch {
		case r.Key == "":
			p.fail(leftOut, f+".key", "empty key")
			ok = false
			continue
		case r.Operator != OpIn && r.Operator != OpNotIn && r.Operator != OpExists && r.Operator != OpDoesNotExist:
			p.fail(leftOut, f+".operator", "unknown operator %q; use %s, %s, %s or %s", r.Operator, OpIn, OpNotIn, OpExists, OpDoesNotExist)
			ok = false
			continue
		case (r.Operator == OpIn || r.Operator == OpNotIn) && len(r.Values) == 0:
			p.fail(leftOut, f+".values", "operator %s needs values; list them, or use %s or %s", r.Operator, OpExists, OpDoesNotExist)
			ok = false
			continue
		case (r.Operator == OpExists || r.Operator == OpDoesNotExist) && len(r.Values) > 0:
			p.fail(leftOut, f+".values", "operator %s takes no values; remove values", r.Operator)
			ok = false
			continue
		}
		vs := slices.Clone(r.Values)
		slices.Sort(vs)
		out.exprs = append(out.exprs, Requirement{Key: r.Key, Operator: r.Operator, Values: slices.Compact(vs)})
	}
	out.key = selectorKey(&out)
	return out, ok
}

// selectorKey is a canonical text of s: equal selectors, equal keys.
func selectorKey(s *selector) string {
	var b []byte
	str := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	for _, l := range s.labels {
		str(l.k)
		str(l.v)
	}
	b = append(b, '|')
	exprs := slices.Clone(s.exprs)
	slices.SortFunc(exprs, func(a, b Requirement) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := strings.Compare(a.Operator, b.Operator); c != 0 {
			return c
		}
		return slices.Compare(a.Values, b.Values)
	})
	for _, r := range exprs {
		str(r.Key)
		str(r.Operator)
		b = strconv.AppendInt(b, int64(len(r.Values)), 10)
		for _, v := range r.Values {
			str(v)
		}
	}
	return string(b)
}
