package daemon

// The policy view: the NetworkPolicy the fast path enforces, as the
// policy compiler last published it, joined when asked with the
// dataplane's endpoint table to show what each policy selects on this
// node, and what it lets one pod do and whether it allows one connection
// (explain.go).

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/tables/policy"
)

// Policies is the NetworkPolicy the policy view shows. ringnetd's policy
// compiler publishes each policy it hands the dataplane (Publish) and
// clears it when it stops enforcing (Clear), from one goroutine at a
// time; views read it from any goroutine. The zero value shows none.
type Policies struct {
	cur atomic.Pointer[policyState] // nil: no policy enforced
}

// policyState is one published policy as the view needs it, built once
// at Publish; read-only after.
type policyState struct {
	gen        uint64
	pods       int
	identities int
	view       *netpol.View // the pods, their addresses, and what the policy lets them do
	policies   []policyInfo // by namespace and name
	problems   []string
}

// policyInfo is one NetworkPolicy: what it selects, and which ways.
type policyInfo struct {
	ref      netpol.PodRef
	types    []string        // netpol.PolicyTypeIngress, netpol.PolicyTypeEgress
	selected map[uint32]bool // the identities it selects
	count    int             // the pods it selects, on every node
}

// Publish records the policy of generation gen, which netpol compiled
// into c from pods and pols. It keeps c (read-only), and none of pods
// and pols: what the view needs is copied out.
func (p *Policies) Publish(gen uint64, c *netpol.Compiled, pods []netpol.Pod, pols []netpol.NetworkPolicy) {
	st := &policyState{gen: gen, pods: len(c.Identity), identities: c.Stats.Identities, view: netpol.NewView(c, pods)}
	byName := make(map[string]int, len(pols))
	for _, np := range pols {
		ref := netpol.PodRef{Namespace: np.Namespace, Name: np.Name}
		if _, dup := byName[ref.String()]; !dup {
			byName[ref.String()] = len(st.policies)
			st.policies = append(st.policies, policyInfo{ref: ref, types: []string{}, selected: map[uint32]bool{}})
		}
	}
	// Named ports split one NetworkPolicy into several tables/policy
	// policies of its name: their union is what it selects.
	for _, cp := range c.Policies {
		i, ok := byName[cp.Name]
		if !ok {
			continue
		}
		pi := &st.policies[i]
		for _, id := range cp.Selected {
			pi.selected[id] = true
		}
		for _, d := range cp.Types {
			t := netpol.PolicyTypeIngress
			if d == policy.Egress {
				t = netpol.PolicyTypeEgress
			}
			if !slices.Contains(pi.types, t) {
				pi.types = append(pi.types, t)
			}
		}
	}
	for i := range st.policies {
		pi := &st.policies[i]
		slices.Sort(pi.types) // Egress, Ingress
		for _, id := range c.Identity {
			if pi.selected[id] {
				pi.count++
			}
		}
	}
	slices.SortFunc(st.policies, func(a, b policyInfo) int {
		return cmp.Or(cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name))
	})
	for _, e := range c.Problems {
		st.problems = append(st.problems, e.Error())
	}
	p.cur.Store(st)
}

// Clear records that no policy is enforced.
func (p *Policies) Clear() { p.cur.Store(nil) }

// SetPolicies makes p the source of Policy. Call it before serving.
func (d *Daemon) SetPolicies(p *Policies) { d.policies = p }

// Policy implements api.Handler: the published policy, each policy with
// the local pods it selects.
func (d *Daemon) Policy(context.Context) (api.PolicyList, error) {
	if d.policies == nil {
		return policyList(nil, nil), nil
	}
	st := d.policies.cur.Load()
	if st == nil {
		return policyList(nil, nil), nil
	}
	return policyList(st, d.dp.Endpoints()), nil
}

// policyList shows st (nil: no policy) on a node whose endpoint table
// is eps.
func policyList(st *policyState, eps []pipeline.EndpointInfo) api.PolicyList {
	out := api.PolicyList{Policies: []api.NetworkPolicy{}}
	if st == nil {
		return out
	}
	out.Enforcing, out.Generation, out.Pods, out.Identities = true, st.gen, st.pods, st.identities
	out.LocalEndpoints, out.Problems = len(eps), st.problems
	// The local pods, each with its addresses (eps is sorted by address).
	type local struct {
		ref   netpol.PodRef
		id    uint32
		addrs []string
	}
	var locals []*local
	byRef := map[netpol.PodRef]*local{}
	for _, e := range eps {
		ref, id, ok := st.view.PodAt(e.Addr)
		if !ok {
			out.LocalUnknown++
			continue
		}
		if slices.ContainsFunc(st.policies, func(p policyInfo) bool { return p.selected[id] }) {
			out.LocalSelected++
		}
		l := byRef[ref]
		if l == nil {
			l = &local{ref: ref, id: id}
			byRef[ref] = l
			locals = append(locals, l)
		}
		l.addrs = append(l.addrs, e.Addr.String())
	}
	slices.SortFunc(locals, func(a, b *local) int {
		return cmp.Or(cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name))
	})
	for _, p := range st.policies {
		np := api.NetworkPolicy{Namespace: p.ref.Namespace, Name: p.ref.Name, Types: p.types, Selected: p.count, Local: []api.PolicyPod{}}
		for _, l := range locals {
			if p.selected[l.id] {
				np.Local = append(np.Local, api.PolicyPod{Namespace: l.ref.Namespace, Name: l.ref.Name, Addresses: l.addrs})
			}
		}
		out.Policies = append(out.Policies, np)
	}
	return out
}

// Describe names the pods of a flow from src to dst, as the published
// policy knows them ("namespace/name", empty for an address of no pod),
// and, for a denied flow, the policies that isolate them: those selecting
// the source for egress and those selecting the destination for ingress
// (one of the two sides allowed the flow nowhere). Safe from any
// goroutine; with no policy published it names nothing.
func (p *Policies) Describe(src, dst netip.Addr, denied bool) (srcPod, dstPod string, isolating []string) {
	st := p.cur.Load()
	if st == nil {
		return "", "", nil
	}
	s, sid, sok := st.view.PodAt(src)
	d, did, dok := st.view.PodAt(dst)
	if sok {
		srcPod = s.String()
	}
	if dok {
		dstPod = d.String()
	}
	if !denied {
		return srcPod, dstPod, nil
	}
	for _, pi := range st.policies {
		if sok && pi.selected[sid] && slices.Contains(pi.types, netpol.PolicyTypeEgress) ||
			dok && pi.selected[did] && slices.Contains(pi.types, netpol.PolicyTypeIngress) {
			isolating = append(isolating, pi.ref.String())
		}
	}
	return srcPod, dstPod, isolating
}
