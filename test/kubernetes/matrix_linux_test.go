package kubernetes_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/topo"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// matrixPod is one pod of the reachability matrix: namespace x, y or z,
// name a, b or c (labelled pod=<name>), on node na or nb.
type matrixPod struct {
	ns, name, node string
	pod            *ringnode.Pod
}

func (p *matrixPod) String() string { return p.ns + "/" + p.name }

// mprobe is one cell of the matrix: can from reach to on proto/port?
type mprobe struct {
	from, to *matrixPod
	proto    string // "TCP" or "UDP"
	port     int
}

func (p mprobe) String() string { return fmt.Sprintf("%v -> %v %s/%d", p.from, p.to, p.proto, p.port) }

// matrixCase is a set of policies and the truth table they should give.
type matrixCase struct {
	name     string
	policies []*networkingv1.NetworkPolicy
	allowed  func(p mprobe) bool
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func netpolicy(ns, name string, podSel *metav1.LabelSelector, types []networkingv1.PolicyType,
	in []networkingv1.NetworkPolicyIngressRule, out []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *podSel, PolicyTypes: types, Ingress: in, Egress: out}}
}

func port(proto corev1.Protocol, p intstr.IntOrString, end int32) networkingv1.NetworkPolicyPort {
	np := networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
	if end != 0 {
		np.EndPort = &end
	}
	return np
}

var (
	ingress = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egress  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
)

// matrixCases mirror the upstream NetworkPolicy e2e suite's shapes. The
// truth tables are written out from the API's semantics, independently of
// ringnet's compiler.
var matrixCases = []matrixCase{
	{"no policy", nil, func(mprobe) bool { return true }},
	{"default deny ingress in x",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "deny", sel(), ingress, nil, nil)},
		func(p mprobe) bool { return p.to.ns != "x" }},
	{"default deny egress in x",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "deny", sel(), egress, nil, nil)},
		func(p mprobe) bool { return p.from.ns != "x" }},
	{"allow all ingress in x",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "all", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{{}}, nil)},
		func(mprobe) bool { return true }},
	{"x accepts namespace y only",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "from-y", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || p.from.ns == "y" }},
	{"x/a accepts pod b of any namespace",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "a-from-b", sel("pod", "a"), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel(), PodSelector: sel("pod", "b")}}}}, nil)},
		func(p mprobe) bool { return p.to.String() != "x/a" || p.from.name == "b" }},
	{"x/a accepts y/b only (both selectors in one peer)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "a-from-yb", sel("pod", "a"), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y"), PodSelector: sel("pod", "b")}}}}, nil)},
		func(p mprobe) bool { return p.to.String() != "x/a" || p.from.String() == "y/b" }},
	{"x/a accepts y (namespace) or pod b of x (two peers)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "a-from-y-or-b", sel("pod", "a"), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}, {PodSelector: sel("pod", "b")}}}}, nil)},
		func(p mprobe) bool { return p.to.String() != "x/a" || p.from.ns == "y" || p.from.String() == "x/b" }},
	{"x accepts TCP 80 only",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "tcp80", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromInt32(80), 0)}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || (p.proto == "TCP" && p.port == 80) }},
	{"x accepts UDP 81 only",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "udp81", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, intstr.FromInt32(81), 0)}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || (p.proto == "UDP" && p.port == 81) }},
	{"x accepts TCP 80-81 (endPort)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "range", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromInt32(80), 81)}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || p.proto == "TCP" }},
	{"x accepts its named port serve-81 (TCP 81)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "named", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, intstr.FromString("serve-81"), 0)}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || (p.proto == "TCP" && p.port == 81) }},
	{"x accepts node na's pod CIDR (ipBlock 10.244.0.0/16 except 10.244.2.0/24)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "block", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.0.0/16", Except: []string{"10.244.2.0/24"}}}}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || p.from.node == "na" }},
	{"two policies unioned: x accepts y, and z",
		[]*networkingv1.NetworkPolicy{
			netpolicy("x", "from-y", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}}}, nil),
			netpolicy("x", "from-z", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "z")}}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || p.from.ns != "x" }},
	{"x may send to y only (egress)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "to-y", sel(), egress, nil, []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "y")}}}})},
		func(p mprobe) bool { return p.from.ns != "x" || p.to.ns == "y" }},
	{"x/b may send UDP only (egress ports)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "b-udp", sel("pod", "b"), egress, nil, []networkingv1.NetworkPolicyEgressRule{
			{Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr(corev1.ProtocolUDP)}}}})},
		func(p mprobe) bool { return p.from.String() != "x/b" || p.proto == "UDP" }},
	{"ingress and egress: y/c accepts x only and sends to z only",
		[]*networkingv1.NetworkPolicy{netpolicy("y", "c", sel("pod", "c"), []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			[]networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "x")}}}},
			[]networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "z")}}}})},
		func(p mprobe) bool {
			return (p.to.String() != "y/c" || p.from.ns == "x") && (p.from.String() != "y/c" || p.to.ns == "z")
		}},
	{"matchExpressions: x accepts pods whose label pod is not in (a)",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "not-a", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel(), PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "pod", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"a"}}}}}}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || p.from.name != "a" }},
	{"a policy in y does not apply to x",
		[]*networkingv1.NetworkPolicy{netpolicy("y", "deny", sel(), ingress, nil, nil)},
		func(p mprobe) bool { return p.to.ns != "y" }},
	{"empty podSelector in a peer: x accepts every pod of its own namespace",
		[]*networkingv1.NetworkPolicy{netpolicy("x", "own", sel(), ingress, []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel()}}}}, nil)},
		func(p mprobe) bool { return p.to.ns != "x" || p.from.ns == "x" }},
}

