package api

import (
	"context"
	"net/http"
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
