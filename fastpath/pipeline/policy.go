package pipeline

import (
	"errors"
	"net/netip"
	"time"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/policy"
)

// Policy is NetworkPolicy as the fast path enforces it: the compiled
// verdict table (tables/policy) and the identity of every pod address in
// the cluster, local or not (a pod not in Identity is treated as no pod:
// unselected when local, matched only by ipBlocks when a peer).
//
// Enforcement is stateful. The first packet of a connection is checked
// against egress policy if its source is a pod on this node and against
// ingress policy if its destination is; if both allow it, the connection
// is tracked (tables/conntrack) and its later packets, both ways, pass on
// the tracked entry. Each node checks its own pods, so a connection
// between two nodes is checked for egress on one and ingress on the other.
//
// Policy changes: a new Policy applies to new connections at once, and to
// every tracked connection at its next packet: entries carry the Gen of
// the policy that admitted them, and one from an older Gen is checked
// again, in its original direction, against the new policy, then kept (and
// relabelled) or deleted and its packet dropped. So a policy that removes
// access cuts existing connections too, as soon as they send.
//
// Not checked: traffic between the node and its own pods (the host is
// always allowed to reach its pods, as kubelet's probes need), frames the
// fast path punts to the host, non-first fragments, and ICMP errors.
type Policy struct {
	Table    *policy.Table
	Identity map[netip.Addr]uint32
	Gen      uint32
}

// DefaultConntrackCapacity is the number of connections tracked when the
// dataplane does not say otherwise: about 10 MiB.
const DefaultConntrackCapacity = 65536

// SetPolicy publishes p, or with nil stops enforcing NetworkPolicy. The
// first call makes the connection tracking table (Config.ConntrackCapacity
// connections, allocated once).
func (d *Dataplane) SetPolicy(p *Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p != nil && p.Table == nil {
		return errors.New("dataplane: policy without a table")
	}
	if p != nil {
		if err := d.conntrackLocked(); err != nil {
			return err
		}
	}
	d.policy.Store(p)
	d.pending.Store(false)
	return nil
}

// conntrackLocked makes the connection tracking table if there is none
// yet (Config.ConntrackCapacity connections, allocated once). Caller holds
// d.mu.
func (d *Dataplane) conntrackLocked() error {
	if d.ct.Load() != nil {
		return nil
	}
	ct, err := conntrack.New(conntrack.Config{Capacity: d.ctCapacity()})
	if err != nil {
		return err
	}
	d.ct.Store(ct)
	return nil
}

// ctCapacity is the connection tracking table's capacity.
func (d *Dataplane) ctCapacity() int {
	if n := d.cfg.ConntrackCapacity; n != 0 {
		return n
	}
	return DefaultConntrackCapacity
}

// Conntrack returns the connection tracking table, nil until SetPolicy
// first publishes a policy. The control plane sweeps it.
func (d *Dataplane) Conntrack() *conntrack.Table { return d.ct.Load() }

// admit applies policy to the parsed packet about to be forwarded, with
// its connection tracked in f.ct. It reports whether the packet may pass,
// and if not, why.
func (f *forwarder) admit(eps *endpoint.Table) (bool, stats.Reason) {
	pol := f.pol
	if pol == nil {
		return !f.pending, stats.PolicyPending
	}
	return f.admitTracked(eps), stats.PolicyDenied
}

