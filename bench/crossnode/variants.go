package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
	"github.com/ringnet/ringnet/internal/ringnode"
)

// topoPrefix scopes the benchmark's topologies (rntxbn...), so that a run
// sweeps only what an earlier, killed run of it left.
const topoPrefix = "xbn"

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
	// Flags are ringnetd flags of this variant, before --ringnetd-flags.
	Flags []string
	build func(ctx context.Context, e *env, s *setup) error
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
	{ID: "g", Name: "ringnet VXLAN, idle spin", Wire: 110, Mode: "vxlan", Flags: []string{"--idle-spin", "100us"}, build: buildRingnet,
		Desc: "as (d), with ringnetd --idle-spin 100us on both nodes: a worker keeps polling its rings for 100 µs after its last frame, yielding the CPU to any runnable thread between polls, before it sleeps; the latency setting."},
}

func variantByID(id string) (variant, bool) {
	if i := slices.IndexFunc(variants, func(v variant) bool { return v.ID == id }); i >= 0 {
		return variants[i], true
	}
	return variant{}, false
}

// env is what every variant's setup shares.
type env struct {
	bins   ringnode.Binaries
	dir    string   // temporary folder: binaries, cluster files, trafgen configs
	flags  []string // more ringnetd flags for the ringnet variants
	xdpgen string   // the bench/xdpgen binary; empty: send with trafgen
}

// setup is one variant's Bed, built once and measured every round.
type setup struct {
	*testbed.Bed
	v           variant
	trafgenConf string
}

// newSetup builds variant v's topology and pods. On error, what was built
// is in the setup and close removes it.
func newSetup(ctx context.Context, e *env, v variant) (*setup, error) {
	b, err := testbed.New(topoPrefix)
	if err != nil {
		return &setup{v: v}, err
	}
	s := &setup{Bed: b, v: v}
	b.XDPGen = e.xdpgen
	if err := v.build(ctx, e, s); err != nil {
		return s, err
	}
	return s, s.prepare(ctx, e)
}

func buildHostGW(ctx context.Context, _ *env, s *setup) error { return s.HostGW(ctx) }

func buildFlannel(ctx context.Context, e *env, s *setup) error {
	return s.FlannelVXLAN(ctx, e.bins, filepath.Join(e.dir, s.v.ID))
}

func buildRingnet(ctx context.Context, e *env, s *setup) error {
	return s.Ringnet(ctx, e.bins, filepath.Join(e.dir, s.v.ID), s.v.Mode, append(slices.Clip(s.v.Flags), e.flags...))
}

// buildRingnetService is buildRingnet with a service in the cluster
// file whose one backend is the receiver pod, applied by reloading both
// daemons.
func buildRingnetService(ctx context.Context, e *env, s *setup) error {
	if err := buildRingnet(ctx, e, s); err != nil {
		return err
	}
	base, err := os.ReadFile(s.Cluster.File)
	if err != nil {
		return err
	}
	file := fmt.Sprintf("%s\nservices:\n- name: sink\n  clusterIPs: [%s]\n  ports: [{protocol: UDP, port: %d}]\n  endpoints: [{address: %s, node: n2}]\n",
		base, serviceVIP, sinkPort, s.Recv.IP)
	return s.Cluster.Replace([]byte(file))
}

// prepare opens the Bed, binds the receiver's sink and writes the trafgen
// config for the path the sender's kernel resolved.
func (s *setup) prepare(ctx context.Context, e *env) error {
	if err := s.Open(ctx); err != nil {
		return err
	}
	if err := s.Sink(sinkPort, sinkPort); err != nil {
		return err
	}
	s.trafgenConf = filepath.Join(e.dir, "udp64-"+s.v.ID+".trafgen")
	_, err := s.WriteFlow(ctx, s.trafgenConf, func(f *trafgen.Flow) {
		f.DstPort = sinkPort
		if s.v.Service {
			f.Dst = serviceVIP // through the same gateway MAC
		}
	})
	return err
}

// close removes everything the setup made; it is safe on a half-built
// setup.
func (s *setup) close() error {
	if s.Bed == nil {
		return nil
	}
	return s.Bed.Close()
}
