package main

// End-to-end tests of Services and egress masquerade: ringnetd on two
// nodes with services in the cluster file, TCP servers in pods that greet
// each connection with their name and the client address they see, a
// client pod, and a host outside the cluster (a plain namespace on the
// underlay) for NodePorts and masquerade.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/bench/internal/testbed"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
)

// greeter serves topo.Greeter on port in namespace ns until the test
// ends.
func greeter(t *testing.T, ns, name string, port int) {
	t.Helper()
	ln, err := topo.Greeter(ns, name, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

// udpGreeter answers every UDP datagram to port in namespace ns with its
// name, until the test ends.
func udpGreeter(t *testing.T, ns, name string, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := topo.Do(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name), from)
		}
	}()
}

// udpFlow is a UDP socket connected to a service: one flow, whose 5-tuple
// stays while the socket lives.
type udpFlow struct{ c net.Conn }

func newUDPFlow(t *testing.T, ns string, addr netip.AddrPort) *udpFlow {
	t.Helper()
	var c net.Conn
	if err := topo.Do(ns, func() (err error) {
		c, err = net.Dial("udp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpFlow{c}
}

// who asks the flow's backend its name ("" if no answer within a second).
func (f *udpFlow) who() string {
	buf := make([]byte, 64)
	for range 3 {
		f.c.SetDeadline(time.Now().Add(time.Second))
		f.c.Write([]byte("who"))
		if n, err := f.c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

// spread makes n connections from ns to addr and counts them by the
// backend that answered; it fails the test if a backend saw the client as
// other than client.
func spread(t *testing.T, ns string, addr netip.AddrPort, n int, client netip.Addr) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		server, saw := greet(t, ns, addr)
		if saw != client {
			t.Fatalf("connecting from %s to %v, %s saw the client as %v, want %v", ns, addr, server, saw, client)
		}
		seen[server]++
	}
	return seen
}

// greet dials and closes, returning who answered and whom they saw.
func greet(t *testing.T, ns string, addr netip.AddrPort) (server string, client netip.Addr) {
	t.Helper()
	s, err := topo.Dial(ns, addr)
	if err != nil {
		t.Fatalf("connect from %s to %v: %v", ns, addr, err)
	}
	s.Conn.Close()
	return s.Server, s.Client
}

const servicesBase = `
services:
- name: web
  clusterIPs: [10.96.0.10]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}]
  endpoints: %s
- name: web-local
  clusterIPs: [10.96.0.11]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30081}]
  externalTrafficPolicy: Local
  endpoints: %s
- name: sticky
  clusterIPs: [10.96.0.12]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
  sessionAffinity: ClientIP
  endpoints: %s
- name: self
  clusterIPs: [10.96.0.13]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
  endpoints: %s
- name: public
  clusterIPs: [10.96.0.15]
  externalIPs: [192.168.50.100]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
  endpoints: %[2]s
- name: dns
  clusterIPs: [10.96.0.14]
  ports: [{name: dns, protocol: UDP, port: 53, targetPort: 5353}]
  endpoints: %[1]s
`

func epList(eps ...string) string { return "[" + strings.Join(eps, ", ") + "]" }

func epYAML(addr netip.Addr, node string) string {
	return fmt.Sprintf("{address: %s, node: %s}", addr, node)
}

func TestServices(t *testing.T) {
	c := startCluster(t, "vxlan", []testbed.NodeSpec{
		{Name: "na", Addr: "192.168.50.1/24", Pod4: "10.244.1.0/24"},
		{Name: "nb", Addr: "192.168.50.2/24", Pod4: "10.244.2.0/24"},
	})
	ext, err := c.Topo.AddNode("ext", netip.MustParsePrefix("192.168.50.9/24"), topo.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The outside host's uplink is a veth standing in for a NIC: make its
	// kernel finish checksums before it (see testbed.UplinkChecksums).
	if err := testbed.UplinkChecksums(t.Context(), ext); err != nil {
		t.Fatal(err)
	}
	a1, a2, b1 := c.addPod("na", "a1"), c.addPod("na", "a2"), c.addPod("nb", "b1")
	client := c.addPod("na", "client")
	for _, p := range []struct{ ns, name string }{{a1.NS, "a1"}, {a2.NS, "a2"}, {b1.NS, "b1"}} {
		greeter(t, p.ns, p.name, 8080)
		udpGreeter(t, p.ns, p.name, 5353)
	}
	all := epList(epYAML(a1.IPv4, "na"), epYAML(a2.IPv4, "na"), epYAML(b1.IPv4, "nb"))
	base, err := os.ReadFile(c.File)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(eps string) {
		t.Helper()
		file := string(base) + fmt.Sprintf(servicesBase, eps, all, all, epList(epYAML(a1.IPv4, "na")))
		if err := os.WriteFile(c.File, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, name := range c.Order {
			if err := c.Daemons[name].Reload(); err != nil {
				t.Fatal(err)
			}
		}
	}
	reload(all)
	web := netip.MustParseAddrPort("10.96.0.10:80")
	if err := topo.WaitGreeting(client.NS, web, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("ClusterIP spreads over every backend", func(t *testing.T) {
		seen := spread(t, client.NS, web, 60, client.IPv4)
		if len(seen) != 3 {
			t.Errorf("60 connections reached %v; want all of a1, a2, b1", seen)
		}
		// Each connection is in node na's flow log, translated to a
		// backend.
		backends := map[string]bool{}
		for _, p := range []*ringnode.Pod{a1, a2, b1} {
			backends[netip.AddrPortFrom(p.IPv4, 8080).String()] = true
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			fl, err := api.NewClient(c.Daemons["na"].Socket).Flows(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, f := range fl.Flows {
				if f.Verdict == "allowed" && f.Dst == web.String() && strings.HasPrefix(f.Src, client.IPv4.String()+":") && backends[f.TranslatedDst] {
					n++
				}
			}
			if n >= 60 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("na's flow log has %d allowed flows from the client to %v translated to a backend, want 60 or more:\n%+v", n, web, fl)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		if server, _ := greet(t, a1.NS, netip.MustParseAddrPort("10.96.0.13:80")); server != "a1" {
			t.Errorf("a1 reaching its own service got %s", server)
		}
	})
	t.Run("session affinity", func(t *testing.T) {
		seen := map[string]int{}
		for range 20 {
			server, _ := greet(t, client.NS, netip.MustParseAddrPort("10.96.0.12:80"))
			seen[server]++
		}
		if len(seen) != 1 {
			t.Errorf("sessionAffinity ClientIP: 20 connections reached %v, want one backend", seen)
		}
	})
	t.Run("ClusterIP from the node itself", func(t *testing.T) {
		seen := spread(t, c.Nodes["na"].NS, web, 30, c.Nodes["na"].Address.Addr())
		if len(seen) != 3 {
			t.Errorf("30 connections from the node reached %v, want all three backends", seen)
		}
	})
	t.Run("NodePort from outside the cluster", func(t *testing.T) {
		for _, node := range []string{"na", "nb"} {
			// externalTrafficPolicy Cluster: masqueraded to the node the
			// client reached.
			addr := netip.AddrPortFrom(c.Nodes[node].Address.Addr(), 30080)
			seen := spread(t, ext.NS, addr, 30, c.Nodes[node].Address.Addr())
			if len(seen) != 3 {
				t.Errorf("via %s: 30 connections reached %v, want all three backends", node, seen)
			}
		}
	})
	t.Run("externalIP from outside the cluster", func(t *testing.T) {
		// The network routes the external IP to a node (here: na), as an
		// administrator or a LoadBalancer implementation would.
		if _, err := ext.Output(t.Context(), "ip", "route", "replace", "192.168.50.100/32", "via", "192.168.50.1"); err != nil {
			t.Fatal(err)
		}
		seen := spread(t, ext.NS, netip.MustParseAddrPort("192.168.50.100:80"), 30, c.Nodes["na"].Address.Addr())
		if len(seen) != 3 {
			t.Errorf("30 connections to the external IP reached %v, want all three backends", seen)
		}
	})
	t.Run("NodePort externalTrafficPolicy Local", func(t *testing.T) {
		for range 10 {
			server, saw := greet(t, ext.NS, netip.MustParseAddrPort("192.168.50.2:30081"))
			if server != "b1" || saw != ext.Address.Addr() {
				t.Fatalf("via nb: %s saw the client as %v; want b1 (nb's only backend) seeing %v", server, saw, ext.Address.Addr())
			}
		}
	})
	t.Run("egress masquerade", func(t *testing.T) {
		greeter(t, ext.NS, "ext", 9090)
		_, saw := greet(t, client.NS, netip.MustParseAddrPort("192.168.50.9:9090"))
		if saw != c.Nodes["na"].Address.Addr() {
			t.Errorf("a server outside the cluster saw the pod as %v, want na's address", saw)
		}
	})
	t.Run("removing a backend", func(t *testing.T) {
		// UDP flows: those on the removed backend move, the others stay.
		var flows []*udpFlow
		before := map[*udpFlow]string{}
		for range 30 {
			f := newUDPFlow(t, client.NS, netip.MustParseAddrPort("10.96.0.14:53"))
			if before[f] = f.who(); before[f] == "" {
				t.Fatal("a UDP flow to the service got no answer")
			}
			flows = append(flows, f)
		}
		var open []*topo.Session
		for range 30 {
			s, err := topo.Dial(client.NS, web)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Conn.Close()
			open = append(open, s)
		}
		reload(epList(epYAML(a1.IPv4, "na"), epYAML(b1.IPv4, "nb")))
		// The file is applied when new connections stop reaching a2.
		deadline := time.Now().Add(15 * time.Second)
		for {
			if server, _ := greet(t, client.NS, web); server != "a2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a2 still gets new connections 15 s after its removal")
			}
			time.Sleep(100 * time.Millisecond)
		}
		for range 30 {
			if server, _ := greet(t, client.NS, web); server == "a2" {
				t.Fatal("a new connection reached the removed backend a2")
			}
		}
		moved := 0
		for _, f := range flows {
			now := f.who()
			switch was := before[f]; {
			case now == "" || now == "a2":
				t.Errorf("a UDP flow that was on %s now reaches %q after a2's removal", was, now)
			case was != "a2" && now != was:
				t.Errorf("a UDP flow moved from %s to %s, though %s stayed", was, now, was)
			case was == "a2":
				moved++
			}
		}
		if moved == 0 {
			t.Logf("no UDP flow was on a2 (by chance): nothing moved")
		}
		// Open connections keep their backend, a2's included (it still
		// runs: its connections drain).
		for _, s := range open {
			if err := s.Echo(); err != nil {
				t.Errorf("an open connection to %s broke after a2's removal: %v", s.Server, err)
			}
		}
	})
}
