package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// PolicyList is the answer to Policy: the NetworkPolicy the fast path
// enforces on this node, and what it selects here.
type PolicyList struct {
	// Enforcing says whether a policy is published. False: ringnetd
	// enforces no NetworkPolicy (its cluster file has no policies, or it
	// runs without --cluster and --kubernetes), and every other field is
	// zero.
	Enforcing bool `json:"enforcing"`
	// Generation is the published policy's, which ringnetd raises at each
	// compile (Kubernetes) or reload that changes it (cluster file).
	Generation uint64 `json:"generation"`
	// Pods and Identities are what the policy knows of the whole
	// cluster: the pods it was compiled with, and their identities (one
	// per distinct namespace, labels and named ports).
	Pods       int `json:"pods"`
	Identities int `json:"identities"`
	// LocalEndpoints are the local pods' addresses (as ringnet endpoints
	// lists them); LocalSelected those of a pod some policy selects,
	// LocalUnknown those of no pod the policy knows (no policy selects
	// them, and other pods' policies match them only by ipBlock).
	LocalEndpoints int `json:"localEndpoints"`
	LocalSelected  int `json:"localSelected"`
	LocalUnknown   int `json:"localUnknown"`
	// Policies are the NetworkPolicies, by namespace and name.
	Policies []NetworkPolicy `json:"policies"`
	// Problems are what the compiler could not take as given, and what it
	// did instead (a policy left out, or isolating with no rules).
	Problems []string `json:"problems,omitempty"`
}

// NetworkPolicy is one NetworkPolicy and the pods it selects.
type NetworkPolicy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Types are the directions it isolates its pods in: Ingress and/or
	// Egress; none when it selects no pod or is left out (Problems).
	Types []string `json:"types"`
	// Selected is how many pods it selects on every node; Local are
	// those on this node, by namespace and name.
	Selected int         `json:"selected"`
	Local    []PolicyPod `json:"local"`
}

// PolicyPod is a local pod a policy selects, with its addresses.
type PolicyPod struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
}

// Policy returns the NetworkPolicy the fast path enforces.
func (c *Client) Policy(ctx context.Context) (PolicyList, error) {
	var out PolicyList
	return out, c.call(ctx, http.MethodGet, "/v1/policy", nil, &out)
}

// MaxPolicyPods is how many pods an answer about NetworkPolicy lists for
// one peer or named port; PolicyPods.PodCount says how many there are.
const MaxPolicyPods = 50

// PolicyPods are pods a selector matches: the first MaxPolicyPods, by
// namespace and name ("namespace/name"), and how many there are in all.
type PolicyPods struct {
	Pods     []string `json:"pods,omitempty"`
	PodCount int      `json:"podCount,omitempty"`
}

// EndpointPolicy is the answer to PolicyEndpoint: what NetworkPolicy lets
// one pod do, and why.
type EndpointPolicy struct {
	Generation uint64       `json:"generation"` // the policy's, as in PolicyList
	Pod        PolicyTarget `json:"pod"`
	// Labels and NamespaceLabels are what selectors see of the pod (the
	// namespace's with kubernetes.io/metadata.name); Ports are its named
	// container ports (Name, Protocol, Port), which named ports in
	// policies resolve against; Identity is its policy identity.
	Labels          map[string]string `json:"labels"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	Ports           []PolicyPort      `json:"ports"`
	Identity        uint32            `json:"identity"`
	Ingress         PolicyDirection   `json:"ingress"`
	Egress          PolicyDirection   `json:"egress"`
	// Problems are the compiler's with the policies that select the pod.
	Problems []string `json:"problems,omitempty"`
}

// PolicyTarget is one end of what a NetworkPolicy question is about: a
// pod, or an address of no pod NetworkPolicy knows (Name empty).
type PolicyTarget struct {
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses"`
	// Local: the pod is on this node (an address of it is in the
	// endpoint table), so this node enforces its policy.
	Local bool `json:"local"`
}

// PolicyDirection is one direction (ingress or egress) of a pod's
// NetworkPolicy.
type PolicyDirection struct {
	// IsolatedBy are the NetworkPolicies (namespace/name) that select the
	// pod for this direction. None: the pod is not isolated this way, all
	// traffic is allowed. Some: only what one of Rules allows is; with no
	// Rules, nothing is.
	IsolatedBy []string     `json:"isolatedBy"`
	Rules      []PolicyRule `json:"rules"`
}

// PolicyRule is one rule of a NetworkPolicy, as it resolves now.
type PolicyRule struct {
	Policy string `json:"policy"` // namespace/name
	Index  int    `json:"index"`  // in spec.ingress or spec.egress
	// Peers are its from (ingress) or to (egress); none: every peer, pods
	// and addresses outside the cluster.
	Peers []PolicyPeer `json:"peers"`
	// Ports are its ports; none: every protocol and port.
	Ports []PolicyPort `json:"ports"`
}

// PolicyPeer is a rule's peer: pods by selectors, or an ipBlock.
type PolicyPeer struct {
	// Selector describes the pods, such as "pods app=web in namespace
	// shop" or "all pods in namespaces team=ops"; empty for an ipBlock.
	// The pods are those it matches now.
	Selector string `json:"selector,omitempty"`
	PolicyPods
	IPBlock string   `json:"ipBlock,omitempty"`
	Except  []string `json:"except,omitempty"`
}

