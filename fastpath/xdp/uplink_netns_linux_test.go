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
// kernel socket, over IPv4 and IPv6, also to ports just outside the
// NodePort and NAT ranges) still reaches the node's kernel, while VXLAN and
// IPIP to the node, TCP, UDP and SCTP to its NodePorts and NAT ports, and
// traffic for its pod prefixes and a service's external IP arrive on the
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
	// And a service's external IP, as a router would.
	addRoute(t, peer, "uplink1", "198.51.100.10/32", "192.0.2.1")

	mac := [6]byte(dev.Attrs().HardwareAddr)
	p := newTestUplink(t, UplinkOptions{Queues: 1, MAC: mac, NodeIPv4: nodeIP.As4(), VXLANPort: 4789, IPIP: true,
		PortRanges: servicePorts})
	if err := p.SetLocalPrefixes(prefixes("10.244.1.0/24", "fd00:244:1::/64", "198.51.100.10/32")); err != nil {
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

	// The node's kernel listens: TCP echo on each family, UDP on 4790 and
	// on the ports next to the NodePort and NAT ranges, and UDP on the
	// VXLAN port and a NodePort, which must stay silent.
	var tcp4, tcp6 net.Listener
	var udpOther, udpBelowNodePorts, udpBelowNAT, udpVXLAN, udpNodePort net.PacketConn
	err = node.Do(func() (err error) {
		tcp4, err = net.Listen("tcp4", "192.0.2.1:0")
		if err == nil {
			tcp6, err = net.Listen("tcp6", "[2001:db8::1]:0")
		}
		for _, l := range []struct {
			c    *net.PacketConn
			addr string
		}{
			{&udpOther, "192.0.2.1:4790"}, {&udpBelowNodePorts, "192.0.2.1:29999"}, {&udpBelowNAT, "192.0.2.1:60999"},
			{&udpVXLAN, "192.0.2.1:4789"}, {&udpNodePort, "192.0.2.1:30000"},
		} {
			if err == nil {
				*l.c, err = net.ListenPacket("udp4", l.addr)
			}
		}
		return err
	})
	for _, c := range []io.Closer{tcp4, tcp6, udpOther, udpBelowNodePorts, udpBelowNAT, udpVXLAN, udpNodePort} {
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
		for _, c := range []net.PacketConn{udpOther, udpBelowNodePorts, udpBelowNAT} {
			sendUDP(t, peer, c.LocalAddr().String(), []byte("kubelet"))
			if got, err := readUDP(c, 2*time.Second); err != nil || string(got) != "kubelet" {
				t.Errorf("the node's udp socket on %v read %q, %v; want %q", c.LocalAddr(), got, err, "kubelet")
			}
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
			func(t *testing.T) { sendRaw(t, peer, protoIPIP, nodeIP, inner4) },
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
			"nodeport udp",
			func(t *testing.T) { sendUDP(t, peer, "192.0.2.1:30000", []byte("to a service")) },
			func(f []byte) string { return checkUDP4(f, mac, nodeIP, 30000, []byte("to a service")) },
		},
		{
			"nat reply udp",
			func(t *testing.T) { sendUDP(t, peer, "192.0.2.1:65535", []byte("reply")) },
			func(f []byte) string { return checkUDP4(f, mac, nodeIP, 65535, []byte("reply")) },
		},
		{
			"nodeport tcp",
			func(t *testing.T) { sendRaw(t, peer, protoTCP, nodeIP, tcpSYN(40000, 32767)) },
			func(f []byte) string { return checkL4(f, mac, nodeIP, protoTCP, tcpSYN(40000, 32767)) },
		},
		{
			"nat reply sctp",
			func(t *testing.T) { sendRaw(t, peer, protoSCTP, nodeIP, sctpInit(5000, 61000)) },
			func(f []byte) string { return checkL4(f, mac, nodeIP, protoSCTP, sctpInit(5000, 61000)) },
		},
		{
			"external ip",
			func(t *testing.T) {
				sendRaw(t, peer, protoTCP, netip.MustParseAddr("198.51.100.10"), tcpSYN(40000, 443))
			},
			func(f []byte) string {
				return checkL4(f, mac, netip.MustParseAddr("198.51.100.10"), protoTCP, tcpSYN(40000, 443))
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
	for _, c := range []net.PacketConn{udpVXLAN, udpNodePort} {
		if got, err := readUDP(c, 100*time.Millisecond); err == nil {
			t.Errorf("the node's kernel received %q on %v: the frame was not redirected", got, c.LocalAddr())
		}
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

// sendRaw sends payload to dst as IP protocol proto through a raw socket
// in ns: the kernel adds the IPv4 header, so no ipip module is needed for
// IPIP, and a TCP SYN sent this way is sent once, not retried.
func sendRaw(t *testing.T, ns *testNS, proto int, dst netip.Addr, payload []byte) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, payload, 0, &unix.SockaddrInet4{Addr: dst.As4()})
	})
	if err != nil {
		t.Fatalf("send ip protocol %d to %v: %v", proto, dst, err)
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

// checkL4 says what is wrong with f as the packet of IP protocol proto,
// without IP options, sent to dst with payload l4.
func checkL4(f []byte, mac [6]byte, dst netip.Addr, proto byte, l4 []byte) string {
	if bad := checkEthIP4(f, mac, dst); bad != "" {
		return bad
	}
	switch {
	case f[14] != 0x45 || f[23] != proto:
		return fmt.Sprintf("not IP protocol %d without IP options", proto)
	case !bytes.Equal(f[34:], l4):
		return "not the packet sent"
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
