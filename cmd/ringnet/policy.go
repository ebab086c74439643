package main

// ringnet policy: the NetworkPolicy ringnetd enforces; with a pod, what
// it lets that pod do and why, rule by rule; with --from and --to,
// whether it allows one connection and which rule does (or which
// policies isolate it and why none does).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ringnet/ringnet/agent/api"
)

func policyCmd(args []string, stdout, stderr io.Writer) error {
	var from, to, port string
	q, rest, err := parseQueryArgs("policy", "[POD | --from A --to B [--port PORT[/PROTOCOL]]] [flags]",
		"the NetworkPolicy ringnetd enforces: its generation, the pods and identities it knows, the local endpoints it selects, "+
			"and each policy with the local pods it selects. With POD (NAMESPACE/NAME, a NAME in namespace default, or an address): "+
			"what the pod may reach and what may reach it, and why: the policies isolating it each way and every rule, with the pods "+
			"and ports it allows. With --from and --to: whether a connection is allowed, and by which rule", args, stderr,
		func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "with --to: check a connection from this pod (NAMESPACE/NAME, NAME in namespace default) or address")
			fs.StringVar(&to, "to", "", "with --from: check a connection to this pod or address")
			fs.StringVar(&port, "port", "", "with --from and --to: the connection's destination port and protocol: PORT (TCP), PORT/TCP, PORT/UDP, PORT/SCTP or ICMP; none: any traffic, and on which ports")
		})
	switch {
	case q == nil:
		return err
	case len(rest) > 1:
		return fmt.Errorf("ringnet policy takes one pod, got %q", rest)
	case (from == "") != (to == ""):
		return errors.New("ringnet policy: --from and --to go together")
	case from != "" && len(rest) > 0:
		return errors.New("ringnet policy: give a pod, or --from and --to, not both")
	case port != "" && from == "":
		return errors.New("ringnet policy: --port goes with --from and --to")
	case from != "":
		req := api.PolicyCheckRequest{From: from, To: to}
		if req.Protocol, req.Port, err = parsePort(port); err != nil {
			return fmt.Errorf("ringnet policy: --port %q: %w", port, err)
		}
		get := func(c *api.Client, ctx context.Context) (api.PolicyVerdict, error) { return c.PolicyCheck(ctx, req) }
		return show(q, stdout, get, verdictTable)
	case len(rest) == 1:
		get := func(c *api.Client, ctx context.Context) (api.EndpointPolicy, error) {
			return c.PolicyEndpoint(ctx, rest[0])
		}
		return show(q, stdout, get, endpointPolicyTable)
	}
	return show(q, stdout, (*api.Client).Policy, policyTable)
}

// parsePort reads --port: PORT (TCP), PORT/PROTOCOL or ICMP; "" is any
// traffic.
func parsePort(s string) (protocol string, port int, err error) {
	if s == "" {
		return "", 0, nil
	}
	if strings.EqualFold(s, "ICMP") {
		return "ICMP", 0, nil
	}
	num, proto, _ := strings.Cut(s, "/")
	proto = strings.ToUpper(proto)
	if proto == "" {
		proto = "TCP"
	}
	port, err = strconv.Atoi(num)
	switch {
	case err != nil || port < 1 || port > 65535:
		return "", 0, errors.New("want PORT[/PROTOCOL] with a port 1-65535, or ICMP")
	case proto != "TCP" && proto != "UDP" && proto != "SCTP":
		return "", 0, fmt.Errorf("protocol %q: want TCP, UDP or SCTP", proto)
	}
	return proto, port, nil
}

