package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
	"github.com/vishvananda/netlink"
)

// topoPrefix scopes the benchmark's topologies (rntxbn...), so that a run
// sweeps only what an earlier, killed run of it left.
const topoPrefix = "xbn"

// The benchmark's fixed addressing: two nodes on one underlay subnet, a
// pod subnet each. Every variant has its own topology (bridge, namespaces),
// so they all use the same addresses and carry frames of the same size.
var nodeSpecs = [2]nodeSpec{
	{name: "n1", addr: "192.168.50.1/24", pod4: "10.244.1.0/24"},
	{name: "n2", addr: "192.168.50.2/24", pod4: "10.244.2.0/24"},
}

const (
	sinkPort     = 9000  // trafgen's UDP destination, bound in the receiver pod
	sockperfPort = 11111 // sockperf server in the receiver pod
	iperfPort    = 5201  // iperf3 server in the receiver pod
)

// A variant is one datapath between a pod on node n1 and a pod on node n2.
type variant struct {
	ID   string
	Name string // short, for the tables
	Desc string // one line, for the reports
	// Wire is the size of the 60-byte benchmark frame on the underlay
	// (Ethernet, no FCS): the frame itself when routed, plus the
	// encapsulation's headers when tunnelled.
	Wire int
	Mode string // the cluster file's tunnel mode, for ringnet variants
	// Service: the sender sends to a ClusterIP whose one backend is the
	// receiver (64-byte pps only; latency and TCP are d's).
	Service bool
	build   func(ctx context.Context, e *env, s *setup) error
}

// serviceVIP is the ClusterIP of variant f's service.
var serviceVIP = netip.MustParseAddr("10.96.0.100")

var variants = []variant{
	{ID: "a", Name: "kernel host-gw", Wire: 60, build: buildHostGW,
		Desc: "Linux routing, as Flannel's host-gw backend: pods on a bridge (cni0) per node, `ip route add <remote pod CIDR> via <remote node>` on the uplink; pods, veths and cni0 at the uplink's MTU."},
	{ID: "b", Name: "kernel VXLAN", Wire: 110, build: buildFlannel,
		Desc: "Flannel's vxlan backend datapath: pods on cni0, the kernel's vxlan device flannel.1 (VNI 1, UDP 8472, nolearning) with static route, neighbour and FDB entries per peer; pods at flannel.1's MTU (uplink − 50)."},
	{ID: "c", Name: "ringnet direct", Wire: 60, Mode: "direct", build: buildRingnet,
		Desc: "ringnetd on both nodes, cluster file `tunnel: {mode: direct}`: pod frames routed to the peer's uplink MAC, no encapsulation."},
	{ID: "d", Name: "ringnet VXLAN", Wire: 110, Mode: "vxlan", build: buildRingnet,
		Desc: "ringnetd on both nodes, `tunnel: {mode: vxlan}` (Flannel-compatible: VNI 1, UDP 8472)."},
	{ID: "e", Name: "ringnet IPIP", Wire: 80, Mode: "ipip", build: buildRingnet,
		Desc: "ringnetd on both nodes, `tunnel: {mode: ipip}` (IPv4 in IPv4, protocol 4)."},
	{ID: "f", Name: "ringnet ClusterIP", Wire: 110, Mode: "vxlan", Service: true, build: buildRingnetService,
		Desc: "as (d), but the sender sends to a ClusterIP (10.96.0.100, UDP) whose one backend is the receiver: the sender's node translates every packet by its tracked connection (DNAT) before the tunnel. 64-byte pps only."},
}

func variantByID(id string) (variant, bool) {
	if i := slices.IndexFunc(variants, func(v variant) bool { return v.ID == id }); i >= 0 {
		return variants[i], true
	}
	return variant{}, false
}

// env is what every variant's setup shares.
type env struct {
	bins  ringnode.Binaries
	dir   string   // temporary folder: binaries, cluster files, trafgen configs
	flags []string // more ringnetd flags for the ringnet variants
}

