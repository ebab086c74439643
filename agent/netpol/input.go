package netpol

import (
	"net/netip"
	"strings"

	"github.com/ringnet/ringnet/tables/policy"
)

// The compiler's input: the parts of Namespaces, Pods and NetworkPolicies
// that policy reads, as plain values (agent/k8s converts the Kubernetes
// objects). Field names and meanings follow networking.k8s.io/v1; the
// package documentation says how each is compiled.

// Namespace is a namespace as namespaceSelectors see it.
type Namespace struct {
	Name   string
	Labels map[string]string // the compiler sets kubernetes.io/metadata.name itself
}

// LabelMetadataName is the label the API server gives every namespace,
// its name; namespaceSelectors may select on it.
const LabelMetadataName = "kubernetes.io/metadata.name"

// PodRef names a pod.
type PodRef struct {
	Namespace, Name string
}

func (r PodRef) String() string { return r.Namespace + "/" + r.Name }

// Pod is a pod as policy sees it.
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
	// IPs are the pod's addresses (status.podIPs). A pod without
	// addresses (pending, host network, finished) still gets an identity
	// but no address maps to it.
	IPs []netip.Addr
	// Ports are the named ports of its containers (spec.containers[].ports
	// with a name), which named ports in policies resolve against. Ports
	// without a name are ignored.
	Ports []NamedPort
}

// NamedPort is a container port with a name.
type NamedPort struct {
	Name  string
	Proto uint8 // policy.TCP, policy.UDP or policy.SCTP
	Port  uint16
}

// Policy types (spec.policyTypes).
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

// NetworkPolicy is a networking.k8s.io/v1 NetworkPolicy.
type NetworkPolicy struct {
	Namespace, Name string
	// PodSelector selects the pods of Namespace the policy applies to; the
	// empty selector selects them all.
	PodSelector LabelSelector
	// PolicyTypes are "Ingress" and/or "Egress". Empty: Ingress, and
	// Egress too when Egress has rules (the API server's default).
	PolicyTypes []string
	Ingress     []Rule // spec.ingress: peers are spec.ingress[].from
	Egress      []Rule // spec.egress: peers are spec.egress[].to
}

// Rule is an ingress or egress rule. It allows traffic that matches one of
// its peers and one of its ports.
type Rule struct {
	Peers []Peer       // none: every peer, pod or not
	Ports []PolicyPort // none: every protocol and port
}

// Peer is one entry of from or to: pods by selectors, or an ipBlock. Set
// PodSelector and/or NamespaceSelector, or IPBlock alone.
type Peer struct {
	PodSelector       *LabelSelector
	NamespaceSelector *LabelSelector
	IPBlock           *IPBlock
}

// IPBlock is a CIDR minus the CIDRs in Except, as the API writes them
// ("10.0.0.0/16"); each except must lie strictly inside CIDR.
type IPBlock struct {
	CIDR   string
	Except []string
}

// Protocols of a PolicyPort.
const (
	ProtocolTCP  = "TCP"
	ProtocolUDP  = "UDP"
	ProtocolSCTP = "SCTP"
)

// PolicyPort is one entry of a rule's ports.
type PolicyPort struct {
	Protocol string   // ProtocolTCP, ProtocolUDP or ProtocolSCTP; "" is TCP
	Port     *PortRef // nil: every port of Protocol
	// EndPort, when not 0, makes a numeric Port the range Port..EndPort.
	EndPort uint16
}

// PortRef is a port by number or by name, like the API's IntOrString: set
// exactly one of the two.
type PortRef struct {
	Num  uint16 // 1-65535
	Name string // a container port name (an IANA service name, e.g. "http")
}

// Label selector operators.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
)

// LabelSelector is a metav1.LabelSelector: every MatchLabels pair and
// every expression must hold. The empty selector selects everything.
type LabelSelector struct {
	MatchLabels      map[string]string
	MatchExpressions []Requirement
}

// Requirement is one selector expression. In and NotIn need Values,
// Exists and DoesNotExist take none. NotIn and DoesNotExist hold for
// objects without the key.
type Requirement struct {
	Key      string
	Operator string
	Values   []string
}

// selector is a validated LabelSelector.
type selector struct {
	labels []labelPair // MatchLabels, sorted by key
	exprs  []Requirement
	key    string // canonical form, for memoizing what it selects
}

type labelPair struct{ k, v string }

// matches reports whether an object with labels l is selected.
func (s *selector) matches(l map[string]string) bool {
	for _, p := range s.labels {
		if v, ok := l[p.k]; !ok || v != p.v {
			return false
		}
	}
	for i := range s.exprs {
		r := &s.exprs[i]
		v, ok := l[r.Key]
		switch r.Operator {
		case OpIn:
			if !ok || !contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		}
	}
	return true
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// ProtocolNumber maps a protocol as the API writes it (a PolicyPort's or
// a container port's: "TCP", "UDP", "SCTP", or "" for TCP) to its IP
// protocol number, policy.TCP, policy.UDP or policy.SCTP.
func ProtocolNumber(s string) (uint8, bool) {
	switch s {
	case "", ProtocolTCP:
		return policy.TCP, true
	case ProtocolUDP:
		return policy.UDP, true
	case ProtocolSCTP:
		return policy.SCTP, true
	}
	return 0, false
}

// ValidPortName reports whether s is a valid port name (IANA_SVC_NAME,
// as the API validates container port names): 1-15 lowercase letters,
// digits and hyphens, at least one letter, no hyphen at either end or
// next to another.
func ValidPortName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
			letter = true
		case '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return letter
}
