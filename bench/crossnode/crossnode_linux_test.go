package main

// End-to-end tests of cross-node forwarding: real ringnetd processes in
// node namespaces on an underlay bridge (internal/topo), pods made by the
// CNI plugin through libcni (internal/ringnode), real ping and TCP/UDP
// sockets in the pods, tcpdump on the underlay decoded by tshark, and for
// interop the kernel's own vxlan device set up as Flannel sets it up.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/ringnode/ringnodetest"
	"github.com/ringnet/ringnet/internal/topo"
)

var bins ringnode.Binaries

func TestMain(m *testing.M) { ringnodetest.Main(m, &bins) }

// testCluster is a running test cluster.
type testCluster struct {
	*testbed.Cluster
	t *testing.T
}

// startCluster builds the topology (with a router for 192.168.60.0/24 if a
// node is there), writes the cluster file for mode and starts ringnetd on
// every ringnet node, waiting until each has resolved its peers.
func startCluster(t *testing.T, mode string, specs []testbed.NodeSpec, args ...string) *testCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := testbed.NewCluster(ctx, topo.NewT(t, "xn"), bins, t.TempDir(), mode, specs, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range c.Order {
				cs, err := c.Daemons[name].Counters()
				t.Logf("ringnetd on %s (counters %v, %v):\n%s", name, cs, err, c.Daemons[name].Log())
			}
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return &testCluster{Cluster: c, t: t}
}

func (c *testCluster) addPod(node, name string) *ringnode.Pod {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := c.Daemons[node].AddPod(ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// counters returns a node's per-reason counters once ok accepts them, or
// after 5 s (see [ringnode.Daemon.CountersWhen]); ok nil takes the first.
func (c *testCluster) counters(node string, ok func(map[string]uint64) bool) map[string]uint64 {
	c.t.Helper()
	if ok == nil {
		ok = func(map[string]uint64) bool { return true }
	}
	m, err := c.Daemons[node].CountersWhen(ok)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// counted says whether every reason in names has a count.
func counted(names ...string) func(map[string]uint64) bool {
	return func(m map[string]uint64) bool {
		for _, n := range names {
			if m[n] == 0 {
				return false
			}
		}
		return true
	}
}

// more says whether reason name has counted more than n.
func more(name string, n uint64) func(map[string]uint64) bool {
	return func(m map[string]uint64) bool { return m[name] > n }
}

// ping pings dst from namespace ns and fails the test unless every reply
// comes back.
func ping(t *testing.T, ns string, dst netip.Addr, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"-c", "3", "-i", "0.2", "-W", "2"}, args...)
	out, err := topo.Output(ctx, ns, "ping", append(argv, dst.String())...)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping %v from %s: %v\n%s", dst, ns, err, out)
	}
}

