package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run runs a short command to completion, inside the named network namespace
// unless ns is empty, and returns its combined output. The error names the
// command and carries its output, so that a failing step explains itself.
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

func inNS(ns string, args []string) []string {
	if ns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// proc is a long-running child: a forwarder, trafgen, a sockperf server. It
// runs in its own process group (so that signals reach every process it
// forks, e.g. trafgen's workers) and is killed if this program dies.
type proc struct {
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

// procs tracks every started process so that cleanup can stop what is left.
type procs struct {
	mu   sync.Mutex
	live map[*proc]struct{}
}

func (ps *procs) start(name, ns string, args ...string) (*proc, error) {
	full := inNS(ns, args)
	p := &proc{name: name, out: new(lockedBuffer), err: new(lockedBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(full[0], full[1:]...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.err
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(full, " "), err)
	}
	ps.mu.Lock()
	if ps.live == nil {
		ps.live = make(map[*proc]struct{})
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

// killAll kills every process group still running and waits for them.
func (ps *procs) killAll() {
	ps.mu.Lock()
	var left []*proc
	for p := range ps.live {
		left = append(left, p)
	}
	ps.mu.Unlock()
	for _, p := range left {
		p.stop(syscall.SIGKILL, 2*time.Second)
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

// signal sends sig to the process's whole group.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop sends sig to the process group and waits up to grace for the process
// to exit; then it kills the group. It reports whether the process exited by
// itself within grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	p.signal(sig)
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

// waitFor waits until cond holds for the process's output, the process
// exits, or timeout passes.
func (p *proc) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(stdout, stderr string) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond(p.out.String(), p.err.String()) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before %s (%v)%s", p.name, what, p.waitErr, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %v%s", p.name, what, timeout, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tail is the end of the process's output, for error messages.
func (p *proc) tail() string {
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

var errStopped = errors.New("interrupted")

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errStopped
	case <-t.C:
		return nil
	}
}
