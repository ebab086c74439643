// Package hardening_test checks what ringnet promises when it is abused:
// pods added and deleted by the thousand, ringnetd killed under traffic,
// its socket fed junk, its pods and its uplink flooded with malformed
// frames, and parsers fed whatever a fuzzer makes. The tests run the real
// binaries: ringnetd on a node namespace of internal/topo with a cluster
// file (one node, or with a peer), the CNI plugin called through libcni,
// trafgen for the floods, the test as ringnetd's supervisor. They need
// root; the fuzz targets and the frame builders' tests do not.
//
//	go test ./test/hardening/                          # as make test runs it
//	go test ./test/hardening/ -run TestCNIChurn -churn 1000 -v
//	go test ./test/hardening/ -run TestMalformedAtRate -malformed-duration 60s -v
//	go test ./test/hardening/ -run '^$' -bench RestartResume -benchtime 10x
//
// docs/reliability.md has the figures they measured and what is not
// covered yet.
package hardening_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/internal/netnstest"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
	"github.com/vishvananda/netlink"
)

// The binaries are built once per test binary, by the first test that
// needs them, so that the fuzz targets' worker processes (which run
// TestMain too) build nothing.
var (
	buildOnce sync.Once
	bins      ringnode.Binaries
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binaries(tb testing.TB) ringnode.Binaries {
	tb.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "ringnet-hardening-bin"); buildErr == nil {
			bins, buildErr = ringnode.Build(binDir)
		}
	})
	if buildErr != nil {
		tb.Fatalf("build: %v", buildErr)
	}
	return bins
}

const (
	nodeAddr    = "192.168.77.1/24"
	podCIDR4    = "10.244.0.0/24"
	podCIDR6    = "fd00:244::/64"
	metricsPort = "9464" // ringnetd's default --metrics-addr is 127.0.0.1:9464
)

// node is one topology node running ringnetd (internal/ringnode) with a
// one-node cluster file, as a cluster runs it, and the CNI plugin called
// through libcni. The test is ringnetd's supervisor: it can kill it and
// start it again on the same socket and state directory.
type node struct {
	tb  testing.TB
	tp  *topo.Topology // the underlay the node is on; a test may add namespaces to it
	tn  *topo.Node
	d   *ringnode.Daemon
	api *api.Client
}

// newNode makes a topology with one node and starts ringnetd on it. Its
// cleanup stops ringnetd before the topology goes.
func newNode(tb testing.TB) *node { return newClusterNode(tb, "") }

// newClusterNode is newNode with more nodes in the cluster file: peers
// holds their entries of its nodes list, as YAML. ringnetd runs on node a
// only; a peer is whatever the test puts at its address, if anything.
func newClusterNode(tb testing.TB, peers string) *node {
	tb.Helper()
	netnstest.RequireRoot(tb)
	b := binaries(tb)
	tp := topo.NewT(tb, "hrd")
	tn, err := tp.AddNode("a", netip.MustParsePrefix(nodeAddr), topo.NodeOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	cluster := filepath.Join(tb.TempDir(), "cluster.yaml")
	file := fmt.Sprintf("nodes:\n- name: a\n  address: %s\n  podCIDRs: [%s, %q]\n%s", nodeAddr, podCIDR4, podCIDR6, peers)
	if err := os.WriteFile(cluster, []byte(file), 0o644); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := ringnode.Start(ctx, b, tn, ringnode.Options{Cluster: cluster})
	if err != nil {
		tb.Fatal(err)
	}
	n := &node{tb: tb, tp: tp, tn: tn, d: d, api: api.NewClient(d.Socket)}
	n.api.Timeout = 10 * time.Second
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Errorf("stop ringnetd: %v", err)
		}
	})
	return n
}

// start runs ringnetd again after kill and returns how long it took, from
// the exec to the first answer on its socket.
func (n *node) start() time.Duration {
	n.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	if err := n.d.Restart(ctx); err != nil {
		n.tb.Fatal(err)
	}
	return time.Since(began)
}

// kill stops ringnetd with SIGKILL, as a crash would, and waits for it.
func (n *node) kill() { n.d.Kill() }

// pid is ringnetd's process ID.
func (n *node) pid() int {
	n.tb.Helper()
	if !n.d.Running() {
		n.tb.Fatal("ringnetd is not running")
	}
	pid := n.d.PID()
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "ringnetd" {
		n.tb.Fatalf("process %d is %q, not ringnetd", pid, comm)
	}
	return pid
}

func (n *node) logTail(lines int) string {
	l := strings.Split(strings.TrimRight(n.d.Log(), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// pod is a pod namespace the CNI plugin added to the network.
type pod struct {
	id       string // container ID
	ns       netnstest.NS
	ip4, ip6 netip.Addr
}

func runtimeConf(id, netnsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netnsPath, IfName: "eth0",
		Args: [][2]string{{"K8S_POD_NAMESPACE", "hardening"}, {"K8S_POD_NAME", id}}}
}

// add is CNI ADD, run where the runtime would run it: in the node's
// namespace.
func (n *node) add(ctx context.Context, id, netnsPath string) (ip4, ip6 netip.Addr, err error) {
	return n.d.Add(ctx, runtimeConf(id, netnsPath))
}

// del is CNI DEL.
func (n *node) del(ctx context.Context, id, netnsPath string) error {
	return n.d.Del(ctx, runtimeConf(id, netnsPath))
}

// check is CNI CHECK: ringnetd has the allocation and the port attached,
// and the pod's eth0 has its addresses and routes.
func (n *node) check(ctx context.Context, id, netnsPath string) error {
	return n.d.Check(ctx, runtimeConf(id, netnsPath))
}

// addPod makes a pod namespace and adds it to the network.
func (n *node) addPod(t testing.TB, id string) *pod {
	t.Helper()
	p := &pod{id: id, ns: netnstest.New(t, "rnH")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if p.ip4, p.ip6, err = n.add(ctx, id, p.ns.Path); err != nil {
		t.Fatalf("ADD %s: %v\n%s", id, err, n.logTail(20))
	}
	if !p.ip4.IsValid() || !p.ip6.IsValid() {
		t.Fatalf("ADD %s: addresses %v %v, want one of each family", id, p.ip4, p.ip6)
	}
	return p
}

// eth0Addrs reads the global addresses on the pod's eth0.
func (p *pod) eth0Addrs(t testing.TB) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	p.ns.Do(t, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
				out = append(out, ip.Unmap())
			}
		}
		return nil
	})
	return out
}

