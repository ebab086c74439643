package cni_test

// End-to-end tests of the CNI plugin with libcni, the library containerd
// and CRI-O use to call plugins: the real plugin binary, the real ringnetd,
// real namespaces and AF_XDP sockets.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/internal/netnstest"
)

var binDir, cniDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "ringnet-cni-bin")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			binDir, cniDir = dir, filepath.Join(dir, "cni")
			for _, b := range [][2]string{{"ringnetd", "./cmd/ringnetd"}, {"cni/ringnet", "./cmd/ringnet-cni"}, {"ringnet", "./cmd/ringnet"}} {
				cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b[0]), "github.com/ringnet/ringnet/"+strings.TrimPrefix(b[1], "./"))
				if out, err := cmd.CombinedOutput(); err != nil {
					fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b[0], err, out)
					return 1
				}
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// node is a node namespace with ringnetd serving the plugin.
type node struct {
	ns     netnstest.NS
	socket string
	state  string
	cidrs  string
	cmd    *exec.Cmd
	done   chan error
	log    *strings.Builder
	mu     sync.Mutex
}

func newNode(t *testing.T, cidrs string) *node {
	t.Helper()
	netnstest.RequireRoot(t)
	dir := t.TempDir()
	n := &node{ns: netnstest.New(t, "rnC"), socket: filepath.Join(dir, "rn.sock"), state: filepath.Join(dir, "state"), cidrs: cidrs}
	netnstest.Run(t, n.ns.Name, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	n.start(t)
	t.Cleanup(func() { n.kill() })
	return n
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (n *node) start(t *testing.T) {
	t.Helper()
	n.log = &strings.Builder{}
	n.cmd = exec.Command("ip", "netns", "exec", n.ns.Name, filepath.Join(binDir, "ringnetd"),
		"--pod-cidr", n.cidrs, "--socket", n.socket, "--state-dir", n.state)
	n.cmd.Stdout = lockedWriter{&n.mu, n.log}
	n.cmd.Stderr = lockedWriter{&n.mu, n.log}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- n.cmd.Wait() }()
	cl := api.NewClient(n.socket)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, err := cl.Status(context.Background()); err == nil {
			return
		}
		select {
		case err := <-n.done:
			t.Fatalf("ringnetd exited: %v\n%s", err, n.logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ringnetd not serving after 15s:\n%s", n.logs())
		}
	}
}

func (n *node) logs() string { n.mu.Lock(); defer n.mu.Unlock(); return n.log.String() }

func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
		n.cmd = nil
	}
}

