// Package api is the contract between ringnetd and its clients, the CNI
// plugin and the ringnet CLI: JSON over HTTP on a unix socket (default
// /run/ringnet/ringnet.sock, mode 0600, so only root can call it).
//
// ADD is two calls around the plugin's own work in the pod's namespace:
// Allocate (addresses, the host interface name, MTU and queue count the
// daemon wants), then, once the veth exists, Attach (the daemon attaches
// XDP and AF_XDP and answers only when the port forwards). DEL is Release;
// CHECK is Check; STATUS is Status; GC is GC.
//
// The CLI reads the daemon's state through GET requests that change
// nothing: Status, Endpoints (the local pods' addresses and ports), Routes
// (where other nodes' pod CIDRs go), Peers (the other nodes and how they
// are reached), Services (the service table the fast path load-balances
// with), Policy (the NetworkPolicy it enforces and the local pods each
// policy selects), PolicyEndpoint (what NetworkPolicy lets one pod do, rule
// by rule), PolicyCheck (whether it allows one connection, and by which
// rule) and Stats (the dataplane's counters). Each answer is one snapshot,
// read off the dataplane's tables when asked; none of it is on the fast
// path.
//
// The package imports only the standard library, so the plugin stays small
// and never links client-go.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// DefaultSocket is where ringnetd listens unless told otherwise.
const DefaultSocket = "/run/ringnet/ringnet.sock"

// MaxRequestBytes bounds a request body; larger ones are refused.
const MaxRequestBytes = 64 << 10

// MaxReplyBytes bounds a reply the client reads: room for the routes of
// a cluster of some ten thousand nodes.
const MaxReplyBytes = 16 << 20

// HostIfname is the host-side interface name of a pod interface: "rn"
// and 11 hex digits of a hash of container ID and interface name, so that
// it is stable across calls and restarts and fits IFNAMSIZ.
func HostIfname(containerID, ifName string) string {
	h := sha256.Sum256([]byte(containerID + "/" + ifName))
	return "rn" + hex.EncodeToString(h[:])[:11]
}

// Pod identifies a pod interface and carries what the runtime told the
// plugin about it.
type Pod struct {
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	Netns        string `json:"netns,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
}

// AllocateResponse tells the plugin how to build the pod's port.
type AllocateResponse struct {
	IPv4       string `json:"ipv4,omitempty"`
	IPv6       string `json:"ipv6,omitempty"`
	HostIfname string `json:"hostIfname"`
	// PodMAC is the MAC to give the pod end; empty from older daemons
	// (the kernel then chooses one).
	PodMAC string `json:"podMAC,omitempty"`
	MTU    int    `json:"mtu"`
	Queues int    `json:"queues"`
}

// AttachRequest asks the daemon to attach the pod's port.
type AttachRequest struct {
	Pod
	HostIfname string `json:"hostIfname"`
	PodMAC     string `json:"podMAC"`
}

// CheckResponse is what the daemon knows of a pod interface.
type CheckResponse struct {
	IPv4       string `json:"ipv4,omitempty"`
	IPv6       string `json:"ipv6,omitempty"`
	HostIfname string `json:"hostIfname,omitempty"`
	Attached   bool   `json:"attached"`
}

// ReleaseResponse says what was released, so the plugin can remove the
// veth. Found is false for an unknown pod (not an error: DEL is idempotent).
type ReleaseResponse struct {
	Found      bool   `json:"found"`
	HostIfname string `json:"hostIfname,omitempty"`
}

// Status is the daemon's health and the size of what it serves.
type Status struct {
	Ready     bool     `json:"ready"`
	PodCIDRs  []string `json:"podCIDRs"`
	Ports     int      `json:"ports"`     // attached ports: pods' and the uplink
	Allocated int      `json:"allocated"` // pod interfaces with addresses
	Workers   int      `json:"workers,omitempty"`
	// Uplink is the node's uplink to the other nodes; nil when the daemon
	// runs without a cluster (--cluster, --kubernetes).
	Uplink          *Uplink `json:"uplink,omitempty"`
	Peers           int     `json:"peers"`           // other nodes
	PeersUnresolved int     `json:"peersUnresolved"` // of which the next hop's MAC is not known yet
	// Tables is the entries of each table the fast path reads: endpoints
	// (pod addresses), ports, routes, peers.
	Tables map[string]int `json:"tables,omitempty"`
}

// Uplink is the device this node reaches the other nodes through.
type Uplink struct {
	Interface string `json:"interface"`
	Address   string `json:"address"` // the node's underlay IPv4 address: its tunnel endpoint
	VtepMAC   string `json:"vtepMAC"` // inner source MAC of the VXLAN frames it sends
	VXLANPort int    `json:"vxlanPort"`
	VNI       int    `json:"vni"`
}

// Endpoint is one address of a local pod: where the fast path delivers it
// and, if the pod came through the CNI plugin, who it is. A pod interface
// that has addresses but no attached port (its veth is gone, or ADD has
// not attached it yet) is listed with Attached false.
type Endpoint struct {
	Address      string `json:"address"`
	Interface    string `json:"interface"`      // host end of the pod's veth
	Port         *int   `json:"port,omitempty"` // the port's ID in the dataplane; nil when not attached
	MAC          string `json:"mac,omitempty"`  // the pod's MAC
	Attached     bool   `json:"attached"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	ContainerID  string `json:"containerID,omitempty"`
	IfName       string `json:"ifName,omitempty"` // the pod's interface, e.g. eth0
}

