package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/vishvananda/netlink"
)

// nsPrefix starts the name of every namespace this program makes:
// rnbench-PID-SEQ-ROLE. The PID lets a later run sweep namespaces left by a
// run that was killed outright (SIGKILL leaves no chance to clean up).
const nsPrefix = "rnbench-"

// The pods' fixed addressing. Names and addresses are private to the
// benchmark's own namespaces, so they need not be unique on the machine.
const (
	hostA, hostB = "rna", "rnb"
	sinkPort     = 9000  // trafgen's UDP destination port, bound in pod B
	sockperfPort = 11111 // sockperf server port in pod B
)

var (
	podAIP   = netip.MustParseAddr("10.244.0.10")
	podBIP   = netip.MustParseAddr("10.244.0.11")
	podAIP6  = netip.MustParseAddr("fd00::a")
	podBIP6  = netip.MustParseAddr("fd00::b")
	podAMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	podBMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	gwMAC    = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	gwIPv4   = "169.254.1.1"
	topoSeq  atomic.Int32
	nsNameRe = regexp.MustCompile(`^` + nsPrefix + `(\d+)-`)
	// flow is the benchmark's frame: pod A to pod B's sink, through the
	// gateway.
	flow = trafgen.Flow{SrcMAC: podAMAC, DstMAC: gwMAC, Src: podAIP, Dst: podBIP, SrcPort: 40000, DstPort: sinkPort}
)

// binaries are the programs built once at start.
type binaries struct {
	ringnet, ringnetd, asaviefwd, xdpgen string
}

