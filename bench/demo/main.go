// Command demo is `make demo`: ringnet's embedded default cluster
// (agent/cluster/default.yaml) in network namespaces on this machine — two
// ringnet nodes and a node still on Flannel's kernel VXLAN datapath, on one
// underlay bridge — pods created through the CNI plugin as kubelet would,
// traffic between them with live progress, and a summary of what went where.
//
//	go run ./bench/demo [--keep]
//
// It needs root. Everything it creates is removed on exit, on error and on
// Ctrl-C (--keep leaves the cluster up until Ctrl-C, to look around).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
)

func main() {
	keep := flag.Bool("keep", false, "keep the cluster up after the demo until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *keep)
	if errors.Is(ctx.Err(), context.Canceled) {
		fmt.Println("\ndemo: interrupted; cleaned up")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) { fmt.Printf("\n\033[1m== "+format+"\033[0m\n", a...) }

// demo is the running cluster.
type demo struct {
	file    string // the cluster file: the embedded default, then with a service
	cli     string // the ringnet CLI
	topo    *topo.Topology
	daemons map[string]*ringnode.Daemon
	flannel *topo.FlannelNode
	pods    map[string]podRef
	results []result
}

type podRef struct {
	node, ns string
	ipv4     netip.Addr
}

type result struct {
	what, path, outcome string
}

func run(ctx context.Context, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, XDP programs, AF_XDP sockets)")
	}
	start := time.Now()
	c, err := cluster.Parse(cluster.Default)
	if err != nil {
		return err
	}
	step("Building ringnetd and the CNI plugin")
	dir, err := os.MkdirTemp("", "ringnet-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := ringnode.Build(dir)
	if err != nil {
		return err
	}
	cli := filepath.Join(dir, "ringnet")
	if out, err := exec.Command("go", "build", "-o", cli, "github.com/ringnet/ringnet/cmd/ringnet").CombinedOutput(); err != nil {
		return fmt.Errorf("build cmd/ringnet: %w\n%s", err, out)
	}
	if err := topo.Sweep("demo"); err != nil {
		return err
	}
	t, err := topo.New("demo")
	if err != nil {
		return err
	}
	d := &demo{topo: t, daemons: map[string]*ringnode.Daemon{}, pods: map[string]podRef{}, file: filepath.Join(dir, "cluster.yaml"), cli: cli}
	if err := os.WriteFile(d.file, cluster.Default, 0o644); err != nil {
		return err
	}
	defer func() {
		for _, dm := range d.daemons {
			if e := dm.Stop(); e != nil && err == nil {
				err = e
			}
		}
		if e := t.Close(); e != nil && err == nil {
			err = e
		}
		if err == nil {
			fmt.Println("\ndemo: cleaned up (namespaces, veths, bridge, XDP programs removed)")
		}
	}()

	step("The embedded default cluster: %d nodes on underlay %s (bridge %s)", len(c.Nodes), c.Nodes[0].Address.Masked(), t.Bridge)
	if err := d.buildNodes(ctx, c, bins); err != nil {
		return err
	}
	step("Pods, created through the CNI plugin with libcni, as kubelet's runtime does")
	if err := d.addPods(ctx); err != nil {
		return err
	}
	step("ping between pods: same node, across ringnet nodes (VXLAN), to and from the Flannel node")
	for _, p := range [][2]string{{"a1", "a2"}, {"a1", "b1"}, {"b1", "a2"}, {"a1", "c1"}, {"c1", "b1"}} {
		if err := d.ping(ctx, p[0], p[1]); err != nil {
			return err
		}
	}
	step("TCP a1 (node-a) -> b1 (node-b) through VXLAN: iperf3, 3 s, live")
	if err := d.iperf(ctx, "a1", "b1"); err != nil {
		return err
	}
	step("Request/response latency a1 -> b1 (sockperf ping-pong, 3 s)")
	if err := d.latency(ctx, "a1", "b1"); err != nil {
		return err
	}
	step("A Service (no kube-proxy: ClusterIP %s -> a2, b1, TCP %d) and a NetworkPolicy (app=web takes %d from role=client only)",
		serviceVIP.Addr(), backendPort, backendPort)
	if err := d.service(ctx); err != nil {
		return err
	}
	step("What the fast paths did (ringnetd counters per node)")
	if err := d.counters(); err != nil {
		return err
	}
	step("Summary (%s)", time.Since(start).Round(time.Second))
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  TRAFFIC\tPATH\tRESULT")
	for _, r := range d.results {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", r.what, r.path, r.outcome)
	}
	w.Flush()
	fmt.Println("\n  Services and NetworkPolicy came from the cluster file here (with --kubernetes, from the API):")
	fmt.Println("  docs/services.md, docs/configuration.md. Every connection decided is in `ringnet flows`.")
	if keep {
		fmt.Println("\n--keep: the cluster stays up; namespaces start with " + t.ID + ". Ctrl-C to remove it.")
		<-ctx.Done()
	}
	return ctx.Err()
}

// buildNodes makes the nodes of c: ringnet nodes with ringnetd --cluster
// default, the Flannel node with the kernel's vxlan device, peered with
// the ringnet nodes as flanneld would from their annotations.
func (d *demo) buildNodes(ctx context.Context, c *cluster.Cluster, bins ringnode.Binaries) error {
	short := func(n string) string { return strings.TrimPrefix(n, "node-") }
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Backend == cluster.BackendFlannel {
			fn, err := d.topo.AddFlannelNode(short(n.Name), n.Address, n.PodCIDRs[0], topo.FlannelOptions{VtepMAC: n.VtepMAC})
			if err != nil {
				return err
			}
			// The veth stands in for a NIC, which completes checksums.
			if _, err := fn.Output(ctx, "ethtool", "-K", topo.Uplink, "tx", "off"); err != nil {
				return err
			}
			d.flannel = fn
			fmt.Printf("  %-7s %-16s pods %-28s Flannel vxlan backend: kernel flannel.1 (VNI 1, UDP 8472, VtepMAC %s)\n",
				n.Name, n.Address, fmt.Sprint(n.PodCIDRs), fn.VtepMAC)
			continue
		}
		tn, err := d.topo.AddNode(short(n.Name), n.Address, topo.NodeOptions{})
		if err != nil {
			return err
		}
		dm, err := ringnode.Start(ctx, bins, tn, ringnode.Options{Cluster: d.file, NodeName: n.Name})
		if err != nil {
			return err
		}
		d.daemons[n.Name] = dm
		fmt.Printf("  %-7s %-16s pods %-28s ringnetd: XDP+AF_XDP on uplink0 (narrow) and each pod veth\n", n.Name, n.Address, fmt.Sprint(n.PodCIDRs))
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		dm, ok := d.daemons[n.Name]
		if !ok {
			continue
		}
		if err := d.flannel.AddPeer(n.PodCIDRs[0], dm.Node.UplinkMAC, n.Address.Addr()); err != nil {
			return err
		}
		for j := range c.Nodes {
			if p := c.Nodes[j].Name; p != n.Name {
				wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err := dm.WaitLog(wctx, `resolved" node=`+p+" ")
				cancel()
				if err != nil {
					return err
				}
			}
		}
	}
	fmt.Println("  every ringnet node has resolved its peers' underlay MACs (kernel neighbour table, netlink)")
	return nil
}

