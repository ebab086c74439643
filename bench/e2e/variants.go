package main

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/vishvananda/netlink"
)

// A variant is one way of forwarding between pod A and pod B over the same
// veths.
type variant struct {
	ID      string
	Name    string // short, for the table
	Desc    string // one line, for the reports
	Latency bool   // whether sockperf runs for it
	start   func(ctx context.Context, t *topo) (instance, error)
}

// An instance is a variant set up and forwarding.
type instance interface {
	// check runs after the throughput window, when delivered frames have
	// reached pod B since the instance started. It proves that the
	// variant, and nothing else, carried them, and returns its counters.
	check(ctx context.Context, delivered uint64) (map[string]uint64, error)
	// stop undoes start and returns the final counters. It is called once,
	// also after a failed check.
	stop(ctx context.Context) (map[string]uint64, error)
}

var variants = []variant{
	{ID: "a", Name: "kernel routing", Latency: true, start: startKernel,
		Desc: "Linux forwards between the host-side veths: ip_forward=1, a /32 route per pod, rp_filter off, permanent neighbours; no XDP."},
	{ID: "b", Name: "asavie/xdp fwd", Latency: false, start: startAsavie,
		Desc: "bench/asaviefwd: github.com/asavie/xdp v0.3.3, default options, one socket per veth, copy between UMEMs, MAC rewrite only."},
	{ID: "c", Name: "ringnetd", Latency: true, start: ringnetdStarter("c"),
		Desc: "ringnetd with default flags (interrupt-driven: workers sleep in poll(2) when idle, not pinned)."},
	{ID: "d", Name: "ringnetd busy-poll", Latency: true, start: ringnetdStarter("d", "--busy-poll", "--cpus", "1"),
		Desc: "ringnetd --busy-poll --cpus 1: one worker spinning on its rings, pinned to CPU 1 (trafgen is on CPU 0)."},
}

func variantByID(id string) (variant, bool) {
	for _, v := range variants {
		if v.ID == id {
			return v, true
		}
	}
	return variant{}, false
}

// preflight checks that the node is neutral before a variant starts: no XDP
// on the host veths, no forwarding, no routes to the pods. Anything else
// means the previous variant did not clean up, and its leftovers would carry
// (or block) this variant's traffic.
func (t *topo) preflight(ctx context.Context) error {
	for _, ifname := range []string{hostA, hostB} {
		on, err := t.xdpAttached(ifname)
		if err != nil {
			return err
		}
		if on {
			return fmt.Errorf("an XDP program is still attached to %s from an earlier variant", ifname)
		}
	}
	if v, err := sysctl(ctx, t.node, "net.ipv4.ip_forward"); err != nil {
		return err
	} else if v != "0" {
		return fmt.Errorf("node net.ipv4.ip_forward=%s, want 0 between variants", v)
	}
	return t.checkNoPodRoutes()
}

// checkNoPodRoutes fails if the node's kernel has a route to either pod,
// other than through ringnetd's slow-path TAP (ringnet0): that route leads
// back into ringnetd, for host ↔ pod traffic; the kernel cannot forward
// between the pods over it (ip_forward is 0 and both pods are behind it).
func (t *topo) checkNoPodRoutes() error {
	routes, err := t.nodeNL.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list node routes: %w", err)
	}
	tap := -1
	if l, err := t.nodeNL.LinkByName("ringnet0"); err == nil {
		tap = l.Attrs().Index
	}
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == tap {
			continue
		}
		for _, ip := range []netip.Addr{podAIP, podBIP} {
			if r.Dst.Contains(ip.AsSlice()) {
				return fmt.Errorf("the node has a kernel route to pod %s (%s)", ip, r.Dst)
			}
		}
	}
	return nil
}