// build compiles ringnet, ringnetd and asaviefwd into dir.
func build(ctx context.Context, root, dir string, logw io.Writer) (binaries, error) {
	b := binaries{
		ringnet:   filepath.Join(dir, "ringnet"),
		ringnetd:  filepath.Join(dir, "ringnetd"),
		asaviefwd: filepath.Join(dir, "asaviefwd"),
		xdpgen:    filepath.Join(dir, "xdpgen"),
	}
	for _, t := range []struct{ out, pkg string }{
		{b.ringnet, "./cmd/ringnet"},
		{b.ringnetd, "./cmd/ringnetd"},
		{b.asaviefwd, "./bench/asaviefwd"},
		{b.xdpgen, "./bench/xdpgen"},
	} {
		fmt.Fprintf(logw, "build %s\n", t.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// topo is the benchmark's one topology: a node namespace and two pod
// namespaces, each pod attached to the node by a veth made with
// "ringnet pod add" (the same code the CNI plugin runs).
//
//	pod A (eth0 10.244.0.10) ==veth== rna [node] rnb ==veth== (eth0 10.244.0.11) pod B
//
// What forwards between rna and rnb is the variant's business.
type topo struct {
	node, podA, podB string // namespace names
	bin              binaries
	dir              string // temp dir: binaries, configs
	procs            child.Group
	logw             io.Writer

	sink                  net.PacketConn  // UDP socket bound in pod B, never read
	nodeNL, podANL, podBN *netlink.Handle // netlink sockets inside each namespace
	made                  []string        // namespaces created, for cleanup

	trafgenConf string // trafgen config file
	frameFile   string // the same frame, raw, for xdpgen
	podsFile    string // ringnetd pods file
}

// newTopo builds the topology. On error, whatever was built is in t and
// t.cleanup removes it; callers defer cleanup before checking the error.
func newTopo(ctx context.Context, bin binaries, dir string, logw io.Writer) (*topo, error) {
	base := fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), topoSeq.Add(1))
	t := &topo{node: base + "node", podA: base + "a", podB: base + "b", bin: bin, dir: dir, logw: logw}
	return t, t.setup(ctx)
}

func (t *topo) setup(ctx context.Context) error {
	for _, n := range []string{t.node, t.podA, t.podB} {
		if _, err := child.Run(ctx, "", "ip", "netns", "add", n); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
		t.made = append(t.made, n)
		if _, err := child.Run(ctx, n, "ip", "link", "set", "lo", "up"); err != nil {
			return fmt.Errorf("namespace %s: %w", n, err)
		}
	}
	for _, p := range []struct {
		ns, hostIf string
		ip, ip6    netip.Addr
		mac        net.HardwareAddr
	}{
		{t.podA, hostA, podAIP, podAIP6, podAMAC},
		{t.podB, hostB, podBIP, podBIP6, podBMAC},
	} {
		out, err := child.Run(ctx, t.node, t.bin.ringnet, "pod", "add", "--netns", "/run/netns/"+p.ns,
			"--host-if", p.hostIf, "--ipv4", p.ip.String(), "--ipv6", p.ip6.String(), "--mac", p.mac.String())
		if err != nil {
			return fmt.Errorf("create pod port %s: %w", p.hostIf, err)
		}
		var port struct {
			MAC string `json:"mac"`
		}
		if err := json.Unmarshal([]byte(lastLine(out)), &port); err != nil || !strings.EqualFold(port.MAC, p.mac.String()) {
			return fmt.Errorf("create pod port %s: ringnet pod add printed %q, want a port with mac %s", p.hostIf, strings.TrimSpace(out), p.mac)
		}
	}
	// rp_filter off everywhere in the node: only the kernel-routing variant
	// looks at it, and it must not drop what the pods send.
	if _, err := child.Run(ctx, t.node, "sysctl", "-q", "-w",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf."+hostA+".rp_filter=0", "net.ipv4.conf."+hostB+".rp_filter=0",
		"net.ipv4.ip_forward=0"); err != nil {
		return fmt.Errorf("node sysctls: %w", err)
	}

	var err error
	if t.nodeNL, err = counters.OpenNS(t.node); err != nil {
		return err
	}
	if t.podANL, err = counters.OpenNS(t.podA); err != nil {
		return err
	}
	if t.podBN, err = counters.OpenNS(t.podB); err != nil {
		return err
	}

	// The receiver: a UDP socket bound to trafgen's destination port in pod
	// B, so that pod B's kernel takes the datagrams (and drops them when the
	// socket buffer is full, counted as UdpRcvbufErrors) instead of
	// answering each with ICMP port unreachable. It is never read: reading
	// would only add a competing process on a 2-core machine.
	err = ns.WithNetNSPath("/run/netns/"+t.podB, func(ns.NetNS) error {
		var err error
		t.sink, err = net.ListenPacket("udp4", netip.AddrPortFrom(podBIP, sinkPort).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("bind UDP receiver in pod B: %w", err)
	}

	t.trafgenConf = filepath.Join(t.dir, "udp64.trafgen")
	if err := os.WriteFile(t.trafgenConf, []byte(flow.Config()), 0o644); err != nil {
		return fmt.Errorf("write trafgen config: %w", err)
	}
	t.frameFile = filepath.Join(t.dir, "udp64.frame")
	if err := os.WriteFile(t.frameFile, flow.Frame(), 0o644); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	t.podsFile = filepath.Join(t.dir, "pods.yaml")
	pods := fmt.Sprintf("pods:\n"+
		"- {name: a, hostInterface: %s, mac: %q, ipv4: %s, ipv6: %q}\n"+
		"- {name: b, hostInterface: %s, mac: %q, ipv4: %s, ipv6: %q}\n",
		hostA, podAMAC, podAIP, podAIP6, hostB, podBMAC, podBIP, podBIP6)
	if err := os.WriteFile(t.podsFile, []byte(pods), 0o644); err != nil {
		return fmt.Errorf("write pods file: %w", err)
	}
	return nil
}

// cleanup stops every process and removes every namespace; it is safe on a
// half-built topology and safe to call twice.
func (t *topo) cleanup() {
	t.procs.KillAll()
	if t.sink != nil {
		t.sink.Close()
		t.sink = nil
	}
	for _, h := range []*netlink.Handle{t.nodeNL, t.podANL, t.podBN} {
		if h != nil {
			h.Close()
		}
	}
	t.nodeNL, t.podANL, t.podBN = nil, nil, nil
	// Cleanup must run even when the run's context was cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(t.made) - 1; i >= 0; i-- {
		child.KillNS(ctx, t.made[i])
		if _, err := child.Run(ctx, "", "ip", "netns", "del", t.made[i]); err != nil {
			fmt.Fprintf(t.logw, "cleanup: %v\n", err)
		}
	}
	t.made = nil
}

// xdpAttached reports whether an XDP program is attached to a node link.
func (t *topo) xdpAttached(ifname string) (bool, error) {
	l, err := t.nodeNL.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", ifname, err)
	}
	return l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached, nil
}

// sysctl reads one sysctl in a namespace.
func sysctl(ctx context.Context, nsName, key string) (string, error) {
	out, err := child.Run(ctx, nsName, "sysctl", "-n", key)
	return strings.TrimSpace(out), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