// EndpointList is the answer to Endpoints, sorted by address, IPv4 first.
type EndpointList struct {
	Endpoints []Endpoint `json:"endpoints"`
}

// Route kinds and tunnels, as package tables/route names them.
const (
	RouteLocalPort  = "LocalPort"
	RouteRemoteNode = "RemoteNode"
	RouteSlowPath   = "SlowPath"
	RouteDrop       = "Drop"

	TunnelDirect = "Direct"
	TunnelVXLAN  = "VXLAN"
	TunnelIPIP   = "IPIP"
)

// Route is one entry of the route table: where the fast path sends a
// packet whose destination is in Prefix and is no local pod.
type Route struct {
	Prefix string `json:"prefix"`
	Kind   string `json:"kind"` // RouteLocalPort, RouteRemoteNode, RouteSlowPath or RouteDrop
	// RemoteNode routes: the peer node, its underlay address and the
	// tunnel (TunnelDirect, TunnelVXLAN or TunnelIPIP).
	Peer        string `json:"peer,omitempty"`
	PeerAddress string `json:"peerAddress,omitempty"`
	Tunnel      string `json:"tunnel,omitempty"`
	// LocalPort routes: the port's ID, or nil for "the pod's own port,
	// from the endpoint table".
	Port *int `json:"port,omitempty"`
}

// RouteList is the answer to Routes, sorted by prefix, IPv4 first.
type RouteList struct {
	Routes []Route `json:"routes"`
}

// Peer is another node as this one reaches it.
type Peer struct {
	Name    string `json:"name"`
	Address string `json:"address"` // its underlay IPv4 address
	Tunnel  string `json:"tunnel"`  // TunnelDirect, TunnelVXLAN or TunnelIPIP
	// NextHopMAC is the underlay next hop's MAC (the peer's, or the
	// router's when it is on another subnet); empty while unresolved, and
	// until then packets for the peer are dropped as peer_unresolved.
	NextHopMAC string `json:"nextHopMAC,omitempty"`
	Resolved   bool   `json:"resolved"`
	// VtepMAC is the inner destination MAC of VXLAN frames for the peer;
	// empty when none is known yet.
	VtepMAC  string   `json:"vtepMAC,omitempty"`
	PodCIDRs []string `json:"podCIDRs"` // the prefixes routed to it
}

// PeerList is the answer to Peers, in the order of the cluster's nodes.
type PeerList struct {
	Peers []Peer `json:"peers"`
}

// Service is one entry of the fast path's service table: an address,
// protocol and port clients connect to (a cluster IP, a NodePort on the
// node's address, an external IP), and the backends the fast path
// spreads its connections over by Maglev hashing.
type Service struct {
	VIP      string `json:"vip"`
	Protocol string `json:"protocol"` // TCP, UDP, SCTP, or another IP protocol's number
	Port     int    `json:"port"`
	// Backends are "address:port" ("[address]:port" for IPv6), sorted;
	// none: the fast path refuses the entry's connections.
	Backends []string `json:"backends"`
	// AffinitySeconds is sessionAffinity ClientIP's timeout: a client's
	// new connections go to its last backend for this long. 0: none.
	AffinitySeconds int `json:"affinitySeconds"`
	// External: clients outside the cluster reach the entry (a NodePort
	// or an external IP); they are masqueraded to the node's address
	// unless Local (externalTrafficPolicy Local: this node's endpoints
	// only, and the clients keep their address).
	External bool `json:"external"`
	Local    bool `json:"local"`
	// TableSize is the number of slots of the entry's Maglev lookup
	// table; 0 without backends.
	TableSize int `json:"tableSize"`
}

