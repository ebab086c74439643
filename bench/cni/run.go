package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/cni"
	"github.com/ringnet/ringnet/cni/cnitest"
)

const debianCNI = "/usr/lib/cni"

// plugin is one of the compared CNI setups.
type plugin struct {
	ID, Name, Desc string
	conflist       func(e *env) map[string]any
}

var pluginByID = map[string]plugin{
	"ringnet": {ID: "ringnet", Name: "ringnet + ringnetd",
		Desc: "veth, offloads off, XDP + AF_XDP on the host veth, IPAM in ringnetd (bbolt), ADD returns once the port forwards",
		conflist: func(e *env) map[string]any {
			return map[string]any{"cniVersion": "1.0.0", "name": e.network("ringnet"),
				"plugins": []any{map[string]any{"type": "ringnet", "socket": e.socket}}}
		}},
	"bridge": {ID: "bridge", Name: "Debian bridge + host-local",
		Desc: "veth into a Linux bridge (isGateway), host-local IPAM (files), no IP masquerade",
		conflist: func(e *env) map[string]any {
			return map[string]any{"cniVersion": "1.0.0", "name": e.network("bridge"),
				"plugins": []any{map[string]any{"type": "bridge", "bridge": "rnbr0", "isGateway": true,
					"ipMasq": false, "ipam": map[string]any{"type": "host-local",
						"ranges":  []any{[]any{map[string]any{"subnet": "10.249.0.0/22"}}},
						"dataDir": filepath.Join(e.dir, "host-local")}}}}
		}},
	"loopback": {ID: "loopback", Name: "floor: Debian loopback",
		Desc: "sets the pod's lo up (DEL: down) and nothing else: what cnitool and one plugin exec cost by themselves",
		conflist: func(e *env) map[string]any {
			return map[string]any{"cniVersion": "1.0.0", "name": e.network("loopback"),
				"plugins": []any{map[string]any{"type": "loopback"}}}
		}},
}

// env is the benchmark's world: a node namespace with ringnetd in it, the
// pod namespaces, and cnitool set up to call the plugins from the node.
type env struct {
	dir    string
	id     string // unique part of every name: the pid
	node   string // node namespace name
	pods   []string
	socket string
	tool   cnitest.Tool
	log    io.Writer

	daemon   *exec.Cmd
	done     chan error
	daemonMu sync.Mutex
	daemonLg bytes.Buffer // ringnetd's output; guarded by daemonMu
}

func (e *env) network(id string) string { return "rnbench-cni-" + id + "-" + e.id }

func (e *env) Write(p []byte) (int, error) {
	e.daemonMu.Lock()
	defer e.daemonMu.Unlock()
	return e.daemonLg.Write(p)
}

func (e *env) daemonLog() string {
	e.daemonMu.Lock()
	defer e.daemonMu.Unlock()
	return e.daemonLg.String()
}

func (e *env) logf(format string, a ...any) { fmt.Fprintf(e.log, "cni bench: "+format+"\n", a...) }

