// Package encap will hold VXLAN (RFC 7348) and IPIP (RFC 2003)
// encapsulation for cross-node pod traffic. Not built yet: ringnet forwards
// between the pods of one node only.
package encap
