package cni_test

// End to end with containerd (Debian's 1.6, CRI plugin) driven by crictl,
// as kubelet drives it: two pod sandboxes from a locally built pause image
// on a ringnet network, a busybox container in each, and the containers
// ping each other through the fast path. containerd runs inside the node's
// network namespace with its root, state, socket and CNI setup in the
// test's temporary directory.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringnet/ringnet/cni/cnitest"
	"github.com/ringnet/ringnet/internal/netnstest"
)

const (
	pauseImage   = "localhost/ringnet-pause:e2e"
	busyboxImage = "localhost/ringnet-busybox:e2e"
)

// pauseSource is the pod sandbox's only process: it waits for a signal and
// reaps the children it inherits as PID 1.
const pauseSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
`

// buildPause builds the pause binary, static, with the Go toolchain.
func buildPause(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"main.go": pauseSource, "go.mod": "module ringnet.local/pause\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "pause", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pause"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerArchive packs one layer as an image in docker-archive form (what
// `docker save` writes and `ctr images import` reads).
func dockerArchive(t *testing.T, ref string, layer []byte, entrypoint, cmd []string) []byte {
	t.Helper()
	sum := sha256.Sum256(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "created": time.Now().UTC().Format(time.RFC3339),
		"config": map[string]any{"Entrypoint": entrypoint, "Cmd": cmd, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	return tarFiles(t, false, []tarEntry{
		{name: "layer.tar", mode: 0o644, data: layer},
		{name: "config.json", mode: 0o644, data: config},
		{name: "manifest.json", mode: 0o644, data: manifest},
	})
}

// containerd is a containerd private to one test, in a node's namespace.
type containerd struct {
	node   *node
	dir    string
	socket string
	crictl string
	// network is the conflist's name; go-cni caches results under it in
	// /var/lib/cni/results.
	network string
	cmd     *exec.Cmd
	done    chan error
	mu      sync.Mutex
	log     bytes.Buffer // guarded by mu
}

func (c *containerd) logs() string { c.mu.Lock(); defer c.mu.Unlock(); return c.log.String() }

func newContainerd(t *testing.T, n *node, crictl string) *containerd {
	t.Helper()
	// Short paths: the socket path must fit sockaddr_un.
	dir, err := os.MkdirTemp("", "rncd")
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{node: n, dir: dir, socket: filepath.Join(dir, "c.sock"), crictl: crictl, network: netnstest.Name("rncd")}
	binDir, netDir := filepath.Join(dir, "cni-bin"), filepath.Join(dir, "net.d")
	for _, d := range []string{binDir, netDir, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// containerd 1.6 takes one CNI bin_dir, and brings each pod's lo up
	// with the loopback plugin from it.
	for name, target := range map[string]string{"ringnet": filepath.Join(cniDir, "ringnet"), "loopback": filepath.Join(debianCNI, "loopback")} {
		if err := os.Symlink(target, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [{"type": "ringnet", "socket": %q}]}`, c.network, n.socket)
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
    max_conf_num = 1
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.socket, filepath.Join(dir, "opt"), pauseImage, binDir, netDir)
	for name, content := range map[string]string{"config.toml": config, "net.d/10-ringnet.conflist": conflist} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// RLIMIT_MEMLOCK 8 MiB, as a node's containerd has it (containerd.service
	// sets no LimitMEMLOCK; 8 MiB is the kernel's default): its containers
	// inherit it, and ringnetd's UMEMs need IPC_LOCK beyond it.
	c.cmd = exec.Command("prlimit", "--memlock=8388608:8388608", "--",
		"nsenter", "--net="+n.ns.Path, "containerd", "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout = writerFunc(func(p []byte) (int, error) { c.mu.Lock(); defer c.mu.Unlock(); return c.log.Write(p) })
	c.cmd.Stderr = c.cmd.Stdout
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.done = make(chan error, 1)
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { c.close(t) })

	// Ready when the CRI answers and has loaded the CNI config.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := c.crictlOutput("info")
		if err == nil && strings.Contains(out, `"NetworkReady"`) && !strings.Contains(out, "cni config load failed") {
			break
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("containerd exited: %v\n%s", err, c.logs())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd's CRI not ready after 30s: %v\n%s\ncontainerd:\n%s", err, out, tailLines(c.logs(), 40))
		}
	}
	return c
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// crictlOutput runs crictl in the node's namespace (crictl exec reaches
// containerd's streaming server on the node's 127.0.0.1).
func (c *containerd) crictlOutput(args ...string) (string, error) {
	full := append([]string{"--net=" + c.node.ns.Path, c.crictl, "--runtime-endpoint", "unix://" + c.socket,
		"--image-endpoint", "unix://" + c.socket, "--timeout", "60s"}, args...)
	// stdout only: crictl warns on stderr (no /etc/crictl.yaml, no cgroup parent).
	var stderr bytes.Buffer
	cmd := exec.Command("nsenter", full...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *containerd) crictlRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.crictlOutput(args...)
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s\nringnetd:\n%s\ncontainerd:\n%s", strings.Join(args, " "), err, out,
			tailLines(c.node.logs(), 20), tailLines(c.logs(), 30))
	}
	return strings.TrimSpace(out)
}

