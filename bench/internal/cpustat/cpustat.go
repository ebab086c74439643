// Package cpustat reads how the machine's CPUs spent their time, from
// /proc/stat, and turns two readings into per-CPU shares of a window. The
// benchmarks take a reading at each end of a measurement window to say
// which core was busy, and with what (user space, the kernel, softirq).
package cpustat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Times is one CPU's line of /proc/stat, in ticks: user, nice, system,
// idle, iowait, irq, softirq, steal.
type Times [8]uint64

func (c Times) total() (n uint64) {
	for _, v := range c {
		n += v
	}
	return n
}

// Read returns every CPU's times, CPU 0 first.
func Read() ([]Times, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	var cpus []Times
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var c Times
		for i := range c { // guest times, after steal, are already in user and nice
			c[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		cpus = append(cpus, c)
	}
	return cpus, nil
}

// Share is how one CPU spent a window, in percent.
type Share struct {
	Busy    float64 `json:"busy"` // everything but idle and iowait
	User    float64 `json:"user"` // user + nice
	System  float64 `json:"system"`
	Softirq float64 `json:"softirq"` // irq + softirq
	Steal   float64 `json:"steal"`   // taken by the hypervisor
}

// Shares returns each CPU's share of the window between readings a and b,
// or nil if they do not match.
func Shares(a, b []Times) []Share {
	if len(a) != len(b) || len(a) == 0 {
		return nil
	}
	out := make([]Share, len(a))
	for i := range a {
		var d Times
		for j := range d {
			d[j] = b[i][j] - a[i][j]
		}
		tot := float64(d.total())
		if tot == 0 {
			continue
		}
		pct := func(v uint64) float64 { return 100 * float64(v) / tot }
		out[i] = Share{
			Busy:    pct(d.total() - d[3] - d[4]),
			User:    pct(d[0] + d[1]),
			System:  pct(d[2]),
			Softirq: pct(d[5] + d[6]),
			Steal:   pct(d[7]),
		}
	}
	return out
}

// userHz is the unit of the times in /proc: USER_HZ, 100 on every Linux
// architecture whatever the kernel's own tick.
const userHz = 100

// Process returns the CPU time a process and its threads have used so far
// (user and system, from /proc/PID/stat), in milliseconds.
func Process(pid int) (uint64, error) {
	t, err := readTimes(pid)
	return t[0] + t[1], err
}

// readTimes returns utime, stime, cutime and cstime of a process in
// milliseconds: its own CPU time and that of the children it has waited
// for.
func readTimes(pid int) ([4]uint64, error) {
	var t [4]uint64
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return t, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis, where field 3 (state) starts;
	// utime is field 14.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return t, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 15", pid, len(f))
	}
	for i := range t {
		v, err := strconv.ParseUint(f[11+i], 10, 64)
		if err != nil {
			return t, fmt.Errorf("/proc/%d/stat: field %d: %q", pid, 14+i, f[11+i])
		}
		t[i] = v * 1000 / userHz
	}
	return t, nil
}

// Busy measures how busy the machine is over d: the busy share of all its
// CPUs together, in percent.
func Busy(ctx context.Context, d time.Duration) (float64, error) {
	a, err := Read()
	if err != nil {
		return 0, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
	}
	b, err := Read()
	if err != nil {
		return 0, err
	}
	var busy float64
	shares := Shares(a, b)
	for _, s := range shares {
		busy += s.Busy
	}
	if len(shares) == 0 {
		return 0, errors.New("/proc/stat: no CPU lines")
	}
	return busy / float64(len(shares)), nil
}

// NetnsInode returns the inode that identifies the named network namespace
// (/run/netns/name), as /proc/PID/ns/net links name it: "net:[INODE]".
func NetnsInode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &st); err != nil {
		return 0, fmt.Errorf("network namespace %s: %w", name, err)
	}
	return st.Ino, nil
}

// Others returns the CPU time, in milliseconds, that user-space processes
// outside the network namespaces in ours (by inode) have used so far,
// with that of the children they have waited for: on a shared machine,
// other people's work. A process that lives only between two calls still
// counts there, through its parent (a build's compiler runs through the go
// command, the go command through its shell). This process is left out,
// and kernel threads too: ksoftirqd does the benchmark's own softirq work.
func Others(ours map[uint64]bool) (uint64, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	var ms uint64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/ns/net")
		if err != nil {
			continue // gone, or a kernel thread without one
		}
		var ino uint64
		if _, err := fmt.Sscanf(link, "net:[%d]", &ino); err != nil || ours[ino] {
			continue
		}
		if kernelThread(pid) {
			continue
		}
		if t, err := readTimes(pid); err == nil {
			ms += t[0] + t[1] + t[2] + t[3]
		}
	}
	return ms, nil
}

// kernelThread reports whether pid is a kernel thread: kthreadd or one of
// its children.
func kernelThread(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return pid == 2 || len(f) > 1 && f[1] == "2"
}
