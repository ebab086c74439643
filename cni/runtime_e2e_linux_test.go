package cni_test

// End to end with a real container runtime: podman (Debian's, CNI network
// backend) runs two containers on a ringnet network and they reach each
// other through the fast path. The runtime runs inside the node's network
// namespace (nsenter --net), beside ringnetd, with its storage, state and
// configuration in the test's temporary directory, so nothing of the
// machine's own podman setup or interfaces is touched.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/cni/cnitest"
	"github.com/ringnet/ringnet/internal/netnstest"
)

// requireCommands skips the test unless the commands are installed,
// installing them first with scripts/deps.sh (apt-get) when they are not.
func requireCommands(t *testing.T, cmds ...string) {
	t.Helper()
	missing := func() []string {
		var m []string
		for _, c := range cmds {
			if _, err := exec.LookPath(c); err != nil {
				m = append(m, c)
			}
		}
		return m
	}
	if len(missing()) == 0 {
		return
	}
	out, err := exec.Command("../scripts/deps.sh").CombinedOutput()
	if m := missing(); len(m) > 0 {
		t.Skipf("%s not installed and scripts/deps.sh could not install them (%v):\n%s", strings.Join(m, ", "), err, out)
	}
}

// staticBusybox returns the path of a statically linked busybox, the only
// binary of the containers' image, or skips the test.
func staticBusybox(t *testing.T) string {
	t.Helper()
	const path = "/bin/busybox"
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("no %s (%v): apt-get install busybox-static (make deps)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("%s is dynamically linked; the image needs busybox-static (apt-get install busybox-static)", path)
		}
	}
	return path
}

// busyboxLayer is a container image's root file system as a tar: a static
// busybox and the applets the tests use.
func busyboxLayer(t *testing.T, busybox string) []byte {
	t.Helper()
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	files := []tarEntry{{name: "bin/busybox", mode: 0o755, data: bb}}
	for _, a := range []string{"sh", "ping", "ping6", "sleep", "ip", "cat", "hostname", "nc"} {
		files = append(files, tarEntry{name: "bin/" + a, link: "busybox"})
	}
	return layerTar(t, files)
}

type tarEntry struct {
	name string // a directory when it ends in /
	mode int64
	data []byte
	link string // a symlink to link when set
}

// layerTar packs files, with the usual top-level directories of a root
// file system, as a tar.
func layerTar(t *testing.T, files []tarEntry) []byte { return tarFiles(t, true, files) }

func tarFiles(t *testing.T, rootDirs bool, files []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp"} {
		if rootDirs {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now})
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f.name, "/") {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: f.name, Mode: 0o755, ModTime: now})
			continue
		}
		if f.link != "" {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.name, Linkname: f.link, ModTime: now})
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now})
		tw.Write(f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// podman is a podman installation private to one test, run in a node's
// network namespace.
type podman struct {
	node    *node
	dir     string
	network string
	env     []string
}

const podmanImage = "localhost/ringnet-busybox:e2e"

func newPodman(t *testing.T, n *node) *podman {
	t.Helper()
	// Short paths: conmon's attach socket path must fit sockaddr_un.
	dir, err := os.MkdirTemp("", "rnpm")
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{node: n, dir: dir, network: netnstest.Name("rnpm")}
	netDir := filepath.Join(dir, "net.d")
	os.Mkdir(netDir, 0o755)
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
events_logfile_path = %[1]q
tmp_dir = %[2]q

[network]
network_backend = "cni"
cni_plugin_dirs = [%[3]q, %[4]q]
network_config_dir = %[5]q
default_network = %[6]q
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), cniDir, debianCNI, netDir, p.network)
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [{"type": "ringnet", "socket": %q}]}`, p.network, n.socket)
	for name, content := range map[string]string{"containers.conf": conf, "storage.conf": storage,
		"net.d/" + p.network + ".conflist": conflist} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"))
	t.Cleanup(func() {
		// Every container goes (CNI DEL while ringnetd still runs: this
		// cleanup runs before the node's), then whatever is still mounted
		// under the directory, then the directory.
		if out, err := p.output("rm", "--all", "--force", "--time", "0"); err != nil {
			t.Logf("podman rm: %v\n%s", err, out)
		}
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
		cnitest.RemoveResults(p.network)
	})
	return p
}

// output runs podman in the node's namespace.
func (p *podman) output(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + p.node.ns.Path, "podman"}, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.output(args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s\nringnetd:\n%s", strings.Join(args, " "), err, out, p.node.logs())
	}
	return strings.TrimSpace(out)
}

// unmountUnder lazily unmounts every mount below dir (what a failed test
// may leave: container shm, rootfs).
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", "-l", mounts[i]).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", mounts[i], err, out)
		}
	}
}

// TestPodman runs two containers with podman on a ringnet network; they
// get addresses from ringnetd and ping each other over IPv4 and IPv6.
// Removing them releases the addresses and the veths.
func TestPodman(t *testing.T) {
	netnstest.RequireRoot(t)
	requireCommands(t, "podman", "runc", "conmon", "nsenter")
	busybox := staticBusybox(t)
	n := newNode(t, "10.244.13.0/24,fd00:13::/64")
	p := newPodman(t, n)
	rootfs := filepath.Join(p.dir, "rootfs.tar")
	if err := os.WriteFile(rootfs, busyboxLayer(t, busybox), 0o644); err != nil {
		t.Fatal(err)
	}
	p.run(t, "import", "--quiet", rootfs, podmanImage)

	names := []string{"a", "b"}
	for _, c := range names {
		p.run(t, "run", "--detach", "--name", c, "--network", p.network, "--cap-add", "NET_RAW",
			"--pull", "never", podmanImage, "sleep", "300")
	}
	addr := map[string][2]netip.Addr{}
	for _, c := range names {
		// The addresses as the container sees them on its eth0.
		out := p.run(t, "exec", c, "ip", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		var a [2]netip.Addr
		for _, f := range strings.Fields(out) {
			if pfx, err := netip.ParsePrefix(f); err == nil {
				if pfx.Addr().Is4() {
					a[0] = pfx.Addr()
				} else {
					a[1] = pfx.Addr()
				}
			}
		}
		if !a[0].IsValid() || !a[1].IsValid() {
			t.Fatalf("container %s eth0 lacks an IPv4 or IPv6 address:\n%s", c, out)
		}
		addr[c] = a
	}
	if addr["a"][0] == addr["b"][0] || addr["a"][1] == addr["b"][1] {
		t.Fatalf("both containers have the same address: %v", addr)
	}
	if got := p.run(t, "inspect", "--format", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", p.network), "b"); got != addr["b"][0].String() {
		t.Errorf("podman inspect says b has %q, its eth0 has %s", got, addr["b"][0])
	}
	if st := n.status(t); st.Allocated != 2 || st.Ports != 2 {
		t.Errorf("ringnetd status with two containers: %+v", st)
	}

	p.run(t, "exec", "a", "ping", "-c", "3", "-i", "0.2", "-W", "2", addr["b"][0].String())
	p.run(t, "exec", "b", "ping", "-c", "3", "-i", "0.2", "-W", "2", addr["a"][0].String())
	p.run(t, "exec", "a", "ping6", "-c", "3", "-i", "0.2", "-W", "2", addr["b"][1].String())

	p.run(t, "rm", "--force", "--time", "0", "a", "b")
	if st := n.status(t); st.Allocated != 0 || st.Ports != 0 {
		t.Errorf("ringnetd status after podman rm: %+v", st)
	}
	if out := netnstest.Run(t, n.ns.Name, "ip", "-br", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
		t.Errorf("veths left after podman rm:\n%s", out)
	}
}
