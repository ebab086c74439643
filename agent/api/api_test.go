package api

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// stub records calls and answers from fixed values.
type stub struct {
	calls []string
	err   error
}

func (s *stub) Allocate(_ context.Context, p Pod) (AllocateResponse, error) {
	s.calls = append(s.calls, "allocate "+p.ContainerID)
	return AllocateResponse{IPv4: "10.0.0.2", HostIfname: HostIfname(p.ContainerID, p.IfName), MTU: 1500, Queues: 1}, s.err
}
func (s *stub) Attach(_ context.Context, a AttachRequest) error {
	s.calls = append(s.calls, "attach "+a.HostIfname)
	return s.err
}
func (s *stub) Release(_ context.Context, p Pod) (ReleaseResponse, error) {
	s.calls = append(s.calls, "release "+p.ContainerID)
	return ReleaseResponse{Found: true}, s.err
}
func (s *stub) Check(_ context.Context, p Pod) (CheckResponse, error) {
	return CheckResponse{Attached: true}, s.err
}
func (s *stub) Status(context.Context) (Status, error) { return Status{Ready: true}, s.err }
func (s *stub) GC(_ context.Context, g GCRequest) (GCResponse, error) {
	return GCResponse{Released: g.Valid}, s.err
}

func serve(t *testing.T, h Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock)
}

func TestRoundTrip(t *testing.T) {
	s := &stub{}
	c := serve(t, s)
	ctx := context.Background()
	p := Pod{ContainerID: "abc", IfName: "eth0"}
	a, err := c.Allocate(ctx, p)
	if err != nil || a.IPv4 != "10.0.0.2" || a.HostIfname != HostIfname("abc", "eth0") {
		t.Fatalf("Allocate = %+v, %v", a, err)
	}
	if err := c.Attach(ctx, AttachRequest{Pod: p, HostIfname: a.HostIfname, PodMAC: "02:00:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Release(ctx, p); err != nil || !r.Found {
		t.Fatalf("Release = %+v, %v", r, err)
	}
	if st, err := c.Status(ctx); err != nil || !st.Ready {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if len(s.calls) != 3 {
		t.Errorf("calls %v", s.calls)
	}
	s.err = &Error{Code: CodePoolExhausted, Message: "IPv4 pool 10.0.0.0/30 has no free address"}
	_, err = c.Allocate(ctx, p)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodePoolExhausted || !strings.Contains(ae.Message, "10.0.0.0/30") {
		t.Errorf("error not carried through: %v", err)
	}
}

func TestHostIfname(t *testing.T) {
	a, b := HostIfname("c1", "eth0"), HostIfname("c1", "eth1")
	if a == b || len(a) != 13 || !strings.HasPrefix(a, "rn") || a != HostIfname("c1", "eth0") {
		t.Errorf("HostIfname: %q %q", a, b)
	}
}

func TestDaemonDown(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "nobody.sock"))
	_, err := c.Status(context.Background())
	if !errors.Is(err, ErrDaemonUnavailable) {
		t.Errorf("no daemon: %v; want ErrDaemonUnavailable", err)
	}
}

// TestBadRequests sends garbage, oversized, unknown and incomplete bodies:
// each gets a 4xx with a JSON error, and the handler is never called.
func TestBadRequests(t *testing.T) {
	s := &stub{}
	c := serve(t, s)
	for _, b := range []struct {
		name, path, body string
	}{
		{"garbage", "/v1/allocate", "\x00\xff{{{"},
		{"oversized", "/v1/allocate", `{"containerID":"` + strings.Repeat("x", MaxRequestBytes) + `","ifName":"eth0"}`},
		{"unknown field", "/v1/allocate", `{"containerID":"a","ifName":"eth0","evil":1}`},
		{"missing ifName", "/v1/allocate", `{"containerID":"a"}`},
		{"attach without mac", "/v1/attach", `{"containerID":"a","ifName":"eth0","hostIfname":"rnx"}`},
		{"two objects", "/v1/release", `{"containerID":"a","ifName":"eth0"} {"x":1}`},
	} {
		resp, err := c.http.Post("http://ringnetd"+b.path, "application/json", bytes.NewReader([]byte(b.body)))
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		buf := new(bytes.Buffer)
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(buf.String(), CodeInvalid) {
			t.Errorf("%s: status %d body %s; want 400 %s", b.name, resp.StatusCode, buf, CodeInvalid)
		}
	}
	if len(s.calls) != 0 {
		t.Errorf("handler called for bad requests: %v", s.calls)
	}
	// The server still answers.
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// FuzzServer posts arbitrary bodies to every endpoint: the server never
// panics and answers every request.
func FuzzServer(f *testing.F) {
	for _, seed := range []string{`{"containerID":"a","ifName":"eth0"}`, `{"valid":[{"containerID":"a","ifName":"b"}]}`, "", "null", "[]", `{"containerID":1}`} {
		f.Add(seed)
	}
	srv := NewServer(&stub{})
	paths := []string{"/v1/allocate", "/v1/attach", "/v1/release", "/v1/check", "/v1/gc"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			w := &recorder{header: http.Header{}}
			req, _ := http.NewRequest(http.MethodPost, "http://ringnetd"+p, strings.NewReader(body))
			srv.Handler.ServeHTTP(w, req)
			if w.code == 0 {
				w.code = http.StatusOK
			}
			if w.code >= 500 {
				t.Fatalf("%s with %q: status %d", p, body, w.code)
			}
		}
	})
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }
