package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/counters"
	"github.com/ringnet/ringnet/bench/internal/cpustat"
	"github.com/ringnet/ringnet/bench/internal/figure"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
	"github.com/vishvananda/netlink"
)

// Pair is the two nodes of a Bed, on one underlay subnet, with a pod
// subnet each. Every Bed has its own topology (bridge, namespaces), so
// they all use the same addresses and carry frames of the same size.
var Pair = [2]NodeSpec{
	{Name: "n1", Addr: "192.168.50.1/24", Pod4: "10.244.1.0/24"},
	{Name: "n2", Addr: "192.168.50.2/24", Pod4: "10.244.2.0/24"},
}

// SenderPort is the UDP source port of the sender's flow.
const SenderPort = 40000

// Endpoint is a pod a benchmark sends from or to.
type Endpoint struct {
	NS string
	IP netip.Addr
}

// Bed is a sender pod on node n1 and a receiver pod on node n2 (Pair),
// built by one of HostGW, FlannelVXLAN and Ringnet, then opened with Open.
type Bed struct {
	Topo       *topo.Topology
	Cluster    *Cluster // Flannel and ringnet nodes; nil for host-gw
	N1, N2     *topo.Node
	Send, Recv Endpoint

	// SendNL, RecvNL and N2NL are netlink in the sender pod, the receiver
	// pod and n2 (Open).
	SendNL, RecvNL, N2NL *netlink.Handle
	PodMTU               int            // the sender pod's eth0 (Open)
	Ringnetd             map[string]int // ringnetd's pid by node name; nil for kernel nodes (Open)
	// Extra, if set, reads more counters for Snapshot, e.g. the receiving
	// node's firewall rules.
	Extra func(ctx context.Context) (map[string]uint64, error)
	// XDPGen, if set, is the bench/xdpgen binary Load sends with instead
	// of trafgen, from the frame WriteFlow wrote beside the trafgen config.
	XDPGen string

	kernelForwarding, vxlan bool                      // what the receiving node's kernel must show
	sinks                   map[uint16]net.PacketConn // by port, bound in the receiver pod, never read
	newFlows                map[string]bool           // WriteFlow's configs whose flow has NewFlows
}

// New makes an empty Bed on a new topology whose names start with
// prefix; the caller builds its nodes with one of HostGW, FlannelVXLAN
// and Ringnet.
func New(prefix string) (*Bed, error) {
	tp, err := topo.New(prefix)
	if err != nil {
		return nil, err
	}
	return &Bed{Topo: tp}, nil
}

