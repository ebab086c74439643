package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ringnet/ringnet/agent/api"
)

// flowVerdicts are the verdicts a flow can have, in the order the totals
// are printed.
var flowVerdicts = []string{"allowed", "denied", "no_backend", "no_nat_port", "conntrack_busy"}

func flowsCmd(args []string, stdout, stderr io.Writer) error {
	var verdict, pod, namespace string
	var last int
	var follow bool
	q, err := parseQuery("flows", "the latest connections the fast path decided about (allowed and tracked, denied by NetworkPolicy, refused for want of a service backend or a NAT port), oldest first; the flow log file (ringnetd --flow-log) has them all", args, stderr,
		func(fs *flag.FlagSet) {
			fs.StringVar(&verdict, "verdict", "", "only flows with this verdict: "+strings.Join(flowVerdicts, ", "))
			fs.IntVar(&last, "n", 50, "at most this many, the latest (0: all ringnetd keeps)")
			fs.StringVar(&pod, "pod", "", "only flows from or to this pod: NAME or NAMESPACE/NAME (as NetworkPolicy knows the pods)")
			fs.StringVar(&namespace, "namespace", "", "only flows from or to a pod of this namespace")
			fs.BoolVar(&follow, "follow", false, "then keep printing new flows as ringnetd records them, until interrupted (table output)")
		})
	if q == nil {
		return err
	}
	if verdict != "" && !slices.Contains(flowVerdicts, verdict) {
		return fmt.Errorf("ringnet flows: --verdict %q: want one of %s", verdict, strings.Join(flowVerdicts, ", "))
	}
	if last < 0 {
		return fmt.Errorf("ringnet flows: -n %d: want 0 or more", last)
	}
	keep := flowFilter(verdict, pod, namespace)
	get := func(c *api.Client, ctx context.Context) (api.FlowList, error) {
		l, err := c.Flows(ctx)
		l.Flows = slices.DeleteFunc(l.Flows, func(f api.Flow) bool { return !keep(f) })
		if last > 0 && len(l.Flows) > last {
			l.Flows = l.Flows[len(l.Flows)-last:]
		}
		return l, err
	}
	if follow {
		return followFlows(q, stdout, keep, last)
	}
	return show(q, stdout, get, flowsTable)
}

// followInterval is how often --follow asks ringnetd for new flows.
const followInterval = 500 * time.Millisecond

// followFlows prints the latest flows, then the new ones every
// followInterval: those recorded since the previous answer (by the
// totals), the tail of the kept list. It ends on SIGINT or SIGTERM, or
// when ringnetd cannot be asked.
func followFlows(q *queryFlags, stdout io.Writer, keep func(api.Flow) bool, last int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := api.NewClient(q.socket)
	tw := newTable(stdout)
	fmt.Fprintln(tw, "TIME\tVERDICT\tPROTOCOL\tSOURCE\tDESTINATION\tTRANSLATED TO\tINTERFACE")
	var seen uint64
	for first := true; ; first = false {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		l, err := c.Flows(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return daemonError(err)
		}
		var total uint64
		for _, n := range l.Total {
			total += n
		}
		fresh := l.Flows
		if !first {
			fresh = l.Flows[len(l.Flows)-int(min(uint64(len(l.Flows)), total-seen)):]
		}
		seen = total
		fresh = slices.DeleteFunc(slices.Clone(fresh), func(f api.Flow) bool { return !keep(f) })
		if first && last > 0 && len(fresh) > last {
			fresh = fresh[len(fresh)-last:]
		}
		for _, f := range fresh {
			flowRow(tw, f)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followInterval):
		}
	}
}

// flowFilter is the filter of --verdict, --pod and --namespace (empty:
// any).
func flowFilter(verdict, pod, namespace string) func(api.Flow) bool {
	isPod := func(ref string) bool {
		if pod == "" {
			return true
		}
		if strings.Contains(pod, "/") {
			return ref == pod
		}
		_, name, _ := strings.Cut(ref, "/")
		return name == pod
	}
	inNS := func(ref string) bool { return namespace == "" || strings.HasPrefix(ref, namespace+"/") }
	return func(f api.Flow) bool {
		if verdict != "" && f.Verdict != verdict {
			return false
		}
		if pod == "" && namespace == "" {
			return true
		}
		return (f.SrcPod != "" && isPod(f.SrcPod) && inNS(f.SrcPod)) || (f.DstPod != "" && isPod(f.DstPod) && inNS(f.DstPod))
	}
}

// endpoint is an address:port with its pod, if known.
func endpoint(addr, pod string) string {
	if pod == "" {
		return addr
	}
	return addr + " " + pod
}

// flowRow writes one flow as a table row.
func flowRow(w io.Writer, f api.Flow) {
	to := "-"
	switch {
	case f.TranslatedSrc != "" && f.TranslatedDst != "":
		to = f.TranslatedSrc + " > " + f.TranslatedDst
	case f.TranslatedDst != "":
		to = "> " + f.TranslatedDst
	case f.TranslatedSrc != "":
		to = f.TranslatedSrc + " >"
	}
	verdict := f.Verdict
	if len(f.Policies) > 0 {
		verdict += " (" + strings.Join(f.Policies, ",") + ")"
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Time.Local().Format("15:04:05.000"), verdict, f.Protocol,
		endpoint(f.Src, f.SrcPod), endpoint(f.Dst, f.DstPod), to, dash(f.Interface))
}

func flowsTable(w io.Writer, l api.FlowList) error {
	if len(l.Flows) == 0 {
		fmt.Fprintln(w, "No flows: the fast path records connections where it tracks them, with NetworkPolicy, services or masquerade.")
	} else {
		tw := newTable(w)
		fmt.Fprintln(tw, "TIME\tVERDICT\tPROTOCOL\tSOURCE\tDESTINATION\tTRANSLATED TO\tINTERFACE")
		for _, f := range l.Flows {
			flowRow(tw, f)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var parts []string
	for _, v := range flowVerdicts {
		if n := l.Total[v]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", v, n))
		}
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	_, err := fmt.Fprintf(w, "\nsince ringnetd started: %s; lost (ringnetd fell behind): %d\n", strings.Join(parts, ", "), l.Lost)
	return err
}
