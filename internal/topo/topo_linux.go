package topo

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// stem starts every name a Topology makes; Sweep matches on it.
	stem = "rnt"
	// maxPrefix is the longest caller prefix: stem, prefix and the 4 random
	// characters make an ID of at most 11, and "<id>-999" fits IFNAMSIZ.
	maxPrefix = 4
	idRandLen = 4
	maxLinks  = 999

	// Uplink is the name of every node's underlay veth inside its namespace.
	Uplink = "uplink0"

	lockDir  = "/run/ringnet-topo"
	netnsDir = "/run/netns"
)

var (
	prefixRE = regexp.MustCompile(`^[a-z0-9]{0,4}$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.]*$`)
)

// Topology is one underlay bridge and the nodes on it. Its methods may be
// called from any goroutine; they serialise on mu.
type Topology struct {
	ID     string // stem + prefix + random part; every name made starts with it
	Bridge string // the underlay bridge in the root namespace, "<id>-br"

	mu       sync.Mutex
	root     *netlink.Handle   // netlink in the namespace New ran in
	lock     *os.File          // flocked for the Topology's lifetime
	nodes    []*Node           // made in full, in creation order, routers included; guarded by mu
	handles  []*netlink.Handle // netlink in node namespaces, closed by Close; guarded by mu
	routers  []*Node           // guarded by mu
	netnses  []string          // every namespace made, in creation order; guarded by mu
	links    []string          // root-namespace links made: the bridge, then veths; guarded by mu
	nextLink int               // suffix of the next root veth; guarded by mu
	closed   bool              // guarded by mu
}

// NodeOptions configure a node's uplink. The zero value means defaults.
type NodeOptions struct {
	Queues  int        // rx and tx queues of both veth ends; default 1
	MTU     int        // uplink MTU; default 1500
	Gateway netip.Addr // default route; default: the router's address on the node's subnet, if any
}

// Node is a network namespace on the underlay.
type Node struct {
	Name      string
	NS        string           // namespace name, "<id>-<name>"
	Uplink    string           // "uplink0", inside NS
	Address   netip.Prefix     // underlay address on Uplink (a router's first)
	Addresses []netip.Prefix   // every underlay address; more than one on a router
	Gateway   netip.Addr       // default route, if any; AddRouter sets it later on nodes without one
	UplinkMAC net.HardwareAddr // MAC of Uplink
	MTU       int              // MTU of Uplink
	Queues    int              // rx and tx queues of Uplink
	HostVeth  string           // root end of the uplink veth, on the bridge

	t  *Topology
	nl *netlink.Handle // netlink inside NS; closed by Close
}

// New creates an empty topology: a lock and an underlay bridge. prefix is at
// most 4 of [a-z0-9]; it tells apart the callers that may run at once, and
// scopes Sweep. Call Close when done, also when adding to it failed.
func New(prefix string) (*Topology, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("topology prefix %q: want at most %d of [a-z0-9]", prefix, maxPrefix)
	}
	root, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	t := &Topology{root: root}
	if err := t.takeID(prefix); err != nil {
		root.Close()
		return nil, err
	}
	t.Bridge = t.ID + "-br"
	if err := t.addBridge(); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return t, nil
}

// takeID picks a random ID that no lock file and no live name uses, and
// locks it.
func (t *Topology) takeID(prefix string) error {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("lock dir: %w", err)
	}
	for range 32 {
		id := stem + prefix + randomID()
		f, err := createLock(id)
		if errors.Is(err, errBusy) {
			continue
		}
		if err != nil {
			return err
		}
		if inUse(id) { // leftovers of a crash under this ID: leave them to Sweep
			os.Remove(f.Name())
			f.Close()
			continue
		}
		t.ID, t.lock = id, f
		return nil
	}
	return errors.New("no free topology ID after 32 tries; run Sweep")
}

var errBusy = errors.New("busy")

// createLock creates and flocks the lock file of id, or fails with errBusy
// when another run has it.
func createLock(id string) (*os.File, error) {
	path := lockPath(id)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, errBusy
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", id, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close() // a Sweep holds it and will remove it
		return nil, errBusy
	}
	// A Sweep may have removed the file between create and flock.
	if !samePath(f, path) {
		f.Close()
		return nil, errBusy
	}
	fmt.Fprintf(f, "pid %d\n", os.Getpid())
	return f, nil
}

func lockPath(id string) string { return filepath.Join(lockDir, id+".lock") }

// samePath reports whether path still names the open file f.
func samePath(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func randomID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [idRandLen]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

// inUse reports whether a namespace or root link already carries id.
func inUse(id string) bool {
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id+"-") {
			return true
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, id+"-") {
			return true
		}
	}
	return false
}

