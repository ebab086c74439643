package xdp

// A small netns helper for this package's root tests. It is self-contained
// so that it can move to a shared internal/netnstest package as it is.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNS is a fresh network namespace, named "rnxdp-<pid>-<random>" under
// /run/netns (so `ip netns exec NAME` works), that is deleted when the test
// ends, whether it passed or not.
type testNS struct {
	Name   string
	handle netns.NsHandle
	// NL is a netlink handle whose socket lives in the namespace: use it
	// to create and inspect devices without entering the namespace.
	NL *netlink.Handle
}

func newTestNS(t testing.TB) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and must run as root")
	}
	name := fmt.Sprintf("rnxdp-%d-%08x", os.Getpid(), rand.Uint32())
	// netns.NewNamed moves the calling thread into the new namespace. Do
	// it on a throwaway thread (see do), so no thread of the test process
	// stays in it.
	err := do(func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		return h.Close()
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	ns := &testNS{Name: name, handle: netns.None()}
	t.Cleanup(func() {
		if ns.NL != nil {
			ns.NL.Close()
		}
		if ns.handle.IsOpen() {
			ns.handle.Close()
		}
		// Unmounting the name drops the last reference (once sockets and
		// links made inside it are closed): the kernel then destroys the
		// namespace and every device in it.
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	// GetFromName returns -1 with its error, so Cleanup never closes fd 0.
	if ns.handle, err = netns.GetFromName(name); err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	if ns.NL, err = netlink.NewHandleAt(ns.handle); err != nil {
		t.Fatalf("netlink in netns %s: %v", name, err)
	}
	return ns
}

// Do runs fn on an OS thread inside the namespace and returns its error. fn
// runs on another goroutine, so it must not call t.Fatal and friends.
func (ns *testNS) Do(fn func() error) error {
	return do(func() error {
		if err := netns.Set(ns.handle); err != nil {
			return fmt.Errorf("enter netns %s: %w", ns.Name, err)
		}
		return fn()
	})
}

// do runs fn on a goroutine locked to its OS thread and never unlocked: when
// the goroutine ends the Go runtime destroys the thread rather than reuse it,
// so whatever namespace fn moved it into dies with it. Nothing has to be
// switched back, and a failed switch back cannot leak a thread into the
// wrong namespace.
func do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// vethOptions describes a veth pair for addVeth.
type vethOptions struct {
	Name, PeerName string
	// Queues is the number of RX and TX queues of each end; 0 means 1.
	Queues int
	// Peer is the namespace of the peer end; nil keeps it beside Name.
	Peer *testNS
	// Addr and PeerAddr, if set, are CIDR addresses for the two ends.
	Addr, PeerAddr string
}

// addVeth creates a veth pair with its first end in ns, sets both ends up,
// and returns them as seen from their namespaces. The pair goes away with
// the namespaces.
func (ns *testNS) addVeth(t testing.TB, o vethOptions) (end, peer netlink.Link) {
	t.Helper()
	if o.Queues == 0 {
		o.Queues = 1
	}
	peerNS := o.Peer
	if peerNS == nil {
		peerNS = ns
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = o.Name
	attrs.NumTxQueues, attrs.NumRxQueues = o.Queues, o.Queues
	veth := &netlink.Veth{
		LinkAttrs:       attrs,
		PeerName:        o.PeerName,
		PeerNumTxQueues: uint32(o.Queues),
		PeerNumRxQueues: uint32(o.Queues),
		PeerNamespace:   netlink.NsFd(int(peerNS.handle)),
	}
	if err := ns.NL.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s: %v", o.Name, o.PeerName, err)
	}
	end = setUp(t, ns, o.Name, o.Addr)
	peer = setUp(t, peerNS, o.PeerName, o.PeerAddr)
	return end, peer
}

func setUp(t testing.TB, ns *testNS, name, addr string) netlink.Link {
	t.Helper()
	l, err := ns.NL.LinkByName(name)
	if err != nil {
		t.Fatalf("netns %s: find %s: %v", ns.Name, name, err)
	}
	if addr != "" {
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.NL.AddrAdd(l, a); err != nil {
			t.Fatalf("netns %s: add %s to %s: %v", ns.Name, addr, name, err)
		}
	}
	if err := ns.NL.LinkSetUp(l); err != nil {
		t.Fatalf("netns %s: set %s up: %v", ns.Name, name, err)
	}
	return l
}

// disableIPv6 turns IPv6 off in the namespace, so that no device in it sends
// anything by itself (router solicitations, MLD reports, DAD probes) and
// packet counters only move for the traffic a test makes. It is a no-op on a
// kernel without IPv6.
func (ns *testNS) disableIPv6(t testing.TB) {
	t.Helper()
	err := ns.Do(func() error {
		// /proc/sys/net belongs to the namespace of the thread that
		// opens it.
		for _, dev := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1"), 0); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("netns %s: disable ipv6: %v", ns.Name, err)
	}
}
