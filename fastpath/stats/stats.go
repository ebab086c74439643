// Package stats names what the fast path does with each frame and counts it.
//
// Every frame a worker takes off a ring ends in exactly one [Reason]: it was
// forwarded, answered, or dropped for a named cause. A worker counts into
// its own [Counters] with plain increments and publishes them with atomic
// stores once per batch, so the per-packet cost is one add to memory no other
// core writes, and readers on other goroutines (metrics, SIGUSR1) never race
// with the worker.
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

// IsDrop reports whether frames with this reason were dropped.
func (r Reason) IsDrop() bool { return r > NDReply }

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
