package underlay

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/ringnet/ringnet/nsnetlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	retryEvery   = time.Second           // resolution and failed requests are retried this often
	routeSettle  = 50 * time.Millisecond // route events are gathered this long before the routes are read again
	warnAfter    = 5                     // unresolved retries before a warning
	requestLimit = 5 * time.Second       // a netlink request's answer is awaited this long
	subBuffer    = 1 << 20               // receive buffer of the subscription sockets (capped by net.core.rmem_max)
	eventQueue   = 64                    // events the library may queue before it waits for run
)

// Open starts tracking in the network namespace of the calling thread
// (the process's, unless the caller locked its thread into another), with
// no peers yet (see [Neighbors.Track]). log, which may be nil, receives the
// rare events: a peer without a route, a peer's next hop changing, a peer
// not resolving, a subscription lost.
func Open(log *slog.Logger) (*Neighbors, error) {
	return open(log, false)
}

// open is Open; withUDP makes the trigger the UDP datagram instead of
// NTF_USE (for tests of the fallback).
func open(log *slog.Logger, withUDP bool) (*Neighbors, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The thread's namespace, and the fallback's sockets opened in it,
	// without the goroutine moving to another thread between the two.
	runtime.LockOSThread()
	ns, err := netns.Get()
	var udp *udpTrigger
	var udpErr error
	if err == nil {
		udp, udpErr = newUDPTrigger()
	}
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("underlay: network namespace: %w", err)
	}
	if udpErr != nil {
		log.Debug("underlay: no UDP fallback for resolving neighbours", "err", udpErr)
	}
	var h *netlink.Handle
	err = nsnetlink.Open(ns, func(ns netns.NsHandle) (err error) { h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); return err })
	if err != nil {
		ns.Close()
		udp.close()
		return nil, fmt.Errorf("underlay: netlink: %w", err)
	}
	if err := h.SetSocketTimeout(requestLimit); err != nil {
		h.Close()
		ns.Close()
		udp.close()
		return nil, fmt.Errorf("underlay: netlink: %w", err)
	}
	n := &Neighbors{
		log:     log,
		ns:      ns,
		h:       h,
		updates: make(chan map[netip.Addr]NextHop, 1),
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),

		testDrop: make(chan struct{}),
	}
	t := &tracker{
		n:         n,
		peers:     map[netip.Addr]*peer{},
		hops:      map[hopKey]*hop{},
		published: map[netip.Addr]NextHop{},
		udp:       udp,
		useUDP:    withUDP && udp != nil,
	}
	if err := t.subscribe(); err != nil {
		t.unsubscribe()
		h.Close()
		ns.Close()
		udp.close()
		return nil, fmt.Errorf("underlay: %w", err)
	}
	go t.run()
	return n, nil
}

// tracker is the state of the run goroutine, which alone touches it.
type tracker struct {
	n         *Neighbors
	peers     map[netip.Addr]*peer
	hops      map[hopKey]*hop // the next hops of the routed peers
	published map[netip.Addr]NextHop

	neighSub *subscription[netlink.NeighUpdate]
	routeSub *subscription[netlink.RouteUpdate]

	routesDirty bool        // read every peer's route again
	dumpNeeded  bool        // some hop's entry is unknown: read the neighbour table
	settle      *time.Timer // gathers route events; nil when not armed

	udp    *udpTrigger // the fallback trigger; nil if it could not be made
	useUDP bool        // NTF_USE failed (or a test wants the fallback)
}

// peer is one tracked peer and its route.
type peer struct {
	routed   bool
	hop      hopKey     // valid when routed
	gateway  netip.Addr // invalid when on-link
	linkName string
	routeErr string // the last route failure, logged when it changes
	tries    int    // retries since the peer was last resolved
}

// hopKey is a next hop: the output link and the neighbour's address.
type hopKey struct {
	link int
	addr netip.Addr
}

// hop is what the kernel's neighbour table says of a next hop.
type hop struct {
	known bool // the state below is the kernel's (else: not read yet)
	state int  // NUD_*; 0 if there is no entry
	mac   [6]byte
	ok    bool // the entry's MAC may be used
}

