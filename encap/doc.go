// Package encap carries pod traffic between nodes over an IPv4 underlay:
// VXLAN (RFC 7348) and IP-in-IP (RFC 2003 for IPv4 inside, protocol 41 for
// IPv6 inside), encapsulation and decapsulation in place.
//
// # Model
//
// The control plane builds, per peer node, an Outer (the underlay MAC and
// IPv4 addresses, with the constant part of the outer IPv4 checksum
// precomputed by NewOuter) and, per node, a VXLAN (VNI and UDP port). Both
// are values that the workers only read; a change is a new value, published
// with the rest of a table snapshot.
//
// A worker sending to a peer has the inner Ethernet frame at buf[off:off+n],
// usually an AF_XDP UMEM frame whose headroom the worker reserved at start:
//
//	start, ok := vx.Encap(buf, off, n, &peer.Outer, ipID)
//	if !ok {
//		drops[noHeadroom]++
//		return
//	}
//	tx(buf[start : start+n+encap.VXLANOverhead])
//
// and likewise with encap.EncapIPIP(buf, off, n, &peer.Outer, ipID), whose
// outer frame is buf[start : start+n+encap.IPIPOverhead].
//
// Encap writes the outer Ethernet, IPv4, UDP and VXLAN headers into the 50
// bytes in front of the inner frame and leaves the inner frame alone.
// EncapIPIP drops the inner Ethernet header: it writes the outer Ethernet
// and IPv4 headers into the 20 bytes in front of the inner frame and its 14
// Ethernet bytes, so the inner IP packet directly follows them. Neither moves
// the payload. When they cannot (too little headroom, a frame they do not
// carry) they return false and write nothing.
//
// A worker receiving on the uplink hands the whole frame to Decap or
// DecapIPIP with its own underlay address:
//
//	inner, end, src, err := vx.Decap(frame, local)
//	if err != encap.OK {
//		drops[err]++ // a reason, never an error value
//		return
//	}
//	// check src is a known peer, then forward frame[inner:end]
//
// Decap only reads the frame; DecapIPIP rewrites the 14 bytes in front of
// the inner IP packet (the second half of the outer IPv4 header) into an
// Ethernet header, so that both hand back an Ethernet frame. The inner frame
// ends where the outer lengths say, not where the received frame does:
// Ethernet padding is excluded.
//
// # Memory
//
// Every frame belongs to the caller; the package neither copies nor keeps
// one. Nothing here allocates, calls fmt or log, or has mutable global
// state; tests assert zero allocations for every per-packet function, and
// benchmarks beside the code report the time per frame. Any number of
// workers may use one VXLAN and one Outer at once, on distinct frames.
//
// # What is validated
//
// Decap and DecapIPIP accept only what this package sends and what Linux
// and Flannel send with their defaults: an untagged IPv4 frame; IPv4 version
// 4, IHL 5 (options are rejected: no tunnel endpoint sends them), a total
// length within the frame, a correct header checksum, no fragment (a tunnel
// peer sets DF and the fast path does not reassemble; the kernel may), the
// destination equal to the local address, and the tunnel's protocol. VXLAN
// then checks the UDP length, the destination port, the UDP checksum unless
// it is zero, the VXLAN flags (I set, reserved bits clear) and the VNI.
// IPIP checks that the inner IP version matches the outer protocol and that
// the inner packet holds at least its fixed IP header. Each rejection has a
// reason, an Error, for the worker's drop counters. The source address is
// returned, not checked: whether it is a known peer is the tables' business.
// The inner frame is not parsed beyond that; the pipeline decodes it next.
//
// # Outer headers, and why DF
//
// The outer IPv4 header has TOS 0, TTL 64, the caller's identification, and
// DF set. ringnet sizes pod MTUs for the tunnel (the uplink MTU minus
// VXLANOverhead or IPIPOverhead) and answers an inner packet too big for the
// tunnel itself, with ICMP "fragmentation needed" or ICMPv6 "packet too
// big", before it reaches Encap. Outer fragmentation would cost every
// receiving node a reassembly on its fast path, which it does not do
// (Decap rejects outer fragments as Fragment); with DF set, a too-small MTU
// in the underlay shows up as an ICMP error towards the sending node instead
// of as silent reassembly load. Encap does not check the MTU itself: it
// does not know it.
//
// The VXLAN UDP source port is 49152 plus 14 bits of FlowHash over the inner
// frame, the dynamic range RFC 7348 recommends, so that ECMP in the underlay
// and RSS on the receiving NIC spread flows while one flow stays on one path
// and one queue. The UDP checksum is zero, as RFC 7348 allows over IPv4 and
// Linux sends by default; received nonzero checksums are verified. The
// inner frame's checksums are not touched: the caller must have completed
// offloaded ones (or switched those offloads off in the pod) before
// encapsulating.
//
// With VNI FlannelVNI and port FlannelPort, VXLAN frames are wire-compatible
// with Flannel's vxlan backend and Linux's vxlan device with defaults; the
// inner destination MAC, which Flannel sets to the peer's VTEP device MAC,
// is the caller's to write.
package encap