func (n *node) status(t *testing.T) api.Status {
	t.Helper()
	st, err := api.NewClient(n.socket).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func conflist(version, socket string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion": %q, "name": "ringnet-test", "plugins": [
	  {"type": "ringnet", "socket": %q, "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}}]}`, version, socket))
}

// inNode runs fn on a thread inside the node namespace, where the runtime
// would exec the plugin.
func inNode(t *testing.T, n *node, fn func() error) error {
	t.Helper()
	return ns.WithNetNSPath(n.ns.Path, func(ns.NetNS) error { return fn() })
}

type cniCall struct {
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

func newCall(t *testing.T, version, socket string) cniCall {
	t.Helper()
	list, err := libcni.ConfListFromBytes(conflist(version, socket))
	if err != nil {
		t.Fatal(err)
	}
	return cniCall{cni: libcni.NewCNIConfigWithCacheDir([]string{cniDir}, t.TempDir(), nil), list: list}
}

func rt(id, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0",
		Args: [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", id}}}
}

func addrsOf(t *testing.T, res types.Result) (v4, v6 netip.Addr) {
	t.Helper()
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range r.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		if a.Unmap().Is4() {
			v4 = a.Unmap()
		} else {
			v6 = a
		}
	}
	return v4, v6
}

// TestSpecVersions adds two pods with each spec version, checks the result,
// pings between them through the fast path, runs CHECK, and deletes them,
// leaving no veth and no allocation.
func TestSpecVersions(t *testing.T) {
	n := newNode(t, "10.244.7.0/24,fd00:7::/64")
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			call := newCall(t, v, n.socket)
			pa, pb := netnstest.New(t, "rnA"), netnstest.New(t, "rnB")
			ra, rb := rt("a-"+v, pa.Path), rt("b-"+v, pb.Path)
			var resA, resB types.Result
			err := inNode(t, n, func() error {
				var err error
				if resA, err = call.cni.AddNetworkList(context.Background(), call.list, ra); err != nil {
					return err
				}
				resB, err = call.cni.AddNetworkList(context.Background(), call.list, rb)
				return err
			})
			if err != nil {
				t.Fatalf("ADD: %v\n%s", err, n.logs())
			}
			if resA.Version() != v {
				t.Errorf("result version %s, want %s", resA.Version(), v)
			}
			a4, a6 := addrsOf(t, resA)
			b4, b6 := addrsOf(t, resB)
			if !a4.IsValid() || !a6.IsValid() || a4 == b4 || a6 == b6 {
				t.Fatalf("addresses a %s %s, b %s %s", a4, a6, b4, b6)
			}
			if r, _ := current.NewResultFromResult(resA); len(r.DNS.Nameservers) != 1 || len(r.Routes) != 2 {
				t.Errorf("result lacks DNS or routes: %+v", r)
			}
			netnstest.Run(t, pa.Name, "ping", "-c", "2", "-i", "0.2", "-W", "2", b4.String())
			netnstest.Run(t, pa.Name, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", b6.String())
			if v != "0.3.1" {
				if err := inNode(t, n, func() error { return call.cni.CheckNetworkList(context.Background(), call.list, ra) }); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if st := n.status(t); st.Allocated != 2 || st.Ports != 2 {
				t.Errorf("status after ADD: %+v", st)
			}
			// The CLI reports the same.
			out := netnstest.Run(t, "", filepath.Join(binDir, "ringnet"), "status", "--socket", n.socket, "--output", "json")
			var cli api.Status
			if err := json.Unmarshal([]byte(out), &cli); err != nil || cli.Allocated != 2 || !cli.Ready {
				t.Errorf("ringnet status printed %s (%v)", out, err)
			}
			err = inNode(t, n, func() error {
				if err := call.cni.DelNetworkList(context.Background(), call.list, ra); err != nil {
					return err
				}
				return call.cni.DelNetworkList(context.Background(), call.list, rb)
			})
			if err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if st := n.status(t); st.Allocated != 0 || st.Ports != 0 {
				t.Errorf("status after DEL: %+v", st)
			}
			if out := netnstest.Run(t, n.ns.Name, "ip", "-br", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
				t.Errorf("veths left after DEL:\n%s", out)
			}
		})
	}
}

func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestErrors(t *testing.T) {
	n := newNode(t, "10.244.8.0/30")
	pa := netnstest.New(t, "rnA")
	call := newCall(t, "1.0.0", n.socket)

	// Invalid config: code 7, naming the field.
	bad, _ := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"ringnet","socket":"relative.sock"}]}`))
	err := inNode(t, n, func() error {
		_, err := call.cni.AddNetworkList(context.Background(), bad, rt("bad", pa.Path))
		return err
	})
	if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), `"socket"`) {
		t.Errorf("relative socket: %v (code %d); want code 7 naming \"socket\"", err, cniCode(err))
	}

	// Pool exhausted: a /30 holds two pods; the third gets an error naming the pool.
	pods := []netnstest.NS{pa, netnstest.New(t, "rnB"), netnstest.New(t, "rnC")}
	for i, p := range pods {
		err := inNode(t, n, func() error {
			_, err := call.cni.AddNetworkList(context.Background(), call.list, rt(fmt.Sprintf("p%d", i), p.Path))
			return err
		})
		switch {
		case i < 2 && err != nil:
			t.Fatalf("ADD %d: %v", i, err)
		case i == 2 && (cniCode(err) != 100 || !strings.Contains(err.Error(), "10.244.8.0/30")):
			t.Errorf("ADD into a full pool: %v (code %d); want code 100 naming the pool", err, cniCode(err))
		}
	}
	// The failed ADD left no veth behind.
	if out := netnstest.Run(t, n.ns.Name, "ip", "-br", "link", "show", "type", "veth"); strings.Count(out, "\n") != 2 {
		t.Errorf("want 2 veths after the failed ADD, have:\n%s", out)
	}

	// DEL is idempotent: twice, unknown container, netns already gone.
	err = inNode(t, n, func() error {
		for _, r := range []*libcni.RuntimeConf{rt("p0", pods[0].Path), rt("p0", pods[0].Path), rt("nosuch", "/run/netns/nosuch"), rt("p1", "/run/netns/gone")} {
			if err := call.cni.DelNetworkList(context.Background(), call.list, r); err != nil {
				return fmt.Errorf("DEL %s: %w", r.ContainerID, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if st := n.status(t); st.Allocated != 0 {
		t.Errorf("allocations left after DEL: %+v", st)
	}

	// Daemon not running: code 11 with a message saying how to start it.
	n.kill()
	err = inNode(t, n, func() error {
		_, err := call.cni.AddNetworkList(context.Background(), call.list, rt("late", pa.Path))
		return err
	})
	if cniCode(err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), "ringnetd is not running") {
		t.Errorf("ADD without ringnetd: %v (code %d); want 11", err, cniCode(err))
	}
	var e *types.Error
	if errors.As(err, &e) && !strings.Contains(e.Details, "ringnetd --pod-cidr") {
		t.Errorf("error details do not say how to start ringnetd: %q", e.Details)
	}
}

// TestConcurrentAddDel runs 50 ADDs at once, then 50 DELs: every pod gets a
// unique address and nothing is left afterwards.
func TestConcurrentAddDel(t *testing.T) {
	n := newNode(t, "10.244.9.0/24,fd00:9::/64")
	call := newCall(t, "1.1.0", n.socket)
	const pods = 50
	nss := make([]netnstest.NS, pods)
	for i := range nss {
		nss[i] = netnstest.New(t, "rnP")
	}
	results := make([]netip.Addr, pods)
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- inNode(t, n, func() error {
				res, err := call.cni.AddNetworkList(context.Background(), call.list, rt(fmt.Sprintf("c%d", i), nss[i].Path))
				if err == nil {
					results[i], _ = addrsOf(t, res)
				}
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent ADD: %v\n%s", err, n.logs())
		}
	}
	seen := map[netip.Addr]int{}
	for i, a := range results {
		if j, dup := seen[a]; dup {
			t.Fatalf("pods %d and %d both got %s", i, j, a)
		}
		seen[a] = i
	}
	netnstest.Run(t, nss[0].Name, "ping", "-c", "1", "-W", "2", results[pods-1].String())
	if st := n.status(t); st.Ports != pods || st.Allocated != pods {
		t.Errorf("status: %+v, want %d ports and allocations", st, pods)
	}
	errs = make(chan error, pods)
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- inNode(t, n, func() error {
				return call.cni.DelNetworkList(context.Background(), call.list, rt(fmt.Sprintf("c%d", i), nss[i].Path))
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent DEL: %v", err)
		}
	}
	if st := n.status(t); st.Ports != 0 || st.Allocated != 0 {
		t.Errorf("after DEL: %+v", st)
	}
	if out := netnstest.Run(t, n.ns.Name, "ip", "-br", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
		t.Errorf("veths left:\n%s", out)
	}
	// What stays is the port program all pods share (one program, its
	// XSKMAP and device map), loaded once for the next pods, and the link
	// that holds it on its TAP; a port's own share is its link, which goes
	// with the port.
	if progs, maps, links := bpfFDs(t, n.cmd.Process.Pid); progs > 1 || maps > 2 || links > 1 {
		t.Errorf("ringnetd still holds %d BPF programs, %d maps and %d links after all DELs, want at most the shared port program (1 program, 2 maps) and the link holding it", progs, maps, links)
	}
	if fds := openFDs(t, n.cmd.Process.Pid); fds > 64 {
		t.Errorf("ringnetd holds %d file descriptors after all DELs (sockets leaked?)", fds)
	}
}

// bpfFDs counts the BPF programs, maps and links a process holds open:
// what a leaked port would keep alive. (A system-wide count would see
// other packages' tests running in parallel.)
func bpfFDs(t *testing.T, pid int) (progs, maps, links int) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch l, _ := os.Readlink(filepath.Join(dir, e.Name())); l {
		case "anon_inode:bpf-prog":
			progs++
		case "anon_inode:bpf-map":
			maps++
		case "anon_inode:bpf_link":
			links++
		}
	}
	return progs, maps, links
}

func openFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestRestartKeepsPods kills ringnetd with SIGKILL while ADDs are in flight,
// restarts it, and checks that existing pods keep their addresses and
// forward again and that no address was handed out twice.
func TestRestartKeepsPods(t *testing.T) {
	n := newNode(t, "10.244.10.0/24")
	call := newCall(t, "1.0.0", n.socket)
	const pods = 12
	nss := make([]netnstest.NS, pods)
	for i := range nss {
		nss[i] = netnstest.New(t, "rnP")
	}
	add := func(i int) (netip.Addr, error) {
		var a netip.Addr
		err := inNode(t, n, func() error {
			res, err := call.cni.AddNetworkList(context.Background(), call.list, rt(fmt.Sprintf("r%d", i), nss[i].Path))
			if err == nil {
				a, _ = addrsOf(t, res)
			}
			return err
		})
		return a, err
	}
	first, _ := add(0)
	second, _ := add(1)
	// Now a burst of ADDs, killed in the middle.
	var wg sync.WaitGroup
	for i := 2; i < pods; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); add(i) }()
	}
	time.Sleep(150 * time.Millisecond)
	n.kill()
	wg.Wait()
	n.start(t)
	// The pods made before the crash forward again with their addresses.
	netnstest.Run(t, nss[0].Name, "ping", "-c", "2", "-i", "0.2", "-W", "2", second.String())
	// Every pod can be (re)added; no two pods share an address.
	seen := map[netip.Addr]int{first: 0, second: 1}
	for i := 2; i < pods; i++ {
		a, err := add(i)
		if err != nil {
			t.Fatalf("ADD %d after restart: %v\n%s", i, err, n.logs())
		}
		if j, dup := seen[a]; dup {
			t.Fatalf("pods %d and %d both have %s", i, j, a)
		}
		seen[a] = i
	}
	if again, err := add(0); err != nil || again != first {
		t.Errorf("repeated ADD of pod 0: %s %v; want its address %s", again, err, first)
	}
	netnstest.Run(t, nss[pods-1].Name, "ping", "-c", "1", "-W", "2", first.String())
	if st := n.status(t); st.Allocated != pods {
		t.Errorf("status %+v, want %d allocations", st, pods)
	}
	raw, _ := json.Marshal(n.status(t))
	t.Logf("status after restart: %s", raw)
}

// TestSocketOnlyRoot checks that ringnetd's socket is 0600 and that a
// non-root user cannot use it.
func TestSocketOnlyRoot(t *testing.T) {
	n := newNode(t, "10.244.11.0/24")
	fi, err := os.Stat(n.socket)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	// Let nobody traverse the directories, so that only the socket's own
	// mode stands in the way.
	for d := filepath.Dir(n.socket); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		filepath.Join(binDir, "ringnet"), "status", "--socket", n.socket).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied: only root may use it") {
		t.Errorf("nobody ran ringnet status: err=%v output=%s; want permission denied", err, out)
	}
	// Root still can.
	if _, err := exec.Command(filepath.Join(binDir, "ringnet"), "status", "--socket", n.socket).CombinedOutput(); err != nil {
		t.Errorf("root: %v", err)
	}
}