func (t *Topology) addBridge() error {
	la := netlink.NewLinkAttrs()
	la.Name = t.Bridge
	if err := t.root.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return fmt.Errorf("add bridge %s: %w", t.Bridge, err)
	}
	t.links = append(t.links, t.Bridge)
	if err := noIPv6(t.Bridge); err != nil {
		return err
	}
	if err := t.root.LinkSetUp(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return fmt.Errorf("bridge %s up: %w", t.Bridge, err)
	}
	return nil
}

// noIPv6 turns IPv6 off on a root-namespace link of ours, so that the
// underlay carries only the nodes' traffic: no link-local address, no
// router or multicast listener solicitations from the root namespace.
func noIPv6(dev string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/disable_ipv6", []byte("1"), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) { // no IPv6 at all is fine
		return fmt.Errorf("disable ipv6 on %s: %w", dev, err)
	}
	return nil
}

// AddNode adds a node namespace with its uplink on the underlay at addr.
func (t *Topology) AddNode(name string, addr netip.Prefix, opts NodeOptions) (*Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.addNode(name, []netip.Prefix{addr}, opts, false)
	if err != nil {
		return nil, fmt.Errorf("add node %s: %w", name, err)
	}
	return n, nil
}

// AddRouter adds a node with several underlay addresses, e.g.
// 192.168.50.254/24 and 192.168.60.254/24, that routes between their
// subnets. Nodes on those subnets without a gateway of their own, added
// before or after, get a default route through it.
func (t *Topology) AddRouter(name string, addrs []netip.Prefix, opts NodeOptions) (*Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(addrs) == 0 {
		return nil, fmt.Errorf("add router %s: no addresses", name)
	}
	r, err := t.addNode(name, addrs, opts, true)
	if err != nil {
		return nil, fmt.Errorf("add router %s: %w", name, err)
	}
	for _, n := range t.nodes {
		if n == r || n.Gateway.IsValid() {
			continue
		}
		if gw := routerAddr(r, n.Address.Addr()); gw.IsValid() {
			if err := n.setGateway(gw); err != nil {
				return nil, fmt.Errorf("add router %s: %w", name, err)
			}
		}
	}
	return r, nil
}

// routerAddr returns the address of router r on the subnet of a.
func routerAddr(r *Node, a netip.Addr) netip.Addr {
	for _, p := range r.Addresses {
		if p.Masked().Contains(a) && p.Addr() != a {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

func (t *Topology) addNode(name string, addrs []netip.Prefix, opts NodeOptions, router bool) (*Node, error) {
	if t.closed {
		return nil, errors.New("topology closed")
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("node name %q: want [a-z0-9][a-z0-9_.]*", name)
	}
	for _, n := range t.nodes {
		if n.Name == name {
			return nil, errors.New("name taken")
		}
	}
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, errors.New("no underlay address")
		}
	}
	if opts.Queues == 0 {
		opts.Queues = 1
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.Queues < 0 || opts.MTU < 68 {
		return nil, fmt.Errorf("queues %d, mtu %d: want queues >= 1, mtu >= 68", opts.Queues, opts.MTU)
	}
	if t.nextLink >= maxLinks {
		return nil, fmt.Errorf("more than %d nodes", maxLinks)
	}
	t.nextLink++
	n := &Node{
		Name: name, NS: t.ID + "-" + name, Uplink: Uplink,
		Address: addrs[0], Addresses: addrs,
		MTU: opts.MTU, Queues: opts.Queues,
		HostVeth: t.ID + "-" + strconv.Itoa(t.nextLink),
		t:        t,
	}
	nsh, err := t.addNetns(n.NS)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	if n.nl, err = netlink.NewHandleAt(nsh); err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", n.NS, err)
	}
	t.handles = append(t.handles, n.nl)

	sysctls := []string{"net/ipv4/ip_forward=1", "net/ipv6/conf/all/forwarding=1"}
	if router {
		// Both subnets share one wire: without this the router would tell
		// senders to go direct (RFC 1620 shared media), and nodes that do
		// not forward would listen.
		sysctls = append(sysctls, "net/ipv4/conf/all/send_redirects=0", "net/ipv4/conf/default/send_redirects=0")
	}
	if err := setSysctls(n.NS, sysctls...); err != nil {
		return nil, err
	}
	if err := linkUp(n.nl, "lo"); err != nil {
		return nil, err
	}

	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = n.HostVeth, opts.MTU
	la.NumTxQueues, la.NumRxQueues = opts.Queues, opts.Queues // both ends
	veth := netlink.NewVeth(la)
	veth.PeerName, veth.PeerNamespace = Uplink, netlink.NsFd(nsh)
	if err := t.root.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("add veth %s to %s: %w", n.HostVeth, Uplink, err)
	}
	t.links = append(t.links, n.HostVeth)
	if err := noIPv6(n.HostVeth); err != nil {
		return nil, err
	}
	br, err := t.root.LinkByName(t.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", t.Bridge, err)
	}
	if err := t.root.LinkSetMaster(veth, br); err != nil {
		return nil, fmt.Errorf("%s into %s: %w", n.HostVeth, t.Bridge, err)
	}
	if err := t.root.LinkSetUp(veth); err != nil {
		return nil, fmt.Errorf("%s up: %w", n.HostVeth, err)
	}

	up, err := n.nl.LinkByName(Uplink)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", Uplink, n.NS, err)
	}
	n.UplinkMAC = up.Attrs().HardwareAddr
	for _, a := range addrs {
		if err := addAddr(n.nl, up, a); err != nil {
			return nil, err
		}
	}
	if err := n.nl.LinkSetUp(up); err != nil {
		return nil, fmt.Errorf("%s up: %w", Uplink, err)
	}
	gw := opts.Gateway
	if !gw.IsValid() && !router {
		for _, r := range t.routers {
			if gw = routerAddr(r, n.Address.Addr()); gw.IsValid() {
				break
			}
		}
	}
	if gw.IsValid() {
		if err := n.setGateway(gw); err != nil {
			return nil, err
		}
	}
	t.nodes = append(t.nodes, n)
	if router {
		t.routers = append(t.routers, n)
	}
	return n, nil
}

