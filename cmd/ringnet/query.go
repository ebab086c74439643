package main

// The commands that ask ringnetd what it is doing: one GET over the API
// socket each, printed as an aligned table or, with --output json, as the
// API's JSON (indented).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringnet/ringnet/agent/api"
)

// callTimeout bounds one question to the daemon.
const callTimeout = 10 * time.Second

// queries are the commands that ask the daemon: name -> command.
var queries = map[string]func(args []string, stdout, stderr io.Writer) error{
	"status":    status,
	"endpoints": endpoints,
	"routes":    routes,
	"peers":     peers,
	"services":  services,
	"stats":     statsCmd,
	"flows":     flowsCmd,
	"policy":    policyCmd,
}

func status(args []string, stdout, stderr io.Writer) error {
	q, err := parseQuery("status", "is ringnetd ready; its workers, ports, uplink, peers and table sizes", args, stderr)
	if q == nil {
		return err
	}
	return show(q, stdout, (*api.Client).Status, statusTable)
}

func endpoints(args []string, stdout, stderr io.Writer) error {
	q, err := parseQuery("endpoints", "the local pods' addresses: port, host interface, MAC and pod", args, stderr)
	if q == nil {
		return err
	}
	return show(q, stdout, (*api.Client).Endpoints, endpointsTable)
}

func routes(args []string, stdout, stderr io.Writer) error {
	q, err := parseQuery("routes", "the route table: prefix, kind, peer node and tunnel", args, stderr)
	if q == nil {
		return err
	}
	return show(q, stdout, (*api.Client).Routes, routesTable)
}

func peers(args []string, stdout, stderr io.Writer) error {
	q, err := parseQuery("peers", "the other nodes: underlay address, tunnel, next-hop MAC and VTEP MAC", args, stderr)
	if q == nil {
		return err
	}
	return show(q, stdout, (*api.Client).Peers, peersTable)
}

func services(args []string, stdout, stderr io.Writer) error {
	q, err := parseQuery("services", "the service table: each address, protocol and port of a service, its backends, session affinity, external traffic policy and Maglev table size", args, stderr)
	if q == nil {
		return err
	}
	return show(q, stdout, (*api.Client).Services, servicesTable)
}

func statsCmd(args []string, stdout, stderr io.Writer) error {
	var all bool
	q, err := parseQuery("stats", "the dataplane's counters since ringnetd started: per port, per worker, and per reason grouped as forwarded, punted and dropped", args, stderr,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&all, "all", false, "list every reason, also those with no frames (table and JSON)")
		})
	if q == nil {
		return err
	}
	get := func(c *api.Client, ctx context.Context) (api.Stats, error) {
		st, err := c.Stats(ctx)
		if !all {
			st.Reasons = slices.DeleteFunc(st.Reasons, func(r api.ReasonCount) bool { return r.Count == 0 })
		}
		return st, err
	}
	return show(q, stdout, get, func(w io.Writer, st api.Stats) error { return statsTable(w, st, all) })
}

// queryFlags are the flags every query command has.
type queryFlags struct {
	socket string
	json   bool
}

// parseQuery parses a query command's flags; more adds the command's own.
// It returns nil when there is nothing more to do: after --help (err nil)
// or on a usage error.
func parseQuery(name, summary string, args []string, stderr io.Writer, more ...func(*flag.FlagSet)) (*queryFlags, error) {
	q, rest, err := parseQueryArgs(name, "[flags]", summary, args, stderr, more...)
	if q != nil && len(rest) > 0 {
		return nil, fmt.Errorf("ringnet %s takes no arguments, got %q", name, rest)
	}
	return q, err
}

// parseQueryArgs is parseQuery for a command that takes arguments, as its
// synopsis says, among its flags: it returns them.
func parseQueryArgs(name, synopsis, summary string, args []string, stderr io.Writer, more ...func(*flag.FlagSet)) (*queryFlags, []string, error) {
	fs := flag.NewFlagSet("ringnet "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "ringnet %s %s: %s\n\nFlags:\n", name, synopsis, summary)
		fs.PrintDefaults()
	}
	q := &queryFlags{}
	fs.StringVar(&q.socket, "socket", api.DefaultSocket, "ringnetd's API socket")
	var output string
	fs.StringVar(&output, "output", "table", "output format: table or json")
	fs.StringVar(&output, "o", "table", "shorthand for --output")
	for _, f := range more {
		f(fs)
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, nil
			}
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:] // flags may follow an argument
	}
	switch output {
	case "json":
		q.json = true
	case "table":
	default:
		return nil, nil, fmt.Errorf("--output %q: want table or json", output)
	}
	return q, rest, nil
}

