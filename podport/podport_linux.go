// Package podport sets up and tears down a pod's network port: the veth pair
// between the node namespace and the pod namespace, and everything on the pod
// side (address, routes, offloads, MTU).
//
// Pods are routed, not bridged: the pod gets a /32 (and a /128) and a default
// route to a link-local gateway, 169.254.1.1 and fe80::1, whose ARP and ND the
// fast path answers with [GatewayMAC]. The host end of the veth carries the
// same MAC. The XDP program and the AF_XDP sockets on the host end are the
// fast path's business (package pipeline); this package only makes the
// devices, so the CNI plugin and the tests share one way of doing it.
//
// Checksums: a pod's frames would otherwise leave with CHECKSUM_PARTIAL (the
// L4 checksum left for hardware to finish) and as 64 KiB GSO super-packets,
// neither of which survives a trip through an AF_XDP socket. Setup switches
// tx checksumming, TSO and GSO off on the pod's eth0, so the pod's kernel
// finishes every checksum and segments every packet itself; the fast path
// never has to. Receive offloads stay on.
//
// Functions here run control-plane code (netlink, setns) and are not for the
// per-packet path. They lock the OS thread while inside another namespace.
package podport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The link-local gateway every pod routes through.
var (
	GatewayIPv4 = netip.MustParseAddr("169.254.1.1")
	GatewayIPv6 = netip.MustParseAddr("fe80::1")
	// GatewayMAC is what ARP and ND for the gateway resolve to, and the
	// MAC of every host-side veth.
	GatewayMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
)

// Config describes one pod port.
type Config struct {
	// NetNS is the path of the pod's network namespace, e.g. /run/netns/x.
	NetNS string
	// HostIfname is the host end's name (at most 15 bytes); PodIfname the
	// pod end's (default "eth0").
	HostIfname, PodIfname string
	// IPv4 and IPv6 are the pod's addresses; either may be invalid (absent),
	// not both.
	IPv4, IPv6 netip.Addr
	// PodMAC is the pod end's MAC; nil lets the kernel choose one.
	PodMAC net.HardwareAddr
	// MTU of both ends (default 1500).
	MTU int
	// Queues is the number of RX and TX queues of each end (default 1), one
	// per fast-path worker.
	Queues int
}

// Port is what Setup made.
type Port struct {
	HostIfname string
	HostIndex  int
	PodIfname  string
	PodMAC     net.HardwareAddr
	IPv4, IPv6 netip.Addr
}

func (c *Config) check() error {
	if c.PodIfname == "" {
		c.PodIfname = "eth0"
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	switch {
	case c.NetNS == "":
		return errors.New("pod port: no netns path")
	case c.HostIfname == "" || len(c.HostIfname) > unix.IFNAMSIZ-1:
		return fmt.Errorf("pod port: host interface name %q must be 1 to 15 bytes", c.HostIfname)
	case len(c.PodIfname) > unix.IFNAMSIZ-1:
		return fmt.Errorf("pod port: pod interface name %q is longer than 15 bytes", c.PodIfname)
	case !c.IPv4.IsValid() && !c.IPv6.IsValid():
		return errors.New("pod port: neither an IPv4 nor an IPv6 address")
	case c.IPv4.IsValid() && !c.IPv4.Is4():
		return fmt.Errorf("pod port: IPv4 address %s is not IPv4", c.IPv4)
	case c.IPv6.IsValid() && (!c.IPv6.Is6() || c.IPv6.Is4In6()):
		return fmt.Errorf("pod port: IPv6 address %s is not IPv6", c.IPv6)
	case c.MTU < 68 || c.MTU > 9000:
		return fmt.Errorf("pod port: MTU %d out of range [68, 9000]", c.MTU)
	case c.Queues < 1 || c.Queues > 64:
		return fmt.Errorf("pod port: %d queues out of range [1, 64]", c.Queues)
	}
	return nil
}

// Setup creates the veth pair with its host end in the calling thread's
// namespace (the node's) and configures the pod end inside cfg.NetNS. On
// failure it removes what it made.
func Setup(cfg Config) (Port, error) {
	if err := cfg.check(); err != nil {
		return Port{}, err
	}
	podNS, err := ns.GetNS(cfg.NetNS)
	if err != nil {
		return Port{}, fmt.Errorf("pod port %s: open netns: %w", cfg.HostIfname, err)
	}
	defer podNS.Close()

	attrs := netlink.NewLinkAttrs()
	attrs.Name = cfg.HostIfname
	attrs.MTU = cfg.MTU
	attrs.HardwareAddr = GatewayMAC
	attrs.NumTxQueues, attrs.NumRxQueues = cfg.Queues, cfg.Queues
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         cfg.PodIfname,
		PeerHardwareAddr: cfg.PodMAC,
		PeerNamespace:    netlink.NsFd(int(podNS.Fd())),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Port{}, fmt.Errorf("pod port: interface %s already exists", cfg.HostIfname)
		}
		return Port{}, fmt.Errorf("pod port %s: create veth: %w", cfg.HostIfname, err)
	}
	host, err := netlink.LinkByName(cfg.HostIfname)
	if err == nil {
		err = hostSide(host)
	}
	var port Port
	if err == nil {
		err = podNS.Do(func(ns.NetNS) error {
			var err error
			port, err = podSide(cfg)
			return err
		})
	}
	if err != nil {
		// Deleting the host end deletes the pod end with it.
		_ = netlink.LinkDel(veth)
		return Port{}, err
	}
	port.HostIfname, port.HostIndex = cfg.HostIfname, host.Attrs().Index
	return port, nil
}

