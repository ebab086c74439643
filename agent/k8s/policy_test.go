package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// publishCall is one call of a publish function: what it was given, and
// when.
type publishCall[T any] struct {
	got T
	times
}

// fakeRun is a Source's RunPolicy or RunServices on a fake clientset.
type fakeRun[T any] struct {
	client *fake.Clientset
	calls  chan publishCall[T]
}

// runFake starts run (a Source's RunPolicy or RunServices, with the
// publish function given) on a fake clientset holding objs, waits for the
// first watch of each of resources, and stops it in cleanup (checking its
// result).
func runFake[T any](t *testing.T, debounce time.Duration, resources []string, objs []runtime.Object,
	run func(ctx context.Context, s *Source, publish func(T, time.Time, time.Time)) error) *fakeRun[T] {
	t.Helper()
	r := &fakeRun[T]{client: fake.NewClientset(objs...), calls: make(chan publishCall[T], 1000)}
	startWatching(t, r.client, debounce, resources, func(ctx context.Context, s *Source) error {
		return run(ctx, s, func(got T, first, last time.Time) {
			r.calls <- publishCall[T]{got, times{first, last, time.Now()}}
		})
	})
	return r
}

// runPolicy is runFake of RunPolicy.
func runPolicy(t *testing.T, debounce time.Duration, objs ...runtime.Object) *fakeRun[PolicyInput] {
	t.Helper()
	return runFake(t, debounce, []string{"namespaces", "pods", "networkpolicies"}, objs,
		func(ctx context.Context, s *Source, publish func(PolicyInput, time.Time, time.Time)) error {
			return s.RunPolicy(ctx, publish)
		})
}

// startWatching starts run (RunPolicy or RunServices) with a Source on
// client, as start does, and waits for the first watch of each of
// resources.
func startWatching(t *testing.T, client *fake.Clientset, debounce time.Duration, resources []string, run func(context.Context, *Source) error) {
	t.Helper()
	var watched []<-chan struct{}
	for _, res := range resources {
		watched = append(watched, watching(client, res))
	}
	logs := &syncBuffer{}
	s := New(client, Options{Debounce: debounce, Log: debugLog(logs)})
	start(t, logs, func(ctx context.Context) error { return run(ctx, s) })
	for _, w := range watched {
		select {
		case <-w:
		case <-time.After(10 * time.Second):
			t.Fatal("an informer never watched")
		}
	}
}

// getUpdater is a typed client of one kind, such as a PodInterface.
type getUpdater[T any] interface {
	Get(ctx context.Context, name string, o metav1.GetOptions) (T, error)
	Update(ctx context.Context, obj T, o metav1.UpdateOptions) (T, error)
}

// podStatus updates pods through the status subresource.
type podStatus struct{ typedcorev1.PodInterface }

func (c podStatus) Update(ctx context.Context, p *corev1.Pod, o metav1.UpdateOptions) (*corev1.Pod, error) {
	return c.UpdateStatus(ctx, p, o)
}

