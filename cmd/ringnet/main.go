// Command ringnet is ringnet's command-line tool. It shows what ringnetd
// is doing, asking it over its socket (status, endpoints, routes, peers,
// services, stats, flows, policy: a table by default, JSON with --output
// json), and it
// sets up and tears down pod ports by hand, exactly as the CNI plugin
// does: see "ringnet help".
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/ringnet/ringnet/podport"
)

const usage = `ringnet: ringnet's command-line tool

Usage:
  ringnet status     [flags]   is ringnetd ready; workers, ports, uplink, peers, table sizes
  ringnet endpoints  [flags]   local pod addresses: port, interface, MAC, pod
  ringnet routes     [flags]   route table: prefix, kind, peer node, tunnel
  ringnet peers      [flags]   other nodes: address, tunnel, next-hop MAC, VTEP MAC
  ringnet services   [flags]   service table: address, protocol, port, backends, affinity, external policy
  ringnet stats      [flags]   counters: per port, per worker, per reason (--all: zero ones too)
  ringnet flows      [flags]   latest connections decided: allowed, denied, translated (--verdict V, -n N)
  ringnet policy     [flags]   NetworkPolicy enforced: generation, each policy and the local pods it selects
  ringnet policy POD [flags]   what pod POD (NAMESPACE/NAME, NAME in default, or an address) may reach and why:
                               isolation each way, every rule with its peers' pods and its ports, the policy granting it
  ringnet policy --from A --to B [--port PORT[/PROTOCOL]] [flags]
                               is a connection allowed, by which rule; or which policies isolate it and why none matched
  ringnet pod add --netns PATH --host-if NAME --ipv4 ADDR [--ipv6 ADDR] [flags]
  ringnet pod del --host-if NAME

Flags of status, endpoints, routes, peers, services, stats, flows and policy:
  --socket PATH        ringnetd's socket (default /run/ringnet/ringnet.sock)
  -o, --output FORMAT  table (default) or json

They ask ringnetd over its API socket, which only root may use, and which
ringnetd serves when it has pod CIDRs (--pod-cidr, --cluster or
--kubernetes). Each prints one snapshot of the daemon's state.

"pod add" creates the veth pair for a pod whose network namespace already
exists, configures the pod side (address, routes to the 169.254.1.1 / fe80::1
gateway, tx offloads off, MTU) and prints the port as JSON. ringnetd then
forwards for it once it is listed in ringnetd's pods file. Run it in the
node's network namespace (e.g. ip netns exec NODE ringnet pod add ...).
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ringnet:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command; see above")
	}
	if c, ok := queries[args[0]]; ok {
		return c(args[1:], stdout, stderr)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "pod":
		if len(args) >= 2 {
			switch args[1] {
			case "add":
				return podAdd(args[2:], stdout, stderr)
			case "del":
				return podDel(args[2:], stderr)
			}
		}
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%q: want ringnet pod add or ringnet pod del", strings.Join(args, " "))
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q; see above", args[0])
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