// bench runs the whole benchmark and returns its report. A report with
// what was measured is returned also when a later round fails.
func bench(ctx context.Context, o options, log io.Writer) (rep *Report, err error) {
	e := &env{id: fmt.Sprint(os.Getpid()), log: log}
	e.node = "rncb" + e.id
	defer func() { e.close() }()
	if err := e.setup(o); err != nil {
		return nil, err
	}
	rep = newReport(o)
	// ringnet's plugin times its own steps into this file (one line per
	// ADD); the other plugins ignore the variable.
	timingsFile := filepath.Join(e.dir, "plugin-timings.jsonl")
	os.Setenv(cni.TimingsEnv, timingsFile)
	defer os.Unsetenv(cni.TimingsEnv)
	byID := map[string]*PluginReport{}
	for _, id := range o.Plugins {
		p := pluginByID[id]
		pr := &PluginReport{ID: p.ID, Name: p.Name, Desc: p.Desc}
		rep.Plugins = append(rep.Plugins, pr)
		byID[id] = pr
		// One ADD and DEL, not counted: page cache, first exec, bridge creation.
		if _, err := e.add(p, 0); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if _, err := e.del(p, 0); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	for r := range o.Runs {
		for i := range o.Plugins {
			// Rotate the order round by round so noise hits both alike.
			p := pluginByID[o.Plugins[(i+r)%len(o.Plugins)]]
			if err := e.round(ctx, p, byID[p.ID]); err != nil {
				rep.finish()
				return rep, fmt.Errorf("round %d, %s: %w", r+1, p.ID, err)
			}
			e.logf("round %d/%d %-7s ADD p50 %.1f ms, DEL p50 %.1f ms", r+1, o.Runs, p.ID,
				summarize(byID[p.ID].AddMs).P50, summarize(byID[p.ID].DelMs).P50)
		}
	}
	os.Unsetenv(cni.TimingsEnv)
	if pr := byID["ringnet"]; pr != nil {
		steps, err := pluginSteps(timingsFile, pr.AddMs)
		if err != nil {
			e.logf("no step timings from ringnet's plugin: %v", err)
		}
		for _, name := range stepOrder {
			if samples, ok := steps[name]; ok {
				rep.PluginSteps = append(rep.PluginSteps, PhaseReport{Name: name, Summary: summarize(samples)})
			}
		}
	}
	if o.Phases && byID["ringnet"] != nil {
		e.logf("ringnet ADD and DEL by phase, in-process, %d pods", len(e.pods))
		ph, err := e.phases(ctx)
		for _, name := range phaseOrder {
			rep.Phases = append(rep.Phases, PhaseReport{Name: name, Summary: summarize(ph[name])})
		}
		if err != nil {
			rep.finish()
			return rep, fmt.Errorf("phases: %w", err)
		}
	}
	rep.finish()
	return rep, nil
}

// round ADDs every pod with p, proves the first and last pod reach each
// other, then DELs every pod, recording each call's latency.
func (e *env) round(ctx context.Context, p plugin, pr *PluginReport) error {
	var last netip.Addr
	for i := range e.pods {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := e.add(p, i)
		if err != nil {
			return err
		}
		pr.AddMs = append(pr.AddMs, ms(r.Took))
		if i == len(e.pods)-1 {
			res, err := cnitest.ParseResult(r.Stdout)
			if err != nil {
				return err
			}
			for _, ip := range res.IPs {
				if pfx, err := netip.ParsePrefix(ip.Address); err == nil && pfx.Addr().Is4() {
					last = pfx.Addr()
				}
			}
		}
	}
	if p.ID != "loopback" {
		if out, err := exec.Command("ip", "netns", "exec", e.pods[0], "ping", "-c", "1", "-W", "2", last.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("pod 0 cannot ping the last pod %s: %v\n%s", last, err, out)
		}
	}
	for i := range e.pods {
		r, err := e.del(p, i)
		if err != nil {
			return err
		}
		pr.DelMs = append(pr.DelMs, ms(r.Took))
	}
	// DEL left nothing behind.
	if out, _ := exec.Command("ip", "-n", e.node, "-br", "link", "show", "type", "veth").Output(); len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("veths left in the node after DEL:\n%s", out)
	}
	if p.ID == "ringnet" {
		st, err := api.NewClient(e.socket).Status(context.Background())
		if err != nil {
			return err
		}
		if st.Allocated != 0 || st.Ports != 0 {
			return fmt.Errorf("ringnetd after DEL: %d allocations, %d ports", st.Allocated, st.Ports)
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (e *env) call(cmd string, p plugin, i int) (cnitest.Output, error) {
	out, err := e.tool.Run(cnitest.Call{Command: cmd, Network: e.network(p.ID), Netns: "/run/netns/" + e.pods[i],
		Args: []string{"IgnoreUnknown=1", "K8S_POD_NAMESPACE=bench", fmt.Sprintf("K8S_POD_NAME=pod%d", i)}})
	if err != nil && p.ID == "ringnet" {
		err = fmt.Errorf("%w\nringnetd:\n%s", err, tail(e.daemonLog(), 20))
	}
	return out, err
}

func (e *env) add(p plugin, i int) (cnitest.Output, error) { return e.call("add", p, i) }
func (e *env) del(p plugin, i int) (cnitest.Output, error) { return e.call("del", p, i) }

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// setup builds the binaries, makes the namespaces and starts ringnetd.
func (e *env) setup(o options) error {
	for _, id := range o.Plugins {
		if id == "bridge" || id == "loopback" {
			for _, b := range []string{"bridge", "host-local", "loopback"} {
				if _, err := os.Stat(filepath.Join(debianCNI, b)); err != nil {
					return fmt.Errorf("plugin %s from Debian: %w (apt-get install containernetworking-plugins, or make deps)", b, err)
				}
			}
		}
	}
	var err error
	if e.dir, err = os.MkdirTemp("", "rnbench-cni"); err != nil {
		return err
	}
	cniDir := filepath.Join(e.dir, "cni")
	e.logf("building ringnetd and the plugin; installing cnitool %s", cnitest.CnitoolVersion)
	for _, b := range [][2]string{{"ringnetd", "cmd/ringnetd"}, {"cni/ringnet", "cmd/ringnet-cni"}} {
		// Built as deploy/Containerfile builds them: static, stripped.
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(e.dir, b[0]), "github.com/ringnet/ringnet/"+b[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b[1], err, out)
		}
	}
	bin, err := cnitest.InstallCnitool()
	if err != nil {
		return err
	}
	netConf := filepath.Join(e.dir, "net.d")
	if err := os.Mkdir(netConf, 0o755); err != nil {
		return err
	}
	e.tool = cnitest.Tool{Bin: bin, NodeNetns: "/run/netns/" + e.node, CNIPath: []string{cniDir, debianCNI}, NetConfPath: netConf}

	e.logf("making the node namespace %s and %d pod namespaces", e.node, o.Pods)
	batch := []string{"netns add " + e.node}
	for i := range o.Pods {
		e.pods = append(e.pods, fmt.Sprintf("%s-%d", e.node, i))
		batch = append(batch, "netns add "+e.pods[i])
	}
	if err := ipBatch(batch); err != nil {
		return err
	}
	// A node's lo is up (ringnetd's slow path routes through it).
	if out, err := exec.Command("ip", "-n", e.node, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lo up in %s: %v\n%s", e.node, err, out)
	}

	e.socket = filepath.Join(e.dir, "ringnetd.sock")
	e.daemon = exec.Command("ip", "netns", "exec", e.node, filepath.Join(e.dir, "ringnetd"),
		"--pod-cidr", "10.248.0.0/22", "--socket", e.socket, "--state-dir", filepath.Join(e.dir, "state"))
	e.daemon.Stdout, e.daemon.Stderr = e, e
	if err := e.daemon.Start(); err != nil {
		return err
	}
	e.done = make(chan error, 1)
	go func() { e.done <- e.daemon.Wait() }()
	cl := api.NewClient(e.socket)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, err := cl.Status(context.Background()); err == nil {
			break
		}
		select {
		case err := <-e.done:
			e.daemon = nil
			return fmt.Errorf("ringnetd exited: %v\n%s", err, e.daemonLog())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ringnetd not serving after 15s:\n%s", e.daemonLog())
		}
	}
	for _, id := range o.Plugins {
		p := pluginByID[id]
		if err := writeJSON(filepath.Join(netConf, p.ID+".conflist"), p.conflist(e)); err != nil {
			return err
		}
	}
	return nil
}

// ipBatch runs ip commands in one process (ip -batch), going on past
// errors; it fails if any failed.
func ipBatch(lines []string) error {
	cmd := exec.Command("ip", "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -batch: %v\n%s", err, out)
	}
	return nil
}

// close stops ringnetd and removes the namespaces (their veths and the
// bridge go with them), the files and cnitool's cached results.
func (e *env) close() {
	if e.daemon != nil {
		e.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			e.daemon.Process.Kill()
			<-e.done
		}
	}
	var del []string
	for _, n := range e.pods {
		del = append(del, "netns del "+n)
	}
	if len(del) > 0 || e.dir != "" {
		del = append(del, "netns del "+e.node)
		ipBatch(del) // best effort: some may not exist
	}
	for id := range pluginByID {
		cnitest.RemoveResults(e.network(id))
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}
