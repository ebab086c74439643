// Package kubernetes_test runs ringnetd against a real kube-apiserver
// (internal/kubetest: etcd and kube-apiserver v1.36.3 on 127.0.0.1) with
// real nodes in network namespaces (internal/topo) and pods made by the
// CNI plugin (internal/ringnode): what the API says is what the fast path
// does.
package kubernetes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/k8s"
	"github.com/ringnet/ringnet/internal/kubetest"
	"github.com/ringnet/ringnet/internal/ringnode"
	"github.com/ringnet/ringnet/internal/ringnode/ringnodetest"
	"github.com/ringnet/ringnet/internal/topo"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

var bins ringnode.Binaries

func TestMain(m *testing.M) { ringnodetest.Main(m, &bins) }

func createNode(t testing.TB, c kubernetes.Interface, name string, cidrs []string, annotations map[string]string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.NodeSpec{PodCIDR: cidrs[0], PodCIDRs: cidrs}}
	if _, err := c.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ping(t *testing.T, ns string, dst netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := topo.Output(ctx, ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst.String())
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping %v from %s: %v\n%s", dst, ns, err, out)
	}
}

// forwardAPI makes the API server, which listens on the root namespace's
// 127.0.0.1, reachable at the same address inside the node namespace ns,
// as a node reaches its control plane: a TCP relay whose listener is in ns
// and whose dials are made from the root namespace. TLS passes through it
// untouched.
func forwardAPI(t testing.TB, ns, url string) {
	t.Helper()
	addr := strings.TrimPrefix(url, "https://")
	var ln net.Listener
	if err := topo.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
}

// kubeCluster is two ringnet nodes learning the cluster from the API.
type kubeCluster struct {
	api     *kubetest.Cluster
	topo    *topo.Topology
	daemons map[string]*ringnode.Daemon
}

