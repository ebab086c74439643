// Package cni is the logic of ringnet's CNI plugin (cmd/ringnet-cni,
// installed as "ringnet"): ADD, DEL, CHECK, STATUS, GC and VERSION for CNI
// spec versions 0.3.1, 0.4.0, 1.0.0 and 1.1.0, wired through skel.
//
// The plugin is short-lived and small: it does what must happen in the
// pod's namespace (package podport: veth, addresses, routes, offloads, MTU)
// and asks ringnetd over its unix socket (package api) for the addresses
// and for the port. It never links client-go.
//
// ADD: allocate → create the veth and configure the pod → attach (the
// daemon answers once the port forwards) → print the result. A failure
// after allocation removes the veth and releases the addresses, so a failed
// ADD leaves nothing behind. DEL is idempotent: a missing netns, veth or
// container all succeed.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/podport"
	"github.com/vishvananda/netlink"
)

// Versions are the CNI spec versions the plugin speaks.
var Versions = version.PluginSupports("0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Error codes beyond the spec's (plugin-specific codes are 100 and up).
const (
	ErrPoolExhausted uint = 100
	// STATUS (spec 1.1): the plugin cannot serve ADD.
	ErrPluginNotAvailable uint = 50
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.PluginConf
	// Socket is ringnetd's API socket (default /run/ringnet/ringnet.sock).
	Socket string `json:"socket,omitempty"`
	// Timeout bounds each call to ringnetd, as a Go duration (default 30s).
	Timeout string `json:"timeout,omitempty"`

	timeout time.Duration
}

// k8sArgs are the CNI_ARGS kubelet and CRI runtimes pass.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // CNI_ARGS names
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
}

func invalidConf(field, format string, a ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("invalid network config: field %q: %s", field, fmt.Sprintf(format, a...)), "")
}

// parseConf reads and checks the network configuration.
func parseConf(data []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse network config: "+err.Error(), "")
	}
	if c.Socket == "" {
		c.Socket = api.DefaultSocket
	}
	if !filepath.IsAbs(c.Socket) {
		return nil, invalidConf("socket", "%q is not an absolute path", c.Socket)
	}
	c.timeout = 30 * time.Second
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, invalidConf("timeout", "%q is not a positive duration like \"10s\"", c.Timeout)
		}
		c.timeout = d
	}
	if c.IPAM.Type != "" {
		return nil, invalidConf("ipam", "ringnet allocates addresses itself; remove the ipam section (found type %q)", c.IPAM.Type)
	}
	return c, nil
}

func (c *NetConf) client() *api.Client {
	cl := api.NewClient(c.Socket)
	cl.Timeout = c.timeout
	return cl
}

// daemonError turns a failure to talk to ringnetd into a CNI error.
func daemonError(c *NetConf, what string, err error) error {
	var ae *api.Error
	switch {
	case errors.Is(err, api.ErrDaemonUnavailable):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("ringnetd is not running (no answer on %s)", c.Socket),
			"start it in the node's network namespace, e.g. `ringnetd --pod-cidr 10.244.0.0/24`, or fix \"socket\" in the network config")
	case errors.As(err, &ae) && ae.Code == api.CodePoolExhausted:
		return types.NewError(ErrPoolExhausted, ae.Message, "free addresses by deleting pods, or give the node a larger pod CIDR")
	case errors.As(err, &ae):
		return types.NewError(types.ErrInternal, what+": "+ae.Message, ae.Code)
	}
	return types.NewError(types.ErrInternal, what+": "+err.Error(), "")
}

func podOf(args *skel.CmdArgs) api.Pod {
	p := api.Pod{ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns}
	var k k8sArgs
	k.IgnoreUnknown = true
	if types.LoadArgs(args.Args, &k) == nil {
		p.PodNamespace, p.PodName = string(k.K8S_POD_NAMESPACE), string(k.K8S_POD_NAME)
	}
	return p
}

