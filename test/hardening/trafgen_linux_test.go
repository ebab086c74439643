package hardening_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
	"github.com/vishvananda/netlink"
)

// trafgenAbort is what trafgen says when a flush of its TX ring meets a
// full socket send buffer, and exits: the receiving end backed up for a
// moment (see bench/internal/trafgen). A flood starts it again.
const trafgenAbort = "Flushing TX_RING failed"

// flood is trafgen sending one config from a namespace as fast as one CPU
// lets it, until stopped: one worker (--cpus 1) pinned with taskset, in a
// process group of its own, since trafgen's parent does not pass SIGINT on
// to its worker. When trafgen aborts (trafgenAbort) the flood starts it
// again and counts the restart; any other exit ends the flood with an
// error.
type flood struct {
	name string   // for messages
	args []string // the command: ip netns exec NS taskset ... trafgen ...

	quit chan struct{} // closed by stop: run stops trafgen and returns
	done chan struct{} // closed by run when it returns

	mu       sync.Mutex
	cmd      *exec.Cmd          // the trafgen running now; guarded by mu
	restarts int                // guarded by mu
	err      error              // why the flood ended early; guarded by mu
	out      ringnode.LogBuffer // what every trafgen of the flood wrote
	outFrom  int                // where the running trafgen's output starts in out; written by start, read by run
}

// startFlood runs trafgen on dev in namespace ns ("": the test's own),
// sending the packets of conf (a trafgen config) in turn, pinned to cpu.
// The test's cleanup stops it.
func startFlood(t testing.TB, name, ns, dev, conf string, cpu int) *flood {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".trafgen")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &flood{name: name, quit: make(chan struct{}), done: make(chan struct{}),
		args: []string{"taskset", "-c", strconv.Itoa(cpu),
			"trafgen", "--cpus", "1", "--no-sock-mem", "--notouch-irq", "--dev", dev, "--conf", path}}
	if ns != "" {
		f.args = append([]string{"ip", "netns", "exec", ns}, f.args...)
	}
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	go f.run()
	t.Cleanup(f.stop)
	return f
}

func (f *flood) start() error {
	f.outFrom = len(f.out.String())
	cmd := exec.Command(f.args[0], f.args[1:]...)
	cmd.Stdout, cmd.Stderr = &f.out, &f.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start trafgen (%s): %w", f.name, err)
	}
	f.mu.Lock()
	f.cmd = cmd
	f.mu.Unlock()
	return nil
}

// run waits for trafgen, starting it again after an abort, until stop.
func (f *flood) run() {
	defer close(f.done)
	for {
		f.mu.Lock()
		cmd := f.cmd
		f.mu.Unlock()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-f.quit:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a worker that outlived its parent
			return
		case err := <-exited:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			if out := f.out.String()[f.outFrom:]; !strings.Contains(out, trafgenAbort) {
				f.fail(fmt.Errorf("trafgen (%s) exited: %v\n%s", f.name, err, tail(out, 10)))
				return
			}
			f.mu.Lock()
			f.restarts++
			f.mu.Unlock()
			if err := f.start(); err != nil {
				f.fail(err)
				return
			}
		}
	}
}

func (f *flood) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// stop stops trafgen (SIGINT to its process group, SIGKILL after 5 s) and
// returns once it is gone. It may be called more than once.
func (f *flood) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}

// result is what the flood did: how often trafgen was started again, and
// why it ended early, if it did.
func (f *flood) result() (restarts int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restarts, f.err
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// linkStats reads the counters of link dev in namespace ns ("": the
// test's own).
func linkStats(tb testing.TB, ns, dev string) netlink.LinkStatistics {
	tb.Helper()
	var st netlink.LinkStatistics
	read := func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		if s := l.Attrs().Statistics; s != nil {
			st = *s
			return nil
		}
		return errors.New("no statistics")
	}
	var err error
	if ns == "" {
		err = read()
	} else {
		err = topo.Do(ns, read)
	}
	if err != nil {
		tb.Fatalf("counters of %s in %s: %v", dev, ns, err)
	}
	return st
}