// endpoint is a pod the benchmark sends from or to.
type endpoint struct {
	NS string
	IP netip.Addr
}

// setup is one variant's topology, built once and measured every round.
type setup struct {
	v          variant
	topo       *topo.Topology
	cl         *cluster // the ringnet and Flannel variants
	n1, n2     *topo.Node
	send, recv endpoint

	sink                    net.PacketConn  // bound in the receiver pod, never read
	sendNL, recvNL, n2NL    *netlink.Handle // netlink in the sender pod, receiver pod and n2
	trafgenConf             string
	podMTU                  int            // the sender pod's eth0
	kernelForwarding, vxlan bool           // what the receiving node's kernel must show (a, b)
	ringnetd                map[string]int // ringnetd's pid by node name (c, d, e)
}

// newSetup builds variant v's topology and pods. On error, what was built
// is in the setup and close removes it.
func newSetup(ctx context.Context, e *env, v variant) (*setup, error) {
	s := &setup{v: v}
	tp, err := topo.New(topoPrefix)
	if err != nil {
		return s, err
	}
	s.topo = tp
	if err := v.build(ctx, e, s); err != nil {
		return s, err
	}
	return s, s.prepare(ctx, e)
}

// buildHostGW makes two Flannel-style nodes without VXLAN: each routes the
// other's pod subnet through the other's underlay address, as Flannel's
// host-gw backend does, and pods get the uplink's MTU.
func buildHostGW(ctx context.Context, _ *env, s *setup) error {
	var fn [2]*topo.FlannelNode
	for i, spec := range nodeSpecs {
		var err error
		fn[i], err = s.topo.AddFlannelNode(spec.name, netip.MustParsePrefix(spec.addr), netip.MustParsePrefix(spec.pod4), topo.FlannelOptions{})
		if err != nil {
			return err
		}
		if err := uplinkChecksums(ctx, fn[i].Node); err != nil {
			return err
		}
		if _, err := fn[i].Output(ctx, "ip", "link", "del", fn[i].VXLAN); err != nil {
			return err
		}
	}
	for i := range nodeSpecs {
		peer := nodeSpecs[1-i]
		if _, err := fn[i].Output(ctx, "ip", "route", "add", peer.pod4, "via",
			netip.MustParsePrefix(peer.addr).Addr().String(), "dev", topo.Uplink); err != nil {
			return err
		}
	}
	pods, err := flannelPods(fn)
	if err != nil {
		return err
	}
	for i, p := range pods {
		steps := []struct{ ns, dev string }{{fn[i].NS, p.HostVeth}, {p.NS, p.Iface}, {fn[i].NS, fn[i].Bridge}}
		for _, st := range steps {
			if _, err := topo.Output(ctx, st.ns, "ip", "link", "set", "dev", st.dev, "mtu", "1500"); err != nil {
				return err
			}
		}
	}
	s.n1, s.n2 = fn[0].Node, fn[1].Node
	s.send, s.recv = endpoint{pods[0].NS, pods[0].IPv4}, endpoint{pods[1].NS, pods[1].IPv4}
	s.kernelForwarding = true
	return nil
}

// flannelPods adds the sender pod on the first node and the receiver pod
// on the second.
func flannelPods(fn [2]*topo.FlannelNode) ([2]*topo.Pod, error) {
	var pods [2]*topo.Pod
	for i, name := range []string{"tx", "rx"} {
		p, err := fn[i].AddPod(name)
		if err != nil {
			return pods, err
		}
		pods[i] = p
	}
	return pods, nil
}

// buildFlannel makes two nodes with Flannel's kernel VXLAN datapath,
// peered with each other.
func buildFlannel(ctx context.Context, e *env, s *setup) error {
	specs := nodeSpecs
	for i := range specs {
		specs[i].flannel = true
	}
	return s.cluster(ctx, e, "vxlan", specs[:], func(c *cluster) ([2]endpoint, error) {
		pods, err := flannelPods([2]*topo.FlannelNode{c.flannel["n1"], c.flannel["n2"]})
		if err != nil {
			return [2]endpoint{}, err
		}
		s.kernelForwarding, s.vxlan = true, true
		return [2]endpoint{{pods[0].NS, pods[0].IPv4}, {pods[1].NS, pods[1].IPv4}}, nil
	})
}

