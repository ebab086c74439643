package topo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// must(f())(t) is f's value, or the end of the test with f's error.
func must[V any](v V, err error) func(testing.TB) V {
	return func(t testing.TB) V {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// needTools fails (not skips: scripts/deps.sh installs them) when a
// command the test runs is missing.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not installed: run scripts/deps.sh", n)
		}
	}
}

func TestNameLengths(t *testing.T) {
	id := stem + strings.Repeat("p", maxPrefix) + randomID()
	for _, name := range []string{id + "-br", fmt.Sprintf("%s-%d", id, maxLinks)} {
		if len(name) > 15 {
			t.Errorf("%q is %d bytes; IFNAMSIZ allows 15", name, len(name))
		}
	}
	for _, bad := range []string{"abcde", "A", "a-b", "a b"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted a bad prefix", bad)
		}
		if err := Sweep(bad); err == nil {
			t.Errorf("Sweep(%q) accepted a bad prefix", bad)
		}
	}
}

// TestNoTestingImport keeps package testing out of what the demo links.
func TestNoTestingImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if slices.Contains(strings.Fields(string(out)), "testing") {
		t.Errorf("package topo imports testing:\n%s", out)
	}
}

// ping pings dst from a namespace and fails the test unless every echo is
// answered; it returns ping's output.
func ping(t *testing.T, ctx context.Context, netns string, dst netip.Addr) string {
	t.Helper()
	out, err := Output(ctx, netns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst.String())
	if err != nil {
		t.Fatalf("ping %s from %s: %v", dst, netns, err)
	}
	if !strings.Contains(out, " 3 received") {
		t.Fatalf("ping %s from %s lost packets:\n%s", dst, netns, out)
	}
	return out
}

// twoFlannelNodes makes Flannel-style nodes a and b at addrA and addrB,
// peered, with one pod each.
func twoFlannelNodes(t *testing.T, tp *Topology, addrA, addrB netip.Prefix) (a, b *FlannelNode, pa, pb *Pod) {
	t.Helper()
	a = must(tp.AddFlannelNode("a", addrA, pfx("10.244.1.0/24"), FlannelOptions{}))(t)
	b = must(tp.AddFlannelNode("b", addrB, pfx("10.244.2.0/24"), FlannelOptions{}))(t)
	if err := a.Peer(b); err != nil {
		t.Fatal(err)
	}
	pa = must(a.AddPod("p"))(t)
	pb = must(b.AddPod("p"))(t)
	return a, b, pa, pb
}

