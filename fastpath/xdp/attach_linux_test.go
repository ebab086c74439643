package xdp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkXDP is what netlink, not this package, says about dev's XDP hook.
func linkXDP(t *testing.T, ns *testNS, dev netlink.Link) netlink.LinkXdp {
	t.Helper()
	l, err := ns.NL.LinkByIndex(dev.Attrs().Index)
	if err != nil {
		t.Fatalf("netns %s: %v", ns.Name, err)
	}
	if x := l.Attrs().Xdp; x != nil {
		return *x
	}
	return netlink.LinkXdp{}
}

// attachedMode is IFLA_XDP_ATTACHED for a program attached in mode.
func attachedMode(mode Mode) uint32 {
	if mode == ModeNative {
		return xdpAttachedDrv
	}
	return xdpAttachedSKB
}

func otherMode(mode Mode) Mode {
	if mode == ModeNative {
		return ModeGeneric
	}
	return ModeNative
}

func attachIn(ns *testNS, p *Program, dev netlink.Link, mode Mode) (a *Attachment, err error) {
	nserr := ns.Do(func() error {
		a, err = p.Attach(dev.Attrs().Index, mode)
		return nil
	})
	if nserr != nil {
		return nil, nserr
	}
	return a, err
}

func TestAttach(t *testing.T) {
	for _, mode := range []Mode{ModeNative, ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			ns := newTestNS(t)
			dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1", Queues: 2})
			p := newTestProgram(t, ProgramOptions{Queues: 2})
			id, err := p.ID()
			if err != nil {
				t.Fatal(err)
			}

			a, err := attachIn(ns, p, dev, mode)
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			t.Cleanup(func() { a.Close() })
			if a.Mode() != mode || a.Ifindex() != dev.Attrs().Index {
				t.Errorf("Mode, Ifindex = %v, %d; want %v, %d", a.Mode(), a.Ifindex(), mode, dev.Attrs().Index)
			}
			x := linkXDP(t, ns, dev)
			if !x.Attached || x.AttachMode != attachedMode(mode) || x.ProgId != id {
				t.Errorf("netlink after Attach: attached %v mode %d prog %d; want true, %d, %d",
					x.Attached, x.AttachMode, x.ProgId, attachedMode(mode), id)
			}
			var st Status
			if err := ns.Do(func() (err error) { st, err = Query(dev.Attrs().Index); return err }); err != nil {
				t.Fatal(err)
			}
			if want := (Status{ProgramID: id, Mode: mode}); st != want {
				t.Errorf("Query = %+v, want %+v", st, want)
			}

			// A second program, in either mode, is refused while the
			// first is attached.
			p2 := newTestProgram(t, ProgramOptions{Queues: 2})
			for _, m := range []Mode{mode, otherMode(mode)} {
				a2, err := attachIn(ns, p2, dev, m)
				if err == nil {
					a2.Close()
					t.Fatalf("second Attach in %v mode = nil error, want ErrBusy", m)
				}
				if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "already has an xdp program") {
					t.Errorf("second Attach in %v mode: %v, want ErrBusy", m, err)
				}
				t.Logf("second Attach in %v mode: %v", m, err)
			}
			// The same program twice is refused too.
			if a2, err := attachIn(ns, p, dev, mode); !errors.Is(err, ErrBusy) {
				if a2 != nil {
					a2.Close()
				}
				t.Errorf("same program attached twice: %v, want ErrBusy", err)
			}

			// Detach cannot take a live link's program away.
			err = ns.Do(func() error { return Detach(dev.Attrs().Index) })
			if err == nil || !strings.Contains(err.Error(), "bpf_link") {
				t.Errorf("Detach of a link's program = %v, want a bpf_link error", err)
			}
			t.Logf("Detach of a link's program: %v", err)
			if x := linkXDP(t, ns, dev); x.ProgId != id {
				t.Errorf("after refused Detach: prog %d attached, want %d", x.ProgId, id)
			}

			// Closing the Program leaves the attachment working.
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if x := linkXDP(t, ns, dev); x.ProgId != id {
				t.Errorf("after Program.Close: prog %d attached, want %d", x.ProgId, id)
			}

			if err := a.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if x := linkXDP(t, ns, dev); x.Attached || x.ProgId != 0 {
				t.Errorf("netlink after Close: attached %v prog %d, want nothing", x.Attached, x.ProgId)
			}
			if err := a.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}

			// The device is free again.
			a3, err := attachIn(ns, p2, dev, mode)
			if err != nil {
				t.Fatalf("Attach after Close: %v", err)
			}
			a3.Close()
		})
	}
}