func hostSide(host netlink.Link) error {
	name := host.Attrs().Name
	// The host end belongs to the fast path, not to the node's stack: no
	// IPv6 on it, so the node sends nothing of its own (router
	// solicitations, MLD) to the pod.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644)
	// And no IPv4 forwarding from it: while ringnetd is down (its XDP
	// program detached), what the pod sends must stop at the node, not be
	// routed by the node's kernel around the fast path and its policy.
	// Delivery to the node's own addresses is not forwarding and still works.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/forwarding", []byte("0"), 0o644); err != nil {
		return fmt.Errorf("pod port %s: turn IPv4 forwarding off on the host end: %w", name, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("pod port %s: set host end up: %w", name, err)
	}
	return nil
}

// podSide runs inside the pod's namespace.
func podSide(cfg Config) (Port, error) {
	fail := func(what string, err error) (Port, error) {
		return Port{}, fmt.Errorf("pod port %s: pod side %s: %s: %w", cfg.HostIfname, cfg.PodIfname, what, err)
	}
	link, err := netlink.LinkByName(cfg.PodIfname)
	if err != nil {
		return fail("find", err)
	}
	if err := disableTxOffloads(cfg.PodIfname); err != nil {
		return fail("switch off tx offloads", err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	if cfg.IPv6.IsValid() {
		// Our gateway answers ND; duplicate address detection would only
		// delay the address by a second.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+cfg.PodIfname+"/accept_dad", []byte("0"), 0o644)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fail("set up", err)
	}
	idx := link.Attrs().Index
	if cfg.IPv4.IsValid() {
		addr := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(cfg.IPv4, 32))}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fail("add address "+cfg.IPv4.String(), err)
		}
		gw := prefixNet(netip.PrefixFrom(GatewayIPv4, 32))
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: gw, Scope: netlink.SCOPE_LINK}); err != nil {
			return fail("add route to the gateway", err)
		}
		def := &netlink.Route{LinkIndex: idx, Dst: prefixNet(netip.MustParsePrefix("0.0.0.0/0")),
			Gw: GatewayIPv4.AsSlice(), Flags: int(netlink.FLAG_ONLINK)}
		if err := netlink.RouteAdd(def); err != nil {
			return fail("add IPv4 default route", err)
		}
	}
	if cfg.IPv6.IsValid() {
		addr := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(cfg.IPv6, 128)), Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fail("add address "+cfg.IPv6.String(), err)
		}
		def := &netlink.Route{LinkIndex: idx, Dst: prefixNet(netip.MustParsePrefix("::/0")), Gw: GatewayIPv6.AsSlice()}
		if err := netlink.RouteAdd(def); err != nil {
			return fail("add IPv6 default route", err)
		}
	}
	link, err = netlink.LinkByIndex(idx)
	if err != nil {
		return fail("read back", err)
	}
	return Port{PodIfname: cfg.PodIfname, PodMAC: link.Attrs().HardwareAddr, IPv4: cfg.IPv4, IPv6: cfg.IPv6}, nil
}

// isTxOffload reports whether an ethtool feature lets a frame leave the
// pod unfinished: any transmit checksum offload (tx-checksum-*) or
// segmentation offload (tx-*-segmentation, tx-gso-*).
func isTxOffload(name string) bool {
	return strings.HasPrefix(name, "tx-checksum") || strings.HasPrefix(name, "tx-gso") ||
		(strings.HasPrefix(name, "tx-") && strings.HasSuffix(name, "segmentation"))
}

// Teardown deletes the pod port whose host end is hostIfname. A port that
// does not exist is not an error: teardown is idempotent.
func Teardown(hostIfname string) error {
	link, err := netlink.LinkByName(hostIfname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("pod port %s: find: %w", hostIfname, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("pod port %s: delete: %w", hostIfname, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