func (t *tracker) run() {
	n := t.n
	defer func() {
		t.unsubscribe()
		if t.settle != nil {
			t.settle.Stop()
		}
		n.h.Close()
		n.ns.Close()
		t.udp.close()
		close(n.updates)
		close(n.exited)
	}()
	tick := time.NewTicker(retryEvery)
	defer tick.Stop()
	for {
		var settle <-chan time.Time
		if t.settle != nil {
			settle = t.settle.C
		}
		changed := true // sync after the event
		select {
		case <-n.done:
			return
		case <-n.changed:
			n.mu.Lock()
			want := n.want
			n.mu.Unlock()
			t.setPeers(want)
		case u, ok := <-t.neighSub.events():
			if !ok {
				err := t.neighSub.err()
				t.neighSub.close()
				t.neighSub = nil
				t.lost("neighbour", err)
				break
			}
			changed = t.neighEvent(u)
		case _, ok := <-t.routeSub.events():
			if !ok {
				err := t.routeSub.err()
				t.routeSub.close()
				t.routeSub = nil
				t.lost("route", err)
				break
			}
			if t.settle == nil {
				t.settle = time.NewTimer(routeSettle)
			}
			changed = false
		case <-settle:
			t.settle = nil
			t.routesDirty = true
		case <-tick.C:
			if t.neighSub == nil || t.routeSub == nil {
				if err := t.subscribe(); err != nil {
					n.log.Warn("underlay: subscribe again", "err", err)
				}
			}
			t.retry()
		case <-n.testDrop:
			t.unsubscribe()
			t.lost("every", errors.New("dropped by a test"))
		}
		if changed {
			t.sync()
		}
	}
}

// lost handles a subscription that ended by itself: events may be
// missing, so once subscribed again everything is read afresh.
func (t *tracker) lost(what string, err error) {
	t.n.log.Warn("underlay: netlink subscription lost; subscribing again", "events", what, "err", err)
	if err := t.subscribe(); err != nil {
		t.n.log.Warn("underlay: subscribe again", "err", err)
	}
}

// subscribe makes the subscriptions that are missing and, having made one,
// marks routes and neighbours to be read afresh (events may have been
// missed before it).
func (t *tracker) subscribe() error {
	opts := subOptions{ns: t.n.ns}
	var err error
	if t.neighSub == nil {
		t.neighSub, err = subscribeNeigh(opts)
		if err != nil {
			return fmt.Errorf("subscribe to neighbour changes: %w", err)
		}
		t.forgetHops()
	}
	if t.routeSub == nil {
		t.routeSub, err = subscribeRoute(opts)
		if err != nil {
			return fmt.Errorf("subscribe to route changes: %w", err)
		}
		t.routesDirty = true
	}
	return nil
}

func (t *tracker) unsubscribe() {
	t.neighSub.close()
	t.routeSub.close()
	t.neighSub, t.routeSub = nil, nil
}

// forgetHops marks every hop's entry unknown, to be read again.
func (t *tracker) forgetHops() {
	for _, h := range t.hops {
		h.known = false
	}
	t.dumpNeeded = len(t.hops) > 0
}

// setPeers makes want the tracked peers.
func (t *tracker) setPeers(want []netip.Addr) {
	keep := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		keep[a] = true
		if t.peers[a] == nil {
			p := &peer{}
			t.peers[a] = p
			t.route(a, p)
		}
	}
	for a := range t.peers {
		if !keep[a] {
			delete(t.peers, a)
		}
	}
}

// sync brings everything up to date after an event and publishes the map
// if it changed.
func (t *tracker) sync() {
	if t.routesDirty {
		t.routesDirty = false
		for a, p := range t.peers {
			t.route(a, p)
		}
	}
	// Hops: add the new ones (read from the table), drop those no peer uses.
	used := make(map[hopKey]bool, len(t.peers))
	for _, p := range t.peers {
		if !p.routed {
			continue
		}
		used[p.hop] = true
		if t.hops[p.hop] == nil {
			t.hops[p.hop] = &hop{}
			t.dumpNeeded = true
		}
	}
	for k := range t.hops {
		if !used[k] {
			delete(t.hops, k)
		}
	}
	if t.dumpNeeded {
		t.dump()
	}
	t.publishMap()
}

