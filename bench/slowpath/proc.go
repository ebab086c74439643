package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run runs a short command to completion, inside namespace ns unless it is
// empty, and returns its combined output; the error carries the output.
func run(ctx context.Context, ns string, args ...string) (string, error) {
	full := inNS(ns, args)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// runAll runs commands in order and stops at the first error.
func runAll(ctx context.Context, ns string, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := run(ctx, ns, c...); err != nil {
			return err
		}
	}
	return nil
}

func inNS(ns string, args []string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// proc is a long-running child (ringnetd, a server, trafgen) in its own
// process group, killed if this program dies.
type proc struct {
	name    string
	cmd     *exec.Cmd
	mu      sync.Mutex
	out     bytes.Buffer // stdout and stderr, guarded by mu
	done    chan struct{}
	waitErr error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// procs tracks the children so that cleanup can stop what is left.
type procs struct {
	mu   sync.Mutex
	live map[*proc]bool
}

func (ps *procs) start(name, ns string, args ...string) (*proc, error) {
	full := inNS(ns, args)
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(full[0], full[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	if ps.live == nil {
		ps.live = map[*proc]bool{}
	}
	ps.live[p] = true
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

func (ps *procs) killAll() {
	ps.mu.Lock()
	var left []*proc
	for p := range ps.live {
		left = append(left, p)
	}
	ps.mu.Unlock()
	for _, p := range left {
		p.stop(syscall.SIGKILL, time.Second)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop signals the group, waits up to grace, then kills it; it reports
// whether the process exited by itself.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	p.signal(sig)
	select {
	case <-p.done:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return true
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return false
}

// waitFor waits until the output contains s.
func (p *proc) waitFor(ctx context.Context, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.output(), s) {
		if p.exited() {
			return fmt.Errorf("%s exited before %q (%v): %s", p.name, s, p.waitErr, tail(p.output()))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q within %v: %s", p.name, s, timeout, tail(p.output()))
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
