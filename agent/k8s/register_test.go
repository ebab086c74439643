package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// statusWrites counts the writes to nodes/status among the client's
// actions.
func statusWrites(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetResource().Resource == "nodes" && a.GetSubresource() == "status" && (a.GetVerb() == "update" || a.GetVerb() == "patch") {
			n++
		}
	}
	return n
}

func getNode(t *testing.T, c *fake.Clientset, name string) *corev1.Node {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func networkCondition(n *corev1.Node) (corev1.NodeCondition, int) {
	var found corev1.NodeCondition
	count := 0
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			found = c
			count++
		}
	}
	return found, count
}

func TestRegister(t *testing.T) {
	n := knode("node-a", cidr("10.244.1.0/24"), "other.io/keep", "me")
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
	client := fake.NewClientset(n)
	ctx := context.Background()
	r := Registration{Address: pfx("192.168.50.1/24"), VtepMAC: mac("02:42:c0:a8:32:01"), VNI: 1}

	if err := Register(ctx, client, "node-a", r); err != nil {
		t.Fatal(err)
	}
	got := getNode(t, client, "node-a")
	want := map[string]string{"other.io/keep": "me", AnnotationUnderlay: "192.168.50.1/24", AnnotationVtepMAC: "02:42:c0:a8:32:01"}
	if diff := cmp.Diff(want, got.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	cond, count := networkCondition(got)
	if count != 1 || cond.Status != corev1.ConditionFalse || cond.Reason != "RingnetIsUp" || cond.LastTransitionTime.IsZero() {
		t.Errorf("NetworkUnavailable %+v (%d of them), want one, False, reason RingnetIsUp", cond, count)
	}
	if len(got.Status.Conditions) != 2 {
		t.Errorf("conditions %+v: want Ready kept beside NetworkUnavailable", got.Status.Conditions)
	}
	if statusWrites(client) != 1 {
		t.Errorf("%d status writes, want 1", statusWrites(client))
	}
	// The model reads back what Register wrote.
	if m, ok, why := convertNode(got, 1, "node-a"); !ok || m.Address != r.Address || m.VtepMAC.String() != r.VtepMAC.String() {
		t.Errorf("convertNode of a registered node = %+v, %v, %q", m, ok, why.msg)
	}

	// Idempotent: same annotations, the condition untouched.
	if err := Register(ctx, client, "node-a", r); err != nil {
		t.Fatal(err)
	}
	again := getNode(t, client, "node-a")
	if diff := cmp.Diff(got.Annotations, again.Annotations); diff != "" {
		t.Errorf("second Register changed the annotations (-first +second):\n%s", diff)
	}
	// (The fake's patch round-trips the node through JSON, which keeps
	// whole seconds, as the apiserver does.)
	if c1, _ := networkCondition(got); !cmp.Equal(c1, cond) {
		t.Fatal("the condition read back changed") // guard for the comparison below
	}
	if c2, _ := networkCondition(again); c2.Status != cond.Status || c2.Reason != cond.Reason ||
		c2.LastTransitionTime.Unix() != cond.LastTransitionTime.Unix() || c2.LastHeartbeatTime.Unix() != cond.LastHeartbeatTime.Unix() {
		t.Errorf("second Register changed the condition: %+v, was %+v", c2, cond)
	}
	if statusWrites(client) != 1 {
		t.Errorf("second Register wrote the status again (%d writes)", statusWrites(client))
	}

	// Flannel-compatible: Flannel's annotations too, which a Flannel node
	// reads and which the model leaves to ringnet's.
	r.FlannelCompatible = true
	if err := Register(ctx, client, "node-a", r); err != nil {
		t.Fatal(err)
	}
	got = getNode(t, client, "node-a")
	want[FlannelBackendType] = "vxlan"
	want[FlannelBackendData] = `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:01"}`
	want[FlannelPublicIP] = "192.168.50.1"
	want[FlannelKubeSubnetManager] = "true"
	if diff := cmp.Diff(want, got.Annotations); diff != "" {
		t.Errorf("Flannel-compatible annotations (-want +got):\n%s", diff)
	}
	if m, ok, _ := convertNode(got, 1, "node-a"); !ok || m.Backend != cluster.BackendRingnet || m.Address != r.Address {
		t.Errorf("convertNode of a Flannel-compatible node = %+v, %v; want ringnet", m, ok)
	}
	// ...and that a Flannel reading them would take as a vxlan lease.
	other := got.DeepCopy()
	delete(other.Annotations, AnnotationUnderlay)
	other.Name = "seen-as-flannel"
	if m, ok, why := convertNode(other, 1, "node-a"); !ok || m.Backend != cluster.BackendFlannel || m.VtepMAC.String() != "02:42:c0:a8:32:01" ||
		m.Address != pfx("192.168.50.1/32") {
		t.Errorf("Flannel's annotations read back as %+v, %v, %q", m, ok, why.msg)
	}
	if statusWrites(client) != 1 {
		t.Errorf("Flannel-compatible Register rewrote the status (%d writes)", statusWrites(client))
	}

	// A registration without a VTEP MAC removes ringnet's; Flannel's,
	// once written, are left.
	if err := Register(ctx, client, "node-a", Registration{Address: pfx("192.168.50.1/24")}); err != nil {
		t.Fatal(err)
	}
	got = getNode(t, client, "node-a")
	delete(want, AnnotationVtepMAC)
	if diff := cmp.Diff(want, got.Annotations); diff != "" {
		t.Errorf("annotations without VTEP MAC (-want +got):\n%s", diff)
	}
}

// TestRegisterFlannelDefaultVNI: VNI zero is Flannel's default in
// backend-data.
func TestRegisterFlannelDefaultVNI(t *testing.T) {
	client := fake.NewClientset(knode("node-a", nil))
	r := Registration{Address: pfx("10.0.0.1/24"), VtepMAC: mac("02:00:00:00:00:01"), FlannelCompatible: true}
	if err := Register(context.Background(), client, "node-a", r); err != nil {
		t.Fatal(err)
	}
	var data struct{ VNI uint32 }
	if err := json.Unmarshal([]byte(getNode(t, client, "node-a").Annotations[FlannelBackendData]), &data); err != nil || data.VNI != cluster.DefaultVNI {
		t.Errorf("backend-data VNI %d (%v), want %d", data.VNI, err, cluster.DefaultVNI)
	}
}

// TestRegisterCondition: a NetworkUnavailable someone else set (True, or
// False for another network) becomes ringnet's; the transition time moves
// only with the status.
func TestRegisterCondition(t *testing.T) {
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, tt := range []struct {
		status     corev1.ConditionStatus
		reason     string
		transition bool
	}{
		{corev1.ConditionTrue, "NoRouteCreated", true},
		{corev1.ConditionFalse, "FlannelIsUp", false},
	} {
		n := knode("node-a", nil)
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: tt.status, Reason: tt.reason, LastTransitionTime: old, LastHeartbeatTime: old}}
		client := fake.NewClientset(n)
		if err := Register(context.Background(), client, "node-a", Registration{Address: pfx("10.0.0.1/24")}); err != nil {
			t.Fatal(err)
		}
		cond, count := networkCondition(getNode(t, client, "node-a"))
		if count != 1 || cond.Status != corev1.ConditionFalse || cond.Reason != ConditionReason || cond.Message != ConditionMessage {
			t.Errorf("from %s/%s: %+v (%d of them)", tt.status, tt.reason, cond, count)
		}
		if moved := !cond.LastTransitionTime.Equal(&old); moved != tt.transition {
			t.Errorf("from %s/%s: transition time moved %v, want %v", tt.status, tt.reason, moved, tt.transition)
		}
	}
}

