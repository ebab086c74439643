package main

// The slow path's part of ringnetd: its flags and its start. Kept apart
// from main.go so that the daemon's own wiring stays short; main.go calls
// slowPathFlags with the other flags and startSlowPath right after
// pipeline.New.

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/slowpath"
)

// slowPathConfig holds the slow path's flags.
type slowPathConfig struct {
	fs         *flag.FlagSet // for the daemon's own --pod-cidr and --mtu, read after parsing
	enabled    bool
	tap        string
	mtu        int
	limits     string
	queue      int
	icmpSource string
	procSysNet string
}

// slowPathFlags registers the slow path's flags on fs. The slow path also
// follows two of the daemon's flags: --pod-cidr (given, the host routes
// each pod CIDR to the TAP as a whole and unused addresses in it get ICMP
// unreachable; absent, the host gets a /32 and /128 route per pod) and
// --mtu (the pods' MTU, the TAP's by default).
func slowPathFlags(fs *flag.FlagSet) *slowPathConfig {
	c := &slowPathConfig{fs: fs}
	fs.BoolVar(&c.enabled, "slow-path", true, "run the slow path: a TAP to the node's stack for host ↔ pod traffic, what the fast path does not handle, and ICMP errors (false: drop all that)")
	fs.StringVar(&c.tap, "tap", slowpath.DefaultTAP, "the slow path's TAP device")
	fs.IntVar(&c.mtu, "tap-mtu", 0, "MTU of the TAP, no larger than the pods' (default: --mtu, else 1500)")
	fs.StringVar(&c.limits, "punt-limit", "", "comma-separated per-worker token buckets CLASS=RATE[/BURST] (frames/s), e.g. to_host_new=20000/512 (to_host: pod → node frames on flows the node has sent on, default 50000/1024; to_host_new: on flows it has not, default 5000/512); classes: "+classNames())
	fs.IntVar(&c.queue, "slow-path-queue", 1024, "frames per worker queue to and from the slow path (power of two)")
	fs.StringVar(&c.icmpSource, "icmp-source", "", "comma-separated source addresses (one IPv4, one IPv6) of the ICMP errors sent to pods (default: the node's primary addresses)")
	fs.StringVar(&c.procSysNet, "proc-sys-net", slowpath.DefaultProcSysNet, "where the node's /proc/sys/net is mounted: the slow path writes its TAP's sysctls there (in a container, where the runtime mounts /proc/sys read-only, the host's /proc/sys/net mounted elsewhere; deploy/ringnet.yaml uses /host/proc/sys/net)")
	return c
}

func classNames() string {
	var names []string
	for c := range pipeline.NumPuntClasses {
		names = append(names, c.String())
	}
	return strings.Join(names, ", ")
}

// options turns the flags into slowpath.Options.
func (c *slowPathConfig) options(log *slog.Logger) (slowpath.Options, error) {
	o := slowpath.Options{TAP: c.tap, MTU: c.mtu, Logger: log, ProcSysNet: c.procSysNet,
		Pipeline: pipeline.SlowPathConfig{QueueLen: c.queue, Limits: map[pipeline.PuntClass]pipeline.Limit{}}}
	if f := c.fs.Lookup("pod-cidr"); f != nil {
		for _, s := range splitList(f.Value.String()) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return o, fmt.Errorf("--pod-cidr: %w", err)
			}
			o.PodPrefixes = append(o.PodPrefixes, p)
		}
	}
	if f := c.fs.Lookup("mtu"); f != nil && o.MTU == 0 {
		if m, err := strconv.Atoi(f.Value.String()); err == nil {
			o.MTU = m
		}
	}
	for _, s := range splitList(c.limits) {
		name, spec, ok := strings.Cut(s, "=")
		if !ok {
			return o, fmt.Errorf("--punt-limit: %q is not CLASS=RATE[/BURST]", s)
		}
		class, err := pipeline.ParsePuntClass(name)
		if err != nil {
			return o, fmt.Errorf("--punt-limit: %w", err)
		}
		rate, burst, hasBurst := strings.Cut(spec, "/")
		l := pipeline.Limit{Burst: class.DefaultLimit().Burst}
		r, err := strconv.ParseUint(rate, 10, 32)
		if err != nil {
			return o, fmt.Errorf("--punt-limit %s: rate %q is not a number of frames per second", name, rate)
		}
		l.Rate = uint32(r)
		if hasBurst {
			b, err := strconv.ParseUint(burst, 10, 32)
			if err != nil || b == 0 {
				return o, fmt.Errorf("--punt-limit %s: burst %q is not a positive number of frames", name, burst)
			}
			l.Burst = uint32(b)
		}
		o.Pipeline.Limits[class] = l
	}
	for _, s := range splitList(c.icmpSource) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return o, fmt.Errorf("--icmp-source: %w", err)
		}
		if a.Unmap().Is4() {
			o.ICMPSource4 = a.Unmap()
		} else {
			o.ICMPSource6 = a
		}
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// startSlowPath starts the slow path on dp, which must not be started yet,
// and returns it (nil when it is off). The returned stop removes the TAP and its routes; call it before closing
// dp. With --slow-path=false it does nothing.
func startSlowPath(dp *pipeline.Dataplane, cfg *slowPathConfig, log *slog.Logger) (_ *slowpath.SlowPath, stop func() error, err error) {
	if !cfg.enabled {
		log.Info("slow path off: host ↔ pod traffic, punted frames and ICMP errors are dropped")
		return nil, func() error { return nil }, nil
	}
	o, err := cfg.options(log)
	if err != nil {
		return nil, nil, err
	}
	sp, err := slowpath.Start(dp, o)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (run with --slow-path=false to do without)", err)
	}
	log.Info("slow path", "tap", sp.TAP(), "mac", sp.MAC().String(), "mtu", o.MTU, "pod_cidrs", o.PodPrefixes)
	if !hasNodeAddress() {
		log.Warn("the node has no global unicast address: pods cannot reach it and its own traffic to pods " +
			"has no usable source address; give the node an address (e.g. on its uplink)")
	}
	var once sync.Once
	return sp, func() error {
		once.Do(func() {
			if err = sp.Close(); err != nil {
				log.Error("slow path shutdown", "err", err)
			}
		})
		return err
	}, nil
}

// hasNodeAddress reports whether the node's namespace has a global unicast
// address, the source the kernel needs for node → pod traffic.
func hasNodeAddress() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell; say nothing
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			return true
		}
	}
	return false
}
