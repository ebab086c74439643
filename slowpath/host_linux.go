package slowpath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/nsnetlink"
	"github.com/ringnet/ringnet/slowpath/tap"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultTAP is the TAP's default name.
const DefaultTAP = "ringnet0"

// rtProtoRingnet marks the routes the slow path installs ("proto 82" in ip
// route), so that they can be told from everyone else's.
const rtProtoRingnet = netlink.RouteProtocol(82)

// Options configures the slow path. The zero value of each field is a
// default.
type Options struct {
	// TAP is the device's name (default DefaultTAP).
	TAP string
	// MTU of the TAP (default 1500); at most the fast path's frame size
	// minus the Ethernet header, and no larger than the pods' MTU.
	MTU int
	// PodPrefixes are this node's pod CIDRs. Given, the host routes each to
	// the TAP and the fast path answers addresses in them that no pod has
	// with ICMP unreachable. Empty: the host gets a /32 and a /128 route
	// per pod port, following the ports as they come and go.
	PodPrefixes []netip.Prefix
	// ICMPSource4 and ICMPSource6 override the source address of the ICMP
	// errors the fast path sends to pods (default: the node's primary
	// address of the family, see Host).
	ICMPSource4, ICMPSource6 netip.Addr
	// Batch is the most frames the reader takes from the TAP, and the
	// writer from one worker's queue, at a time (default 64).
	Batch int
	// Pipeline sizes the queues and sets the punt list's limits.
	Pipeline pipeline.SlowPathConfig
	// Logger receives the slow path's rare events (default slog.Default()).
	Logger *slog.Logger
	// ProcSysNet is where the node's /proc/sys/net is (default
	// DefaultProcSysNet). The slow path writes its TAP's sysctls there. A
	// container runtime mounts /proc/sys read-only in an unprivileged
	// container, so a containerised ringnetd is given the host's
	// /proc/sys/net mounted elsewhere (deploy/ringnet.yaml mounts it at
	// /host/proc/sys/net). The files act on the writing thread's network
	// namespace, wherever they are mounted.
	ProcSysNet string
}

// DefaultProcSysNet is Options.ProcSysNet's default.
const DefaultProcSysNet = "/proc/sys/net"

// SlowPath is the running slow path of one node: the TAP, the host's
// routes and neighbours for it, the watch on the node's addresses, and the
// reader and writer goroutines.
type SlowPath struct {
	dp    *pipeline.Dataplane
	hp    *pipeline.HostPort
	dev   *tap.Device
	index int              // the TAP's ifindex
	mac   net.HardwareAddr // the TAP's MAC
	gw    pipeline.Gateway
	opts  Options
	log   *slog.Logger
	loops *loops

	// The node's namespace, taken from the calling thread in Start, and a
	// netlink handle in it: the address watcher and the port watcher run
	// on other threads, which need not be in that namespace.
	ns netns.NsHandle
	nl *netlink.Handle

	mu       sync.Mutex     // guards host, remote and services
	host     pipeline.Host  // last published
	remote   []netip.Prefix // routed to the TAP by SetRemotePrefixes
	services []netip.Prefix // routed to the TAP by SetServicePrefixes

	watchDone chan struct{} // closed by Close: ends the address subscription
	watching  sync.WaitGroup
}