// ServiceList is the answer to Services, sorted by address (IPv4 first),
// port and protocol.
type ServiceList struct {
	// Generation is the service table's, which ringnetd raises at each
	// change; 0 with no table.
	Generation uint64    `json:"generation"`
	Services   []Service `json:"services"`
}

// Port kinds in Stats.
const (
	PortPod    = "pod"
	PortUplink = "uplink"
	PortHost   = "host" // the slow path's port to the node's stack
)

// Stats are the dataplane's counters since the daemon started.
type Stats struct {
	Ports   []PortStats   `json:"ports"`
	Workers []WorkerStats `json:"workers"`
	// Reasons is every outcome a frame can have, in the dataplane's
	// order, with its group and count, zero counts included.
	Reasons []ReasonCount `json:"reasons"`
}

// PortStats are one port's counters, summed over its workers' sockets.
type PortStats struct {
	ID        int    `json:"id"`
	Interface string `json:"interface"`
	Kind      string `json:"kind"` // PortPod, PortUplink or PortHost
	RxFrames  uint64 `json:"rxFrames"`
	TxFrames  uint64 `json:"txFrames"`
	// The AF_XDP sockets' counters (zero for the host port, which has
	// none): what the kernel dropped or found wrong, and the wakeups.
	XSKRxDropped       uint64 `json:"xskRxDropped"`
	XSKRxRingFull      uint64 `json:"xskRxRingFull"`
	XSKRxFillRingEmpty uint64 `json:"xskRxFillRingEmpty"`
	XSKRxInvalidDescs  uint64 `json:"xskRxInvalidDescs"`
	XSKTxInvalidDescs  uint64 `json:"xskTxInvalidDescs"`
	XSKTxKicks         uint64 `json:"xskTxKicks"`
	XSKTxKickErrors    uint64 `json:"xskTxKickErrors"`
}

// WorkerStats are one fast-path worker's frames, by group of their
// reasons (see ReasonCount), and how busy it is.
type WorkerStats struct {
	ID        int     `json:"id"`
	Forwarded uint64  `json:"forwarded"` // GroupForwarded
	Punted    uint64  `json:"punted"`    // GroupPunted
	Dropped   uint64  `json:"dropped"`   // GroupDropped
	Busy      float64 `json:"busy"`      // share of its time since it started spent on frames, 0 to 1
}

// Groups of reasons.
const (
	// GroupForwarded: delivered by the fast path: forwarded, answered for
	// the gateway, sent to or received from a peer node, and the slow
	// path's own stages (host_rx, host_tx).
	GroupForwarded = "forwarded"
	// GroupPunted: a punt-list class within its rate limit: handed to the
	// node's stack through the slow path, or answered with an ICMP error.
	GroupPunted = "punted"
	// GroupDropped: every other reason.
	GroupDropped = "dropped"
)

// ReasonCount is how many frames ended with one reason.
type ReasonCount struct {
	Reason string `json:"reason"` // as in the metrics, e.g. "ttl_expired"
	Group  string `json:"group"`  // GroupForwarded, GroupPunted or GroupDropped
	Count  uint64 `json:"count"`
}

// GCRequest lists the attachments the runtime still has; the daemon
// releases every other one.
type GCRequest struct {
	Valid []Pod `json:"valid"`
}

// GCResponse lists what GC released.
type GCResponse struct {
	Released []Pod `json:"released"`
}

// Error codes the daemon returns.
const (
	CodeInvalid       = "invalid_request"
	CodePoolExhausted = "pool_exhausted"
	CodeNotFound      = "not_found"
	CodeInternal      = "internal"
)

// Error is a failure reported by the daemon.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// ErrDaemonUnavailable wraps failures to reach the daemon at all.
var ErrDaemonUnavailable = errors.New("ringnetd is not reachable")

// ErrUnsupported wraps a request the daemon does not know: it is older
// than the client.
var ErrUnsupported = errors.New("ringnetd does not serve this request (is it older than this client?)")