// route reads the kernel's route to peer a.
func (t *tracker) route(a netip.Addr, p *peer) {
	was := *p
	p.routed = false
	k, gw, name, err := t.routeGet(a)
	if err != nil {
		if msg := err.Error(); msg != p.routeErr {
			t.n.log.Warn("underlay: no route to peer; retrying", "peer", a, "err", err)
			p.routeErr = msg
		}
		return
	}
	p.routed, p.hop, p.gateway, p.linkName, p.routeErr = true, k, gw, name, ""
	if was.routed && (was.hop != k || was.linkName != name) {
		t.n.log.Info("underlay: peer's next hop changed", "peer", a, "link", name, "gateway", gw, "was_link", was.linkName, "was_gateway", was.gateway)
	}
}

// routeGet asks the kernel how it would send to a: the output link and the
// next hop, the gateway (returned too) or a itself.
func (t *tracker) routeGet(a netip.Addr) (hopKey, netip.Addr, string, error) {
	rs, err := t.n.h.RouteGet(a.AsSlice())
	if err != nil {
		return hopKey{}, netip.Addr{}, "", err
	}
	if len(rs) == 0 {
		return hopKey{}, netip.Addr{}, "", errors.New("no route")
	}
	r := rs[0]
	if r.Type != unix.RTN_UNICAST {
		return hopKey{}, netip.Addr{}, "", fmt.Errorf("route of type %d, not unicast (is the peer's address this node's own?)", r.Type)
	}
	if r.LinkIndex <= 0 {
		return hopKey{}, netip.Addr{}, "", errors.New("route without an output link")
	}
	var gw netip.Addr
	if g, ok := netip.AddrFromSlice(r.Gw); ok {
		gw = g.Unmap()
	} else if v, ok := r.Via.(*netlink.Via); ok {
		if g, ok := netip.AddrFromSlice(v.Addr); ok {
			gw = g.Unmap()
		}
	}
	nh := a
	if gw.IsValid() {
		nh = gw
	}
	var name string
	if l, err := t.n.h.LinkByIndex(r.LinkIndex); err == nil {
		name = l.Attrs().Name
	}
	return hopKey{r.LinkIndex, nh}, gw, name, nil
}

// dump reads the neighbour table for the hops whose entries are unknown,
// and asks for those not resolved.
func (t *tracker) dump() {
	ns, err := t.n.h.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		// Interrupted by a change, or failed: the next tick tries again.
		t.n.log.Debug("underlay: read the neighbour table", "err", err)
		return
	}
	t.dumpNeeded = false
	seen := map[hopKey]bool{}
	for i := range ns {
		k, ok := neighKey(&ns[i])
		if h := t.hops[k]; ok && h != nil && !h.known {
			h.set(&ns[i])
			seen[k] = true
		}
	}
	for k, h := range t.hops {
		if !h.known {
			*h = hop{known: true} // no entry
			seen[k] = true
		}
	}
	for k := range seen {
		if t.hops[k].wantsTrigger() {
			t.trigger(k)
		}
	}
}

// neighEvent applies a neighbour table change to the hop it concerns, and
// reports whether there was one.
func (t *tracker) neighEvent(u netlink.NeighUpdate) bool {
	k, ok := neighKey(&u.Neigh)
	h := t.hops[k]
	if !ok || h == nil {
		return false
	}
	if u.Type == unix.RTM_DELNEIGH {
		*h = hop{known: true}
	} else {
		h.set(&u.Neigh)
	}
	// A deleted or stale entry is refreshed at once; a failed one waits
	// for the next tick, so a dead peer is asked for once a second.
	if h.state == 0 || h.state&unix.NUD_STALE != 0 {
		t.trigger(k)
	}
	return true
}

func neighKey(nb *netlink.Neigh) (hopKey, bool) {
	if nb.Family != unix.AF_INET && nb.Family != unix.AF_INET6 {
		return hopKey{}, false
	}
	a, ok := netip.AddrFromSlice(nb.IP)
	return hopKey{nb.LinkIndex, a.Unmap()}, ok
}

// usable are the states whose MAC may be used.
const usable = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP

func (h *hop) set(nb *netlink.Neigh) {
	h.known, h.state, h.ok = true, nb.State, false
	if nb.State&usable != 0 && len(nb.HardwareAddr) == 6 {
		h.mac, h.ok = [6]byte(nb.HardwareAddr), true
	}
}

