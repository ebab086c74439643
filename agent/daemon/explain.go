package daemon

// ringnet policy POD and ringnet policy --from --to: what the published
// NetworkPolicy lets one pod do, rule by rule, and whether it allows one
// connection, as agent/netpol's View explains them (from the compiled
// table itself), in the API's terms.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/tables/policy"
)

// PolicyEndpoint implements api.Handler: what the published policy lets
// one pod do, and why.
func (d *Daemon) PolicyEndpoint(_ context.Context, pod string) (api.EndpointPolicy, error) {
	st, err := d.published()
	if err != nil {
		return api.EndpointPolicy{}, err
	}
	return endpointPolicy(st, d.dp.Endpoints(), pod)
}

// PolicyCheck implements api.Handler: whether the published policy
// allows a connection, and why.
func (d *Daemon) PolicyCheck(_ context.Context, r api.PolicyCheckRequest) (api.PolicyVerdict, error) {
	st, err := d.published()
	if err != nil {
		return api.PolicyVerdict{}, err
	}
	return policyCheck(st, d.dp.Endpoints(), r)
}

// published returns the published policy, or an error that says why
// there is none and where ringnetd takes policies from.
func (d *Daemon) published() (*policyState, error) {
	const none = "ringnetd enforces no NetworkPolicy, so every pod may reach and be reached by anything: "
	if d.policies == nil {
		return nil, &api.Error{Code: api.CodeNotFound, Message: none + "it runs without --cluster and --kubernetes, where policies come from"}
	}
	st := d.policies.cur.Load()
	if st == nil {
		return nil, &api.Error{Code: api.CodeNotFound, Message: none + "its cluster file (--cluster) lists no policies, or with --kubernetes the first compile has not finished"}
	}
	return st, nil
}

// endpointPolicy explains pod (as api.Client.PolicyEndpoint names it)
// under st on a node whose endpoint table is eps.
func endpointPolicy(st *policyState, eps []pipeline.EndpointInfo, pod string) (api.EndpointPolicy, error) {
	ref, addrs, err := st.lookup(pod)
	if err != nil {
		return api.EndpointPolicy{}, err
	}
	e, err := st.view.Endpoint(ref)
	if err != nil { // ErrNoPod: an address of no pod
		return api.EndpointPolicy{}, &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf(
			"%s is the address of no pod NetworkPolicy knows: no policy isolates it (all traffic to and from it is allowed), "+
				"and other pods' policies match it by ipBlock only; ringnet endpoints lists this node's pods", addrs[0])}
	}
	out := api.EndpointPolicy{Generation: st.gen, Pod: st.target(ref, e.IPs, eps), Labels: e.Labels, NamespaceLabels: e.Namespace,
		Ports: []api.PolicyPort{}, Identity: e.Identity, Ingress: direction(e.Ways[policy.Ingress]), Egress: direction(e.Ways[policy.Egress])}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	for _, p := range e.Ports {
		out.Ports = append(out.Ports, api.PolicyPort{Protocol: cluster.ProtocolName(p.Proto), Port: int(p.Port), Name: p.Name})
	}
	for _, p := range e.Problems {
		out.Problems = append(out.Problems, p.Error())
	}
	return out, nil
}

// lookup finds what a question names: a pod by "namespace/name" or by
// name in namespace default (with its addresses), or by an address (with
// that address; the zero ref for an address of no pod).
func (st *policyState) lookup(s string) (netpol.PodRef, []netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		ref, _, _ := st.view.PodAt(a)
		return ref, []netip.Addr{a.Unmap()}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = "default", s
	}
	ref := netpol.PodRef{Namespace: ns, Name: name}
	addrs, known := st.view.Addrs(ref)
	if !known || ns == "" || name == "" {
		hint := ""
		if !ok {
			hint = " (a name without a namespace is in namespace default: give NAMESPACE/NAME)"
		}
		return ref, nil, &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf(
			"no pod %s among the %d pods NetworkPolicy knows%s; ringnet endpoints lists this node's pods, "+
				"and NetworkPolicy knows the cluster file's pods (--cluster) or the Kubernetes API's (--kubernetes)", ref, st.pods, hint)}
	}
	return ref, addrs, nil
}

// target is a pod (the zero ref: none) shown at addrs, local when an
// address of it (or of addrs) is in the endpoint table eps.
func (st *policyState) target(ref netpol.PodRef, addrs []netip.Addr, eps []pipeline.EndpointInfo) api.PolicyTarget {
	t := api.PolicyTarget{Namespace: ref.Namespace, Name: ref.Name, Addresses: []string{}}
	for _, a := range addrs {
		t.Addresses = append(t.Addresses, a.String())
	}
	all, _ := st.view.Addrs(ref)
	for _, a := range slices.Concat(all, addrs) {
		t.Local = t.Local || slices.ContainsFunc(eps, func(e pipeline.EndpointInfo) bool { return e.Addr.Unmap() == a })
	}
	return t
}