// TestReachabilityMatrix: namespaces x, y, z with pods a, b, c spread over
// two nodes; for each case the policies are created through the API and
// TCP and UDP on ports 80 and 81 are probed between every pair, against
// the case's truth table.
func TestReachabilityMatrix(t *testing.T) {
	kc := startKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client := kc.api.Client()
	var pods []*matrixPod
	for i, ns := range []string{"x", "y", "z"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"ns": ns}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for j, name := range []string{"a", "b", "c"} {
			node := []string{"na", "nb"}[(i+j)%2]
			p, err := kc.daemons[node].AddPod(ctx, ns+"-"+name)
			if err != nil {
				t.Fatal(err)
			}
			mp := &matrixPod{ns: ns, name: name, node: node, pod: p}
			pods = append(pods, mp)
			po := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"pod": name}},
				Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox",
					Ports: []corev1.ContainerPort{{Name: "serve-80", ContainerPort: 80}, {Name: "serve-81", ContainerPort: 81}}}}}}
			po, err = client.CoreV1().Pods(ns).Create(ctx, po, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			po.Status.Phase = corev1.PodRunning
			po.Status.PodIP = p.IPv4.String()
			po.Status.PodIPs = []corev1.PodIP{{IP: p.IPv4.String()}}
			if _, err := client.CoreV1().Pods(ns).UpdateStatus(ctx, po, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			serve(t, mp)
		}
	}
	var probes []mprobe
	for _, a := range pods {
		for _, b := range pods {
			if a == b {
				continue
			}
			for _, proto := range []string{"TCP", "UDP"} {
				for _, port := range []int{80, 81} {
					probes = append(probes, mprobe{from: a, to: b, proto: proto, port: port})
				}
			}
		}
	}
	published := func() int {
		n := 0
		for _, d := range kc.daemons {
			n += strings.Count(d.Log(), "policy published")
		}
		return n
	}
	waitPublished := func(before int) {
		for published() < before+len(kc.daemons) {
			if ctx.Err() != nil {
				t.Fatal("ringnetd did not publish the policy change")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Pods' IPs reach the policy tables before the first case.
	waitPublished(published() - len(kc.daemons))
	time.Sleep(500 * time.Millisecond)
	for _, c := range matrixCases {
		t.Run(c.name, func(t *testing.T) {
			before := published()
			for _, p := range c.policies {
				if _, err := client.NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if len(c.policies) > 0 {
				waitPublished(before)
			}
			got := reach(probes)
			wrong := 0
			for i, p := range probes {
				if want := c.allowed(p); got[i] != want {
					if wrong++; wrong <= 10 {
						t.Errorf("%v: reached %v, want %v", p, got[i], want)
					}
				}
			}
			if wrong > 10 {
				t.Errorf("... %d of %d probes wrong in all", wrong, len(probes))
			}
			before = published()
			for _, p := range c.policies {
				if err := client.NetworkingV1().NetworkPolicies(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if len(c.policies) > 0 {
				waitPublished(before)
			}
		})
	}
}

// serve runs TCP listeners and UDP echo servers on ports 80 and 81 of p.
func serve(t *testing.T, p *matrixPod) {
	for _, port := range []int{80, 81} {
		addr := netip.AddrPortFrom(p.pod.IPv4, uint16(port)).String()
		var ln net.Listener
		var pc net.PacketConn
		if err := topo.Do(p.pod.NS, func() (err error) {
			if ln, err = net.Listen("tcp", addr); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close(); pc.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		go func() {
			buf := make([]byte, 64)
			for {
				n, a, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], a)
			}
		}()
	}
}

// reach runs every mprobe at once and reports which got through: a TCP
// connection established, or a UDP datagram echoed, within 700 ms.
func reach(probes []mprobe) []bool {
	got := make([]bool, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			dst := netip.AddrPortFrom(p.to.pod.IPv4, uint16(p.port)).String()
			var c net.Conn
			err := topo.Do(p.from.pod.NS, func() (err error) {
				if p.proto == "TCP" {
					c, err = net.DialTimeout("tcp", dst, 700*time.Millisecond)
				} else {
					c, err = net.Dial("udp", dst)
				}
				return err
			})
			if err != nil {
				return
			}
			defer c.Close()
			if p.proto == "TCP" {
				got[i] = true
				return
			}
			c.SetDeadline(time.Now().Add(700 * time.Millisecond))
			buf := make([]byte, 64)
			for range 3 {
				c.Write([]byte("probe"))
				if n, err := c.Read(buf); err == nil && string(buf[:n]) == "probe" {
					got[i] = true
					return
				}
			}
		})
	}
	wg.Wait()
	return got
}
