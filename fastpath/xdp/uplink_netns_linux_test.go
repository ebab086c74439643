package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The uplink program on a live link: a node namespace whose uplink is one
// end of a veth, and a peer namespace (another node on the same subnet) on
// the other end. With the program attached natively and an AF_XDP socket
// registered, the node's own traffic (ARP and ND, ping, TCP, UDP to a
// kernel socket, over IPv4 and IPv6) still reaches the node's kernel, while
// VXLAN and IPIP to the node and traffic for its pod prefixes arrive on the
// AF_XDP socket and never at the kernel.
func TestUplinkLive(t *testing.T) {
	ping, err := exec.LookPath("ping")
	if err != nil {
		t.Fatalf("this test needs ping (Debian: iputils-ping): %v", err)
	}
	node, peer := newTestNS(t), newTestNS(t)
	dev, _ := node.addVeth(t, vethOptions{
		Name: "uplink0", PeerName: "uplink1", Peer: peer,
		Addr: "192.0.2.1/24", PeerAddr: "192.0.2.2/24",
	})
	addAddr(t, node, "uplink0", "2001:db8::1/64")
	addAddr(t, peer, "uplink1", "2001:db8::2/64")
	// The peer routes this node's pod prefixes to it: direct routing.
	addRoute(t, peer, "uplink1", "10.244.1.0/24", "192.0.2.1")
	addRoute(t, peer, "uplink1", "fd00:244:1::/64", "2001:db8::1")

	mac := [6]byte(dev.Attrs().HardwareAddr)
	p := newTestUplink(t, UplinkOptions{Queues: 1, MAC: mac, NodeIPv4: nodeIP.As4(), VXLANPort: 4789, IPIP: true})
	if err := p.SetLocalPrefixes(prefixes("10.244.1.0/24", "fd00:244:1::/64")); err != nil {
		t.Fatal(err)
	}
	var sock *xsk.Socket
	err = node.Do(func() (err error) {
		sock, err = xsk.Open("uplink0", 0, xsk.Config{
			NumFrames: 256, FillSize: 128, CompletionSize: 64, RxSize: 128, TxSize: 64,
			Bind: xsk.BindCopy,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	if err := p.Register(0, sock.FD()); err != nil {
		t.Fatal(err)
	}
	a, err := attachIn(node, p, dev, ModeNative)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })

	// The node's kernel listens: TCP echo on each family, and UDP on 4790
	// and on the VXLAN port itself, which must stay silent.
	var tcp4, tcp6 net.Listener
	var udpOther, udpVXLAN net.PacketConn
	err = node.Do(func() (err error) {
		tcp4, err = net.Listen("tcp4", "192.0.2.1:0")
		if err == nil {
			tcp6, err = net.Listen("tcp6", "[2001:db8::1]:0")
		}
		if err == nil {
			udpOther, err = net.ListenPacket("udp4", "192.0.2.1:4790")
		}
		if err == nil {
			udpVXLAN, err = net.ListenPacket("udp4", "192.0.2.1:4789")
		}
		return err
	})
	for _, c := range []io.Closer{tcp4, tcp6, udpOther, udpVXLAN} {
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{tcp4, tcp6} {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
	}

	// The node's own traffic passes to its kernel.
	t.Run("node traffic passes", func(t *testing.T) {
		for _, dst := range []string{"192.0.2.1", "2001:db8::1"} {
			out, err := exec.Command("ip", "netns", "exec", peer.Name,
				ping, "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", dst).CombinedOutput()
			if err != nil {
				t.Errorf("ping %s from the peer: %v\n%s", dst, err, out)
			}
		}
		for _, ln := range []net.Listener{tcp4, tcp6} {
			addr := ln.Addr().String()
			if err := peer.Do(func() error { return echo(addr, 1<<20) }); err != nil {
				t.Errorf("tcp to %s: %v", addr, err)
			}
		}
		sendUDP(t, peer, "192.0.2.1:4790", []byte("kubelet"))
		if got, err := readUDP(udpOther, 2*time.Second); err != nil || string(got) != "kubelet" {
			t.Errorf("the node's udp socket on 4790 read %q, %v; want %q", got, err, "kubelet")
		}
		if got := receive(t, sock, 200*time.Millisecond, 0); len(got) != 0 {
			t.Errorf("the AF_XDP socket received %d frames of the node's own traffic, first:\n% x", len(got), got[0])
		}
	})

	// Tunnels to the node and frames for its pods come to the socket,
	// whole and unchanged.
	inner4 := ip4Packet(unix.IPPROTO_ICMP, netip.MustParseAddr("10.244.2.3"), netip.MustParseAddr("10.244.1.7"), nil, icmpEcho(8))
	for _, tc := range []struct {
		name string
		send func(t *testing.T)
		// check returns what is wrong with the frame, or "".
		check func(f []byte) string
	}{
		{
			"vxlan",
			func(t *testing.T) { sendUDP(t, peer, "192.0.2.1:4789", vxlanPayload()) },
			func(f []byte) string { return checkUDP4(f, mac, nodeIP, 4789, vxlanPayload()) },
		},
		{
			"ipip",
			func(t *testing.T) { sendIPIP(t, peer, nodeIP, inner4) },
			func(f []byte) string {
				if len(f) < 34 || f[23] != protoIPIP || !bytes.Equal(f[34:], inner4) {
					return "not the IPIP packet sent"
				}
				return checkEthIP4(f, mac, nodeIP)
			},
		},
		{
			"pod ipv4",
			func(t *testing.T) { sendUDP(t, peer, "10.244.1.7:9", []byte("to a pod")) },
			func(f []byte) string {
				return checkUDP4(f, mac, netip.MustParseAddr("10.244.1.7"), 9, []byte("to a pod"))
			},
		},
		{
			"pod ipv6",
			func(t *testing.T) { sendUDP(t, peer, "[fd00:244:1::7]:9", []byte("to a pod")) },
			func(f []byte) string {
				if len(f) < 62 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IPV6 || !bytes.Equal(f[0:6], mac[:]) {
					return "not an IPv6 frame to the uplink's MAC"
				}
				if dst := netip.AddrFrom16([16]byte(f[38:54])); dst != netip.MustParseAddr("fd00:244:1::7") {
					return fmt.Sprintf("to %v", dst)
				}
				if f[20] != unix.IPPROTO_UDP || !bytes.Equal(f[62:], []byte("to a pod")) {
					return "not the datagram sent"
				}
				return ""
			},
		},
	} {
		t.Run(tc.name+" redirected", func(t *testing.T) {
			tc.send(t)
			got := receive(t, sock, 2*time.Second, 1)
			if len(got) != 1 {
				t.Fatalf("the AF_XDP socket received %d frames, want 1", len(got))
			}
			if bad := tc.check(got[0]); bad != "" {
				t.Errorf("received frame: %s:\n% x", bad, got[0])
			}
		})
	}
	if got, err := readUDP(udpVXLAN, 100*time.Millisecond); err == nil {
		t.Errorf("the node's kernel received %q on the VXLAN port: the frame was not redirected", got)
	}
}

// echo sends n bytes over TCP to addr and checks that the same bytes come
// back.
func echo(addr string, n int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sent := make([]byte, n)
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write(sent); errc <- err }()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(sent, got) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

// sendUDP sends one datagram from inside ns.
func sendUDP(t *testing.T, ns *testNS, addr string, payload []byte) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("send udp to %s: %v", addr, err)
	}
}

// sendIPIP sends inner to dst as IP protocol 4 through a raw socket in ns:
// the kernel adds the outer header, so no ipip module is needed.
func sendIPIP(t *testing.T, ns *testNS, dst netip.Addr, inner []byte) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, inner, 0, &unix.SockaddrInet4{Addr: dst.As4()})
	})
	if err != nil {
		t.Fatalf("send ipip to %v: %v", dst, err)
	}
}