// direction is one way of an explained pod in the API's terms.
func direction(w netpol.Way) api.PolicyDirection {
	out := api.PolicyDirection{IsolatedBy: orNone(w.IsolatedBy), Rules: []api.PolicyRule{}}
	for _, r := range w.Rules {
		ar := api.PolicyRule{Policy: r.Policy, Index: r.Index, Peers: []api.PolicyPeer{}, Ports: []api.PolicyPort{}}
		for _, p := range r.Peers {
			pe := api.PolicyPeer{Selector: p.Selector}
			if p.Block.IsValid() {
				pe.IPBlock = p.Block.String()
				for _, e := range p.Except {
					pe.Except = append(pe.Except, e.String())
				}
			} else {
				pe.PolicyPods = pods(p.Pods)
			}
			ar.Peers = append(ar.Peers, pe)
		}
		for _, p := range r.Ports {
			ap := api.PolicyPort{Protocol: cluster.ProtocolName(p.Proto), Port: int(p.Port), EndPort: int(p.EndPort), Name: p.Name}
			for _, rp := range p.Resolved {
				ap.Resolved = append(ap.Resolved, api.ResolvedPort{Port: int(rp.Port), PolicyPods: pods(rp.Pods)})
			}
			ar.Ports = append(ar.Ports, ap)
		}
		out.Rules = append(out.Rules, ar)
	}
	return out
}

// pods lists refs as the API does: the first api.MaxPolicyPods, and how
// many.
func pods(refs []netpol.PodRef) api.PolicyPods {
	out := api.PolicyPods{PodCount: len(refs)}
	for _, r := range refs[:min(len(refs), api.MaxPolicyPods)] {
		out.Pods = append(out.Pods, r.String())
	}
	return out
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// policyCheck answers r under st on a node whose endpoint table is eps.
func policyCheck(st *policyState, eps []pipeline.EndpointInfo, r api.PolicyCheckRequest) (api.PolicyVerdict, error) {
	from, fromAddrs, err := st.lookup(r.From)
	if err != nil {
		return api.PolicyVerdict{}, err
	}
	to, toAddrs, err := st.lookup(r.To)
	if err != nil {
		return api.PolicyVerdict{}, err
	}
	src, dst, ok := sameFamily(fromAddrs, toAddrs)
	if !ok {
		return api.PolicyVerdict{}, &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf(
			"%s (%v) and %s (%v) have no addresses of one IP family: no connection goes between them", r.From, fromAddrs, r.To, toAddrs)}
	}
	var proto uint8
	switch r.Protocol {
	case "ICMP":
		proto = 1 // ICMP
		if src.Is6() {
			proto = 58 // ICMPv6
		}
	case "":
	default:
		proto, _ = netpol.ProtocolNumber(r.Protocol) // the API checked it
	}
	c := st.view.Check(src, dst, proto, uint16(r.Port))
	return api.PolicyVerdict{Generation: st.gen, From: st.target(from, []netip.Addr{src}, eps), To: st.target(to, []netip.Addr{dst}, eps),
		Protocol: r.Protocol, Port: r.Port, Allowed: c.Allowed(),
		Egress: directionVerdict(c.Ways[policy.Egress]), Ingress: directionVerdict(c.Ways[policy.Ingress])}, nil
}

// sameFamily picks an address of each list, of one family: the first
// such pair, IPv4 before IPv6 as pods list them.
func sameFamily(a, b []netip.Addr) (netip.Addr, netip.Addr, bool) {
	for _, x := range a {
		for _, y := range b {
			if x.Is4() == y.Is4() {
				return x, y, true
			}
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

// directionVerdict is one way of a checked connection in the API's terms.
func directionVerdict(w netpol.WayCheck) api.PolicyDirectionVerdict {
	out := api.PolicyDirectionVerdict{IsolatedBy: w.IsolatedBy}
	switch {
	case !w.Checked:
		out.Verdict = api.PolicyNotChecked
	case w.Verdict == policy.Unselected:
		out.Verdict = api.PolicyNotIsolated
	case w.Verdict == policy.Allow:
		out.Verdict = api.PolicyAllowed
	default:
		out.Verdict = api.PolicyDenied
	}
	for _, rc := range w.Rules {
		rv := api.PolicyRuleVerdict{Policy: rc.Policy, Index: rc.Index, Peer: rc.Peer, Allows: rc.Allows}
		for _, p := range rc.Ports {
			rv.Ports = append(rv.Ports, api.PolicyPort{Protocol: cluster.ProtocolName(p.Proto), Port: int(p.Port), EndPort: int(p.EndPort)})
		}
		out.Rules = append(out.Rules, rv)
	}
	return out
}
