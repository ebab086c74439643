package policy

import (
	"fmt"
	"net/netip"
)

// The compiler's input: network policies with their selectors already
// resolved to identities by the agent. Kubernetes types stop at the agent;
// these are plain values.

// Protocols a [Port] may name, as in Kubernetes NetworkPolicyPort.
const (
	TCP  uint8 = 6
	UDP  uint8 = 17
	SCTP uint8 = 132
)

// Policy is one network policy.
type Policy struct {
	// Name says which policy an error is about, e.g. "namespace/name".
	Name string
	// Selected are the identities of the endpoints the policy applies to
	// (its podSelector within its namespace, resolved).
	Selected []uint32
	// Types are the directions the policy applies to (policyTypes). An
	// endpoint selected for a direction by any policy is default-deny in
	// that direction, even if the policy has no rules for it.
	Types []Direction
	// Ingress and Egress are the allow rules; a packet is allowed if any
	// rule of any policy selecting its endpoint allows it.
	Ingress []Rule
	Egress  []Rule
}

// Rule allows traffic from (ingress) or to (egress) its peers on its
// ports: it matches a packet when some peer matches and some port matches.
type Rule struct {
	Peers []Peer // no peers: every peer, pod or not
	Ports []Port // no ports: every protocol and port
}

// Peer is a set of pods or an address block; set exactly one of the two.
type Peer struct {
	// Identities are the identities of the pods a peer selector (pod and
	// namespace selector) picks. An empty list with no CIDR matches
	// nothing, like a selector that picks no pods.
	Identities []uint32
	// CIDR with Except is an ipBlock: addresses in CIDR but in none of
	// Except. It matches by the peer's address, pod or not.
	CIDR   netip.Prefix
	Except []netip.Prefix
}

// Port is a protocol with a port or a port range.
type Port struct {
	Proto   uint8  // TCP, UDP or SCTP
	Port    uint16 // 0: every port of Proto
	EndPort uint16 // 0: only Port; otherwise the range Port..EndPort
}

// rules returns p's rules for direction d.
func (p *Policy) rules(d Direction) []Rule {
	if d == Ingress {
		return p.Ingress
	}
	return p.Egress
}

// applies reports whether p's Types include d.
func (p *Policy) applies(d Direction) bool {
	for _, t := range p.Types {
		if t == d {
			return true
		}
	}
	return false
}

func (p *Policy) validate() error {
	for _, id := range p.Selected {
		if id == 0 {
			return fmt.Errorf("selects identity 0, which is reserved for peers that are not pods")
		}
	}
	for _, t := range p.Types {
		if t != Ingress && t != Egress {
			return fmt.Errorf("types: unknown %v", t)
		}
	}
	for _, d := range []Direction{Ingress, Egress} {
		for i, r := range p.rules(d) {
			if err := r.validate(); err != nil {
				return fmt.Errorf("%s rule %d: %w", d, i, err)
			}
		}
	}
	return nil
}

func (r *Rule) validate() error {
	for i, pe := range r.Peers {
		switch {
		case pe.CIDR.IsValid() && len(pe.Identities) > 0:
			return fmt.Errorf("peer %d has both identities and a CIDR", i)
		case !pe.CIDR.IsValid() && len(pe.Except) > 0:
			return fmt.Errorf("peer %d has excepts but no CIDR", i)
		}
		for _, id := range pe.Identities {
			if id == 0 {
				return fmt.Errorf("peer %d: identity 0 is reserved for peers that are not pods", i)
			}
		}
		if pe.CIDR.IsValid() {
			if err := checkPrefix(pe.CIDR); err != nil {
				return fmt.Errorf("peer %d: %w", i, err)
			}
			for _, e := range pe.Except {
				if err := checkPrefix(e); err != nil {
					return fmt.Errorf("peer %d: except: %w", i, err)
				}
			}
		}
	}
	for i, po := range r.Ports {
		switch {
		case po.Proto != TCP && po.Proto != UDP && po.Proto != SCTP:
			return fmt.Errorf("port %d: protocol %d is not TCP, UDP or SCTP", i, po.Proto)
		case po.EndPort != 0 && po.Port == 0:
			return fmt.Errorf("port %d: end port %d without a port", i, po.EndPort)
		case po.EndPort != 0 && po.EndPort < po.Port:
			return fmt.Errorf("port %d: end port %d below port %d", i, po.EndPort, po.Port)
		}
	}
	return nil
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("invalid prefix %s", p)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("prefix %s: write IPv4-mapped blocks as IPv4", p)
	}
	return nil
}

// span is the port range a Port allows: lo..hi inclusive.
func (po Port) span() portRange {
	switch {
	case po.Port == 0:
		return portRange{0, 0xffff}
	case po.EndPort == 0:
		return portRange{po.Port, po.Port}
	}
	return portRange{po.Port, po.EndPort}
}
