// Package child runs the benchmark programs' child processes: short
// commands inside a network namespace, and long-running ones (daemons,
// traffic generators, servers) in their own process group, killed if the
// benchmark dies, with their output kept for checks and error messages;
// and the chores around them: finding the module to build from, and
// sweeping namespaces (and what runs in them) left by a killed run.
package child

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Run runs a short command to completion, inside the named network namespace
// unless ns is empty, and returns its combined output. The error names the
// command and carries its output, so that a failing step explains itself.
func Run(ctx context.Context, ns string, args ...string) (string, error) {
	full := InNS(ns, args)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func InNS(ns string, args []string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// Proc is a long-running child: a forwarder, trafgen, a sockperf server. It
// runs in its own process group (so that signals reach every process it
// forks, e.g. trafgen's workers) and is killed if this program dies.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer // stdout
	err  *lockedBuffer // stderr

	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done is closed
}

// lockedBuffer is a bytes.Buffer written by exec's copying goroutine and read
// by the benchmark.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Group tracks every started process so that cleanup can stop what is left.
type Group struct {
	mu   sync.Mutex
	live map[*Proc]struct{}
}

func (ps *Group) Start(name, ns string, args ...string) (*Proc, error) {
	full := InNS(ns, args)
	p := &Proc{name: name, out: new(lockedBuffer), err: new(lockedBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(full[0], full[1:]...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.err
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(full, " "), err)
	}
	ps.mu.Lock()
	if ps.live == nil {
		ps.live = make(map[*Proc]struct{})
	}
	ps.live[p] = struct{}{}
	ps.mu.Unlock()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
		ps.mu.Lock()
		delete(ps.live, p)
		ps.mu.Unlock()
	}()
	return p, nil
}

// StartReady starts a process like Start, then waits up to timeout for
// text in its output (a server's "listening" line); if it does not come,
// it kills the process and says why.
func (ps *Group) StartReady(ctx context.Context, name, ns, text string, timeout time.Duration, args ...string) (*Proc, error) {
	p, err := ps.Start(name, ns, args...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitForText(ctx, text, timeout); err != nil {
		p.Stop(syscall.SIGKILL, 2*time.Second)
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// KillAll kills every process group still running and waits for them.
func (ps *Group) KillAll() {
	ps.mu.Lock()
	var left []*Proc
	for p := range ps.live {
		left = append(left, p)
	}
	ps.mu.Unlock()
	for _, p := range left {
		p.Stop(syscall.SIGKILL, 2*time.Second)
	}
}

func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process's whole group.
func (p *Proc) Signal(sig syscall.Signal) {
	if !p.Exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// Stop sends sig to the process group and waits up to grace for the process
// to exit; then it kills the group. It reports whether the process exited by
// itself within grace.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) bool {
	p.Signal(sig)
	select {
	case <-p.done:
		// The leader is gone; make sure no forked worker outlives it.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return true
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return false
}

// WaitFor waits until cond holds for the process's output, the process
// exits, or timeout passes.
func (p *Proc) WaitFor(ctx context.Context, what string, timeout time.Duration, cond func(stdout, stderr string) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond(p.out.String(), p.err.String()) {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited before %s (%v)%s", p.name, what, p.waitErr, p.Tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %v%s", p.name, what, timeout, p.Tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Tail is the end of the process's output, for error messages.
func (p *Proc) Tail() string {
	s := strings.TrimSpace(p.err.String() + "\n" + p.out.String())
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "; output:\n    " + strings.Join(lines, "\n    ")
}

var ErrStopped = errors.New("interrupted")

// Sleep waits for d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ErrStopped
	case <-t.C:
		return nil
	}
}

// WaitForText waits until text appears in the process's output (stdout or
// stderr), the process exits, or timeout passes.
func (p *Proc) WaitForText(ctx context.Context, text string, timeout time.Duration) error {
	return p.WaitFor(ctx, text, timeout, func(o, e string) bool { return strings.Contains(o+e, text) })
}

// Stdout and Stderr are what the process has written so far.
func (p *Proc) Stdout() string { return p.out.String() }
func (p *Proc) Stderr() string { return p.err.String() }

// Output is stderr then stdout so far.
func (p *Proc) Output() string { return p.err.String() + p.out.String() }

// Err is how the process ended; valid once Exited reports true.
func (p *Proc) Err() error { return p.waitErr }

// RunAll runs commands in order and stops at the first error.
func RunAll(ctx context.Context, ns string, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := Run(ctx, ns, c...); err != nil {
			return err
		}
	}
	return nil
}

// Tail is the last lines of s, for error messages.
func Tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// ModuleRoot finds the ringnet module's root from the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find module root: not inside a Go module; run from the ringnet repository")
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	if !regexp.MustCompile(`(?m)^module\s+github\.com/ringnet/ringnet\s*$`).Match(data) {
		return "", fmt.Errorf("find module root: %s is not github.com/ringnet/ringnet; run from the ringnet repository", gomod)
	}
	return filepath.Dir(gomod), nil
}

// SweepStale removes the namespaces left by earlier runs whose process is
// gone (a run killed outright cannot clean up). names must match a
// namespace name of a run with the run's pid as its first submatch.
func SweepStale(ctx context.Context, names *regexp.Regexp, logw io.Writer) {
	out, err := Run(ctx, "", "ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := names.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // ours, or its run is still going
		}
		fmt.Fprintf(logw, "removing stale namespace %s (pid %d is gone)\n", f[0], pid)
		KillNS(ctx, f[0])
		_, _ = Run(ctx, "", "ip", "netns", "del", f[0])
	}
}

// KillNS kills every process still inside a namespace.
func KillNS(ctx context.Context, name string) {
	out, err := Run(ctx, "", "ip", "netns", "pids", name)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Preflight checks that the benchmark runs as root and that every tool is
// on PATH, naming what is missing and how to get it.
func Preflight(needs string, tools ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (%s)", needs)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run make deps, which installs it", tool)
		}
	}
	return nil
}
