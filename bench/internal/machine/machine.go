// Package machine describes the machine a benchmark ran on, for its
// report: kernel release, CPU model, number of cores and Go version.
package machine

import (
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is what a report says about where it was measured. Reports
// embed it in their JSON.
type Machine struct {
	Kernel    string `json:"kernel"`
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
}

// Describe reads the kernel release (uname) and the CPU model and count
// (/proc/cpuinfo); what it cannot read it leaves as "unknown CPU" and
// runtime.NumCPU.
func Describe() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		processors := 0
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				processors++
			case k == "model name" && m.CPUModel == "":
				m.CPUModel = strings.TrimSpace(v)
			}
		}
		if processors > 0 {
			m.Cores = processors
		}
	}
	if m.CPUModel == "" {
		m.CPUModel = "unknown CPU"
	}
	return m
}