// edit gets the object name, changes it and updates it.
func edit[T any](t *testing.T, c getUpdater[T], name string, change func(T)) {
	t.Helper()
	ctx := context.Background()
	o, err := c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	change(o)
	if _, err := c.Update(ctx, o, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func kns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func knp(ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// TestRunPolicyInput: the first call, once the caches have synced, holds
// every namespace, pod and policy, converted and sorted.
func TestRunPolicyInput(t *testing.T) {
	hostNet := kpod("kube-system", "proxy", map[string]string{"k8s-app": "proxy"}, []string{"192.168.50.1"})
	hostNet.Spec.HostNetwork = true
	done := kpod("shop", "job", nil, []string{"10.244.1.9"})
	done.Status.Phase = corev1.PodSucceeded
	web1 := kpod("shop", "web-1", map[string]string{"app": "web"}, []string{"10.244.1.5", "fd00::1:5"},
		container(corev1.ContainerPort{Name: "http", ContainerPort: 8080}))
	web1.Annotations = map[string]string{"big": "ignored"}
	udp := corev1.ProtocolUDP
	objs := []runtime.Object{
		kns("shop", map[string]string{"team": "red"}), kns("kube-system", nil),
		web1, done, hostNet,
		kpod("shop", "pending", map[string]string{"app": "web"}, nil),
		knp("shop", "deny-all", networkingv1.NetworkPolicySpec{}),
		knp("kube-system", "dns", networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "dns"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: ptr(intstr.FromInt32(53))}},
			}},
		}),
	}
	begin := time.Now()
	r := runPolicy(t, 10*time.Millisecond, objs...)
	p := next(t, r.calls)
	checkTimes(t, p.times, begin)
	want := PolicyInput{
		Namespaces: []netpol.Namespace{{Name: "kube-system"}, {Name: "shop", Labels: map[string]string{"team": "red"}}},
		Pods: []netpol.Pod{
			{Namespace: "kube-system", Name: "proxy", Labels: map[string]string{"k8s-app": "proxy"}}, // host network: no address
			{Namespace: "shop", Name: "job"}, // finished: no address
			{Namespace: "shop", Name: "pending", Labels: map[string]string{"app": "web"}},
			{Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"}, IPs: addrs("10.244.1.5", "fd00::1:5"),
				Ports: []netpol.NamedPort{{Name: "http", Proto: policy.TCP, Port: 8080}}},
		},
		Policies: []netpol.NetworkPolicy{
			{Namespace: "kube-system", Name: "dns", PodSelector: netpol.LabelSelector{MatchLabels: map[string]string{"k8s-app": "dns"}},
				PolicyTypes: []string{netpol.PolicyTypeIngress},
				Ingress:     []netpol.Rule{{Ports: []netpol.PolicyPort{{Protocol: netpol.ProtocolUDP, Port: &netpol.PortRef{Num: 53}}}}}},
			{Namespace: "shop", Name: "deny-all"},
		},
	}
	if diff := cmp.Diff(want, p.got, cmpAddr); diff != "" {
		t.Errorf("first input (-want +got):\n%s", diff)
	}
	none(t, r.calls, 50*time.Millisecond)
}

// TestRunPolicyEmpty: an empty cluster still gives one call, once synced.
func TestRunPolicyEmpty(t *testing.T) {
	r := runPolicy(t, 10*time.Millisecond)
	p := next(t, r.calls)
	if len(p.got.Namespaces)+len(p.got.Pods)+len(p.got.Policies) != 0 {
		t.Errorf("input %+v, want empty", p.got)
	}
	none(t, r.calls, 50*time.Millisecond)
}

