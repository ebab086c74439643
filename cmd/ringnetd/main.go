// Command ringnetd is ringnet's node daemon: the agent (the cluster from a
// static file or the Kubernetes API, IPAM, the CNI plugin's and the CLI's
// API, metrics), the tables, the AF_XDP fast path on every pod veth and the
// uplink, and the TAP slow path, in one process.
//
// Run it inside the node's network namespace. SIGUSR1 prints the per-port and
// per-reason counters; SIGHUP reads the cluster file (--cluster) again and
// applies its nodes, services and policies, or keeps everything as it was
// if the file is not valid; SIGINT and SIGTERM detach every XDP program,
// close every socket, print the counters and exit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xdp"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/podport"
	"sigs.k8s.io/yaml"
)

const usage = `ringnetd: ringnet's node daemon (AF_XDP fast path)

Usage:
  ringnetd --pod-cidr 10.244.0.0/24 [--pod-cidr fd00::/64] [flags]   pods from the CNI plugin
  ringnetd --pods FILE [flags]                                      pods from a static file
  ringnetd --cluster FILE --node NAME [flags]                       a node of a cluster: pods from the CNI
                                                                    plugin, other nodes' pods through the uplink

Run it in the node's network namespace (e.g. ip netns exec NODE ringnetd ...).
With --pod-cidr it serves the CNI plugin (the "ringnet" CNI binary) on
--socket: it hands out pod addresses from the pod CIDRs (kept in --state-dir,
never handed out twice, also across crashes), attaches each pod's port as the
plugin creates it, and re-attaches existing pods when restarted. With --pods it
attaches to the host end of each pod's veth listed in FILE (made e.g. with
"ringnet pod add"). Both may be given.

With --cluster the node's pod CIDRs come from the cluster file (see
agent/cluster and docs/cross-node.md) and pods on the other nodes are reached
through the uplink: VXLAN, IPIP or direct routing per node pair, as the file's
tunnel mode says, Flannel's VXLAN nodes included. The pods' MTU is the
uplink's less the tunnel overhead unless --mtu says otherwise. The file's
services are load-balanced by the fast path (see ringnet services), and its
NetworkPolicies enforced on its pods (see ringnet policy).

FILE (YAML or JSON):
  pods:
  - name: a
    hostInterface: rna          # host end of the pod's veth
    mac: "02:00:00:00:00:0a"    # the pod's eth0 MAC
    ipv4: 10.244.0.10
    ipv6: "fd00::a"             # optional

Signals: SIGUSR1 prints counters; SIGHUP rereads the cluster file (its nodes,
services and policies; if it does not validate, nothing changes and the log
says why);
SIGINT/SIGTERM detach everything and exit.

Flags:
`

type podsFile struct {
	Pods []podEntry `json:"pods"`
}

type podEntry struct {
	Name          string `json:"name"`
	HostInterface string `json:"hostInterface"`
	MAC           string `json:"mac"`
	IPv4          string `json:"ipv4"`
	IPv6          string `json:"ipv6"`
}

