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
	tp := topo.NewT(t, "cli")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins, err := ringnode.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "ringnet")
	if out, err := exec.Command("go", "build", "-o", cli, "github.com/ringnet/ringnet/cmd/ringnet").CombinedOutput(); err != nil {
		t.Fatalf("build ringnet: %v\n%s", err, out)
	}
	nodeA, err := tp.AddNode("na", netip.MustParsePrefix("192.168.50.1/24"), topo.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := tp.AddNode("nb", netip.MustParsePrefix("192.168.50.2/24"), topo.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cluster.yaml")
	err = os.WriteFile(file, []byte(`tunnel: {mode: vxlan}
nodes:
- {name: na, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24, "fd00:244:1::/64"]}
- {name: nb, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24, "fd00:244:2::/64"]}
- {name: nc, address: 192.168.50.3/24, podCIDRs: [10.244.3.0/24], backend: flannel, vtepMAC: "02:42:c0:a8:32:03"}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var daemons []*ringnode.Daemon
	for _, n := range []*topo.Node{nodeA, nodeB} {
		d, err := ringnode.Start(ctx, bins, n, ringnode.Options{Cluster: file})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Stop(); err != nil {
				t.Errorf("stop ringnetd on %s: %v", n.Name, err)
			}
		})
		daemons = append(daemons, d)
	}
	a, b := daemons[0], daemons[1]
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

	// ringnet VIEW -o json against na's ringnetd, decoded into v.
	view := func(v any, args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, cli, append(args, "--socket", a.Socket)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ringnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if v != nil {
			if err := json.Unmarshal(out, v); err != nil {
				t.Fatalf("ringnet %s printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		return string(out)
	}

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
