package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// times are a publish call's event times, and when it was made.
type times struct {
	first, last time.Time
	at          time.Time // when publish was called
}

// published is one call of Run's publish.
type published struct {
	c *cluster.Cluster
	times
}

// running is a Source running on a fake clientset.
type running struct {
	client  *fake.Clientset
	calls   chan published
	watched <-chan struct{} // closed when the node informer's watch has started
	logs    *syncBuffer
}

// run starts a Source on a fake clientset holding nodes, and stops it in
// cleanup (checking Run's result).
func run(t *testing.T, o Options, nodes ...*corev1.Node) *running {
	t.Helper()
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n)
	}
	client := fake.NewClientset(objs...)
	r := &running{client: client, calls: make(chan published, 1000), watched: watching(client, "nodes"), logs: &syncBuffer{}}
	o.Log = debugLog(r.logs)
	s := New(r.client, o)
	start(t, r.logs, func(ctx context.Context) error {
		return s.Run(ctx, func(c *cluster.Cluster, first, last time.Time) {
			r.calls <- published{c, times{first, last, time.Now()}}
		})
	})
	return r
}

// watching returns a channel closed when the client's first watch of
// resource starts.
func watching(c *fake.Clientset, resource string) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	c.PrependWatchReactor(resource, func(k8stesting.Action) (bool, watch.Interface, error) {
		once.Do(func() { close(ch) })
		return false, nil, nil // on to the tracker's watch
	})
	return ch
}

func debugLog(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs f (a Source's Run or RunPolicy) on its own goroutine until
// the test's cleanup, which cancels its context, checks that it returned
// nil, and shows the source's log if the test failed.
func start(t *testing.T, logs *syncBuffer, f func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the source returned %v, want nil when ctx is done", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the source did not return after cancel")
		}
		if t.Failed() {
			t.Logf("source's log:\n%s", logs.String())
		}
	})
}

// next waits for the next call of a publish function.
func next[T any](t *testing.T, calls <-chan T) T {
	t.Helper()
	select {
	case p := <-calls:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("no publish in 10s")
	}
	panic("unreachable")
}

// none checks a publish function is not called for d.
func none[T any](t *testing.T, calls <-chan T, d time.Duration) {
	t.Helper()
	select {
	case p := <-calls:
		t.Errorf("unexpected publish of %+v", p)
	case <-time.After(d):
	}
}

// next waits for the next model, which must validate.
func (r *running) next(t *testing.T) published {
	t.Helper()
	p := next(t, r.calls)
	if err := p.c.Validate(); err != nil {
		t.Fatalf("published an invalid model: %v", err)
	}
	return p
}

func (r *running) none(t *testing.T, d time.Duration) {
	t.Helper()
	none(t, r.calls, d)
}

func (p published) String() string { return fmt.Sprint(names(p.c)) }

// ready waits for the first model and the watch behind it.
func (r *running) ready(t *testing.T) published {
	t.Helper()
	p := r.next(t)
	select {
	case <-r.watched:
	case <-time.After(10 * time.Second):
		t.Fatal("the node informer never watched")
	}
	return p
}

func names(c *cluster.Cluster) []string {
	var s []string
	for _, n := range c.Nodes {
		s = append(s, n.Name)
	}
	return s
}

// checkTimes: the times passed are events' (first <= last), monotonic,
// within [after, the call].
func checkTimes(t *testing.T, p times, after time.Time) {
	t.Helper()
	if p.first.IsZero() || p.last.IsZero() {
		t.Fatalf("event times %v, %v: want both set", p.first, p.last)
	}
	if !strings.Contains(p.first.String(), "m=") || !strings.Contains(p.last.String(), "m=") {
		t.Errorf("event times carry no monotonic reading")
	}
	if p.first.Before(after) || p.last.Before(p.first) || p.at.Before(p.last) {
		t.Errorf("event times out of order: after %v, first %v, last %v, published %v", after, p.first, p.last, p.at)
	}
}

func twoNodes() []*corev1.Node {
	return []*corev1.Node{
		knode("node-a", cidr("10.244.1.0/24"), ringnetAnn("192.168.50.1/24", "02:00:00:00:00:01")...),
		knode("node-b", cidr("10.244.2.0/24"), ringnetAnn("192.168.50.2/24", "02:00:00:00:00:02")...),
	}
}