// tcpTransfer sends size random bytes over TCP from namespace from to a
// listener in namespace to at dst, and checks that they arrive intact.
func tcpTransfer(t *testing.T, from, to string, dst netip.Addr, size int) {
	t.Helper()
	var ln net.Listener
	if err := topo.Do(to, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(dst.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		h := sha256.New()
		io.Copy(h, conn)
		got <- [32]byte(h.Sum(nil))
	}()
	data := make([]byte, size)
	rand.Read(data)
	var conn net.Conn
	if err := topo.Do(from, func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("TCP %s -> %v: %v", from, ln.Addr(), err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(conn, bytes.NewReader(data)); err != nil {
		t.Fatalf("TCP %s -> %v: send: %v", from, ln.Addr(), err)
	}
	conn.Close()
	if h := <-got; h != sha256.Sum256(data) {
		t.Fatalf("TCP %s -> %v: %d bytes did not arrive intact", from, ln.Addr(), size)
	}
}

// udpEcho sends datagrams from namespace from to an echo server in
// namespace to at dst and expects the echoes.
func udpEcho(t *testing.T, from, to string, dst netip.Addr) {
	t.Helper()
	var srv net.PacketConn
	if err := topo.Do(to, func() (err error) {
		srv, err = net.ListenPacket("udp", net.JoinHostPort(dst.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], a)
		}
	}()
	var conn net.Conn
	if err := topo.Do(from, func() (err error) {
		conn, err = net.Dial("udp", srv.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	for i := range 5 {
		msg := fmt.Appendf(nil, "datagram %d from %s", i, from)
		conn.Write(msg)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("UDP %s -> %v: datagram %d: %v (got %q)", from, srv.LocalAddr(), i, err, buf[:n])
		}
	}
}

// capture runs fn with tcpdump on the underlay bridge and returns the pcap.
func (c *testCluster) capture(filter string, fn func()) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cp, err := topo.StartCapture(ctx, "", c.Topo.Bridge, filter)
	if err != nil {
		c.t.Fatal(err)
	}
	fn()
	path, err := cp.Stop()
	if err != nil {
		c.t.Fatal(err)
	}
	return path
}

func decode(t *testing.T, path, filter string, fields ...string) [][]string {
	t.Helper()
	rows, err := topo.Decode(path, filter, fields...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// threeNodes is a cluster of three ringnet nodes on one subnet, dual stack.
var threeNodes = []testbed.NodeSpec{
	{Name: "na", Addr: "192.168.50.1/24", Pod4: "10.244.1.0/24", Pod6: "fd00:244:1::/64"},
	{Name: "nb", Addr: "192.168.50.2/24", Pod4: "10.244.2.0/24", Pod6: "fd00:244:2::/64"},
	{Name: "nc", Addr: "192.168.50.3/24", Pod4: "10.244.3.0/24", Pod6: "fd00:244:3::/64"},
}

// TestModes runs three ringnet nodes in each mode: ping (IPv4 and IPv6),
// UDP and TCP between pods on every pair of nodes, the underlay capture
// decoded by tshark showing the expected encapsulation, the node's own
// traffic on the uplink and node → remote pod traffic still working.
func TestModes(t *testing.T) {
	for _, mode := range []string{"direct", "vxlan", "ipip"} {
		t.Run(mode, func(t *testing.T) {
			c := startCluster(t, mode, threeNodes)
			pods := map[string]*ringnode.Pod{}
			for _, s := range threeNodes {
				pods[s.Name] = c.addPod(s.Name, "p")
			}
			a, b := pods["na"], pods["nb"]
			path := c.capture("host "+a.IPv4.String()+" or host 192.168.50.1", func() {
				ping(t, a.NS, b.IPv4)
			})
			checkWire(t, mode, path, c.Nodes["na"], c.Nodes["nb"], a.IPv4, b.IPv4)
			for _, pair := range [][2]string{{"na", "nb"}, {"nb", "nc"}, {"nc", "na"}} {
				from, to := pods[pair[0]], pods[pair[1]]
				ping(t, from.NS, to.IPv4)
				ping(t, from.NS, to.IPv6)
				udpEcho(t, from.NS, to.NS, to.IPv4)
				tcpTransfer(t, from.NS, to.NS, to.IPv4, 1<<20)
				tcpTransfer(t, from.NS, to.NS, to.IPv6, 256<<10)
			}
			// The node's own traffic on the uplink is the kernel's.
			tcpTransfer(t, c.Nodes["na"].NS, c.Nodes["nb"].NS, c.Nodes["nb"].Address.Addr(), 256<<10)
			// The node reaches other nodes' pods through its TAP and the
			// fast path.
			ping(t, c.Nodes["na"].NS, b.IPv4)
			for _, n := range []string{"na", "nb", "nc"} {
				m := c.counters(n, counted("to_peer", "from_peer"))
				if m["to_peer"] == 0 || m["from_peer"] == 0 {
					t.Errorf("%s: to_peer %d from_peer %d, want both > 0", n, m["to_peer"], m["from_peer"])
				}
				for r, v := range m {
					if strings.HasPrefix(r, "decap_") || r == "unknown_vtep" || r == "uplink_unexpected" {
						t.Errorf("%s: %s = %d", n, r, v)
					}
				}
			}
		})
	}
}

// checkWire asserts what tshark decodes of the ping from pod src on node
// na to pod dst on node nb: encapsulated between the nodes' underlay
// addresses as mode says, or routed directly to nb's uplink MAC.
func checkWire(t *testing.T, mode, path string, na, nb *topo.Node, src, dst netip.Addr) {
	t.Helper()
	var filter string
	switch mode {
	case "vxlan":
		filter = "vxlan && icmp.type == 8"
	case "ipip":
		filter = "ip.proto == 4 && icmp.type == 8"
	case "direct":
		filter = "!vxlan && !(ip.proto == 4) && icmp.type == 8"
	}
	rows := decode(t, path, filter, "eth.dst", "ip.src", "ip.dst", "vxlan.vni", "udp.dstport")
	if len(rows) != 3 {
		all := decode(t, path, "", "frame.protocols", "ip.src", "ip.dst")
		t.Fatalf("%s: %d echo requests on the underlay match %q, want 3; capture: %v", mode, len(rows), filter, all)
	}
	outer := []string{na.Address.Addr().String(), nb.Address.Addr().String()}
	inner := []string{src.String(), dst.String()}
	for _, r := range rows {
		s, d := topo.Layers(r[1]), topo.Layers(r[2])
		switch mode {
		case "direct":
			if !slices.Equal([]string{s[0], d[0]}, inner) || r[0] != nb.UplinkMAC.String() {
				t.Errorf("direct: %s -> %s to %s, want %v to %s", s, d, r[0], inner, nb.UplinkMAC)
			}
		default:
			if len(s) != 2 || !slices.Equal([]string{s[0], d[0]}, outer) || !slices.Equal([]string{s[1], d[1]}, inner) {
				t.Errorf("%s: addresses %v -> %v, want outer %v inner %v", mode, s, d, outer, inner)
			}
			if mode == "vxlan" && (r[3] != "1" || r[4] != "8472") {
				t.Errorf("vxlan: VNI %q port %q, want 1 and 8472", r[3], r[4])
			}
		}
	}
}

// TestCrossSubnet: in crossSubnet mode nodes on one subnet route directly
// and nodes on another are reached by VXLAN through the router.
func TestCrossSubnet(t *testing.T) {
	c := startCluster(t, "crossSubnet", []testbed.NodeSpec{
		{Name: "na", Addr: "192.168.50.1/24", Pod4: "10.244.1.0/24"},
		{Name: "nb", Addr: "192.168.50.2/24", Pod4: "10.244.2.0/24"},
		{Name: "nc", Addr: "192.168.60.1/24", Pod4: "10.244.3.0/24"},
	})
	a, b, cc := c.addPod("na", "p"), c.addPod("nb", "p"), c.addPod("nc", "p")
	path := c.capture("host "+a.IPv4.String()+" or host 192.168.50.1", func() {
		ping(t, a.NS, b.IPv4)
		ping(t, a.NS, cc.IPv4)
	})
	if n := len(decode(t, path, "!vxlan && icmp.type == 8 && ip.dst == "+b.IPv4.String(), "ip.dst")); n != 3 {
		t.Errorf("%d direct echo requests to %v on the underlay, want 3", n, b.IPv4)
	}
	if n := len(decode(t, path, "vxlan && icmp.type == 8 && ip.dst == "+cc.IPv4.String(), "ip.dst")); n < 3 {
		t.Errorf("%d VXLAN echo requests to %v on the underlay, want >= 3 (both legs of the router)", n, cc.IPv4)
	}
	tcpTransfer(t, a.NS, cc.NS, cc.IPv4, 1<<20)
	tcpTransfer(t, cc.NS, b.NS, b.IPv4, 1<<20)
}

// TestFlannelInterop: a ringnet node and a node running Flannel's kernel
// VXLAN datapath exchange ping and TCP both ways.
func TestFlannelInterop(t *testing.T) {
	c := startCluster(t, "vxlan", []testbed.NodeSpec{
		{Name: "na", Addr: "192.168.50.1/24", Pod4: "10.244.1.0/24"},
		{Name: "nf", Addr: "192.168.50.3/24", Pod4: "10.244.3.0/24", Flannel: true},
	})
	a := c.addPod("na", "p")
	fp, err := c.Flannel["nf"].AddPod("p")
	if err != nil {
		t.Fatal(err)
	}
	path := c.capture("udp port 8472", func() {
		ping(t, a.NS, fp.IPv4)
		ping(t, fp.NS, a.IPv4)
	})
	rows := decode(t, path, "vxlan && icmp", "vxlan.vni", "eth.dst", "ip.src")
	if len(rows) != 12 {
		t.Errorf("%d VXLAN ICMP packets on the underlay, want 12", len(rows))
	}
	fMAC, aMAC := c.Flannel["nf"].VtepMAC.String(), c.Nodes["na"].UplinkMAC.String()
	for _, r := range rows {
		macs := topo.Layers(r[1])
		if r[0] != "1" || len(macs) != 2 || (macs[1] != fMAC && macs[1] != aMAC) {
			t.Errorf("VXLAN packet VNI %s, inner destination MAC %v; want VNI 1 to %s or %s", r[0], macs, fMAC, aMAC)
		}
	}
	tcpTransfer(t, a.NS, fp.NS, fp.IPv4, 1<<20)
	tcpTransfer(t, fp.NS, a.NS, a.IPv4, 1<<20)
	if m := c.counters("na", counted("to_peer", "from_peer")); m["to_peer"] == 0 || m["from_peer"] == 0 {
		t.Errorf("ringnet node counters: %v", m)
	}
}

// TestPathMTU: pods given an MTU above the tunnel's get ICMP fragmentation
// needed for a DF ping too big for VXLAN, and TCP then completes; with the
// default MTU the pod's eth0 is sized for the tunnel.
func TestPathMTU(t *testing.T) {
	c := startCluster(t, "vxlan", threeNodes[:2], "--mtu", "1500")
	a, b := c.addPod("na", "p"), c.addPod("nb", "p")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := a.Output(ctx, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", b.IPv4.String())
	if !strings.Contains(out, "mtu = 1450") {
		t.Errorf("DF ping of 1500 bytes: want fragmentation needed with mtu = 1450, got:\n%s", out)
	}
	if m := c.counters("na", counted("frag_needed")); m["frag_needed"] == 0 {
		t.Errorf("frag_needed not counted: %v", m)
	}
	tcpTransfer(t, a.NS, b.NS, b.IPv4, 1<<20)

	d := startCluster(t, "vxlan", threeNodes[:2])
	p := d.addPod("na", "p")
	mtu, err := p.Output(ctx, "cat", "/sys/class/net/eth0/mtu")
	if err != nil || strings.TrimSpace(mtu) != "1450" {
		t.Errorf("default pod MTU with VXLAN: %q (%v), want 1450", mtu, err)
	}
}