// TestFlannelVXLAN: two Flannel-style kernel nodes on one underlay; their
// pods talk ICMP and TCP over VXLAN, and the underlay shows VNI 1 on UDP
// 8472 between the node addresses around the pods' packets.
func TestFlannelVXLAN(t *testing.T) {
	tp := NewT(t, "fl")
	needTools(t, "tcpdump", "tshark", "ping", "busybox")
	ctx := ctxT(t, 60*time.Second)
	a, b, pa, pb := twoFlannelNodes(t, tp, pfx("192.168.50.1/24"), pfx("192.168.50.2/24"))
	if pa.IPv4 != netip.MustParseAddr("10.244.1.2") || pb.IPv4 != netip.MustParseAddr("10.244.2.2") {
		t.Fatalf("pod addresses %s, %s; want 10.244.1.2, 10.244.2.2", pa.IPv4, pb.IPv4)
	}

	capt := must(StartCapture(ctx, "", tp.Bridge, "udp port 8472"))(t)
	t.Cleanup(func() { capt.Stop(); os.Remove(capt.Path) })

	ping(t, ctx, pa.NS, pb.IPv4)
	ping(t, ctx, pb.NS, pa.IPv4)

	// TCP: a Go listener in pod b, busybox nc in pod a sending 256 KiB,
	// many full-size segments at the pods' MTU.
	var ln net.Listener
	if err := pb.Do(func() (err error) {
		ln, err = net.Listen("tcp4", pb.IPv4.String()+":5000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := bytes.Repeat([]byte("ringnet-vxlan-"), 256<<10/14)
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		reply := fmt.Sprintf("got %d %x", n, h.Sum(nil))
		if err != nil {
			reply = "read: " + err.Error()
		}
		c.Write([]byte(reply))
		got <- reply
	}()
	nc := pa.Command(ctx, "busybox", "nc", pb.IPv4.String(), "5000")
	nc.Stdin = bytes.NewReader(payload)
	out, err := nc.CombinedOutput()
	want := fmt.Sprintf("got %d %x", len(payload), sha256.Sum256(payload))
	if server := <-got; server != want {
		t.Fatalf("TCP from pod a to pod b: server says %q, want %q (nc: %v, %s)", server, want, err, out)
	}
	if err != nil || string(out) != want {
		t.Fatalf("TCP reply to pod a: %q, %v; want %q", out, err, want)
	}

	path := must(capt.Stop())(t)
	if captured, received, dropped := capt.Stats(); captured != received || dropped != 0 {
		t.Errorf("tcpdump: %d packets captured, %d received by filter, %d dropped", captured, received, dropped)
	}
	rows := must(Decode(path, "vxlan", "ip.src", "ip.dst", "udp.dstport", "vxlan.vni", "ip.proto", "icmp.type", "tcp.dstport", "tcp.len", "frame.len"))(t)
	if len(rows) == 0 {
		t.Fatal("no VXLAN on the underlay")
	}
	nodeOf := map[string]string{ // inner source -> outer source
		pa.IPv4.String(): a.Address.Addr().String(),
		pb.IPv4.String(): b.Address.Addr().String(),
	}
	var echoAB, echoBA, tcpAB, maxFrame int
	for _, r := range rows {
		src, dst, dport, vni, proto := Layers(r[0]), Layers(r[1]), r[2], r[3], Layers(r[4])
		if len(src) != 2 || len(dst) != 2 || len(proto) != 2 {
			t.Errorf("packet %q: want outer and inner IPv4", r)
			continue
		}
		if vni != "1" || dport != "8472" || proto[0] != "17" {
			t.Errorf("packet %q: want UDP to 8472 with VNI 1", r)
		}
		if nodeOf[src[1]] != src[0] || nodeOf[dst[1]] != dst[0] {
			t.Errorf("packet %q: pod %s -> %s not carried between their nodes", r, src[1], dst[1])
		}
		switch {
		case r[5] == "8" && src[1] == pa.IPv4.String():
			echoAB++
		case r[5] == "8" && src[1] == pb.IPv4.String():
			echoBA++
		case r[6] == "5000" && src[1] == pa.IPv4.String():
			n, _ := strconv.Atoi(r[7])
			tcpAB += n
		}
		if n, _ := strconv.Atoi(r[8]); n > maxFrame {
			maxFrame = n
		}
	}
	if echoAB != 3 || echoBA != 3 {
		t.Errorf("echo requests in VXLAN: a->b %d, b->a %d; want 3 each", echoAB, echoBA)
	}
	if tcpAB < len(payload) {
		t.Errorf("TCP payload a->b in VXLAN: %d bytes; want at least %d", tcpAB, len(payload))
	}
	t.Logf("%d VXLAN packets on %s, up to %d bytes; %d TCP payload bytes a->b", len(rows), tp.Bridge, maxFrame, tcpAB)
}

// TestCrossSubnet: nodes on 192.168.50.0/24 and 192.168.60.0/24 reach
// each other through the router, which they take as their default gateway
// whether they came before or after it.
func TestCrossSubnet(t *testing.T) {
	tp := NewT(t, "xs")
	needTools(t, "ping")
	ctx := ctxT(t, 60*time.Second)
	n1 := must(tp.AddNode("n1", pfx("192.168.50.1/24"), NodeOptions{}))(t)
	n2 := must(tp.AddNode("n2", pfx("192.168.60.1/24"), NodeOptions{}))(t)
	if _, err := n1.Output(ctx, "ping", "-c", "1", "-W", "1", "192.168.60.1"); err == nil {
		t.Fatal("192.168.60.1 reachable from 192.168.50.1 without a router")
	}
	r := must(tp.AddRouter("r", []netip.Prefix{pfx("192.168.50.254/24"), pfx("192.168.60.254/24")}, NodeOptions{}))(t)
	n3 := must(tp.AddNode("n3", pfx("192.168.60.2/24"), NodeOptions{}))(t)
	for n, want := range map[*Node]string{n1: "192.168.50.254", n2: "192.168.60.254", n3: "192.168.60.254", r: "invalid IP"} {
		if n.Gateway.String() != want {
			t.Errorf("node %s gateway %s, want %s", n.Name, n.Gateway, want)
		}
	}
	for _, c := range []struct {
		from *Node
		to   netip.Addr
	}{{n1, n2.Address.Addr()}, {n2, n1.Address.Addr()}, {n1, n3.Address.Addr()}, {n3, n1.Address.Addr()}} {
		out := ping(t, ctx, c.from.NS, c.to)
		if !strings.Contains(out, "ttl=63") { // one router on the way back
			t.Errorf("ping %s from %s did not cross one router:\n%s", c.to, c.from.Name, out)
		}
		route := must(c.from.Output(ctx, "ip", "route", "get", c.to.String()))(t)
		if !strings.Contains(route, "via "+c.from.Gateway.String()) {
			t.Errorf("route from %s to %s: %s; want via %s", c.from.Name, c.to, route, c.from.Gateway)
		}
	}

	t.Run("flannel", func(t *testing.T) {
		_, _, pa, pb := twoFlannelNodes(t, tp, pfx("192.168.50.11/24"), pfx("192.168.60.11/24"))
		ping(t, ctx, pa.NS, pb.IPv4)
		ping(t, ctx, pb.NS, pa.IPv4)
	})
}

// TestOptions: queues, MTU and VTEP MAC reach the kernel as asked.
func TestOptions(t *testing.T) {
	tp := NewT(t, "op")
	ctx := ctxT(t, 30*time.Second)
	mac := net.HardwareAddr{0x0e, 0x01, 0x02, 0x03, 0x04, 0x05}
	f := must(tp.AddFlannelNode("f", pfx("192.168.50.1/24"), pfx("10.244.7.0/24"),
		FlannelOptions{NodeOptions: NodeOptions{Queues: 4, MTU: 9000}, VtepMAC: mac}))(t)
	p := must(f.AddPod("p"))(t)
	d := must(tp.AddNode("d", pfx("192.168.50.2/24"), NodeOptions{}))(t)

	br := must(netlink.LinkByName(tp.Bridge))(t)
	for _, c := range []struct {
		n           *Node
		queues, mtu int
	}{{f.Node, 4, 9000}, {d, 1, 1500}} {
		host := must(netlink.LinkByName(c.n.HostVeth))(t)
		if a := host.Attrs(); a.MasterIndex != br.Attrs().Index || a.NumRxQueues != c.queues ||
			a.NumTxQueues != c.queues || a.MTU != c.mtu || a.OperState != netlink.OperUp {
			t.Errorf("%s: master %d rxq %d txq %d mtu %d %s; want master %d, %d queues, mtu %d, up",
				a.Name, a.MasterIndex, a.NumRxQueues, a.NumTxQueues, a.MTU, a.OperState, br.Attrs().Index, c.queues, c.mtu)
		}
		err := c.n.Do(func() error {
			up, err := netlink.LinkByName(Uplink)
			if err != nil {
				return err
			}
			if a := up.Attrs(); a.NumRxQueues != c.queues || a.NumTxQueues != c.queues || a.MTU != c.mtu ||
				a.HardwareAddr.String() != c.n.UplinkMAC.String() {
				t.Errorf("%s %s: rxq %d txq %d mtu %d mac %s; want %d queues, mtu %d, mac %s", c.n.Name, Uplink,
					a.NumRxQueues, a.NumTxQueues, a.MTU, a.HardwareAddr, c.queues, c.mtu, c.n.UplinkMAC)
			}
			for _, k := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding"} {
				if v, err := os.ReadFile("/proc/sys/net/" + k); err != nil || string(v) != "1\n" {
					t.Errorf("%s: %s = %q, %v; want 1", c.n.Name, k, v, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	if f.VXLANMTU != 8950 {
		t.Errorf("VXLANMTU %d, want 8950", f.VXLANMTU)
	}
	err := f.Do(func() error {
		l, err := netlink.LinkByName(FlannelVXLAN)
		if err != nil {
			return err
		}
		up, err := netlink.LinkByName(Uplink)
		if err != nil {
			return err
		}
		vx, ok := l.(*netlink.Vxlan)
		if !ok {
			return fmt.Errorf("%s is a %s", FlannelVXLAN, l.Type())
		}
		if vx.VxlanId != 1 || vx.Port != 8472 || vx.Learning || vx.VtepDevIndex != up.Attrs().Index ||
			!vx.SrcAddr.Equal(net.IP(f.Address.Addr().AsSlice())) || vx.MTU != 8950 || vx.HardwareAddr.String() != mac.String() {
			t.Errorf("%s: id %d port %d learning %v dev %d local %s mtu %d mac %s", FlannelVXLAN,
				vx.VxlanId, vx.Port, vx.Learning, vx.VtepDevIndex, vx.SrcAddr, vx.MTU, vx.HardwareAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"inet 10.244.7.0/32 scope global flannel.1", "inet 10.244.7.1/24 brd 10.244.7.255 scope global cni0"} {
		if out := must(f.Output(ctx, "ip", "-4", "addr"))(t); !strings.Contains(out, want) {
			t.Errorf("node addresses lack %q:\n%s", want, out)
		}
	}
	if out := must(p.Output(ctx, "ip", "link", "show", "eth0"))(t); !strings.Contains(out, "mtu 8950") {
		t.Errorf("pod eth0 MTU not 8950:\n%s", out)
	}
	if out := must(p.Output(ctx, "ip", "route"))(t); !strings.Contains(out, "default via 10.244.7.1 dev eth0") {
		t.Errorf("pod routes lack default via 10.244.7.1:\n%s", out)
	}

	// AddPeer makes exactly Flannel's three entries.
	peerMAC := net.HardwareAddr{0x0e, 0, 0, 0, 0, 0x09}
	if err := f.AddPeer(pfx("10.244.9.0/24"), peerMAC, netip.MustParseAddr("192.168.50.9")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ args, want string }{
		{"ip route show 10.244.9.0/24", "10.244.9.0/24 via 10.244.9.0 dev flannel.1 onlink"},
		{"ip neigh show dev flannel.1", "10.244.9.0 lladdr 0e:00:00:00:00:09 PERMANENT"},
		{"bridge fdb show dev flannel.1", "0e:00:00:00:00:09 dst 192.168.50.9 self permanent"},
	} {
		args := strings.Fields(c.args)
		if out := must(f.Output(ctx, args[0], args[1:]...))(t); !strings.Contains(out, c.want) {
			t.Errorf("%s: %q lacks %q", c.args, out, c.want)
		}
	}
}

// names lists the namespaces and root links whose names start with id.
func names(t testing.TB, id string) []string {
	t.Helper()
	var names []string
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id) {
			names = append(names, "netns "+e.Name())
		}
	}
	for _, l := range must(netlink.LinkList())(t) {
		if strings.HasPrefix(l.Attrs().Name, id) {
			names = append(names, "link "+l.Attrs().Name)
		}
	}
	return names
}

// build makes one of everything, and a process in the pod.
func build(t *testing.T, tp *Topology) *exec.Cmd {
	t.Helper()
	must(tp.AddRouter("r", []netip.Prefix{pfx("192.168.50.254/24"), pfx("192.168.60.254/24")}, NodeOptions{}))(t)
	must(tp.AddNode("n", pfx("192.168.60.1/24"), NodeOptions{Queues: 2}))(t)
	f := must(tp.AddFlannelNode("f", pfx("192.168.50.1/24"), pfx("10.244.1.0/24"), FlannelOptions{}))(t)
	p := must(f.AddPod("p"))(t)
	sleep := p.Command(context.Background(), "sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	// ip netns exec enters the namespace after Start returns: wait for it.
	var want, got syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, p.NS), &want); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", sleep.Process.Pid), &got)
		if err == nil && got.Ino == want.Ino && got.Dev == want.Dev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep not in %s after 5s", p.NS)
		}
	}
	return sleep
}

// TestCloseLeavesNothing: Close removes every namespace and link with the
// topology's ID, and its lock, killing what runs inside; a second Close is
// a no-op.
func TestCloseLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tp := must(New("cl"))(t)
	t.Cleanup(func() { tp.Close() })
	sleep := build(t, tp)
	if got := names(t, tp.ID); len(got) != 8 {
		t.Fatalf("before Close: %q; want 4 namespaces, 3 veths and the bridge", got)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := names(t, tp.ID); len(got) != 0 {
		t.Errorf("after Close: %q left", got)
	}
	if _, err := os.Stat(lockPath(tp.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file: %v; want it removed", err)
	}
	done := make(chan error, 1)
	go func() { done <- sleep.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the process in the pod exited cleanly; want killed")
		}
	case <-time.After(5 * time.Second):
		t.Error("the process in the pod still runs after Close")
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tp.AddNode("late", pfx("192.168.50.3/24"), NodeOptions{}); err == nil {
		t.Error("AddNode after Close succeeded")
	}
}

// crash leaves tp as a process that died would: its lock released (or its
// lock file gone), its names in place.
func crash(tp *Topology, removeLock bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if removeLock {
		os.Remove(tp.lock.Name())
	}
	tp.lock.Close()
	for _, h := range tp.handles {
		h.Close()
	}
	tp.handles = nil
	tp.lock = nil
}

// TestSweep: Sweep removes crashed topologies of its prefix, and nothing
// else: not a live one, not another prefix's, not a name off the pattern.
func TestSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	var live, dead []*Topology
	for i := range 3 {
		tp := must(New("sw"))(t)
		t.Cleanup(func() { tp.Close() })
		must(tp.AddNode("n", pfx("192.168.50.1/24"), NodeOptions{}))(t)
		if i == 0 {
			live = append(live, tp)
		} else {
			crash(tp, i == 2)
			dead = append(dead, tp)
		}
	}
	other := must(New("sx"))(t)
	t.Cleanup(func() { other.Close() })
	must(other.AddNode("n", pfx("192.168.50.1/24"), NodeOptions{}))(t)
	crash(other, true) // stale, but not Sweep("sw")'s
	decoy := stem + "sw-decoy"
	if out, err := exec.Command("ip", "netns", "add", decoy).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { delNetns(decoy) })

	if err := Sweep("sw"); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for _, tp := range dead {
		if got := names(t, tp.ID); len(got) != 0 {
			t.Errorf("crashed %s: %q left", tp.ID, got)
		}
		if _, err := os.Stat(lockPath(tp.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("crashed %s: lock file: %v; want removed", tp.ID, err)
		}
	}
	for _, tp := range append(live, other) {
		if got := names(t, tp.ID); len(got) != 3 { // bridge, veth, netns
			t.Errorf("%s: %q after Sweep; want its bridge, veth and namespace kept", tp.ID, got)
		}
	}
	if _, err := os.Stat(filepath.Join(netnsDir, decoy)); err != nil {
		t.Errorf("decoy %s: %v; want kept", decoy, err)
	}
	if err := Sweep("sx"); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got := names(t, other.ID); len(got) != 0 {
		t.Errorf("crashed %s: %q left", other.ID, got)
	}
}
