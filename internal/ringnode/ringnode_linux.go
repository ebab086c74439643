// Package ringnode runs ringnet nodes on an internal/topo topology, the way
// a cluster runs them: ringnetd in the node's namespace with a cluster
// file, and pods created by the CNI plugin through libcni, the library
// containerd and CRI-O call plugins with. Tests, benchmarks and the demo
// share it.
//
// A [Daemon] owns its ringnetd process, its state directory and the pods
// it created; [Daemon.Stop] deletes the pods (CNI DEL), stops ringnetd
// with SIGTERM and removes the pods' namespaces. The topology's Close
// removes the rest. [Daemon.Reload] has ringnetd reread its cluster file
// (SIGHUP), and [Daemon.ReplaceCluster] writes a new one first: how a test
// gives services endpoints that are pods it made.
package ringnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/internal/topo"
)

// Binaries are ringnet's programs, built once for a run.
type Binaries struct {
	Ringnetd string // the daemon
	CNIDir   string // holds the CNI plugin, named "ringnet"
}

// Build builds ringnetd and the CNI plugin into dir.
func Build(dir string) (Binaries, error) {
	b := Binaries{Ringnetd: filepath.Join(dir, "ringnetd"), CNIDir: filepath.Join(dir, "cni")}
	for _, x := range [][2]string{{b.Ringnetd, "cmd/ringnetd"}, {filepath.Join(b.CNIDir, "ringnet"), "cmd/ringnet-cni"}} {
		out, err := exec.Command("go", "build", "-o", x[0], "github.com/ringnet/ringnet/"+x[1]).CombinedOutput()
		if err != nil {
			return b, fmt.Errorf("build %s: %w\n%s", x[1], err, out)
		}
	}
	return b, nil
}

// Options configure a Daemon.
type Options struct {
	Cluster    string   // path of the cluster file (see also Daemon.ReplaceCluster)
	Kubeconfig string   // instead of Cluster: learn the cluster from this API server (--kubernetes)
	NodeName   string   // the node's name in the cluster (default: the topology node's)
	Args       []string // more ringnetd flags, e.g. --workers 2
}

