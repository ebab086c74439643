package api

import (
	"context"
	"net/http"
	"time"
)

// Flow is one decision of the fast path about a new connection (see
// agent/flowlog): a line of the flow log, an entry of FlowList.
type Flow struct {
	Time     time.Time `json:"time"`
	Verdict  string    `json:"verdict"` // allowed, denied, no_backend, no_nat_port, conntrack_busy
	Protocol string    `json:"protocol"`
	Src      string    `json:"src"` // address:port as the packet arrived
	Dst      string    `json:"dst"`
	// TranslatedSrc and TranslatedDst are what the connection's packets
	// become: the service backend (DNAT), the node's address and port
	// (masquerade), the gateway (hairpin). Empty: not translated.
	TranslatedSrc string `json:"translated_src,omitempty"`
	TranslatedDst string `json:"translated_dst,omitempty"`
	// Interface is the host interface of the pod port the packet came
	// from; empty for the host and the uplink.
	Interface string `json:"interface,omitempty"`
	// SrcPod and DstPod are "namespace/name" of the pods at either end,
	// as NetworkPolicy knows them (empty: no pod it knows, or no policy).
	SrcPod string `json:"src_pod,omitempty"`
	DstPod string `json:"dst_pod,omitempty"`
	// Policies, for a denied flow, are the NetworkPolicies that isolate
	// its pods (selecting the source for egress, the destination for
	// ingress) and of which none allows it.
	Policies []string `json:"policies,omitempty"`
}

// FlowList is the answer to Flows: the latest flows ringnetd keeps,
// oldest first.
type FlowList struct {
	Flows []Flow `json:"flows"`
	// Total counts the flows recorded since ringnetd started, by verdict.
	Total map[string]uint64 `json:"total"`
	// Lost counts the flow events the fast path dropped because the agent
	// had not read them in time.
	Lost uint64 `json:"lost"`
}

// Flows lists the latest flows.
func (c *Client) Flows(ctx context.Context) (FlowList, error) {
	var out FlowList
	return out, c.call(ctx, http.MethodGet, "/v1/flows", nil, &out)
}
