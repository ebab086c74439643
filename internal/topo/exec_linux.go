package topo

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Command returns a command that runs name with args inside the named
// network namespace (through ip netns exec, which execs it: the process is
// the command itself), or where the caller runs when netns is "".
func Command(ctx context.Context, netns, name string, args ...string) *exec.Cmd {
	if netns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, name}, args...)...)
}

// Output runs a command like Command and returns its combined output. On
// failure the error carries the command line and the output.
func Output(ctx context.Context, netns, name string, args ...string) (string, error) {
	out, err := Command(ctx, netns, name, args...).CombinedOutput()
	if err != nil {
		where := ""
		if netns != "" {
			where = " in " + netns
		}
		return string(out), fmt.Errorf("%s%s: %w: %s", strings.Join(append([]string{name}, args...), " "),
			where, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on a locked OS thread inside the named network namespace, then
// returns the thread to where it was. Sockets fn opens stay in that
// namespace after it returns: a Go listener or dialer in a pod.
func Do(netns string, fn func() error) error {
	return ns.WithNetNSPath(filepath.Join(netnsDir, netns), func(ns.NetNS) error { return fn() })
}

// Command returns a command that runs inside the node's namespace.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return Command(ctx, n.NS, name, args...)
}

// Output runs a command inside the node's namespace; see Output.
func (n *Node) Output(ctx context.Context, name string, args ...string) (string, error) {
	return Output(ctx, n.NS, name, args...)
}

// Do runs fn inside the node's namespace; see Do.
func (n *Node) Do(fn func() error) error { return Do(n.NS, fn) }