func startKube(t *testing.T) *kubeCluster {
	t.Helper()
	api := kubetest.StartT(t)
	kc := &kubeCluster{api: api, topo: topo.NewT(t, "k8"), daemons: map[string]*ringnode.Daemon{}}
	cfg, err := api.Kubeconfig(api.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, name := range []string{"na", "nb"} {
		createNode(t, api.Client(), name, []string{fmt.Sprintf("10.244.%d.0/24", i+1)}, nil)
		n, err := kc.topo.AddNode(name, netip.MustParsePrefix(fmt.Sprintf("192.168.50.%d/24", i+1)), topo.NodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		forwardAPI(t, n.NS, api.URL)
		d, err := ringnode.Start(ctx, bins, n, ringnode.Options{Kubeconfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		kc.daemons[name] = d
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("ringnetd on %s:\n%s", name, d.Log())
			}
			if err := d.Stop(); err != nil {
				t.Errorf("stop ringnetd on %s: %v", name, err)
			}
		})
	}
	for a, d := range kc.daemons {
		for b := range kc.daemons {
			if a != b {
				if err := d.WaitLog(ctx, `resolved" node=`+b+" "); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return kc
}

// TestKubernetes: nodes created through the API become routes; ringnetd
// registers each node as ringnet's and Flannel's annotations say and marks
// its network available; pods on the two nodes talk; a Flannel node
// appearing in the API, set up from the annotations ringnetd published,
// exchanges traffic with a ringnet pod.
func TestKubernetes(t *testing.T) {
	kc := startKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := kc.api.Client()
	na, err := client.CoreV1().Nodes().Get(ctx, "na", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	topoNA := kc.daemons["na"].Node
	if got := na.Annotations[k8s.AnnotationUnderlay]; got != "192.168.50.1/24" {
		t.Errorf("na's %s = %q, want 192.168.50.1/24", k8s.AnnotationUnderlay, got)
	}
	var bd struct {
		VNI     int
		VtepMAC string
	}
	if err := json.Unmarshal([]byte(na.Annotations[k8s.FlannelBackendData]), &bd); err != nil || bd.VNI != 1 || bd.VtepMAC != topoNA.UplinkMAC.String() {
		t.Errorf("na's Flannel backend-data %q (%v), want VNI 1 and VtepMAC %s", na.Annotations[k8s.FlannelBackendData], err, topoNA.UplinkMAC)
	}
	if na.Annotations[k8s.FlannelPublicIP] != "192.168.50.1" || na.Annotations[k8s.FlannelBackendType] != "vxlan" {
		t.Errorf("na's Flannel annotations: %v", na.Annotations)
	}
	available := false
	for _, c := range na.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionFalse {
			available = true
		}
	}
	if !available {
		t.Errorf("na's NetworkUnavailable condition is not False: %v", na.Status.Conditions)
	}

	pa, err := kc.daemons["na"].AddPod(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := kc.daemons["nb"].AddPod(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if !netip.MustParsePrefix("10.244.1.0/24").Contains(pa.IPv4) || !netip.MustParsePrefix("10.244.2.0/24").Contains(pb.IPv4) {
		t.Fatalf("pod addresses %v, %v are not from the nodes' spec.podCIDRs", pa.IPv4, pb.IPv4)
	}
	ping(t, pa.NS, pb.IPv4)
	ping(t, pb.NS, pa.IPv4)

	// A Flannel node joins: flanneld would publish these annotations and
	// program its kernel from na's.
	fn, err := kc.topo.AddFlannelNode("nf", netip.MustParsePrefix("192.168.50.3/24"), netip.MustParsePrefix("10.244.3.0/24"), topo.FlannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Output(ctx, "ethtool", "-K", topo.Uplink, "tx", "off"); err != nil {
		t.Fatal(err)
	}
	naMAC, err := net.ParseMAC(bd.VtepMAC)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn.AddPeer(netip.MustParsePrefix("10.244.1.0/24"), naMAC, netip.MustParseAddr(na.Annotations[k8s.FlannelPublicIP])); err != nil {
		t.Fatal(err)
	}
	createNode(t, client, "nf", []string{"10.244.3.0/24"}, map[string]string{
		k8s.FlannelBackendType: "vxlan",
		k8s.FlannelBackendData: fmt.Sprintf(`{"VNI":1,"VtepMAC":%q}`, fn.VtepMAC),
		k8s.FlannelPublicIP:    "192.168.50.3",
	})
	if err := kc.daemons["na"].WaitLog(ctx, `resolved" node=nf `); err != nil {
		t.Fatal(err)
	}
	fp, err := fn.AddPod("p")
	if err != nil {
		t.Fatal(err)
	}
	ping(t, pa.NS, fp.IPv4)
	ping(t, fp.NS, pa.IPv4)

	// A node deleted from the API is no longer routed to.
	if err := client.CoreV1().Nodes().Delete(ctx, "nf", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := topo.Output(ctx, pa.NS, "ping", "-c", "1", "-W", "1", fp.IPv4.String())
		if !strings.Contains(out, " 0% packet loss") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Flannel node's pod is still reachable 10s after its Node was deleted")
		}
	}
}

// BenchmarkAPIToTable measures API event → table published: the time from
// creating a Node through the API to ringnetd publishing routes for it, as
// ringnetd's own log reports it (event_to_table, measured from the
// informer's event). Reported: p50 and p99 in ms over b.N nodes.
func BenchmarkAPIToTable(b *testing.B) {
	api := kubetest.StartT(b)
	tp := topo.NewT(b, "kb")
	cfg, err := api.Kubeconfig(api.AdminToken)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	createNode(b, api.Client(), "na", []string{"10.244.1.0/24"}, nil)
	n, err := tp.AddNode("na", netip.MustParsePrefix("192.168.50.1/24"), topo.NodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	forwardAPI(b, n.NS, api.URL)
	d, err := ringnode.Start(ctx, bins, n, ringnode.Options{Kubeconfig: cfg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Stop() })
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("peer-%d", i)
		before := strings.Count(d.Log(), "cluster published")
		createNode(b, api.Client(), name, []string{fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250)}, map[string]string{
			k8s.AnnotationUnderlay: fmt.Sprintf("172.16.%d.%d/24", i/250, i%250+1)})
		for strings.Count(d.Log(), "cluster published") == before {
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, lastEventToTable(b, d.Log()))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

func lastEventToTable(b *testing.B, log string) time.Duration {
	lines := strings.Split(log, "\n")
	for _, l := range slices.Backward(lines) {
		if _, v, ok := strings.Cut(l, "event_to_table="); ok && strings.Contains(l, "cluster published") {
			d, err := time.ParseDuration(strings.Fields(v)[0])
			if err != nil {
				b.Fatal(err)
			}
			return d
		}
	}
	b.Fatal("no event_to_table in the log")
	return 0
}

// apiPod records a pod the CNI plugin made in the API, as kubelet would
// report it: labels, node, status.podIPs.
func apiPod(t *testing.T, c kubernetes.Interface, name, node string, labels map[string]string, ips ...netip.Addr) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}}}
	p, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	p.Status.PodIP = ips[0].String()
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// reachable reports whether one ping from ns to dst gets its reply within
// 200 ms (a round trip here takes well under one).
func reachable(ns string, dst netip.Addr) bool {
	out, _ := topo.Output(context.Background(), ns, "ping", "-c", "1", "-W", "0.2", dst.String())
	return strings.Contains(out, " 0% packet loss")
}

// TestNetworkPolicy: a NetworkPolicy created through the API blocks a
// flow between pods on two nodes within a second, allows what it names
// (a named port), keeps replies of allowed connections flowing, and its
// deletion opens the flow again.
func TestNetworkPolicy(t *testing.T) {
	kc := startKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := kc.api.Client()
	pa, err := kc.daemons["na"].AddPod(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := kc.daemons["nb"].AddPod(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	apiPod(t, client, "a", "na", map[string]string{"app": "a"}, pa.IPv4)
	apiPod(t, client, "b", "nb", map[string]string{"app": "b"}, pb.IPv4)
	for _, d := range kc.daemons {
		if err := d.WaitLog(ctx, "policy published"); err != nil {
			t.Fatal(err)
		}
	}
	ping(t, pa.NS, pb.IPv4)

	// b accepts only TCP on its named port "http" from app=a.
	tcp := corev1.ProtocolTCP
	http := intstr.FromString("http")
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "b-http-from-a", Namespace: "default"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &http}},
			}},
		}}
	created := time.Now()
	if _, err := client.NetworkingV1().NetworkPolicies("default").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lastOK := created
	for reachable(pa.NS, pb.IPv4) {
		if lastOK = time.Now(); lastOK.Sub(created) > time.Second {
			t.Fatalf("ping a -> b still passes %v after the NetworkPolicy was created", lastOK.Sub(created))
		}
	}
	t.Logf("NetworkPolicy blocked ping a -> b within %v of its creation (last reply %v after)",
		time.Since(created).Round(time.Millisecond), lastOK.Sub(created).Round(time.Millisecond))
	// TCP to the named port is allowed, with its replies; another port is not.
	tcpTransfer(t, pa.NS, pb.NS, netip.AddrPortFrom(pb.IPv4, 8080))
	if tcpConnects(pa.NS, pb.NS, netip.AddrPortFrom(pb.IPv4, 8081)) {
		t.Error("TCP a -> b:8081 connected; the policy allows only the named port http (8080)")
	}
	// a is selected by no policy: b may still open connections to it.
	tcpTransfer(t, pb.NS, pa.NS, netip.AddrPortFrom(pa.IPv4, 9000))
	if m, err := kc.daemons["nb"].CountersWhen(func(m map[string]uint64) bool { return m["policy_denied"] > 0 }); err != nil || m["policy_denied"] == 0 {
		t.Errorf("node b's policy_denied counter: %v (%v)", m["policy_denied"], err)
	}

	// Fail closed across a crash: while node b's ringnetd is killed and
	// restarted, the denied flow (ping a -> b) never passes; afterwards
	// the allowed one does again.
	// A ping every 5 ms for 3 s spans the kill, the restart and the first
	// policy compile.
	probe := topo.Command(ctx, pa.NS, "ping", "-i", "0.005", "-c", "600", "-W", "1", pb.IPv4.String())
	var out strings.Builder
	probe.Stdout = &out
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := kc.daemons["nb"].Restart(ctx); err != nil {
		t.Fatal(err)
	}
	probe.Wait()
	if !strings.Contains(out.String(), " 0 received") {
		t.Errorf("pings a -> b passed while node b's ringnetd restarted; the policy denies them:\n%s", out.String())
	}
	tcpTransfer(t, pa.NS, pb.NS, netip.AddrPortFrom(pb.IPv4, 8080))

	if err := client.NetworkingV1().NetworkPolicies("default").Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for !reachable(pa.NS, pb.IPv4) {
		if time.Since(deleted) > 5*time.Second {
			t.Fatal("ping a -> b still blocked 5s after the NetworkPolicy was deleted")
		}
	}
}

