package cni_test

// ringnetd as deploy/ringnet.yaml runs it: not privileged, with the
// DaemonSet's capabilities, volumes and flags, in a container that
// containerd's CRI starts the way kubelet would, on the node's network. Pods
// that containerd then creates on the ringnet network get their addresses
// from it and reach each other and the node. And the same container
// without any one of those capabilities, or without the /proc/sys/net
// volume or the TUN device, fails: each is needed.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/internal/kubetest"
	"github.com/ringnet/ringnet/internal/netnstest"
	"github.com/ringnet/ringnet/internal/topo"
	corev1 "k8s.io/api/core/v1"
)

const ringnetdImage = "localhost/ringnetd:e2e"

// What kubelet puts in every container's CRI config for the default
// procMount (k8s.io/kubernetes/pkg/securitycontext): notably /proc/sys
// read-only.
var (
	kubeletMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	kubeletReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// criContainer is what kubelet hands the CRI for the DaemonSet's ringnetd
// container, in the fields the test varies.
type criContainer struct {
	command, args       []string
	add, drop           []string // capabilities
	mounts              []criMount
	privileged          bool
	readonlyRoot, noNew bool
}

type criMount struct {
	volume, container, host string
	readonly                bool
}

// ringnetdContainer translates the DaemonSet's ringnetd container as
// kubelet does, with two changes for a test: the hostPath directories in
// hostDirs are the test's own, and of the DaemonSet's arguments only those
// that need no Kubernetes are kept (ringnetd serves the CNI plugin alone,
// with extra's flags).
func ringnetdContainer(t *testing.T, hostDirs map[string]string, extra ...string) criContainer {
	t.Helper()
	ds, err := kubetest.RingnetDaemonSet()
	if err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Fatal("the DaemonSet does not run on the host's network")
	}
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "ringnetd" })
	if i < 0 {
		t.Fatal("the DaemonSet has no container ringnetd")
	}
	c := spec.Containers[i]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || sc.Privileged == nil || sc.AllowPrivilegeEscalation == nil || sc.ReadOnlyRootFilesystem == nil {
		t.Fatalf("ringnetd's securityContext does not say privileged, allowPrivilegeEscalation, readOnlyRootFilesystem and capabilities: %+v", sc)
	}
	out := criContainer{command: c.Command, privileged: *sc.Privileged, readonlyRoot: *sc.ReadOnlyRootFilesystem,
		noNew: !*sc.AllowPrivilegeEscalation}
	for _, cp := range sc.Capabilities.Add {
		out.add = append(out.add, string(cp))
	}
	for _, cp := range sc.Capabilities.Drop {
		out.drop = append(out.drop, string(cp))
	}
	for _, m := range c.VolumeMounts {
		v := spec.Volumes[slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })]
		if v.HostPath == nil {
			t.Fatalf("volume %s of ringnetd is not a hostPath; the test translates only those", v.Name)
		}
		host := v.HostPath.Path
		if d, ok := hostDirs[host]; ok {
			host = d
		}
		out.mounts = append(out.mounts, criMount{volume: m.Name, container: m.MountPath, host: host, readonly: m.ReadOnly})
	}
	for _, a := range c.Args {
		if !strings.Contains(a, "$(") && a != "--kubernetes" {
			out.args = append(out.args, a)
		}
	}
	out.args = append(out.args, extra...)
	return out
}

// config is the CRI container config, as crictl reads it.
func (c criContainer) config() map[string]any {
	var mounts []map[string]any
	for _, m := range c.mounts {
		mounts = append(mounts, map[string]any{"container_path": m.container, "host_path": m.host, "readonly": m.readonly})
	}
	return map[string]any{
		"metadata": map[string]any{"name": "ringnetd"},
		"image":    map[string]any{"image": ringnetdImage},
		"command":  c.command,
		"args":     c.args,
		"log_path": "ringnetd.log",
		"mounts":   mounts,
		"linux": map[string]any{"security_context": map[string]any{
			"privileged":        c.privileged,
			"readonly_rootfs":   c.readonlyRoot,
			"no_new_privs":      c.noNew,
			"capabilities":      map[string]any{"add_capabilities": c.add, "drop_capabilities": c.drop},
			"masked_paths":      kubeletMaskedPaths,
			"readonly_paths":    kubeletReadonlyPaths,
			"namespace_options": hostNetwork,
		}},
	}
}

