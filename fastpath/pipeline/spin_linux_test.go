package pipeline

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIdleSpinYields: a worker spinning after its last frame
// (Config.IdleSpin) gives its CPU to any other runnable thread. A thread
// pinned to the worker's CPU runs a busy loop for 300 ms while the worker
// spins: it must get most of that CPU, where a worker spinning without
// yielding takes about half (the scheduler's fair share). The worker's share
// is the process's CPU time less the loop's, so other work on the machine
// lowers both alike.
func TestIdleSpinYields(t *testing.T) {
	d, _, hp, _, b := slowPods(t, SlowPathConfig{})
	cpu := runtime.NumCPU() - 1
	d.cfg.CPUs = []int{cpu}
	d.cfg.IdleSpin = 10 * time.Second
	d.cfg.IdleTimeout = time.Minute
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// One frame from the host: the worker forwards it, then spins.
	hp.FromHost(0).Push(udp4Frame(tapMAC, "192.168.50.1", "10.244.0.11", 64))
	hp.FromHost(0).Flush()
	hp.Wake(0)
	for deadline := time.Now().Add(5 * time.Second); b.Sent(nil) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not forward the frame")
		}
	}

	var loop, all time.Duration
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread, pinned below, ends with the goroutine
		var set unix.CPUSet
		set.Set(cpu)
		if err = unix.SchedSetaffinity(0, &set); err != nil {
			return
		}
		t0, p0 := cpuTime(unix.RUSAGE_THREAD), cpuTime(unix.RUSAGE_SELF)
		for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		}
		loop, all = cpuTime(unix.RUSAGE_THREAD)-t0, cpuTime(unix.RUSAGE_SELF)-p0
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	rest := all - loop // the spinning worker, and the little else the process did
	t.Logf("on CPU %d for 300 ms: the loop ran %v, the rest of the process %v", cpu, loop, rest)
	if loop < 3*rest {
		t.Errorf("a spinning worker took %v of CPU %d against the loop's %v: it does not yield", rest, cpu, loop)
	}
}

func cpuTime(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
