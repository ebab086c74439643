// Command cni is ringnet's CNI latency benchmark: how long CNI ADD and DEL
// take, p50 and p99 over 100 pods, called through cnitool the way a person
// (or, with libcni, a runtime) calls a plugin, side by side in one run with
// Debian's bridge + host-local plugins doing the same pods:
//
//	ringnet   ringnet (the plugin) with ringnetd: veth, offloads, XDP
//	          program and AF_XDP socket on the host veth, address from
//	          ringnetd's IPAM (bbolt, fsync), ADD answered once the port forwards
//	bridge    /usr/lib/cni/bridge + host-local: veth into a Linux bridge,
//	          address from host-local's files, default route via the bridge
//	loopback  /usr/lib/cni/loopback: sets the pod's lo up and nothing else,
//	          the floor: what cnitool and one plugin exec cost by themselves
//
// Run it as root from the repository:
//
//	go run ./bench/cni [--pods 100] [--runs 3] [--plugins ringnet,bridge,loopback]
//	                   [--phases=false] [--markdown FILE] [--json FILE]
//
// It builds ringnetd and the plugin into a temporary folder, installs
// cnitool (cached, see package cni/cnitest), makes one node namespace with
// ringnetd in it and --pods pod namespaces, then, round by round and
// alternating which plugin goes first, ADDs every pod one after the other
// with each plugin, pings from the first pod to the last (so the pods are
// real, not timed), and DELs them all again. Last (--phases) it does
// ringnet's ADD and DEL for every pod once more in-process, step by step as
// the plugin does them, to show where an ADD's time goes. Each sample is the wall time
// of one cnitool process, from exec to exit, started from a thread inside
// the node namespace: cnitool's own start-up (a few ms, the same for both)
// is included, as it is in what a runtime sees when it execs a plugin.
//
// Everything it creates (namespaces, ringnetd, files) is removed on exit,
// on error and on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// options are the benchmark's settings; flags fill them.
type options struct {
	Pods     int
	Runs     int
	Plugins  []string
	Phases   bool
	Markdown string
	JSON     string
	Command  string // how the run was invoked, for the reports
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "cni bench:", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "cni bench: needs root (network namespaces, XDP, AF_XDP)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench(ctx, o, os.Stderr)
	if rep != nil {
		rep.WriteTable(os.Stdout)
		if o.Markdown != "" {
			if werr := writeFile(o.Markdown, rep.WriteMarkdown); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		if o.JSON != "" {
			if werr := writeFile(o.JSON, rep.WriteJSON); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cni bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("cni", flag.ContinueOnError)
	o := options{Command: "go run ./bench/cni " + strings.Join(args, " ")}
	fs.IntVar(&o.Pods, "pods", 100, "pods per round")
	fs.IntVar(&o.Runs, "runs", 3, "rounds; each ADDs and DELs every pod once per plugin")
	plugins := fs.String("plugins", "ringnet,bridge,loopback", "plugins to compare, in order: ringnet, bridge, loopback (the harness's floor)")
	fs.BoolVar(&o.Phases, "phases", true, "also time ringnet's ADD and DEL step by step, in-process (no exec)")
	fs.StringVar(&o.Markdown, "markdown", "", "also write the report as Markdown to this file")
	fs.StringVar(&o.JSON, "json", "", "also write every sample as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Pods < 2 || o.Pods > 1000 {
		return o, fmt.Errorf("--pods %d: want 2 to 1000", o.Pods)
	}
	if o.Runs < 1 {
		return o, fmt.Errorf("--runs %d: want at least 1", o.Runs)
	}
	for _, p := range strings.Split(*plugins, ",") {
		p = strings.TrimSpace(p)
		if _, ok := pluginByID[p]; !ok {
			return o, fmt.Errorf("--plugins: unknown %q (have ringnet, bridge, loopback)", p)
		}
		o.Plugins = append(o.Plugins, p)
	}
	o.Command = strings.TrimSpace(o.Command)
	return o, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