// admitTracked is admit under a published policy.
func (f *forwarder) admitTracked(eps *endpoint.Table) bool {
	pol := f.pol
	p := &f.p
	if (p.Fragment && !p.FirstFragment) || isICMPError(p) {
		return true
	}
	now := conntrack.TimeOf(time.Duration(f.now))
	// The NAT step (translate) has looked the connection up already when
	// services are published, and updated it; otherwise look it up here.
	c, ok, looked := f.nat.conn, f.nat.tracked, f.nat.looked
	if !looked {
		k := keyOf(p)
		c, ok = f.lookupConn(&k, now)
	}
	if ok {
		if c.Label != pol.Gen {
			// Checked again as the connection was first: its client
			// against its server, the backend for a service (the source
			// of the reply tuple).
			o, r := c.Orig(), c.Reply()
			if !f.allowed(eps, netip.AddrFrom16(o.Src).Unmap(), netip.AddrFrom16(r.Src).Unmap(), r.SrcPort, o.Proto) {
				f.ct.Delete(c.Key())
				f.flow(FlowDenied, c.NAT())
				return false
			}
			f.ct.SetLabel(&c, pol.Gen)
		}
		if !looked {
			f.ct.Update(&c, p.TCPFlags, now)
		}
		return true
	}
	if !f.allowed(eps, p.Src, p.Dst, p.DstPort, p.IPProto) {
		f.flow(FlowDenied, conntrack.NAT{})
		return false
	}
	f.trackLater(keyOf(p), pol.Gen)
	return true
}

// trackLater queues the connection of the packet being processed, which
// NetworkPolicy allowed, for trackBatch to insert with label.
func (f *forwarder) trackLater(k conntrack.Key, label uint32) {
	if len(f.track) == cap(f.track) {
		f.trackBatch()
	}
	f.track = append(f.track, conntrack.Insertion{Orig: k, Label: label})
}

// trackBatch inserts the connections trackLater queued, in one
// conntrack.Table.InsertBatch, which fetches the table's lines several
// inserts ahead, and records a flow event for each it inserted (not for
// one already tracked: a second packet of a new connection in the same
// batch queued it again). The worker calls it at the end of each RX batch,
// microseconds after the packets, long before a reply can return; nothing
// in the batch needs the connections before. A refused insert (table busy)
// leaves the connection untracked: its next packet is checked again.
func (f *forwarder) trackBatch() {
	n := len(f.track)
	if n == 0 {
		return
	}
	res := f.trackRes[:n]
	f.ct.InsertBatch(f.track, conntrack.TimeOf(time.Duration(f.now)), res)
	for i, r := range res {
		if r == conntrack.Inserted {
			f.flowOf(FlowAllowed, &f.track[i].Orig, conntrack.NAT{})
		}
	}
	f.track = f.track[:0]
}

// allowed is the policy verdict for the first packet of a connection from
// src to dst: egress for a source pod on this node, ingress for a
// destination pod on this node.
func (f *forwarder) allowed(eps *endpoint.Table, src, dst netip.Addr, dport uint16, proto uint8) bool {
	pol := f.pol
	sid, did := pol.Identity[src], pol.Identity[dst]
	if _, local := eps.Lookup(src); local && sid != 0 {
		k := policy.Key{Local: sid, Peer: did, PeerCIDR: pol.Table.CIDR(dst), Port: dport, Proto: proto, Dir: policy.Egress}
		if !pol.Table.Verdict(k).Allowed() {
			return false
		}
	}
	if _, local := eps.Lookup(dst); local && did != 0 {
		k := policy.Key{Local: did, Peer: sid, PeerCIDR: pol.Table.CIDR(src), Port: dport, Proto: proto, Dir: policy.Ingress}
		if !pol.Table.Verdict(k).Allowed() {
			return false
		}
	}
	return true
}

// isICMPError reports whether p is an ICMP or ICMPv6 error message (they
// are about a connection, not one of their own).
func isICMPError(p *packet.Parsed) bool {
	switch p.IPProto {
	case packet.ProtoICMP:
		return p.ICMPType == 3 || p.ICMPType == 11 || p.ICMPType == 12
	case packet.ProtoICMPv6:
		return p.ICMPType >= 1 && p.ICMPType <= 4
	}
	return false
}

// ConntrackNow is the connection tracking table's clock as the workers
// read it, for Sweep.
func (d *Dataplane) ConntrackNow() conntrack.Time {
	return conntrack.TimeOf(time.Since(d.epoch))
}