// Start enables the slow path on dp (before dp.Start), creates the TAP,
// configures the host's side of it and starts the goroutines. On failure
// nothing it made is left (the dataplane keeps its queues, unused).
func Start(dp *pipeline.Dataplane, o Options) (_ *SlowPath, err error) {
	if o.TAP == "" {
		o.TAP = DefaultTAP
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Batch == 0 {
		o.Batch = 64
	}
	if o.ProcSysNet == "" {
		o.ProcSysNet = DefaultProcSysNet
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if max := int(dp.Config().XSK.FrameSize) - 14; o.MTU < 1280 || o.MTU > max {
		return nil, fmt.Errorf("slow path: TAP MTU %d out of range [1280, %d] (IPv6 needs 1280; the fast path's frames hold %d)", o.MTU, max, max)
	}
	for _, p := range o.PodPrefixes {
		if !p.IsValid() {
			return nil, errors.New("slow path: invalid pod prefix")
		}
	}
	o.Pipeline.Name = o.TAP
	hp, err := dp.EnableSlowPath(o.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("slow path: %w", err)
	}
	s := &SlowPath{dp: dp, hp: hp, gw: dp.Config().Gateway, opts: o, log: o.Logger, watchDone: make(chan struct{})}
	if s.ns, err = netns.Get(); err != nil {
		return nil, fmt.Errorf("slow path: this thread's network namespace: %w", err)
	}
	if err = nsnetlink.Open(s.ns, func(ns netns.NsHandle) (err error) { s.nl, err = netlink.NewHandleAt(ns); return err }); err != nil {
		s.ns.Close()
		return nil, fmt.Errorf("slow path: netlink: %w", err)
	}
	if s.dev, err = tap.Open(o.TAP); err != nil {
		s.nl.Close()
		s.ns.Close()
		return nil, fmt.Errorf("slow path: %w", err)
	}
	defer func() {
		if err != nil {
			close(s.watchDone)
			s.watching.Wait()
			s.dev.Close()
			s.nl.Close()
			s.ns.Close()
		}
	}()
	if err := s.setupLink(); err != nil {
		return nil, fmt.Errorf("slow path: %s: %w", o.TAP, err)
	}
	if err := s.watchAddrs(); err != nil {
		return nil, fmt.Errorf("slow path: %w", err)
	}
	if len(o.PodPrefixes) == 0 {
		var errs []error
		for _, spec := range dp.WatchPorts(s.portChanged) {
			errs = append(errs, s.podRoutes(spec, true))
		}
		if err := errors.Join(errs...); err != nil {
			dp.WatchPorts(nil)
			return nil, fmt.Errorf("slow path: %w", err)
		}
	}
	s.loops = startLoops(hp, s.dev, o.Batch, s.log)
	return s, nil
}

// TAP is the device's name; MAC its address.
func (s *SlowPath) TAP() string           { return s.opts.TAP }
func (s *SlowPath) MAC() net.HardwareAddr { return s.mac }

// Host returns what was last published to the fast path.
func (s *SlowPath) Host() pipeline.Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

// SetRemotePrefixes routes prefixes, other nodes' pod CIDRs, through the
// TAP, replacing the set of the previous call: the node's own traffic to
// pods elsewhere enters the fast path, which sends it to their node.
// Unlike Options.PodPrefixes they are not the node's own: the fast path
// answers nothing for them. It reports every route it failed to change,
// having tried them all.
func (s *SlowPath) SetRemotePrefixes(prefixes []netip.Prefix) error {
	return s.setRouted(&s.remote, prefixes)
}

// SetServicePrefixes routes the services' addresses (cluster IPs and
// external IPs, as /32 and /128) through the TAP, replacing the set of the
// previous call, as SetRemotePrefixes does for pod CIDRs: the node's own
// connections to Services (kubelet, host-network pods) enter the fast
// path, which translates them like a pod's.
func (s *SlowPath) SetServicePrefixes(prefixes []netip.Prefix) error {
	return s.setRouted(&s.services, prefixes)
}

// setRouted makes *set the routed prefixes of one caller, removing the
// routes no caller wants any more and (re)adding the wanted ones; a
// prefix whose route failed stays out of *set, so the next call tries it
// again.
func (s *SlowPath) setRouted(set *[]netip.Prefix, prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		want[p.Masked()] = true
	}
	other := s.remote
	if set == &s.remote {
		other = s.services
	}
	var errs []error
	for _, p := range *set {
		if !want[p] && !slices.Contains(other, p) {
			errs = append(errs, s.route(p, false))
		}
	}
	*set = (*set)[:0]
	for p := range want {
		if err := s.route(p, true); err != nil {
			errs = append(errs, err)
			continue
		}
		*set = append(*set, p)
	}
	return errors.Join(errs...)
}

// Close stops the goroutines and removes the TAP, and with it every route
// and neighbour entry the slow path made. Stop the slow path before closing
// the dataplane.
func (s *SlowPath) Close() error {
	if len(s.opts.PodPrefixes) == 0 {
		s.dp.WatchPorts(nil)
	}
	close(s.watchDone)
	s.watching.Wait()
	err := s.loops.close()
	s.nl.Close()
	s.ns.Close()
	return err
}

// setupLink configures the TAP and the host's view of it: MTU, sysctls,
// up, permanent neighbour entries for the gateway, a route to the gateway,
// and the pod prefixes' routes.
func (s *SlowPath) setupLink() error {
	link, err := s.nl.LinkByName(s.opts.TAP)
	if err != nil {
		return err
	}
	s.index = link.Attrs().Index
	if err := s.nl.LinkSetMTU(link, s.opts.MTU); err != nil {
		return fmt.Errorf("set MTU %d: %w", s.opts.MTU, err)
	}
	name := s.opts.TAP
	for _, c := range []struct{ path, value string }{
		// IPv6 on, for host ↔ pod IPv6; but no autoconfiguration from
		// what pods send, and no router solicitations towards them.
		{"ipv6/conf/" + name + "/disable_ipv6", "0"},
		{"ipv6/conf/" + name + "/accept_ra", "0"},
		{"ipv6/conf/" + name + "/router_solicitations", "0"},
		// If the node forwards a pod's packet back out of the TAP (to
		// another pod prefix), it must not tell the pod to go elsewhere.
		{"ipv4/conf/" + name + "/send_redirects", "0"},
		{"ipv4/conf/" + name + "/accept_redirects", "0"},
		{"ipv6/conf/" + name + "/accept_redirects", "0"},
		// The fast path hands the node replies it has reverse-NATed
		// whose source is one of the node's own addresses (a NodePort
		// reply from a local pod to a client off the node), for the node
		// to route out of the uplink. Accept a local source, which is
		// otherwise a martian, and filter nothing by reverse path: the
		// route back to a node address never goes through the TAP. The
		// kernel applies the larger of conf.all's rp_filter and this one
		// (see warnRPFilter).
		{"ipv4/conf/" + name + "/accept_local", "1"},
		{"ipv4/conf/" + name + "/rp_filter", "0"},
	} {
		if err := os.WriteFile(filepath.Join(s.opts.ProcSysNet, c.path), []byte(c.value), 0o644); err != nil {
			return sysctlError(s.opts.ProcSysNet, c.path, err)
		}
	}
	if err := s.warnRPFilter(); err != nil {
		return err
	}
	if err := s.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if link, err = s.nl.LinkByIndex(s.index); err != nil {
		return err
	}
	s.mac = link.Attrs().HardwareAddr
	if len(s.mac) != 6 || [6]byte(s.mac) == s.gw.MAC {
		return fmt.Errorf("TAP MAC %s is unusable (the gateway has %s)", s.mac, net.HardwareAddr(s.gw.MAC[:]))
	}
	gw4, gw6 := netip.AddrFrom4(s.gw.IPv4), netip.AddrFrom16(s.gw.IPv6)
	for _, gw := range []netip.Addr{gw4, gw6} {
		family := netlink.FAMILY_V4
		if gw.Is6() {
			family = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: s.index, Family: family, State: netlink.NUD_PERMANENT,
			IP: gw.AsSlice(), HardwareAddr: net.HardwareAddr(s.gw.MAC[:])}
		if err := s.nl.NeighSet(n); err != nil {
			return fmt.Errorf("neighbour %s: %w", gw, err)
		}
	}
	// The gateway on the TAP's link: the source of the ICMP errors the fast
	// path sends the host passes the host's reverse-path check.
	if err := s.nl.RouteReplace(&netlink.Route{LinkIndex: s.index, Dst: prefixNet(netip.PrefixFrom(gw4, 32)),
		Scope: netlink.SCOPE_LINK, Protocol: rtProtoRingnet}); err != nil {
		return fmt.Errorf("route to the gateway %s: %w", gw4, err)
	}
	for _, p := range s.opts.PodPrefixes {
		if err := s.route(p, true); err != nil {
			return err
		}
	}
	return nil
}

// sysctlError says which sysctl failed and, when the file system is
// read-only (the runtime's /proc/sys in a container), what to do.
func sysctlError(dir, path string, err error) error {
	if _, serr := os.Stat(dir); serr != nil {
		return fmt.Errorf("sysctl net/%s: %s is not there: mount the host's /proc/sys/net there, or name where it is with --proc-sys-net: %w",
			path, dir, serr)
	}
	if errors.Is(err, unix.EROFS) {
		return fmt.Errorf("sysctl net/%s: %s is read-only, as a container runtime mounts /proc/sys in an unprivileged container: "+
			"mount the host's /proc/sys/net elsewhere and name it with --proc-sys-net (deploy/ringnet.yaml mounts it at /host/proc/sys/net): %w",
			path, dir, err)
	}
	return fmt.Errorf("sysctl net/%s under %s: %w", path, dir, err)
}

// warnRPFilter logs a warning if net.ipv4.conf.all.rp_filter is on. The
// kernel filters a packet by reverse path with the larger of conf.all's
// and the device's setting, so conf.all at 1 (strict) or 2 (loose) makes
// the node drop every packet from the TAP with one of its own addresses as
// source (loose mode too, as the TAP has no IPv4 address of its own): the
// replies the fast path reverse-NATs to the node's address never leave.
// The slow path does not change conf.all, which holds for every interface
// of the node: that is the operator's call (docs/slowpath.md).
func (s *SlowPath) warnRPFilter() error {
	b, err := os.ReadFile(filepath.Join(s.opts.ProcSysNet, "ipv4/conf/all/rp_filter"))
	if err != nil {
		return sysctlError(s.opts.ProcSysNet, "ipv4/conf/all/rp_filter", err)
	}
	if v := strings.TrimSpace(string(b)); v != "0" {
		s.log.Warn("slow path: net.ipv4.conf.all.rp_filter is on, so the node drops the replies the fast path "+
			"hands it from the node's own address (NodePort replies from local pods to clients off the node); "+
			"set net.ipv4.conf.all.rp_filter=0 to let them out", "rp_filter", v)
	}
	return nil
}

// route adds (or removes) the host's route for prefix p through the TAP:
// via the gateway, whose neighbour entry is permanent, so that every frame
// the host sends into the TAP carries the gateway's MAC.
func (s *SlowPath) route(p netip.Prefix, add bool) error {
	r := &netlink.Route{LinkIndex: s.index, Dst: prefixNet(p.Masked()), Protocol: rtProtoRingnet}
	if p.Addr().Is4() {
		r.Gw = net.IP(s.gw.IPv4[:])
		r.Flags = int(netlink.FLAG_ONLINK)
	} else {
		r.Gw = net.IP(s.gw.IPv6[:])
	}
	if add {
		if err := s.nl.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via the TAP: %w", p, err)
		}
		return nil
	}
	if err := s.nl.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("remove route %s: %w", p, err)
	}
	return nil
}

