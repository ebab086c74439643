package kubetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// launcher starts child processes from one goroutine locked to its OS
// thread. PR_SET_PDEATHSIG fires when the thread that forked the child
// exits, not the process: a Go thread can exit whenever a goroutine dies
// locked to it (netns code does this on purpose), which would kill the
// children mid-test. This thread lives until close, and then exits with
// its goroutine (it is never unlocked), when the children are already gone.
type launcher struct {
	reqs chan func() // closed by close; read only by loop
}

func newLauncher() *launcher {
	l := &launcher{reqs: make(chan func())}
	go l.loop()
	return l
}

func (l *launcher) loop() {
	runtime.LockOSThread()
	for f := range l.reqs {
		f()
	}
}

// start starts cmd on the launcher's thread.
func (l *launcher) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	l.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

func (l *launcher) close() { close(l.reqs) }

// proc is one child: etcd or kube-apiserver, in its own process group,
// its output in a log file.
type proc struct {
	name     string
	cmd      *exec.Cmd
	log      string
	exited   chan struct{} // closed by the waiter goroutine when cmd has been reaped
	err      error         // cmd.Wait's result; written by the waiter before exited closes
	stopping atomic.Bool   // set by stop: an exit after it is expected
}

func startProc(l *launcher, name, bin string, args []string, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := l.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the child has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL after
// grace, and waits until the child is reaped. It returns an error only if
// the child had died before it was asked to, or would not die.
func (p *proc) stop(grace time.Duration) error {
	if !p.running() {
		if p.stopping.Load() {
			return nil
		}
		return fmt.Errorf("%s exited before stop: %v%s", p.name, p.err, p.tail())
	}
	p.stopping.Store(true)
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s (pid %d) survived SIGKILL", p.name, pgid)
		}
	}
	// Anything else it forked into its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// tail returns the last lines of the child's log, for error messages
// (which outlive the log: Stop removes it).
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return fmt.Sprintf("\nlast lines of %s:\n  %s", filepath.Base(p.log), strings.ReplaceAll(string(bytes.Join(lines, []byte("\n"))), "\n", "\n  "))
}
