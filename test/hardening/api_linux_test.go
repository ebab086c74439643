package hardening_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/api"
)

// rawClient talks HTTP to ringnetd's socket with no retries and no
// keep-alive, so that every request is one connection.
func (n *node) rawClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", n.d.Socket)
		},
	}}
}

// alive checks that ringnetd still runs and answers a good request.
func (n *node) alive(t *testing.T, after string) {
	t.Helper()
	if !n.d.Running() {
		t.Fatalf("ringnetd exited after %s: %v\n%s", after, n.d.Wait(), n.logTail(20))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if _, err := n.api.Status(ctx); err != nil {
		t.Fatalf("after %s, status: %v", after, err)
	}
	if d := time.Since(began); d > time.Second {
		t.Logf("after %s, status took %v", after, d)
	}
}

// TestBadAPIRequests sends ringnetd's socket what a broken or hostile
// client might: huge bodies, bad JSON, unknown paths and methods, huge
// headers, requests that never finish, and many idle connections. Each
// must get an error or be cut off, ringnetd must stay up, answer the next
// good request and give back every file descriptor. And the metrics
// server, with the default flags, listens on loopback only.
func TestBadAPIRequests(t *testing.T) {
	n := newNode(t)
	keep := n.addPod(t, "api-keep") // GC and release must not touch it
	base := n.quiet()
	t.Logf("baseline: %v", base)

	t.Run("OversizedBody", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			const size = 100 << 20
			body := io.MultiReader(strings.NewReader(`{"containerID":"`), &repeat{b: 'a', n: size})
			req, _ := http.NewRequest(http.MethodPost, "http://ringnetd/v1/allocate", body)
			if !chunked {
				req.ContentLength = size + 16
			}
			began := time.Now()
			resp, err := n.rawClient(30 * time.Second).Do(req)
			took := time.Since(began)
			switch {
			case err != nil:
				// Cut off while sending: the server stopped reading.
				t.Logf("chunked=%v: %d MiB body: cut off after %v: %v", chunked, size>>20, took.Round(time.Millisecond), err)
			default:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("chunked=%v: %d MiB body: %s after %v: %s", chunked, size>>20, resp.Status, took.Round(time.Millisecond), bytes.TrimSpace(b))
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("chunked=%v: status %s, want 400", chunked, resp.Status)
				}
			}
			if took > 15*time.Second {
				t.Errorf("chunked=%v: the server read for %v: it should stop at %d bytes", chunked, took, api.MaxRequestBytes)
			}
		}
		if u := n.usage(); u.RSSKiB-base.RSSKiB > 32<<10 {
			t.Errorf("RSS grew from %d to %d KiB: the body was buffered", base.RSSKiB, u.RSSKiB)
		}
		n.alive(t, "oversized bodies")
	})

	t.Run("BadJSON", func(t *testing.T) {
		bodies := []string{
			"", "{", "not json", "\x00\xff\xfe", `{"containerID":1}`, `{"containerID":"a","ifName":"eth0","extra":1}`,
			`{"containerID":"a","ifName":"eth0"}{"containerID":"b","ifName":"eth0"}`, `{"containerID":"a","ifName":"eth0"} x`,
			strings.Repeat("[", 20000), `{"containerID":"` + strings.Repeat("\\u0000", 5000) + `"}`,
			`{"valid":"everything"}`, `{"valid":[{"containerID":7}]}`,
		}
		for _, path := range []string{"/v1/allocate", "/v1/attach", "/v1/release", "/v1/check", "/v1/gc"} {
			for _, b := range bodies {
				if path != "/v1/gc" && strings.HasPrefix(b, `{"valid"`) {
					continue
				}
				code, e := n.post(t, path, b)
				if code != http.StatusBadRequest || e.Code != api.CodeInvalid {
					t.Errorf("POST %s %.40q: %d %+v, want 400 %s", path, b, code, e, api.CodeInvalid)
				}
			}
		}
		n.alive(t, "bad JSON")
	})

	t.Run("UnknownPathsAndMethods", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			want         int
		}{
			{"GET", "/", 404}, {"GET", "/v1", 404}, {"GET", "/v1/nope", 404}, {"POST", "/v2/allocate", 404},
			{"GET", "/v1/allocate", 405}, {"DELETE", "/v1/status", 405}, {"PUT", "/v1/gc", 405},
			{"GET", "/v1/status/../../etc/passwd", 0}, {"GET", "/" + strings.Repeat("a", 8000), 404},
			{"BREW", "/v1/status", 405},
		} {
			req, _ := http.NewRequest(c.method, "http://ringnetd"+c.path, nil)
			resp, err := n.rawClient(5 * time.Second).Do(req)
			if err != nil {
				t.Errorf("%s %.40s: %v", c.method, c.path, err)
				continue
			}
			resp.Body.Close()
			if c.want == 0 && resp.StatusCode < 300 || c.want != 0 && resp.StatusCode != c.want {
				t.Errorf("%s %.40s: %s, want %d", c.method, c.path, resp.Status, c.want)
			}
		}
		n.alive(t, "unknown paths")
	})

	t.Run("HugeHeader", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://ringnetd/v1/status", nil)
		req.Header.Set("X-Junk", strings.Repeat("j", 1<<20))
		resp, err := n.rawClient(5 * time.Second).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("1 MiB header: %s, want 431", resp.Status)
			}
		}
		n.alive(t, "a huge header")
	})

	t.Run("SlowLoris", func(t *testing.T) {
		// Requests that never finish: a header sent a byte at a time, a
		// body that never arrives in full, and connections that send
		// nothing. The server's timeouts must cut every one off while it
		// goes on serving others.
		const each = 20
		kinds := []struct {
			name  string
			first string // sent at once
			drip  bool   // then a byte every 500ms
		}{
			{"header", "POST /v1/allocate HTTP/1.1\r\nHost: x\r\n", true},
			{"body", "POST /v1/allocate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{", true},
			{"idle", "", false},
		}
		type result struct {
			kind string
			took time.Duration
			err  error
		}
		results := make(chan result, each*len(kinds))
		var wg sync.WaitGroup
		began := time.Now()
		for _, k := range kinds {
			for range each {
				c, err := net.Dial("unix", n.d.Socket)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				wg.Go(func() {
					err := dripUntilClosed(c, k.first, k.drip, 40*time.Second)
					results <- result{k.name, time.Since(began), err}
				})
			}
		}
		time.Sleep(500 * time.Millisecond)
		held := n.usage()
		t.Logf("%d slow connections open: %v", each*len(kinds), held)
		n.alive(t, "slow connections opened")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p := n.addPod(t, "api-during-loris") // a full ADD while they hang
		if err := n.del(ctx, p.id, p.ns.Path); err != nil {
			t.Errorf("DEL during slow connections: %v", err)
		}
		cancel()
		wg.Wait()
		close(results)
		worst := map[string]time.Duration{}
		for r := range results {
			if r.err != nil {
				t.Errorf("%s connection: %v", r.kind, r.err)
			}
			worst[r.kind] = max(worst[r.kind], r.took)
		}
		t.Logf("slow connections cut off by the server within: %v", worst)
		n.alive(t, "slow connections")
	})

	t.Run("ManyConnections", func(t *testing.T) {
		const conns = 500
		var cs []net.Conn
		for range conns {
			c, err := net.Dial("unix", n.d.Socket)
			if err != nil {
				t.Fatalf("connection %d: %v", len(cs), err)
			}
			cs = append(cs, c)
		}
		time.Sleep(300 * time.Millisecond)
		t.Logf("%d idle connections: %v", conns, n.usage())
		n.alive(t, fmt.Sprintf("%d idle connections", conns))
		for _, c := range cs {
			c.Close()
		}
	})

	t.Run("MetricsLoopbackOnly", n.metricsLoopbackOnly)

	t.Run("GCAndReleaseOfStrangers", func(t *testing.T) {
		// A GC that lists the pod releases nothing; releasing a pod that
		// does not exist succeeds and touches nothing.
		b, _ := json.Marshal(api.GCRequest{Valid: []api.Pod{{ContainerID: keep.id, IfName: "eth0"}}})
		if code, e := n.post(t, "/v1/gc", string(b)); code != http.StatusOK {
			t.Errorf("GC listing the pod: %d %+v", code, e)
		}
		if code, e := n.post(t, "/v1/release", `{"containerID":"no-such-pod","ifName":"eth0"}`); code != http.StatusOK {
			t.Errorf("release of an unknown pod: %d %+v", code, e)
		}
		if st, err := n.api.Status(context.Background()); err != nil || st.Allocated != 1 {
			t.Errorf("status %+v %v: want the kept pod's allocation", st, err)
		}
	})

	// Every connection is gone: ringnetd holds what it held before.
	end, ok := n.settle(func(u usage) bool { return u.FDs <= base.FDs && u.Goroutines <= base.Goroutines })
	t.Logf("after: %v", end)
	if !ok {
		t.Errorf("ringnetd holds more than before the bad requests:\n before %v\n after  %v", base, end)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.check(ctx, keep.id, keep.ns.Path); err != nil {
		t.Errorf("CNI CHECK of the kept pod: %v", err)
	}
}

