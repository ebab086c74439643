package underlay

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/internal/netnstest"
)

// The topology: a node namespace (where Neighbors runs) joined by a veth
// to a peer namespace, and optionally to a router namespace with a peer
// behind it on another subnet. IPv6 is off in all of them, so that the
// only frames on the wire are what the test causes.

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func newNS(t *testing.T, prefix string) netnstest.NS {
	t.Helper()
	ns := netnstest.New(t, prefix)
	netnstest.Run(t, ns.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// link joins a and b with a veth (aIf in a, bIf in b), addresses them and
// brings them up.
func link(t *testing.T, a netnstest.NS, aIf, aAddr string, b netnstest.NS, bIf, bAddr string) {
	t.Helper()
	netnstest.Run(t, a.Name, "ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	netnstest.Run(t, a.Name, "ip", "addr", "add", aAddr, "dev", aIf)
	netnstest.Run(t, b.Name, "ip", "addr", "add", bAddr, "dev", bIf)
	netnstest.Run(t, a.Name, "ip", "link", "set", aIf, "up")
	netnstest.Run(t, b.Name, "ip", "link", "set", bIf, "up")
}

// linkInfo returns an interface's MAC and index.
func linkInfo(t *testing.T, ns netnstest.NS, ifname string) ([6]byte, int) {
	t.Helper()
	var info []struct {
		Index   int    `json:"ifindex"`
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(netnstest.Run(t, ns.Name, "ip", "-j", "link", "show", ifname)), &info); err != nil || len(info) != 1 {
		t.Fatalf("ip -j link show %s: %v %v", ifname, info, err)
	}
	mac, err := net.ParseMAC(info[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return [6]byte(mac), info[0].Index
}

// snmp returns a counter of /proc/net/snmp in ns, such as "Ip", "InReceives".
func snmp(t *testing.T, ns netnstest.NS, proto, name string) int {
	t.Helper()
	lines := strings.Split(netnstest.Run(t, ns.Name, "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != proto+":" {
			continue
		}
		for k, n := range names {
			if n == name && k < len(values) {
				v, _ := strconv.Atoi(values[k])
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", proto, name)
	return 0
}

// open opens Neighbors inside ns and closes it when the test ends.
func openIn(t *testing.T, ns netnstest.NS, withUDP bool) *Neighbors {
	t.Helper()
	var nb *Neighbors
	ns.Do(t, func() error {
		var err error
		nb, err = open(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})), withUDP)
		return err
	})
	t.Cleanup(func() { nb.Close() })
	return nb
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitFor reads maps until want(m) holds, and returns that map.
func waitFor(t *testing.T, nb *Neighbors, what string, want func(map[netip.Addr]NextHop) bool) map[netip.Addr]NextHop {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var last map[netip.Addr]NextHop
	for {
		select {
		case m, ok := <-nb.Updates():
			if !ok {
				t.Fatalf("%s: Updates closed", what)
			}
			if last = m; want(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("%s: not within 10s; last map: %v", what, last)
		}
	}
}

func hasMAC(peer netip.Addr, mac [6]byte) func(map[netip.Addr]NextHop) bool {
	return func(m map[netip.Addr]NextHop) bool { return m[peer].MAC == mac }
}

// TestOnLink: a peer on the node's subnet resolves to its own MAC with no
// traffic before, and none but ARP at all; a new MAC is picked up when
// the entry is deleted, and when the peer announces it (gratuitous ARP).
// Track replaces the set; an unresolvable peer stays out of the map.
func TestOnLink(t *testing.T) {
	node, peerNS := newNS(t, "uln"), newNS(t, "ulp")
	link(t, node, "up0", "10.9.0.1/24", peerNS, "eth0", "10.9.0.2/24")
	peer, ghost := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.99")
	peerMAC, _ := linkInfo(t, peerNS, "eth0")
	_, upIndex := linkInfo(t, node, "up0")
	if out := netnstest.Run(t, node.Name, "ip", "neigh", "show"); strings.TrimSpace(out) != "" {
		t.Fatalf("neighbour table not empty at the start:\n%s", out)
	}

	nb := openIn(t, node, false)
	nb.Track([]netip.Addr{peer, ghost})
	m := waitFor(t, nb, "peer resolved", hasMAC(peer, peerMAC))
	want := map[netip.Addr]NextHop{peer: {MAC: peerMAC, Link: "up0", LinkIndex: upIndex}}
	if diff := cmp.Diff(want, m, cmpAddr); diff != "" {
		t.Errorf("map (-want +got):\n%s", diff)
	}
	if n := snmp(t, peerNS, "Ip", "InReceives"); n != 0 {
		t.Errorf("the peer received %d IP packets; resolution should send it ARP only", n)
	}

	// The peer's MAC changes; the node's entry is deleted (as when it
	// expires or is flushed) and resolves again.
	mac2 := [6]byte{0x02, 0, 0, 0, 0x0b, 0x02}
	netnstest.Run(t, peerNS.Name, "ip", "link", "set", "eth0", "address", net.HardwareAddr(mac2[:]).String())
	netnstest.Run(t, node.Name, "ip", "neigh", "del", "10.9.0.2", "dev", "up0")
	waitFor(t, nb, "new MAC after the entry is deleted", hasMAC(peer, mac2))

	// The peer's MAC changes and it says so (arp_notify: gratuitous ARP).
	netnstest.Run(t, peerNS.Name, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1")
	mac3 := [6]byte{0x02, 0, 0, 0, 0x0b, 0x03}
	netnstest.Run(t, peerNS.Name, "ip", "link", "set", "eth0", "address", net.HardwareAddr(mac3[:]).String())
	waitFor(t, nb, "new MAC after gratuitous ARP", hasMAC(peer, mac3))

	// Track replaces the set.
	nb.Track(nil)
	waitFor(t, nb, "empty map after Track(nil)", func(m map[netip.Addr]NextHop) bool { return len(m) == 0 })
	nb.Track([]netip.Addr{netip.MustParseAddr("::ffff:10.9.0.2")})
	waitFor(t, nb, "IPv4-mapped peer tracked as IPv4", hasMAC(peer, mac3))
}

// TestOnLinkIPv6: the same for an IPv6 peer, resolved by neighbour
// discovery. Just after the link comes up the first solicitations tend to
// go unanswered (IPv6 is still setting the link up); the retries get
// there.
func TestOnLinkIPv6(t *testing.T) {
	node, peerNS := netnstest.New(t, "uln"), netnstest.New(t, "ulp")
	link(t, node, "up0", "10.9.0.1/24", peerNS, "eth0", "10.9.0.2/24")
	netnstest.Run(t, node.Name, "ip", "addr", "add", "fd00:9::1/64", "dev", "up0", "nodad")
	netnstest.Run(t, peerNS.Name, "ip", "addr", "add", "fd00:9::2/64", "dev", "eth0", "nodad")
	peer := netip.MustParseAddr("fd00:9::2")
	peerMAC, _ := linkInfo(t, peerNS, "eth0")
	_, upIndex := linkInfo(t, node, "up0")

	nb := openIn(t, node, false)
	nb.Track([]netip.Addr{peer})
	m := waitFor(t, nb, "IPv6 peer resolved", hasMAC(peer, peerMAC))
	want := map[netip.Addr]NextHop{peer: {MAC: peerMAC, Link: "up0", LinkIndex: upIndex}}
	if diff := cmp.Diff(want, m, cmpAddr); diff != "" {
		t.Errorf("map (-want +got):\n%s", diff)
	}
}

// TestGateway: a peer on another subnet resolves to the MAC of the
// gateway of the kernel's route, once there is a route, and follows the
// route when it changes.
func TestGateway(t *testing.T) {
	node, router, peerNS := newNS(t, "uln"), newNS(t, "ulr"), newNS(t, "ulp")
	link(t, node, "up0", "10.9.1.1/24", router, "r0", "10.9.1.254/24")
	link(t, router, "r1", "10.9.2.254/24", peerNS, "eth0", "10.9.2.2/24")
	netnstest.Run(t, router.Name, "ip", "addr", "add", "10.9.1.253/24", "dev", "r0")
	netnstest.Run(t, peerNS.Name, "ip", "route", "add", "default", "via", "10.9.2.254")
	routerMAC, _ := linkInfo(t, router, "r0")
	_, upIndex := linkInfo(t, node, "up0")
	peer := netip.MustParseAddr("10.9.2.2")

	nb := openIn(t, node, false)
	nb.Track([]netip.Addr{peer})
	// No route yet: nothing resolves.
	select {
	case m := <-nb.Updates():
		t.Fatalf("a map before there is a route: %v", m)
	case <-time.After(1500 * time.Millisecond):
	}

	netnstest.Run(t, node.Name, "ip", "route", "add", "10.9.2.0/24", "via", "10.9.1.254")
	m := waitFor(t, nb, "peer behind the gateway", hasMAC(peer, routerMAC))
	want := map[netip.Addr]NextHop{peer: {MAC: routerMAC, Link: "up0", LinkIndex: upIndex, Gateway: netip.MustParseAddr("10.9.1.254")}}
	if diff := cmp.Diff(want, m, cmpAddr); diff != "" {
		t.Errorf("map (-want +got):\n%s", diff)
	}

	netnstest.Run(t, node.Name, "ip", "route", "replace", "10.9.2.0/24", "via", "10.9.1.253")
	waitFor(t, nb, "the new gateway", func(m map[netip.Addr]NextHop) bool {
		return m[peer].Gateway == netip.MustParseAddr("10.9.1.253") && m[peer].MAC == routerMAC
	})

	netnstest.Run(t, node.Name, "ip", "route", "del", "10.9.2.0/24")
	waitFor(t, nb, "no route, no next hop", func(m map[netip.Addr]NextHop) bool { return len(m) == 0 })
}

// TestStaleRefreshed: a STALE entry is used, and refreshed. Here it holds
// a MAC nobody has (as when a peer's NIC is replaced silently): the
// refresh's unicast probes fail, the entry fails, the peer leaves the map
// and comes back with its real MAC.
func TestStaleRefreshed(t *testing.T) {
	node, peerNS := newNS(t, "uln"), newNS(t, "ulp")
	link(t, node, "up0", "10.9.0.1/24", peerNS, "eth0", "10.9.0.2/24")
	netnstest.Run(t, node.Name, "sysctl", "-qw", "net.ipv4.neigh.up0.delay_first_probe_time=1", "net.ipv4.neigh.up0.retrans_time_ms=200")
	peer := netip.MustParseAddr("10.9.0.2")
	peerMAC, _ := linkInfo(t, peerNS, "eth0")

	nb := openIn(t, node, false)
	nb.Track([]netip.Addr{peer})
	waitFor(t, nb, "peer resolved", hasMAC(peer, peerMAC))
	bad := [6]byte{0x02, 0, 0, 0, 0x0b, 0xad}
	netnstest.Run(t, node.Name, "ip", "neigh", "replace", "10.9.0.2", "dev", "up0", "lladdr", net.HardwareAddr(bad[:]).String(), "nud", "stale")
	waitFor(t, nb, "the stale MAC, used", hasMAC(peer, bad))
	waitFor(t, nb, "the stale MAC refreshed: the peer gone", func(m map[netip.Addr]NextHop) bool { return len(m) == 0 })
	waitFor(t, nb, "the real MAC again", hasMAC(peer, peerMAC))
}

// TestSubscriptionLost: when the kernel drops a subscription, Neighbors
// subscribes again and still sees changes.
func TestSubscriptionLost(t *testing.T) {
	node, peerNS := newNS(t, "uln"), newNS(t, "ulp")
	link(t, node, "up0", "10.9.0.1/24", peerNS, "eth0", "10.9.0.2/24")
	peer := netip.MustParseAddr("10.9.0.2")
	peerMAC, _ := linkInfo(t, peerNS, "eth0")

	nb := openIn(t, node, false)
	nb.Track([]netip.Addr{peer})
	waitFor(t, nb, "peer resolved", hasMAC(peer, peerMAC))
	nb.testDrop <- struct{}{}
	mac2 := [6]byte{0x02, 0, 0, 0, 0x0b, 0x02}
	netnstest.Run(t, peerNS.Name, "ip", "link", "set", "eth0", "address", net.HardwareAddr(mac2[:]).String())
	netnstest.Run(t, node.Name, "ip", "neigh", "del", "10.9.0.2", "dev", "up0")
	waitFor(t, nb, "new MAC after subscribing again", hasMAC(peer, mac2))
}

// TestUDPFallback: the fallback trigger, a UDP datagram to the discard
// port, does make the kernel resolve the peer.
func TestUDPFallback(t *testing.T) {
	node, peerNS := newNS(t, "uln"), newNS(t, "ulp")
	link(t, node, "up0", "10.9.0.1/24", peerNS, "eth0", "10.9.0.2/24")
	peer := netip.MustParseAddr("10.9.0.2")
	peerMAC, _ := linkInfo(t, peerNS, "eth0")

	nb := openIn(t, node, true)
	nb.Track([]netip.Addr{peer})
	waitFor(t, nb, "peer resolved", hasMAC(peer, peerMAC))
	deadline := time.Now().Add(5 * time.Second)
	for snmp(t, peerNS, "Udp", "NoPorts") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the peer received no datagram on the discard port")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClose: Close ends every goroutine (its own and the netlink
// library's), closes Updates, and Track after Close does nothing.
func TestClose(t *testing.T) {
	node, peerNS := newNS(t, "uln"), newNS(t, "ulp")
	link(t, node, "up0", "10.9.0.1/24", peerNS, "eth0", "10.9.0.2/24")
	peer := netip.MustParseAddr("10.9.0.2")
	peerMAC, _ := linkInfo(t, peerNS, "eth0")

	before := runtime.NumGoroutine()
	var nb *Neighbors
	node.Do(t, func() error {
		var err error
		nb, err = Open(nil)
		return err
	})
	nb.Track([]netip.Addr{peer, netip.MustParseAddr("10.9.0.99")})
	waitFor(t, nb, "peer resolved", hasMAC(peer, peerMAC))
	if during := runtime.NumGoroutine(); during <= before {
		t.Errorf("%d goroutines while open, %d before: the count does not see them", during, before)
	}
	if err := nb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := nb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for range nb.Updates() { // drains and ends: closed
	}
	nb.Track([]netip.Addr{peer})
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