// gcPercent is ringnetd's GOGC unless the environment sets one: the
// fast path allocates nothing, so the collector runs for the control
// plane's garbage only, and a node agent's memory matters more than that
// CPU (with Go's default of 100, RSS at 100 pods is 11 MiB higher).
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ringnetd:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ringnetd", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	podsPath := fs.String("pods", "", "static file listing the node's pods (see above)")
	workers := fs.Int("workers", 1, "fast-path workers; every pod veth needs this many queues")
	cpus := fs.String("cpus", "", "comma-separated CPUs to pin workers to (worker i on the i-th, round robin); empty: not pinned")
	busy := fs.Bool("busy-poll", false, "spin on the rings instead of sleeping when idle (lowest latency, one core per worker)")
	batch := fs.Int("batch", 64, "frames per RX batch")
	failOpen := fs.Bool("policy-fail-open", false, "with --kubernetes: forward between pods before the first NetworkPolicy compile (default: fail closed — after a start or restart nothing passes between pods until the policy is known; the host still reaches its pods)")
	idleSpin := fs.Duration("idle-spin", 0, "without --busy-poll: keep polling the rings this long after the last frame before sleeping, yielding the CPU to other runnable threads between polls (e.g. 100us: request/response latency below the kernel's, for up to that much CPU after each burst)")
	xdpMode := fs.String("xdp-mode", "native", "how XDP attaches to pod veths and the uplink: native or generic")
	bind := fs.String("bind", "auto", "AF_XDP bind mode: auto, copy or zero-copy (veth has copy only)")
	frames := fs.Uint("frames", xsk.DefaultNumFrames, "UMEM frames per socket")
	frameSize := fs.Uint("frame-size", xsk.DefaultFrameSize, "UMEM frame size: 2048 or 4096")
	ringSize := fs.Uint("ring-size", xsk.DefaultRingSize, "size of each AF_XDP ring (power of two)")
	noWakeup := fs.Bool("no-need-wakeup", false, "do not use need_wakeup (a syscall per TX batch; for measurement only)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cni := addCNIFlags(fs)
	slow := slowPathFlags(fs)
	cf := addClusterFlags(fs)
	mf := addMetricsFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	x, err := loadCluster(cf, log)
	if err != nil {
		return err
	}
	if x != nil {
		if err := x.apply(fs, cni, log); err != nil {
			return err
		}
	}
	if *podsPath == "" && len(cni.podCIDRs) == 0 {
		fs.Usage()
		return errors.New("give --pod-cidr (pods come from the CNI plugin), --cluster (and this node's pod CIDRs come from it) and/or --pods (a static pods file)")
	}
	var pods []pipeline.PortSpec
	if *podsPath != "" {
		var err error
		if pods, err = readPods(*podsPath); err != nil {
			return err
		}
	}
	mode, err := xdp.ParseMode(*xdpMode)
	if err != nil {
		return fmt.Errorf("--xdp-mode: %w", err)
	}
	bm, err := xsk.ParseBindMode(*bind)
	if err != nil {
		return fmt.Errorf("--bind: %w", err)
	}
	cpuList, err := parseCPUs(*cpus)
	if err != nil {
		return fmt.Errorf("--cpus: %w", err)
	}
	rs := uint32(*ringSize)
	cfg := pipeline.Config{
		Workers: *workers, CPUs: cpuList, BusyPoll: *busy, IdleSpin: *idleSpin,
		PolicyRequired: x != nil && x.kube != nil && !*failOpen, Batch: *batch, XDPMode: mode, Logger: log,
		XSK: xsk.Config{NumFrames: uint32(*frames), FrameSize: uint32(*frameSize),
			FillSize: rs, CompletionSize: rs, RxSize: rs, TxSize: rs, Bind: bm, NoNeedWakeup: *noWakeup},
		Gateway: pipeline.Gateway{MAC: [6]byte(podport.GatewayMAC), IPv4: podport.GatewayIPv4.As4(),
			IPv6: podport.GatewayIPv6.As16()},
	}
	if x != nil {
		cfg.NATPorts = pipeline.PortRange(x.flags.natPorts)
	}
	dp, err := pipeline.New(cfg)
	if err != nil {
		return err
	}
	// From here on every exit path detaches what was attached.
	defer func() {
		if err := dp.Close(); err != nil {
			log.Error("shutdown", "err", err)
		}
		writeCounters(out, dp)
	}()
	stopMetrics, m, err := startMetrics(mf, dp, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	sp, stopSlowPath, err := startSlowPath(dp, slow, log)
	if err != nil {
		return err
	}
	defer stopSlowPath()
	if x != nil {
		stopPeers, err := x.start(dp, sp, m)
		if err != nil {
			return err
		}
		defer stopPeers()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGHUP)
	for _, p := range pods {
		port, err := dp.AddPort(p)
		if err != nil {
			return err
		}
		log.Info("port attached", "port", p.Ifname, "id", port.ID, "ipv4", p.IPv4, "ipv6", p.IPv6, "mac", p.MAC.String(), "tx_budget", port.TxBudget())
	}
	if err := dp.Start(); err != nil {
		return err
	}
	if len(cni.podCIDRs) > 0 {
		stopAPI, err := startAPI(cni, dp, x.policyView(), log)
		if err != nil {
			return err
		}
		defer stopAPI()
	}
	log.Info("forwarding", "ports", len(pods), "workers", cfg.Workers, "busy_poll", cfg.BusyPoll,
		"cpus", *cpus, "xdp_mode", mode, "bind", bm)
	m.SetReady(true)
	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR1:
			writeCounters(out, dp)
			continue
		case syscall.SIGHUP:
			reload(x, log)
			continue
		}
		log.Info("shutting down", "signal", sig)
		return nil
	}
	return nil
}