// post sends body to path and returns the status and the decoded error.
func (n *node) post(t *testing.T, path, body string) (int, api.Error) {
	t.Helper()
	resp, err := n.rawClient(10*time.Second).Post("http://ringnetd"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var e api.Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

// repeat reads n copies of b.
type repeat struct {
	b byte
	n int
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = r.b
	}
	r.n -= k
	return k, nil
}

// dripUntilClosed writes first, then (if drip) one more byte every 500ms,
// until the server closes the connection; it fails if that takes longer
// than limit.
func dripUntilClosed(c net.Conn, first string, drip bool, limit time.Duration) error {
	if first != "" {
		if _, err := io.WriteString(c, first); err != nil {
			return err
		}
	}
	closed := make(chan error, 1)
	go func() {
		// The server may answer (408, 400) before it closes.
		_, err := io.Copy(io.Discard, c)
		closed <- err
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for {
		select {
		case <-closed:
			return nil
		case <-deadline:
			return fmt.Errorf("still open after %v", limit)
		case <-tick.C:
			if drip {
				if _, err := c.Write([]byte("x")); err != nil {
					return nil // closed by the server
				}
			}
		}
	}
}

// metricsLoopbackOnly checks that ringnetd, with the default
// --metrics-addr, listens on no address but loopback: not its underlay
// address, where other nodes (and anyone on the underlay) could reach it.
func (n *node) metricsLoopbackOnly(t *testing.T) {
	pid := n.pid()
	inodes := socketInodes(t, pid)
	var listening []string
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		for _, s := range procNetSockets(t, fmt.Sprintf("/proc/%d/net/%s", pid, f)) {
			if !inodes[s.inode] || (strings.HasPrefix(f, "tcp") && s.state != "0A") {
				continue // not ringnetd's, or not a listener
			}
			listening = append(listening, f+" "+s.local.String())
			if !s.local.Addr().IsLoopback() {
				t.Errorf("ringnetd has a %s socket on %v: not loopback", f, s.local)
			}
		}
	}
	t.Logf("ringnetd's TCP listeners and UDP sockets: %v", listening)
	if len(listening) == 0 {
		t.Errorf("found no metrics listener at all")
	}
	under := netip.MustParsePrefix(nodeAddr).Addr().String()
	err := n.tn.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(under, metricsPort), 2*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("metrics answer on the underlay address %s", under)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	resp, err := n.metricsClient().Get("http://127.0.0.1:" + metricsPort + "/healthz")
	if err != nil {
		t.Fatalf("metrics on 127.0.0.1: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
}

// socketInodes returns the inodes of the sockets pid holds.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range ents {
		l, _ := os.Readlink(dir + "/" + e.Name())
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			m[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return m
}

type procSocket struct {
	local netip.AddrPort
	state string
	inode string
}

// procNetSockets parses a /proc/net/{tcp,udp}[6] file.
func procNetSockets(t *testing.T, path string) []procSocket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []procSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 {
			continue
		}
		ap, err := parseProcAddr(fl[1])
		if err != nil {
			t.Fatalf("%s: %q: %v", path, fl[1], err)
		}
		out = append(out, procSocket{local: ap, state: fl[3], inode: fl[9]})
	}
	return out
}

// parseProcAddr parses "0100007F:24F8": the address in host byte order
// 32-bit words, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, errors.New("no port")
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q", h)
	}
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}