// importImage imports a docker-archive into the CRI's image namespace,
// unpacked for the CRI's snapshotter.
func (c *containerd) importImage(t *testing.T, archive []byte) {
	t.Helper()
	f := filepath.Join(c.dir, "image.tar")
	if err := os.WriteFile(f, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	out, err := exec.Command("ctr", "--address", c.socket, "--namespace", "k8s.io", "images", "import",
		"--snapshotter", "native", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
}

// close removes every pod (CNI DEL while ringnetd still runs: this cleanup
// runs before the node's), stops containerd and the shims it started,
// unmounts what is left under the directory and removes it.
func (c *containerd) close(t *testing.T) {
	if out, err := c.crictlOutput("rmp", "--all", "--force"); err != nil {
		t.Logf("crictl rmp: %v\n%s", err, out)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	// The shims outlive containerd by design; ours name our socket.
	for _, pid := range pidsWithArg(c.socket) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(t, c.dir)
	if err := os.RemoveAll(c.dir); err != nil {
		t.Logf("remove %s: %v", c.dir, err)
	}
	cnitest.RemoveResults(c.network)
}

// pidsWithArg lists the processes whose command line contains arg.
func pidsWithArg(arg string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(arg)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// criTools returns crictl's path and a static busybox's, or skips the test.
func criTools(t *testing.T) (crictl, busybox string) {
	t.Helper()
	netnstest.RequireRoot(t)
	requireCommands(t, "containerd", "containerd-shim-runc-v2", "ctr", "runc", "nsenter", "prlimit")
	busybox = staticBusybox(t)
	out, err := exec.Command("../scripts/crictl.sh").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Skipf("crictl could not be built from the Go module proxy (scripts/crictl.sh: %v):\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out)), busybox
}

// criPod is a pod sandbox on the CNI network with one busybox container.
type criPod struct{ name, id, ctr, ip string }

// runPod starts a pod sandbox on the ringnet network, as kubelet would, with
// a busybox container that sleeps, and returns it with the IPv4 address
// the CRI reports (an error unless it reports one of each family).
func (c *containerd) runPod(name string) (*criPod, error) {
	p := &criPod{name: name}
	podConf := filepath.Join(c.dir, name+"-pod.json")
	ctrConf := filepath.Join(c.dir, name+"-ctr.json")
	if err := writeJSON(podConf, map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "e2e", "uid": "uid-" + name, "attempt": 0},
		"hostname":      name,
		"log_directory": filepath.Join(c.dir, "logs", name),
		"linux":         map[string]any{},
	}); err != nil {
		return nil, err
	}
	if err := writeJSON(ctrConf, map[string]any{
		"metadata": map[string]any{"name": "busybox"},
		"image":    map[string]any{"image": busyboxImage},
		"command":  []string{"sleep", "300"},
		"log_path": "busybox.log",
		"linux": map[string]any{"security_context": map[string]any{
			"capabilities": map[string]any{"add_capabilities": []string{"NET_RAW"}}}},
	}); err != nil {
		return nil, err
	}
	var err error
	if p.id, err = c.crictlOutput("runp", podConf); err != nil {
		return nil, fmt.Errorf("crictl runp %s: %w\n%s", name, err, p.id)
	}
	if p.ctr, err = c.crictlOutput("create", p.id, ctrConf, podConf); err != nil {
		return p, fmt.Errorf("crictl create %s: %w\n%s", name, err, p.ctr)
	}
	if out, err := c.crictlOutput("start", p.ctr); err != nil {
		return p, fmt.Errorf("crictl start %s: %w\n%s", name, err, out)
	}
	var st struct {
		Status struct {
			Network struct {
				IP            string `json:"ip"`
				AdditionalIPs []struct {
					IP string `json:"ip"`
				} `json:"additionalIps"`
			} `json:"network"`
		} `json:"status"`
	}
	out, err := c.crictlOutput("inspectp", "--output", "json", p.id)
	if err != nil {
		return p, fmt.Errorf("crictl inspectp %s: %w\n%s", name, err, out)
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return p, err
	}
	p.ip = st.Status.Network.IP
	if p.ip == "" || len(st.Status.Network.AdditionalIPs) != 1 {
		return p, fmt.Errorf("pod %s: CRI reports IP %q and additional IPs %v; want one of each family", name, p.ip, st.Status.Network.AdditionalIPs)
	}
	return p, nil
}

// removePod stops and removes a pod sandbox (CNI DEL).
func (c *containerd) removePod(p *criPod) error {
	for _, verb := range []string{"stopp", "rmp"} {
		if out, err := c.crictlOutput(verb, p.id); err != nil {
			return fmt.Errorf("crictl %s %s: %w\n%s", verb, p.name, err, out)
		}
	}
	return nil
}

// TestContainerd runs two pod sandboxes with crictl on containerd's CRI
// plugin, each with a busybox container; the containers ping each other
// over ringnet. ringnetd hears the pods' Kubernetes names; removing the
// pods releases their addresses and veths.
func TestContainerd(t *testing.T) {
	crictl, busybox := criTools(t)
	n := newNode(t, "10.244.14.0/24,fd00:14::/64")
	c := newContainerd(t, n, crictl)
	c.importImage(t, dockerArchive(t, pauseImage, layerTar(t, []tarEntry{{name: "pause", mode: 0o755, data: buildPause(t)}}), []string{"/pause"}, nil))
	c.importImage(t, dockerArchive(t, busyboxImage, busyboxLayer(t, busybox), nil, []string{"sh"}))

	var pods []*criPod
	for _, name := range []string{"web", "client"} {
		p, err := c.runPod(name)
		if err != nil {
			t.Fatalf("%v\nringnetd:\n%s\ncontainerd:\n%s", err, tailLines(n.logs(), 20), tailLines(c.logs(), 20))
		}
		pods = append(pods, p)
		// kubelet's pod identity reached ringnetd through CNI_ARGS.
		if !strings.Contains(n.logs(), "pod=e2e/"+p.name) {
			t.Errorf("ringnetd did not log pod e2e/%s:\n%s", p.name, tailLines(n.logs(), 10))
		}
	}
	if pods[0].ip == pods[1].ip {
		t.Fatalf("both pods have %s", pods[0].ip)
	}
	if st := n.status(t); st.Allocated != 2 || st.Ports != 2 {
		t.Errorf("ringnetd status with two pods: %+v", st)
	}
	c.crictlRun(t, "exec", pods[1].ctr, "ping", "-c", "3", "-i", "0.2", "-W", "2", pods[0].ip)
	c.crictlRun(t, "exec", pods[0].ctr, "ping", "-c", "3", "-i", "0.2", "-W", "2", pods[1].ip)

	for _, p := range pods {
		if err := c.removePod(p); err != nil {
			t.Fatal(err)
		}
	}
	if st := n.status(t); st.Allocated != 0 || st.Ports != 0 {
		t.Errorf("ringnetd status after the pods were removed: %+v", st)
	}
	if out := netnstest.Run(t, n.ns.Name, "ip", "-br", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
		t.Errorf("veths left after the pods were removed:\n%s", out)
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
