// Package nsnetlink opens netlink sockets in a given network namespace
// without entering it when the calling thread is in it already.
//
// vishvananda/netlink opens a socket "at" a namespace by switching the
// thread into it (setns) and back, even when the thread is there already,
// and setns needs CAP_SYS_ADMIN. ringnetd needs the namespace handle for
// tests, which run several nodes' namespaces in one process, but in a
// container it runs in one namespace and has no CAP_SYS_ADMIN
// (deploy/ringnet.yaml): there, every socket must be opened in place.
package nsnetlink

import (
	"runtime"

	"github.com/vishvananda/netns"
)

// Open calls open, on a thread locked for the call, with ns, or with
// netns.None() (open in place) if the thread is in ns already. open is
// meant to create netlink sockets (netlink.NewHandleAt, the
// Namespace option of the Subscribe functions): a socket stays in the
// namespace it was created in, whichever thread uses it later.
func Open(ns netns.NsHandle, open func(netns.NsHandle) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	here, err := netns.Get()
	if err != nil {
		return err
	}
	defer here.Close()
	if here.Equal(ns) {
		ns = netns.None()
	}
	return open(ns)
}