// Daemon is ringnetd running on a topology node.
type Daemon struct {
	Node   *topo.Node
	Socket string
	State  string

	bins    Binaries
	args    []string // ringnetd's flags, for Restart
	cluster string   // Options.Cluster
	cmd     *exec.Cmd
	done    chan error
	out     *LogBuffer

	mu   sync.Mutex
	pods []*Pod
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

// Pod is a pod namespace whose eth0 the CNI plugin made.
type Pod struct {
	Name       string
	NS         string // namespace name
	Path       string // /run/netns/NS
	IPv4, IPv6 netip.Addr
	rt         *libcni.RuntimeConf
}

// Start runs ringnetd on node n as node n.Name of the cluster file or of
// the Kubernetes API, and returns once it serves the CNI plugin.
func Start(ctx context.Context, bins Binaries, n *topo.Node, o Options) (*Daemon, error) {
	dir, err := os.MkdirTemp("", "ringnode-"+n.Name+"-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Node: n, Socket: filepath.Join(dir, "ringnetd.sock"), State: filepath.Join(dir, "state"),
		bins: bins, done: make(chan error, 1), out: &LogBuffer{}}
	args := []string{"--cluster", o.Cluster}
	if o.Kubeconfig != "" {
		args = []string{"--kubernetes", "--kubeconfig", o.Kubeconfig, "--uplink", n.Uplink}
	} else {
		d.cluster = o.Cluster
	}
	name := n.Name
	if o.NodeName != "" {
		name = o.NodeName
	}
	d.args = append(append(args, "--node", name, "--socket", d.Socket, "--state-dir", d.State), o.Args...)
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "ringnet", "plugins": [{"type": "ringnet", "socket": %q}]}`, d.Socket)
	if d.list, err = libcni.ConfListFromBytes([]byte(conf)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.cni = libcni.NewCNIConfigWithCacheDir([]string{bins.CNIDir}, filepath.Join(dir, "cni-cache"), nil)
	if err := d.launch(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return d, nil
}

// Restart kills ringnetd (SIGKILL, as a crash would) if it runs, and starts
// it again with the same flags and state, as a supervisor would; it returns
// once the new process serves the CNI plugin. The pods stay.
func (d *Daemon) Restart(ctx context.Context) error {
	d.kill()
	d.done = make(chan error, 1)
	return d.launch(ctx)
}

// launch starts ringnetd and waits until it serves the CNI plugin.
func (d *Daemon) launch(ctx context.Context) error {
	n := d.Node
	d.cmd = topo.Command(context.Background(), n.NS, d.bins.Ringnetd, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start ringnetd on %s: %w", n.Name, err)
	}
	done := d.done
	go func() { done <- d.cmd.Wait() }()
	cl := api.NewClient(d.Socket)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := cl.Status(ctx); err == nil {
			return nil
		}
		select {
		case err := <-d.done:
			d.done <- err
			return fmt.Errorf("ringnetd on %s exited: %v\n%s", n.Name, err, d.Log())
		case <-ctx.Done():
			d.kill()
			return ctx.Err()
		case <-time.After(2 * time.Millisecond): // fine enough to time a restart
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("ringnetd on %s not serving after 20s:\n%s", n.Name, d.Log())
		}
	}
}

// Reload has ringnetd reread its cluster file (SIGHUP) and waits until it
// says how that went: nil once it applied the file, or an error with
// ringnetd's reason when it kept the cluster as it was.
func (d *Daemon) Reload() error {
	const reloaded, failed = `msg="cluster file reloaded"`, `msg="cluster file reload failed`
	if d.cluster == "" {
		return fmt.Errorf("ringnetd on %s has no cluster file to reload (it learns the cluster from Kubernetes)", d.Node.Name)
	}
	outcomes := func(log string) int { return strings.Count(log, reloaded) + strings.Count(log, failed) }
	before := outcomes(d.Log())
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("SIGHUP ringnetd on %s: %w", d.Node.Name, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		log := d.Log()
		if outcomes(log) > before {
			// The last outcome is this reload's: reloads are one at a
			// time, on ringnetd's main goroutine.
			i := max(strings.LastIndex(log, reloaded), strings.LastIndex(log, failed))
			line, _, _ := strings.Cut(log[strings.LastIndex(log[:i], "\n")+1:], "\n")
			if strings.Contains(line, failed) {
				return fmt.Errorf("ringnetd on %s: %s", d.Node.Name, line)
			}
			return nil
		}
		if !d.running() {
			return fmt.Errorf("ringnetd on %s exited on SIGHUP:\n%s", d.Node.Name, log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ringnetd on %s said nothing of a reload within 10s of SIGHUP:\n%s", d.Node.Name, log)
		}
	}
}

// ReplaceCluster writes data over ringnetd's cluster file (Options.Cluster,
// atomically: a reader sees the old file or the new) and reloads it: the
// error is Reload's. A file that other daemons read changes for them too,
// each applying it at its own Reload.
func (d *Daemon) ReplaceCluster(data []byte) error {
	if d.cluster == "" || d.cluster == "default" {
		return fmt.Errorf("ringnetd on %s reads no cluster file of its own to replace (--cluster %q)", d.Node.Name, d.cluster)
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.cluster), ".cluster-*.yaml")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.cluster)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("replace the cluster file %s: %w", d.cluster, err)
	}
	return d.Reload()
}

// Log returns what ringnetd has written so far.
func (d *Daemon) Log() string { return d.out.String() }