func TestRegisterErrors(t *testing.T) {
	client := fake.NewClientset(knode("node-a", nil))
	ctx := context.Background()
	for _, tt := range []struct {
		node string
		r    Registration
		want string
	}{
		{"node-z", Registration{Address: pfx("10.0.0.1/24")}, "kubectl get nodes"},
		{"node-a", Registration{}, "not an IPv4 address with its subnet length"},
		{"node-a", Registration{Address: pfx("fd00::1/64")}, "not an IPv4 address"},
		{"node-a", Registration{Address: pfx("10.0.0.1/24"), VtepMAC: []byte{1, 2}}, "not an Ethernet MAC"},
		{"node-a", Registration{Address: pfx("10.0.0.1/24"), FlannelCompatible: true}, "needs a VTEP MAC"},
	} {
		if err := Register(ctx, client, tt.node, tt.r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Register(%s, %+v) = %v, want an error saying %q", tt.node, tt.r, err, tt.want)
		}
	}
	if a := getNode(t, client, "node-a").Annotations; len(a) != 0 {
		t.Errorf("failed registrations wrote %v", a)
	}
}

// TestRegisterConflict: a status write that loses a race is retried on
// the node as it now is.
func TestRegisterConflict(t *testing.T) {
	client := fake.NewClientset(knode("node-a", nil))
	conflicts := 2
	client.PrependReactor("update", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "node-a", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	if err := Register(context.Background(), client, "node-a", Registration{Address: pfx("10.0.0.1/24")}); err != nil {
		t.Fatalf("Register after conflicts: %v", err)
	}
	if cond, count := networkCondition(getNode(t, client, "node-a")); count != 1 || cond.Status != corev1.ConditionFalse {
		t.Errorf("after conflicts: %+v (%d)", cond, count)
	}
}

func TestPodCIDRs(t *testing.T) {
	ctx := context.Background()
	t.Run("already set", func(t *testing.T) {
		client := fake.NewClientset(knode("node-a", cidr("10.244.1.0/24", "fd00:244:1::/64")))
		got, err := PodCIDRs(ctx, client, "node-a")
		if err != nil || !cmp.Equal(got, pfxs("10.244.1.0/24", "fd00:244:1::/64"), cmpPrefix) {
			t.Errorf("PodCIDRs = %v, %v", got, err)
		}
	})
	t.Run("waits until set", func(t *testing.T) {
		client := fake.NewClientset(knode("node-a", nil), knode("node-b", nil))
		watching := make(chan struct{})
		client.PrependWatchReactor("nodes", func(k8stesting.Action) (bool, watch.Interface, error) {
			close(watching)
			return false, nil, nil
		})
		type result struct {
			p   []netip.Prefix
			err error
		}
		done := make(chan result, 1)
		go func() {
			p, err := PodCIDRs(ctx, client, "node-a")
			done <- result{p, err}
		}()
		<-watching
		nodes := client.CoreV1().Nodes()
		// Another node's CIDR, and this node's other changes, do not end the wait.
		b := knode("node-b", cidr("10.244.2.0/24"))
		if _, err := nodes.Update(ctx, b, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		a := knode("node-a", nil, "some", "annotation")
		if _, err := nodes.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			t.Fatalf("PodCIDRs returned %v, %v before node-a had pod CIDRs", r.p, r.err)
		case <-time.After(100 * time.Millisecond):
		}
		a.Spec.PodCIDR = "10.244.1.9/24" // spec.podCIDR alone, host bits set
		if _, err := nodes.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.err != nil || !cmp.Equal(r.p, pfxs("10.244.1.0/24"), cmpPrefix) {
				t.Errorf("PodCIDRs = %v, %v; want [10.244.1.0/24]", r.p, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("PodCIDRs still waiting 10s after the pod CIDR was set")
		}
	})
	t.Run("node created later", func(t *testing.T) {
		client := fake.NewClientset()
		done := make(chan error, 1)
		var got []netip.Prefix
		go func() {
			var err error
			got, err = PodCIDRs(ctx, client, "node-a")
			done <- err
		}()
		time.Sleep(20 * time.Millisecond) // before or after the watch: either way it must be seen
		if _, err := client.CoreV1().Nodes().Create(ctx, knode("node-a", cidr("10.244.1.0/24")), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil || !cmp.Equal(got, pfxs("10.244.1.0/24"), cmpPrefix) {
				t.Errorf("PodCIDRs = %v, %v", got, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("PodCIDRs still waiting 10s after the node was created")
		}
	})
	t.Run("ctx done", func(t *testing.T) {
		client := fake.NewClientset(knode("node-a", nil))
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if got, err := PodCIDRs(ctx, client, "node-a"); err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timed out") {
			t.Errorf("PodCIDRs = %v, %v; want the context's error", got, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		client := fake.NewClientset(knode("node-a", cidr("10.244.1.0")))
		if got, err := PodCIDRs(ctx, client, "node-a"); err == nil || !strings.Contains(err.Error(), `"10.244.1.0"`) {
			t.Errorf("PodCIDRs = %v, %v; want a parse error", got, err)
		}
	})
}