// buildRingnet starts ringnetd on two nodes with a cluster file in the
// variant's tunnel mode, and adds a pod on each through the CNI plugin.
func buildRingnet(ctx context.Context, e *env, s *setup) error {
	return s.cluster(ctx, e, s.v.Mode, nodeSpecs[:], func(c *cluster) ([2]endpoint, error) {
		var eps [2]endpoint
		for i, name := range []string{"tx", "rx"} {
			p, err := c.daemons[nodeSpecs[i].name].AddPod(ctx, name)
			if err != nil {
				return eps, err
			}
			eps[i] = endpoint{p.NS, p.IPv4}
		}
		return eps, nil
	})
}

// buildRingnetService is buildRingnet with a service in the cluster
// file whose one backend is the receiver pod, applied by reloading both
// daemons.
func buildRingnetService(ctx context.Context, e *env, s *setup) error {
	if err := buildRingnet(ctx, e, s); err != nil {
		return err
	}
	base, err := os.ReadFile(s.cl.file)
	if err != nil {
		return err
	}
	file := fmt.Sprintf("%s\nservices:\n- name: sink\n  clusterIPs: [%s]\n  ports: [{protocol: UDP, port: %d}]\n  endpoints: [{address: %s, node: n2}]\n",
		base, serviceVIP, sinkPort, s.recv.IP)
	for _, name := range s.cl.order {
		if err := s.cl.daemons[name].ReplaceCluster([]byte(file)); err != nil {
			return fmt.Errorf("ringnetd on %s: %w", name, err)
		}
	}
	return nil
}

