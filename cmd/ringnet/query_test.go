package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/api"
)

// TestMain lets a test run the command's main in a child process, to see
// its exit status.
func TestMain(m *testing.M) {
	if os.Getenv("RINGNET_TEST_MAIN") == "1" {
		os.Args = append([]string{"ringnet"}, strings.Fields(os.Getenv("RINGNET_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fake is a daemon with fixed answers: a node with two pods (one of them
// not attached), routes and peers to two other nodes (one unresolved) and
// some traffic.
type fake struct{ empty bool }

func (fake) Allocate(context.Context, api.Pod) (api.AllocateResponse, error) {
	return api.AllocateResponse{}, errors.New("not here")
}
func (fake) Attach(context.Context, api.AttachRequest) error { return errors.New("not here") }
func (fake) Release(context.Context, api.Pod) (api.ReleaseResponse, error) {
	return api.ReleaseResponse{}, errors.New("not here")
}
func (fake) Check(context.Context, api.Pod) (api.CheckResponse, error) {
	return api.CheckResponse{}, errors.New("not here")
}
func (fake) GC(context.Context, api.GCRequest) (api.GCResponse, error) {
	return api.GCResponse{}, errors.New("not here")
}

func (f fake) Status(context.Context) (api.Status, error) {
	if f.empty {
		return api.Status{Ready: true, PodCIDRs: []string{"10.244.0.0/24"}, Workers: 1,
			Tables: map[string]int{"endpoints": 0, "ports": 0, "peers": 0, "routes": 0}}, nil
	}
	return fakeStatus, nil
}

func (f fake) Endpoints(context.Context) (api.EndpointList, error) {
	if f.empty {
		return api.EndpointList{Endpoints: []api.Endpoint{}}, nil
	}
	return fakeEndpoints, nil
}

func (f fake) Routes(context.Context) (api.RouteList, error) {
	if f.empty {
		return api.RouteList{Routes: []api.Route{}}, nil
	}
	return fakeRoutes, nil
}

func (f fake) Peers(context.Context) (api.PeerList, error) {
	if f.empty {
		return api.PeerList{Peers: []api.Peer{}}, nil
	}
	return fakePeers, nil
}

func (f fake) Services(context.Context) (api.ServiceList, error) {
	if f.empty {
		return api.ServiceList{Services: []api.Service{}}, nil
	}
	return fakeServices, nil
}

func (f fake) Flows(context.Context) (api.FlowList, error) {
	if f.empty {
		return api.FlowList{Flows: []api.Flow{}, Total: map[string]uint64{}}, nil
	}
	return fakeFlows, nil
}

func (f fake) Policy(context.Context) (api.PolicyList, error) {
	if f.empty {
		return api.PolicyList{Policies: []api.NetworkPolicy{}}, nil
	}
	return fakePolicy, nil
}

// noPolicy is the error of a daemon that enforces no NetworkPolicy.
var noPolicy = &api.Error{Code: api.CodeNotFound, Message: "ringnetd enforces no NetworkPolicy, so every pod may reach and be reached by anything: " +
	"it runs without --cluster and --kubernetes, where policies come from"}

func (f fake) PolicyEndpoint(_ context.Context, pod string) (api.EndpointPolicy, error) {
	switch {
	case f.empty:
		return api.EndpointPolicy{}, noPolicy
	case pod == "shop/web-7d4b9":
		return fakeEndpointPolicy, nil
	case pod == "10.244.1.9":
		return fakeOpenPod, nil
	}
	return api.EndpointPolicy{}, &api.Error{Code: api.CodeNotFound, Message: "no pod " + pod + " among the 5 pods NetworkPolicy knows; ringnet endpoints lists this node's pods"}
}

// PolicyCheck answers for web: allowed on 8080 from the client, denied
// on other ports and from an address; any traffic from web to a database.
func (f fake) PolicyCheck(_ context.Context, r api.PolicyCheckRequest) (api.PolicyVerdict, error) {
	switch {
	case f.empty:
		return api.PolicyVerdict{}, noPolicy
	case r.Protocol == "":
		return fakeAnyVerdict, nil
	}
	v := fakeVerdict
	v.From, v.Protocol, v.Port = fakeClient, r.Protocol, r.Port
	if r.From == "192.168.1.9" {
		v.From, v.Egress = api.PolicyTarget{Addresses: []string{"192.168.1.9"}}, api.PolicyDirectionVerdict{Verdict: api.PolicyNotChecked}
	}
	if r.Port != 8080 || r.From == "192.168.1.9" {
		v.Allowed = false
		v.Ingress.Verdict = api.PolicyDenied
		v.Ingress.Rules = []api.PolicyRuleVerdict{{Policy: "shop/allow-web", Peer: r.From != "192.168.1.9", Ports: []api.PolicyPort{{Protocol: "TCP", Port: 8080}}},
			{Policy: "shop/allow-web", Index: 1}}
	}
	return v, nil
}

func (f fake) Stats(context.Context) (api.Stats, error) {
	st := fakeStats()
	if f.empty {
		st.Ports = []api.PortStats{}
		for i := range st.Reasons {
			st.Reasons[i].Count = 0
		}
	}
	return st, nil
}

var (
	port0, port7 = 0, 7
	fakeStatus   = api.Status{Ready: true, PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}, Ports: 2, Allocated: 2, Workers: 2,
		Uplink: &api.Uplink{Interface: "uplink0", Address: "192.168.50.1", VtepMAC: "02:aa:00:00:00:01", VXLANPort: 8472, VNI: 1},
		Peers:  2, PeersUnresolved: 1, Tables: map[string]int{"endpoints": 2, "ports": 2, "peers": 2, "routes": 3}}
	fakeEndpoints = api.EndpointList{Endpoints: []api.Endpoint{
		{Address: "10.244.1.2", Interface: "rn3f2a9c0d1e4", Port: &port0, MAC: "02:00:00:00:00:0a", Attached: true,
			PodNamespace: "shop", PodName: "web-7d4b9", ContainerID: "0123456789abcdef0123", IfName: "eth0"},
		{Address: "fd00:244:1::2", Interface: "rn3f2a9c0d1e4", Port: &port0, MAC: "02:00:00:00:00:0a", Attached: true,
			PodNamespace: "shop", PodName: "web-7d4b9", ContainerID: "0123456789abcdef0123", IfName: "eth0"},
		{Address: "10.244.1.9", Interface: "rna", Port: &port7, MAC: "02:00:00:00:00:0b", Attached: true},
		{Address: "10.244.1.3", Interface: "rn0000000000b", MAC: "02:00:00:00:00:0c", PodName: "db", ContainerID: "ffff", IfName: "eth0"},
	}}
	fakeRoutes = api.RouteList{Routes: []api.Route{
		{Prefix: "10.244.2.0/24", Kind: api.RouteRemoteNode, Peer: "node-b", PeerAddress: "192.168.50.2", Tunnel: api.TunnelVXLAN},
		{Prefix: "10.244.3.0/24", Kind: api.RouteRemoteNode, Peer: "node-c", PeerAddress: "192.168.60.1", Tunnel: api.TunnelIPIP},
		{Prefix: "10.244.9.9/32", Kind: api.RouteLocalPort, Port: &port7},
		{Prefix: "fd00:244:2::/64", Kind: api.RouteRemoteNode, Peer: "node-b", PeerAddress: "192.168.50.2", Tunnel: api.TunnelVXLAN},
	}}
	fakeServices = api.ServiceList{Generation: 4, Services: []api.Service{
		{VIP: "10.96.0.10", Protocol: "TCP", Port: 80, Backends: []string{"10.244.1.2:8080", "10.244.2.3:8080"}, TableSize: 4093},
		{VIP: "10.96.0.10", Protocol: "UDP", Port: 53, Backends: []string{"10.244.1.2:53"}, AffinitySeconds: 10800, TableSize: 4093},
		{VIP: "192.168.50.1", Protocol: "TCP", Port: 30080, Backends: []string{"10.244.1.2:8080"}, External: true, Local: true, TableSize: 4093},
		{VIP: "192.168.50.100", Protocol: "TCP", Port: 80, Backends: []string{}, External: true},
		{VIP: "fd00:96::10", Protocol: "TCP", Port: 80, Backends: []string{"[fd00:244:1::2]:8080"}, TableSize: 4093},
	}}
	fakeFlows = api.FlowList{Flows: []api.Flow{
		{Time: time.Date(2026, 11, 21, 10, 0, 0, 500e6, time.Local), Verdict: "allowed", Protocol: "TCP", Src: "10.244.1.2:40000",
			Dst: "10.96.0.10:80", TranslatedDst: "10.244.2.3:8080", Interface: "rn3f2a9c0d1e4"},
		{Time: time.Date(2026, 11, 21, 10, 0, 1, 0, time.Local), Verdict: "denied", Protocol: "UDP", Src: "10.244.1.2:5353", Dst: "10.244.2.3:53",
			Interface: "rn3f2a9c0d1e4"},
		{Time: time.Date(2026, 11, 21, 10, 0, 2, 0, time.Local), Verdict: "allowed", Protocol: "TCP", Src: "10.244.1.2:40001",
			Dst: "203.0.113.7:443", TranslatedSrc: "192.168.50.1:61234", Interface: "rn3f2a9c0d1e4"},
	}, Total: map[string]uint64{"allowed": 7, "denied": 1}, Lost: 2}
	fakePolicy = api.PolicyList{Enforcing: true, Generation: 3, Pods: 5, Identities: 4, LocalEndpoints: 3, LocalSelected: 2, LocalUnknown: 1,
		Policies: []api.NetworkPolicy{
			{Namespace: "shop", Name: "allow-web", Types: []string{"Ingress"}, Selected: 2,
				Local: []api.PolicyPod{{Namespace: "shop", Name: "web-7d4b9", Addresses: []string{"10.244.1.2", "fd00:244:1::2"}}}},
			{Namespace: "shop", Name: "deny-egress", Types: []string{"Egress"}, Selected: 1, Local: []api.PolicyPod{}},
			{Namespace: "shop", Name: "typo", Types: []string{}, Local: []api.PolicyPod{}},
		},
		Problems: []string{`networkpolicy shop/bad: spec.podSelector.matchExpressions[0].operator: unknown operator "in"; it is left out and selects no pods until it is fixed`}}
	fakeWeb            = api.PolicyTarget{Namespace: "shop", Name: "web-7d4b9", Addresses: []string{"10.244.1.2", "fd00:244:1::2"}, Local: true}
	fakeClient         = api.PolicyTarget{Namespace: "shop", Name: "client-1", Addresses: []string{"10.244.2.4"}}
	fakeEndpointPolicy = api.EndpointPolicy{Generation: 3, Pod: fakeWeb,
		Labels: map[string]string{"app": "web", "pod-template-hash": "7d4b9"}, NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "shop", "team": "store"},
		Ports: []api.PolicyPort{{Protocol: "TCP", Port: 8080, Name: "http"}}, Identity: 3,
		Ingress: api.PolicyDirection{IsolatedBy: []string{"shop/allow-web"}, Rules: []api.PolicyRule{
			{Policy: "shop/allow-web", Index: 0,
				Peers: []api.PolicyPeer{
					{Selector: "pods role=client in namespace shop", PolicyPods: api.PolicyPods{Pods: []string{"shop/client-1", "shop/client-2"}, PodCount: 2}},
					{Selector: "pods app=prometheus in namespaces team=ops", PolicyPods: api.PolicyPods{
						Pods: []string{"ops/prom-0", "ops/prom-1", "ops/prom-2", "ops/prom-3", "ops/prom-4", "ops/prom-5", "ops/prom-6"}, PodCount: 7}},
				},
				Ports: []api.PolicyPort{{Protocol: "TCP", Name: "http", Resolved: []api.ResolvedPort{{Port: 8080}}}}},
			{Policy: "shop/allow-web", Index: 1,
				Peers: []api.PolicyPeer{{IPBlock: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				Ports: []api.PolicyPort{{Protocol: "UDP", Port: 53}, {Protocol: "TCP", Port: 9000, EndPort: 9100}, {Protocol: "SCTP"}}},
		}},
		Egress: api.PolicyDirection{IsolatedBy: []string{"shop/deny-egress", "shop/web-egress"}, Rules: []api.PolicyRule{
			{Policy: "shop/web-egress", Index: 0,
				Peers: []api.PolicyPeer{{Selector: "all pods in namespaces kubernetes.io/metadata.name=db",
					PolicyPods: api.PolicyPods{Pods: []string{"db/pg-0", "db/pg-1"}, PodCount: 2}}},
				Ports: []api.PolicyPort{{Protocol: "TCP", Name: "pgsql", Resolved: []api.ResolvedPort{
					{Port: 5432, PolicyPods: api.PolicyPods{Pods: []string{"db/pg-0"}, PodCount: 1}},
					{Port: 5433, PolicyPods: api.PolicyPods{Pods: []string{"db/pg-1"}, PodCount: 1}}}},
					{Protocol: "TCP", Name: "metrics"}}},
			{Policy: "shop/web-egress", Index: 1, Peers: []api.PolicyPeer{}, Ports: []api.PolicyPort{}},
		}},
		Problems: []string{"networkpolicy shop/deny-egress: spec.egress[0].to[0]: a peer needs a podSelector, a namespaceSelector or an ipBlock; its pods are isolated and none of its rules apply until it is fixed"}}
	fakeOpenPod = api.EndpointPolicy{Generation: 3, Pod: api.PolicyTarget{Namespace: "shop", Name: "cron-1", Addresses: []string{"10.244.1.9"}},
		Labels: map[string]string{}, NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}, Ports: []api.PolicyPort{}, Identity: 5,
		Ingress: api.PolicyDirection{IsolatedBy: []string{"shop/deny-all"}, Rules: []api.PolicyRule{}},
		Egress:  api.PolicyDirection{IsolatedBy: []string{}, Rules: []api.PolicyRule{}}}
	fakeVerdict = api.PolicyVerdict{Generation: 3, From: fakeClient, To: api.PolicyTarget{Namespace: "shop", Name: "web-7d4b9", Addresses: []string{"10.244.1.2"}, Local: true}, Protocol: "TCP", Port: 8080, Allowed: true,
		Egress: api.PolicyDirectionVerdict{Verdict: api.PolicyNotIsolated},
		Ingress: api.PolicyDirectionVerdict{Verdict: api.PolicyAllowed, IsolatedBy: []string{"shop/allow-web"}, Rules: []api.PolicyRuleVerdict{
			{Policy: "shop/allow-web", Peer: true, Allows: true, Ports: []api.PolicyPort{{Protocol: "TCP", Port: 8080}}},
			{Policy: "shop/allow-web", Index: 1}}}}
	fakeAnyVerdict = api.PolicyVerdict{Generation: 3, From: api.PolicyTarget{Namespace: "shop", Name: "web-7d4b9", Addresses: []string{"10.244.1.2"}, Local: true}, To: api.PolicyTarget{Namespace: "db", Name: "pg-1", Addresses: []string{"10.244.3.5"}}, Allowed: true,
		Egress: api.PolicyDirectionVerdict{Verdict: api.PolicyAllowed, IsolatedBy: []string{"shop/deny-egress", "shop/web-egress"}, Rules: []api.PolicyRuleVerdict{
			{Policy: "shop/web-egress", Peer: true, Allows: true, Ports: []api.PolicyPort{{Protocol: "TCP", Port: 5433}}},
			{Policy: "shop/web-egress", Index: 1, Peer: true, Allows: true}}},
		Ingress: api.PolicyDirectionVerdict{Verdict: api.PolicyNotIsolated}}
	fakePeers = api.PeerList{Peers: []api.Peer{
		{Name: "node-b", Address: "192.168.50.2", Tunnel: api.TunnelVXLAN, NextHopMAC: "02:aa:00:00:00:02", Resolved: true,
			VtepMAC: "02:aa:00:00:00:02", PodCIDRs: []string{"10.244.2.0/24", "fd00:244:2::/64"}},
		{Name: "node-c", Address: "192.168.60.1", Tunnel: api.TunnelIPIP, PodCIDRs: []string{"10.244.3.0/24"}},
	}}
)

func fakeStats() api.Stats {
	return api.Stats{
		Ports: []api.PortStats{
			{ID: 0, Interface: "rn3f2a9c0d1e4", Kind: api.PortPod, RxFrames: 1200, TxFrames: 1180, XSKRxRingFull: 3, XSKRxFillRingEmpty: 1},
			{ID: 1, Interface: "uplink0", Kind: api.PortUplink, RxFrames: 800, TxFrames: 790},
			{ID: 0xffff, Interface: "ringnet0", Kind: api.PortHost, RxFrames: 12, TxFrames: 15},
		},
		Workers: []api.WorkerStats{{ID: 0, Forwarded: 1000, Punted: 17, Dropped: 3, Busy: 0.125}, {ID: 1, Forwarded: 960, Busy: 0}},
		Reasons: []api.ReasonCount{
			{Reason: "forwarded", Group: api.GroupForwarded, Count: 1170},
			{Reason: "arp_reply", Group: api.GroupForwarded, Count: 0},
			{Reason: "ttl_expired", Group: api.GroupPunted, Count: 2},
			{Reason: "no_route", Group: api.GroupPunted, Count: 15},
			{Reason: "to_host", Group: api.GroupPunted, Count: 0},
			{Reason: "multicast", Group: api.GroupDropped, Count: 3},
			{Reason: "to_peer", Group: api.GroupForwarded, Count: 790},
			{Reason: "peer_unresolved", Group: api.GroupDropped, Count: 0},
		},
	}
}

// serveFake serves h on a unix socket and returns the socket's path.
func serveFake(t *testing.T, h api.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ringnetd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// ringnet runs the command with args and returns what it printed.
func ringnet(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(args, &o, &e)
	return o.String(), e.String(), err
}

func TestTables(t *testing.T) {
	sock := serveFake(t, fake{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, `
ready                true
pod CIDRs            10.244.1.0/24, fd00:244:1::/64
pods with addresses  2
ports attached       2
workers              2
uplink               uplink0, address 192.168.50.1, VTEP MAC 02:aa:00:00:00:01, VXLAN port 8472, VNI 1
peers                2 (1 unresolved: see ringnet peers)
table entries        endpoints 2, peers 2, ports 2, routes 3
`},
		{[]string{"endpoints"}, `
ADDRESS        PORT  INTERFACE      MAC                POD             CONTAINER          STATE
10.244.1.2     0     rn3f2a9c0d1e4  02:00:00:00:00:0a  shop/web-7d4b9  0123456789ab/eth0  attached
fd00:244:1::2  0     rn3f2a9c0d1e4  02:00:00:00:00:0a  shop/web-7d4b9  0123456789ab/eth0  attached
10.244.1.9     7     rna            02:00:00:00:00:0b  -               -                  attached
10.244.1.3     -     rn0000000000b  02:00:00:00:00:0c  db              ffff/eth0          not attached
`},
		{[]string{"routes"}, `
PREFIX           KIND        PEER                 PEER ADDRESS  TUNNEL
10.244.2.0/24    RemoteNode  node-b               192.168.50.2  VXLAN
10.244.3.0/24    RemoteNode  node-c               192.168.60.1  IPIP
10.244.9.9/32    LocalPort   (this node: port 7)  -             -
fd00:244:2::/64  RemoteNode  node-b               192.168.50.2  VXLAN
`},
		{[]string{"peers"}, `
NAME    ADDRESS       TUNNEL  NEXT-HOP MAC       VTEP MAC           POD CIDRS
node-b  192.168.50.2  VXLAN   02:aa:00:00:00:02  02:aa:00:00:00:02  10.244.2.0/24,fd00:244:2::/64
node-c  192.168.60.1  IPIP    unresolved         -                  10.244.3.0/24
`},
		{[]string{"services"}, `
VIP             PROTOCOL  PORT   BACKENDS                         AFFINITY  EXTERNAL  MAGLEV
10.96.0.10      TCP       80     10.244.1.2:8080,10.244.2.3:8080  -         -         4093
10.96.0.10      UDP       53     10.244.1.2:53                    10800s    -         4093
192.168.50.1    TCP       30080  10.244.1.2:8080                  -         Local     4093
192.168.50.100  TCP       80     none                             -         Cluster   -
fd00:96::10     TCP       80     [fd00:244:1::2]:8080             -         -         4093
`},
		{[]string{"flows"}, `
TIME          VERDICT  PROTOCOL  SOURCE            DESTINATION      TRANSLATED TO         INTERFACE
10:00:00.500  allowed  TCP       10.244.1.2:40000  10.96.0.10:80    > 10.244.2.3:8080     rn3f2a9c0d1e4
10:00:01.000  denied   UDP       10.244.1.2:5353   10.244.2.3:53    -                     rn3f2a9c0d1e4
10:00:02.000  allowed  TCP       10.244.1.2:40001  203.0.113.7:443  192.168.50.1:61234 >  rn3f2a9c0d1e4

since ringnetd started: allowed 7, denied 1; lost (ringnetd fell behind): 2
`},
		{[]string{"flows", "--verdict", "denied"}, `
TIME          VERDICT  PROTOCOL  SOURCE           DESTINATION    TRANSLATED TO  INTERFACE
10:00:01.000  denied   UDP       10.244.1.2:5353  10.244.2.3:53  -              rn3f2a9c0d1e4

since ringnetd started: allowed 7, denied 1; lost (ringnetd fell behind): 2
`},
		{[]string{"flows", "-n", "1"}, `
TIME          VERDICT  PROTOCOL  SOURCE            DESTINATION      TRANSLATED TO         INTERFACE
10:00:02.000  allowed  TCP       10.244.1.2:40001  203.0.113.7:443  192.168.50.1:61234 >  rn3f2a9c0d1e4

since ringnetd started: allowed 7, denied 1; lost (ringnetd fell behind): 2
`},
		{[]string{"policy"}, `
generation       3
policies         3
pods             5 (4 identities)
local endpoints  3, 2 selected by a policy, 1 of no pod the policy knows (nothing selects them; peers match them by ipBlock only)

NAMESPACE  NAME         TYPES    SELECTED  LOCAL PODS
shop       allow-web    Ingress  2         shop/web-7d4b9 (10.244.1.2,fd00:244:1::2)
shop       deny-egress  Egress   1         -
shop       typo         -        0         -

problems:
  networkpolicy shop/bad: spec.podSelector.matchExpressions[0].operator: unknown operator "in"; it is left out and selects no pods until it is fixed
`},
		{[]string{"policy", "shop/web-7d4b9"}, `
pod          shop/web-7d4b9 (on this node)
addresses    10.244.1.2, fd00:244:1::2
labels       app=web, pod-template-hash=7d4b9
namespace    shop: kubernetes.io/metadata.name=shop, team=store
named ports  http 8080/TCP
identity     3 (policy generation 3)

ingress: isolated by shop/allow-web: allowed only what one of these rules allows
  shop/allow-web ingress[0]
    from   pods role=client in namespace shop: shop/client-1, shop/client-2
           pods app=prometheus in namespaces team=ops: 7 pods: ops/prom-0, ops/prom-1, ops/prom-2, ops/prom-3, ops/prom-4, +2 more
    ports  TCP http (8080 on this pod)
  shop/allow-web ingress[1]
    from   ipBlock 192.168.0.0/16 except 192.168.1.0/24
    ports  UDP 53, TCP 9000-9100, SCTP every port

egress: isolated by shop/deny-egress, shop/web-egress: allowed only what one of these rules allows
  shop/web-egress egress[0]
    to     all pods in namespaces kubernetes.io/metadata.name=db: db/pg-0, db/pg-1
    ports  TCP pgsql (5432 on db/pg-0; 5433 on db/pg-1), TCP metrics (no pod has it: allows nothing)
  shop/web-egress egress[1]
    to     every peer: pods and addresses outside the cluster
    ports  every protocol and port

problems:
  networkpolicy shop/deny-egress: spec.egress[0].to[0]: a peer needs a podSelector, a namespaceSelector or an ipBlock; its pods are isolated and none of its rules apply until it is fixed
`},
		{[]string{"policy", "10.244.1.9"}, `
pod          shop/cron-1 (not on this node)
addresses    10.244.1.9
labels       -
namespace    shop: kubernetes.io/metadata.name=shop
named ports  -
identity     5 (policy generation 3)

ingress: isolated by shop/deny-all: nothing is allowed (they have no ingress rules)

egress: not isolated: all traffic allowed (no NetworkPolicy selects it for egress)
`},
		{[]string{"policy", "--from", "shop/client-1", "--to", "shop/web-7d4b9", "--port", "8080"}, `
TCP 8080 from shop/client-1 (10.244.2.4) to shop/web-7d4b9 (10.244.1.2, on this node): allowed

egress of shop/client-1 (decided on its node): not isolated: all traffic allowed (no NetworkPolicy selects it for egress)

ingress of shop/web-7d4b9 (decided on this node): allowed by shop/allow-web ingress[0]
  isolated by shop/allow-web
  shop/allow-web ingress[0]: allows it
  shop/allow-web ingress[1]: its peers do not include shop/client-1
`},
		{[]string{"policy", "--from", "shop/client-1", "--to", "shop/web-7d4b9", "--port", "80/tcp"}, `
TCP 80 from shop/client-1 (10.244.2.4) to shop/web-7d4b9 (10.244.1.2, on this node): denied

egress of shop/client-1 (decided on its node): not isolated: all traffic allowed (no NetworkPolicy selects it for egress)

ingress of shop/web-7d4b9 (decided on this node): denied
  isolated by shop/allow-web; no rule allows it
  shop/allow-web ingress[0]: allows shop/client-1 only TCP 8080
  shop/allow-web ingress[1]: its peers do not include shop/client-1
`},
		{[]string{"policy", "--from", "192.168.1.9", "--to", "shop/web-7d4b9", "--port", "8080/TCP"}, `
TCP 8080 from 192.168.1.9 to shop/web-7d4b9 (10.244.1.2, on this node): denied

egress of 192.168.1.9: not checked: it is no pod NetworkPolicy knows

ingress of shop/web-7d4b9 (decided on this node): denied
  isolated by shop/allow-web; no rule allows it
  shop/allow-web ingress[0]: its peers do not include 192.168.1.9
  shop/allow-web ingress[1]: its peers do not include 192.168.1.9
`},
		{[]string{"policy", "--from", "shop/web-7d4b9", "--to", "db/pg-1"}, `
any traffic from shop/web-7d4b9 (10.244.1.2, on this node) to db/pg-1 (10.244.3.5): allowed, on the ports each way's rules say

egress of shop/web-7d4b9 (decided on this node): allowed
  isolated by shop/deny-egress, shop/web-egress
  shop/web-egress egress[0]: allows db/pg-1 TCP 5433
  shop/web-egress egress[1]: allows db/pg-1 every protocol and port

ingress of db/pg-1 (decided on its node): not isolated: all traffic allowed (no NetworkPolicy selects it for ingress)
`},
		{[]string{"stats"}, `
PORT           ID     KIND    RX FRAMES  TX FRAMES  XSK DROPS  FILL RING EMPTY
rn3f2a9c0d1e4  0      pod     1200       1180       3          1
uplink0        1      uplink  800        790        0          0
ringnet0       65535  host    12         15         0          0

WORKER  FORWARDED  PUNTED  DROPPED  BUSY
0       1000       17      3        12.5%
1       960        0       0        0.0%

GROUP      REASON       FRAMES
forwarded  forwarded    1170
forwarded  to_peer      790
punted     ttl_expired  2
punted     no_route     15
dropped    multicast    3

total: forwarded 1960, punted 17, dropped 3 (reasons with no frames left out; --all lists them)
`},
		{[]string{"stats", "--all"}, `
PORT           ID     KIND    RX FRAMES  TX FRAMES  XSK DROPS  FILL RING EMPTY
rn3f2a9c0d1e4  0      pod     1200       1180       3          1
uplink0        1      uplink  800        790        0          0
ringnet0       65535  host    12         15         0          0

WORKER  FORWARDED  PUNTED  DROPPED  BUSY
0       1000       17      3        12.5%
1       960        0       0        0.0%

GROUP      REASON           FRAMES
forwarded  forwarded        1170
forwarded  arp_reply        0
forwarded  to_peer          790
punted     ttl_expired      2
punted     no_route         15
punted     to_host          0
dropped    multicast        3
dropped    peer_unresolved  0

total: forwarded 1960, punted 17, dropped 3
`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, err := ringnet(t, append(tc.args, "--socket", sock)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if diff := cmp.Diff(strings.TrimPrefix(tc.want, "\n"), out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEmptyTables: a node without pods or peers says so in words.
func TestEmptyTables(t *testing.T) {
	sock := serveFake(t, fake{empty: true})
	for cmd, want := range map[string]string{
		"endpoints": "No endpoints: no pod has an address or a port on this node.\n",
		"routes":    "No routes: no other node is known",
		"peers":     "No peers: no other node is known",
		"status":    "uplink               none (not in a cluster: no --cluster or --kubernetes)\npeers                0\n",
		"stats":     "(no ports)\n",
		"services":  "No services: ringnetd has published no service table (its cluster file lists no services, or it runs without --cluster).\n",
		"flows":     "No flows: the fast path records connections where it tracks them",
		"policy":    "No NetworkPolicy enforced: ringnetd has published no policy",
	} {
		out, _, err := ringnet(t, cmd, "--socket", sock)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("ringnet %s: %v, printed\n%s\nwant it to contain %q", cmd, err, out, want)
		}
	}
	out, _, _ := ringnet(t, "stats", "--socket", sock)
	if !strings.Contains(out, "(no frames yet)") {
		t.Errorf("stats with no frames printed\n%s", out)
	}
	// A table published with no entries is not "no table".
	var b bytes.Buffer
	if err := servicesTable(&b, api.ServiceList{Generation: 5, Services: []api.Service{}}); err != nil ||
		b.String() != "No services: the service table (generation 5) is empty.\n" {
		t.Errorf("services, empty table: %v, printed %q", err, b.String())
	}
}

// TestJSON: --output json (and -o json) prints what the daemon answered,
// stats without the reasons with no frames unless --all.
func TestJSON(t *testing.T) {
	sock := serveFake(t, fake{})
	check := func(args []string, got, want any) {
		t.Helper()
		out, errOut, err := ringnet(t, append(args, "--socket", sock)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
		if err := json.Unmarshal([]byte(out), got); err != nil {
			t.Fatalf("%v printed no JSON: %v\n%s", args, err, out)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%v (-want +got):\n%s", args, diff)
		}
	}
	check([]string{"status", "--output", "json"}, &api.Status{}, &fakeStatus)
	check([]string{"endpoints", "-o", "json"}, &api.EndpointList{}, &fakeEndpoints)
	check([]string{"routes", "-o=json"}, &api.RouteList{}, &fakeRoutes)
	check([]string{"peers", "--output=json"}, &api.PeerList{}, &fakePeers)
	check([]string{"services", "-o", "json"}, &api.ServiceList{}, &fakeServices)
	check([]string{"flows", "-o", "json", "-n", "0"}, &api.FlowList{}, &fakeFlows)
	check([]string{"policy", "-o", "json"}, &api.PolicyList{}, &fakePolicy)
	check([]string{"policy", "shop/web-7d4b9", "-o", "json"}, &api.EndpointPolicy{}, &fakeEndpointPolicy)
	check([]string{"policy", "-o", "json", "--from", "shop/web-7d4b9", "--to", "db/pg-1"}, &api.PolicyVerdict{}, &fakeAnyVerdict)
	all := fakeStats()
	check([]string{"stats", "-o", "json", "--all"}, &api.Stats{}, &all)
	nonZero := fakeStats()
	nonZero.Reasons = []api.ReasonCount{nonZero.Reasons[0], nonZero.Reasons[2], nonZero.Reasons[3], nonZero.Reasons[5], nonZero.Reasons[6]}
	check([]string{"stats", "-o", "json"}, &api.Stats{}, &nonZero)
}

func TestErrors(t *testing.T) {
	sock := serveFake(t, fake{})
	empty := serveFake(t, fake{empty: true})
	down := filepath.Join(t.TempDir(), "nobody.sock")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"endpoints", "--socket", down}, []string{"ringnetd is not reachable at " + down, "start it in the node's network namespace: ringnetd --pod-cidr", "--socket"}},
		{[]string{"status", "--socket", down}, []string{"ringnetd is not reachable", "ringnetd --pod-cidr"}},
		{[]string{"routes", "--socket", sock, "-o", "yaml"}, []string{`--output "yaml": want table or json`}},
		{[]string{"peers", "--socket", sock, "extra"}, []string{"ringnet peers takes no arguments"}},
		{[]string{"stats", "--socket", sock, "--bogus"}, []string{"flag provided but not defined: -bogus"}},
		{[]string{"policy", "--socket", sock, "shop/a", "shop/b"}, []string{`ringnet policy takes one pod, got ["shop/a" "shop/b"]`}},
		{[]string{"policy", "--socket", sock, "--from", "shop/a"}, []string{"--from and --to go together"}},
		{[]string{"policy", "shop/web", "--socket", sock, "--from", "a", "--to", "b"}, []string{"a pod, or --from and --to, not both"}},
		{[]string{"policy", "--socket", sock, "--port", "80"}, []string{"--port goes with --from and --to"}},
		{[]string{"policy", "--socket", sock, "--from", "a", "--to", "b", "--port", "http"}, []string{`--port "http": want PORT[/PROTOCOL] with a port 1-65535, or ICMP`}},
		{[]string{"policy", "--socket", sock, "--from", "a", "--to", "b", "--port", "80/icmp"}, []string{`protocol "ICMP": want TCP, UDP or SCTP`}},
		{[]string{"policy", "--socket", sock, "shop/nope"}, []string{"no pod shop/nope", "ringnet endpoints"}},
		{[]string{"policy", "--socket", empty, "shop/web-7d4b9"}, []string{"enforces no NetworkPolicy", "--cluster and --kubernetes"}},
		{[]string{"policy", "--socket", empty, "--from", "a", "--to", "b"}, []string{"enforces no NetworkPolicy"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{nil, []string{"no command"}},
	} {
		_, _, err := ringnet(t, tc.args...)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", tc.args, err, w)
			}
		}
	}
	// A daemon older than the command.
	old := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", old)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if _, _, err := ringnet(t, "peers", "--socket", old); err == nil || !strings.Contains(err.Error(), "does not serve this request") ||
		!strings.Contains(err.Error(), "as new as this ringnet") {
		t.Errorf("old daemon: %v", err)
	}
	// --help is no error.
	if _, errOut, err := ringnet(t, "stats", "--help"); err != nil || !strings.Contains(errOut, "-all") || !strings.Contains(errOut, "-socket") {
		t.Errorf("stats --help: %v\n%s", err, errOut)
	}
}

// TestExitStatus: a failure exits with status 1.
func TestExitStatus(t *testing.T) {
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "RINGNET_TEST_MAIN=1", "RINGNET_TEST_ARGS=status --socket "+filepath.Join(t.TempDir(), "none"))
	var ee *exec.ExitError
	if _, err := c.CombinedOutput(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("ringnet status with no daemon: %v; want exit status 1", err)
	}
}
