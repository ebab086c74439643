package encap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/ringnet/ringnet/fastpath/packet"
	"golang.org/x/sys/unix"
)

// TestKernelVXLAN checks interoperation with Linux's own vxlan device, with
// the Flannel settings (VNI 1, port 8472), with and without UDP checksums:
// Decap accepts what the kernel encapsulates, and the kernel accepts and
// delivers what Encap builds.
//
// Topology, in a fresh network namespace: a veth pair u0 (the kernel's
// underlay, 192.168.77.1) and u1 (ours, 192.168.77.2, unconfigured; the test
// reads and writes its frames with an AF_PACKET socket), and a vxlan device
// vx0 (10.244.9.1/24) over u0 whose remote is 192.168.77.2. The pod
// 10.244.9.2 is a static neighbor behind vx0.
func TestKernelVXLAN(t *testing.T) {
	for _, csum := range []bool{false, true} {
		t.Run(fmt.Sprintf("udpcsum=%v", csum), func(t *testing.T) { kernelVXLAN(t, csum) })
	}
}

const (
	kUnderlayKernel = "192.168.77.1"
	kUnderlayOurs   = "192.168.77.2"
	kVTEPAddr       = "10.244.9.1"
	kPodAddr        = "10.244.9.2"
)

var (
	kMACKernel = [6]byte{0x02, 0xee, 0x00, 0x00, 0x00, 0x01} // u0
	kMACOurs   = [6]byte{0x02, 0xee, 0x00, 0x00, 0x00, 0x02} // u1
	kMACVTEP   = [6]byte{0x02, 0xee, 0x00, 0x00, 0x00, 0x03} // vx0
	kMACPod    = [6]byte{0x02, 0xee, 0x00, 0x00, 0x00, 0x04} // the pod behind us
)

