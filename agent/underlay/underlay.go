// Package underlay keeps the MAC addresses of the underlay next hops of
// the peer nodes current, from the kernel's neighbour table.
//
// The fast path sends a frame for a peer node out of the uplink with the
// destination MAC of the next hop: the peer itself when it is on the
// uplink's subnet, else the gateway of the kernel's route to it. The fast
// path bypasses the kernel, so nothing would make the kernel resolve or
// refresh those neighbours; [Neighbors] does:
//
//   - For each tracked peer it asks the kernel for the route (RTM_GETROUTE,
//     as "ip route get" does): the output link, and the gateway or none.
//   - It reads the next hop's entry from the neighbour table. A missing or
//     unusable entry (NONE, INCOMPLETE, FAILED) is resolved by asking the
//     kernel to use the entry: RTM_NEWNEIGH with NTF_USE, which makes the
//     kernel treat the entry as if a packet were waiting for it, so it
//     sends the ARP request (or IPv6 neighbour solicitation) itself. No
//     packet reaches the peer but the ARP request: nothing a peer could
//     take for traffic. The request is repeated every second until the
//     entry resolves. A STALE entry is used, and refreshed the same way
//     (the kernel then probes it with a unicast ARP request).
//   - Netlink subscriptions to neighbour and route changes keep the
//     answer current: a peer's MAC changing, an entry being deleted or
//     failing, a route or an address coming or going. A lost subscription
//     (the kernel drops events when the socket's buffer overflows) is made
//     again, and everything is read afresh.
//
// After each change the full map of resolved peers goes out on
// [Neighbors.Updates]; the agent builds tables/neighbor snapshots from it.
//
// Everything works in the network namespace of the thread that calls
// [Open]: ringnetd is started inside the node's namespace, and a test may
// call Open from a thread locked into one. The netlink sockets (requests
// and subscriptions) are opened there and stay there, whichever thread
// later uses them.
//
// Goroutines: one, started by Open and ended by Close, owns all state and
// makes every netlink request; the netlink library runs two more per
// subscription, ended (and their channels drained) on Close. Track and
// Close are safe to call from any goroutine.
package underlay

import (
	"log/slog"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NextHop is how frames for one peer leave this node.
type NextHop struct {
	MAC       [6]byte    // destination MAC: the peer's, or its gateway's
	Link      string     // the output link's name, when it was resolved
	LinkIndex int        // the output link's index
	Gateway   netip.Addr // the gateway; invalid when the peer is on-link
}

// Neighbors tracks the next hops of a set of peers. Make one with [Open].
type Neighbors struct {
	log     *slog.Logger
	ns      netns.NsHandle              // the namespace; closed when run returns
	h       *netlink.Handle             // requests, bound to ns; used by run only
	updates chan map[netip.Addr]NextHop // cap 1; run replaces an unread map; closed when run returns

	mu      sync.Mutex
	want    []netip.Addr  // guarded by mu: the peers of the last Track
	changed chan struct{} // cap 1: Track tells run that want changed

	done      chan struct{} // closed by Close
	exited    chan struct{} // closed when run returns
	closeOnce sync.Once

	testDrop chan struct{} // a test sends on it to drop the subscriptions, as the kernel may
}

// Track replaces the set of peer addresses to keep resolved. IPv4-mapped
// IPv6 addresses are taken as IPv4 (and so are their keys in the maps);
// invalid addresses are ignored. It does not block, and does nothing
// after Close.
func (n *Neighbors) Track(peers []netip.Addr) {
	want := make([]netip.Addr, 0, len(peers))
	for _, a := range peers {
		if a.IsValid() {
			want = append(want, a.Unmap())
		}
	}
	n.mu.Lock()
	n.want = want
	n.mu.Unlock()
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// Updates delivers the full map of resolved peers (peer address -> next
// hop) after each change. The channel holds one map; a newer map replaces
// one not yet received, so a slow reader skips to the latest. Peers not
// resolved yet are not in the map. Each map is the reader's to keep. The
// channel is closed by Close.
func (n *Neighbors) Updates() <-chan map[netip.Addr]NextHop { return n.updates }

// Close stops tracking, waits for the goroutines to end and closes the
// netlink sockets. It leaves the kernel's neighbour table as it is.
func (n *Neighbors) Close() error {
	n.closeOnce.Do(func() { close(n.done) })
	<-n.exited
	return nil
}

// publish sends m, replacing a map the reader has not taken. Only run
// sends, so after the drain the send cannot block.
func (n *Neighbors) publish(m map[netip.Addr]NextHop) {
	select {
	case <-n.updates:
	default:
	}
	n.updates <- m
}
