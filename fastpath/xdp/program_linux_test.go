package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Test frames, built by hand so the test depends on nothing but the bytes.
var (
	podMAC  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	hostMAC = [6]byte{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
)

func ethernet(dst, src [6]byte, etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return append(b, payload...)
}

// udp4Frame is a UDP datagram from 192.0.2.2:40000 to 192.0.2.1:53.
func udp4Frame() []byte {
	payload := []byte("ringnet")
	ip := make([]byte, 20+8+len(payload))
	ip[0] = 0x45                                         // version 4, IHL 5
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip))) // total length
	binary.BigEndian.PutUint16(ip[6:8], 0x4000)          // don't fragment
	ip[8], ip[9] = 64, unix.IPPROTO_UDP                  // TTL, protocol
	copy(ip[12:16], []byte{192, 0, 2, 2})                // source
	copy(ip[16:20], []byte{192, 0, 2, 1})                // destination
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:20]))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:2], 40000)
	binary.BigEndian.PutUint16(udp[2:4], 53)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[8:], payload) // checksum 0: none, legal for UDP over IPv4
	return ethernet(hostMAC, podMAC, unix.ETH_P_IP, ip)
}

// arpFrame is a broadcast ARP request: who has 192.0.2.1, tell 192.0.2.2.
func arpFrame() []byte {
	arp := make([]byte, 28)
	binary.BigEndian.PutUint16(arp[0:2], 1)             // Ethernet
	binary.BigEndian.PutUint16(arp[2:4], unix.ETH_P_IP) // IPv4
	arp[4], arp[5] = 6, 4                               // address lengths
	binary.BigEndian.PutUint16(arp[6:8], 1)             // request
	copy(arp[8:14], podMAC[:])
	copy(arp[14:18], []byte{192, 0, 2, 2})
	copy(arp[24:28], []byte{192, 0, 2, 1})
	return ethernet([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, podMAC, unix.ETH_P_ARP, arp)
}

// shortFrame is an Ethernet header and nothing else: 14 bytes, the least
// BPF_PROG_TEST_RUN takes.
func shortFrame() []byte { return ethernet(hostMAC, podMAC, unix.ETH_P_IP, nil) }

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

var testFrames = []struct {
	name  string
	frame []byte
}{
	{"udp4", udp4Frame()},
	{"arp", arpFrame()},
	{"short", shortFrame()},
}

func newTestProgram(t *testing.T, opts ProgramOptions) *Program {
	t.Helper()
	return closedAtEnd[*Program](t)(NewProgram(opts))
}

// closedAtEnd returns a function that fails t on err and otherwise closes
// p when the test ends: closedAtEnd[*T](t)(NewT(...)).
func closedAtEnd[P interface{ Close() error }](t testing.TB) func(P, error) P {
	t.Helper()
	return func(p P, err error) P {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
		return p
	}
}

// runner is a Program or a SharedProgram.
type runner interface {
	Run(frame []byte, queue int, ifindex int) (Action, error)
}

// runAll runs p on every frame at each queue of dev, inside ns, and returns
// "frame/queue" -> verdict.
func runAll(t *testing.T, ns *testNS, p runner, dev netlink.Link, queues ...int) map[string]Action {
	t.Helper()
	got := make(map[string]Action)
	err := ns.Do(func() error {
		for _, f := range testFrames {
			for _, q := range queues {
				a, err := p.Run(f.frame, q, dev.Attrs().Index)
				if err != nil {
					return fmt.Errorf("%s at queue %d: %w", f.name, q, err)
				}
				got[fmt.Sprintf("%s/q%d", f.name, q)] = a
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// wantAll is runAll's result when every frame at every queue gets want.
func wantAll(want Action, queues ...int) map[string]Action {
	m := make(map[string]Action)
	for _, f := range testFrames {
		for _, q := range queues {
			m[fmt.Sprintf("%s/q%d", f.name, q)] = want
		}
	}
	return m
}

func diffVerdicts(want, got map[string]Action) string {
	var b strings.Builder
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			fmt.Fprintf(&b, "\n%s: -%v +%v", k, w, g)
		}
	}
	return b.String()
}

// With no socket registered, every frame on every queue gets the fallback.
func TestRunFallback(t *testing.T) {
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1", Queues: 4})

	for _, tc := range []struct {
		name string
		opts ProgramOptions
		want Action
	}{
		{"default", ProgramOptions{Queues: 4}, Pass},
		{"pass", ProgramOptions{Queues: 4, Fallback: Pass}, Pass},
		{"drop", ProgramOptions{Queues: 4, Fallback: Drop}, Drop},
		{"aborted", ProgramOptions{Queues: 4, AbortOnMiss: true}, Aborted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProgram(t, tc.opts)
			if got := p.Fallback(); got != tc.want {
				t.Errorf("Fallback() = %v, want %v", got, tc.want)
			}
			got := runAll(t, ns, p, dev, 0, 3)
			if d := diffVerdicts(wantAll(tc.want, 0, 3), got); d != "" {
				t.Errorf("verdicts (-want +got):%s", d)
			}
			// Without a device only queue 0 exists; the netns does not matter.
			for _, f := range testFrames {
				if got, err := p.Run(f.frame, 0, 0); err != nil || got != tc.want {
					t.Errorf("Run(%s, queue 0, no device) = %v, %v; want %v", f.name, got, err, tc.want)
				}
			}
		})
	}
}

// A frame on a queue beyond the map gets the fallback, whatever the map
// holds.
func TestRunQueueBeyondMap(t *testing.T) {
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1", Queues: 4})
	p := newTestProgram(t, ProgramOptions{Queues: 2, Fallback: Drop})
	var xsk *testXSK
	err := ns.Do(func() (err error) {
		xsk, err = openTestXSK(dev.Attrs().Index, 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xsk.Close() })
	if err := p.Register(1, xsk.FD()); err != nil {
		t.Fatal(err)
	}
	want := wantAll(Drop, 0, 2, 3)
	for k, v := range wantAll(Redirect, 1) {
		want[k] = v
	}
	if d := diffVerdicts(want, runAll(t, ns, p, dev, 0, 1, 2, 3)); d != "" {
		t.Errorf("verdicts (-want +got):%s", d)
	}
}

// A registered socket turns its queue's verdict into Redirect, and only its
// queue's; unregistering it, or closing it, turns it back.
func TestRegisterRedirect(t *testing.T) {
	for _, fallback := range []ProgramOptions{
		{Queues: 4, Fallback: Pass},
		{Queues: 4, Fallback: Drop},
		{Queues: 4, AbortOnMiss: true},
	} {
		p0, err := NewProgram(fallback)
		if err != nil {
			t.Fatal(err)
		}
		want := p0.Fallback()
		p0.Close()
		t.Run(want.String(), func(t *testing.T) {
			ns := newTestNS(t)
			dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1", Queues: 4})
			p := newTestProgram(t, fallback)

			var xsk *testXSK
			err := ns.Do(func() (err error) {
				xsk, err = openTestXSK(dev.Attrs().Index, 1)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { xsk.Close() })

			if err := p.Register(1, xsk.FD()); err != nil {
				t.Fatalf("Register(1): %v", err)
			}
			registered := wantAll(want, 0, 2, 3)
			for k, v := range wantAll(Redirect, 1) {
				registered[k] = v
			}
			if d := diffVerdicts(registered, runAll(t, ns, p, dev, 0, 1, 2, 3)); d != "" {
				t.Errorf("registered at queue 1: verdicts (-want +got):%s", d)
			}

			if err := p.Unregister(1); err != nil {
				t.Fatalf("Unregister(1): %v", err)
			}
			if d := diffVerdicts(wantAll(want, 0, 1, 2, 3), runAll(t, ns, p, dev, 0, 1, 2, 3)); d != "" {
				t.Errorf("after Unregister(1): verdicts (-want +got):%s", d)
			}
			if err := p.Unregister(1); err != nil {
				t.Errorf("Unregister of an empty slot: %v", err)
			}

			// The map holds the socket, not the fd: closing the
			// socket empties the slot.
			if err := p.Register(1, xsk.FD()); err != nil {
				t.Fatalf("Register(1) again: %v", err)
			}
			if got := runAll(t, ns, p, dev, 1); got["udp4/q1"] != Redirect {
				t.Fatalf("registered again: udp4 at queue 1 = %v, want redirect", got["udp4/q1"])
			}
			if err := xsk.Close(); err != nil {
				t.Fatal(err)
			}
			if d := diffVerdicts(wantAll(want, 1), runAll(t, ns, p, dev, 1)); d != "" {
				t.Errorf("after closing the socket: verdicts (-want +got):%s", d)
			}
		})
	}
}

func TestRegisterErrors(t *testing.T) {
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1", Queues: 2})
	p := newTestProgram(t, ProgramOptions{Queues: 2})

	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(udp)
	var xsk *testXSK
	if err := ns.Do(func() (err error) { xsk, err = openTestXSK(dev.Attrs().Index, 0); return err }); err != nil {
		t.Fatal(err)
	}
	defer xsk.Close()

	for _, tc := range []struct {
		name     string
		queue    int
		fd       int
		wantText string
	}{
		{"queue below range", -1, xsk.FD(), "out of range"},
		{"queue above range", 2, xsk.FD(), "out of range"},
		{"negative fd", 0, -1, "invalid fd"},
		{"not af_xdp", 0, udp, "not an AF_XDP socket"},
		{"closed fd", 0, 1 << 20, "bad file descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Register(tc.queue, tc.fd)
			if err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Register(%d, %d) = %v, want an error containing %q", tc.queue, tc.fd, err, tc.wantText)
			}
		})
	}
	for _, q := range []int{-1, 2} {
		if err := p.Unregister(q); err == nil {
			t.Errorf("Unregister(%d) = nil, want out of range", q)
		}
	}
}

func TestRunErrors(t *testing.T) {
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1", Queues: 4})
	p := newTestProgram(t, ProgramOptions{Queues: 4})
	frame := udp4Frame()
	ifindex := dev.Attrs().Index

	for _, tc := range []struct {
		name    string
		frame   []byte
		queue   int
		ifindex int
		errno   error // nil: checked by Run itself
	}{
		{"13 bytes", frame[:13], 0, ifindex, nil},
		{"queue without device", frame, 1, 0, nil},
		{"negative queue", frame, -1, ifindex, nil},
		{"queue beyond device", frame, 4, ifindex, unix.EINVAL},
		{"no such device", frame, 0, 1 << 20, unix.ENODEV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if nserr := ns.Do(func() error {
				_, err = p.Run(tc.frame, tc.queue, tc.ifindex)
				return nil
			}); nserr != nil {
				t.Fatal(nserr)
			}
			if err == nil {
				t.Fatalf("Run = nil error, want one")
			}
			if tc.errno != nil && !errors.Is(err, tc.errno) {
				t.Errorf("Run: %v, want %v", err, tc.errno)
			}
			if !strings.HasPrefix(err.Error(), "run xdp program: ") {
				t.Errorf("Run: %q lacks its context", err)
			}
		})
	}

	// The device is only visible inside its namespace.
	if _, err := p.Run(frame, 1, ifindex); err == nil {
		t.Errorf("Run outside the device's netns = nil error, want one")
	}
}

func TestNewProgramOptions(t *testing.T) {
	for _, tc := range []struct {
		opts ProgramOptions
		want Action // 0 with ok false: error
		ok   bool
	}{
		{ProgramOptions{Queues: 1}, Pass, true},
		{ProgramOptions{Queues: MaxQueues, Fallback: Drop}, Drop, true},
		{ProgramOptions{Queues: 1, AbortOnMiss: true}, Aborted, true},
		{ProgramOptions{Queues: 0}, 0, false},
		{ProgramOptions{Queues: -1}, 0, false},
		{ProgramOptions{Queues: MaxQueues + 1}, 0, false},
		{ProgramOptions{Queues: 1, Fallback: Tx}, 0, false},
		{ProgramOptions{Queues: 1, Fallback: Redirect}, 0, false},
		{ProgramOptions{Queues: 1, Fallback: Action(7)}, 0, false},
		{ProgramOptions{Queues: 1, Fallback: Drop, AbortOnMiss: true}, 0, false},
	} {
		t.Run(fmt.Sprintf("%+v", tc.opts), func(t *testing.T) {
			p, err := NewProgram(tc.opts)
			if !tc.ok {
				if err == nil {
					p.Close()
					t.Fatal("NewProgram = nil error, want one")
				}
				if !strings.HasPrefix(err.Error(), "new xdp program: ") {
					t.Errorf("error %q lacks its context", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Fallback() != tc.want || p.Queues() != tc.opts.Queues {
				t.Errorf("Fallback, Queues = %v, %d; want %v, %d", p.Fallback(), p.Queues(), tc.want, tc.opts.Queues)
			}
			if id, err := p.ID(); err != nil || id == 0 {
				t.Errorf("ID() = %d, %v", id, err)
			}
		})
	}
}