// Client calls ringnetd over its socket.
type Client struct {
	Socket  string
	Timeout time.Duration // per call; default 30s
	http    *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	c := &Client{Socket: socket, Timeout: 30 * time.Second}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	return c
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://ringnetd"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("ringnetd's socket %s: permission denied: only root may use it", c.Socket)
		}
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w at %s: %v", ErrDaemonUnavailable, c.Socket, err)
		}
		return fmt.Errorf("ringnetd %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxReplyBytes+1))
	if err != nil {
		return fmt.Errorf("ringnetd %s: read reply: %w", path, err)
	}
	if len(data) > MaxReplyBytes {
		return fmt.Errorf("ringnetd %s: reply larger than %d bytes", path, MaxReplyBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
				return fmt.Errorf("%w: %s %s at %s", ErrUnsupported, method, path, c.Socket)
			}
			return fmt.Errorf("ringnetd %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))
		}
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("ringnetd %s: decode reply: %w", path, err)
	}
	return nil
}

// Allocate gets (or, on a repeated call, gets again) the pod's addresses.
func (c *Client) Allocate(ctx context.Context, p Pod) (AllocateResponse, error) {
	var out AllocateResponse
	return out, c.call(ctx, http.MethodPost, "/v1/allocate", p, &out)
}

// Attach attaches the pod's port; it returns once the port forwards.
func (c *Client) Attach(ctx context.Context, r AttachRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/attach", r, nil)
}

// Release detaches the pod's port and frees its addresses.
func (c *Client) Release(ctx context.Context, p Pod) (ReleaseResponse, error) {
	var out ReleaseResponse
	return out, c.call(ctx, http.MethodPost, "/v1/release", p, &out)
}

// Check returns what the daemon knows of the pod interface.
func (c *Client) Check(ctx context.Context, p Pod) (CheckResponse, error) {
	var out CheckResponse
	return out, c.call(ctx, http.MethodPost, "/v1/check", p, &out)
}

// Status returns the daemon's health.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.call(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// GC releases every attachment not in valid.
func (c *Client) GC(ctx context.Context, valid []Pod) (GCResponse, error) {
	var out GCResponse
	return out, c.call(ctx, http.MethodPost, "/v1/gc", GCRequest{Valid: valid}, &out)
}

// Endpoints lists the local pods' addresses and their ports.
func (c *Client) Endpoints(ctx context.Context) (EndpointList, error) {
	var out EndpointList
	return out, c.call(ctx, http.MethodGet, "/v1/endpoints", nil, &out)
}

// Routes lists the route table.
func (c *Client) Routes(ctx context.Context) (RouteList, error) {
	var out RouteList
	return out, c.call(ctx, http.MethodGet, "/v1/routes", nil, &out)
}

// Peers lists the other nodes.
func (c *Client) Peers(ctx context.Context) (PeerList, error) {
	var out PeerList
	return out, c.call(ctx, http.MethodGet, "/v1/peers", nil, &out)
}

// Services lists the service table.
func (c *Client) Services(ctx context.Context) (ServiceList, error) {
	var out ServiceList
	return out, c.call(ctx, http.MethodGet, "/v1/services", nil, &out)
}

// Stats returns the dataplane's counters.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	return out, c.call(ctx, http.MethodGet, "/v1/stats", nil, &out)
}

// Handler is what the daemon implements: the CNI plugin's calls, then
// the read-only views.
type Handler interface {
	Allocate(context.Context, Pod) (AllocateResponse, error)
	Attach(context.Context, AttachRequest) error
	Release(context.Context, Pod) (ReleaseResponse, error)
	Check(context.Context, Pod) (CheckResponse, error)
	Status(context.Context) (Status, error)
	GC(context.Context, GCRequest) (GCResponse, error)

	Endpoints(context.Context) (EndpointList, error)
	Routes(context.Context) (RouteList, error)
	Peers(context.Context) (PeerList, error)
	Services(context.Context) (ServiceList, error)
	Stats(context.Context) (Stats, error)
	Flows(context.Context) (FlowList, error)
	Policy(context.Context) (PolicyList, error)
	PolicyEndpoint(ctx context.Context, pod string) (EndpointPolicy, error)
	PolicyCheck(context.Context, PolicyCheckRequest) (PolicyVerdict, error)
}

// checkIDs rejects a container ID or interface name the CNI spec does not
// allow. A '/' in either would make two attachments one: allocations are
// keyed by "containerID/ifName".
func checkIDs(containerID, ifName string) error {
	switch {
	case containerID == "" || ifName == "":
		return &Error{Code: CodeInvalid, Message: "containerID and ifName are required"}
	case strings.ContainsAny(containerID, "/\x00") || strings.ContainsAny(ifName, "/\x00") || len(ifName) > 15 || ifName == "." || ifName == "..":
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("containerID %q or ifName %q is not valid (no '/', ifName at most 15 bytes)", containerID, ifName)}
	}
	return nil
}

