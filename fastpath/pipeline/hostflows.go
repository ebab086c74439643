package pipeline

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/ringnet/ringnet/fastpath/packet"
)

// hostFlows remembers the flows the node's stack has recently sent a frame
// on to a pod, so that the punt list can tell a pod answering the node (or
// carrying on a conversation the node takes part in) from a pod sending the
// node something unasked: the first goes to_host, the second to_host_new,
// which has a much smaller budget. Handing a frame to the host costs a
// write(2) and the host stack's receive path, a few µs of CPU; a flood of
// unsolicited frames at the node's address is what must not take that CPU
// from the pods, while replies to kubelet's probes and the rest of a
// connection the node answered must not be starved by such a flood. This is
// control-plane policing as routers do it, keyed by whether the node spoke
// on the flow.
//
// It is a direct-mapped table of 64-bit slots shared by all workers: the
// flow's hash picks a slot, which holds the hash's upper bits as a tag and
// the time the node last sent on the flow. A worker forwarding a frame from
// the host marks its flow (a store only when the slot does not already say
// so for this second); a worker punting a pod's frame to a node address
// reads its flow's slot (one atomic load). Two flows sharing a slot evict
// each other; the evicted one's frames are to_host_new until the node sends
// on it again, which for TCP is its next ACK. No lock, no allocation.
type hostFlows struct {
	slots [hostFlowSlots]atomic.Uint64
}

const (
	hostFlowBits  = 14 // 16384 slots, 128 KiB
	hostFlowSlots = 1 << hostFlowBits
	hostFlowMask  = hostFlowSlots - 1

	// Time in a slot is the workers' clock in units of 2^30 ns (about 1.07
	// s), its low 24 bits (it wraps after about 208 days, when a flow idle
	// that long would look fresh for a minute); a flow the node has not
	// sent on for hostFlowTTL units is new again. The tag is the hash's
	// other 40 bits.
	hostFlowTimeShift = 30
	hostFlowTimeBits  = 24
	hostFlowTimeMask  = 1<<hostFlowTimeBits - 1
	hostFlowTTL       = 56 // about a minute
)

// hostFlowHash hashes a decoded packet's flow so that both directions
// hash alike: the two addresses in a fixed order, the protocol, and the
// two ports combined by XOR (an ICMP echo request and its reply carry the
// identifier in DstPort, SrcPort 0, so they match as well).
func hostFlowHash(p *packet.Parsed) uint64 {
	s, d := p.Src.As16(), p.Dst.As16()
	s0, s1 := binary.LittleEndian.Uint64(s[0:8]), binary.LittleEndian.Uint64(s[8:16])
	d0, d1 := binary.LittleEndian.Uint64(d[0:8]), binary.LittleEndian.Uint64(d[8:16])
	if s1 > d1 || s1 == d1 && s0 > d0 {
		s0, s1, d0, d1 = d0, d1, s0, s1
	}
	h := s0*0x9E3779B97F4A7C15 ^ s1*0xC2B2AE3D27D4EB4F ^ d0*0x165667B19E3779F9 ^ d1*0xD6E8FEB86659FD93
	h ^= uint64(p.IPProto)<<16 | uint64(p.SrcPort^p.DstPort)
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	return h ^ h>>32
}

// slot returns the flow's slot and the value that says "the node sent on
// it at now".
func (t *hostFlows) slot(h uint64, now int64) (*atomic.Uint64, uint64) {
	stamp := uint64(now>>hostFlowTimeShift) & hostFlowTimeMask
	return &t.slots[(h>>hostFlowTimeBits)&hostFlowMask], h&^hostFlowTimeMask | stamp
}

// mark records that the node sent a frame on flow h at now (ns on the
// workers' clock). A nil table records nothing.
func (t *hostFlows) mark(h uint64, now int64) {
	if t == nil {
		return
	}
	s, v := t.slot(h, now)
	if s.Load() != v {
		s.Store(v)
	}
}

// answered reports whether the node sent on flow h within hostFlowTTL of
// now. Without a table (nil) every flow counts as answered: the punt list
// then treats all host-bound frames alike, as to_host.
func (t *hostFlows) answered(h uint64, now int64) bool {
	if t == nil {
		return true
	}
	s, v := t.slot(h, now)
	got := s.Load()
	if got&^hostFlowTimeMask != v&^hostFlowTimeMask {
		return false
	}
	age := (v - got) & hostFlowTimeMask
	return age < hostFlowTTL
}
