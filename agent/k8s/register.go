package k8s

// This node's side: its annotations, its NetworkUnavailable condition,
// and waiting for its pod CIDRs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
)

// Registration is what this node tells the cluster about itself.
type Registration struct {
	// Address is this node's underlay IPv4 address with its subnet length.
	Address netip.Prefix
	// VtepMAC is the inner destination MAC of VXLAN frames to this node.
	// Optional, but FlannelCompatible needs it.
	VtepMAC net.HardwareAddr
	// VNI is written in Flannel's backend-data; zero means
	// cluster.DefaultVNI. Used only with FlannelCompatible.
	VNI uint32
	// FlannelCompatible also publishes Flannel's annotations, so that
	// Flannel nodes reach this node's pods as they reach each other's.
	FlannelCompatible bool
}

// The NetworkUnavailable condition Register sets.
const (
	ConditionReason  = "RingnetIsUp"
	ConditionMessage = "ringnetd is running on this node"
)

// Register writes this node's annotations (ringnet's, and Flannel's
// backend-type, backend-data, public-ip and kube-subnet-manager when
// r.FlannelCompatible) with a JSON merge patch, and sets the node's
// NetworkUnavailable condition to False (reason RingnetIsUp) through the
// status subresource. Registering again with the same r changes nothing.
func Register(ctx context.Context, client kubernetes.Interface, node string, r Registration) error {
	patch, err := registrationPatch(r)
	if err != nil {
		return err
	}
	nodes := client.CoreV1().Nodes()
	if _, err := nodes.Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotate node %s: %w", node, hint(err, node))
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !setNetworkAvailable(&n.Status.Conditions, metav1.Now()) {
			return nil
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set node %s's NetworkUnavailable condition to False: %w", node, hint(err, node))
	}
	return nil
}

// registrationPatch is the merge patch of r's annotations. A ringnet
// annotation r has no value for is removed (null); Flannel's are left as
// they are unless r is Flannel-compatible.
func registrationPatch(r Registration) ([]byte, error) {
	a := r.Address.Addr()
	if !r.Address.IsValid() || !a.Is4() {
		return nil, fmt.Errorf("register: address %v is not an IPv4 address with its subnet length (such as 192.168.50.1/24)", r.Address)
	}
	if r.VtepMAC != nil && len(r.VtepMAC) != 6 {
		return nil, fmt.Errorf("register: VTEP MAC %v is not an Ethernet MAC", r.VtepMAC)
	}
	ann := map[string]*string{AnnotationUnderlay: ptr(r.Address.String()), AnnotationVtepMAC: nil}
	if r.VtepMAC != nil {
		ann[AnnotationVtepMAC] = ptr(r.VtepMAC.String())
	}
	if r.FlannelCompatible {
		if r.VtepMAC == nil {
			return nil, errors.New("register: Flannel-compatible registration needs a VTEP MAC (Flannel nodes address this node's VTEP by it)")
		}
		vni := r.VNI
		if vni == 0 {
			vni = cluster.DefaultVNI
		}
		data, err := json.Marshal(struct {
			VNI     uint32
			VtepMAC string
		}{vni, r.VtepMAC.String()})
		if err != nil {
			return nil, err
		}
		ann[FlannelBackendType] = ptr("vxlan")
		ann[FlannelBackendData] = ptr(string(data))
		ann[FlannelPublicIP] = ptr(a.String())
		ann[FlannelKubeSubnetManager] = ptr("true")
	}
	return json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
}

func ptr[T any](v T) *T { return &v }

// setNetworkAvailable sets NetworkUnavailable to False, reason
// RingnetIsUp, in conds, and reports whether that changed anything. The
// transition time moves only when the status does.
func setNetworkAvailable(conds *[]corev1.NodeCondition, now metav1.Time) bool {
	want := corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse,
		Reason: ConditionReason, Message: ConditionMessage,
		LastHeartbeatTime: now, LastTransitionTime: now,
	}
	for i := range *conds {
		c := &(*conds)[i]
		if c.Type != corev1.NodeNetworkUnavailable {
			continue
		}
		if c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message {
			return false
		}
		if c.Status == want.Status {
			want.LastTransitionTime = c.LastTransitionTime
		}
		*c = want
		return true
	}
	*conds = append(*conds, want)
	return true
}

// hint adds what to do to an error about this node.
func hint(err error, node string) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w; the node name must be the node's in Kubernetes (kubectl get nodes)", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w; ringnetd's service account needs get, list, watch and patch on nodes and update on nodes/status", err)
	}
	return err
}

// PodCIDRs waits, until ctx is done, for the node to have pod CIDRs
// (spec.podCIDRs, or spec.podCIDR) and returns them, masked: ringnetd's
// IPAM takes its addresses from them. The node need not exist yet.
func PodCIDRs(ctx context.Context, client kubernetes.Interface, node string) ([]netip.Prefix, error) {
	var cidrs []netip.Prefix
	var bad error
	has := func(obj runtime.Object) bool {
		n, ok := obj.(*corev1.Node)
		if !ok || n.Name != node {
			return false
		}
		cidrs, bad = podCIDRsOf(n)
		return len(cidrs) > 0 || bad != nil
	}
	result := func() ([]netip.Prefix, error) {
		if bad != nil {
			return nil, fmt.Errorf("node %s: %w", node, bad)
		}
		return cidrs, nil
	}
	nodes := client.CoreV1().Nodes()
	if n, err := nodes.Get(ctx, node, metav1.GetOptions{}); err == nil && has(n) {
		return result()
	} else if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get node %s: %w", node, hint(err, node))
	}
	sel := fields.OneTermEqualSelector("metadata.name", node).String()
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return nodes.Watch(ctx, o)
		},
	}, client)
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(e watch.Event) (bool, error) {
		return (e.Type == watch.Added || e.Type == watch.Modified) && has(e.Object), nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for node %s's pod CIDRs: %w", node, err)
	}
	return result()
}

// podCIDRsOf is a node's pod CIDRs, masked.
func podCIDRsOf(n *corev1.Node) ([]netip.Prefix, error) {
	ss := n.Spec.PodCIDRs
	if len(ss) == 0 && n.Spec.PodCIDR != "" {
		ss = []string{n.Spec.PodCIDR}
	}
	var ps []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("pod CIDR %q does not parse: %w", s, err)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}