// usage is what ringnetd holds, read from /proc and from its own metrics.
type usage struct {
	FDs        int // open file descriptors
	Sockets    int // of which sockets
	BPFProgs   int // of which BPF programs, maps and links
	BPFMaps    int
	BPFLinks   int
	XSKs       int // AF_XDP sockets in the node's namespace (/proc/net/protocols)
	Threads    int
	RSSKiB     int
	Goroutines int      // go_goroutines from its metrics
	HostVeths  []string // veths in the node's namespace other than its uplink
	XDPLinks   []string // links in the node's namespace with an XDP program
}

func (u usage) String() string {
	return fmt.Sprintf("fds=%d sockets=%d bpf_progs=%d bpf_maps=%d bpf_links=%d xsks=%d threads=%d rss=%.1fMiB goroutines=%d host_veths=%d xdp_links=%v",
		u.FDs, u.Sockets, u.BPFProgs, u.BPFMaps, u.BPFLinks, u.XSKs, u.Threads, float64(u.RSSKiB)/1024, u.Goroutines, len(u.HostVeths), u.XDPLinks)
}

// usage reads ringnetd's resources now.
func (n *node) usage() usage {
	n.tb.Helper()
	pid := n.pid()
	var u usage
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		n.tb.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed while we read
		}
		u.FDs++
		switch {
		case strings.HasPrefix(l, "socket:"):
			u.Sockets++
		case l == "anon_inode:bpf-prog":
			u.BPFProgs++
		case l == "anon_inode:bpf-map":
			u.BPFMaps++
		case l == "anon_inode:bpf_link":
			u.BPFLinks++
		}
	}
	// /proc/PID/net is the process's namespace: the node's.
	u.XSKs = protocolSockets(n.tb, fmt.Sprintf("/proc/%d/net/protocols", pid), "XDP")
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		n.tb.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "Threads:" {
			u.Threads, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmRSS:" {
			u.RSSKiB, _ = strconv.Atoi(f[1])
		}
	}
	u.Goroutines = int(n.metric("go_goroutines"))
	err = n.tn.Do(func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			if l.Type() == "veth" && a.Name != n.tn.Uplink {
				u.HostVeths = append(u.HostVeths, a.Name)
			}
			if a.Xdp != nil && a.Xdp.Attached {
				u.XDPLinks = append(u.XDPLinks, a.Name)
			}
		}
		return nil
	})
	if err != nil {
		n.tb.Fatal(err)
	}
	return u
}

// protocolSockets reads the sockets column of proto's line in a
// /proc/net/protocols file.
func protocolSockets(tb testing.TB, path, proto string) int {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) >= 3 && fl[0] == proto {
			n, _ := strconv.Atoi(fl[2])
			return n
		}
	}
	tb.Fatalf("%s: no %s line", path, proto)
	return 0
}

// metricsClient dials from inside the node's namespace, where ringnetd's
// metrics listen on 127.0.0.1.
func (n *node) metricsClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := n.tn.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// metric reads one unlabelled metric from ringnetd's /metrics.
func (n *node) metric(name string) float64 {
	n.tb.Helper()
	return n.metrics(name)[0]
}

// metrics reads unlabelled metrics from one scrape of ringnetd's
// /metrics, in the order named.
func (n *node) metrics(names ...string) []float64 {
	n.tb.Helper()
	resp, err := n.metricsClient().Get("http://127.0.0.1:" + metricsPort + "/metrics")
	if err != nil {
		n.tb.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := make([]float64, len(names))
	for i, name := range names {
		found := false
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if out[i], err = strconv.ParseFloat(v, 64); err != nil {
					n.tb.Fatalf("metric %s: %q", name, line)
				}
				found = true
				break
			}
		}
		if !found {
			n.tb.Fatalf("no metric %s in /metrics", name)
		}
	}
	return out
}

// settle polls ringnetd's usage until ok accepts it or 10 s pass, and
// returns the last reading.
func (n *node) settle(ok func(usage) bool) (usage, bool) {
	n.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := n.usage()
		if ok(u) {
			return u, true
		}
		if time.Now().After(deadline) {
			return u, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quiet waits until ringnetd's file descriptors and goroutines hold still
// (connections of finished calls close asynchronously) and returns the
// reading: a baseline.
func (n *node) quiet() usage {
	n.tb.Helper()
	u, ok := holdStill(250*time.Millisecond, n.usage, func(a, b usage) bool {
		return a.FDs == b.FDs && a.Goroutines == b.Goroutines
	})
	if !ok {
		n.tb.Fatalf("ringnetd's resources do not settle: %v", u)
	}
	return u
}

// holdStill reads every interval until two readings in a row are the
// same, by same, and returns the last; after 50 readings it gives up and
// returns the last with false.
func holdStill[T any](interval time.Duration, read func() T, same func(a, b T) bool) (T, bool) {
	prev := read()
	for range 50 {
		time.Sleep(interval)
		v := read()
		if same(prev, v) {
			return v, true
		}
		prev = v
	}
	return prev, false
}
