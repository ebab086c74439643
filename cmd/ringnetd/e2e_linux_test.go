package main

// End-to-end tests: the real ringnetd and ringnet binaries, real veths and
// AF_XDP sockets in network namespaces the tests make and remove, real ping
// and iperf3 as the pods' traffic.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/internal/netnstest"
	"golang.org/x/sys/unix"
)

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "ringnet-e2e-bin")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/ringnet/ringnet/cmd/ringnetd",
				"github.com/ringnet/ringnet/cmd/ringnet").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
				return 1
			}
			binDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

type pod struct {
	ns     netnstest.NS
	hostIf string
	mac    string
	ip4    string
	ip6    string
}

type node struct {
	ns       netnstest.NS
	pods     []pod
	podsFile string
}

// newNode makes a node namespace with IP forwarding off and n pods created
// by "ringnet pod add", and writes ringnetd's pods file.
func newNode(t *testing.T, n int, addArgs ...string) *node {
	t.Helper()
	netnstest.RequireRoot(t)
	nd := &node{ns: netnstest.New(t, "rnN")}
	netnstest.Run(t, nd.ns.Name, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
	var yaml strings.Builder
	yaml.WriteString("pods:\n")
	for i := range n {
		p := pod{ns: netnstest.New(t, "rnP"), hostIf: fmt.Sprintf("rn%c", 'a'+i),
			mac: fmt.Sprintf("02:00:00:00:00:%02x", 0xa+i),
			ip4: fmt.Sprintf("10.244.0.%d", 10+i), ip6: fmt.Sprintf("fd00::%x", 0xa+i)}
		argv := append([]string{filepath.Join(binDir, "ringnet"), "pod", "add", "--netns", p.ns.Path,
			"--host-if", p.hostIf, "--ipv4", p.ip4, "--ipv6", p.ip6, "--mac", p.mac}, addArgs...)
		out := netnstest.Run(t, nd.ns.Name, argv...)
		var res struct{ MAC string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.MAC != p.mac {
			t.Fatalf("ringnet pod add printed %q; want JSON with mac %s", out, p.mac)
		}
		fmt.Fprintf(&yaml, "- {name: p%d, hostInterface: %s, mac: %q, ipv4: %s, ipv6: %q}\n", i, p.hostIf, p.mac, p.ip4, p.ip6)
		nd.pods = append(nd.pods, p)
	}
	nd.podsFile = filepath.Join(t.TempDir(), "pods.yaml")
	if err := os.WriteFile(nd.podsFile, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return nd
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type daemon struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan error
}

// start runs ringnetd in the node namespace and waits until it forwards.
func (nd *node) start(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{done: make(chan error, 1)}
	argv := append([]string{"netns", "exec", nd.ns.Name, filepath.Join(binDir, "ringnetd"), "--pods", nd.podsFile}, args...)
	d.cmd = exec.Command("ip", argv...)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d.stderr.String(), "msg=forwarding") {
		select {
		case err := <-d.done:
			t.Fatalf("ringnetd exited before forwarding: %v\n%s", err, d.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ringnetd not forwarding after 15s:\n%s", d.stderr.String())
		}
	}
	return d
}

type counters struct {
	ports   map[string]map[string]uint64 // port (or "worker N") -> field -> value
	reasons map[string]uint64
}

var portLine = regexp.MustCompile(`^(port \S+|worker \d+) (.*)$`)

// parseCounters parses the last counter block ringnetd printed.
func parseCounters(t *testing.T, out string) counters {
	t.Helper()
	i := strings.LastIndex(out, "counters\n")
	if i < 0 {
		t.Fatalf("no counters in ringnetd's output:\n%s", out)
	}
	c := counters{ports: map[string]map[string]uint64{}, reasons: map[string]uint64{}}
	sc := bufio.NewScanner(strings.NewReader(out[i+len("counters\n"):]))
	for sc.Scan() {
		line := sc.Text()
		if m := portLine.FindStringSubmatch(line); m != nil {
			fields := map[string]uint64{}
			for _, kv := range strings.Fields(m[2]) {
				k, v, _ := strings.Cut(kv, "=")
				fields[k], _ = strconv.ParseUint(v, 10, 64)
			}
			c.ports[strings.TrimPrefix(m[1], "port ")] = fields
		} else if f := strings.Fields(line); len(f) == 3 && f[0] == "reason" {
			c.reasons[f[1]], _ = strconv.ParseUint(f[2], 10, 64)
		}
	}
	return c
}

// counters asks ringnetd for its counters with SIGUSR1.
func (d *daemon) counters(t *testing.T) counters {
	t.Helper()
	before := strings.Count(d.stdout.String(), "counters\n")
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(d.stdout.String(), "counters\n") == before {
		if time.Now().After(deadline) {
			t.Fatalf("no counters 5s after SIGUSR1:\n%s", d.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the whole block arrive
	return parseCounters(t, d.stdout.String())
}

// countersWhen asks for the counters until ok accepts them, for up to 5
// seconds, and returns the last ones. Workers publish their counts once per
// batch, after the batch's frames have left, so the last frames of a
// transfer can reach their receiver before they are counted.
func (d *daemon) countersWhen(t *testing.T, ok func(counters) bool) counters {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c := d.counters(t); ok(c) || time.Now().After(deadline) {
			return c
		}
	}
}

// stop sends SIGTERM, waits for a clean exit and returns the final counters.
func (d *daemon) stop(t *testing.T) counters {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("ringnetd exited with %v:\n%s", err, d.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("ringnetd still running 10s after SIGTERM")
	}
	return parseCounters(t, d.stdout.String())
}

func ifaceCounter(t *testing.T, ns, ifname, name string) uint64 {
	t.Helper()
	out := netnstest.Run(t, ns, "cat", "/sys/class/net/"+ifname+"/statistics/"+name)
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// assertKernelCannotForward fails the test if the node's kernel could route
// between the pods: forwarding must be off and no route may lead to a pod.
func assertKernelCannotForward(t *testing.T, nd *node) {
	t.Helper()
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if v := strings.TrimSpace(netnstest.Run(t, nd.ns.Name, "sysctl", "-n", k)); v != "0" {
			t.Fatalf("%s = %s in the node namespace; the kernel could forward", k, v)
		}
	}
	for _, p := range nd.pods {
		for _, a := range []string{p.ip4, p.ip6} {
			// A route through the slow path's TAP leads into ringnetd (host ↔
			// pod traffic), not to the pod.
			if out, err := netnstest.Output(nd.ns.Name, "ip", "route", "get", a); err == nil && !strings.Contains(out, " dev ringnet0 ") {
				t.Fatalf("the node kernel has a route to pod %s: %s", a, out)
			}
		}
	}
}

func TestPodToPod(t *testing.T) {
	nd := newNode(t, 2)
	a, b := nd.pods[0], nd.pods[1]
	d := nd.start(t)
	assertKernelCannotForward(t, nd)
	rxB := ifaceCounter(t, b.ns.Name, "eth0", "rx_packets")

	netnstest.Run(t, a.ns.Name, "ping", "-c", "5", "-i", "0.2", "-W", "2", b.ip4)
	netnstest.Run(t, a.ns.Name, "ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", b.ip6)

	// UDP: 2 s at 20 Mbit/s; the server reports what it received.
	srv := exec.Command("ip", "netns", "exec", b.ns.Name, "iperf3", "-s", "-1", "-B", b.ip4, "-p", "5201")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	out := netnstest.Run(t, a.ns.Name, "iperf3", "-J", "-u", "-b", "20M", "-t", "2", "-c", b.ip4, "-p", "5201")
	srv.Wait()
	var udp struct {
		End struct {
			Sum struct {
				Packets     int64   `json:"packets"`
				LostPercent float64 `json:"lost_percent"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &udp); err != nil {
		t.Fatalf("iperf3 UDP output: %v\n%s", err, out)
	}
	if udp.End.Sum.Packets < 1000 || udp.End.Sum.LostPercent > 10 {
		t.Errorf("UDP: %d packets, %.1f%% lost; want >= 1000 and <= 10%%", udp.End.Sum.Packets, udp.End.Sum.LostPercent)
	}

	// TCP: 50 MB, which only arrives whole if checksums and segmentation
	// are right end to end.
	srv = exec.Command("ip", "netns", "exec", b.ns.Name, "iperf3", "-s", "-1", "-B", b.ip4, "-p", "5202")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	out = netnstest.Run(t, a.ns.Name, "iperf3", "-J", "-n", "50M", "-c", b.ip4, "-p", "5202")
	srv.Wait()
	var tcp struct {
		End struct {
			SumSent struct {
				Bytes int64 `json:"bytes"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes int64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &tcp); err != nil {
		t.Fatalf("iperf3 TCP output: %v\n%s", err, out)
	}
	// iperf3's receiver total stops at the last full interval, so it may
	// fall a little short of what was sent.
	if s, r := tcp.End.SumSent.Bytes, tcp.End.SumReceived.Bytes; s < 50<<20 || r < s*9/10 {
		t.Errorf("TCP: %d bytes sent, %d received; want %d sent and nearly all received", s, r, 50<<20)
	}

	// Everything pod B received came out of ringnet's TX on its port.
	rxB = ifaceCounter(t, b.ns.Name, "eth0", "rx_packets") - rxB
	c := d.countersWhen(t, func(c counters) bool {
		tx := c.ports[b.hostIf]["tx_frames"]
		return tx >= rxB && c.reasons["forwarded"] >= tx
	})
	txB := c.ports[b.hostIf]["tx_frames"]
	if rxB < 5000 {
		t.Errorf("pod B received only %d packets", rxB)
	}
	if txB < rxB {
		t.Errorf("pod B received %d packets but ringnet sent it only %d: something else carried traffic", rxB, txB)
	}
	if fwd := c.reasons["forwarded"]; fwd < txB {
		t.Errorf("forwarded %d < frames sent to B %d", fwd, txB)
	}
	if c.reasons["arp_reply"] == 0 || c.reasons["nd_reply"] == 0 {
		t.Errorf("no ARP or ND replies counted: %v", c.reasons)
	}
	assertKernelCannotForward(t, nd)
	final := d.stop(t)
	if final.reasons["forwarded"] < c.reasons["forwarded"] {
		t.Errorf("final forwarded count %d went back from %d", final.reasons["forwarded"], c.reasons["forwarded"])
	}
	assertDetached(t, nd)
}

// assertDetached checks that no XDP program is left on any pod port.
func assertDetached(t *testing.T, nd *node) {
	t.Helper()
	for _, p := range nd.pods {
		if out := netnstest.Run(t, nd.ns.Name, "ip", "link", "show", p.hostIf); strings.Contains(out, "xdp") {
			t.Errorf("XDP still attached to %s after shutdown:\n%s", p.hostIf, out)
		}
	}
}

func TestRestart(t *testing.T) {
	nd := newNode(t, 2)
	a, b := nd.pods[0], nd.pods[1]
	ping := func() error {
		_, err := netnstest.Output(a.ns.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", b.ip4)
		return err
	}
	d := nd.start(t)
	if err := ping(); err != nil {
		t.Fatalf("ping with ringnetd running: %v", err)
	}
	d.stop(t)
	assertDetached(t, nd)
	if err := ping(); err == nil {
		t.Fatal("ping works with ringnetd stopped: something other than ringnet forwards")
	}
	d = nd.start(t)
	if err := ping(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if c := d.stop(t); c.reasons["forwarded"] == 0 {
		t.Errorf("restarted ringnetd forwarded nothing: %v", c.reasons)
	}
}

// TestKill9 checks that a crashed ringnetd leaves nothing attached (the
// XDP programs are held by bpf links that die with the process) and that a
// new one starts cleanly.
func TestKill9(t *testing.T) {
	nd := newNode(t, 2)
	d := nd.start(t)
	d.cmd.Process.Kill()
	<-d.done
	d.cmd.ProcessState = &os.ProcessState{} // reaped
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := netnstest.Run(t, nd.ns.Name, "ip", "link", "show", nd.pods[0].hostIf)
		if !strings.Contains(out, "xdp") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("XDP still attached 5s after kill -9:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	nd.start(t)
	netnstest.Run(t, nd.pods[0].ns.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", nd.pods[1].ip4)
}

// TestBadFrames injects malformed and unsupported frames from a pod through
// a raw socket and checks each is counted under its reason, ringnetd keeps
// running, and good traffic still flows.
func TestBadFrames(t *testing.T) {
	nd := newNode(t, 2)
	a, b := nd.pods[0], nd.pods[1]
	d := nd.start(t)
	netnstest.Run(t, a.ns.Name, "ping", "-c", "1", "-W", "2", b.ip4) // resolves the gateway

	srcMAC, _ := net.ParseMAC(a.mac)
	good := func() []byte {
		f := make([]byte, 14+20+8+18)
		copy(f[0:6], []byte{0xee, 0xee, 0xee, 0xee, 0xee, 0xee})
		copy(f[6:12], srcMAC)
		binary.BigEndian.PutUint16(f[12:], packet.EtherTypeIPv4)
		ip := f[14:34]
		ip[0], ip[8], ip[9] = 0x45, 64, packet.ProtoUDP
		binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
		copy(ip[12:16], net.ParseIP(a.ip4).To4())
		copy(ip[16:20], net.ParseIP(b.ip4).To4())
		binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip, 0))
		binary.BigEndian.PutUint16(f[34+4:], 8+18)
		return f
	}
	fixSum := func(f []byte) []byte {
		ihl := int(f[14]&0xf) * 4
		binary.BigEndian.PutUint16(f[24:], 0)
		binary.BigEndian.PutUint16(f[24:], packet.Checksum(f[14:14+ihl], 0))
		return f
	}
	withOptions := func() []byte {
		g := good()
		f := append(append(append([]byte(nil), g[:34]...), 1, 1, 1, 0), g[34:]...)
		f[14] = 0x46
		binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
		return fixSum(f)
	}
	cases := []struct {
		reason string
		frame  []byte
	}{
		{"malformed_" + packet.TruncatedIPv4.String(), good()[:14+10]},
		{"malformed_" + packet.BadIHL.String(), func() []byte { f := good(); f[14] = 0x44; return f }()},
		{"malformed_" + packet.BadTotalLength.String(), func() []byte {
			f := good()
			binary.BigEndian.PutUint16(f[16:], 1400)
			return fixSum(f)
		}()},
		{"malformed_" + packet.BadIPv4Checksum.String(), func() []byte { f := good(); f[24] ^= 0x55; return f }()},
		{"ip_options", withOptions()},
		{"fragment", func() []byte { f := good(); f[20] = 0x20; return fixSum(f) }()},
		{"unknown_ethertype", func() []byte { f := good(); binary.BigEndian.PutUint16(f[12:], 0x88b5); return f }()},
		{"ttl_expired", func() []byte { f := good(); f[22] = 1; return fixSum(f) }()},
	}
	before := d.counters(t)
	const each = 20
	a.ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		for _, c := range cases {
			for range each {
				if err := unix.Sendto(fd, c.frame, 0, sa); err != nil {
					return fmt.Errorf("send %s frame: %w", c.reason, err)
				}
			}
		}
		return nil
	})
	netnstest.Run(t, a.ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "2", b.ip4)
	after := d.countersWhen(t, func(c counters) bool { return c.reasons["forwarded"]-before.reasons["forwarded"] >= 6 })
	for _, c := range cases {
		if got := after.reasons[c.reason] - before.reasons[c.reason]; got < each {
			t.Errorf("%s: counted %d, want at least %d", c.reason, got, each)
		}
	}
	// Only the good frames reach pod B.
	if fwd := after.reasons["forwarded"] - before.reasons["forwarded"]; fwd < 6 || fwd > 10 {
		t.Errorf("forwarded %d frames during the test, want the 3 pings and replies", fwd)
	}
	d.stop(t)
}

// TestBusyPollTwoWorkers runs two pinned, busy-polling workers on veths
// with two queues each, so both workers carry traffic.
func TestBusyPollTwoWorkers(t *testing.T) {
	nd := newNode(t, 2, "--queues", "2")
	a, b := nd.pods[0], nd.pods[1]
	d := nd.start(t, "--workers", "2", "--busy-poll", "--cpus", "0,1")
	netnstest.Run(t, a.ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "2", b.ip4)
	netnstest.Run(t, a.ns.Name, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", b.ip6)
	srv := exec.Command("ip", "netns", "exec", b.ns.Name, "iperf3", "-s", "-1", "-B", b.ip4, "-p", "5203")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// Eight parallel streams spread over both queues by flow hash.
	netnstest.Run(t, a.ns.Name, "iperf3", "-P", "8", "-t", "2", "-c", b.ip4, "-p", "5203")
	srv.Wait()
	c := d.stop(t)
	if c.reasons["forwarded"] < 10000 {
		t.Errorf("forwarded %d frames, want many: %v", c.reasons["forwarded"], c.reasons)
	}
	for _, w := range []string{"worker 0", "worker 1"} {
		if c.ports[w]["forwarded"] == 0 {
			t.Errorf("%s forwarded nothing: %v", w, c.ports)
		}
	}
	if !strings.Contains(d.stderr.String(), "busy_poll=true") || strings.Contains(d.stderr.String(), "unpinned") {
		t.Errorf("ringnetd did not run pinned busy-polling workers:\n%s", d.stderr.String())
	}
}
