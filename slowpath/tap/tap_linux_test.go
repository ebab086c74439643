package tap

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/packet"
	"github.com/ringnet/ringnet/internal/netnstest"
	"golang.org/x/sys/unix"
)

// tapInNS makes a namespace with a TAP "rt0" holding 10.99.0.1/24, a
// permanent neighbour 10.99.0.2 (so the host sends to it without ARP) and
// no IPv6 (so nothing else comes out of it).
func tapInNS(t *testing.T) (netnstest.NS, *Device) {
	t.Helper()
	n := netnstest.New(t, "rnT")
	var d *Device
	n.Do(t, func() error {
		var err error
		d, err = Open("rt0")
		return err
	})
	t.Cleanup(func() { d.Close() })
	netnstest.Run(t, n.Name, "sysctl", "-qw", "net.ipv6.conf.rt0.disable_ipv6=1")
	netnstest.Run(t, n.Name, "ip", "link", "set", "rt0", "up")
	netnstest.Run(t, n.Name, "ip", "addr", "add", "10.99.0.1/24", "dev", "rt0")
	netnstest.Run(t, n.Name, "ip", "neigh", "replace", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "nud", "permanent", "dev", "rt0")
	return n, d
}

func tapMAC(t *testing.T, n netnstest.NS) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	n.Do(t, func() error {
		ifi, err := net.InterfaceByName("rt0")
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	return mac
}

// udpTo builds a frame from 10.99.0.2 to the host's 10.99.0.1:port.
func udpTo(dstMAC net.HardwareAddr, port uint16, payload string) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], dstMAC)
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(f[12:], packet.EtherTypeIPv4)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, packet.ProtoUDP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	copy(ip[12:], []byte{10, 99, 0, 2})
	copy(ip[16:], []byte{10, 99, 0, 1})
	binary.BigEndian.PutUint16(ip[10:], packet.Checksum(ip, 0))
	binary.BigEndian.PutUint16(f[34:], 5555)
	binary.BigEndian.PutUint16(f[36:], port)
	binary.BigEndian.PutUint16(f[38:], uint16(8+len(payload)))
	copy(f[42:], payload)
	return f
}

// sendFromHost sends n UDP datagrams from the namespace to 10.99.0.2,
// which the host routes out of the TAP.
func sendFromHost(t *testing.T, ns netnstest.NS, n int) {
	t.Helper()
	ns.Do(t, func() error {
		c, err := net.Dial("udp4", "10.99.0.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range n {
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestReadBatch(t *testing.T) {
	ns, d := tapInNS(t)
	if d.Name() != "rt0" {
		t.Errorf("name %q", d.Name())
	}
	sendFromHost(t, ns, 10)
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	lens := make([]int, 4)
	got := 0
	for got < 10 {
		n, err := d.ReadBatch(bufs, lens)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || n > 4 {
			t.Fatalf("ReadBatch returned %d frames", n)
		}
		for i := range n {
			var p packet.Parsed
			f := bufs[i][:lens[i]]
			if m := packet.Decode(f, &p); m != packet.OK || p.Dst != netip.MustParseAddr("10.99.0.2") ||
				[6]byte(f[0:6]) != [6]byte{2, 0, 0, 0, 0, 2} || f[len(f)-1] != byte(got) {
				t.Fatalf("frame %d: %v % x", got, m, f)
			}
			got++
		}
	}

	// No allocation per batch: 120 frames queued, read one batch of one
	// per run.
	sendFromHost(t, ns, 120)
	if n := testing.AllocsPerRun(100, func() {
		if n, err := d.ReadBatch(bufs[:1], lens); n != 1 || err != nil {
			t.Fatalf("ReadBatch: %d, %v", n, err)
		}
	}); n != 0 {
		t.Errorf("ReadBatch allocates %v times", n)
	}
}

func TestWriteBatch(t *testing.T) {
	ns, d := tapInNS(t)
	mac := tapMAC(t, ns)
	var conn net.PacketConn
	ns.Do(t, func() error {
		var err error
		conn, err = net.ListenPacket("udp4", "10.99.0.1:7777")
		return err
	})
	defer conn.Close()
	frames := [][]byte{udpTo(mac, 7777, "one"), udpTo(mac, 7777, "two"), {1, 2, 3}, udpTo(mac, 7777, "three")}
	sent, failed, err := d.WriteBatch(frames)
	if err != nil || sent+failed != 4 || sent < 3 {
		t.Fatalf("WriteBatch: sent %d failed %d err %v", sent, failed, err)
	}
	buf := make([]byte, 64)
	for _, want := range []string{"one", "two", "three"} {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("host received %q, %v; want %q", buf[:n], err, want)
		}
	}
	batch := [][]byte{udpTo(mac, 7778, "x"), udpTo(mac, 7778, "y")}
	if n := testing.AllocsPerRun(100, func() { d.WriteBatch(batch) }); n != 0 {
		t.Errorf("WriteBatch allocates %v times", n)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	ns, d := tapInNS(t)
	done := make(chan error)
	go func() {
		bufs, lens := [][]byte{make([]byte, 2048)}, []int{0}
		_, err := d.ReadBatch(bufs, lens)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	d.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadBatch")
	}
	// The device went with the descriptor.
	if out, err := netnstest.Output(ns.Name, "ip", "link", "show", "rt0"); err == nil {
		t.Errorf("rt0 still there after Close:\n%s", out)
	}
	if _, _, err := d.WriteBatch([][]byte{{1}}); err == nil {
		t.Error("WriteBatch after Close succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(strings.Repeat("x", 16)); err == nil {
		t.Error("a 16-byte name was accepted")
	}
	netnstest.RequireRoot(t)
	n := netnstest.New(t, "rnT")
	n.Do(t, func() error {
		d, err := Open("rt1")
		if err != nil {
			return err
		}
		defer d.Close()
		if _, err := Open("rt1"); err == nil {
			t.Error("a second Open of a TAP in use succeeded")
		}
		return nil
	})
}

func TestCloseOnExec(t *testing.T) {
	_, d := tapInNS(t)
	var flags int
	var ferr error
	if err := d.rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) }); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("the TAP's descriptor is inherited by child processes")
	}
}