// Add implements CNI ADD.
func Add(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx := context.Background()
	cl := conf.client()
	pod := podOf(args)
	var steps Timings
	steps.begin()
	alloc, err := cl.Allocate(ctx, pod)
	if err != nil {
		return daemonError(conf, "allocate addresses", err)
	}
	steps.step(&steps.Allocate)
	cfg := podport.Config{NetNS: args.Netns, HostIfname: alloc.HostIfname, PodIfname: args.IfName,
		MTU: alloc.MTU, Queues: alloc.Queues}
	if cfg.IPv4, err = parseOptAddr(alloc.IPv4); err == nil {
		cfg.IPv6, err = parseOptAddr(alloc.IPv6)
	}
	if err == nil && alloc.PodMAC != "" {
		cfg.PodMAC, err = net.ParseMAC(alloc.PodMAC)
	}
	if err != nil {
		return types.NewError(types.ErrInternal, "ringnetd answered a bad address or MAC: "+err.Error(), "")
	}
	// A repeated ADD for the same container builds the port afresh.
	if err := podport.Teardown(alloc.HostIfname); err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	undo := func() {
		_ = podport.Teardown(alloc.HostIfname)
		_, _ = cl.Release(ctx, pod)
	}
	port, err := podport.Setup(cfg)
	if err != nil {
		undo()
		if errors.Is(err, ns.NSPathNotExistErr{}) {
			return types.NewError(types.ErrInvalidNetNS, err.Error(), "")
		}
		return types.NewError(types.ErrInternal, "set up the pod's interface: "+err.Error(), "")
	}
	steps.step(&steps.Veth)
	if err := cl.Attach(ctx, api.AttachRequest{Pod: pod, HostIfname: port.HostIfname, PodMAC: port.PodMAC.String()}); err != nil {
		undo()
		return daemonError(conf, "attach the pod's port", err)
	}
	steps.step(&steps.Attach)
	err = types.PrintResult(result(conf, args, port), conf.CNIVersion)
	steps.write()
	return err
}

// TimingsEnv names the file, if set in the plugin's environment, to which
// ADD appends one JSON line of [Timings]: where a CNI ADD spends its time
// inside the plugin. bench/cni sets it; so can a person with cnitool.
const TimingsEnv = "RINGNET_CNI_TIMINGS"

// Timings is one ADD's steps in microseconds: Start from the
// initialisation of this package (by then the Go runtime and the packages
// it imports have started) to Add, Allocate the call to ringnetd for
// addresses, Veth making the veth and the pod side, Attach the call to
// ringnetd that attaches the port, and Total from that initialisation to
// the printed result. CPU is the process's user and system time until
// then, the runtime's start included.
type Timings struct {
	Start    int64 `json:"start_us"`
	Allocate int64 `json:"allocate_us"`
	Veth     int64 `json:"veth_us"`
	Attach   int64 `json:"attach_us"`
	Total    int64 `json:"total_us"`
	CPU      int64 `json:"cpu_us"`

	last time.Time
}

// processStart is as early as the plugin can take the time: the
// initialisation of this package's variables.
var processStart = time.Now()

func (t *Timings) begin() {
	t.last = time.Now()
	t.Start = t.last.Sub(processStart).Microseconds()
}

// step sets *d to the time since the last step.
func (t *Timings) step(d *int64) {
	now := time.Now()
	*d, t.last = now.Sub(t.last).Microseconds(), now
}

func (t *Timings) write() {
	path := os.Getenv(TimingsEnv)
	if path == "" {
		return
	}
	t.Total = time.Since(processStart).Microseconds()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.CPU = (ru.Utime.Nano() + ru.Stime.Nano()) / 1000
	}
	line, _ := json.Marshal(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return // a benchmark's aid: never fail an ADD for it
	}
	_, _ = f.Write(append(line, '\n'))
	f.Close()
}

func parseOptAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}