// tcpTransfer sends 64 KiB over TCP from namespace from to a listener in
// namespace to at dst and checks it arrives.
func tcpTransfer(t *testing.T, from, to string, dst netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := topo.Do(to, func() (err error) { ln, err = net.Listen("tcp", dst.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	}()
	var c net.Conn
	if err := topo.Do(from, func() (err error) { c, err = net.DialTimeout("tcp", dst.String(), 3*time.Second); return err }); err != nil {
		t.Fatalf("TCP %s -> %v: %v", from, dst, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(make([]byte, 64<<10)); err != nil {
		t.Fatalf("TCP %s -> %v: %v", from, dst, err)
	}
	c.Close()
	if n := <-got; n != 64<<10 {
		t.Fatalf("TCP %s -> %v: %d bytes arrived, want %d", from, dst, n, 64<<10)
	}
}

// tcpConnects reports whether a TCP connection from namespace from to a
// listener in namespace to at dst is established within a second.
func tcpConnects(from, to string, dst netip.AddrPort) bool {
	var ln net.Listener
	if err := topo.Do(to, func() (err error) { ln, err = net.Listen("tcp", dst.String()); return err }); err != nil {
		return false
	}
	defer ln.Close()
	var c net.Conn
	err := topo.Do(from, func() (err error) { c, err = net.DialTimeout("tcp", dst.String(), time.Second); return err })
	if err == nil {
		c.Close()
	}
	return err == nil
}