// postflight checks that a variant's stop detached its XDP programs; if not,
// it detaches them so that later variants run on clean veths, and reports it.
func (t *topo) postflight(ctx context.Context) error {
	var left []string
	for _, ifname := range []string{hostA, hostB} {
		on, err := t.xdpAttached(ifname)
		if err != nil {
			return err
		}
		if on {
			left = append(left, ifname)
			_, _ = child.Run(ctx, t.node, "ip", "link", "set", "dev", ifname, "xdp", "off")
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("XDP programs left attached to %s after shutdown (removed by the benchmark)", strings.Join(left, ", "))
	}
	return nil
}

// minShare is how much of what reached pod B a forwarder's own counter must
// account for: anything far below means something else carried the traffic.
const minShare = 0.9

func checkShare(what string, counted, delivered uint64) error {
	if delivered == 0 {
		return fmt.Errorf("no frames reached pod B")
	}
	if float64(counted) < minShare*float64(delivered) {
		return fmt.Errorf("%s counted %d frames but %d reached pod B: the traffic did not go through this variant", what, counted, delivered)
	}
	return nil
}

func expectForwarding(ctx context.Context, node, want string) error {
	v, err := sysctl(ctx, node, "net.ipv4.ip_forward")
	if err != nil {
		return err
	}
	if v != want {
		return fmt.Errorf("node net.ipv4.ip_forward=%s, want %s", v, want)
	}
	return nil
}

// podNeighbours installs (or removes) the permanent neighbour entry for the
// gateway in both pods. Kernel routing and the asavie forwarder need it: no
// one answers ARP for 169.254.1.1 there. ringnetd answers ARP itself, so its
// variants run without it.
func (t *topo) podNeighbours(ctx context.Context, install bool) error {
	for _, p := range []string{t.podA, t.podB} {
		if install {
			if _, err := child.Run(ctx, p, "ip", "neigh", "replace", gwIPv4, "dev", "eth0", "lladdr", gwMAC.String(), "nud", "permanent"); err != nil {
				return fmt.Errorf("gateway neighbour in %s: %w", p, err)
			}
			continue
		}
		_, _ = child.Run(ctx, p, "ip", "neigh", "del", gwIPv4, "dev", "eth0")
	}
	return nil
}

// (a) kernel routing.

type kernelInst struct {
	t        *topo
	forward0 uint64 // Ip ForwDatagrams at start
}

func startKernel(ctx context.Context, t *topo) (instance, error) {
	k := &kernelInst{t: t}
	steps := [][]string{
		{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{"ip", "route", "replace", podAIP.String() + "/32", "dev", hostA},
		{"ip", "route", "replace", podBIP.String() + "/32", "dev", hostB},
		// Permanent neighbours for the pods, as Calico programs them: the
		// host veths have no IPv4 address to ARP from.
		{"ip", "neigh", "replace", podAIP.String(), "dev", hostA, "lladdr", podAMAC.String(), "nud", "permanent"},
		{"ip", "neigh", "replace", podBIP.String(), "dev", hostB, "lladdr", podBMAC.String(), "nud", "permanent"},
	}
	for _, s := range steps {
		if _, err := child.Run(ctx, t.node, s...); err != nil {
			k.stop(ctx)
			return nil, fmt.Errorf("set up kernel routing: %w", err)
		}
	}
	if err := t.podNeighbours(ctx, true); err != nil {
		k.stop(ctx)
		return nil, err
	}
	var err error
	if k.forward0, err = counters.SNMP(ctx, t.node, "Ip", "ForwDatagrams"); err != nil {
		k.stop(ctx)
		return nil, err
	}
	return k, nil
}

func (k *kernelInst) check(ctx context.Context, delivered uint64) (map[string]uint64, error) {
	if err := expectForwarding(ctx, k.t.node, "1"); err != nil {
		return nil, err
	}
	fwd, err := counters.SNMP(ctx, k.t.node, "Ip", "ForwDatagrams")
	if err != nil {
		return nil, err
	}
	c := map[string]uint64{"ip_forw_datagrams": fwd - k.forward0}
	return c, checkShare("the node's Ip ForwDatagrams", fwd-k.forward0, delivered)
}

func (k *kernelInst) stop(ctx context.Context) (map[string]uint64, error) {
	var first error
	for _, s := range [][]string{
		{"sysctl", "-q", "-w", "net.ipv4.ip_forward=0"},
		{"ip", "route", "del", podAIP.String() + "/32", "dev", hostA},
		{"ip", "route", "del", podBIP.String() + "/32", "dev", hostB},
		{"ip", "neigh", "del", podAIP.String(), "dev", hostA},
		{"ip", "neigh", "del", podBIP.String(), "dev", hostB},
	} {
		if _, err := child.Run(ctx, k.t.node, s...); err != nil && first == nil && s[0] == "sysctl" {
			first = fmt.Errorf("undo kernel routing: %w", err)
		}
	}
	k.t.podNeighbours(ctx, false)
	return nil, first
}

// (b) the asavie/xdp forwarder.

type asavieInst struct {
	t         *topo
	p         *child.Proc
	delivered uint64 // set by check, verified against the exit counters
}

func startAsavie(ctx context.Context, t *topo) (instance, error) {
	if err := t.podNeighbours(ctx, true); err != nil {
		return nil, err
	}
	p, err := t.procs.Start("asaviefwd", t.node, t.bin.asaviefwd,
		"--a", hostA, "--b", hostB, "--a-mac", podAMAC.String(), "--b-mac", podBMAC.String())
	if err != nil {
		t.podNeighbours(ctx, false)
		return nil, err
	}
	a := &asavieInst{t: t, p: p}
	if err := p.WaitFor(ctx, "forwarding", 15*time.Second, func(_, e string) bool { return strings.Contains(e, "msg=forwarding") }); err != nil {
		a.stop(ctx)
		return nil, err
	}
	return a, nil
}

func (a *asavieInst) check(ctx context.Context, delivered uint64) (map[string]uint64, error) {
	if a.p.Exited() {
		return nil, fmt.Errorf("asaviefwd exited during the run (%v)%s", a.p.Err(), a.p.Tail())
	}
	a.delivered = delivered
	// asaviefwd prints its counters when it exits; stop checks them.
	return nil, expectForwarding(ctx, a.t.node, "0")
}

var asavieCounters = regexp.MustCompile(`asaviefwd( [a-z_]+=\d+)+`)

func (a *asavieInst) stop(ctx context.Context) (map[string]uint64, error) {
	defer a.t.podNeighbours(ctx, false)
	clean := a.p.Stop(syscall.SIGINT, 10*time.Second)
	if !clean {
		return nil, fmt.Errorf("asaviefwd did not exit within 10s of SIGINT (killed)%s", a.p.Tail())
	}
	if a.p.Err() != nil {
		return nil, fmt.Errorf("asaviefwd failed: %v%s", a.p.Err(), a.p.Tail())
	}
	line := asavieCounters.FindString(a.p.Stdout())
	c := map[string]uint64{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				c[k] = n
			}
		}
	}
	if _, ok := c["a_to_b"]; !ok {
		return nil, fmt.Errorf("asaviefwd printed no counters%s", a.p.Tail())
	}
	if a.delivered > 0 {
		return c, checkShare("asaviefwd a_to_b", c["a_to_b"], a.delivered)
	}
	return c, nil
}

