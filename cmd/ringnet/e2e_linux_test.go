package main

// End to end: the real ringnet CLI against real ringnetd processes on a
// two-node cluster in network namespaces (internal/topo), with pods made
// by the CNI plugin as a container runtime makes them (internal/ringnode).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
)

// TestCLIOnCluster runs two ringnet nodes, na and nb, in a cluster
// whose file also names nc, a Flannel node that does not exist (its
// next hop never resolves). na has pod web, nb pod db. Each view
// of na's ringnetd must show what the cluster is.
func TestCLIOnCluster(t *testing.T) {
	e := newE2E(t, "cli")
	ctx := e.ctx
	nodeA, nodeB := e.node("na", "192.168.50.1/24"), e.node("nb", "192.168.50.2/24")
	file := e.file(`tunnel: {mode: vxlan}
nodes:
- {name: na, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24, "fd00:244:1::/64"]}
- {name: nb, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24, "fd00:244:2::/64"]}
- {name: nc, address: 192.168.50.3/24, podCIDRs: [10.244.3.0/24], backend: flannel, vtepMAC: "02:42:c0:a8:32:03"}
`)
	a, b := e.start(nodeA, file), e.start(nodeB, file)
	if err := a.WaitLog(ctx, `resolved" node=nb `); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitLog(ctx, `resolved" node=na `); err != nil {
		t.Fatal(err)
	}
	web, err := a.AddPod(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.AddPod(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	var webMAC string
	if err := web.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if ifi != nil {
			webMAC = ifi.HardwareAddr.String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Traffic: to nb's pod (through the VXLAN tunnel, answered), and to
	// an address of nc's, whose next hop is unresolved.
	if out, err := web.Output(ctx, "ping", "-c", "3", "-i", "0.2", "-W", "2", db.IPv4.String()); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping web -> db: %v\n%s", err, out)
	}
	web.Output(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.244.3.2")

	view := e.viewer(a)

	var st api.Status
	view(&st, "status", "-o", "json")
	wantUplink := &api.Uplink{Interface: topo.Uplink, Address: "192.168.50.1", VtepMAC: nodeA.UplinkMAC.String(), VXLANPort: 8472, VNI: 1}
	if !st.Ready || st.Allocated != 1 || st.Ports != 2 || st.Peers != 2 || st.PeersUnresolved != 1 ||
		!cmp.Equal(st.Uplink, wantUplink) || st.Tables["routes"] != 3 || st.Tables["endpoints"] != 2 {
		t.Errorf("status: %+v (uplink %+v); want ready, 1 pod, 2 ports, 2 peers of which 1 unresolved, uplink %+v, 3 routes, 2 endpoints",
			st, st.Uplink, wantUplink)
	}

	var eps api.EndpointList
	view(&eps, "endpoints", "-o", "json")
	if len(eps.Endpoints) != 2 {
		t.Fatalf("endpoints: %+v; want web's two addresses", eps)
	}
	for i, addr := range []netip.Addr{web.IPv4, web.IPv6} {
		e := eps.Endpoints[i]
		if e.Address != addr.String() || !e.Attached || e.Port == nil || e.MAC != webMAC || e.PodNamespace != "default" ||
			e.PodName != "web" || e.ContainerID != "na-web" || e.IfName != "eth0" || e.Interface != api.HostIfname("na-web", "eth0") {
			t.Errorf("endpoint %d: %+v; want %v of default/web (na-web/eth0), attached, MAC %s", i, e, addr, webMAC)
		}
	}

	var rs api.RouteList
	view(&rs, "routes", "-o", "json")
	wantRoutes := []api.Route{
		{Prefix: "10.244.2.0/24", Kind: api.RouteRemoteNode, Peer: "nb", PeerAddress: "192.168.50.2", Tunnel: api.TunnelVXLAN},
		{Prefix: "10.244.3.0/24", Kind: api.RouteRemoteNode, Peer: "nc", PeerAddress: "192.168.50.3", Tunnel: api.TunnelVXLAN},
		{Prefix: "fd00:244:2::/64", Kind: api.RouteRemoteNode, Peer: "nb", PeerAddress: "192.168.50.2", Tunnel: api.TunnelVXLAN},
	}
	if diff := cmp.Diff(wantRoutes, rs.Routes); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}

	var ps api.PeerList
	view(&ps, "peers", "-o", "json")
	bMAC := nodeB.UplinkMAC.String()
	wantPeers := []api.Peer{
		{Name: "nb", Address: "192.168.50.2", Tunnel: api.TunnelVXLAN, NextHopMAC: bMAC, Resolved: true, VtepMAC: bMAC,
			PodCIDRs: []string{"10.244.2.0/24", "fd00:244:2::/64"}},
		{Name: "nc", Address: "192.168.50.3", Tunnel: api.TunnelVXLAN, VtepMAC: "02:42:c0:a8:32:03", PodCIDRs: []string{"10.244.3.0/24"}},
	}
	if diff := cmp.Diff(wantPeers, ps.Peers); diff != "" {
		t.Errorf("peers (-want +got):\n%s", diff)
	}
	if out := view(nil, "peers"); !strings.Contains(out, "unresolved") || !strings.Contains(out, bMAC) {
		t.Errorf("peers table does not show nc unresolved and nb's MAC:\n%s", out)
	}

	var sts api.Stats
	view(&sts, "stats", "-o", "json")
	reasons := map[string]api.ReasonCount{}
	for _, r := range sts.Reasons {
		if r.Count == 0 {
			t.Errorf("stats without --all lists %s with no frames", r.Reason)
		}
		reasons[r.Reason] = r
	}
	for name, group := range map[string]string{"to_peer": api.GroupForwarded, "from_peer": api.GroupForwarded, "peer_unresolved": api.GroupDropped} {
		if r := reasons[name]; r.Count < 2 || r.Group != group {
			t.Errorf("stats: %s %+v; want at least 2 frames, group %s", name, r, group)
		}
	}
	var wf, wd uint64
	for _, w := range sts.Workers {
		wf, wd = wf+w.Forwarded, wd+w.Dropped
	}
	if len(sts.Workers) != 1 || wf < reasons["to_peer"].Count+reasons["from_peer"].Count || wd < reasons["peer_unresolved"].Count {
		t.Errorf("stats: workers %+v; want one, counting the frames to and from peers as forwarded, peer_unresolved as dropped", sts.Workers)
	}
	kinds := map[string]api.PortStats{}
	for _, p := range sts.Ports {
		kinds[p.Kind] = p
	}
	if up := kinds[api.PortUplink]; up.Interface != topo.Uplink || up.TxFrames < 3 || up.RxFrames < 3 {
		t.Errorf("stats: uplink %+v; want %s with the pings both ways", up, topo.Uplink)
	}
	if p := kinds[api.PortPod]; p.Interface != api.HostIfname("na-web", "eth0") || p.RxFrames < 3 {
		t.Errorf("stats: pod port %+v", p)
	}
	var all api.Stats
	view(&all, "stats", "-o", "json", "--all")
	if len(all.Reasons) <= len(sts.Reasons) || !slices.ContainsFunc(all.Reasons, func(r api.ReasonCount) bool { return r.Count == 0 }) {
		t.Errorf("stats --all lists %d reasons, without it %d", len(all.Reasons), len(sts.Reasons))
	}

	// Every table renders, and names what it shows.
	for cmd, want := range map[string]string{
		"status":    "peers                2 (1 unresolved",
		"endpoints": "default/web",
		"routes":    "10.244.3.0/24    RemoteNode  nc",
		"stats":     fmt.Sprintf("%s  ", topo.Uplink),
	} {
		out := view(nil, cmd)
		if !strings.Contains(out, want) {
			t.Errorf("ringnet %s does not show %q:\n%s", cmd, want, out)
		}
		t.Logf("ringnet %s:\n%s", cmd, out)
	}
}

// e2e is what an end-to-end test starts from: a topology, a context that
// ends in 2 minutes, and the binaries (ringnetd, the CNI plugin, ringnet)
// built into dir.
type e2e struct {
	t    *testing.T
	tp   *topo.Topology
	ctx  context.Context
	dir  string
	bins ringnode.Binaries
	cli  string
}

func newE2E(t *testing.T, prefix string) *e2e {
	e := &e2e{t: t, tp: topo.NewT(t, prefix), dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e.ctx = ctx
	var err error
	if e.bins, err = ringnode.Build(e.dir); err != nil {
		t.Fatal(err)
	}
	e.cli = filepath.Join(e.dir, "ringnet")
	if out, err := exec.Command("go", "build", "-o", e.cli, "github.com/ringnet/ringnet/cmd/ringnet").CombinedOutput(); err != nil {
		t.Fatalf("build ringnet: %v\n%s", err, out)
	}
	return e
}

// node adds a node with underlay address addr.
func (e *e2e) node(name, addr string) *topo.Node {
	n, err := e.tp.AddNode(name, netip.MustParsePrefix(addr), topo.NodeOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// file writes the cluster file and returns its path.
func (e *e2e) file(data string) string {
	path := filepath.Join(e.dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// start runs ringnetd on n with the cluster file, until the test ends.
func (e *e2e) start(n *topo.Node, file string) *ringnode.Daemon {
	d, err := ringnode.Start(e.ctx, e.bins, n, ringnode.Options{Cluster: file})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			e.t.Errorf("stop ringnetd on %s: %v", n.Name, err)
		}
	})
	return d
}

// viewer returns a function that runs ringnet VIEW against d's ringnetd
// and returns what it printed, decoded into v if v is not nil (for -o
// json).
func (e *e2e) viewer(d *ringnode.Daemon) func(v any, args ...string) string {
	return func(v any, args ...string) string {
		e.t.Helper()
		out, err := exec.CommandContext(e.ctx, e.cli, append(args, "--socket", d.Socket)...).CombinedOutput()
		if err != nil {
			e.t.Fatalf("ringnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if v != nil {
			if err := json.Unmarshal(out, v); err != nil {
				e.t.Fatalf("ringnet %s printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		return string(out)
	}
}

// TestServicesReload runs one ringnet node, sa, of a cluster file that
// also names sb (not running), with services: ringnet services shows the
// entries sa serves; a new file on SIGHUP (ringnode's ReplaceCluster)
// changes them and the peers; a file that does not validate, or that
// changes sa's own entry, is refused and changes nothing.
func TestServicesReload(t *testing.T) {
	e := newE2E(t, "svc")
	node := e.node("sa", "192.168.50.1/24")
	const nodes = `nodes:
- {name: sa, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24, "fd00:244:1::/64"]}
- {name: sb, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24, "fd00:244:2::/64"]}
`
	const webHead = `- name: web
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  externalIPs: [192.168.50.100]
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
  externalTrafficPolicy: Local
  endpoints:
`
	const web = webHead + `  - {address: 10.244.1.10, node: sa}
  - {address: "fd00:244:1::10", node: sa}
  - {address: 10.244.2.10, node: sb}
  - {address: 10.244.2.11, node: sb, terminating: true}
`
	const dns = `- name: dns
  namespace: kube-system
  clusterIPs: [10.96.0.53]
  ports: [{name: dns, protocol: UDP, port: 53}, {name: dns-tcp, port: 53}]
  sessionAffinity: ClientIP
  sessionAffinityTimeout: 1h
  endpoints: [{address: 10.244.2.20, node: sb}]
`
	d := e.start(node, e.file(nodes+"services:\n"+web+dns))
	view := e.viewer(d)
	services := func() api.ServiceList {
		t.Helper()
		var l api.ServiceList
		view(&l, "services", "-o", "json")
		return l
	}
	wantFirst := api.ServiceList{Generation: 1, Services: []api.Service{
		{VIP: "10.96.0.10", Protocol: "TCP", Port: 80, Backends: []string{"10.244.1.10:8080", "10.244.2.10:8080"}, TableSize: 4093},
		{VIP: "10.96.0.53", Protocol: "TCP", Port: 53, Backends: []string{"10.244.2.20:53"}, AffinitySeconds: 3600, TableSize: 4093},
		{VIP: "10.96.0.53", Protocol: "UDP", Port: 53, Backends: []string{"10.244.2.20:53"}, AffinitySeconds: 3600, TableSize: 4093},
		{VIP: "192.168.50.1", Protocol: "TCP", Port: 30080, Backends: []string{"10.244.1.10:8080"}, External: true, Local: true, TableSize: 4093},
		{VIP: "192.168.50.100", Protocol: "TCP", Port: 80, Backends: []string{"10.244.1.10:8080"}, External: true, Local: true, TableSize: 4093},
		{VIP: "fd00:96::10", Protocol: "TCP", Port: 80, Backends: []string{"[fd00:244:1::10]:8080"}, TableSize: 4093},
	}}
	if diff := cmp.Diff(wantFirst, services()); diff != "" {
		t.Errorf("services at start (-want +got):\n%s", diff)
	}
	if out := view(nil, "services"); !strings.Contains(out, "192.168.50.1    TCP       30080  10.244.1.10:8080") {
		t.Errorf("services table:\n%s", out)
	}
	var st api.Status
	if view(&st, "status", "-o", "json"); st.Tables["services"] != 6 {
		t.Errorf("status: tables %v; want 6 services", st.Tables)
	}
	if !strings.Contains(d.Log(), "external_ips=[192.168.50.100/32]") {
		t.Errorf("ringnetd did not have the uplink redirect the external IP:\n%s", d.Log())
	}

	// Reload: web's endpoint on sa moves, dns goes, node sc comes.
	const web2 = webHead + `  - {address: 10.244.1.11, node: sa}
  - {address: 10.244.2.10, node: sb}
`
	const sc = "- {name: sc, address: 192.168.50.3/24, podCIDRs: [10.244.3.0/24]}\n"
	if err := d.ReplaceCluster([]byte(nodes + sc + "services:\n" + web2)); err != nil {
		t.Fatal(err)
	}
	wantSecond := api.ServiceList{Generation: 2, Services: []api.Service{
		{VIP: "10.96.0.10", Protocol: "TCP", Port: 80, Backends: []string{"10.244.1.11:8080", "10.244.2.10:8080"}, TableSize: 4093},
		{VIP: "192.168.50.1", Protocol: "TCP", Port: 30080, Backends: []string{"10.244.1.11:8080"}, External: true, Local: true, TableSize: 4093},
		{VIP: "192.168.50.100", Protocol: "TCP", Port: 80, Backends: []string{"10.244.1.11:8080"}, External: true, Local: true, TableSize: 4093},
		{VIP: "fd00:96::10", Protocol: "TCP", Port: 80, Backends: []string{}},
	}}
	if diff := cmp.Diff(wantSecond, services()); diff != "" {
		t.Errorf("services after the reload (-want +got):\n%s", diff)
	}
	if !strings.Contains(d.Log(), "entries=4 backends=4 added=0 removed=2 changed=4") {
		t.Errorf("ringnetd did not log the changes:\n%s", d.Log())
	}
	var ps api.PeerList
	view(&ps, "peers", "-o", "json")
	if len(ps.Peers) != 2 || ps.Peers[1].Name != "sc" {
		t.Errorf("peers after the reload: %+v; want sb and sc", ps.Peers)
	}

	// Refused: nothing changes.
	for _, bad := range []struct{ name, file, want string }{
		{"invalid", nodes + "services:\n" + strings.Replace(web2, "nodePort: 30080", "nodePort: 80", 1),
			"services[0].ports[0].nodePort: 80 is outside the NodePort range 30000-32767"},
		{"own entry changed", strings.Replace(nodes, "192.168.50.1/24", "192.168.50.9/24", 1) + "services:\n" + web2,
			"this node's own entry (sa) changed"},
		{"not YAML", "nodes: [", "line 1"},
	} {
		err := d.ReplaceCluster([]byte(bad.file))
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "nothing changed") {
			t.Errorf("%s file: Reload = %v; want an error saying %q and that nothing changed", bad.name, err, bad.want)
		}
		if diff := cmp.Diff(wantSecond, services()); diff != "" {
			t.Errorf("services after the %s file (-want +got):\n%s", bad.name, diff)
		}
	}
	view(&ps, "peers", "-o", "json")
	if len(ps.Peers) != 2 {
		t.Errorf("peers after the refused files: %+v; want sb and sc", ps.Peers)
	}
	// And no services at all: an empty table, published.
	if err := d.ReplaceCluster([]byte(nodes)); err != nil {
		t.Fatal(err)
	}
	if l := services(); l.Generation != 3 || len(l.Services) != 0 {
		t.Errorf("services after a file without any: %+v; want generation 3, none", l)
	}
	if out := view(nil, "services"); out != "No services: the service table (generation 3) is empty.\n" {
		t.Errorf("services table: %q", out)
	}
	if !d.Running() {
		t.Fatalf("ringnetd stopped:\n%s", d.Log())
	}
}

// TestPolicyOnCluster runs one ringnet node, pa, with pods web, client
// and other (made by the CNI plugin) and a cluster file whose policy lets
// only client reach web's named port http. ringnet policy web names the
// policy and rule that allow client; ringnet policy --from --to says
// client is allowed and other denied, as the fast path decides (a real
// connection from each); the denied flow ringnet flows lists is the one
// ringnet policy explains.
func TestPolicyOnCluster(t *testing.T) {
	e := newE2E(t, "pol")
	const nodes = "nodes:\n- {name: pa, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24, \"fd00:244:1::/64\"]}\n"
	d := e.start(e.node("pa", "192.168.50.1/24"), e.file(nodes))
	file := nodes + "pods:\n"
	pods := map[string]*ringnode.Pod{}
	for _, p := range []struct{ name, rest string }{
		{"web", "labels: {app: web}, ports: [{name: http, port: 8080}]"},
		{"client", "labels: {role: client}"},
		{"other", "labels: {role: other}"},
	} {
		pod, err := d.AddPod(e.ctx, p.name)
		if err != nil {
			t.Fatal(err)
		}
		pods[p.name] = pod
		file += fmt.Sprintf("- {name: %s, addresses: [%s, %q], %s}\n", p.name, pod.IPv4, pod.IPv6, p.rest)
	}
	file += `policies:
- name: allow-web
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: http}]}]
`
	ln, err := topo.Greeter(pods["web"].NS, "web", 8080)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := d.ReplaceCluster([]byte(file)); err != nil {
		t.Fatal(err)
	}
	web := netip.AddrPortFrom(pods["web"].IPv4, 8080)
	if err := topo.WaitGreeting(pods["client"].NS, web, 15*time.Second); err != nil {
		t.Fatalf("client -> web: %v\n%s", err, d.Log())
	}
	if s, err := topo.Dial(pods["other"].NS, web); err == nil {
		s.Conn.Close()
		t.Fatalf("other reached web: the policy is not enforced\n%s", d.Log())
	}
	view := e.viewer(d)

	var ep api.EndpointPolicy
	view(&ep, "policy", "web", "-o", "json")
	in := ep.Ingress
	if !ep.Pod.Local || !slices.Equal(in.IsolatedBy, []string{"default/allow-web"}) || len(in.Rules) != 1 ||
		len(in.Rules[0].Peers) != 1 || !slices.Equal(in.Rules[0].Peers[0].Pods, []string{"default/client"}) ||
		len(in.Rules[0].Ports) != 1 || len(in.Rules[0].Ports[0].Resolved) != 1 || in.Rules[0].Ports[0].Resolved[0].Port != 8080 ||
		len(ep.Egress.IsolatedBy) != 0 {
		t.Errorf("policy web: %+v; want it local, isolated for ingress by default/allow-web, whose rule 0 lets default/client reach http (8080); egress open", ep)
	}
	out := view(nil, "policy", "default/web")
	for _, want := range []string{"ingress: isolated by default/allow-web", "default/allow-web ingress[0]",
		"from   pods role=client in namespace default: default/client", "ports  TCP http (8080 on this pod)", "egress: not isolated"} {
		if !strings.Contains(out, want) {
			t.Errorf("ringnet policy default/web does not say %q:\n%s", want, out)
		}
	}
	t.Logf("ringnet policy default/web:\n%s", out)

	var v api.PolicyVerdict
	view(&v, "policy", "--from", "client", "--to", "web", "--port", "8080", "-o", "json")
	if !v.Allowed || v.Ingress.Verdict != api.PolicyAllowed || len(v.Ingress.Rules) != 1 || !v.Ingress.Rules[0].Allows ||
		v.Egress.Verdict != api.PolicyNotIsolated || v.To.Addresses[0] != pods["web"].IPv4.String() {
		t.Errorf("policy --from client --to web: %+v; want allowed by default/allow-web rule 0", v)
	}
	view(&v, "policy", "--from", "default/other", "--to", pods["web"].IPv4.String(), "--port", "8080/TCP", "-o", "json")
	if v.Allowed || v.Ingress.Verdict != api.PolicyDenied || len(v.Ingress.Rules) != 1 || v.Ingress.Rules[0].Peer || v.Ingress.Rules[0].Allows {
		t.Errorf("policy --from other --to web: %+v; want denied, rule 0's peers not including other", v)
	}
	out = view(nil, "policy", "--from", "other", "--to", "web", "--port", "8080")
	if !strings.Contains(out, "): denied\n") || !strings.Contains(out, "default/allow-web ingress[0]: its peers do not include default/other") {
		t.Errorf("ringnet policy --from other --to web:\n%s", out)
	}
	t.Logf("ringnet policy --from other --to web --port 8080:\n%s", out)

	// The flow the fast path denied is the one explained.
	var fl api.FlowList
	view(&fl, "flows", "--verdict", "denied", "-o", "json")
	if !slices.ContainsFunc(fl.Flows, func(f api.Flow) bool {
		return f.SrcPod == "default/other" && f.DstPod == "default/web" && slices.Equal(f.Policies, []string{"default/allow-web"})
	}) {
		t.Errorf("ringnet flows --verdict denied lists no flow other -> web denied by default/allow-web: %+v", fl)
	}
}