func (d *demo) addPods(ctx context.Context) error {
	for _, p := range []struct{ node, name string }{{"node-a", "a1"}, {"node-a", "a2"}, {"node-b", "b1"}} {
		pod, err := d.daemons[p.node].AddPod(ctx, p.name)
		if err != nil {
			return err
		}
		d.pods[p.name] = podRef{node: p.node, ns: pod.NS, ipv4: pod.IPv4}
		fmt.Printf("  %-3s on %s: %-12s %s (CNI ADD through ringnetd's socket)\n", p.name, p.node, pod.IPv4, pod.IPv6)
	}
	fp, err := d.flannel.AddPod("c1")
	if err != nil {
		return err
	}
	d.pods["c1"] = podRef{node: "node-c", ns: fp.NS, ipv4: fp.IPv4}
	fmt.Printf("  %-3s on node-c: %-12s (a Flannel pod on cni0)\n", "c1", fp.IPv4)
	return nil
}

func (d *demo) path(from, to string) string {
	a, b := d.pods[from].node, d.pods[to].node
	switch {
	case a == b:
		return a + " (fast path, pod to pod)"
	case a == "node-c" || b == "node-c":
		return a + " -> " + b + " (VXLAN, ringnet <-> Flannel kernel)"
	}
	return a + " -> " + b + " (VXLAN, ringnet both ends)"
}

var rttRE = regexp.MustCompile(`= [\d.]+/([\d.]+)/`)