// HostGW makes two Flannel-style nodes without VXLAN: each routes the
// other's pod subnet through the other's underlay address, as Flannel's
// host-gw backend does, and pods get the uplink's MTU.
func (b *Bed) HostGW(ctx context.Context) error {
	var fn [2]*topo.FlannelNode
	for i, spec := range Pair {
		var err error
		fn[i], err = b.Topo.AddFlannelNode(spec.Name, netip.MustParsePrefix(spec.Addr), netip.MustParsePrefix(spec.Pod4), topo.FlannelOptions{})
		if err != nil {
			return err
		}
		if err := UplinkChecksums(ctx, fn[i].Node); err != nil {
			return err
		}
		if _, err := fn[i].Output(ctx, "ip", "link", "del", fn[i].VXLAN); err != nil {
			return err
		}
	}
	for i := range Pair {
		peer := Pair[1-i]
		if _, err := fn[i].Output(ctx, "ip", "route", "add", peer.Pod4, "via",
			netip.MustParsePrefix(peer.Addr).Addr().String(), "dev", topo.Uplink); err != nil {
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
	b.N1, b.N2 = fn[0].Node, fn[1].Node
	b.Send, b.Recv = Endpoint{pods[0].NS, pods[0].IPv4}, Endpoint{pods[1].NS, pods[1].IPv4}
	b.kernelForwarding = true
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

// FlannelVXLAN makes two nodes with Flannel's kernel VXLAN datapath,
// peered with each other; dir holds the cluster file.
func (b *Bed) FlannelVXLAN(ctx context.Context, bins ringnode.Binaries, dir string) error {
	specs := Pair
	for i := range specs {
		specs[i].Flannel = true
	}
	if err := b.cluster(ctx, bins, dir, "vxlan", specs[:], nil); err != nil {
		return err
	}
	pods, err := flannelPods([2]*topo.FlannelNode{b.Cluster.Flannel["n1"], b.Cluster.Flannel["n2"]})
	if err != nil {
		return err
	}
	b.Send, b.Recv = Endpoint{pods[0].NS, pods[0].IPv4}, Endpoint{pods[1].NS, pods[1].IPv4}
	b.kernelForwarding, b.vxlan = true, true
	return nil
}

// Ringnet starts ringnetd, with more flags args, on two nodes with a
// cluster file in tunnel mode mode, written into dir, and adds a pod on
// each through the CNI plugin.
func (b *Bed) Ringnet(ctx context.Context, bins ringnode.Binaries, dir, mode string, args []string) error {
	if err := b.cluster(ctx, bins, dir, mode, Pair[:], args); err != nil {
		return err
	}
	var eps [2]Endpoint
	for i, name := range []string{"tx", "rx"} {
		p, err := b.Cluster.Daemons[Pair[i].Name].AddPod(ctx, name)
		if err != nil {
			return err
		}
		eps[i] = Endpoint{p.NS, p.IPv4}
	}
	b.Send, b.Recv = eps[0], eps[1]
	return nil
}

// cluster builds the Bed's nodes with NewCluster.
func (b *Bed) cluster(ctx context.Context, bins ringnode.Binaries, dir, mode string, specs []NodeSpec, args []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c, err := NewCluster(ctx, b.Topo, bins, dir, mode, specs, args...)
	if err != nil {
		return err
	}
	b.Cluster = c
	b.N1, b.N2 = c.Nodes["n1"], c.Nodes["n2"]
	return nil
}

// Open opens the netlink handles, finds the ringnetd processes and reads
// the sender pod's MTU.
func (b *Bed) Open(ctx context.Context) error {
	var err error
	if b.SendNL, err = counters.OpenNS(b.Send.NS); err != nil {
		return err
	}
	if b.RecvNL, err = counters.OpenNS(b.Recv.NS); err != nil {
		return err
	}
	if b.N2NL, err = counters.OpenNS(b.N2.NS); err != nil {
		return err
	}
	if b.ringnet() {
		b.Ringnetd = map[string]int{}
		for _, name := range b.Cluster.Order {
			if b.Ringnetd[name], err = ringnetdPID(ctx, b.Cluster.Nodes[name].NS); err != nil {
				return err
			}
		}
	}
	l, err := b.SendNL.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("sender pod: %w", err)
	}
	b.PodMTU = l.Attrs().MTU
	return nil
}

// ringnet reports whether the nodes run ringnetd.
func (b *Bed) ringnet() bool { return b.Cluster != nil && len(b.Cluster.Order) > 0 }

// Namespaces are the network namespaces of the Bed's nodes and pods.
func (b *Bed) Namespaces() []string {
	return []string{b.N1.NS, b.N2.NS, b.Send.NS, b.Recv.NS}
}

// Sink binds a UDP socket in the receiver pod to each port from lo to hi,
// so that the pod's kernel takes the datagrams (and drops them when the
// socket buffer is full) instead of answering each with ICMP port
// unreachable. They are never read: a reader would only compete for the
// two cores.
func (b *Bed) Sink(lo, hi uint16) error {
	if b.sinks == nil {
		b.sinks = map[uint16]net.PacketConn{}
	}
	return topo.Do(b.Recv.NS, func() error {
		for port := int(lo); port <= int(hi); port++ {
			c, err := net.ListenPacket("udp4", netip.AddrPortFrom(b.Recv.IP, uint16(port)).String())
			if err != nil {
				return fmt.Errorf("bind the UDP sink in the receiver pod: %w", err)
			}
			b.sinks[uint16(port)] = c
		}
		return nil
	})
}

// Answer has the receiver answer the sender's flow to port as a server
// would: one datagram from its sink on port (Sink) to the sender's
// SenderPort, which a socket bound there in the sender pod must receive
// within a second. A stateful firewall on the way then holds the flow as
// a connection with a reply: established.
func (b *Bed) Answer(port uint16) error {
	sink, ok := b.sinks[port]
	if !ok {
		return fmt.Errorf("answer from port %d: no sink bound there", port)
	}
	var c net.PacketConn
	err := topo.Do(b.Send.NS, func() error {
		var err error
		c, err = net.ListenPacket("udp4", netip.AddrPortFrom(b.Send.IP, SenderPort).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("answer: bind the sender's port: %w", err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.Send.IP, SenderPort))
	if _, err := sink.WriteTo([]byte("answer"), to); err != nil {
		return fmt.Errorf("answer from the receiver's port %d: %w", port, err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, err := c.ReadFrom(make([]byte, 64)); err != nil {
		return fmt.Errorf("the receiver's answer from port %d did not reach the sender: %w", port, err)
	}
	return nil
}

// Probe sends n datagrams from the sender pod (from a port of its
// kernel's choosing) to the receiver's port.
func (b *Bed) Probe(port uint16, n int) error {
	return topo.Do(b.Send.NS, func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.Recv.IP, port)))
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("probe")); err != nil {
				return fmt.Errorf("send to the receiver's port %d: %w", port, err)
			}
		}
		return nil
	})
}