// NewServer returns an HTTP server for h with bounded requests and
// timeouts. Errors of type *Error keep their code; others are internal.
func NewServer(h Handler) *http.Server {
	mux := http.NewServeMux()
	handle := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := fn(r)
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				e, ok := err.(*Error)
				if !ok {
					e = &Error{Code: CodeInternal, Message: err.Error()}
				}
				status := http.StatusInternalServerError
				switch e.Code {
				case CodeInvalid:
					status = http.StatusBadRequest
				case CodeNotFound:
					status = http.StatusNotFound
				case CodePoolExhausted:
					status = http.StatusServiceUnavailable
				}
				w.WriteHeader(status)
				json.NewEncoder(w).Encode(e)
				return
			}
			json.NewEncoder(w).Encode(out)
		})
	}
	decode := func(r *http.Request, v any) error {
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return &Error{Code: CodeInvalid, Message: "bad request body: " + err.Error()}
		}
		if dec.More() {
			return &Error{Code: CodeInvalid, Message: "bad request body: data after the JSON object"}
		}
		return nil
	}
	pod := func(r *http.Request) (Pod, error) {
		var p Pod
		if err := decode(r, &p); err != nil {
			return p, err
		}
		return p, checkIDs(p.ContainerID, p.IfName)
	}
	handle("POST /v1/allocate", func(r *http.Request) (any, error) {
		p, err := pod(r)
		if err != nil {
			return nil, err
		}
		return h.Allocate(r.Context(), p)
	})
	handle("POST /v1/attach", func(r *http.Request) (any, error) {
		var a AttachRequest
		if err := decode(r, &a); err != nil {
			return nil, err
		}
		if a.ContainerID == "" || a.IfName == "" || a.HostIfname == "" || a.PodMAC == "" {
			return nil, &Error{Code: CodeInvalid, Message: "containerID, ifName, hostIfname and podMAC are required"}
		}
		if err := checkIDs(a.ContainerID, a.IfName); err != nil {
			return nil, err
		}
		return struct{}{}, h.Attach(r.Context(), a)
	})
	handle("POST /v1/release", func(r *http.Request) (any, error) {
		p, err := pod(r)
		if err != nil {
			return nil, err
		}
		return h.Release(r.Context(), p)
	})
	handle("POST /v1/check", func(r *http.Request) (any, error) {
		p, err := pod(r)
		if err != nil {
			return nil, err
		}
		return h.Check(r.Context(), p)
	})
	handle("GET /v1/status", func(r *http.Request) (any, error) { return h.Status(r.Context()) })
	handle("GET /v1/endpoints", func(r *http.Request) (any, error) { return h.Endpoints(r.Context()) })
	handle("GET /v1/routes", func(r *http.Request) (any, error) { return h.Routes(r.Context()) })
	handle("GET /v1/peers", func(r *http.Request) (any, error) { return h.Peers(r.Context()) })
	handle("GET /v1/services", func(r *http.Request) (any, error) { return h.Services(r.Context()) })
	handle("GET /v1/stats", func(r *http.Request) (any, error) { return h.Stats(r.Context()) })
	handle("GET /v1/flows", func(r *http.Request) (any, error) { return h.Flows(r.Context()) })
	handle("GET /v1/policy", func(r *http.Request) (any, error) { return h.Policy(r.Context()) })
	handle("GET /v1/policy/endpoint", func(r *http.Request) (any, error) {
		pod := r.URL.Query().Get("pod")
		if pod == "" {
			return nil, &Error{Code: CodeInvalid, Message: "pod is required: namespace/name, a name (namespace default) or an address"}
		}
		return h.PolicyEndpoint(r.Context(), pod)
	})
	handle("GET /v1/policy/check", func(r *http.Request) (any, error) {
		req, err := policyCheckRequest(r.URL.Query())
		if err != nil {
			return nil, err
		}
		return h.PolicyCheck(r.Context(), req)
	})
	handle("POST /v1/gc", func(r *http.Request) (any, error) {
		var g GCRequest
		if err := decode(r, &g); err != nil {
			return nil, err
		}
		// A missing list is not an empty one: releasing every pod must be
		// asked for explicitly, with "valid": [].
		if g.Valid == nil {
			return nil, &Error{Code: CodeInvalid, Message: `gc needs "valid", the attachments still in use (an empty list releases every pod)`}
		}
		for _, p := range g.Valid {
			if err := checkIDs(p.ContainerID, p.IfName); err != nil {
				return nil, err
			}
		}
		return h.GC(r.Context(), g)
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}