// setGateway adds the node's default route through gw on its uplink.
func (n *Node) setGateway(gw netip.Addr) error {
	up, err := n.nl.LinkByName(Uplink)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", Uplink, n.NS, err)
	}
	if err := addDefaultRoute(n.nl, up, gw); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.Gateway = gw
	return nil
}

// addNetns creates a named namespace (ip netns add), records it for Close,
// and returns a handle on it that the caller closes.
func (t *Topology) addNetns(name string) (netns.NsHandle, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return netns.None(), fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	t.netnses = append(t.netnses, name)
	h, err := netns.GetFromName(name)
	if err != nil {
		return netns.None(), fmt.Errorf("open netns %s: %w", name, err)
	}
	return h, nil
}

// setSysctls writes "key=value" pairs (keys under /proc/sys, slashes) inside
// the namespace.
func setSysctls(ns string, kvs ...string) error {
	return Do(ns, func() error {
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0); err != nil {
				return fmt.Errorf("sysctl %s: %w", kv, err)
			}
		}
		return nil
	})
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// addAddr adds p to l; IPv6 without duplicate address detection, so the
// address is usable at once.
func addAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", p, l.Attrs().Name, err)
	}
	return nil
}

func addDefaultRoute(h *netlink.Handle, l netlink.Link, gw netip.Addr) error {
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Gw: gw.AsSlice()}
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("default route via %s dev %s: %w", gw, l.Attrs().Name, err)
	}
	return nil
}

// Nodes returns the nodes in creation order, routers and Flannel-style
// nodes included.
func (t *Topology) Nodes() []*Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*Node(nil), t.nodes...)
}

// Close removes every namespace, veth and bridge the topology made, and its
// lock. It kills what still runs inside the namespaces first, since a
// process keeps its namespace, and the links in it, alive. It tries
// everything and returns the first error; later calls return nil.
func (t *Topology) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	for _, h := range t.handles {
		h.Close() // its sockets hold the namespace too
	}
	err := removeAll(t.root, t.netnses, t.links)
	if t.lock != nil {
		if rmErr := os.Remove(t.lock.Name()); rmErr != nil && err == nil {
			err = fmt.Errorf("remove lock: %w", rmErr)
		}
		t.lock.Close()
	}
	t.root.Close()
	return err
}

// removeAll kills the processes in the namespaces, then deletes the root
// links (in reverse order: veths before the bridge) and the namespaces
// (pods before their nodes). Missing ones count as removed.
func removeAll(root *netlink.Handle, netnses, links []string) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for i := len(netnses) - 1; i >= 0; i-- {
		keep(killNetnsProcs(netnses[i]))
	}
	for i := len(links) - 1; i >= 0; i-- {
		keep(delLink(root, links[i]))
	}
	for i := len(netnses) - 1; i >= 0; i-- {
		keep(delNetns(netnses[i]))
	}
	return first
}

func delLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// delNetns does what ip netns del does: unmount the name and remove it.
func delNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.ENOENT && err != unix.EINVAL {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

// killNetnsProcs SIGKILLs every process whose network namespace is the
// named one (what ip netns pids finds), never the caller's own.
func killNetnsProcs(name string) error {
	var ns unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &ns); err != nil {
		return nil // gone already
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if st.Dev == ns.Dev && st.Ino == ns.Ino {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
				return fmt.Errorf("kill %d in netns %s: %w", pid, name, err)
			}
		}
	}
	return nil
}
