package encap

// Error is why Decap or DecapIPIP rejected a frame. OK (zero) means the frame
// was accepted. Each other value names one way an underlay frame can be
// wrong; the worker counts drops per reason, so a reason is a small dense
// integer that indexes a counter array of length NumErrors.
//
// Checks run from the outside in, and the first that fails names the
// reason: Ethernet; the IPv4 header (version and IHL, options, total length,
// header checksum); fragment; destination address; protocol; then for VXLAN
// the UDP length, port, UDP checksum, VXLAN header, VNI and inner length, and
// for IPIP the inner packet's version and length.
type Error uint8

const (
	OK             Error = iota
	Truncated            // the frame, the IPv4 packet (by its total length) or the UDP datagram (by its length) ends inside the outer headers; or the UDP length claims more than the IPv4 packet holds
	NotIPv4              // outer EtherType is not IPv4 (an 802.1Q tag counts as not IPv4)
	BadIPHeader          // outer IPv4 version is not 4, IHL is below 5 words, or total length is below 20 or past the frame
	IPOptions            // outer IPv4 header has options (IHL above 5 words)
	Fragment             // outer IPv4 packet is a fragment (MF set or a nonzero offset)
	BadChecksum          // outer IPv4 header checksum, or a nonzero UDP checksum, does not verify
	NotLocal             // outer destination is not this node's underlay address
	WrongProtocol        // outer protocol is not UDP (VXLAN), or neither 4 nor 41 (IPIP)
	WrongPort            // UDP destination port is not the tunnel's port
	BadVXLANHeader       // VXLAN I flag missing, or a reserved bit set
	WrongVNI             // VXLAN network identifier is not the tunnel's
	InnerTruncated       // inner frame shorter than an Ethernet header; for IPIP, inner packet shorter than the fixed header of its IP version
	InnerVersion         // IPIP: inner IP version is not 4 for protocol 4, or not 6 for protocol 41
	NumErrors            // number of reasons, OK included; not a reason
)

var errorNames = [NumErrors]string{
	OK:             "ok",
	Truncated:      "truncated",
	NotIPv4:        "not_ipv4",
	BadIPHeader:    "bad_ip_header",
	IPOptions:      "ip_options",
	Fragment:       "fragment",
	BadChecksum:    "bad_checksum",
	NotLocal:       "not_local",
	WrongProtocol:  "wrong_protocol",
	WrongPort:      "wrong_port",
	BadVXLANHeader: "bad_vxlan_header",
	WrongVNI:       "wrong_vni",
	InnerTruncated: "inner_truncated",
	InnerVersion:   "inner_version",
}

// String returns the reason's short snake_case name, suitable as a metric
// label, or "unknown" for a value outside the defined range.
func (e Error) String() string {
	if e < NumErrors {
		return errorNames[e]
	}
	return "unknown"
}