// PolicyPort is a port of a rule, or a named port of a pod.
type PolicyPort struct {
	Protocol string `json:"protocol"` // TCP, UDP or SCTP
	// Port is the number, the first of the range to EndPort; 0 without
	// Name: every port of Protocol.
	Port    int    `json:"port,omitempty"`
	EndPort int    `json:"endPort,omitempty"`
	Name    string `json:"name,omitempty"` // a named port
	// Resolved are the numbers a rule's named port has: on the pod itself
	// for ingress, on each destination pod (listed) for egress. None: no
	// pod has it, so it allows nothing.
	Resolved []ResolvedPort `json:"resolved,omitempty"`
}

// ResolvedPort is a number a named port has, and the pods it has it on
// (none: the pod the answer is about).
type ResolvedPort struct {
	Port int `json:"port"`
	PolicyPods
}

// PolicyCheckRequest asks whether NetworkPolicy allows a connection.
type PolicyCheckRequest struct {
	// From and To are each a pod, "namespace/name" (a bare name is in
	// namespace default), or an address.
	From string `json:"from"`
	To   string `json:"to"`
	// Protocol is TCP, UDP, SCTP or ICMP, and Port the destination port
	// for the first three. No protocol: which rules allow any traffic
	// from From to To, and on which ports.
	Protocol string `json:"protocol,omitempty"`
	Port     int    `json:"port,omitempty"`
}

// Verdicts of one direction of PolicyVerdict.
const (
	PolicyAllowed     = "allowed"      // a rule allows it
	PolicyDenied      = "denied"       // the pod is isolated and no rule allows it
	PolicyNotIsolated = "not_isolated" // no policy selects the pod this way: all traffic is allowed
	PolicyNotChecked  = "not_checked"  // this end is no pod NetworkPolicy knows: nothing checks it
)

// PolicyVerdict is the answer to PolicyCheck: whether NetworkPolicy
// allows a connection, and which rule does or which policies isolate it.
// The fast path decides it from the same table (on the source's node for
// egress, the destination's for ingress) at the connection's first
// packet.
type PolicyVerdict struct {
	Generation uint64       `json:"generation"`
	From       PolicyTarget `json:"from"` // with the one address checked
	To         PolicyTarget `json:"to"`
	Protocol   string       `json:"protocol,omitempty"`
	Port       int          `json:"port,omitempty"`
	// Allowed: both directions allow the connection (without a protocol:
	// some traffic; the rules say on which ports).
	Allowed bool                   `json:"allowed"`
	Egress  PolicyDirectionVerdict `json:"egress"`  // From's
	Ingress PolicyDirectionVerdict `json:"ingress"` // To's
}

// PolicyDirectionVerdict is one direction's verdict on a connection.
type PolicyDirectionVerdict struct {
	Verdict    string   `json:"verdict"` // PolicyAllowed, PolicyDenied, PolicyNotIsolated or PolicyNotChecked
	IsolatedBy []string `json:"isolatedBy,omitempty"`
	// Rules are every rule of the isolating policies this way.
	Rules []PolicyRuleVerdict `json:"rules,omitempty"`
}

// PolicyRuleVerdict is what one rule says of a connection.
type PolicyRuleVerdict struct {
	Policy string `json:"policy"`
	Index  int    `json:"index"`
	// Peer: its peers include the other end (and it allows it some
	// traffic); Allows: it allows the connection (without a protocol: as
	// Peer).
	Peer   bool `json:"peer"`
	Allows bool `json:"allows"`
	// Ports, when Peer, are what it allows the other end, named ports
	// resolved; none: every protocol and port.
	Ports []PolicyPort `json:"ports,omitempty"`
}

// policyCheckRequest reads a PolicyCheckRequest from a query and checks
// it: from and to are required; TCP, UDP and SCTP need a port, ICMP and
// no protocol take none.
func policyCheckRequest(q url.Values) (PolicyCheckRequest, error) {
	r := PolicyCheckRequest{From: q.Get("from"), To: q.Get("to"), Protocol: q.Get("protocol")}
	invalid := func(format string, args ...any) error {
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf(format, args...)}
	}
	if r.From == "" || r.To == "" {
		return r, invalid("from and to are required: each namespace/name, a name (namespace default) or an address")
	}
	if p := q.Get("port"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return r, invalid("port %q: want 1-65535", p)
		}
		r.Port = n
	}
	switch r.Protocol {
	case "TCP", "UDP", "SCTP":
		if r.Port == 0 {
			return r, invalid("protocol %s needs a port", r.Protocol)
		}
	case "ICMP", "":
		if r.Port != 0 {
			return r, invalid("port %d needs protocol TCP, UDP or SCTP", r.Port)
		}
	default:
		return r, invalid("protocol %q: want TCP, UDP, SCTP or ICMP", r.Protocol)
	}
	return r, nil
}

// PolicyEndpoint explains what NetworkPolicy lets pod do: pod is
// "namespace/name" (a bare name is in namespace default) or an address of
// the pod.
func (c *Client) PolicyEndpoint(ctx context.Context, pod string) (EndpointPolicy, error) {
	var out EndpointPolicy
	return out, c.call(ctx, http.MethodGet, "/v1/policy/endpoint?"+url.Values{"pod": {pod}}.Encode(), nil, &out)
}

// PolicyCheck asks whether NetworkPolicy allows a connection, and why.
func (c *Client) PolicyCheck(ctx context.Context, r PolicyCheckRequest) (PolicyVerdict, error) {
	q := url.Values{"from": {r.From}, "to": {r.To}}
	if r.Protocol != "" {
		q.Set("protocol", r.Protocol)
	}
	if r.Port != 0 {
		q.Set("port", strconv.Itoa(r.Port))
	}
	var out PolicyVerdict
	return out, c.call(ctx, http.MethodGet, "/v1/policy/check?"+q.Encode(), nil, &out)
}
