package xdp

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func newTestShared(t *testing.T, opts SharedOptions) *SharedProgram {
	t.Helper()
	return closedAtEnd[*SharedProgram](t)(NewSharedProgram(opts))
}

func openIn(t *testing.T, ns *testNS, dev netlink.Link, queue int) *testXSK {
	t.Helper()
	var x *testXSK
	if err := ns.Do(func() (err error) {
		x, err = openTestXSK(dev.Attrs().Index, queue)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// merge is want with the verdicts of more laid over it.
func merge(want map[string]Action, more ...map[string]Action) map[string]Action {
	for _, m := range more {
		for k, v := range m {
			want[k] = v
		}
	}
	return want
}

// One program serves several devices, each through its own slot: a
// device's frames reach only its own sockets, a device without a slot and
// a queue beyond the program's get the fallback (never another slot's
// socket), and a slot given back and taken by another device starts empty.
func TestSharedProgram(t *testing.T) {
	ns := newTestNS(t)
	a, _ := ns.addVeth(t, vethOptions{Name: "rnsa0", PeerName: "rnsa1", Queues: 4})
	b, _ := ns.addVeth(t, vethOptions{Name: "rnsb0", PeerName: "rnsb1", Queues: 4})
	c, _ := ns.addVeth(t, vethOptions{Name: "rnsc0", PeerName: "rnsc1", Queues: 8})
	p := newTestShared(t, SharedOptions{Devices: 2, Queues: 4, Fallback: Drop})

	da, err := p.AddDevice(a.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	db, err := p.AddDevice(b.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddDevice(c.Attrs().Index); !errors.Is(err, ErrFull) {
		t.Errorf("third device in a program for two: %v, want ErrFull", err)
	}
	if _, err := p.AddDevice(a.Attrs().Index); err == nil || !strings.Contains(err.Error(), "already has a slot") {
		t.Errorf("AddDevice twice: %v", err)
	}
	if p.Free() != 0 {
		t.Errorf("Free() = %d, want 0", p.Free())
	}

	if err := da.Register(1, openIn(t, ns, a, 1).FD()); err != nil {
		t.Fatal(err)
	}
	// b has sockets at every queue: a frame that leaked into b's slot
	// from a or c would be redirected.
	for q := range 4 {
		if err := db.Register(q, openIn(t, ns, b, q).FD()); err != nil {
			t.Fatal(err)
		}
	}
	if err := da.Register(4, 0); err == nil {
		t.Error("Register at queue 4 of a 4-queue program succeeded")
	}
	all := []int{0, 1, 2, 3}
	if d := diffVerdicts(merge(wantAll(Drop, 0, 2, 3), wantAll(Redirect, 1)), runAll(t, ns, p, a, all...)); d != "" {
		t.Errorf("device a: verdicts (-want +got):%s", d)
	}
	if d := diffVerdicts(wantAll(Redirect, all...), runAll(t, ns, p, b, all...)); d != "" {
		t.Errorf("device b: verdicts (-want +got):%s", d)
	}
	if d := diffVerdicts(wantAll(Drop, 0, 1, 2, 3, 4, 5, 6, 7), runAll(t, ns, p, c, 0, 1, 2, 3, 4, 5, 6, 7)); d != "" {
		t.Errorf("device c, no slot: verdicts (-want +got):%s", d)
	}

	// a gives its slot back; c takes it. a's frames fall back, and c's
	// slot holds none of a's sockets; c's queues 4-7, which would be b's
	// keys, fall back too.
	if err := da.Close(); err != nil {
		t.Fatal(err)
	}
	if err := da.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := da.Register(1, 0); err == nil {
		t.Error("Register on a closed device succeeded")
	}
	dc, err := p.AddDevice(c.Attrs().Index)
	if err != nil {
		t.Fatalf("AddDevice after a slot was freed: %v", err)
	}
	if d := diffVerdicts(wantAll(Drop, all...), runAll(t, ns, p, a, all...)); d != "" {
		t.Errorf("device a after Close: verdicts (-want +got):%s", d)
	}
	if d := diffVerdicts(wantAll(Drop, 0, 1, 2, 3, 4, 5, 6, 7), runAll(t, ns, p, c, 0, 1, 2, 3, 4, 5, 6, 7)); d != "" {
		t.Errorf("device c in a's old slot: verdicts (-want +got):%s", d)
	}
	if err := dc.Register(1, openIn(t, ns, c, 1).FD()); err != nil {
		t.Fatal(err)
	}
	if got := runAll(t, ns, p, c, 1); got["udp4/q1"] != Redirect {
		t.Errorf("device c registered at queue 1: udp4 = %v, want redirect", got["udp4/q1"])
	}
}

// Every device runs the one program (the kernel reports one program id on
// all), which is what spares an attach the XDP dispatcher's update; and
// detaching one device leaves the others attached and redirecting.
func TestSharedProgramAttach(t *testing.T) {
	for _, mode := range []Mode{ModeNative, ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			ns := newTestNS(t)
			p := newTestShared(t, SharedOptions{Devices: 4, Queues: 1, Fallback: Drop})
			id, err := p.ID()
			if err != nil {
				t.Fatal(err)
			}
			var links []*Attachment
			var devs []netlink.Link
			for _, n := range []string{"rnsa", "rnsb", "rnsc"} {
				dev, _ := ns.addVeth(t, vethOptions{Name: n + "0", PeerName: n + "1"})
				d, err := p.AddDevice(dev.Attrs().Index)
				if err != nil {
					t.Fatal(err)
				}
				var l *Attachment
				if err := ns.Do(func() (err error) { l, err = d.Attach(mode); return err }); err != nil {
					t.Fatalf("attach to %s: %v", n, err)
				}
				t.Cleanup(func() { l.Close() })
				links, devs = append(links, l), append(devs, dev)
			}
			for _, dev := range devs {
				x := linkXDP(t, ns, dev)
				if x.ProgId != id || x.AttachMode != attachedMode(mode) {
					t.Errorf("%s: program %d in mode %d, want the shared program %d in mode %d",
						dev.Attrs().Name, x.ProgId, x.AttachMode, id, attachedMode(mode))
				}
			}
			if err := links[0].Close(); err != nil {
				t.Fatal(err)
			}
			if x := linkXDP(t, ns, devs[0]); x.Attached {
				t.Errorf("%s still has program %d after its link closed", devs[0].Attrs().Name, x.ProgId)
			}
			for _, dev := range devs[1:] {
				if x := linkXDP(t, ns, dev); x.ProgId != id {
					t.Errorf("%s: program %d after another device detached, want %d", dev.Attrs().Name, x.ProgId, id)
				}
			}
		})
	}
}

// Hold attaches the program in generic mode to a TAP of its own, down, in
// the caller's namespace; only once; Close removes the TAP.
func TestSharedProgramHold(t *testing.T) {
	ns := newTestNS(t)
	p, err := NewSharedProgram(SharedOptions{Devices: 2, Queues: 1, Fallback: Drop})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	id, err := p.ID()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := ns.Do(func() (err error) { name, err = p.Hold("rnxdp%d"); return err }); err != nil {
		t.Fatal(err)
	}
	if name != "rnxdp0" {
		t.Errorf("held on %q, want rnxdp0 (the first free name of the pattern)", name)
	}
	tap, err := ns.NL.LinkByName(name)
	if err != nil {
		t.Fatalf("the holding TAP is not in the namespace: %v", err)
	}
	if x := linkXDP(t, ns, tap); x.ProgId != id || x.AttachMode != xdpAttachedSKB {
		t.Errorf("%s runs program %d in mode %d, want %d in generic mode", name, x.ProgId, x.AttachMode, id)
	}
	if tap.Type() != "tuntap" || tap.Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("%s is a %s with flags %v, want a TAP that is down", name, tap.Type(), tap.Attrs().Flags)
	}
	if err := ns.Do(func() error { _, err := p.Hold("rnxdp%d"); return err }); err == nil {
		t.Error("a second Hold succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NL.LinkByName(name); err == nil {
		t.Errorf("%s is still there after Close", name)
	}
}

func TestNewSharedProgramOptions(t *testing.T) {
	for _, tc := range []struct {
		opts SharedOptions
		want string
	}{
		{SharedOptions{Devices: 0, Queues: 1}, "devices 0 out of range"},
		{SharedOptions{Devices: MaxDevices + 1, Queues: 1}, "out of range"},
		{SharedOptions{Devices: 1, Queues: 0}, "queues 0 out of range"},
		{SharedOptions{Devices: MaxDevices, Queues: MaxQueues}, "2^24"},
		{SharedOptions{Devices: 1, Queues: 1, Fallback: Redirect}, "fallback"},
	} {
		if _, err := NewSharedProgram(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSharedProgram(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

// BenchmarkAttach times one XDP attach to a veth (the detach is not
// timed): "own" loads a program of its own for the device, as every pod
// port did before the shared program, and the kernel's XDP dispatcher
// changes on every attach; "shared" attaches a program that another
// device already runs, so the dispatcher does not change; "held" one that
// only its holding TAP runs (SharedProgram.Hold), as the first pod of an
// empty node does. Run it with a
// fixed count, each op being tens of milliseconds in the first case:
//
//	go test -run '^$' -bench Attach -benchtime 20x ./fastpath/xdp/
func BenchmarkAttach(b *testing.B) {
	ns := newTestNS(b)
	held, _ := ns.addVeth(b, vethOptions{Name: "rnba0", PeerName: "rnba1"})
	dev, _ := ns.addVeth(b, vethOptions{Name: "rnbb0", PeerName: "rnbb1"})
	attach := func(b *testing.B, attach func() (*Attachment, error)) {
		for b.Loop() {
			var l *Attachment
			if err := ns.Do(func() (err error) { l, err = attach(); return err }); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			l.Close()
			b.StartTimer()
		}
	}
	b.Run("own", func(b *testing.B) {
		attach(b, func() (*Attachment, error) {
			b.StopTimer()
			p, err := NewProgram(ProgramOptions{Queues: 1, Fallback: Drop})
			b.StartTimer()
			if err != nil {
				return nil, err
			}
			defer p.Close() // the link keeps it
			return p.Attach(dev.Attrs().Index, ModeNative)
		})
	})
	b.Run("held", func(b *testing.B) {
		p, err := NewSharedProgram(SharedOptions{Devices: 2, Queues: 1, Fallback: Drop})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if err := ns.Do(func() error { _, err := p.Hold("rnxdp%d"); return err }); err != nil {
			b.Fatal(err)
		}
		attach(b, func() (*Attachment, error) { return p.Attach(dev.Attrs().Index, ModeNative) })
	})
	b.Run("shared", func(b *testing.B) {
		p, err := NewSharedProgram(SharedOptions{Devices: 2, Queues: 1, Fallback: Drop})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		var keep *Attachment
		if err := ns.Do(func() (err error) { keep, err = p.Attach(held.Attrs().Index, ModeNative); return err }); err != nil {
			b.Fatal(err)
		}
		defer keep.Close()
		attach(b, func() (*Attachment, error) { return p.Attach(dev.Attrs().Index, ModeNative) })
	})
}