// reload rereads the cluster file on SIGHUP and logs the outcome, the
// line internal/ringnode's Reload waits for: "cluster file reloaded", or
// "cluster file reload failed" with the reason.
func reload(x *crossNode, log *slog.Logger) {
	if x == nil {
		log.Warn("cluster file reload failed: SIGHUP rereads the cluster file of --cluster, and ringnetd runs without one; nothing changed")
		return
	}
	if err := x.reload(); err != nil {
		log.Error("cluster file reload failed", "file", x.flags.path, "err", err)
		return
	}
	log.Info("cluster file reloaded", "file", x.flags.path, "nodes", len(x.static.Nodes), "services", len(x.static.Services),
		"pods", len(x.static.Pods), "policies", len(x.static.Policies))
}

func readPods(path string) ([]pipeline.PortSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pods file: %w", err)
	}
	var f podsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("pods file %s: %w", path, err)
	}
	if len(f.Pods) == 0 {
		return nil, fmt.Errorf("pods file %s: no pods listed", path)
	}
	var specs []pipeline.PortSpec
	for i, p := range f.Pods {
		where := fmt.Sprintf("pods file %s: pod %d (%s)", path, i, p.Name)
		if p.HostInterface == "" {
			return nil, fmt.Errorf("%s: hostInterface is missing", where)
		}
		mac, err := net.ParseMAC(p.MAC)
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("%s: mac %q is not an Ethernet MAC", where, p.MAC)
		}
		spec := pipeline.PortSpec{Ifname: p.HostInterface, MAC: mac}
		if p.IPv4 != "" {
			if spec.IPv4, err = netip.ParseAddr(p.IPv4); err != nil || !spec.IPv4.Is4() {
				return nil, fmt.Errorf("%s: ipv4 %q is not an IPv4 address", where, p.IPv4)
			}
		}
		if p.IPv6 != "" {
			if spec.IPv6, err = netip.ParseAddr(p.IPv6); err != nil || !spec.IPv6.Is6() {
				return nil, fmt.Errorf("%s: ipv6 %q is not an IPv6 address", where, p.IPv6)
			}
		}
		if !spec.IPv4.IsValid() && !spec.IPv6.IsValid() {
			return nil, fmt.Errorf("%s: neither ipv4 nor ipv6 given", where)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

func parseCPUs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a CPU number", f)
		}
		cpus = append(cpus, n)
	}
	return cpus, nil
}

// writeCounters prints the counters in a stable, line-oriented form:
//
//	port NAME rx_frames=N tx_frames=N xsk_rx_dropped=N ...
//	worker I forwarded=N dropped=N
//	reason NAME N
//
// Reasons with a zero count are left out.
func writeCounters(w io.Writer, dp *pipeline.Dataplane) {
	ports, reasons := dp.Stats()
	var b strings.Builder
	b.WriteString("counters\n")
	for _, p := range ports {
		var k xsk.Stats
		for _, s := range p.Sockets {
			k.RxDropped += s.RxDropped
			k.RxRingFull += s.RxRingFull
			k.RxFillRingEmpty += s.RxFillRingEmpty
			k.TxInvalidDescs += s.TxInvalidDescs
			k.Kicks += s.Kicks
			k.KickErrors += s.KickErrors
		}
		fmt.Fprintf(&b, "port %s rx_frames=%d tx_frames=%d xsk_rx_dropped=%d xsk_rx_ring_full=%d xsk_fill_ring_empty=%d xsk_tx_invalid=%d tx_kicks=%d tx_kick_errors=%d\n",
			p.Ifname, p.RxFrames, p.TxFrames, k.RxDropped, k.RxRingFull, k.RxFillRingEmpty, k.TxInvalidDescs, k.Kicks, k.KickErrors)
	}
	for i, w := range dp.Workers() {
		var drops uint64
		for _, r := range stats.Reasons() {
			if r.IsDrop() {
				drops += w.Counters.Load(r)
			}
		}
		fmt.Fprintf(&b, "worker %d forwarded=%d dropped=%d\n", i, w.Counters.Load(stats.Forwarded), drops)
	}
	for _, r := range stats.Reasons() {
		if n := reasons[r]; n > 0 {
			fmt.Fprintf(&b, "reason %s %d\n", r, n)
		}
	}
	io.WriteString(w, b.String())
}
