package slowpath

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/internal/netnstest"
)

var testGW = pipeline.Gateway{MAC: [6]byte{0xee, 0xee, 0xee, 0xee, 0xee, 0xee},
	IPv4: [4]byte{169, 254, 1, 1}, IPv6: netip.MustParseAddr("fe80::1").As16()}

// nodeNS makes a node namespace with an address on a veth, as a node has
// on its uplink.
func nodeNS(t *testing.T) netnstest.NS {
	t.Helper()
	n := netnstest.New(t, "rnS")
	netnstest.Run(t, n.Name, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	netnstest.Run(t, n.Name, "ip", "link", "set", "up0", "up")
	netnstest.Run(t, n.Name, "ip", "link", "set", "up0p", "up")
	netnstest.Run(t, n.Name, "ip", "addr", "add", "192.168.77.1/24", "dev", "up0")
	netnstest.Run(t, n.Name, "ip", "addr", "add", "fd77::1/64", "dev", "up0", "nodad")
	return n
}

func startIn(t *testing.T, n netnstest.NS, o Options) (*pipeline.Dataplane, *SlowPath) {
	t.Helper()
	dp, err := pipeline.New(pipeline.Config{Gateway: testGW})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	var sp *SlowPath
	n.Do(t, func() error {
		var err error
		sp, err = Start(dp, o)
		return err
	})
	return dp, sp
}

func sysctl(t *testing.T, ns, key string) string {
	t.Helper()
	return strings.TrimSpace(netnstest.Run(t, ns, "sysctl", "-n", key))
}

// TestStartWithPodCIDRs checks what Start makes on the host's side, the
// Host it publishes, that it follows the node's addresses, and that Close
// removes it all.
func TestStartWithPodCIDRs(t *testing.T) {
	netnstest.RequireRoot(t)
	n := nodeNS(t)
	_, sp := startIn(t, n, Options{MTU: 1400, PodPrefixes: []netip.Prefix{
		netip.MustParsePrefix("10.244.0.0/24"), netip.MustParsePrefix("fd00::/120")}})
	link := netnstest.Run(t, n.Name, "ip", "-d", "link", "show", "ringnet0")
	for _, want := range []string{"mtu 1400", "UP", "tap", sp.MAC().String()} {
		if !strings.Contains(link, want) {
			t.Errorf("ringnet0 lacks %q:\n%s", want, link)
		}
	}
	neigh := netnstest.Run(t, n.Name, "ip", "neigh", "show", "dev", "ringnet0")
	for _, want := range []string{"169.254.1.1 lladdr ee:ee:ee:ee:ee:ee PERMANENT", "fe80::1 lladdr ee:ee:ee:ee:ee:ee PERMANENT"} {
		if !strings.Contains(neigh, want) {
			t.Errorf("no neighbour %q:\n%s", want, neigh)
		}
	}
	r4 := netnstest.Run(t, n.Name, "ip", "route", "show", "dev", "ringnet0")
	r6 := netnstest.Run(t, n.Name, "ip", "-6", "route", "show", "dev", "ringnet0")
	for _, want := range []string{"10.244.0.0/24 via 169.254.1.1 proto 82 onlink", "169.254.1.1 proto 82 scope link"} {
		if !strings.Contains(r4, want) {
			t.Errorf("no route %q:\n%s", want, r4)
		}
	}
	if !strings.Contains(r6, "fd00::/120 via fe80::1 proto 82") {
		t.Errorf("no IPv6 route for the pod CIDR:\n%s", r6)
	}
	for key, want := range map[string]string{
		"net.ipv6.conf.ringnet0.accept_ra":            "0",
		"net.ipv6.conf.ringnet0.router_solicitations": "0",
		"net.ipv4.conf.ringnet0.send_redirects":       "0",
		"net.ipv6.conf.ringnet0.disable_ipv6":         "0",
	} {
		if got := sysctl(t, n.Name, key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}

	h := sp.Host()
	if h.MAC != [6]byte(sp.MAC()) || h.ICMPSource4 != netip.MustParseAddr("192.168.77.1") ||
		h.ICMPSource6 != netip.MustParseAddr("fd77::1") || len(h.PodPrefixes) != 2 {
		t.Errorf("published host %+v", h)
	}
	for _, a := range []string{"192.168.77.1", "fd77::1"} {
		if !slices.Contains(h.Addrs, netip.MustParseAddr(a)) {
			t.Errorf("node address %s not published: %v", a, h.Addrs)
		}
	}
	for _, a := range h.Addrs {
		if a.IsLoopback() || a.IsLinkLocalUnicast() {
			t.Errorf("published %s as a node address", a)
		}
	}

	// A new address is published.
	netnstest.Run(t, n.Name, "ip", "addr", "add", "192.168.78.1/24", "dev", "up0")
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(sp.Host().Addrs, netip.MustParseAddr("192.168.78.1")) {
		if time.Now().After(deadline) {
			t.Fatalf("a new address is not published after 5s: %v", sp.Host().Addrs)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := netnstest.Output(n.Name, "ip", "link", "show", "ringnet0"); err == nil {
		t.Errorf("ringnet0 left after Close:\n%s", out)
	}
	if out := netnstest.Run(t, n.Name, "ip", "route", "show", "proto", "82"); strings.TrimSpace(out) != "" {
		t.Errorf("routes left after Close:\n%s", out)
	}
}

// TestPodRoutesFollowPorts checks that without pod CIDRs each port gets a
// /32 and /128 through the TAP when it is added, and loses them when it
// is removed.
func TestPodRoutesFollowPorts(t *testing.T) {
	netnstest.RequireRoot(t)
	n := nodeNS(t)
	dp, sp := startIn(t, n, Options{ICMPSource4: netip.MustParseAddr("192.168.77.9")})
	defer sp.Close()
	if h := sp.Host(); h.ICMPSource4 != netip.MustParseAddr("192.168.77.9") {
		t.Errorf("ICMP source override ignored: %v", h.ICMPSource4)
	}
	netnstest.Run(t, n.Name, "ip", "link", "add", "rnx", "type", "veth", "peer", "name", "rnxp")
	netnstest.Run(t, n.Name, "ip", "link", "set", "rnx", "up")
	netnstest.Run(t, n.Name, "ip", "link", "set", "rnxp", "up")
	spec := pipeline.PortSpec{Ifname: "rnx", MAC: net.HardwareAddr{2, 0, 0, 0, 1, 5},
		IPv4: netip.MustParseAddr("10.244.1.5"), IPv6: netip.MustParseAddr("fd01::5")}
	n.Do(t, func() error { _, err := dp.AddPort(spec); return err })
	for _, a := range []string{"10.244.1.5", "fd01::5"} {
		out := netnstest.Run(t, n.Name, "ip", "route", "get", a)
		if !strings.Contains(out, "dev ringnet0") {
			t.Errorf("no route to the new pod %s through the TAP: %s", a, out)
		}
	}
	n.Do(t, func() error { return dp.RemovePort("rnx") })
	if out := netnstest.Run(t, n.Name, "ip", "route", "show", "proto", "82"); strings.Contains(out, "10.244.1.5") {
		t.Errorf("the removed pod's route is left:\n%s", out)
	}
	if out := netnstest.Run(t, n.Name, "ip", "-6", "route", "show", "proto", "82"); strings.Contains(out, "fd01::5") {
		t.Errorf("the removed pod's IPv6 route is left:\n%s", out)
	}
}

func TestStartErrors(t *testing.T) {
	dp, err := pipeline.New(pipeline.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(dp, Options{MTU: 9000}); err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Errorf("MTU 9000 with 2048-byte frames: %v", err)
	}
}