func kernelVXLAN(t *testing.T, udpcsum bool) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command")
	}
	ns := fmt.Sprintf("encap-test-%d-%x", os.Getpid(), rand.Uint32())
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	in := func(args ...string) { ipCmd(t, append([]string{"-n", ns}, args...)...) }
	mac := func(m [6]byte) string { return net.HardwareAddr(m[:]).String() }
	in("link", "set", "lo", "up")
	in("link", "add", "u0", "address", mac(kMACKernel), "type", "veth", "peer", "name", "u1", "address", mac(kMACOurs))
	in("addr", "add", kUnderlayKernel+"/24", "dev", "u0")
	in("link", "set", "u0", "up")
	in("link", "set", "u1", "up")
	// Over veth the kernel leaves offloaded checksums unfinished
	// (CHECKSUM_PARTIAL), inner and outer, and the peer end sees them so.
	// A real NIC finishes them on the wire; switching transmit checksum
	// offload off on u0 makes the kernel finish them itself, so that u1
	// sees what a wire would carry.
	if out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-K", "u0", "tx", "off").CombinedOutput(); err != nil {
		t.Skipf("needs ethtool to switch off checksum offload: %v: %s", err, out)
	}
	in("neigh", "add", kUnderlayOurs, "lladdr", mac(kMACOurs), "dev", "u0", "nud", "permanent")
	csumArg := "noudpcsum"
	if udpcsum {
		csumArg = "udpcsum"
	}
	vx := []string{"-n", ns, "link", "add", "vx0", "address", mac(kMACVTEP), "type", "vxlan", "id", "1",
		"dstport", "8472", "local", kUnderlayKernel, "remote", kUnderlayOurs, "dev", "u0", "nolearning", csumArg}
	if out, err := exec.Command("ip", vx...).CombinedOutput(); err != nil {
		t.Skipf("this kernel cannot create a vxlan device: ip %s: %v: %s", strings.Join(vx, " "), err, out)
	}
	in("addr", "add", kVTEPAddr+"/24", "dev", "vx0")
	in("link", "set", "vx0", "up")
	in("neigh", "add", kPodAddr, "lladdr", mac(kMACPod), "dev", "vx0", "nud", "permanent")

	// Sockets made inside the namespace stay there whatever thread uses
	// them later.
	var (
		raw     int
		ifindex int
		pod     *net.UDPConn // the kernel side's socket, at 10.244.9.1:9999
	)
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName("u1")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		if raw, err = packetSocket(ifindex); err != nil {
			return err
		}
		pod, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(kVTEPAddr), Port: 9999})
		return err
	})
	if err != nil {
		t.Fatalf("sockets in %s: %v", ns, err)
	}
	t.Cleanup(func() { syscall.Close(raw); pod.Close() })

	local := [4]byte(net.ParseIP(kUnderlayOurs).To4())
	remote := [4]byte(net.ParseIP(kUnderlayKernel).To4())

	t.Run("kernel to Decap", func(t *testing.T) {
		msg := []byte("encapsulated by the kernel")
		if _, err := pod.WriteToUDP(msg, &net.UDPAddr{IP: net.ParseIP(kPodAddr), Port: 9998}); err != nil {
			t.Fatalf("send: %v", err)
		}
		frame := readFrame(t, raw, func(f []byte) bool {
			return len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == 0x0800 && f[23] == 17 &&
				binary.BigEndian.Uint16(f[36:38]) == FlannelPort && bytes.Contains(f, msg)
		})
		if udpcsum == (frame[40] == 0 && frame[41] == 0) {
			t.Errorf("kernel with %s sent UDP checksum %#04x", csumArg, binary.BigEndian.Uint16(frame[40:42]))
		}
		inner, end, src, derr := flannel.Decap(frame, local)
		if derr != OK || src != remote {
			t.Fatalf("Decap(kernel frame) = %v from %v; want ok from %v\n%x", derr, src, remote, frame)
		}
		var p packet.Parsed
		f := frame[inner:end]
		if r := packet.Decode(f, &p); r != packet.OK || packet.Ethernet(f).Dst() != kMACPod || p.DstPort != 9998 ||
			p.Dst.String() != kPodAddr || !bytes.Equal(f[p.L4Off+8:], msg) {
			t.Errorf("inner frame %x decodes as %v %+v; want UDP to %s:9998 at %v carrying %q", f, r, p, kPodAddr, net.HardwareAddr(kMACPod[:]), msg)
		}
	})

	t.Run("Encap to kernel", func(t *testing.T) {
		msg := []byte("encapsulated by ringnet")
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: net.ParseIP(kPodAddr).To4(), DstIP: net.ParseIP(kVTEPAddr).To4()}
		udp := &layers.UDP{SrcPort: 9998, DstPort: 9999}
		udp.SetNetworkLayerForChecksum(ip)
		innerFrame := serialize(t, &layers.Ethernet{SrcMAC: kMACPod[:], DstMAC: kMACVTEP[:], EthernetType: layers.EthernetTypeIPv4},
			ip, udp, gopacket.Payload(msg))
		o := NewOuter(kMACOurs, kMACKernel, local, remote)
		buf := withHeadroom(innerFrame, 128, 0)
		start, ok := flannel.Encap(buf, 128, len(innerFrame), &o, 1)
		if !ok {
			t.Fatal("Encap failed")
		}
		if err := syscall.Sendto(raw, buf[start:start+len(innerFrame)+VXLANOverhead], 0,
			&syscall.SockaddrLinklayer{Ifindex: ifindex, Halen: 6, Addr: [8]byte(append(kMACKernel[:], 0, 0))}); err != nil {
			t.Fatalf("send on u1: %v", err)
		}
		if err := pod.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2048)
		n, from, err := pod.ReadFromUDP(got)
		if err != nil {
			t.Fatalf("the kernel delivered nothing from our VXLAN frame: %v", err)
		}
		if !bytes.Equal(got[:n], msg) || from.String() != kPodAddr+":9998" {
			t.Errorf("kernel delivered %q from %v; want %q from %s:9998", got[:n], from, msg, kPodAddr)
		}
	})
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread inside the named network namespace. The
// thread is locked and never unlocked, so the runtime destroys it when the
// goroutine ends instead of reusing it in the wrong namespace.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens an AF_PACKET socket that receives every frame on the
// interface and can send on it, with a read timeout.
func packetSocket(ifindex int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind packet socket: %w", err)
	}
	tv := syscall.Timeval{Sec: 1}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("packet socket timeout: %w", err)
	}
	return fd, nil
}

// readFrame returns the first frame received (not sent) on the packet
// socket that match accepts, within 3 seconds.
func readFrame(t *testing.T, fd int, match func([]byte) bool) []byte {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		n, from, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read packet socket: %v", err)
		}
		if sll, ok := from.(*syscall.SockaddrLinklayer); ok && sll.Pkttype == syscall.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return bytes.Clone(buf[:n])
		}
	}
	t.Fatalf("no matching frame within 3s")
	return nil
}
