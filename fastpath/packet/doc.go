// Package packet is ringnet's layer-0 packet parser: header views, a single
// Decode pass into a flat struct, and Internet checksums.
//
// # Model
//
// A frame is a []byte owned by the caller; on the fast path it is a slice of
// AF_XDP UMEM that the worker holds for one batch. Nothing in this package
// copies it or keeps it.
//
// Header views (Ethernet, VLANTag, ARP, IPv4, IPv6, ICMPv4, ICMPv6, UDP, TCP)
// are named []byte types laid over a sub-slice of the frame. Their accessors
// read and their setters write the caller's buffer in place, in network byte
// order. Views do not check lengths: an accessor indexes its slice directly,
// and it panics if the slice is shorter than the header. Length checking
// happens once, in Decode; code that has a Parsed with result OK may build the
// views at the recorded offsets and use every fixed-size accessor without
// further checks:
//
//	var p packet.Parsed
//	if r := packet.Decode(frame, &p); r != packet.OK {
//		drops[r]++ // a reason, never an error value
//		return
//	}
//	if p.EtherType == packet.EtherTypeIPv4 {
//		ip := packet.IPv4(frame[p.L3Off:])
//		ip.DecrementTTL()
//	}
//
// Decode reads the frame once, front to back: Ethernet, at most one 802.1Q
// tag, then ARP, IPv4 or IPv6 (walking IPv6 extension headers), then the
// TCP, UDP, SCTP, ICMPv4 or ICMPv6 header. It fills a Parsed, a flat struct
// of value types (offsets, netip.Addr, ports, flags) that a worker allocates
// once and reuses for every frame. It verifies the IPv4 header checksum but
// not L4 checksums. A frame that cannot be parsed yields a Malformed reason;
// a frame that is merely unknown to us (another EtherType, another IP
// protocol, a non-first fragment) is not malformed: Decode returns OK and
// leaves the layers it did not understand unparsed.
//
// # Cost
//
// Decode, the view accessors and setters, and the checksum functions do not
// allocate and never call fmt, log or anything that could. Tests assert this
// with testing.AllocsPerRun; the benchmarks beside the code report the time
// per frame.
//
// # Concurrency
//
// The package has no mutable global state. Any number of goroutines may call
// Decode and the checksum functions at once on distinct frames and distinct
// Parsed values; one frame or one Parsed must not be written by one goroutine
// while another reads it.
package packet
