package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/ipam"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/route"
	"github.com/ringnet/ringnet/tables/service"
)

var (
	pod4   = netip.MustParsePrefix("10.244.1.0/24")
	pod6   = netip.MustParsePrefix("fd00:1::/64")
	macB   = [6]byte{0x02, 0xaa, 0, 0, 0, 2}
	vtepB  = [6]byte{0x02, 0xbb, 0, 0, 0, 2}
	vtepC  = [6]byte{0x02, 0x42, 0xc0, 0xa8, 0x32, 0x03}
	peersB = []pipeline.Peer{
		{Name: "node-b", Address: netip.MustParseAddr("192.168.50.2"), Tunnel: route.VXLAN, VtepMAC: vtepB, MAC: macB},
		{Name: "node-c", Address: netip.MustParseAddr("192.168.50.3"), Tunnel: route.IPIP, VtepMAC: vtepC},
	}
)

// newDaemon is a daemon over a real dataplane with no ports (pipeline.New
// needs no privileges until ports are attached or it is started) and a
// fresh address store, served on a unix socket; it returns both ends.
func newDaemon(t *testing.T) (*Daemon, *api.Client) {
	t.Helper()
	dp, err := pipeline.New(pipeline.Config{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	store, err := ipam.Open(filepath.Join(t.TempDir(), "ipam.db"), []netip.Prefix{pod4, pod6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	d := New(dp, store, 1450, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(d)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d, api.NewClient(sock)
}

// TestViewsOverAPI reads each view of a daemon with two pods allocated
// (not attached: that needs root; the e2e test in cmd/ringnet attaches)
// and routes without an uplink through the API.
func TestViewsOverAPI(t *testing.T) {
	d, c := newDaemon(t)
	ctx := context.Background()
	web, err := c.Allocate(ctx, api.Pod{ContainerID: "c-web", IfName: "eth0", PodNamespace: "shop", PodName: "web"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := c.Allocate(ctx, api.Pod{ContainerID: "c-db", IfName: "eth0", PodNamespace: "shop", PodName: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if web.PodMAC != "0a:58:0a:f4:01:01" || db.PodMAC != "0a:58:0a:f4:01:02" {
		t.Errorf("allocations chose pod MACs %q and %q, want 0a:58 and each one's IPv4 address", web.PodMAC, db.PodMAC)
	}
	// Without an uplink the dataplane takes routes that need none, and
	// keeps the peers (which no route names yet).
	var b route.Builder
	for pfx, nh := range map[string]route.NextHop{
		"10.96.0.0/12":    {Kind: route.SlowPath},
		"192.0.2.0/24":    {Kind: route.Drop},
		"10.244.1.200/32": {Kind: route.LocalPort, Port: 3},
		"fd00:9::/64":     {Kind: route.LocalPort, Port: route.ViaEndpoint},
	} {
		if err := b.Insert(netip.MustParsePrefix(pfx), nh); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.dp.SetRoutes(pipeline.Routes{Table: b.Build(1), Peers: peersB}); err != nil {
		t.Fatal(err)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := api.Status{Ready: true, PodCIDRs: []string{"10.244.1.0/24", "fd00:1::/64"}, Allocated: 2, Workers: 2,
		Peers: 2, PeersUnresolved: 1, Tables: map[string]int{"endpoints": 0, "ports": 0, "peers": 2, "routes": 4, "services": 0}}
	if diff := cmp.Diff(wantStatus, st); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}

	eps, err := c.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ep := func(addr string, a api.AllocateResponse, name, ctr string) api.Endpoint {
		return api.Endpoint{Address: addr, Interface: a.HostIfname, MAC: a.PodMAC, PodNamespace: "shop", PodName: name, ContainerID: ctr, IfName: "eth0"}
	}
	wantEps := api.EndpointList{Endpoints: []api.Endpoint{
		ep(web.IPv4, web, "web", "c-web"), ep(db.IPv4, db, "db", "c-db"),
		ep(web.IPv6, web, "web", "c-web"), ep(db.IPv6, db, "db", "c-db"),
	}}
	if diff := cmp.Diff(wantEps, eps); diff != "" {
		t.Errorf("Endpoints (-want +got):\n%s", diff)
	}

	rs, err := c.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	three := 3
	wantRoutes := api.RouteList{Routes: []api.Route{
		{Prefix: "10.96.0.0/12", Kind: api.RouteSlowPath},
		{Prefix: "10.244.1.200/32", Kind: api.RouteLocalPort, Port: &three},
		{Prefix: "192.0.2.0/24", Kind: api.RouteDrop},
		{Prefix: "fd00:9::/64", Kind: api.RouteLocalPort},
	}}
	if diff := cmp.Diff(wantRoutes, rs); diff != "" {
		t.Errorf("Routes (-want +got):\n%s", diff)
	}

	ps, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPeers := api.PeerList{Peers: []api.Peer{
		{Name: "node-b", Address: "192.168.50.2", Tunnel: api.TunnelVXLAN, NextHopMAC: "02:aa:00:00:00:02", Resolved: true,
			VtepMAC: "02:bb:00:00:00:02", PodCIDRs: []string{}},
		{Name: "node-c", Address: "192.168.50.3", Tunnel: api.TunnelIPIP, VtepMAC: "02:42:c0:a8:32:03", PodCIDRs: []string{}},
	}}
	if diff := cmp.Diff(wantPeers, ps); diff != "" {
		t.Errorf("Peers (-want +got):\n%s", diff)
	}

	sts, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts.Ports) != 0 || len(sts.Workers) != 2 || len(sts.Reasons) != stats.NumReasons {
		t.Errorf("Stats: %d ports, %d workers, %d reasons; want 0, 2, %d", len(sts.Ports), len(sts.Workers), len(sts.Reasons), stats.NumReasons)
	}
	for i, r := range sts.Reasons {
		if r.Reason != stats.Reason(i).String() || r.Count != 0 {
			t.Errorf("reason %d: %+v; want %s with no frames", i, r, stats.Reason(i))
		}
	}
}

// TestServicesOverAPI lists the service table through the API: nothing
// before one is published, then every entry, sorted by address, port and
// protocol, backends as address:port, the affinity in seconds.
func TestServicesOverAPI(t *testing.T) {
	d, c := newDaemon(t)
	ctx := context.Background()
	got, err := c.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (api.ServiceList{Services: []api.Service{}}); !cmp.Equal(want, got) {
		t.Errorf("Services before a table: %+v, want %+v", got, want)
	}
	be := func(ss ...string) []service.Backend {
		var out []service.Backend
		for _, s := range ss {
			ap := netip.MustParseAddrPort(s)
			out = append(out, service.Backend{Addr: ap.Addr(), Port: ap.Port()})
		}
		return out
	}
	vip := netip.MustParseAddr("10.96.0.10")
	table, err := service.Build(7, []service.Spec{
		{VIP: netip.MustParseAddr("fd00:96::10"), Proto: 6, Port: 80, Backends: be("[fd00:244:1::2]:8080")},
		{VIP: netip.MustParseAddr("192.168.50.1"), Proto: 17, Port: 30053, External: true, Local: true, Affinity: 3 * time.Hour},
		{VIP: vip, Proto: 17, Port: 53, Backends: be("10.244.2.3:53", "10.244.1.2:53")},
		{VIP: vip, Proto: 6, Port: 53, Backends: be("10.244.1.2:53"), External: true},
		{VIP: vip, Proto: 132, Port: 9, Backends: be("10.244.1.2:9", "10.244.1.3:9"), TableSize: 251},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.dp.SetServices(table); err != nil {
		t.Fatal(err)
	}
	if got, err = c.Services(ctx); err != nil {
		t.Fatal(err)
	}
	want := api.ServiceList{Generation: 7, Services: []api.Service{
		{VIP: "10.96.0.10", Protocol: "SCTP", Port: 9, Backends: []string{"10.244.1.2:9", "10.244.1.3:9"}, TableSize: 251},
		{VIP: "10.96.0.10", Protocol: "TCP", Port: 53, Backends: []string{"10.244.1.2:53"}, External: true, TableSize: 4093},
		{VIP: "10.96.0.10", Protocol: "UDP", Port: 53, Backends: []string{"10.244.1.2:53", "10.244.2.3:53"}, TableSize: 4093},
		{VIP: "192.168.50.1", Protocol: "UDP", Port: 30053, Backends: []string{}, AffinitySeconds: 10800, External: true, Local: true},
		{VIP: "fd00:96::10", Protocol: "TCP", Port: 80, Backends: []string{"[fd00:244:1::2]:8080"}, TableSize: 4093},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Services (-want +got):\n%s", diff)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tables["services"] != 5 {
		t.Errorf("Status: tables %v; want 5 services", st.Tables)
	}
}

// TestRemoteRoutes lists a table with routes to peers, which the dataplane
// takes only with an uplink (root): routeList and peerList directly.
func TestRemoteRoutes(t *testing.T) {
	var b route.Builder
	for pfx, nh := range map[string]route.NextHop{
		"10.244.2.0/24":    {Kind: route.RemoteNode, Tunnel: route.VXLAN, Node: 0},
		"fd00:244:2::/64":  {Kind: route.RemoteNode, Tunnel: route.VXLAN, Node: 0},
		"10.244.3.0/24":    {Kind: route.RemoteNode, Tunnel: route.IPIP, Node: 1},
		"0.0.0.0/0":        {Kind: route.SlowPath},
		"10.244.99.0/24":   {Kind: route.RemoteNode, Tunnel: route.Direct, Node: 7}, // no such peer
		"fd00:244:99::/64": {Kind: route.Drop},
	} {
		if err := b.Insert(netip.MustParsePrefix(pfx), nh); err != nil {
			t.Fatal(err)
		}
	}
	r := pipeline.Routes{Table: b.Build(1), Peers: peersB}
	wantRoutes := api.RouteList{Routes: []api.Route{
		{Prefix: "0.0.0.0/0", Kind: api.RouteSlowPath},
		{Prefix: "10.244.2.0/24", Kind: api.RouteRemoteNode, Peer: "node-b", PeerAddress: "192.168.50.2", Tunnel: api.TunnelVXLAN},
		{Prefix: "10.244.3.0/24", Kind: api.RouteRemoteNode, Peer: "node-c", PeerAddress: "192.168.50.3", Tunnel: api.TunnelIPIP},
		{Prefix: "10.244.99.0/24", Kind: api.RouteRemoteNode, Tunnel: api.TunnelDirect},
		{Prefix: "fd00:244:2::/64", Kind: api.RouteRemoteNode, Peer: "node-b", PeerAddress: "192.168.50.2", Tunnel: api.TunnelVXLAN},
		{Prefix: "fd00:244:99::/64", Kind: api.RouteDrop},
	}}
	if diff := cmp.Diff(wantRoutes, routeList(r)); diff != "" {
		t.Errorf("routeList (-want +got):\n%s", diff)
	}
	wantPeers := []api.Peer{
		{Name: "node-b", Address: "192.168.50.2", Tunnel: api.TunnelVXLAN, NextHopMAC: "02:aa:00:00:00:02", Resolved: true,
			VtepMAC: "02:bb:00:00:00:02", PodCIDRs: []string{"10.244.2.0/24", "fd00:244:2::/64"}},
		{Name: "node-c", Address: "192.168.50.3", Tunnel: api.TunnelIPIP, VtepMAC: "02:42:c0:a8:32:03", PodCIDRs: []string{"10.244.3.0/24"}},
	}
	if diff := cmp.Diff(wantPeers, peerList(r).Peers); diff != "" {
		t.Errorf("peerList (-want +got):\n%s", diff)
	}
	// Before the first SetRoutes there is no table.
	if got := routeList(pipeline.Routes{}); got.Routes == nil || len(got.Routes) != 0 {
		t.Errorf("no table: %+v; want an empty list", got)
	}
	if got := peerList(pipeline.Routes{}); got.Peers == nil || len(got.Peers) != 0 {
		t.Errorf("no table: %+v; want an empty list", got)
	}
}

// TestEndpointJoin joins attached endpoints (as the dataplane lists them)
// with the store's records: who the pod is comes from the record of its
// host interface; a port from a pods file has no record; a record whose
// port is not attached follows, one entry per address.
func TestEndpointJoin(t *testing.T) {
	a4, a6 := netip.MustParseAddr("10.244.1.5"), netip.MustParseAddr("fd00:1::5")
	eps := []pipeline.EndpointInfo{
		{Addr: netip.MustParseAddr("10.244.1.3"), Port: 1, Ifname: "rnfile", MAC: [6]byte{2, 0, 0, 0, 0, 3}},
		{Addr: a4, Port: 0, Ifname: "rnweb", MAC: [6]byte{2, 0, 0, 0, 0, 5}},
		{Addr: a6, Port: 0, Ifname: "rnweb", MAC: [6]byte{2, 0, 0, 0, 0, 5}},
	}
	recs := []ipam.Record{
		{Key: ipam.Key{ContainerID: "c-web", IfName: "eth0"}, IPv4: a4, IPv6: a6, PodNamespace: "shop", PodName: "web",
			HostIfname: "rnweb", PodMAC: "02:00:00:00:00:05"},
		{Key: ipam.Key{ContainerID: "c-gone", IfName: "eth1"}, IPv4: netip.MustParseAddr("10.244.1.2"), PodName: "gone",
			HostIfname: "rngone", PodMAC: "02:00:00:00:00:02"},
		{Key: ipam.Key{ContainerID: "c-new", IfName: "eth0"}, IPv6: netip.MustParseAddr("fd00:1::1"), PodName: "new"},
	}
	zero, one := 0, 1
	want := []api.Endpoint{
		{Address: "10.244.1.3", Interface: "rnfile", Port: &one, MAC: "02:00:00:00:00:03", Attached: true},
		{Address: "10.244.1.5", Interface: "rnweb", Port: &zero, MAC: "02:00:00:00:00:05", Attached: true,
			PodNamespace: "shop", PodName: "web", ContainerID: "c-web", IfName: "eth0"},
		{Address: "fd00:1::5", Interface: "rnweb", Port: &zero, MAC: "02:00:00:00:00:05", Attached: true,
			PodNamespace: "shop", PodName: "web", ContainerID: "c-web", IfName: "eth0"},
		{Address: "10.244.1.2", Interface: "rngone", MAC: "02:00:00:00:00:02", PodName: "gone", ContainerID: "c-gone", IfName: "eth1"},
		{Address: "fd00:1::1", PodName: "new", ContainerID: "c-new", IfName: "eth0"},
	}
	if diff := cmp.Diff(want, endpointList(eps, recs).Endpoints); diff != "" {
		t.Errorf("endpointList (-want +got):\n%s", diff)
	}
}

// TestReasonGroups: the punt list's reasons are punted, the rest of the
// drops dropped, what the fast path delivers forwarded; every reason has
// a group.
func TestReasonGroups(t *testing.T) {
	for r, want := range map[stats.Reason]string{
		stats.Forwarded: api.GroupForwarded, stats.ARPReply: api.GroupForwarded, stats.ToPeer: api.GroupForwarded,
		stats.FromPeer: api.GroupForwarded, stats.HostRx: api.GroupForwarded, stats.HostTx: api.GroupForwarded,
		stats.ToHost: api.GroupPunted, stats.NoRoute: api.GroupPunted, stats.TTLExpired: api.GroupPunted,
		stats.Unreachable: api.GroupPunted, stats.FragNeeded: api.GroupPunted, stats.Fragment: api.GroupPunted,
		stats.ToHostOverLimit: api.GroupDropped, stats.PuntQueueFull: api.GroupDropped, stats.TxRingFull: api.GroupDropped,
		stats.PeerUnresolved: api.GroupDropped, stats.DecapWrongVNI: api.GroupDropped, stats.Multicast: api.GroupDropped,
	} {
		if got := reasonGroups[r]; got != want {
			t.Errorf("%s: group %q, want %q", r, got, want)
		}
	}
	for _, r := range stats.Reasons() {
		if reasonGroups[r] == "" {
			t.Errorf("%s has no group", r)
		}
	}
}