// show asks the daemon with get and prints the answer as a table or JSON.
func show[T any](q *queryFlags, stdout io.Writer, get func(*api.Client, context.Context) (T, error), table func(io.Writer, T) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	v, err := get(api.NewClient(q.socket), ctx)
	if err != nil {
		return daemonError(err)
	}
	if q.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return table(stdout, v)
}

// daemonError says what to do about a failed call.
func daemonError(err error) error {
	switch {
	case errors.Is(err, api.ErrDaemonUnavailable):
		return fmt.Errorf("%w; start it in the node's network namespace: ringnetd --pod-cidr <CIDR> (or --cluster FILE --node NAME), or give --socket if it listens elsewhere", err)
	case errors.Is(err, api.ErrUnsupported):
		return fmt.Errorf("%w; run a ringnetd as new as this ringnet", err)
	}
	return err
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// dash stands in for an empty cell, so that columns stay readable and
// split on white space.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func statusTable(w io.Writer, st api.Status) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ready\t%v\n", st.Ready)
	fmt.Fprintf(tw, "pod CIDRs\t%s\n", dash(strings.Join(st.PodCIDRs, ", ")))
	fmt.Fprintf(tw, "pods with addresses\t%d\n", st.Allocated)
	fmt.Fprintf(tw, "ports attached\t%d\n", st.Ports)
	if st.Workers > 0 {
		fmt.Fprintf(tw, "workers\t%d\n", st.Workers)
	}
	if u := st.Uplink; u != nil {
		fmt.Fprintf(tw, "uplink\t%s, address %s, VTEP MAC %s, VXLAN port %d, VNI %d\n", u.Interface, u.Address, u.VtepMAC, u.VXLANPort, u.VNI)
	} else {
		fmt.Fprintf(tw, "uplink\tnone (not in a cluster: no --cluster or --kubernetes)\n")
	}
	peers := fmt.Sprint(st.Peers)
	if st.PeersUnresolved > 0 {
		peers += fmt.Sprintf(" (%d unresolved: see ringnet peers)", st.PeersUnresolved)
	}
	fmt.Fprintf(tw, "peers\t%s\n", peers)
	if len(st.Tables) > 0 {
		var t []string
		for _, k := range slices.Sorted(maps.Keys(st.Tables)) {
			t = append(t, fmt.Sprintf("%s %d", k, st.Tables[k]))
		}
		fmt.Fprintf(tw, "table entries\t%s\n", strings.Join(t, ", "))
	}
	return tw.Flush()
}

