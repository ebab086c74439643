package xsk_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/xdp"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/internal/netnstest"
	"golang.org/x/sys/unix"
)

// vethNS makes a namespace with a veth pair "xa" (where the socket binds)
// and "xb" (the peer), both up.
func vethNS(t *testing.T) netnstest.NS {
	n := netnstest.New(t, "rnX")
	netnstest.Run(t, n.Name, "ip", "link", "add", "xa", "type", "veth", "peer", "name", "xb")
	netnstest.Run(t, n.Name, "ip", "link", "set", "xa", "up")
	netnstest.Run(t, n.Name, "ip", "link", "set", "xb", "up")
	netnstest.Run(t, n.Name, "sysctl", "-qw", "net.ipv6.conf.xa.disable_ipv6=1", "net.ipv6.conf.xb.disable_ipv6=1")
	return n
}

// TestRealSocket receives a frame sent into the veth through the XDP
// program and AF_XDP socket, and transmits one back out, both on a real
// kernel socket.
func TestRealSocket(t *testing.T) {
	n := vethNS(t)
	n.Do(t, func() error {
		s, err := xsk.Open("xa", 0, xsk.Config{})
		if err != nil {
			return err
		}
		defer s.Close()
		if s.ZeroCopy() {
			t.Error("veth socket claims zero-copy")
		}
		prog, err := xdp.NewProgram(xdp.ProgramOptions{Queues: 1, Fallback: xdp.Drop})
		if err != nil {
			return err
		}
		defer prog.Close()
		if err := prog.Register(0, s.FD()); err != nil {
			return err
		}
		link, err := prog.Attach(s.Ifindex(), xdp.ModeNative)
		if err != nil {
			return err
		}
		defer link.Close()

		raw, xb := rawSocket(t, "xb")
		defer unix.Close(raw)
		frame := append(bytes.Repeat([]byte{0xff}, 6), 2, 0, 0, 0, 0, 1, 0x88, 0xb5)
		frame = append(frame, []byte(strings.Repeat("ringnet!", 6))...)
		if err := unix.Sendto(raw, frame, 0, &unix.SockaddrLinklayer{Ifindex: xb, Halen: 6}); err != nil {
			return err
		}
		descs := make([]xsk.Desc, 16)
		got := 0
		fds := []unix.PollFd{{Fd: int32(s.FD()), Events: unix.POLLIN}}
		for deadline := time.Now().Add(2 * time.Second); got == 0 && time.Now().Before(deadline); {
			xsk.Poll(fds, 100)
			got = s.Receive(descs)
		}
		if got != 1 {
			t.Fatalf("received %d frames, want 1", got)
		}
		if f := s.Frame(descs[0]); !bytes.Equal(f, frame) {
			t.Fatalf("received % x, want % x", f, frame)
		}
		// Send it back out of xa, in place; the peer's raw socket sees it.
		if n := s.Transmit(descs[:1]); n != 1 {
			t.Fatalf("Transmit queued %d", n)
		}
		buf := make([]byte, 2048)
		for deadline := time.Now().Add(2 * time.Second); ; {
			unix.SetsockoptTimeval(raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
			m, _, err := unix.Recvfrom(raw, buf, 0)
			if err == nil && bytes.Equal(buf[:m], frame) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("peer never received the transmitted frame")
			}
			s.Flush()
		}
		for deadline := time.Now().Add(time.Second); s.Complete() == 0; {
			if time.Now().After(deadline) {
				t.Fatal("no completion for the transmitted frame")
			}
			time.Sleep(time.Millisecond)
		}
		st, err := s.Stats()
		if err != nil {
			return err
		}
		if st.RxDropped+st.RxInvalidDescs+st.TxInvalidDescs+st.BadFrees != 0 {
			t.Errorf("unexpected drops: %+v", st)
		}
		return nil
	})
}

func rawSocket(t *testing.T, ifname string) (fd, ifindex int) {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		t.Fatal(err)
	}
	return fd, ifi.Index
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestOpenErrors checks that the failures a user can cause are reported
// with what to do, and that a failed Open leaves the queue usable.
func TestOpenErrors(t *testing.T) {
	n := vethNS(t)
	n.Do(t, func() error {
		_, err := xsk.Open("xa", 0, xsk.Config{Bind: xsk.BindZeroCopy})
		if err == nil || !strings.Contains(err.Error(), "no zero-copy AF_XDP support; use copy mode") {
			t.Errorf("zero-copy on veth: %v", err)
		}
		_, err = xsk.Open("xa", 5, xsk.Config{})
		if err == nil || !strings.Contains(err.Error(), "has an RX queue 5") {
			t.Errorf("queue 5 of a 1-queue veth: %v", err)
		}
		_, err = xsk.Open("nosuchdev", 0, xsk.Config{})
		if err == nil || !strings.Contains(err.Error(), "nosuchdev") {
			t.Errorf("missing device: %v", err)
		}
		s, err := xsk.Open("xa", 0, xsk.Config{Bind: xsk.BindCopy})
		if err != nil {
			return err
		}
		_, err = xsk.Open("xa", 0, xsk.Config{})
		if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "already has an AF_XDP socket") {
			t.Errorf("second socket on a queue: %v", err)
		}
		// A prepared socket binds once; a UMEM of the wrong size is refused
		// (and unmapped).
		p, err := xsk.Prepare(xsk.Config{}, nil)
		if err != nil {
			return err
		}
		if err := p.Bind("nosuchdev", 0); err == nil || !strings.Contains(err.Error(), "nosuchdev") {
			t.Errorf("prepared socket bound to a missing device: %v", err)
		}
		p.Close()
		small, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		if _, err := xsk.Prepare(xsk.Config{}, small); err == nil || !strings.Contains(err.Error(), "UMEM of 4096 bytes") {
			t.Errorf("Prepare with a 4 KiB UMEM: %v", err)
		}
		if err := s.Bind("xa", 1); err == nil || !strings.Contains(err.Error(), "already bound to xa queue 0") {
			t.Errorf("second Bind of a bound socket: %v", err)
		}
		return s.Close()
	})
}

func TestIfindex(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip(err)
	}
	if got, err := xsk.Ifindex("lo"); err != nil || got != lo.Index {
		t.Errorf("Ifindex(lo) = %d, %v; want %d", got, err, lo.Index)
	}
	if _, err := xsk.Ifindex("rn-no-such-if"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("Ifindex of a missing interface: %v, want ENODEV", err)
	}
	if _, err := xsk.Ifindex("a-name-longer-than-ifnamsiz"); err == nil {
		t.Error("Ifindex accepted a name longer than IFNAMSIZ")
	}
}
