package packet

// Malformed is the reason Decode rejected a frame. OK (zero) means the frame
// parsed. Each other value names one way a frame can be broken; the pipeline
// counts drops per reason, so a reason is a small dense integer that indexes
// a counter array of length NumMalformed.
type Malformed uint8

const (
	OK                 Malformed = iota
	TruncatedEthernet            // frame shorter than the 14-byte Ethernet header
	TruncatedVLAN                // 802.1Q TPID but no room for the 4-byte tag
	TruncatedARP                 // EtherType ARP but fewer than ARPLen bytes
	BadARP                       // ARP that is not Ethernet/IPv4 (hw/proto type or length)
	TruncatedIPv4                // fewer than 20 bytes, or fewer than IHL bytes
	BadIPVersion                 // version nibble disagrees with the EtherType
	BadIHL                       // IPv4 IHL below 5 words
	BadTotalLength               // IPv4 total length shorter than IHL or longer than the frame
	BadIPv4Checksum              // IPv4 header checksum does not verify
	TruncatedIPv6                // fewer than 40 bytes
	BadPayloadLength             // IPv6 payload length longer than the frame
	BadExtensionHeader           // IPv6 extension header truncated, misplaced or too many
	TruncatedL4                  // TCP, UDP, SCTP, ICMP header shorter than its fixed part
	BadTCPDataOffset             // TCP data offset below 5 words or past the IP payload
	BadUDPLength                 // UDP length below 8 or past the IP payload
	NumMalformed                 // number of reasons, OK included; not a reason
)

var malformedNames = [NumMalformed]string{
	OK:                 "ok",
	TruncatedEthernet:  "truncated_ethernet",
	TruncatedVLAN:      "truncated_vlan",
	TruncatedARP:       "truncated_arp",
	BadARP:             "bad_arp",
	TruncatedIPv4:      "truncated_ipv4",
	BadIPVersion:       "bad_ip_version",
	BadIHL:             "bad_ihl",
	BadTotalLength:     "bad_total_length",
	BadIPv4Checksum:    "bad_ipv4_checksum",
	TruncatedIPv6:      "truncated_ipv6",
	BadPayloadLength:   "bad_payload_length",
	BadExtensionHeader: "bad_extension_header",
	TruncatedL4:        "truncated_l4",
	BadTCPDataOffset:   "bad_tcp_data_offset",
	BadUDPLength:       "bad_udp_length",
}

// String returns the reason's short snake_case name, suitable as a metric
// label, or "unknown" for a value outside the defined range.
func (m Malformed) String() string {
	if m < NumMalformed {
		return malformedNames[m]
	}
	return "unknown"
}