func endpointsTable(w io.Writer, l api.EndpointList) error {
	if len(l.Endpoints) == 0 {
		_, err := fmt.Fprintln(w, "No endpoints: no pod has an address or a port on this node.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ADDRESS\tPORT\tINTERFACE\tMAC\tPOD\tCONTAINER\tSTATE")
	for _, e := range l.Endpoints {
		port, state := "-", "attached"
		if e.Port != nil {
			port = fmt.Sprint(*e.Port)
		}
		if !e.Attached {
			state = "not attached"
		}
		pod := "-"
		if e.PodName != "" {
			pod = e.PodName
			if e.PodNamespace != "" {
				pod = e.PodNamespace + "/" + e.PodName
			}
		}
		ctr := e.ContainerID
		if len(ctr) > 12 {
			ctr = ctr[:12]
		}
		if ctr != "" && e.IfName != "" {
			ctr += "/" + e.IfName
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Address, port, dash(e.Interface), dash(e.MAC), pod, dash(ctr), state)
	}
	return tw.Flush()
}

func routesTable(w io.Writer, l api.RouteList) error {
	if len(l.Routes) == 0 {
		_, err := fmt.Fprintln(w, "No routes: no other node is known (ringnetd runs without --cluster or --kubernetes, or is the only node). This node's own pods are in ringnet endpoints.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "PREFIX\tKIND\tPEER\tPEER ADDRESS\tTUNNEL")
	for _, r := range l.Routes {
		peer := r.Peer
		if r.Kind == api.RouteLocalPort {
			peer = "(this node: the pod's port)"
			if r.Port != nil {
				peer = fmt.Sprintf("(this node: port %d)", *r.Port)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Prefix, r.Kind, dash(peer), dash(r.PeerAddress), dash(r.Tunnel))
	}
	return tw.Flush()
}

func peersTable(w io.Writer, l api.PeerList) error {
	if len(l.Peers) == 0 {
		_, err := fmt.Fprintln(w, "No peers: no other node is known (ringnetd runs without --cluster or --kubernetes, or is the only node).")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tADDRESS\tTUNNEL\tNEXT-HOP MAC\tVTEP MAC\tPOD CIDRS")
	for _, p := range l.Peers {
		mac := p.NextHopMAC
		if !p.Resolved || mac == "" {
			mac = "unresolved"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Address, p.Tunnel, mac, dash(p.VtepMAC), dash(strings.Join(p.PodCIDRs, ",")))
	}
	return tw.Flush()
}

func servicesTable(w io.Writer, l api.ServiceList) error {
	if len(l.Services) == 0 {
		msg := "No services: ringnetd has published no service table (its cluster file lists no services, or it runs without --cluster)."
		if l.Generation > 0 {
			msg = fmt.Sprintf("No services: the service table (generation %d) is empty.", l.Generation)
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "VIP\tPROTOCOL\tPORT\tBACKENDS\tAFFINITY\tEXTERNAL\tMAGLEV")
	for _, s := range l.Services {
		backends, affinity, external, maglev := "none", "-", "-", "-"
		if len(s.Backends) > 0 {
			backends = strings.Join(s.Backends, ",")
		}
		if s.AffinitySeconds > 0 {
			affinity = fmt.Sprintf("%ds", s.AffinitySeconds)
		}
		switch {
		case s.External && s.Local:
			external = "Local"
		case s.External:
			external = "Cluster"
		}
		if s.TableSize > 0 {
			maglev = fmt.Sprint(s.TableSize)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.VIP, s.Protocol, s.Port, backends, affinity, external, maglev)
	}
	return tw.Flush()
}

// groups are the reason groups in the order stats prints them.
var groups = []string{api.GroupForwarded, api.GroupPunted, api.GroupDropped}

func statsTable(w io.Writer, st api.Stats, all bool) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PORT\tID\tKIND\tRX FRAMES\tTX FRAMES\tXSK DROPS\tFILL RING EMPTY")
	for _, p := range st.Ports {
		drops := p.XSKRxDropped + p.XSKRxRingFull + p.XSKRxInvalidDescs + p.XSKTxInvalidDescs
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\n", p.Interface, p.ID, p.Kind, p.RxFrames, p.TxFrames, drops, p.XSKRxFillRingEmpty)
	}
	if len(st.Ports) == 0 {
		fmt.Fprintln(tw, "(no ports)")
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "WORKER\tFORWARDED\tPUNTED\tDROPPED\tBUSY")
	for _, wk := range st.Workers {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f%%\n", wk.ID, wk.Forwarded, wk.Punted, wk.Dropped, 100*wk.Busy)
	}
	fmt.Fprintln(tw)
	totals := map[string]uint64{}
	for _, r := range st.Reasons {
		totals[r.Group] += r.Count
	}
	fmt.Fprintln(tw, "GROUP\tREASON\tFRAMES")
	n := 0
	for _, g := range groups {
		for _, r := range st.Reasons {
			if r.Group == g && (all || r.Count > 0) {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", g, r.Reason, r.Count)
				n++
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(tw, "(no frames yet)")
	}
	fmt.Fprintln(tw)
	var sum []string
	for _, g := range groups {
		sum = append(sum, fmt.Sprintf("%s %d", g, totals[g]))
	}
	note := ""
	if !all {
		note = " (reasons with no frames left out; --all lists them)"
	}
	fmt.Fprintf(tw, "total: %s%s\n", strings.Join(sum, ", "), note)
	return tw.Flush()
}