func (d *demo) ping(ctx context.Context, from, to string) error {
	out, err := topo.Output(ctx, d.pods[from].ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", d.pods[to].ipv4.String())
	what := fmt.Sprintf("ping %s -> %s", from, to)
	if err != nil {
		d.results = append(d.results, result{what, d.path(from, to), "FAILED"})
		return fmt.Errorf("%s: %w", what, err)
	}
	rtt := "?"
	if m := rttRE.FindStringSubmatch(out); m != nil {
		rtt = m[1] + " ms"
	}
	fmt.Printf("  %-16s %-50s 3/3 replies, avg rtt %s\n", what, d.path(from, to), rtt)
	d.results = append(d.results, result{what, d.path(from, to), "3/3, avg " + rtt})
	return nil
}

func (d *demo) iperf(ctx context.Context, from, to string) error {
	srv := topo.Command(ctx, d.pods[to].ns, "iperf3", "-s", "-1", "-B", d.pods[to].ipv4.String())
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Wait()
	time.Sleep(300 * time.Millisecond)
	cl := topo.Command(ctx, d.pods[from].ns, "iperf3", "-c", d.pods[to].ipv4.String(), "-t", "3", "-i", "1", "-f", "m")
	out, err := cl.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cl.Start(); err != nil {
		return err
	}
	var last string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "Mbits/sec") {
			fmt.Println("  " + strings.TrimSpace(l))
			if strings.Contains(l, "receiver") {
				last = l
			}
		}
	}
	if err := cl.Wait(); err != nil {
		return fmt.Errorf("iperf3 %s -> %s: %w", from, to, err)
	}
	rate := "?"
	if f := strings.Fields(last); len(f) > 6 {
		rate = f[6] + " Mbit/s"
	}
	d.results = append(d.results, result{"TCP " + from + " -> " + to, d.path(from, to), rate + " (iperf3, 3 s)"})
	return nil
}

var pctRE = regexp.MustCompile(`<MAX> observation|percentile (\d+\.\d+) = +([\d.]+)`)

func (d *demo) latency(ctx context.Context, from, to string) error {
	addr := d.pods[to].ipv4.String()
	srv := topo.Command(ctx, d.pods[to].ns, "sockperf", "server", "-i", addr, "-p", "11111")
	srv.Stdout, srv.Stderr = io.Discard, io.Discard
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, err := topo.Output(ctx, d.pods[from].ns, "sockperf", "ping-pong", "-i", addr, "-p", "11111", "-t", "3", "--msg-size", "64")
	if err != nil {
		return err
	}
	p := map[string]string{}
	for _, m := range pctRE.FindAllStringSubmatch(out, -1) {
		if m[1] != "" {
			p[m[1]] = m[2]
		}
	}
	got := fmt.Sprintf("p50 %s µs, p99 %s µs, p99.9 %s µs", p["50.000"], p["99.000"], p["99.900"])
	fmt.Println("  " + got)
	d.results = append(d.results, result{"UDP ping-pong " + from + " -> " + to, d.path(from, to), got})
	return nil
}

// The demo's Service.
var serviceVIP = netip.MustParseAddrPort("10.96.0.10:80")

const backendPort = 8080

// demoFile is the cluster file of the demo's last step: the embedded
// default, a Service whose backends are a2 (node-a) and b1 (node-b), the
// pods with their labels and addresses, and a NetworkPolicy: the web pods
// (app=web) take TCP 8080 from role=client pods only. a1 and b1 are
// clients (b1 reaches its own service: hairpin); c1, on the Flannel node,
// is not.
func (d *demo) demoFile() string {
	var b strings.Builder
	b.Write(cluster.Default)
	fmt.Fprintf(&b, "\nservices:\n- name: web\n  clusterIPs: [%s]\n  ports: [{name: http, port: %d, targetPort: %d}]\n"+
		"  endpoints: [{address: %s, node: node-a}, {address: %s, node: node-b}]\n",
		serviceVIP.Addr(), serviceVIP.Port(), backendPort, d.pods["a2"].ipv4, d.pods["b1"].ipv4)
	b.WriteString("\npods:\n")
	for _, p := range []struct{ name, labels string }{
		{"a1", "{role: client}"}, {"a2", "{app: web}"}, {"b1", "{app: web, role: client}"}, {"c1", "{role: other}"},
	} {
		fmt.Fprintf(&b, "- {namespace: default, name: %s, labels: %s, addresses: [%s]}\n", p.name, p.labels, d.pods[p.name].ipv4)
	}
	fmt.Fprintf(&b, `
policies:
- namespace: default
  name: allow-web
  spec:
    podSelector: {matchLabels: {app: web}}
    policyTypes: [Ingress]
    ingress:
    - from: [{podSelector: {matchLabels: {role: client}}}]
      ports: [{protocol: TCP, port: %d}]
`, backendPort)
	return b.String()
}