// hostNetwork: the node's network namespace (NODE), the container's own
// PID namespace (CONTAINER), as kubelet asks for hostNetwork: true.
var hostNetwork = map[string]any{"network": 2, "pid": 1}

// without returns a copy of c without the capabilities, volumes and
// arguments (by prefix) named.
func (c criContainer) without(names ...string) criContainer {
	c.add = slices.DeleteFunc(slices.Clone(c.add), func(s string) bool { return slices.Contains(names, s) })
	c.mounts = slices.DeleteFunc(slices.Clone(c.mounts), func(m criMount) bool { return slices.Contains(names, m.volume) })
	c.args = slices.DeleteFunc(slices.Clone(c.args), func(a string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "--") && strings.HasPrefix(a, n) })
	})
	return c
}

// TestDaemonSetContainer runs ringnetd in a container with the DaemonSet's
// security context on containerd, then the same without each of its
// capabilities and volumes.
func TestDaemonSetContainer(t *testing.T) {
	crictl, busybox := criTools(t)
	dir := t.TempDir()
	runDir, stateDir := filepath.Join(dir, "run"), filepath.Join(dir, "state")
	// Node n1 runs ringnetd from its cluster file; node nf runs Flannel's
	// kernel VXLAN datapath and has a pod, which n1's pods reach through
	// n1's uplink: the uplink's XDP program and AF_XDP sockets, VXLAN, and
	// the underlay neighbour resolved over netlink.
	tp := topo.NewT(t, "rnds")
	n1, err := tp.AddNode("n1", netip.MustParsePrefix("192.168.50.1/24"), topo.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nf, err := tp.AddFlannelNode("nf", netip.MustParsePrefix("192.168.50.3/24"), netip.MustParsePrefix("10.244.16.0/24"), topo.FlannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's VXLAN checksums on a veth are left to an offload that
	// never happens (ARCHITECTURE.md): compute them.
	if out, err := nf.Node.Output(context.Background(), "ethtool", "-K", topo.Uplink, "tx", "off"); err != nil {
		t.Fatalf("ethtool: %v\n%s", err, out)
	}
	if err := nf.AddPeer(netip.MustParsePrefix("10.244.15.0/24"), n1.UplinkMAC, n1.Address.Addr()); err != nil {
		t.Fatal(err)
	}
	fpod, err := nf.AddPod("p")
	if err != nil {
		t.Fatal(err)
	}
	cluster := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(cluster, []byte(fmt.Sprintf(`tunnel: {mode: vxlan}
nodes:
- {name: n1, address: %s, podCIDRs: [10.244.15.0/24, "fd00:15::/64"]}
- {name: nf, address: %s, podCIDRs: [10.244.16.0/24], backend: flannel, vtepMAC: %q}
`, n1.Address, nf.Node.Address, nf.VtepMAC)), 0o644); err != nil {
		t.Fatal(err)
	}

	n := &node{ns: netnstest.NS{Name: n1.NS, Path: "/run/netns/" + n1.NS}, socket: filepath.Join(runDir, "ringnet.sock"),
		state: stateDir, log: &strings.Builder{}}
	c := newContainerd(t, n, crictl)
	c.importImage(t, dockerArchive(t, pauseImage, layerTar(t, []tarEntry{{name: "pause", mode: 0o755, data: buildPause(t)}}), []string{"/pause"}, nil))
	c.importImage(t, dockerArchive(t, busyboxImage, busyboxLayer(t, busybox), nil, []string{"sh"}))
	c.importImage(t, dockerArchive(t, ringnetdImage, layerTar(t, []tarEntry{
		{name: "usr/"}, {name: "usr/local/"}, {name: "usr/local/bin/"},
		{name: "usr/local/bin/ringnetd", mode: 0o755, data: buildStatic(t, "./cmd/ringnetd")},
	}), nil, nil))

	spec := ringnetdContainer(t, map[string]string{"/run/ringnet": runDir, "/var/lib/ringnet": stateDir},
		"--cluster=/etc/ringnet/cluster.yaml", "--node=n1")
	// The cluster file, where the DaemonSet has the Kubernetes API.
	spec.mounts = append(spec.mounts, criMount{volume: "cluster", container: "/etc/ringnet/cluster.yaml", host: cluster, readonly: true})
	targets := []string{n1.Address.Addr().String(), fpod.IPv4.String()}
	if spec.privileged {
		t.Fatal("the DaemonSet runs ringnetd privileged")
	}
	if socket := "--socket=/run/ringnet/" + filepath.Base(n.socket); !slices.Contains(spec.args, socket) {
		t.Fatalf("the DaemonSet does not pass %s: %q", socket, spec.args)
	}
	t.Logf("ringnetd: capabilities %v, drop %v, volumes %v, args %q", spec.add, spec.drop, spec.mounts, spec.args)

	if err := runDaemonSet(t, c, n, spec, targets); err != nil {
		t.Fatalf("ringnetd with the DaemonSet's security context: %v", err)
	}

	// Each capability and each volume is needed: without it, ringnetd fails
	// to start or to serve the pods.
	cases := map[string][]string{}
	for _, cp := range spec.add {
		cases[cp] = []string{cp}
	}
	sysctls := ""
	for _, m := range spec.mounts {
		if m.container != "/run/ringnet" && m.container != "/var/lib/ringnet" && m.volume != "cluster" {
			cases[m.volume] = []string{m.volume}
		}
		if m.host == "/proc/sys/net" {
			sysctls = m.volume
		}
	}
	if len(cases) < 5 || sysctls == "" {
		t.Fatalf("the DaemonSet lists %v beyond ringnetd's directories; the test expects at least NET_ADMIN, NET_RAW, BPF, IPC_LOCK and the volume of /proc/sys/net", slices.Sorted(maps.Keys(cases)))
	}
	// And without the volume nor the flag naming it: the runtime's
	// read-only /proc/sys.
	cases["read-only-proc-sys"] = []string{sysctls, "--proc-sys-net"}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		t.Run("without-"+name, func(t *testing.T) {
			err := runDaemonSet(t, c, n, spec.without(cases[name]...), targets)
			if err == nil {
				t.Fatalf("ringnetd served pods without %s: the DaemonSet asks for more than it needs", name)
			}
			t.Logf("fails as it should: %s", reason(err))
			if slices.Contains(cases[name], sysctls) && !strings.Contains(err.Error(), "--proc-sys-net") {
				t.Errorf("without the volume, ringnetd's error does not say what to do (mount it, name it with --proc-sys-net):\n%v", err)
			}
		})
	}
	// The same container again as the DaemonSet has it: nothing the failed
	// runs left behind is in the way.
	if err := runDaemonSet(t, c, n, spec, targets); err != nil {
		t.Fatalf("ringnetd with the DaemonSet's security context, after the failed runs: %v", err)
	}
}

// runDaemonSet runs ringnetd in a hostNetwork pod sandbox with spec, waits
// for its socket, checks the TAP's sysctls, runs two pods on the ringnet
// network that ping each other and the targets, and removes them and
// ringnetd, whatever failed. It returns the first failure, with ringnetd's
// log.
func runDaemonSet(t *testing.T, c *containerd, n *node, spec criContainer, targets []string) (err error) {
	t.Helper()
	podConf, ctrConf := filepath.Join(c.dir, "ringnet-pod.json"), filepath.Join(c.dir, "ringnet-ctr.json")
	logDir, err := os.MkdirTemp(filepath.Join(c.dir, "logs"), "ringnet")
	if err != nil {
		return err
	}
	if err := writeJSON(podConf, map[string]any{
		"metadata":      map[string]any{"name": "ringnet", "namespace": "kube-system", "uid": "uid-ringnet", "attempt": 0},
		"log_directory": logDir,
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": hostNetwork}},
	}); err != nil {
		return err
	}
	if err := writeJSON(ctrConf, spec.config()); err != nil {
		return err
	}
	sandbox, err := c.crictlOutput("runp", podConf)
	if err != nil {
		return fmt.Errorf("crictl runp: %w\n%s", err, sandbox)
	}
	var ctr string
	defer func() {
		if err != nil && ctr != "" {
			// The CRI's log file, one "time stream tag message" line a line.
			logs, _ := os.ReadFile(filepath.Join(logDir, "ringnetd.log"))
			err = fmt.Errorf("%w\nringnetd's log:\n%s", err, tailLines(string(logs), 15))
		}
		if out, rerr := c.crictlOutput("stopp", sandbox); rerr != nil {
			t.Errorf("crictl stopp ringnet: %v\n%s", rerr, out)
		}
		if out, rerr := c.crictlOutput("rmp", sandbox); rerr != nil {
			t.Errorf("crictl rmp ringnet: %v\n%s", rerr, out)
		}
		// ringnetd removes its TAP on SIGTERM, or never made it.
		if out := netnstest.Run(t, n.ns.Name, "ip", "-br", "link", "show"); strings.Contains(out, "ringnet0") {
			t.Errorf("the TAP outlived ringnetd:\n%s", out)
		}
	}()
	if ctr, err = c.crictlOutput("create", sandbox, ctrConf, podConf); err != nil {
		return fmt.Errorf("crictl create ringnetd: %w\n%s", err, ctr)
	}
	if out, err := c.crictlOutput("start", ctr); err != nil {
		return fmt.Errorf("crictl start ringnetd: %w\n%s", err, out)
	}
	if err := waitServing(c, n, ctr); err != nil {
		return err
	}
	for sysctl, want := range map[string]string{"net.ipv4.conf.ringnet0.accept_local": "1", "net.ipv4.conf.ringnet0.rp_filter": "0"} {
		out, err := exec.Command("ip", "netns", "exec", n.ns.Name, "sysctl", "-n", sysctl).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			return fmt.Errorf("%s is %q (%v), want %s: ringnetd did not set its TAP's sysctls", sysctl, got, err, want)
		}
	}

	var pods []*criPod
	defer func() {
		for _, p := range pods {
			if rerr := c.removePod(p); rerr != nil {
				t.Errorf("%v", rerr)
			}
		}
	}()
	for _, name := range []string{"a", "b"} {
		p, err := c.runPod(name)
		if p != nil {
			pods = append(pods, p)
		}
		if err != nil {
			return err
		}
	}
	pings := [][2]string{{pods[0].ctr, pods[1].ip}, {pods[1].ctr, pods[0].ip}}
	for _, to := range targets {
		pings = append(pings, [2]string{pods[0].ctr, to})
	}
	for _, ping := range pings {
		// -w: the first echo to a remote node may wait for ringnetd to
		// resolve the underlay neighbour.
		if out, err := c.crictlOutput("exec", ping[0], "ping", "-c", "2", "-i", "0.2", "-w", "5", ping[1]); err != nil {
			return fmt.Errorf("ping %s: %w\n%s", ping[1], err, out)
		}
	}
	return nil
}

// waitServing waits for ringnetd's socket to answer, or for its container
// to exit, for 30 s at most.
func waitServing(c *containerd, n *node, ctr string) error {
	cl := api.NewClient(n.socket)
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.Status(ctx)
		cancel()
		if err == nil {
			return nil
		}
		var st struct {
			Status struct {
				State    string `json:"state"`
				ExitCode int    `json:"exitCode"`
			} `json:"status"`
		}
		if out, ierr := c.crictlOutput("inspect", "--output", "json", ctr); ierr == nil && json.Unmarshal([]byte(out), &st) == nil &&
			st.Status.State == "CONTAINER_EXITED" {
			return fmt.Errorf("ringnetd exited with status %d", st.Status.ExitCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ringnetd not serving %s after 30s: %w", n.socket, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildStatic builds a command of the module, static, for an image with no
// libc.
func buildStatic(t *testing.T, pkg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reason picks from runDaemonSet's error the step that failed and the
// errors in it and in ringnetd's log.
func reason(err error) string {
	var out []string
	for i, l := range strings.Split(err.Error(), "\n") {
		if i == 0 || strings.Contains(l, "level=ERROR") || strings.Contains(l, "ringnetd: ") || strings.Contains(l, "failed") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n\t")
}