// wantsTrigger: the entry is missing, unusable and not being resolved, or
// stale.
func (h *hop) wantsTrigger() bool {
	return !h.ok && h.state&unix.NUD_INCOMPLETE == 0 || h.state&unix.NUD_STALE != 0
}

// retry runs every second: it reads what failed before and asks again
// for the hops that are not resolved.
func (t *tracker) retry() {
	for a, p := range t.peers {
		if !p.routed {
			t.route(a, p)
		}
	}
	for k, h := range t.hops {
		if !h.known {
			t.dumpNeeded = true
		} else if h.wantsTrigger() {
			t.trigger(k)
		}
	}
	for a, p := range t.peers {
		if _, ok := t.published[a]; ok {
			p.tries = 0
			continue
		}
		if p.tries++; p.tries == warnAfter {
			t.n.log.Warn("underlay: peer not resolved yet; still trying", "peer", a, "link", p.linkName, "next_hop", p.hop.addr, "routed", p.routed)
		}
	}
}

// trigger asks the kernel to resolve (or refresh) a next hop: it marks the
// neighbour entry used (NTF_USE), creating it if need be, as sending a
// packet would. Should the kernel refuse that (no CAP_NET_ADMIN), a UDP
// datagram to the neighbour's discard port does it from then on.
func (t *tracker) trigger(k hopKey) {
	if !t.useUDP {
		err := t.n.h.NeighSet(&netlink.Neigh{LinkIndex: k.link, IP: k.addr.AsSlice(), Flags: netlink.NTF_USE})
		switch {
		case err == nil:
			return
		case t.udp == nil || !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL):
			// Transient (the link went away, say): the next tick asks again.
			t.n.log.Debug("underlay: ask the kernel to resolve a neighbour", "neighbour", k.addr, "err", err)
			return
		}
		t.n.log.Warn("underlay: the kernel refused NTF_USE; resolving neighbours by sending them empty UDP datagrams to the discard port instead", "err", err)
		t.useUDP = true
	}
	if err := t.udp.send(k.link, k.addr); err != nil {
		t.n.log.Debug("underlay: resolve by UDP", "neighbour", k.addr, "err", err)
	}
}

// publishMap publishes the resolved peers if they changed.
func (t *tracker) publishMap() {
	m := make(map[netip.Addr]NextHop, len(t.peers))
	for a, p := range t.peers {
		if !p.routed {
			continue
		}
		if h := t.hops[p.hop]; h != nil && h.ok {
			m[a] = NextHop{MAC: h.mac, Link: p.linkName, LinkIndex: p.hop.link, Gateway: p.gateway}
		}
	}
	if maps.Equal(m, t.published) {
		return
	}
	for a, nh := range m {
		if old, ok := t.published[a]; !ok || old.MAC != nh.MAC {
			t.n.log.Debug("underlay: peer resolved", "peer", a, "mac", net.HardwareAddr(nh.MAC[:]).String(), "link", nh.Link, "gateway", nh.Gateway)
		}
	}
	t.published = m
	t.n.publish(maps.Clone(m))
}

// udpTrigger is the fallback: a datagram to the discard port (9) makes
// the kernel resolve the next hop to send it. Its sockets are opened in
// the tracked namespace.
type udpTrigger struct {
	v4, v6 int // file descriptors; -1 if the family is unavailable
}

func newUDPTrigger() (*udpTrigger, error) {
	u := &udpTrigger{v4: -1, v6: -1}
	var err error
	if u.v4, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("udp socket: %w", err)
	}
	u.v6, _ = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0) // -1 without IPv6
	return u, nil
}

// send sends an empty datagram to the discard port of a, a neighbour on
// the link: the kernel must resolve a to send it.
func (u *udpTrigger) send(link int, a netip.Addr) error {
	if a.Is4() {
		return unix.Sendto(u.v4, nil, 0, &unix.SockaddrInet4{Port: 9, Addr: a.As4()})
	}
	if u.v6 < 0 {
		return errors.New("no IPv6")
	}
	sa := &unix.SockaddrInet6{Port: 9, Addr: a.As16()}
	if a.IsLinkLocalUnicast() {
		sa.ZoneId = uint32(link) // a gateway's link-local address
	}
	return unix.Sendto(u.v6, nil, 0, sa)
}

func (u *udpTrigger) close() {
	if u == nil {
		return
	}
	for _, fd := range []int{u.v4, u.v6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