// podRoutes adds or removes a pod port's /32 and /128.
func (s *SlowPath) podRoutes(spec pipeline.PortSpec, add bool) error {
	var errs []error
	for _, a := range []netip.Addr{spec.IPv4, spec.IPv6} {
		if a.IsValid() {
			errs = append(errs, s.route(netip.PrefixFrom(a, a.BitLen()), add))
		}
	}
	return errors.Join(errs...)
}

// portChanged is the dataplane's port watcher (called under its lock).
func (s *SlowPath) portChanged(spec pipeline.PortSpec, added bool) {
	if err := s.podRoutes(spec, added); err != nil {
		s.log.Error("slow path: pod routes", "port", spec.Ifname, "added", added, "err", err)
		return
	}
	s.log.Debug("slow path: pod routes", "port", spec.Ifname, "added", added, "ipv4", spec.IPv4, "ipv6", spec.IPv6)
}

// watchAddrs publishes the host to the fast path now and again whenever
// an address of the node changes.
func (s *SlowPath) watchAddrs() error {
	updates := make(chan netlink.AddrUpdate, 64)
	if err := nsnetlink.Open(s.ns, func(ns netns.NsHandle) error {
		return netlink.AddrSubscribeWithOptions(updates, s.watchDone, netlink.AddrSubscribeOptions{
			Namespace: &ns,
			ErrorCallback: func(err error) {
				select {
				case <-s.watchDone: // closing the subscription fails its receive
				default:
					s.log.Error("slow path: address updates", "err", err)
				}
			},
		})
	}); err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	if err := s.publishHost(); err != nil {
		return err
	}
	s.watching.Add(1)
	go func() {
		defer s.watching.Done()
		for {
			select {
			case <-s.watchDone:
				return
			case _, ok := <-updates:
				if !ok {
					return
				}
				// Collapse a burst of updates into one refresh.
				for len(updates) > 0 {
					<-updates
				}
				if err := s.publishHost(); err != nil {
					s.log.Error("slow path: publish the node's addresses", "err", err)
				}
			}
		}
	}()
	return nil
}

