// Package api is the contract between ringnetd and its CNI plugin: JSON
// over HTTP on a unix socket (default /run/ringnet/ringnet.sock, mode 0600,
// so only root can call it).
//
// ADD is two calls around the plugin's own work in the pod's namespace:
// Allocate (addresses, the host interface name, MTU and queue count the
// daemon wants), then, once the veth exists, Attach (the daemon attaches
// XDP and AF_XDP and answers only when the port forwards). DEL is Release;
// CHECK is Check; STATUS is Status; GC is GC.
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
	"syscall"
	"time"
)

// DefaultSocket is where ringnetd listens unless told otherwise.
const DefaultSocket = "/run/ringnet/ringnet.sock"

// MaxRequestBytes bounds a request body; larger ones are refused.
const MaxRequestBytes = 64 << 10

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
	MTU        int    `json:"mtu"`
	Queues     int    `json:"queues"`
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

// Status is the daemon's health.
type Status struct {
	Ready     bool     `json:"ready"`
	PodCIDRs  []string `json:"podCIDRs"`
	Ports     int      `json:"ports"`
	Allocated int      `json:"allocated"`
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBytes))
	if err != nil {
		return fmt.Errorf("ringnetd %s: read reply: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
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

// Handler is what the daemon implements.
type Handler interface {
	Allocate(context.Context, Pod) (AllocateResponse, error)
	Attach(context.Context, AttachRequest) error
	Release(context.Context, Pod) (ReleaseResponse, error)
	Check(context.Context, Pod) (CheckResponse, error)
	Status(context.Context) (Status, error)
	GC(context.Context, GCRequest) (GCResponse, error)
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
		if p.ContainerID == "" || p.IfName == "" {
			return p, &Error{Code: CodeInvalid, Message: "containerID and ifName are required"}
		}
		return p, nil
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
	handle("POST /v1/gc", func(r *http.Request) (any, error) {
		var g GCRequest
		if err := decode(r, &g); err != nil {
			return nil, err
		}
		return h.GC(r.Context(), g)
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}