// A program attached through netlink outlives its loader; Detach removes
// it.
func TestDetachStale(t *testing.T) {
	for _, mode := range []Mode{ModeNative, ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			ns := newTestNS(t)
			dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1"})
			ifindex := dev.Attrs().Index

			p, err := NewProgram(ProgramOptions{Queues: 1})
			if err != nil {
				t.Fatal(err)
			}
			id, err := p.ID()
			if err != nil {
				t.Fatal(err)
			}
			err = ns.Do(func() error {
				return netlink.LinkSetXdpFdWithFlags(dev, p.prog.FD(), int(mode))
			})
			p.Close() // as if the process that attached it had died
			if err != nil {
				t.Fatalf("attach through netlink: %v", err)
			}
			if x := linkXDP(t, ns, dev); x.ProgId != id || x.AttachMode != attachedMode(mode) {
				t.Fatalf("stale program: netlink reports prog %d mode %d, want %d, %d", x.ProgId, x.AttachMode, id, attachedMode(mode))
			}

			// Attach refuses to replace it.
			p2 := newTestProgram(t, ProgramOptions{Queues: 1})
			if a, err := attachIn(ns, p2, dev, mode); !errors.Is(err, ErrBusy) {
				if a != nil {
					a.Close()
				}
				t.Errorf("Attach over a stale program: %v, want ErrBusy", err)
			}

			if err := ns.Do(func() error { return Detach(ifindex) }); err != nil {
				t.Fatalf("Detach: %v", err)
			}
			if x := linkXDP(t, ns, dev); x.Attached || x.ProgId != 0 {
				t.Errorf("netlink after Detach: attached %v prog %d, want nothing", x.Attached, x.ProgId)
			}
			if err := ns.Do(func() error { return Detach(ifindex) }); err != nil {
				t.Errorf("Detach with nothing attached: %v", err)
			}
			a, err := attachIn(ns, p2, dev, mode)
			if err != nil {
				t.Fatalf("Attach after Detach: %v", err)
			}
			a.Close()
		})
	}
}