func policyTable(w io.Writer, l api.PolicyList) error {
	if !l.Enforcing {
		_, err := fmt.Fprintln(w, "No NetworkPolicy enforced: ringnetd has published no policy (its cluster file lists no policies, "+
			"or it runs without --cluster and --kubernetes), so no pod on this node is isolated.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "generation\t%d\n", l.Generation)
	fmt.Fprintf(tw, "policies\t%d\n", len(l.Policies))
	fmt.Fprintf(tw, "pods\t%d (%d identities)\n", l.Pods, l.Identities)
	local := fmt.Sprintf("%d, %d selected by a policy", l.LocalEndpoints, l.LocalSelected)
	if l.LocalUnknown > 0 {
		local += fmt.Sprintf(", %d of no pod the policy knows (nothing selects them; peers match them by ipBlock only)", l.LocalUnknown)
	}
	fmt.Fprintf(tw, "local endpoints\t%s\n", local)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(l.Policies) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tTYPES\tSELECTED\tLOCAL PODS")
		for _, p := range l.Policies {
			var pods []string
			for _, lp := range p.Local {
				pods = append(pods, fmt.Sprintf("%s/%s (%s)", lp.Namespace, lp.Name, strings.Join(lp.Addresses, ",")))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p.Namespace, p.Name, dash(strings.Join(p.Types, ",")), p.Selected, dash(strings.Join(pods, " ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	writeProblems(w, l.Problems)
	return nil
}

// writeProblems writes the compiler's problems, if any, after a blank
// line.
func writeProblems(w io.Writer, problems []string) {
	if len(problems) > 0 {
		fmt.Fprintln(w, "\nproblems:")
	}
	for _, p := range problems {
		fmt.Fprintln(w, "  "+p)
	}
}

// shownPods is how many pods a table names for one peer or port.
const shownPods = 5

// podList names pods: "shop/a, shop/b", or the first shownPods and how
// many more; "no pod" for none.
func podList(p api.PolicyPods) string {
	if p.PodCount == 0 {
		return "no pod"
	}
	shown := p.Pods[:min(len(p.Pods), shownPods)]
	s := strings.Join(shown, ", ")
	if more := p.PodCount - len(shown); more > 0 {
		s = fmt.Sprintf("%d pods: %s, +%d more", p.PodCount, s, more)
	}
	return s
}

// portText writes a port of a rule; a named one with what it resolves to.
func portText(p api.PolicyPort) string {
	switch {
	case p.Name != "":
		var on []string
		for _, r := range p.Resolved {
			if r.PodCount == 0 {
				on = append(on, fmt.Sprintf("%d on this pod", r.Port))
			} else {
				on = append(on, fmt.Sprintf("%d on %s", r.Port, podList(r.PolicyPods)))
			}
		}
		if len(on) == 0 {
			on = []string{"no pod has it: allows nothing"}
		}
		return fmt.Sprintf("%s %s (%s)", p.Protocol, p.Name, strings.Join(on, "; "))
	case p.Port == 0:
		return p.Protocol + " every port"
	case p.EndPort != 0:
		return fmt.Sprintf("%s %d-%d", p.Protocol, p.Port, p.EndPort)
	}
	return fmt.Sprintf("%s %d", p.Protocol, p.Port)
}

// portsText writes a rule's ports; none is every protocol and port.
func portsText(ports []api.PolicyPort) string {
	if len(ports) == 0 {
		return "every protocol and port"
	}
	var s []string
	for _, p := range ports {
		s = append(s, portText(p))
	}
	return strings.Join(s, ", ")
}

// labelText writes labels as key=value, sorted; "-" for none.
func labelText(l map[string]string) string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		s = append(s, k+"="+l[k])
	}
	return dash(strings.Join(s, ", "))
}

// targetText names one end: the pod and its addresses, or an address.
func targetText(t api.PolicyTarget) string {
	addrs := strings.Join(t.Addresses, ", ")
	if t.Local {
		addrs += ", on this node"
	}
	if t.Name == "" {
		return addrs
	}
	return fmt.Sprintf("%s (%s)", nameOf(t), addrs)
}

func endpointPolicyTable(w io.Writer, e api.EndpointPolicy) error {
	tw := newTable(w)
	where := "not on this node"
	if e.Pod.Local {
		where = "on this node"
	}
	fmt.Fprintf(tw, "pod\t%s/%s (%s)\n", e.Pod.Namespace, e.Pod.Name, where)
	fmt.Fprintf(tw, "addresses\t%s\n", dash(strings.Join(e.Pod.Addresses, ", ")))
	fmt.Fprintf(tw, "labels\t%s\n", labelText(e.Labels))
	fmt.Fprintf(tw, "namespace\t%s: %s\n", e.Pod.Namespace, labelText(e.NamespaceLabels))
	var named []string
	for _, p := range e.Ports {
		named = append(named, fmt.Sprintf("%s %d/%s", p.Name, p.Port, p.Protocol))
	}
	fmt.Fprintf(tw, "named ports\t%s\n", dash(strings.Join(named, ", ")))
	fmt.Fprintf(tw, "identity\t%d (policy generation %d)\n", e.Identity, e.Generation)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range []struct {
		name, peers string
		dir         api.PolicyDirection
	}{{"ingress", "from", e.Ingress}, {"egress", "to", e.Egress}} {
		fmt.Fprintln(w)
		switch {
		case len(d.dir.IsolatedBy) == 0:
			fmt.Fprintf(w, "%s: not isolated: all traffic allowed (no NetworkPolicy selects it for %s)\n", d.name, d.name)
			continue
		case len(d.dir.Rules) == 0:
			fmt.Fprintf(w, "%s: isolated by %s: nothing is allowed (they have no %s rules)\n", d.name, strings.Join(d.dir.IsolatedBy, ", "), d.name)
			continue
		}
		fmt.Fprintf(w, "%s: isolated by %s: allowed only what one of these rules allows\n", d.name, strings.Join(d.dir.IsolatedBy, ", "))
		tw = newTable(w)
		for _, r := range d.dir.Rules {
			fmt.Fprintf(tw, "  %s %s[%d]\n", r.Policy, d.name, r.Index)
			peers := []string{"every peer: pods and addresses outside the cluster"}
			if len(r.Peers) > 0 {
				peers = peers[:0]
				for _, p := range r.Peers {
					if p.IPBlock != "" {
						peers = append(peers, "ipBlock "+p.IPBlock+exceptText(p.Except))
					} else {
						peers = append(peers, p.Selector+": "+podList(p.PolicyPods))
					}
				}
			}
			for i, p := range peers {
				label := ""
				if i == 0 {
					label = d.peers
				}
				fmt.Fprintf(tw, "    %s\t%s\n", label, p)
			}
			fmt.Fprintf(tw, "    ports\t%s\n", portsText(r.Ports))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	writeProblems(w, e.Problems)
	return nil
}

func exceptText(except []string) string {
	if len(except) == 0 {
		return ""
	}
	return " except " + strings.Join(except, ", ")
}

func verdictTable(w io.Writer, v api.PolicyVerdict) error {
	what := "any traffic"
	switch {
	case v.Protocol == "ICMP":
		what = "ICMP"
	case v.Protocol != "":
		what = fmt.Sprintf("%s %d", v.Protocol, v.Port)
	}
	verdict := "denied"
	switch {
	case v.Allowed && v.Protocol == "":
		verdict = "allowed, on the ports each way's rules say"
	case v.Allowed:
		verdict = "allowed"
	}
	fmt.Fprintf(w, "%s from %s to %s: %s\n", what, targetText(v.From), targetText(v.To), verdict)
	for _, d := range []struct {
		name        string
		local, peer api.PolicyTarget
		verdict     api.PolicyDirectionVerdict
	}{{"egress", v.From, v.To, v.Egress}, {"ingress", v.To, v.From, v.Ingress}} {
		fmt.Fprintf(w, "\n%s of %s", d.name, nameOf(d.local))
		if d.verdict.Verdict != api.PolicyNotChecked {
			where := "its node"
			if d.local.Local {
				where = "this node"
			}
			fmt.Fprintf(w, " (decided on %s)", where)
		}
		switch d.verdict.Verdict {
		case api.PolicyNotChecked:
			fmt.Fprintln(w, ": not checked: it is no pod NetworkPolicy knows")
			continue
		case api.PolicyNotIsolated:
			fmt.Fprintf(w, ": not isolated: all traffic allowed (no NetworkPolicy selects it for %s)\n", d.name)
			continue
		}
		var allowing []string
		for _, r := range d.verdict.Rules {
			if r.Allows {
				allowing = append(allowing, fmt.Sprintf("%s %s[%d]", r.Policy, d.name, r.Index))
			}
		}
		fmt.Fprintf(w, ": %s", d.verdict.Verdict)
		if len(allowing) > 0 && v.Protocol != "" {
			fmt.Fprintf(w, " by %s", strings.Join(allowing, ", "))
		}
		fmt.Fprintf(w, "\n  isolated by %s", strings.Join(d.verdict.IsolatedBy, ", "))
		switch {
		case len(d.verdict.Rules) == 0:
			fmt.Fprintf(w, ", which have no %s rules: nothing is allowed\n", d.name)
			continue
		case len(allowing) == 0:
			fmt.Fprintln(w, "; no rule allows it")
		default:
			fmt.Fprintln(w)
		}
		peer := nameOf(d.peer)
		for _, r := range d.verdict.Rules {
			says := fmt.Sprintf("allows %s only %s", peer, portsText(r.Ports))
			switch {
			case !r.Peer:
				says = fmt.Sprintf("its peers do not include %s", peer)
			case r.Allows && v.Protocol != "":
				says = "allows it"
			case r.Allows:
				says = fmt.Sprintf("allows %s %s", peer, portsText(r.Ports))
			}
			fmt.Fprintf(w, "  %s %s[%d]: %s\n", r.Policy, d.name, r.Index, says)
		}
	}
	return nil
}

// nameOf names one end by its pod, or its address.
func nameOf(t api.PolicyTarget) string {
	if t.Name == "" {
		return strings.Join(t.Addresses, ", ")
	}
	return t.Namespace + "/" + t.Name
}
