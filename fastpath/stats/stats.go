// Package stats names what the fast path does with each frame and counts it.
//
// Every frame a worker takes off a ring, or from the slow path's queue, ends
// in exactly one [Reason]: it was forwarded, answered, or not delivered by
// the fast path for a named cause. For the causes on the punt list (package
// pipeline) "not delivered" means handed to the slow path when there is one,
// and dropped otherwise; a punt-list frame that its token bucket or a full
// queue kept from the slow path is counted under an over-limit reason
// (ToHostOverLimit, ...) or PuntQueueFull instead of its cause, so the cause's
// count is exactly what reached the slow path's queue.
//
// The slow path's own goroutines count with the same type: the TAP reader
// counts each frame it reads as HostRx or HostRxQueueFull, the TAP writer
// each frame it writes as HostTx or HostTxError. A frame from the host is
// therefore counted twice in a sum over all counters, once per stage: by the
// reader (HostRx) and by the worker that delivers it (Forwarded, ...).
//
// A goroutine counts into its own [Counters] with plain increments and
// publishes them with atomic stores once per batch, so the per-packet cost is
// one add to memory no other core writes, and readers on other goroutines
// (metrics, SIGUSR1) never race with the writer.
package stats

import (
	"sync/atomic"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// Reason is the outcome of one frame.
type Reason uint8

// Outcomes. The first few are not drops; see [Reason.IsDrop].
const (
	Forwarded Reason = iota // routed to another port
	ARPReply                // answered an ARP request for the gateway
	NDReply                 // answered a neighbour solicitation for the gateway

	TTLExpired       // IPv4 TTL or IPv6 hop limit would reach 0
	NoRoute          // destination is no local pod
	ToGateway        // addressed to the link-local gateway itself
	IPOptions        // IPv4 options or IPv6 extension headers
	Fragment         // IPv4 or IPv6 fragment
	UnknownEtherType // neither IPv4, IPv6 nor ARP
	VLANTagged       // 802.1Q tag on a pod port
	Multicast        // multicast or broadcast destination
	ARPIgnored       // ARP that is no request for the gateway
	ICMPv6Ignored    // neighbour discovery not for the gateway (RS, NA, ...)
	TxNoFrame        // destination socket had no free UMEM frame
	TxRingFull       // destination socket's TX ring was full
	NoPort           // destination port is gone (between snapshots)

	// Punt list causes added with the slow path; see package pipeline.
	ToHost      // addressed to one of the node's own addresses
	Unreachable // in a local pod prefix, but no pod has the address: ICMP destination unreachable

	// Punt-list frames kept from the slow path.
	ToHostOverLimit           // to_host over its token bucket
	NoRouteOverLimit          // no_route over its token bucket
	IPOptionsOverLimit        // ip_options over its token bucket
	FragmentOverLimit         // fragment over its token bucket
	UnknownEtherTypeOverLimit // unknown_ethertype over its token bucket
	TTLExpiredOverLimit       // ttl_expired over its token bucket: no ICMP error sent
	UnreachableOverLimit      // unreachable over its token bucket: no ICMP error sent
	PuntQueueFull             // the worker's queue to the slow path was full

	// Counted by the slow path's goroutines, not by workers.
	HostRx          // read from the TAP and queued for a worker (not a drop)
	HostRxQueueFull // read from the TAP, but the chosen worker's queue was full
	HostTx          // written to the TAP (not a drop)
	HostTxError     // the TAP refused the frame (write error)

	// Cross-node: frames to and from other nodes through the uplink.
	ToPeer              // sent to another node through the uplink, encapsulated or routed (not a drop)
	FromPeer            // received from another node and delivered to a pod (not a drop)
	PeerUnresolved      // the next hop to the peer node has no MAC yet (the agent is resolving it)
	FragNeeded          // too big for the tunnel with DF set (IPv6: always): ICMP fragmentation needed / packet too big sent
	FragNeededOverLimit // frag_needed over its token bucket: no ICMP error sent
	TunnelTooBig        // too big for the tunnel, DF clear: dropped (pod MTUs are sized so this does not happen)
	UplinkUnexpected    // redirected from the uplink but neither tunnel traffic for this node nor for a local pod
	UnknownVTEP         // tunnel traffic from an address that is no peer node
	PeerNoPod           // from a peer node, for an address of this node that no pod has
	SpoofedMAC          // from a pod, with a source MAC that is not the pod's
	SpoofedIP           // from a pod, with a source address that is not the pod's
	PolicyDenied        // NetworkPolicy does not allow the connection (or no longer does)
	PolicyPending       // no NetworkPolicy published yet and the dataplane fails closed (Config.PolicyRequired)
	ServiceNoBackend    // to a service port that has no ready backend (on this node, for externalTrafficPolicy Local)
	NATNoPort           // a masqueraded connection found no free port in the NAT port range
	ConntrackBusy       // a new connection could not be tracked (the table could make no room): not forwarded, as its replies could not be translated
	ToHostNew           // addressed to one of the node's own addresses, on a flow the node has not sent on lately
	ToHostNewOverLimit  // to_host_new over its token bucket

	// Decapsulation failures, one per encap.Error (package pipeline maps them).
	DecapTruncated
	DecapNotIPv4
	DecapBadIPHeader
	DecapIPOptions
	DecapFragment
	DecapBadChecksum
	DecapNotLocal
	DecapWrongProtocol
	DecapWrongPort
	DecapBadVXLANHeader
	DecapWrongVNI
	DecapInnerTruncated
	DecapInnerVersion

	// malformedBase + m - 1 counts frames Decode rejected with
	// packet.Malformed m (m > 0).
	malformedBase
)

// NumReasons is the number of distinct reasons.
const NumReasons = int(malformedBase) + int(packet.NumMalformed) - 1

var names = func() [NumReasons]string {
	var n [NumReasons]string
	copy(n[:], []string{
		"forwarded", "arp_reply", "nd_reply",
		"ttl_expired", "no_route", "to_gateway", "ip_options", "fragment",
		"unknown_ethertype", "vlan_tagged", "multicast", "arp_ignored", "icmpv6_ignored",
		"tx_no_frame", "tx_ring_full", "no_port",
		"to_host", "unreachable",
		"to_host_over_limit", "no_route_over_limit", "ip_options_over_limit", "fragment_over_limit",
		"unknown_ethertype_over_limit", "ttl_expired_over_limit", "unreachable_over_limit", "punt_queue_full",
		"host_rx", "host_rx_queue_full", "host_tx", "host_tx_error",
		"to_peer", "from_peer", "peer_unresolved", "frag_needed", "frag_needed_over_limit", "tunnel_too_big",
		"uplink_unexpected", "unknown_vtep", "peer_no_pod", "spoofed_mac", "spoofed_ip", "policy_denied", "policy_pending",
		"service_no_backend", "nat_no_port", "conntrack_busy",
		"to_host_new", "to_host_new_over_limit",
		"decap_truncated", "decap_not_ipv4", "decap_bad_ip_header", "decap_ip_options", "decap_fragment",
		"decap_bad_checksum", "decap_not_local", "decap_wrong_protocol", "decap_wrong_port",
		"decap_bad_vxlan_header", "decap_wrong_vni", "decap_inner_truncated", "decap_inner_version",
	})
	for m := packet.Malformed(1); m < packet.NumMalformed; m++ {
		n[Malformed(m)] = "malformed_" + m.String()
	}
	return n
}()

// Malformed is the reason for a frame Decode rejected with m (m != 0).
func Malformed(m packet.Malformed) Reason { return malformedBase + Reason(m) - 1 }

// String is the reason's name as exported in metrics, e.g. "ttl_expired".
func (r Reason) String() string {
	if int(r) < NumReasons && names[r] != "" {
		return names[r]
	}
	return "unknown"
}

// IsDrop reports whether frames with this reason were not delivered by the
// fast path itself: dropped, or, for the punt list's causes, handed to the
// slow path (see the package documentation). Forwarded, answered (ARPReply,
// NDReply), sent to or received from a peer node (ToPeer, FromPeer) and the
// slow path's stage counts HostRx and HostTx are not drops.
func (r Reason) IsDrop() bool {
	switch r {
	case Forwarded, ARPReply, NDReply, HostRx, HostTx, ToPeer, FromPeer:
		return false
	}
	return true
}

// Counters counts outcomes for one worker.
type Counters struct {
	local [NumReasons]uint64        // written by the worker only
	pub   [NumReasons]atomic.Uint64 // written by the worker in Publish, read by anyone
}

// Inc counts one frame with reason r. Only the owning worker calls it.
func (c *Counters) Inc(r Reason) { c.local[r]++ }

// Add counts n frames with reason r. Only the owning worker calls it.
func (c *Counters) Add(r Reason, n uint64) { c.local[r] += n }

// Publish makes the worker's counts visible to Load. Call once per batch.
func (c *Counters) Publish() {
	for i := range c.local {
		if v := c.local[i]; v != c.pub[i].Load() {
			c.pub[i].Store(v)
		}
	}
}

// Load returns the published count for r. Safe from any goroutine.
func (c *Counters) Load(r Reason) uint64 { return c.pub[r].Load() }

// Reasons lists every reason, in order.
func Reasons() []Reason {
	rs := make([]Reason, NumReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}