func TestAttachErrors(t *testing.T) {
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1"})
	// A bridge has no native XDP; this kernel has no dummy module.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "rnxbr0"}}
	if err := ns.NL.LinkAdd(br); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	brl := setUp(t, ns, "rnxbr0", "")
	p := newTestProgram(t, ProgramOptions{Queues: 1})

	t.Run("native on a bridge", func(t *testing.T) {
		a, err := attachIn(ns, p, brl, ModeNative)
		if err == nil {
			a.Close()
			t.Fatal("Attach = nil error, want ErrModeNotSupported")
		}
		if !errors.Is(err, ErrModeNotSupported) || !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("Attach: %v, want ErrModeNotSupported wrapping EOPNOTSUPP", err)
		}
		t.Log(err)
		want := fmt.Sprintf("attach xdp to ifindex %d in native mode: ", brl.Attrs().Index)
		if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), ": try generic") {
			t.Errorf("Attach: %q, want %q...: try generic", err, want)
		}
	})
	t.Run("generic on a bridge", func(t *testing.T) {
		a, err := attachIn(ns, p, brl, ModeGeneric)
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		a.Close()
	})
	t.Run("no mode", func(t *testing.T) {
		if a, err := attachIn(ns, p, dev, 0); err == nil || !strings.Contains(err.Error(), "want native or generic") {
			if a != nil {
				a.Close()
			}
			t.Errorf("Attach(mode 0) = %v, want a mode error", err)
		}
	})
	t.Run("no such device", func(t *testing.T) {
		a, err := attachIn(ns, p, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1 << 20}}, ModeGeneric)
		if err == nil || !strings.Contains(err.Error(), "no such device") {
			if a != nil {
				a.Close()
			}
			t.Errorf("Attach(no device) = %v, want no such device", err)
		}
		t.Log(err)
	})
	t.Run("veth peer mtu too large", func(t *testing.T) {
		v, peer := ns.addVeth(t, vethOptions{Name: "rnx4", PeerName: "rnx5"})
		if err := ns.NL.LinkSetMTU(peer, 9000); err != nil {
			t.Fatal(err)
		}
		a, err := attachIn(ns, p, v, ModeNative)
		if err == nil {
			a.Close()
			t.Fatal("Attach = nil error, want ERANGE")
		}
		if !errors.Is(err, unix.ERANGE) || !strings.Contains(err.Error(), "mtu") {
			t.Errorf("Attach: %v, want ERANGE and a word on the mtu", err)
		}
		t.Log(err)
	})
	t.Run("deleted device", func(t *testing.T) {
		// Deleting the device detaches the program; Close then only
		// releases the link.
		v, _ := ns.addVeth(t, vethOptions{Name: "rnx2", PeerName: "rnx3"})
		a, err := attachIn(ns, p, v, ModeNative)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.NL.LinkDel(v); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close after the device went away: %v", err)
		}
	})
}

// The promise of a bpf_link attachment: when the process that holds it dies,
// even by SIGKILL, the program detaches. The test attaches from a child
// process (this test binary, running TestAttachHelperProcess), kills it, and
// watches the hook empty.
func TestAttachDiesWithProcess(t *testing.T) {
	ns := newTestNS(t)
	dev, _ := ns.addVeth(t, vethOptions{Name: "rnx0", PeerName: "rnx1"})
	ifindex := dev.Attrs().Index

	cmd := exec.Command(os.Args[0], "-test.run=^TestAttachHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"RNXDP_HELPER_NETNS="+ns.Name,
		"RNXDP_HELPER_IFINDEX="+strconv.Itoa(ifindex))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		if !strings.HasPrefix(line, "attached ") {
			t.Fatalf("helper said %q, want attached <id>", line)
		}
		id, _ := strconv.ParseUint(strings.TrimPrefix(line, "attached "), 10, 32)
		if x := linkXDP(t, ns, dev); x.ProgId != uint32(id) || x.AttachMode != xdpAttachedDrv {
			t.Fatalf("while the helper lives: prog %d mode %d attached, want %d native", x.ProgId, x.AttachMode, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not attach within 10s")
	}

	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		x := linkXDP(t, ns, dev)
		if !x.Attached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after SIGKILL prog %d is still attached", x.ProgId)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAttachHelperProcess is the child of TestAttachDiesWithProcess; run
// directly, it does nothing.
func TestAttachHelperProcess(t *testing.T) {
	name := os.Getenv("RNXDP_HELPER_NETNS")
	if name == "" {
		return
	}
	ifindex, _ := strconv.Atoi(os.Getenv("RNXDP_HELPER_IFINDEX"))
	p, err := NewProgram(ProgramOptions{Queues: 1})
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.ID()
	if err != nil {
		t.Fatal(err)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	var a *Attachment
	err = do(func() error {
		if err := netns.Set(h); err != nil {
			return err
		}
		a, err = p.Attach(ifindex, ModeNative)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("attached %d\n", id)
	time.Sleep(time.Minute) // until SIGKILL
	a.Close()
	p.Close()
}