// TestRunPolicyBurst: 50 label changes within the debounce give one call,
// with the last labels and the burst's event times.
func TestRunPolicyBurst(t *testing.T) {
	const debounce = time.Second
	r := runPolicy(t, debounce, kns("shop", nil), kpod("shop", "web-1", nil, []string{"10.244.1.5"}))
	next(t, r.calls)
	ctx := context.Background()
	pods := r.client.CoreV1().Pods("shop")
	p, err := pods.Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const updates = 50
	burst := time.Now()
	for i := range updates {
		p.Labels = map[string]string{"rev": fmt.Sprint(i)}
		if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(burst)
	want := fmt.Sprint(updates - 1)
	calls := 0
	for {
		c := next(t, r.calls)
		calls++
		checkTimes(t, c.times, burst)
		if len(c.got.Pods) == 1 && c.got.Pods[0].Labels["rev"] == want {
			break
		}
	}
	none(t, r.calls, debounce)
	if took > debounce/2 {
		t.Logf("the burst took %v, more than half the debounce: %d calls, not checking that it gave one", took, calls)
	} else if calls != 1 {
		t.Errorf("a burst of %d updates in %v gave %d calls, want 1 (debounce %v)", updates, took, calls, debounce)
	}
}

// TestRunPolicyChanges: what the compiler reads publishes, the rest does
// not; NetworkPolicies come and go.
func TestRunPolicyChanges(t *testing.T) {
	const debounce = 20 * time.Millisecond
	web := kpod("shop", "web-1", map[string]string{"app": "web"}, []string{"10.244.1.5"})
	web.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	r := runPolicy(t, debounce, kns("shop", nil), web, knp("shop", "deny-all", networkingv1.NetworkPolicySpec{}))
	next(t, r.calls)
	ctx := context.Background()
	pods := r.client.CoreV1().Pods("shop")
	nss := r.client.CoreV1().Namespaces()
	nps := r.client.NetworkingV1().NetworkPolicies("shop")
	editPod := func(change func(*corev1.Pod)) { t.Helper(); edit(t, pods, "web-1", change) }
	editStatus := func(change func(*corev1.Pod)) { t.Helper(); edit(t, podStatus{pods}, "web-1", change) }
	editNS := func(change func(*corev1.Namespace)) { t.Helper(); edit(t, nss, "shop", change) }
	editNP := func(change func(*networkingv1.NetworkPolicy)) { t.Helper(); edit(t, nps, "deny-all", change) }

	// Nothing the compiler reads.
	editStatus(func(p *corev1.Pod) { // a readiness heartbeat
		p.Status.Conditions[0].LastProbeTime = metav1.Now()
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: 1}}
	})
	editPod(func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} })
	editNS(func(ns *corev1.Namespace) { ns.Annotations = map[string]string{"a": "b"} })
	editNP(func(np *networkingv1.NetworkPolicy) { np.Labels = map[string]string{"a": "b"} })
	none(t, r.calls, 5*debounce)

	// What it reads, one change a call.
	steps := []struct {
		what   string
		change func()
		check  func(PolicyInput) bool
	}{
		{"a pod label", func() { editPod(func(p *corev1.Pod) { p.Labels["tier"] = "front" }) },
			func(in PolicyInput) bool { return in.Pods[0].Labels["tier"] == "front" }},
		{"a pod address", func() {
			editStatus(func(p *corev1.Pod) { p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: "fd00::5"}) })
		},
			func(in PolicyInput) bool { return len(in.Pods[0].IPs) == 2 }},
		{"a pod finishing", func() { editStatus(func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }) },
			func(in PolicyInput) bool { return len(in.Pods[0].IPs) == 0 }},
		{"a namespace label", func() { editNS(func(ns *corev1.Namespace) { ns.Labels = map[string]string{"team": "red"} }) },
			func(in PolicyInput) bool { return in.Namespaces[0].Labels["team"] == "red" }},
		{"a policy's spec", func() {
			editNP(func(np *networkingv1.NetworkPolicy) {
				np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			})
		}, func(in PolicyInput) bool {
			return len(in.Policies) == 1 && cmp.Equal(in.Policies[0].PolicyTypes, []string{netpol.PolicyTypeEgress})
		}},
		{"a policy created", func() {
			if _, err := nps.Create(ctx, knp("shop", "allow-web", networkingv1.NetworkPolicySpec{}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(in PolicyInput) bool {
			return len(in.Policies) == 2 && in.Policies[0].Name == "allow-web" && in.Policies[1].Name == "deny-all"
		}},
		{"a policy deleted", func() {
			if err := nps.Delete(ctx, "deny-all", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(in PolicyInput) bool { return len(in.Policies) == 1 && in.Policies[0].Name == "allow-web" }},
	}
	for _, s := range steps {
		before := time.Now()
		s.change()
		p := next(t, r.calls)
		checkTimes(t, p.times, before)
		if !s.check(p.got) {
			t.Errorf("after %s: input %+v", s.what, p.got)
		}
		none(t, r.calls, 3*debounce)
	}
}

// TestRunPolicyBesideRun: one Source runs both, each publishing its own.
func TestRunPolicyBesideRun(t *testing.T) {
	nodes := twoNodes()
	client := fake.NewClientset(nodes[0], nodes[1], kns("shop", nil))
	logs := &syncBuffer{}
	s := New(client, Options{NodeName: "node-a", Debounce: 10 * time.Millisecond, Log: debugLog(logs)})
	models, inputs := make(chan *cluster.Cluster, 100), make(chan PolicyInput, 100)
	start(t, logs, func(ctx context.Context) error {
		return s.Run(ctx, func(c *cluster.Cluster, _, _ time.Time) { models <- c })
	})
	start(t, logs, func(ctx context.Context) error {
		return s.RunPolicy(ctx, func(in PolicyInput, _, _ time.Time) { inputs <- in })
	})
	timeout := time.After(10 * time.Second)
	for got := 0; got < 2; got++ {
		select {
		case c := <-models:
			if len(c.Nodes) != 2 {
				t.Errorf("model %v, want two nodes", names(c))
			}
		case in := <-inputs:
			if len(in.Namespaces) != 1 {
				t.Errorf("input %+v, want namespace shop", in)
			}
		case <-timeout:
			t.Fatal("no model or no input in 10s")
		}
	}
}

// deepCopier is a Kubernetes object's pointer, such as a *corev1.Pod.
type deepCopier[T any] interface{ DeepCopy() T }

// checkFilter checks that the update filter same sees each edit of seen
// made to a copy of obj as a change, and none of unseen.
func checkFilter[T deepCopier[T]](t *testing.T, kind string, obj T, same func(old, new T) bool, seen, unseen map[string]func(T)) {
	t.Helper()
	for want, edits := range map[bool]map[string]func(T){true: seen, false: unseen} {
		for what, edit := range edits {
			o := obj.DeepCopy()
			edit(o)
			if same(obj, o) == want {
				t.Errorf("%s: changing %s: seen %v, want %v", kind, what, !want, want)
			}
		}
	}
}

// TestPolicyUpdateFilters: the update filters see every field the
// conversions read, and nothing else.
func TestPolicyUpdateFilters(t *testing.T) {
	sidecar := corev1.ContainerRestartPolicyAlways
	pod := kpod("shop", "web", map[string]string{"app": "web"}, []string{"10.244.1.5"},
		container(corev1.ContainerPort{Name: "http", ContainerPort: 80}))
	pod.Spec.InitContainers = []corev1.Container{{Name: "proxy", RestartPolicy: &sidecar, Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9901}}}}
	podSeen := map[string]func(*corev1.Pod){
		"a label":                     func(p *corev1.Pod) { p.Labels["x"] = "y" },
		"status.podIPs":               func(p *corev1.Pod) { p.Status.PodIPs = nil; p.Status.PodIP = "10.244.1.6" },
		"the phase (finished)":        func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed },
		"hostNetwork":                 func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		"a container port":            func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 81 },
		"a sidecar's port":            func(p *corev1.Pod) { p.Spec.InitContainers[0].Ports[0].Name = "stats" },
		"a sidecar no longer sidecar": func(p *corev1.Pod) { p.Spec.InitContainers[0].RestartPolicy = nil },
	}
	podUnseen := map[string]func(*corev1.Pod){
		"conditions":       func(p *corev1.Pod) { p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady}} },
		"resourceVersion":  func(p *corev1.Pod) { p.ResourceVersion = "42" },
		"annotations":      func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} },
		"nodeName":         func(p *corev1.Pod) { p.Spec.NodeName = "node-a" },
		"the phase (live)": func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
		"an unnamed port": func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 9})
		},
	}
	checkFilter(t, "pod", pod, samePod, podSeen, podUnseen)

	ns := kns("shop", map[string]string{"team": "red"})
	ns2 := ns.DeepCopy()
	ns2.Annotations, ns2.ResourceVersion, ns2.Status.Phase = map[string]string{"a": "b"}, "42", corev1.NamespaceTerminating
	if !sameNamespace(ns, ns2) {
		t.Error("namespace: annotations, resource version or phase seen as a change")
	}
	ns2.Labels = map[string]string{"team": "blue"}
	if sameNamespace(ns, ns2) {
		t.Error("namespace: a label change not seen")
	}

	np := knp("shop", "p", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}})
	np2 := np.DeepCopy()
	np2.Labels, np2.Annotations, np2.Generation = map[string]string{"a": "b"}, map[string]string{"a": "b"}, 2
	np2.Spec.PolicyTypes = []networkingv1.PolicyType{} // empty, as nil
	if !sameNetworkPolicy(np, np2) {
		t.Error("networkpolicy: metadata, or an empty list for nil, seen as a change")
	}
	np2.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}
	if sameNetworkPolicy(np, np2) {
		t.Error("networkpolicy: a spec change not seen")
	}
}

