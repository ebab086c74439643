package kubetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCluster stores and reads back what the agent will watch (a Node
// with its pod CIDRs, a Pod with its IPs), checks that the ringnetd token
// is a user without rights until GrantRingnetd, and that Stop leaves
// nothing behind.
func TestCluster(t *testing.T) {
	c := StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client()

	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != Version {
		t.Errorf("server version %q, want %q", v.GitVersion, Version)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ringnet-test"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:1::/64"}},
	}
	node, err = cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node: %v", err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.50.1"}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update node status: %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns.Name},
		Spec: corev1.PodSpec{
			NodeName:   node.Name,
			Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}},
		},
	}
	pod, err = cs.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	// What the kubelet would write once the CNI plugin has run.
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "192.168.50.1"
	pod.Status.PodIP = "10.244.1.5"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}, {IP: "fd00:1::5"}}
	if _, err := cs.CoreV1().Pods(ns.Name).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pod status: %v", err)
	}

	type nodeView struct {
		Name     string
		PodCIDRs []string
		Address  string
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	var gotNodes []nodeView
	for _, n := range nodes.Items {
		nv := nodeView{Name: n.Name, PodCIDRs: n.Spec.PodCIDRs}
		if len(n.Status.Addresses) > 0 {
			nv.Address = n.Status.Addresses[0].Address
		}
		gotNodes = append(gotNodes, nv)
	}
	wantNodes := []nodeView{{"node-a", []string{"10.244.1.0/24", "fd00:1::/64"}, "192.168.50.1"}}
	if diff := cmp.Diff(wantNodes, gotNodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}

	type podView struct {
		Namespace, Name, Node string
		Phase                 corev1.PodPhase
		IPs                   []string
	}
	pods, err := cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var gotPods []podView
	for _, p := range pods.Items {
		pv := podView{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, Phase: p.Status.Phase}
		for _, ip := range p.Status.PodIPs {
			pv.IPs = append(pv.IPs, ip.IP)
		}
		gotPods = append(gotPods, pv)
	}
	wantPods := []podView{{ns.Name, "web", "node-a", corev1.PodRunning, []string{"10.244.1.5", "fd00:1::5"}}}
	if diff := cmp.Diff(wantPods, gotPods); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}

	// ringnetd is authenticated, as itself, and may not list nodes until
	// someone binds it a role. The kubeconfig says the same.
	rcs, err := kubernetes.NewForConfig(c.RESTConfig(c.RingnetdToken))
	if err != nil {
		t.Fatal(err)
	}
	checkRingnetd(ctx, t, "rest config", rcs)
	kubeconfig, err := c.Kubeconfig(c.RingnetdToken)
	if err != nil {
		t.Fatal(err)
	}
	kcfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", kubeconfig, err)
	}
	kcs, err := kubernetes.NewForConfig(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	checkRingnetd(ctx, t, "kubeconfig", kcs)

	// Granted deploy/ringnet.yaml's ClusterRole, ringnetd may do what it
	// says (it lists and watches nodes), and no more.
	role, err := RingnetdRole()
	if err != nil {
		t.Fatal(err)
	}
	if role.Name != "ringnet" || len(role.Rules) == 0 {
		t.Errorf("RingnetdRole: %+v, want deploy's ClusterRole ringnet", role)
	}
	if err := c.GrantRingnetd(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rcs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("granted, ringnetd lists nodes: %v", err)
	}
	if _, err := rcs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("granted, ringnetd lists secrets: %v, want 403 Forbidden", err)
	}

	// A token the apiserver does not know is not let in.
	bad, err := kubernetes.NewForConfig(c.RESTConfig("not-a-token"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("list namespaces with an unknown token: %v, want 401 Unauthorized", err)
	}

	// Stop: the children are gone, their process groups too, and the dir.
	pids := []int{c.apiserver.cmd.Process.Pid, c.etcd.cmd.Process.Pid}
	start := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop took %v", time.Since(start).Round(time.Millisecond))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Stop", pid)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d after Stop: %v, want ESRCH", pid, err)
		}
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Stop: %v, want it gone", c.Dir, err)
	}
}

func checkRingnetd(ctx context.Context, t *testing.T, via string, cs kubernetes.Interface) {
	t.Helper()
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("%s: ringnetd self subject review: %v", via, err)
	}
	u := r.Status.UserInfo
	if u.Username != RingnetdUser || !slices.Contains(u.Groups, "system:authenticated") || slices.Contains(u.Groups, "system:masters") {
		t.Errorf("%s: ringnetd is %q in groups %v; want %q, authenticated, not a master", via, u.Username, u.Groups, RingnetdUser)
	}
	if _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("%s: ringnetd lists nodes: %v, want 403 Forbidden", via, err)
	}
}

// TestDiesWithParent kills a process that started a cluster, with
// SIGKILL so that it runs no cleanup: etcd and the apiserver must die
// with it.
func TestDiesWithParent(t *testing.T) {
	if os.Getenv("KUBETEST_CHILD") == "1" {
		c, err := Start(Options{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("started", c.apiserver.cmd.Process.Pid, c.etcd.cmd.Process.Pid, c.Dir)
		time.Sleep(time.Hour)
	}
	Require(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestDiesWithParent$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "KUBETEST_CHILD=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	var apiserver, etcd int
	var dir string
	if _, err := fmt.Sscanf(line, "started %d %d %s", &apiserver, &etcd, &dir); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q", strings.TrimSpace(line))
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // the child had no chance to
	if !alive(apiserver) || !alive(etcd) {
		t.Fatalf("children not running before the kill")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range []int{apiserver, etcd} {
		for alive(pid) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				t.Fatalf("pid %d outlived its parent by 10 s", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// alive reports whether pid exists and is not a zombie (a killed orphan
// waits as one for an init that may not reap it soon).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestStartFails checks what Start says when it cannot start, and that a
// failed Start leaves neither processes nor its directory behind.
func TestStartFails(t *testing.T) {
	_, err := Start(Options{APIServer: "/nonexistent/kube-apiserver"})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "run scripts/kube-apiserver.sh") {
		t.Errorf("Start without kube-apiserver: %v; want ErrNotInstalled, saying to run scripts/kube-apiserver.sh", err)
	}

	Require(t)
	dir := t.TempDir()
	before := processes(t)
	_, err = Start(Options{Dir: dir, Args: []string{"--no-such-flag"}})
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver exited while starting") ||
		!strings.Contains(err.Error(), "unknown flag: --no-such-flag") {
		t.Errorf("Start with a bad flag: %v; want the apiserver's complaint", err)
	} else {
		t.Logf("Start with a bad flag: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed Start left %v in %s", left, dir)
	}
	if diff := cmp.Diff(before, processes(t)); diff != "" {
		t.Errorf("failed Start left processes (-before +after):\n%s", diff)
	}
}

// processes lists the live etcd and kube-apiserver processes.
func processes(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err == nil && (comm == "etcd" || comm == "kube-apiserver") && alive(pid) {
			ps = append(ps, e.Name()+" "+comm)
		}
	}
	return ps
}