// WriteFlow writes f's trafgen config to the file path: f as ResolveFlow
// gives it for this Bed, changed by edit.
func (b *Bed) WriteFlow(ctx context.Context, path string, edit func(*trafgen.Flow)) (trafgen.Flow, error) {
	f, err := ResolveFlow(ctx, b.Send, b.Recv)
	if err != nil {
		return f, err
	}
	edit(&f)
	if err := os.WriteFile(path, []byte(f.Config()), 0o644); err != nil {
		return f, fmt.Errorf("write trafgen config: %w", err)
	}
	if err := os.WriteFile(path+".frame", f.Frame(), 0o644); err != nil {
		return f, fmt.Errorf("write the frame for xdpgen: %w", err)
	}
	if b.newFlows == nil {
		b.newFlows = map[string]bool{}
	}
	b.newFlows[path] = f.NewFlows
	return f, nil
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

// DaemonCPU reads each ringnetd's CPU time, in milliseconds, as
// "n1.ringnetd_cpu_ms"; nil for kernel nodes.
func (b *Bed) DaemonCPU() (map[string]uint64, error) {
	if b.Ringnetd == nil {
		return nil, nil
	}
	m := map[string]uint64{}
	for name, pid := range b.Ringnetd {
		ms, err := cpustat.Process(pid)
		if err != nil {
			return nil, fmt.Errorf("ringnetd on %s: %w", name, err)
		}
		m[name+".ringnetd_cpu_ms"] = ms
	}
	return m, nil
}

// Close removes everything the Bed made; it is safe on a half-built Bed.
func (b *Bed) Close() error {
	var errs []error
	for _, c := range b.sinks {
		c.Close()
	}
	for _, h := range []*netlink.Handle{b.SendNL, b.RecvNL, b.N2NL} {
		if h != nil {
			h.Close()
		}
	}
	if b.Cluster != nil {
		errs = append(errs, b.Cluster.Stop())
	}
	if b.Topo != nil {
		errs = append(errs, b.Topo.Close())
	}
	return errors.Join(errs...)
}

// Snapshot reads the counters that show which way the traffic went:
// always the receiving node's uplink; on kernel nodes the receiving
// node's IP forwarding count (and flannel.1's for VXLAN); on ringnet
// nodes both daemons' counters, prefixed with the node's name; and Extra's.
func (b *Bed) Snapshot(ctx context.Context) (map[string]uint64, error) {
	m := map[string]uint64{}
	up, err := counters.ReadLink(b.N2NL, topo.Uplink)
	if err != nil {
		return nil, fmt.Errorf("n2: %w", err)
	}
	m["n2.uplink.rx_packets"], m["n2.uplink.rx_bytes"], m["n2.uplink.rx_dropped"] = up.RxPackets, up.RxBytes, up.RxDropped
	if b.kernelForwarding {
		if m["n2.ip_forw_datagrams"], err = counters.SNMP(ctx, b.N2.NS, "Ip", "ForwDatagrams"); err != nil {
			return nil, err
		}
	}
	if b.vxlan {
		vx, err := counters.ReadLink(b.N2NL, topo.FlannelVXLAN)
		if err != nil {
			return nil, fmt.Errorf("n2: %w", err)
		}
		m["n2.flannel.1.rx_packets"] = vx.RxPackets
	}
	if b.ringnet() {
		for _, name := range b.Cluster.Order {
			d := b.Cluster.Daemons[name]
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
	if b.Extra != nil {
		x, err := b.Extra(ctx)
		if err != nil {
			return nil, err
		}
		for k, v := range x {
			m[k] = v
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

// Counted runs fn between two snapshots of the path's counters and
// returns how much each counter grew.
func (b *Bed) Counted(ctx context.Context, fn func() error) (map[string]uint64, error) {
	before, err := b.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	if err := fn(); err != nil {
		return nil, err
	}
	after, err := b.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	return counters.Delta(before, after), nil
}

// Load runs trafgen with config conf in the sender pod (one worker, on
// CPU 0) and measures what the receiver pod's eth0 gets over window,
// after warmup; it returns the figures and how the path's counters grew
// over the whole load.
func (b *Bed) Load(ctx context.Context, procs *child.Group, conf string, warmup, window time.Duration, log io.Writer) (trafgen.Throughput, map[string]uint64, error) {
	var tp trafgen.Throughput
	d, err := b.Counted(ctx, func() error {
		rx0, err := counters.ReadLink(b.RecvNL, "eth0")
		if err != nil {
			return err
		}
		l := trafgen.Load{Procs: procs, NS: b.Send.NS, Conf: conf, CPU: 0, Ifname: "eth0",
			Sender: b.SendNL, Receiver: b.RecvNL, Log: log, Probe: b.DaemonCPU}
		if b.XDPGen != "" {
			l.XDPGen = &trafgen.XDPGen{Bin: b.XDPGen, Frame: conf + ".frame", NewFlows: b.newFlows[conf]}
		}
		tp, err = l.Measure(ctx, rx0.RxPackets, warmup, window)
		return err
	})
	return tp, d, err
}

// MinShare is how much of what reached the receiver pod the counters of
// the expected path must account for.
const MinShare = 0.9

// Need says, unless n accounts for MinShare of delivered, that the
// counter what saw too little for the traffic to have gone its way.
func Need(what string, n, delivered uint64) error {
	if float64(n) < MinShare*float64(delivered) {
		return fmt.Errorf("%s counted %d frames but %d reached the receiver pod: the traffic did not go this way", what, n, delivered)
	}
	return nil
}

// CheckPath proves from the counter deltas over a load that delivered
// frames went the Bed's way at wire bytes a frame on the underlay, and
// returns the mean size of a frame on the receiving node's uplink.
func (b *Bed) CheckPath(d map[string]uint64, delivered uint64, wire int) (float64, error) {
	if delivered == 0 {
		return 0, errors.New("no frames reached the receiver pod")
	}
	var errs []error
	pkts := d["n2.uplink.rx_packets"]
	errs = append(errs, Need("n2's uplink", pkts, delivered))
	var mean float64
	if pkts > 0 {
		mean = float64(d["n2.uplink.rx_bytes"]) / float64(pkts)
		if b.ringnet() {
			// ringnetd's XDP program is on the uplink: a veth counts the
			// bytes of what it runs through XDP after the Ethernet header
			// is pulled (skb->len after eth_type_trans), 14 bytes short.
			mean += 14
		}
		if mean < float64(wire)-2 || mean > float64(wire)+2 {
			errs = append(errs, fmt.Errorf("frames on n2's uplink are %.1f bytes on average, want %d", mean, wire))
		}
	}
	if b.kernelForwarding {
		errs = append(errs, Need("n2's Ip ForwDatagrams", d["n2.ip_forw_datagrams"], delivered))
	}
	if b.vxlan {
		errs = append(errs, Need("n2's flannel.1", d["n2.flannel.1.rx_packets"], delivered))
	}
	if b.ringnet() {
		errs = append(errs, Need("ringnetd on n1, to_peer", d["n1.reason.to_peer"], delivered))
		errs = append(errs, Need("ringnetd on n2, from_peer", d["n2.reason.from_peer"], delivered))
	}
	return mean, errors.Join(errs...)
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

// Losses picks from counter deltas what counts frames lost or turned away
// on the path: ringnetd's drop reasons and its sockets' drop counters, and
// on kernel nodes the receiving uplink's rx_dropped (with ringnetd on the
// uplink, that counts the XDP redirects its socket refused, which its own
// counters name).
func (b *Bed) Losses(d map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range d {
		if v > 0 && b.isLoss(k) {
			out[k] = v
		}
	}
	return out
}

// isLoss reports whether a snapshot counter ("n1.port.pod.xsk_rx_ring_full")
// counts lost frames. Left out: xsk_fill_ring_empty, the cause of (and
// counted again in) xsk_rx_dropped; the workers' drop totals, the sums of
// the drop reasons listed beside them.
func (b *Bed) isLoss(k string) bool {
	_, rest, _ := strings.Cut(k, ".")
	kind, name, _ := strings.Cut(rest, ".")
	switch kind {
	case "uplink":
		return name == "rx_dropped" && b.Ringnetd == nil
	case "reason":
		return !notDropped[name]
	case "port":
		return strings.Contains(name, ".xsk_") && !strings.HasSuffix(name, ".xsk_fill_ring_empty") ||
			strings.HasSuffix(name, ".tx_kick_errors")
	}
	return false
}

// PerNode is a figure of each node of the Pair, n1 then n2, its median in
// percent, joined by sep: ringnetd's CPU shares, "81% / 61%".
func PerNode(m map[string]*figure.Stat, sep string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, n := range Pair {
		parts = append(parts, figure.Median(m[n.Name], "%.0f%%"))
	}
	return strings.Join(parts, sep)
}
