// Command ringnet is ringnet's command-line tool. For now it sets up and
// tears down pod ports by hand, exactly as the CNI plugin will: see
// "ringnet pod add --help".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/podport"
)

const usage = `ringnet: ringnet's command-line tool

Usage:
  ringnet status [--socket PATH] [--output json]
  ringnet pod add --netns PATH --host-if NAME --ipv4 ADDR [--ipv6 ADDR] [flags]
  ringnet pod del --host-if NAME

"status" asks ringnetd (over its CNI socket) whether it is ready, which pod
CIDRs it hands addresses out of, and how many pods and ports it has.

Run it in the node's network namespace (e.g. ip netns exec NODE ringnet ...).
"pod add" creates the veth pair for a pod whose network namespace already
exists, configures the pod side (address, routes to the 169.254.1.1 / fe80::1
gateway, tx offloads off, MTU) and prints the port as JSON. ringnetd then
forwards for it once it is listed in ringnetd's pods file.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ringnet:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 && args[0] == "status" {
		return status(args[1:], stdout, stderr)
	}
	if len(args) < 2 || args[0] != "pod" {
		fmt.Fprint(stderr, usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return errors.New("unknown command; see above")
	}
	switch args[1] {
	case "add":
		return podAdd(args[2:], stdout, stderr)
	case "del":
		return podDel(args[2:], stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown pod command %q", args[1])
}

func podAdd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ringnet pod add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nsPath := fs.String("netns", "", "path of the pod's network namespace, e.g. /run/netns/pod-a (required)")
	hostIf := fs.String("host-if", "", "name of the veth's host end, at most 15 bytes (required)")
	podIf := fs.String("pod-if", "eth0", "name of the veth's pod end")
	v4 := fs.String("ipv4", "", "the pod's IPv4 address")
	v6 := fs.String("ipv6", "", "the pod's IPv6 address")
	mac := fs.String("mac", "", "the pod's MAC (default: chosen by the kernel)")
	mtu := fs.Int("mtu", 1500, "MTU of the pod's interface")
	queues := fs.Int("queues", 1, "RX/TX queues of the veth: ringnetd's --workers")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := podport.Config{NetNS: *nsPath, HostIfname: *hostIf, PodIfname: *podIf, MTU: *mtu, Queues: *queues}
	var err error
	if *v4 != "" {
		if cfg.IPv4, err = netip.ParseAddr(*v4); err != nil {
			return fmt.Errorf("--ipv4: %w", err)
		}
	}
	if *v6 != "" {
		if cfg.IPv6, err = netip.ParseAddr(*v6); err != nil {
			return fmt.Errorf("--ipv6: %w", err)
		}
	}
	if *mac != "" {
		if cfg.PodMAC, err = net.ParseMAC(*mac); err != nil {
			return fmt.Errorf("--mac: %w", err)
		}
	}
	port, err := podport.Setup(cfg)
	if err != nil {
		return err
	}
	out := struct {
		HostInterface string `json:"hostInterface"`
		PodInterface  string `json:"podInterface"`
		MAC           string `json:"mac"`
		IPv4          string `json:"ipv4,omitempty"`
		IPv6          string `json:"ipv6,omitempty"`
	}{port.HostIfname, port.PodIfname, port.PodMAC.String(), addrString(port.IPv4), addrString(port.IPv6)}
	return json.NewEncoder(stdout).Encode(out)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func podDel(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("ringnet pod del", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostIf := fs.String("host-if", "", "name of the veth's host end (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *hostIf == "" {
		return errors.New("--host-if is required")
	}
	return podport.Teardown(*hostIf)
}

func status(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ringnet status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", api.DefaultSocket, "ringnetd's socket")
	output := fs.String("output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := api.NewClient(*socket).Status(ctx)
	if err != nil {
		if errors.Is(err, api.ErrDaemonUnavailable) {
			return fmt.Errorf("%w; start it in the node's network namespace: ringnetd --pod-cidr <CIDR>", err)
		}
		return err
	}
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "table":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "ready\t%v\n", st.Ready)
		fmt.Fprintf(tw, "pod CIDRs\t%s\n", strings.Join(st.PodCIDRs, ", "))
		fmt.Fprintf(tw, "pods with addresses\t%d\n", st.Allocated)
		fmt.Fprintf(tw, "ports attached\t%d\n", st.Ports)
		return tw.Flush()
	}
	return fmt.Errorf("--output %q: want table or json", *output)
}