// TestRunBurst: 50 updates within the debounce give one call, with the
// model after the last update and the burst's first and last event times.
func TestRunBurst(t *testing.T) {
	const debounce = time.Second
	start := time.Now()
	r := run(t, Options{NodeName: "node-a", Debounce: debounce}, twoNodes()...)
	p := r.ready(t)
	if got := names(p.c); len(got) != 2 {
		t.Fatalf("first model %v, want node-a and node-b", got)
	}
	checkTimes(t, p.times, start) // the informer's initial adds are events too

	ctx := context.Background()
	nodes := r.client.CoreV1().Nodes()
	burst := time.Now()
	var lastUpdate time.Time
	const updates = 50
	n, err := nodes.Get(ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range updates {
		n.Annotations[AnnotationVtepMAC] = fmt.Sprintf("02:00:00:00:01:%02x", i)
		lastUpdate = time.Now()
		if n, err = nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(burst)

	// Calls until the last update's model; one if the burst fitted well
	// in the debounce.
	want := fmt.Sprintf("02:00:00:00:01:%02x", updates-1)
	calls := 0
	for {
		p = r.next(t)
		calls++
		checkTimes(t, p.times, burst)
		if b, ok := p.c.Node("node-b"); ok && b.VtepMAC.String() == want {
			break
		}
		if calls > updates {
			t.Fatalf("%d calls and none has node-b's last VTEP MAC %s", calls, want)
		}
	}
	if p.last.Before(lastUpdate) {
		t.Errorf("last event %v is before the last update was made (%v)", p.last, lastUpdate)
	}
	r.none(t, debounce)
	if took > debounce/2 {
		t.Logf("the burst took %v, more than half the debounce: %d calls, not checking that it gave one", took, calls)
		return
	}
	if calls != 1 {
		t.Errorf("a burst of %d updates in %v gave %d calls, want 1 (debounce %v)", updates, took, calls, debounce)
	}
}

// TestRunDelete: a deleted node leaves the model; a change the model does
// not read publishes nothing.
func TestRunDelete(t *testing.T) {
	const debounce = 50 * time.Millisecond
	r := run(t, Options{NodeName: "node-a", Debounce: debounce}, twoNodes()...)
	r.ready(t)
	ctx := context.Background()
	nodes := r.client.CoreV1().Nodes()

	n, err := nodes.Get(ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = map[string]string{"topology.kubernetes.io/zone": "z1"}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.none(t, 4*debounce)

	del := time.Now()
	if err := nodes.Delete(ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p := r.next(t)
	if got := names(p.c); len(got) != 1 || got[0] != "node-a" {
		t.Errorf("after deleting node-b: %v, want [node-a]", got)
	}
	checkTimes(t, p.times, del)
}

// TestRunRegister: this node enters the model when it registers, a node
// that is still being networked enters when it is, and a node that comes
// to conflict with another is left out without stopping the others.
func TestRunRegister(t *testing.T) {
	a := knode("node-a", cidr("10.244.1.0/24"))
	b := knode("node-b", cidr("10.244.2.0/24"), ringnetAnn("192.168.50.2/24", "02:00:00:00:00:02")...)
	c := knode("node-c", cidr("10.244.3.0/24"))
	r := run(t, Options{NodeName: "node-a", Debounce: 10 * time.Millisecond}, a, b, c)
	if got := names(r.ready(t).c); len(got) != 1 || got[0] != "node-b" {
		t.Fatalf("first model %v, want [node-b]: node-a has not registered", got)
	}
	ctx := context.Background()
	if err := Register(ctx, r.client, "node-a", Registration{Address: pfx("192.168.50.1/24"), VtepMAC: mac("02:00:00:00:00:01")}); err != nil {
		t.Fatal(err)
	}
	p := r.next(t)
	self, ok := p.c.Node("node-a")
	if !ok || self.Address != pfx("192.168.50.1/24") || self.Backend != cluster.BackendRingnet {
		t.Fatalf("after Register: %+v, want node-a as registered", p.c.Nodes)
	}

	// node-c: Flannel comes up on it.
	nodes := r.client.CoreV1().Nodes()
	n, err := nodes.Get(ctx, "node-c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kv := flannelAnn("192.168.50.3", `{"VNI":1,"VtepMAC":"02:00:00:00:00:03"}`)
	for i := 0; i < len(kv); i += 2 {
		n.Annotations[kv[i]] = kv[i+1]
	}
	if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = r.next(t)
	if fc, ok := p.c.Node("node-c"); !ok || fc.Backend != cluster.BackendFlannel {
		t.Fatalf("after Flannel's annotations: %+v, want node-c as a Flannel node", p.c.Nodes)
	}

	// node-c's pod CIDR comes to overlap node-b's: node-c goes, the rest stays.
	n, err = nodes.Get(ctx, "node-c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.PodCIDRs, n.Spec.PodCIDR = []string{"10.244.2.128/25"}, "10.244.2.128/25"
	if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = r.next(t)
	if got := names(p.c); len(got) != 2 || got[0] != "node-a" || got[1] != "node-b" {
		t.Errorf("after node-c's overlap: %v, want [node-a node-b]", got)
	}
	if !strings.Contains(r.logs.String(), "overlaps node node-b's 10.244.2.0/24") {
		t.Errorf("the overlap was not logged:\n%s", r.logs.String())
	}
}

// TestRunNothingYet: with no node networked there is nothing to publish
// until one is.
func TestRunNothingYet(t *testing.T) {
	r := run(t, Options{NodeName: "node-a", Debounce: 10 * time.Millisecond}, knode("node-a", cidr("10.244.1.0/24")))
	select {
	case <-r.watched:
	case <-time.After(10 * time.Second):
		t.Fatal("the node informer never watched")
	}
	r.none(t, 100*time.Millisecond)
	if err := Register(context.Background(), r.client, "node-a", Registration{Address: pfx("192.168.50.1/24")}); err != nil {
		t.Fatal(err)
	}
	if got := names(r.next(t).c); len(got) != 1 || got[0] != "node-a" {
		t.Errorf("after Register: %v, want [node-a]", got)
	}
}

func TestRunBadTunnel(t *testing.T) {
	s := New(fake.NewClientset(), Options{NodeName: "node-a", Tunnel: cluster.Tunnel{Mode: "gre"}})
	err := s.Run(context.Background(), func(*cluster.Cluster, time.Time, time.Time) { t.Error("published") })
	if err == nil || !strings.Contains(err.Error(), "tunnel.mode") {
		t.Errorf("Run = %v, want a tunnel.mode error", err)
	}
}

// TestNewDefaults: an empty tunnel takes the model's defaults, which the
// Flannel VNI check uses.
func TestNewDefaults(t *testing.T) {
	s := New(fake.NewClientset(), Options{})
	if want := (cluster.Tunnel{Mode: cluster.ModeVXLAN, VXLANPort: cluster.DefaultVXLANPort, VNI: cluster.DefaultVNI}); s.o.Tunnel != want {
		t.Errorf("tunnel %+v, want %+v", s.o.Tunnel, want)
	}
	if s.o.Debounce != DefaultDebounce || s.log == nil {
		t.Errorf("debounce %v, log %v: want the defaults", s.o.Debounce, s.log)
	}
}

// TestLoopNoLostWakeup: however events race with the loop taking a batch,
// the last change is published, and every call's times are in order.
func TestLoopNoLostWakeup(t *testing.T) {
	const writers, rounds = 8, 250 // rounds < 256: a MAC byte
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	s := New(nil, Options{NodeName: "node-a", Debounce: 50 * time.Microsecond})
	s.nodes = listerscorev1.NewNodeLister(idx)
	node := func(w, i int) *corev1.Node {
		return knode(fmt.Sprintf("node-%d", w), cidr(fmt.Sprintf("10.%d.0.0/16", w+1)),
			ringnetAnn(fmt.Sprintf("192.168.50.%d/24", w+1), fmt.Sprintf("02:00:00:00:%02x:%02x", w, i))...)
	}
	final := func(c *cluster.Cluster) bool {
		if len(c.Nodes) != writers {
			return false
		}
		for w, n := range c.Nodes {
			if n.VtepMAC.String() != fmt.Sprintf("02:00:00:00:%02x:%02x", w, rounds-1) {
				return false
			}
		}
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan published, 100000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.nodeEvents.run(ctx, s.o.Debounce, s.publishModel(func(c *cluster.Cluster, first, last time.Time) {
			calls <- published{c, times{first, last, time.Now()}}
		}))
	}()
	defer func() { cancel(); <-done }()

	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				if err := idx.Update(node(w, i)); err != nil { // as the informer: store first, then the handler
					t.Error(err)
				}
				s.nodeEvents.changed()
			}
		})
	}
	wg.Wait()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-calls:
			checkTimes(t, p.times, start)
			if final(p.c) {
				return
			}
		case <-timeout:
			t.Fatal("the last changes were never published: a lost wakeup")
		}
	}
}
