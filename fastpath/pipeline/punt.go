package pipeline

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/endpoint"
)

// PuntClass is an entry of the punt list: a kind of frame from a pod that
// the fast path does not forward itself, with what it does instead.
type PuntClass uint8

// The punt list. Frames from pods only: frames from the host (the slow
// path's queue) are never handed back to the host, so a frame can never
// loop between the two; see process.
const (
	// PuntToHost: unicast to one of the node's own addresses (Host.Addrs),
	// on a flow the node itself has sent a frame on to the pod within the
	// last minute (see hostFlows): kubelet probe replies, the rest of a
	// connection to a node-local service once the node has answered it.
	PuntToHost PuntClass = iota
	// PuntNoRoute: unicast to an address that is no local pod, no node
	// address, not the gateway and in no local pod prefix. The host's kernel
	// routes it (off the node, or answers it with its own ICMP error).
	PuntNoRoute
	// PuntIPOptions: IPv4 options or IPv6 hop-by-hop, routing or destination
	// options headers, which only the kernel interprets.
	PuntIPOptions
	// PuntFragment: IPv4 or IPv6 fragments. Policy and NAT need the ports,
	// which only the first fragment carries; the kernel reassembles.
	PuntFragment
	// PuntUnknownEtherType: neither IPv4, IPv6 nor ARP (unknown protocols).
	PuntUnknownEtherType
	// PuntTTLExpired: the TTL or hop limit would reach 0 on the way to a pod.
	// Answered by the fast path itself with ICMP time exceeded.
	PuntTTLExpired
	// PuntUnreachable: in a local pod prefix (Host.PodPrefixes) but no pod
	// has the address. Answered with ICMP destination unreachable (host /
	// address unreachable).
	PuntUnreachable
	// PuntFragNeeded: too big for the tunnel to the peer node and not to be
	// fragmented (IPv4 DF, or IPv6). Answered with ICMP fragmentation needed
	// (IPv6: packet too big) carrying the tunnel's MTU, so path-MTU
	// discovery works across nodes.
	PuntFragNeeded
	// PuntToHostNew: unicast to one of the node's own addresses on a flow
	// the node has not sent on (lately): a pod opening a connection to a
	// node-local service, or a stream the node never answers, or a flood.
	// Its budget is much smaller than PuntToHost's.
	PuntToHostNew

	NumPuntClasses
)

// What the fast path does with a punt-list frame within its class's limit.
type puntAction uint8

const (
	actToHost    puntAction = iota // copy to the slow path's queue, L2 rewritten for the TAP
	actICMPError                   // answer the sender with an ICMP error built in the frame
)

// Limit is a token bucket: Rate frames per second per worker on average, at
// most Burst at once. A Rate of 0 lets nothing through.
type Limit struct {
	Rate, Burst uint32
}

// puntEntry is one line of the punt list.
type puntEntry struct {
	name      string
	action    puntAction
	icmp      icmpKind     // for actICMPError
	reason    stats.Reason // counted when the frame reached the slow path (or its error was sent)
	overLimit stats.Reason // counted when the token bucket said no
	limit     Limit        // default
}

// puntList is the punt policy, in one place. Frames the fast path neither
// forwards nor punts are dropped and counted under their reason (package
// stats) without a token: ARP and ND not for the gateway (arp_ignored,
// icmpv6_ignored: the gateway is the pod's only neighbour), the gateway's
// own address (to_gateway: 169.254.1.1 and fe80::1 exist only as the
// fast path's answer to ARP/ND; the host does not own them), multicast and
// broadcast (multicast: there is no multicast routing; pods' MLD and router
// solicitations stay on their link), 802.1Q-tagged frames (vlan_tagged) and
// malformed frames (malformed_*).
//
// Default limits: each frame handed to the host costs a write(2), the host
// stack's receive path and, if it sleeps, waking the TAP writer: a few µs
// of CPU (docs/slowpath.md). A flood at the node's address fills whatever
// budget host-bound frames have and takes that CPU from the pods; and with
// one budget, it would also take the tokens of the replies to kubelet's
// probes. So what the node asked for and what it did not are budgeted
// apart. Host-bound traffic on flows the node takes part in, and
// traffic leaving the node, are real workloads (probe replies, node-local
// services, egress): 50,000 frames/s per worker, about 600 Mbit/s of
// full-size frames. Host-bound frames on flows the node has not sent on
// (to_host_new: the first frame of each connection or DNS query to a
// node-local service, streams the node never answers, floods) get 5,000/s
// per worker. Nodes with cores to spare raise them (ringnetd --punt-limit).
// The odd kinds get a trickle; ICMP errors are limited like the kernel's
// own (net.ipv4.icmp_msgs_per_sec=1000, icmp_msgs_burst=50).
var puntList = [NumPuntClasses]puntEntry{
	PuntToHost:           {"to_host", actToHost, 0, stats.ToHost, stats.ToHostOverLimit, Limit{50_000, 1024}},
	PuntNoRoute:          {"no_route", actToHost, 0, stats.NoRoute, stats.NoRouteOverLimit, Limit{50_000, 1024}},
	PuntIPOptions:        {"ip_options", actToHost, 0, stats.IPOptions, stats.IPOptionsOverLimit, Limit{1000, 64}},
	PuntFragment:         {"fragment", actToHost, 0, stats.Fragment, stats.FragmentOverLimit, Limit{10_000, 256}},
	PuntUnknownEtherType: {"unknown_ethertype", actToHost, 0, stats.UnknownEtherType, stats.UnknownEtherTypeOverLimit, Limit{1000, 64}},
	PuntTTLExpired:       {"ttl_expired", actICMPError, icmpTimeExceeded, stats.TTLExpired, stats.TTLExpiredOverLimit, Limit{1000, 50}},
	PuntUnreachable:      {"unreachable", actICMPError, icmpUnreachable, stats.Unreachable, stats.UnreachableOverLimit, Limit{1000, 50}},
	PuntFragNeeded:       {"frag_needed", actICMPError, icmpFragNeeded, stats.FragNeeded, stats.FragNeededOverLimit, Limit{1000, 50}},
	PuntToHostNew:        {"to_host_new", actToHost, 0, stats.ToHostNew, stats.ToHostNewOverLimit, Limit{5000, 512}},
}