func readUDP(c net.PacketConn, timeout time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 2048)
	n, _, err := c.ReadFrom(b)
	return b[:n], err
}

// receive returns copies of the frames s receives until it has want of
// them, or timeout passes; with want 0 it collects for the whole timeout.
func receive(t *testing.T, s *xsk.Socket, timeout time.Duration, want int) [][]byte {
	t.Helper()
	var got [][]byte
	descs := make([]xsk.Desc, 16)
	fds := []unix.PollFd{{Fd: int32(s.FD()), Events: unix.POLLIN}}
	for deadline := time.Now().Add(timeout); want == 0 || len(got) < want; {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if _, err := xsk.Poll(fds, int(left.Milliseconds())+1); err != nil {
			t.Fatalf("poll: %v", err)
		}
		n := s.Receive(descs)
		for _, d := range descs[:n] {
			got = append(got, slices.Clone(s.Frame(d)))
			s.Free(d.Addr)
		}
		s.Refill()
	}
	return got
}

// checkEthIP4 says what is wrong with f as an IPv4 frame to mac and dst.
func checkEthIP4(f []byte, mac [6]byte, dst netip.Addr) string {
	switch {
	case len(f) < 34 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IP:
		return "not an IPv4 frame"
	case !bytes.Equal(f[0:6], mac[:]):
		return fmt.Sprintf("to MAC %x", f[0:6])
	case netip.AddrFrom4([4]byte(f[30:34])) != dst:
		return fmt.Sprintf("to %v", netip.AddrFrom4([4]byte(f[30:34])))
	}
	return ""
}

// checkUDP4 says what is wrong with f as the datagram sent to dst:port.
func checkUDP4(f []byte, mac [6]byte, dst netip.Addr, port uint16, payload []byte) string {
	if bad := checkEthIP4(f, mac, dst); bad != "" {
		return bad
	}
	switch {
	case len(f) < 42 || f[14] != 0x45 || f[23] != unix.IPPROTO_UDP:
		return "not UDP without IP options"
	case binary.BigEndian.Uint16(f[36:38]) != port:
		return fmt.Sprintf("to port %d", binary.BigEndian.Uint16(f[36:38]))
	case !bytes.Equal(f[42:], payload):
		return "not the payload sent"
	}
	return ""
}

// addAddr adds an address to dev in ns without duplicate address
// detection, so an IPv6 address is usable at once.
func addAddr(t *testing.T, ns *testNS, dev, cidr string) {
	t.Helper()
	l, err := ns.NL.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags = unix.IFA_F_NODAD
	if err := ns.NL.AddrAdd(l, a); err != nil {
		t.Fatalf("netns %s: add %s to %s: %v", ns.Name, cidr, dev, err)
	}
}

func addRoute(t *testing.T, ns *testNS, dev, dst, via string) {
	t.Helper()
	l, err := ns.NL.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	_, ipnet, err := net.ParseCIDR(dst)
	if err != nil {
		t.Fatal(err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet, Gw: net.ParseIP(via)}
	if err := ns.NL.RouteAdd(r); err != nil {
		t.Fatalf("netns %s: route %s via %s: %v", ns.Name, dst, via, err)
	}
}
