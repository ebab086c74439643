package main

// End-to-end tests of the slow path: the real ringnetd in a node
// namespace, its TAP, the host's routes to the pods through it, and real
// ping, HTTP probes and ICMP errors between the node and its pods.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/internal/netnstest"
)

// The node's own addresses in these tests, on a veth pair inside the node
// namespace (there is no dummy module on these machines).
const (
	nodeIPv4 = "192.168.77.1"
	nodeIPv6 = "fd77::1"
)

// addNodeAddrs gives the node namespace an interface with nodeIPv4 and
// nodeIPv6, as a real node has on its uplink.
func addNodeAddrs(t *testing.T, nd *node) {
	t.Helper()
	ns := nd.ns.Name
	netnstest.Run(t, ns, "ip", "link", "add", "nodeif", "type", "veth", "peer", "name", "nodeifp")
	netnstest.Run(t, ns, "ip", "link", "set", "nodeif", "up")
	netnstest.Run(t, ns, "ip", "link", "set", "nodeifp", "up")
	netnstest.Run(t, ns, "ip", "addr", "add", nodeIPv4+"/24", "dev", "nodeif")
	netnstest.Run(t, ns, "ip", "addr", "add", nodeIPv6+"/64", "dev", "nodeif", "nodad")
}

// serveHTTP serves a probe endpoint on port inside namespace n (IPv4 and
// IPv6) until the test ends. It answers /healthz with 200 and the
// namespace's name.
func serveHTTP(t *testing.T, n netnstest.NS, port int) {
	t.Helper()
	var ln net.Listener
	n.Do(t, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		return err
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+n.Name) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// probeHTTP makes an HTTP GET from inside namespace n, as kubelet's
// httpGet probe does from the node, and returns the status and body. The
// connection is made on the namespace's thread; net/http's transport
// would dial on another.
func probeHTTP(t *testing.T, n netnstest.NS, hostport string) (int, string, error) {
	t.Helper()
	var status int
	var body string
	var perr error
	n.Do(t, func() error {
		conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
		if err != nil {
			perr = err
			return nil
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		req, _ := http.NewRequest("GET", "http://"+hostport+"/healthz", nil)
		req.Header.Set("User-Agent", "kube-probe/1.36")
		if err := req.Write(conn); err != nil {
			perr = err
			return nil
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			perr = err
			return nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		status, body, perr = resp.StatusCode, string(b), err
		return nil
	})
	return status, body, perr
}

func TestSlowPathHostAndPods(t *testing.T) {
	nd := newNode(t, 2)
	addNodeAddrs(t, nd)
	a, b := nd.pods[0], nd.pods[1]
	d := nd.start(t)
	assertKernelCannotForward(t, nd)

	// The host's side, as ringnetd made it.
	link := netnstest.Run(t, nd.ns.Name, "ip", "-d", "link", "show", "ringnet0")
	if !strings.Contains(link, "tap") || !strings.Contains(link, "mtu 1500") || !strings.Contains(link, "UP") {
		t.Errorf("ringnet0 is not an up TAP with MTU 1500:\n%s", link)
	}
	neigh := netnstest.Run(t, nd.ns.Name, "ip", "neigh", "show", "dev", "ringnet0")
	for _, gw := range []string{"169.254.1.1 lladdr ee:ee:ee:ee:ee:ee PERMANENT", "fe80::1 lladdr ee:ee:ee:ee:ee:ee PERMANENT"} {
		if !strings.Contains(neigh, gw) {
			t.Errorf("no neighbour entry %q on ringnet0:\n%s", gw, neigh)
		}
	}
	for _, p := range nd.pods {
		for _, addr := range []string{p.ip4, p.ip6} {
			if out := netnstest.Run(t, nd.ns.Name, "ip", "route", "get", addr); !strings.Contains(out, "dev ringnet0") {
				t.Errorf("the node routes pod %s elsewhere than the TAP: %s", addr, out)
			}
		}
	}

	t.Run("node pings pods", func(t *testing.T) {
		for _, p := range nd.pods {
			netnstest.Run(t, nd.ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "2", p.ip4)
			out := netnstest.Run(t, nd.ns.Name, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", p.ip6)
			// One router between them: the node. A pod's reply reaches the
			// host undecremented, as with any CNI.
			if !strings.Contains(out, "ttl=64") && !strings.Contains(out, "hlim=64") {
				t.Errorf("reply from %s not with hop limit 64:\n%s", p.ip6, out)
			}
		}
	})

	t.Run("kubelet probes", func(t *testing.T) {
		serveHTTP(t, a.ns, 8080)
		for _, hp := range []string{a.ip4 + ":8080", "[" + a.ip6 + "]:8080"} {
			status, body, err := probeHTTP(t, nd.ns, hp)
			if err != nil || status != 200 || body != "ok "+a.ns.Name {
				t.Errorf("GET http://%s/healthz from the node: %d %q %v", hp, status, body, err)
			}
		}
		// A large response: many full-size frames host-bound... and the
		// request body the other way, through the TAP both ways.
		big := strings.Repeat("x", 2<<20)
		var ln net.Listener
		a.ns.Do(t, func() error {
			var err error
			ln, err = net.Listen("tcp", "[::]:8081")
			return err
		})
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.WriteString(c, big)
		}()
		var got int64
		nd.ns.Do(t, func() error {
			c, err := net.DialTimeout("tcp", "["+a.ip6+"]:8081", 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			got, err = io.Copy(io.Discard, c)
			return err
		})
		if got != int64(len(big)) {
			t.Errorf("node received %d bytes of %d from the pod over TCP/IPv6", got, len(big))
		}
	})

	t.Run("pods reach the node", func(t *testing.T) {
		netnstest.Run(t, a.ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "2", nodeIPv4)
		netnstest.Run(t, b.ns.Name, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", nodeIPv6)
		serveHTTP(t, nd.ns, 9090)
		for _, hp := range []string{nodeIPv4 + ":9090", "[" + nodeIPv6 + "]:9090"} {
			status, body, err := probeHTTP(t, a.ns, hp)
			if err != nil || status != 200 || body != "ok "+nd.ns.Name {
				t.Errorf("GET http://%s/healthz from pod A: %d %q %v", hp, status, body, err)
			}
		}
	})

	t.Run("ttl 1 from a pod", func(t *testing.T) {
		// The fast path answers in the node's place, from the node's
		// address, as the node's kernel would.
		out, _ := netnstest.Output(a.ns.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-t", "1", b.ip4)
		if !strings.Contains(out, "From "+nodeIPv4) || !strings.Contains(out, "Time to live exceeded") {
			t.Errorf("ping -t 1 %s from pod A: want time exceeded from %s:\n%s", b.ip4, nodeIPv4, out)
		}
		out, _ = netnstest.Output(a.ns.Name, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", "-t", "1", b.ip6)
		if !strings.Contains(out, "From "+nodeIPv6) || !strings.Contains(out, "Time exceeded: Hop limit") {
			t.Errorf("ping -6 -t 1 %s from pod A: want time exceeded from %s:\n%s", b.ip6, nodeIPv6, out)
		}
		// TTL 2 gets through.
		netnstest.Run(t, a.ns.Name, "ping", "-c", "1", "-W", "2", "-t", "2", b.ip4)
	})

	t.Run("node address added later", func(t *testing.T) {
		netnstest.Run(t, nd.ns.Name, "ip", "addr", "add", "192.168.78.1/24", "dev", "nodeif")
		before := d.counters(t)
		var out string
		deadline := time.Now().Add(5 * time.Second)
		for {
			// Until the slow path has seen the address, the frames go to
			// the host as no_route; then as to_host_new (each ping is a new
			// echo identifier, a flow the node has not answered yet).
			out = netnstest.Run(t, a.ns.Name, "ping", "-c", "1", "-W", "2", "192.168.78.1")
			if c := d.counters(t); c.reasons["to_host_new"] > before.reasons["to_host_new"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pings to a new node address are not counted to_host_new:\n%s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	c := d.stop(t)
	tap := c.ports["ringnet0"]
	if tap["rx_frames"] == 0 || tap["tx_frames"] == 0 {
		t.Errorf("host port counters: %v", tap)
	}
	for _, r := range []string{"to_host", "to_host_new", "ttl_expired", "host_rx", "host_tx"} {
		if c.reasons[r] == 0 {
			t.Errorf("reason %s not counted: %v", r, c.reasons)
		}
	}
	for _, r := range []string{"host_tx_error", "host_rx_queue_full", "punt_queue_full", "to_host_over_limit", "to_host_new_over_limit"} {
		if c.reasons[r] != 0 {
			t.Errorf("reason %s counted %d", r, c.reasons[r])
		}
	}
	if c.reasons["host_tx"] != tap["tx_frames"] {
		t.Errorf("the writer wrote %d frames to the TAP, workers queued %d", c.reasons["host_tx"], tap["tx_frames"])
	}
	// The TAP, and with it the routes, went with ringnetd.
	if out, err := netnstest.Output(nd.ns.Name, "ip", "link", "show", "ringnet0"); err == nil {
		t.Errorf("ringnet0 still exists after shutdown:\n%s", out)
	}
	if out := netnstest.Run(t, nd.ns.Name, "ip", "route", "show", "proto", "82"); strings.TrimSpace(out) != "" {
		t.Errorf("routes left after shutdown:\n%s", out)
	}
}

// TestSlowPathPodCIDR runs ringnetd with pod CIDRs: the host routes each
// CIDR to the TAP, and addresses in it that no pod has are unreachable,
// answered by the fast path to pods and host alike.
func TestSlowPathPodCIDR(t *testing.T) {
	nd := newNode(t, 2)
	addNodeAddrs(t, nd)
	a := nd.pods[0]
	dir := t.TempDir()
	d := nd.start(t, "--pod-cidr", "10.244.0.0/24,fd00::/120", "--socket", dir+"/ringnet.sock", "--state-dir", dir)
	routes := netnstest.Run(t, nd.ns.Name, "ip", "route", "show", "dev", "ringnet0")
	if !strings.Contains(routes, "10.244.0.0/24 via 169.254.1.1 proto 82 onlink") {
		t.Errorf("no route for the pod CIDR:\n%s", routes)
	}
	netnstest.Run(t, nd.ns.Name, "ping", "-c", "2", "-i", "0.2", "-W", "2", a.ip4)
	netnstest.Run(t, nd.ns.Name, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", a.ip6)

	out, _ := netnstest.Output(nd.ns.Name, "ping", "-c", "1", "-W", "2", "10.244.0.99")
	if !strings.Contains(out, "From 169.254.1.1") || !strings.Contains(out, "Destination Host Unreachable") {
		t.Errorf("node pinging an unused pod address: want host unreachable from the gateway:\n%s", out)
	}
	out, _ = netnstest.Output(a.ns.Name, "ping", "-c", "1", "-W", "2", "10.244.0.99")
	if !strings.Contains(out, "From "+nodeIPv4) || !strings.Contains(out, "Destination Host Unreachable") {
		t.Errorf("pod pinging an unused pod address: want host unreachable from the node:\n%s", out)
	}
	out, _ = netnstest.Output(a.ns.Name, "ping", "-6", "-c", "1", "-W", "2", "fd00::99")
	if !strings.Contains(out, "From "+nodeIPv6) || !strings.Contains(out, "Address unreachable") {
		t.Errorf("pod pinging an unused pod IPv6 address: want address unreachable from the node:\n%s", out)
	}
	if c := d.stop(t); c.reasons["unreachable"] < 3 {
		t.Errorf("unreachable counted %d, want 3", c.reasons["unreachable"])
	}
}

// TestSlowPathOff checks --slow-path=false: no TAP, no route, the host
// cannot reach the pods, pods still reach each other.
func TestSlowPathOff(t *testing.T) {
	nd := newNode(t, 2)
	d := nd.start(t, "--slow-path=false")
	if out, err := netnstest.Output(nd.ns.Name, "ip", "link", "show", "ringnet0"); err == nil {
		t.Errorf("ringnet0 exists with --slow-path=false:\n%s", out)
	}
	netnstest.Run(t, nd.pods[0].ns.Name, "ping", "-c", "2", "-i", "0.2", "-W", "2", nd.pods[1].ip4)
	if _, err := netnstest.Output(nd.ns.Name, "ping", "-c", "1", "-W", "1", nd.pods[0].ip4); err == nil {
		t.Error("the node reaches a pod without the slow path")
	}
	d.stop(t)
}

// TestSlowPathFlood floods the node's address from pod A with UDP while
// pod B pings pod C and the node probes pod A over HTTP, with a
// to_host_new limit low enough that the flood exceeds it however slow the
// machine: the token bucket must drop the excess (counted), what passes
// must stay within the bucket, pod-to-pod traffic must go on, the probes
// must pass (their answers are to_host, a budget the flood does not
// touch, though they come from the flooding pod), and ringnetd's memory
// must not grow.
//
// How much pod-to-pod throughput a flood costs is a benchmark figure
// (bench/slowpath), not asserted here.
func TestSlowPathFlood(t *testing.T) {
	nd := newNode(t, 3)
	addNodeAddrs(t, nd)
	a, b, c := nd.pods[0], nd.pods[1], nd.pods[2]
	const rate, burst = 5000, 256
	d := nd.start(t, "--punt-limit", fmt.Sprintf("to_host_new=%d/%d", rate, burst))
	serveHTTP(t, a.ns, 8080)
	pid := d.cmd.Process.Pid
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "ringnetd" {
		t.Fatalf("pid %d is %q, not ringnetd", pid, comm)
	}
	netnstest.Run(t, b.ns.Name, "ping", "-c", "1", "-W", "2", c.ip4) // resolve the gateway

	flood := func(dur time.Duration) (sent uint64) {
		a.ns.Do(t, func() error {
			conn, err := net.Dial("udp4", nodeIPv4+":9")
			if err != nil {
				return err
			}
			defer conn.Close()
			msg := make([]byte, 18)
			for end := time.Now().Add(dur); time.Now().Before(end); {
				for range 256 {
					if _, err := conn.Write(msg); err == nil {
						sent++
					}
				}
			}
			return nil
		})
		return sent
	}
	flood(time.Second) // warm up: touch the pages a flood touches
	time.Sleep(200 * time.Millisecond)
	rss0 := rssKiB(t, pid)
	before := d.counters(t)

	var pingOut string
	var pingErr error
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		pingOut, pingErr = netnstest.Output(b.ns.Name, "ping", "-c", "20", "-i", "0.1", "-W", "1", c.ip4)
	}()
	var probes, probesOK int
	var probeTimes []time.Duration
	var probeErrs []string
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		time.Sleep(300 * time.Millisecond) // into the flood
		for range 8 {
			t0 := time.Now()
			status, body, err := probeHTTP(t, nd.ns, a.ip4+":8080")
			probeTimes = append(probeTimes, time.Since(t0).Round(time.Millisecond))
			probes++
			if err == nil && status == 200 && body == "ok "+a.ns.Name {
				probesOK++
			} else {
				probeErrs = append(probeErrs, fmt.Sprintf("%d %q %v", status, body, err))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	start := time.Now()
	sent := flood(3 * time.Second)
	elapsed := time.Since(start)
	<-pingDone
	<-probeDone
	time.Sleep(200 * time.Millisecond)
	after := d.counters(t)
	rss1 := rssKiB(t, pid)

	passed := after.reasons["to_host_new"] - before.reasons["to_host_new"]
	over := after.reasons["to_host_new_over_limit"] - before.reasons["to_host_new_over_limit"]
	answered := after.reasons["to_host"] - before.reasons["to_host"]
	t.Logf("flood: %d datagrams sent in %v (%.0f/s); to_host_new %d, to_host_new_over_limit %d; to_host %d; probes %d of %d in %v; ping:\n%s",
		sent, elapsed, float64(sent)/elapsed.Seconds(), passed, over, answered, probesOK, probes, probeTimes, lastLines(pingOut, 3))
	if probesOK != probes || probes == 0 {
		t.Errorf("HTTP probes from the node to the flooding pod during the flood: %d of %d passed: %v", probesOK, probes, probeErrs)
	}
	// A probe frame lost at a token bucket costs a TCP retransmission, a
	// second for a SYN-ACK: with one bucket for all host-bound frames the
	// first probe took about 3 s here.
	if slow := slices.IndexFunc(probeTimes, func(d time.Duration) bool { return d >= time.Second }); slow >= 0 {
		t.Errorf("probe %d took %v during the flood (all: %v): its frames were dropped", slow, probeTimes[slow], probeTimes)
	}
	if answered == 0 || after.reasons["to_host_over_limit"] != before.reasons["to_host_over_limit"] {
		t.Errorf("the probes' answers: to_host %d, to_host_over_limit %d during the flood; want some, and none",
			answered, after.reasons["to_host_over_limit"]-before.reasons["to_host_over_limit"])
	}
	if over == 0 {
		t.Errorf("the token bucket never engaged: %d datagrams sent, %d passed", sent, passed)
	}
	// Within the bucket: rate over the flood (and the ping's tail), plus
	// the burst, plus slack for the counters' timing.
	if limit := uint64(rate*(elapsed.Seconds()+1.5)) + burst; passed > limit {
		t.Errorf("%d frames passed to the host in %v, more than the bucket allows (%d)", passed, elapsed, limit)
	}
	if m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(pingOut); pingErr != nil || m == nil {
		t.Errorf("pod B → pod C ping during the flood: %v\n%s", pingErr, pingOut)
	} else if n, _ := strconv.Atoi(m[1]); n < 16 {
		t.Errorf("pod B → pod C: %d of 20 pings answered during the flood", n)
	}
	if grew := rss1 - rss0; grew > 8<<10 {
		t.Errorf("ringnetd's RSS grew by %d KiB during the flood (%d → %d KiB)", grew, rss0, rss1)
	}
	t.Logf("ringnetd RSS %d → %d KiB", rss0, rss1)
	d.stop(t)
}

func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