// cluster builds the variant's nodes with newCluster and its pods with
// pods.
func (s *setup) cluster(ctx context.Context, e *env, mode string, specs []nodeSpec, pods func(*cluster) ([2]endpoint, error)) error {
	dir := filepath.Join(e.dir, s.v.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var flags []string
	if s.v.Mode != "" {
		flags = e.flags
	}
	c, err := newCluster(ctx, s.topo, e.bins, dir, mode, specs, flags...)
	if err != nil {
		return err
	}
	s.cl = c
	s.n1, s.n2 = c.nodes["n1"], c.nodes["n2"]
	eps, err := pods(c)
	if err != nil {
		return err
	}
	s.send, s.recv = eps[0], eps[1]
	return nil
}

// prepare opens the netlink handles, binds the receiver's sink and writes
// the trafgen config for the path the sender's kernel resolved.
func (s *setup) prepare(ctx context.Context, e *env) error {
	var err error
	if s.sendNL, err = counters.OpenNS(s.send.NS); err != nil {
		return err
	}
	if s.recvNL, err = counters.OpenNS(s.recv.NS); err != nil {
		return err
	}
	if s.n2NL, err = counters.OpenNS(s.n2.NS); err != nil {
		return err
	}
	if s.cl != nil && len(s.cl.order) > 0 {
		s.ringnetd = map[string]int{}
		for _, name := range s.cl.order {
			if s.ringnetd[name], err = ringnetdPID(ctx, s.cl.nodes[name].NS); err != nil {
				return err
			}
		}
	}
	// The receiver: a UDP socket bound to trafgen's destination port, so
	// that the pod's kernel takes the datagrams (and drops them when the
	// socket buffer is full) instead of answering each with ICMP port
	// unreachable. It is never read: a reader would only compete for the
	// two cores.
	err = topo.Do(s.recv.NS, func() error {
		var err error
		s.sink, err = net.ListenPacket("udp4", netip.AddrPortFrom(s.recv.IP, sinkPort).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("bind the UDP sink in the receiver pod: %w", err)
	}
	f, err := resolveFlow(ctx, s.send, s.recv)
	if err != nil {
		return err
	}
	if s.v.Service {
		f.Dst = serviceVIP // through the same gateway MAC
	}
	l, err := s.sendNL.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("sender pod: %w", err)
	}
	s.podMTU = l.Attrs().MTU
	s.trafgenConf = filepath.Join(e.dir, "udp64-"+s.v.ID+".trafgen")
	if err := os.WriteFile(s.trafgenConf, []byte(f.Config()), 0o644); err != nil {
		return fmt.Errorf("write trafgen config: %w", err)
	}
	return nil
}

// ringnetdPID finds the ringnetd process in a node's namespace.
func ringnetdPID(ctx context.Context, ns string) (int, error) {
	out, err := child.Run(ctx, "", "ip", "netns", "pids", ns)
	if err != nil {
		return 0, err
	}
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + f + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "ringnetd" {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no ringnetd process in %s", ns)
}

// probe reads each ringnetd's CPU time, in milliseconds, as
// "n1.ringnetd_cpu_ms"; nil for the kernel variants.
func (s *setup) probe() (map[string]uint64, error) {
	if s.ringnetd == nil {
		return nil, nil
	}
	m := map[string]uint64{}
	for name, pid := range s.ringnetd {
		ms, err := cpustat.Process(pid)
		if err != nil {
			return nil, fmt.Errorf("ringnetd on %s: %w", name, err)
		}
		m[name+".ringnetd_cpu_ms"] = ms
	}
	return m, nil
}

// close removes everything the setup made; it is safe on a half-built
// setup.
func (s *setup) close() error {
	var errs []error
	if s.sink != nil {
		s.sink.Close()
	}
	for _, h := range []*netlink.Handle{s.sendNL, s.recvNL, s.n2NL} {
		if h != nil {
			h.Close()
		}
	}
	if s.cl != nil {
		errs = append(errs, s.cl.stop())
	}
	if s.topo != nil {
		errs = append(errs, s.topo.Close())
	}
	return errors.Join(errs...)
}

// snapshot reads the counters that show which way the traffic went:
// always the receiving node's uplink; for the kernel variants the
// receiving node's IP forwarding count (and flannel.1's for VXLAN); for
// ringnet both daemons' counters, prefixed with the node's name.
func (s *setup) snapshot(ctx context.Context) (map[string]uint64, error) {
	m := map[string]uint64{}
	up, err := counters.ReadLink(s.n2NL, topo.Uplink)
	if err != nil {
		return nil, fmt.Errorf("n2: %w", err)
	}
	m["n2.uplink.rx_packets"], m["n2.uplink.rx_bytes"], m["n2.uplink.rx_dropped"] = up.RxPackets, up.RxBytes, up.RxDropped
	if s.kernelForwarding {
		if m["n2.ip_forw_datagrams"], err = counters.SNMP(ctx, s.n2.NS, "Ip", "ForwDatagrams"); err != nil {
			return nil, err
		}
	}
	if s.vxlan {
		vx, err := counters.ReadLink(s.n2NL, topo.FlannelVXLAN)
		if err != nil {
			return nil, fmt.Errorf("n2: %w", err)
		}
		m["n2.flannel.1.rx_packets"] = vx.RxPackets
	}
	if s.cl != nil {
		for _, name := range s.cl.order {
			d := s.cl.daemons[name]
			if _, err := d.Counters(); err != nil {
				return nil, fmt.Errorf("ringnetd on %s: %w", name, err)
			}
			c, err := counters.Ringnetd(d.Log())
			if err != nil {
				return nil, fmt.Errorf("ringnetd on %s: %w", name, err)
			}
			for k, v := range c {
				m[name+"."+portRole(k)] = v
			}
		}
	}
	return m, nil
}

// portRole names ringnetd's ports by role in a counter name: the node has
// one pod, whose port is named after its host veth (random), the uplink and
// the slow path's TAP: "port.rn8ed6a35dc48.x" becomes "port.pod.x".
func portRole(k string) string {
	kind, rest, ok := strings.Cut(k, ".")
	port, field, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || kind != "port" || port == topo.Uplink || port == "ringnet0" {
		return k
	}
	return "port.pod." + field
}

// counted runs fn between two snapshots of the path's counters and
// returns how much each counter grew.
func (s *setup) counted(ctx context.Context, fn func() error) (map[string]uint64, error) {
	before, err := s.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	if err := fn(); err != nil {
		return nil, err
	}
	after, err := s.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	return counters.Delta(before, after), nil
}

// minShare is how much of what reached the receiver pod the counters of
// the expected path must account for.
const minShare = 0.9

// checkPath proves from the counter deltas over a load that delivered
// frames went the variant's way, and returns the mean size of a frame on
// the receiving node's uplink.
func (s *setup) checkPath(d map[string]uint64, delivered uint64) (float64, error) {
	if delivered == 0 {
		return 0, errors.New("no frames reached the receiver pod")
	}
	need := func(what string, n uint64) error {
		if float64(n) < minShare*float64(delivered) {
			return fmt.Errorf("%s counted %d frames but %d reached the receiver pod: the traffic did not go this variant's way", what, n, delivered)
		}
		return nil
	}
	var errs []error
	pkts := d["n2.uplink.rx_packets"]
	errs = append(errs, need("n2's uplink", pkts))
	var wire float64
	if pkts > 0 {
		wire = float64(d["n2.uplink.rx_bytes"]) / float64(pkts)
		if s.cl != nil && len(s.cl.order) > 0 {
			// ringnetd's XDP program is on the uplink: a veth counts the
			// bytes of what it runs through XDP after the Ethernet header
			// is pulled (skb->len after eth_type_trans), 14 bytes short.
			wire += 14
		}
		if wire < float64(s.v.Wire)-2 || wire > float64(s.v.Wire)+2 {
			errs = append(errs, fmt.Errorf("frames on n2's uplink are %.1f bytes on average, want %d for %s", wire, s.v.Wire, s.v.Name))
		}
	}
	if s.kernelForwarding {
		errs = append(errs, need("n2's Ip ForwDatagrams", d["n2.ip_forw_datagrams"]))
	}
	if s.vxlan {
		errs = append(errs, need("n2's flannel.1", d["n2.flannel.1.rx_packets"]))
	}
	if s.cl != nil && len(s.cl.order) > 0 {
		errs = append(errs, need("ringnetd on n1, to_peer", d["n1.reason.to_peer"]))
		errs = append(errs, need("ringnetd on n2, from_peer", d["n2.reason.from_peer"]))
	}
	return wire, errors.Join(errs...)
}

// notDropped are ringnetd's reasons that are no loss.
var notDropped = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range stats.Reasons() {
		if !r.IsDrop() {
			m[r.String()] = true
		}
	}
	return m
}()

// losses picks from counter deltas what counts frames lost or turned away
// on the path: ringnetd's drop reasons and its sockets' drop counters, and
// for the kernel variants the receiving uplink's rx_dropped (with ringnetd
// on the uplink, that counts the XDP redirects its socket refused, which
// its own counters name).
func (s *setup) losses(d map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range d {
		if v > 0 && s.isLoss(k) {
			out[k] = v
		}
	}
	return out
}

// isLoss reports whether a snapshot counter ("n1.port.pod.xsk_rx_ring_full")
// counts lost frames. Left out: xsk_fill_ring_empty, the cause of (and
// counted again in) xsk_rx_dropped; the workers' drop totals, the sums of
// the drop reasons listed beside them.
func (s *setup) isLoss(k string) bool {
	_, rest, _ := strings.Cut(k, ".")
	kind, name, _ := strings.Cut(rest, ".")
	switch kind {
	case "uplink":
		return name == "rx_dropped" && s.ringnetd == nil
	case "reason":
		return !notDropped[name]
	case "port":
		return strings.Contains(name, ".xsk_") && !strings.HasSuffix(name, ".xsk_fill_ring_empty") ||
			strings.HasSuffix(name, ".tx_kick_errors")
	}
	return false
}
