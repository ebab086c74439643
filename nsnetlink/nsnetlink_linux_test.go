package nsnetlink

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// TestOpen: the thread's own namespace is passed on as None (no setns, so
// no CAP_SYS_ADMIN); another namespace is passed on as it is.
func TestOpen(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	here, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	var got netns.NsHandle
	record := func(ns netns.NsHandle) error { got = ns; return nil }
	if err := Open(here, record); err != nil {
		t.Fatal(err)
	}
	if got.IsOpen() {
		t.Errorf("Open passed on %v for the thread's own namespace, want None", got)
	}

	if os.Geteuid() != 0 {
		t.Skip("another namespace needs root")
	}
	other, err := netns.New() // and moves this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := netns.Set(here); err != nil {
		t.Fatal(err)
	}
	if err := Open(other, record); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(other) {
		t.Errorf("Open passed on %v for another namespace, want it (%v)", got, other)
	}
}