// WaitLog waits until ringnetd's log contains s.
func (d *Daemon) WaitLog(ctx context.Context, s string) error {
	for !strings.Contains(d.Log(), s) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ringnetd on %s: no %q in its log: %w\n%s", d.Node.Name, s, ctx.Err(), d.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// AddPod creates a pod namespace and adds it to the network through the
// CNI plugin, as kubelet's runtime would.
func (d *Daemon) AddPod(ctx context.Context, name string) (*Pod, error) {
	nsName := d.Node.NS + "-" + name
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pod %s: ip netns add: %w: %s", name, err, out)
	}
	p := &Pod{Name: name, NS: nsName, Path: "/run/netns/" + nsName}
	p.rt = &libcni.RuntimeConf{ContainerID: d.Node.Name + "-" + name, NetNS: p.Path, IfName: "eth0",
		Args: [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", name}}}
	var err error
	if p.IPv4, p.IPv6, err = d.Add(ctx, p.rt); err != nil {
		exec.Command("ip", "netns", "del", nsName).Run()
		return nil, fmt.Errorf("pod %s: CNI ADD: %w", name, err)
	}
	d.mu.Lock()
	d.pods = append(d.pods, p)
	d.mu.Unlock()
	return p, nil
}

// Add is CNI ADD of the pod interface rt, run where a runtime runs it (in
// the node's namespace); it returns the addresses the plugin gave. Pods
// added this way, unlike AddPod's, are the caller's to delete.
func (d *Daemon) Add(ctx context.Context, rt *libcni.RuntimeConf) (ip4, ip6 netip.Addr, err error) {
	err = d.Node.Do(func() error {
		r, err := d.cni.AddNetworkList(ctx, d.list, rt)
		if err != nil {
			return err
		}
		res, err := current.NewResultFromResult(r)
		if err != nil {
			return err
		}
		for _, ip := range res.IPs {
			a, _ := netip.AddrFromSlice(ip.Address.IP)
			if a = a.Unmap(); a.Is4() {
				ip4 = a
			} else {
				ip6 = a
			}
		}
		return nil
	})
	return ip4, ip6, err
}

// Del is CNI DEL of the pod interface rt.
func (d *Daemon) Del(ctx context.Context, rt *libcni.RuntimeConf) error {
	return d.Node.Do(func() error { return d.cni.DelNetworkList(ctx, d.list, rt) })
}

// Check is CNI CHECK of the pod interface rt.
func (d *Daemon) Check(ctx context.Context, rt *libcni.RuntimeConf) error {
	return d.Node.Do(func() error { return d.cni.CheckNetworkList(ctx, d.list, rt) })
}

// Command runs name inside the pod's namespace.
func (p *Pod) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return topo.Command(ctx, p.NS, name, args...)
}

// Output runs a command in the pod and returns its combined output.
func (p *Pod) Output(ctx context.Context, name string, args ...string) (string, error) {
	return topo.Output(ctx, p.NS, name, args...)
}

// Do runs fn inside the pod's namespace.
func (p *Pod) Do(fn func() error) error { return topo.Do(p.NS, fn) }

// Counters asks ringnetd for its counters (SIGUSR1) and returns the
// per-reason totals it prints ("reason NAME N" lines).
func (d *Daemon) Counters() (map[string]uint64, error) {
	before := strings.Count(d.Log(), "counters\n")
	if err := d.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(5 * time.Second); strings.Count(d.Log(), "counters\n") == before; {
		if time.Now().After(deadline) {
			return nil, errors.New("ringnetd printed no counters")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the block is written at once; let it land
	return parseReasons(d.Log()), nil
}

// CountersWhen asks for the counters until ok accepts them, for up to 5
// seconds, and returns the last ones it got. A worker publishes its counts
// once per batch, after the batch's frames have left; so a frame's answer
// (an echo reply, an ICMP error) can reach its sender before the count of
// it can be read, and a test that reads once right after traffic races the
// worker.
func (d *Daemon) CountersWhen(ok func(map[string]uint64) bool) (map[string]uint64, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := d.Counters()
		if err != nil || ok(m) || time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parseReasons reads the reason lines of the last counter block in log.
func parseReasons(log string) map[string]uint64 {
	block := log[strings.LastIndex(log, "counters\n"):]
	m := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "reason" {
			if n, err := strconv.ParseUint(f[2], 10, 64); err == nil {
				m[f[1]] = n
			}
		}
	}
	return m
}

// Stop deletes the pods through the plugin, stops ringnetd (SIGTERM) and
// removes the pods' namespaces and the state directory. It tries
// everything and returns the first error.
func (d *Daemon) Stop() error {
	var errs []error
	d.mu.Lock()
	pods := d.pods
	d.pods = nil
	d.mu.Unlock()
	if d.running() {
		for _, p := range pods {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			errs = append(errs, d.Del(ctx, p.rt))
			cancel()
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-d.done:
			d.done <- err
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("ringnetd on %s ignored SIGTERM for 10s", d.Node.Name))
			d.kill()
		}
	}
	for _, p := range pods {
		if out, err := exec.Command("ip", "netns", "del", p.NS).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", p.NS, err, out))
		}
	}
	errs = append(errs, os.RemoveAll(filepath.Dir(d.Socket)))
	return errors.Join(errs...)
}

// Kill stops ringnetd with SIGKILL, as a crash would, leaving its pods.
func (d *Daemon) Kill() { d.kill() }

// PID is ringnetd's process ID (ip netns exec execs it, so it is the
// command's own).
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Running reports whether ringnetd is running.
func (d *Daemon) Running() bool { return d.running() }

// Wait waits for ringnetd to exit and returns how it did.
func (d *Daemon) Wait() error {
	err := <-d.done
	d.done <- err
	return err
}

func (d *Daemon) running() bool {
	select {
	case err := <-d.done:
		d.done <- err
		return false
	default:
		return true
	}
}

func (d *Daemon) kill() {
	if d.running() {
		d.cmd.Process.Kill()
		d.Wait()
	}
}

// LogBuffer collects a process's output (an io.Writer for exec.Cmd) while
// others read it.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
