// Package netnstest gives root tests their own network namespaces: uniquely
// named, removed in cleanup even when the test fails, and never touching the
// machine's own interfaces.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// RequireRoot skips the test unless it runs as root. CI runs as root, so
// there these tests always run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, XDP, AF_XDP)")
	}
}

var seq atomic.Uint32

// Name returns a namespace name unique to this process and call: prefix,
// the pid and a sequence number; at most 15 bytes when prefix is at most 4
// and fewer than 10000 names are made, so that it also fits an interface name.
func Name(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid()%100000, seq.Add(1)%10000)
}

// NS is a named network namespace made by New.
type NS struct {
	Name string
	Path string // /run/netns/Name
}

// New creates a named network namespace with lo up and deletes it when the
// test ends.
func New(t testing.TB, prefix string) NS {
	t.Helper()
	RequireRoot(t)
	n := NS{Name: Name(prefix)}
	n.Path = "/run/netns/" + n.Name
	Run(t, "", "ip", "netns", "add", n.Name)
	t.Cleanup(func() {
		// Kill what still runs inside, then delete.
		if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", n.Name).Run()
	})
	Run(t, n.Name, "ip", "link", "set", "lo", "up")
	return n
}

// Do runs fn with the calling goroutine's thread inside the namespace.
func (n NS) Do(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.WithNetNSPath(n.Path, func(ns.NetNS) error { return fn() }); err != nil {
		t.Fatalf("in netns %s: %v", n.Name, err)
	}
}

// Run runs a command, inside the named namespace unless nsName is empty,
// and fails the test with its output if it fails. It returns the output.
func Run(t testing.TB, nsName string, args ...string) string {
	t.Helper()
	out, err := Output(nsName, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Output runs a command like Run and returns its combined output and error.
func Output(nsName string, args ...string) (string, error) {
	if nsName != "" {
		args = append([]string{"ip", "netns", "exec", nsName}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