// service gives both ringnetds demoFile (rewriting the cluster file and
// SIGHUP), opens connections to the Service from a1 and b1 and shows
// which backend answered and whom it saw, then tries b1 directly from
// c1, which the policy denies, and shows the flow logs' verdicts.
func (d *demo) service(ctx context.Context) error {
	for _, name := range []string{"a2", "b1"} {
		ln, err := topo.Greeter(d.pods[name].ns, name, backendPort)
		if err != nil {
			return err
		}
		defer ln.Close()
	}
	for _, name := range []string{"node-a", "node-b"} {
		if err := d.daemons[name].ReplaceCluster([]byte(d.demoFile())); err != nil {
			return err
		}
	}
	fmt.Println("  cluster file + services, pods and a NetworkPolicy, reloaded with SIGHUP; on node-a:")
	for _, cmd := range []string{"services", "policy"} {
		out, err := topo.Output(ctx, d.daemons["node-a"].Node.NS, d.cli, cmd, "--socket", d.daemons["node-a"].Socket)
		if err != nil {
			return fmt.Errorf("ringnet %s: %w", cmd, err)
		}
		fmt.Printf("  $ ringnet %s\n", cmd)
		for l := range strings.Lines(out) {
			fmt.Print("    " + l)
		}
	}
	for _, from := range []string{"a1", "b1"} {
		seen, saw := map[string]int{}, map[string]netip.Addr{}
		for range 12 {
			s, err := topo.Dial(d.pods[from].ns, serviceVIP)
			if err != nil {
				d.results = append(d.results, result{"TCP " + from + " -> " + serviceVIP.String(), "", "FAILED"})
				return fmt.Errorf("connect %s -> %v: %w", from, serviceVIP, err)
			}
			s.Conn.Close()
			seen[s.Server]++
			saw[s.Server] = s.Client
		}
		var parts []string
		for _, be := range []string{"a2", "b1"} {
			if seen[be] == 0 {
				continue
			}
			p := fmt.Sprintf("%s %d (saw %v", be, seen[be], saw[be])
			if be == from {
				p += ": hairpin, from the gateway"
			}
			parts = append(parts, p+")")
		}
		got := "12 connections: " + strings.Join(parts, ", ")
		fmt.Printf("  %s -> %v: %s\n", from, serviceVIP, got)
		d.results = append(d.results, result{"TCP " + from + " -> ClusterIP", d.pods[from].node + " (DNAT to a backend by Maglev, replies translated back)", got})
	}
	// c1 is no client: node-b's fast path drops its SYN (ingress policy).
	to := netip.AddrPortFrom(d.pods["b1"].ipv4, backendPort)
	s, err := topo.Dial(d.pods["c1"].ns, to)
	if err == nil {
		s.Conn.Close()
		return fmt.Errorf("c1 -> %v: connected, though default/allow-web admits role=client only", to)
	}
	fmt.Printf("  c1 -> b1 %v: no answer (%v)\n", to, err)
	outcome := "no answer"
	for _, node := range []string{"node-a", "node-b"} {
		fl, err := api.NewClient(d.daemons[node].Socket).Flows(ctx)
		if err != nil {
			return err
		}
		var denied []api.Flow
		for _, f := range fl.Flows {
			if f.Verdict == "denied" {
				denied = append(denied, f)
			}
		}
		fmt.Printf("  %s flow log: allowed %d, denied %d\n", node, fl.Total["allowed"], fl.Total["denied"])
		if len(denied) > 0 {
			f := denied[len(denied)-1]
			fmt.Printf("    latest denied: %s %s (%s) > %s (%s), isolated by %s\n", f.Protocol, f.Src, f.SrcPod, f.Dst, f.DstPod, strings.Join(f.Policies, ", "))
			outcome = "denied by " + strings.Join(f.Policies, ", ") + " (node-b's flow log)"
		}
	}
	d.results = append(d.results, result{"TCP c1 -> b1:8080", "node-c -> node-b (VXLAN; ingress policy on node-b)", outcome})
	// Why, from the table node-b enforces.
	args := []string{"policy", "--from", d.pods["c1"].ipv4.String(), "--to", d.pods["b1"].ipv4.String(),
		"--port", fmt.Sprintf("%d/TCP", backendPort), "--socket", d.daemons["node-b"].Socket}
	out, err := topo.Output(ctx, d.daemons["node-b"].Node.NS, d.cli, args...)
	if err != nil {
		return fmt.Errorf("ringnet policy --from --to: %w", err)
	}
	fmt.Printf("  on node-b: $ ringnet %s\n", strings.Join(args[:len(args)-2], " "))
	for l := range strings.Lines(out) {
		fmt.Print("    " + l)
	}
	return nil
}

func (d *demo) counters() error {
	for _, name := range []string{"node-a", "node-b"} {
		m, err := d.daemons[name].Counters()
		if err != nil {
			return err
		}
		var drops []string
		for r, v := range m {
			switch r {
			case "forwarded", "to_peer", "from_peer", "arp_reply", "nd_reply", "host_rx", "host_tx":
			default:
				drops = append(drops, fmt.Sprintf("%s=%d", r, v))
			}
		}
		fmt.Printf("  %s: pod->pod %d, sent to peers %d, received from peers %d, other outcomes: %s\n",
			name, m["forwarded"], m["to_peer"], m["from_peer"], strings.Join(drops, " "))
	}
	fmt.Println("  (multicast: the pods' own IPv6 router/MLD chatter, dropped by design; see docs/slowpath.md)")
	return nil
}