// fatten gives objs the metadata informers drop (annotations, managed
// fields, owner references) and what they keep (resource version 7, UID
// "uid").
func fatten(objs ...metav1.Object) {
	for _, o := range objs {
		o.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"})
		o.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
		o.SetOwnerReferences([]metav1.OwnerReference{{Name: "rs"}})
		o.SetResourceVersion("7")
		o.SetUID("uid")
	}
}

// slimmed is slim(o), of an object fatten made, checked: slim is
// idempotent and keeps of the metadata what it must.
func slimmed(t *testing.T, o runtime.Object) runtime.Object {
	t.Helper()
	s, err := slim(o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := slim(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, again); diff != "" {
		t.Errorf("slim is not idempotent (-once +twice):\n%s", diff)
	}
	m := s.(metav1.Object)
	if m.GetAnnotations() != nil || m.GetManagedFields() != nil || m.GetOwnerReferences() != nil || m.GetResourceVersion() != "7" || m.GetUID() != "uid" {
		t.Errorf("slim %T metadata: %+v", s, m)
	}
	return s.(runtime.Object)
}

// TestSlimPolicyObjects: the informers keep what the conversions read,
// drop the bulk, and leave the objects given them alone.
func TestSlimPolicyObjects(t *testing.T) {
	sidecar := corev1.ContainerRestartPolicyAlways
	p := kpod("shop", "web", map[string]string{"app": "web"}, []string{"10.244.1.5", "fd00::5"},
		container(corev1.ContainerPort{Name: "http", ContainerPort: 80}),
		corev1.Container{Name: "no-ports", Image: "big", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}})
	p.Spec.InitContainers = []corev1.Container{
		{Name: "proxy", RestartPolicy: &sidecar, Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9901}}},
		{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 7}}}, // not a sidecar: not converted
	}
	p.Spec.Volumes = []corev1.Volume{{Name: "v"}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c"}}
	ns := kns("shop", map[string]string{"team": "red"})
	ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
	np := knp("shop", "p", networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}})
	fatten(p, ns, np)
	origP, origNS, origNP := p.DeepCopy(), ns.DeepCopy(), np.DeepCopy()

	sp := slimmed(t, p).(*corev1.Pod)
	if diff := cmp.Diff(convertPod(origP), convertPod(sp), cmpAddr); diff != "" {
		t.Errorf("pod converts otherwise once slim (-before +after):\n%s", diff)
	}
	if len(sp.Spec.Containers) != 1 || len(sp.Spec.InitContainers) != 2 || sp.Spec.Volumes != nil || sp.Status.Conditions != nil || sp.Status.ContainerStatuses != nil {
		t.Errorf("slim pod kept too much: %+v", sp)
	}
	sns := slimmed(t, ns).(*corev1.Namespace)
	if diff := cmp.Diff(convertNamespace(origNS), convertNamespace(sns)); diff != "" || sns.Spec.Finalizers != nil {
		t.Errorf("slim namespace %+v (-before +after):\n%s", sns, diff)
	}
	snp := slimmed(t, np).(*networkingv1.NetworkPolicy)
	if diff := cmp.Diff(convertNetworkPolicy(origNP), convertNetworkPolicy(snp)); diff != "" {
		t.Errorf("networkpolicy converts otherwise once slim (-before +after):\n%s", diff)
	}
	for _, c := range []struct{ orig, now any }{{origP, p}, {origNS, ns}, {origNP, np}} {
		if diff := cmp.Diff(c.orig, c.now); diff != "" {
			t.Errorf("slim changed its input (-was +now):\n%s", diff)
		}
	}
}