// (c), (d) ringnetd.

type ringnetdInst struct {
	t *topo
	p *child.Proc
}

func ringnetdStarter(id string, flags ...string) func(context.Context, *topo) (instance, error) {
	return func(ctx context.Context, t *topo) (instance, error) {
		t.podNeighbours(ctx, false)
		args := append([]string{t.bin.ringnetd, "--pods", t.podsFile}, flags...)
		p, err := t.procs.Start("ringnetd ("+id+")", t.node, args...)
		if err != nil {
			return nil, err
		}
		r := &ringnetdInst{t: t, p: p}
		if err := p.WaitFor(ctx, "msg=forwarding", 20*time.Second, func(_, e string) bool { return strings.Contains(e, "msg=forwarding") }); err != nil {
			r.stop(ctx)
			return nil, err
		}
		return r, nil
	}
}

func (r *ringnetdInst) check(ctx context.Context, delivered uint64) (map[string]uint64, error) {
	if r.p.Exited() {
		return nil, fmt.Errorf("ringnetd exited during the run (%v)%s", r.p.Err(), r.p.Tail())
	}
	if err := expectForwarding(ctx, r.t.node, "0"); err != nil {
		return nil, err
	}
	if err := r.t.checkNoPodRoutes(); err != nil {
		return nil, err
	}
	before := strings.Count(r.p.Stdout(), "counters\n")
	r.p.Signal(syscall.SIGUSR1)
	if err := r.p.WaitFor(ctx, "counters after SIGUSR1", 5*time.Second, func(o, _ string) bool { return strings.Count(o, "counters\n") > before }); err != nil {
		return nil, err
	}
	time.Sleep(50 * time.Millisecond) // let the rest of the block arrive
	c, err := counters.Ringnetd(r.p.Stdout())
	if err != nil {
		return nil, err
	}
	return c, checkShare("ringnetd's reason forwarded", c["reason.forwarded"], delivered)
}

func (r *ringnetdInst) stop(ctx context.Context) (map[string]uint64, error) {
	clean := r.p.Stop(syscall.SIGTERM, 15*time.Second)
	if !clean {
		return nil, fmt.Errorf("ringnetd did not exit within 15s of SIGTERM (killed)%s", r.p.Tail())
	}
	if r.p.Err() != nil {
		return nil, fmt.Errorf("ringnetd failed: %v%s", r.p.Err(), r.p.Tail())
	}
	return counters.Ringnetd(r.p.Stdout())
}