func result(conf *NetConf, args *skel.CmdArgs, port podport.Port) *current.Result {
	r := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: port.HostIfname, Mac: podport.GatewayMAC.String()},
			{Name: port.PodIfname, Mac: port.PodMAC.String(), Sandbox: args.Netns},
		},
		DNS: conf.DNS,
	}
	podIdx := 1
	add := func(a, gw netip.Addr, bits int, def string) {
		if !a.IsValid() {
			return
		}
		r.IPs = append(r.IPs, &current.IPConfig{Interface: &podIdx, Gateway: gw.AsSlice(),
			Address: net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}})
		_, dst, _ := net.ParseCIDR(def)
		r.Routes = append(r.Routes, &types.Route{Dst: *dst, GW: gw.AsSlice()})
	}
	add(port.IPv4, podport.GatewayIPv4, 32, "0.0.0.0/0")
	add(port.IPv6, podport.GatewayIPv6, 128, "::/0")
	return r
}

// Del implements CNI DEL. It succeeds for unknown containers and missing
// namespaces or veths; it fails (try again later) only if ringnetd cannot be
// reached, so that the runtime retries and the addresses are not lost.
func Del(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	rel, err := conf.client().Release(context.Background(), podOf(args))
	if err != nil {
		// Remove the veth anyway: the pod is going away.
		_ = podport.Teardown(api.HostIfname(args.ContainerID, args.IfName))
		return daemonError(conf, "release", err)
	}
	if rel.HostIfname != "" {
		if err := podport.Teardown(rel.HostIfname); err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
	}
	return nil
}

// Check implements CNI CHECK: the daemon has the allocation and the port
// attached, and the pod's interface has its addresses and default routes.
func Check(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	st, err := conf.client().Check(context.Background(), podOf(args))
	if err != nil {
		return daemonError(conf, "check", err)
	}
	if !st.Attached {
		return types.NewError(types.ErrInternal, fmt.Sprintf("port %s is not attached to the fast path", st.HostIfname), "")
	}
	if _, err := netlink.LinkByName(st.HostIfname); err != nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("host interface %s: %v", st.HostIfname, err), "")
	}
	return ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		link, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", args.IfName, err)
		}
		for _, want := range []struct {
			addr   string
			family int
			gw     netip.Addr
		}{{st.IPv4, netlink.FAMILY_V4, podport.GatewayIPv4}, {st.IPv6, netlink.FAMILY_V6, podport.GatewayIPv6}} {
			if want.addr == "" {
				continue
			}
			a, err := netip.ParseAddr(want.addr)
			if err != nil {
				return err
			}
			addrs, err := netlink.AddrList(link, want.family)
			if err != nil {
				return err
			}
			found := false
			for _, x := range addrs {
				if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("pod interface %s lacks address %s", args.IfName, a)
			}
			routes, err := netlink.RouteList(link, want.family)
			if err != nil {
				return err
			}
			found = false
			for _, r := range routes {
				if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw.Unmap() == want.gw && (r.Dst == nil || isDefault(r.Dst)) {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("pod interface %s lacks the default route via %s", args.IfName, want.gw)
			}
		}
		return nil
	})
}

func isDefault(n *net.IPNet) bool { ones, _ := n.Mask.Size(); return ones == 0 }

// Status implements CNI STATUS (spec 1.1).
func Status(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	st, err := conf.client().Status(context.Background())
	if err != nil || !st.Ready {
		msg := "ringnetd is not ready"
		if err != nil {
			msg = fmt.Sprintf("ringnetd is not running (no answer on %s)", conf.Socket)
		}
		return types.NewError(ErrPluginNotAvailable, msg, "start ringnetd in the node's network namespace")
	}
	return nil
}

// GC implements CNI GC (spec 1.1): addresses and ports of attachments not
// in cni.dev/valid-attachments are released.
func GC(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	// Absent or null, the list is empty: libcni sends it so when no
	// attachment is valid (and has already run DEL for each it cached). The
	// daemon's API wants the list explicit, so it is always sent.
	valid := make([]api.Pod, 0, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid = append(valid, api.Pod{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	if _, err := conf.client().GC(context.Background(), valid); err != nil {
		return daemonError(conf, "gc", err)
	}
	return nil
}

// Funcs wires the commands for skel.
var Funcs = skel.CNIFuncs{Add: Add, Del: Del, Check: Check, Status: Status, GC: GC}