// String is the class's name, the same as its reason's, e.g. "to_host".
func (c PuntClass) String() string {
	if c < NumPuntClasses {
		return puntList[c].name
	}
	return fmt.Sprintf("PuntClass(%d)", uint8(c))
}

// ParsePuntClass parses a class name as String returns it.
func ParsePuntClass(s string) (PuntClass, error) {
	for c := range NumPuntClasses {
		if puntList[c].name == s {
			return c, nil
		}
	}
	names := make([]string, 0, NumPuntClasses)
	for c := range NumPuntClasses {
		names = append(names, puntList[c].name)
	}
	return 0, fmt.Errorf("unknown punt class %q (want one of %s)", s, strings.Join(names, ", "))
}

// DefaultLimit is the class's token bucket unless configured otherwise.
func (c PuntClass) DefaultLimit() Limit { return puntList[c].limit }

// bucket is a token bucket counted in nanoseconds of credit: a frame costs
// 1e9/Rate ns, credit accrues with time up to Burst frames' worth. One
// worker owns it; no atomics.
type bucket struct {
	cost   int64 // ns per frame; 0: closed (Rate 0)
	max    int64 // burst * cost
	credit int64
	last   int64 // ns on the worker's monotonic clock at the last take
}

func newBucket(l Limit) bucket {
	if l.Rate == 0 {
		return bucket{}
	}
	cost := max(int64(1e9)/int64(l.Rate), 1)
	b := bucket{cost: cost, max: cost * int64(max(l.Burst, 1))}
	b.credit = b.max
	return b
}

// take spends one frame's credit at time now, reporting whether there was
// enough.
func (b *bucket) take(now int64) bool {
	if b.cost == 0 {
		return false
	}
	c := b.credit + now - b.last
	b.last = now
	if c > b.max || c < 0 { // c < 0: the clock went back (never on a monotonic clock)
		c = b.max
	}
	if c < b.cost {
		b.credit = c
		return false
	}
	b.credit = c - b.cost
	return true
}

// Host is what the fast path knows of the node's own stack: where frames
// for the host go, which addresses are the host's, and where ICMP errors
// come from. The slow path publishes it with SetHost and again whenever the
// node's addresses change.
type Host struct {
	// MAC is the TAP's MAC address: the destination MAC of every frame the
	// fast path hands to the host.
	MAC [6]byte
	// Addrs are the node's own addresses: frames from pods to them are
	// PuntToHost or PuntToHostNew; frames to other non-pod addresses
	// PuntNoRoute.
	Addrs []netip.Addr
	// PodPrefixes are this node's pod prefixes (pod CIDRs): an address in
	// them that no pod has is unreachable. Empty: nothing is known to be
	// unreachable, every unknown destination is PuntNoRoute.
	PodPrefixes []netip.Prefix
	// ICMPSource4 and ICMPSource6 are the source addresses of ICMP errors
	// the fast path sends to pods: the node's address, as the kernel of a
	// node routing for its pods would use. Invalid: the gateway's address.
	// ICMP errors to the host always come from the gateway's address: the
	// host would drop a packet from outside carrying its own address as a
	// martian.
	ICMPSource4, ICMPSource6 netip.Addr
}

// hostTable is Host compiled for the workers: immutable, read once per
// batch through Dataplane.host.
type hostTable struct {
	mac      [6]byte
	addrs    *endpoint.Table // node addresses; the Endpoint value is unused
	prefixes []netip.Prefix
	src4     [4]byte  // ICMP errors to pods
	src6     [16]byte // ICMP errors to pods
}

func (h *hostTable) isNodeAddr(a netip.Addr) bool {
	_, ok := h.addrs.Lookup(a)
	return ok
}

func (h *hostTable) inPodPrefix(a netip.Addr) bool {
	for _, p := range h.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func compileHost(h Host, gw Gateway, gen uint64) (*hostTable, error) {
	m := make(map[netip.Addr]endpoint.Endpoint, len(h.Addrs))
	for _, a := range h.Addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("host: invalid node address")
		}
		m[a.Unmap()] = endpoint.Endpoint{}
	}
	addrs, err := endpoint.New(gen, m)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	t := &hostTable{mac: h.MAC, addrs: addrs, src4: gw.IPv4, src6: gw.IPv6}
	for _, p := range h.PodPrefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("host: invalid pod prefix")
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	if a := h.ICMPSource4.Unmap(); a.Is4() {
		t.src4 = a.As4()
	}
	if a := h.ICMPSource6; a.Is6() && !a.Is4In6() {
		t.src6 = a.As16()
	}
	return t, nil
}