// publishHost reads the node's addresses and publishes the Host.
func (s *SlowPath) publishHost() error {
	addrs, err := nodeAddrs(s.nl)
	if err != nil {
		return err
	}
	h := pipeline.Host{MAC: [6]byte(s.mac), PodPrefixes: s.opts.PodPrefixes,
		ICMPSource4: s.opts.ICMPSource4, ICMPSource6: s.opts.ICMPSource6}
	for _, a := range addrs {
		if a.addr != netip.AddrFrom4(s.gw.IPv4) && a.addr != netip.AddrFrom16(s.gw.IPv6) {
			h.Addrs = append(h.Addrs, a.addr)
		}
	}
	if !h.ICMPSource4.IsValid() {
		h.ICMPSource4 = primary(addrs, true)
	}
	if !h.ICMPSource6.IsValid() {
		h.ICMPSource6 = primary(addrs, false)
	}
	if err := s.dp.SetHost(h); err != nil {
		return err
	}
	s.mu.Lock()
	changed := !slices.Equal(s.host.Addrs, h.Addrs) || s.host.ICMPSource4 != h.ICMPSource4 || s.host.ICMPSource6 != h.ICMPSource6
	s.host = h
	s.mu.Unlock()
	if changed {
		s.log.Info("slow path: node addresses", "addrs", h.Addrs, "icmp_source_v4", h.ICMPSource4, "icmp_source_v6", h.ICMPSource6)
	}
	return nil
}

type nodeAddr struct {
	addr  netip.Addr
	index int // link index
	route bool
}

// nodeAddrs lists the node's own unicast addresses that pods can reach:
// every address in the namespace except loopback and link-local ones. The
// address the kernel would use as the source towards the outside (the
// preferred source of the default route) is marked.
func nodeAddrs(nl *netlink.Handle) ([]nodeAddr, error) {
	list, err := nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the node's addresses: %w", err)
	}
	var out []nodeAddr
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, nodeAddr{addr: ip, index: a.LinkIndex})
	}
	for _, probe := range []net.IP{net.IPv4(192, 0, 2, 1), net.ParseIP("2001:db8::1")} {
		routes, err := nl.RouteGet(probe)
		if err != nil || len(routes) == 0 || routes[0].Src == nil {
			continue
		}
		src, _ := netip.AddrFromSlice(routes[0].Src)
		for i := range out {
			if out[i].addr == src.Unmap() {
				out[i].route = true
			}
		}
	}
	slices.SortStableFunc(out, func(a, b nodeAddr) int { return a.index - b.index })
	return out, nil
}

// primary picks the node's address of a family as the source of ICMP
// errors to pods, the one a router's kernel would likely use: the default
// route's preferred source, else the first address by interface index;
// invalid (the fast path then uses the gateway's) if the node has none.
func primary(addrs []nodeAddr, v4 bool) netip.Addr {
	var first netip.Addr
	for _, a := range addrs {
		if a.addr.Is4() != v4 {
			continue
		}
		if a.route {
			return a.addr
		}
		if !first.IsValid() {
			first = a.addr
		}
	}
	return first
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
