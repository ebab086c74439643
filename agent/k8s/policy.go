package k8s

// The NetworkPolicy compiler's input: the informers on Namespaces, Pods
// and NetworkPolicies, what they keep of each object, and the input built
// from them.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ringnet/ringnet/agent/netpol"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersnetworkingv1 "k8s.io/client-go/listers/networking/v1"
)

// PolicyInput is what the NetworkPolicy compiler needs, converted from the API.
//
// Each slice is sorted: namespaces by name, pods and policies by
// namespace, then name. Its label maps and selector slices are shared
// with the informers' cache: treat it as read-only.
type PolicyInput struct {
	Namespaces []netpol.Namespace
	Pods       []netpol.Pod // every pod in the cluster, with its addresses (those of hostNetwork and finished pods excluded, as convertPod does)
	Policies   []netpol.NetworkPolicy
}

// RunPolicy starts shared informers on Namespaces, Pods and NetworkPolicies (networking.k8s.io/v1), waits
// for sync, then calls publish with the complete input each time any of them changes, debounced like Run
// (Options.Debounce; a burst gives one call), with the first and last API event times. Returns when ctx is done.
// Updates that change nothing the compiler reads (pod status conditions, resourceVersion-only, etc.) do not
// publish. Inputs are sorted deterministically.
//
// The first call comes once the caches have synced, even when the
// cluster has nothing to add (its times are then the sync's). publish is
// called on RunPolicy's goroutine, with a new PolicyInput each time;
// events arriving meanwhile are batched for the next call. RunPolicy
// returns nil when ctx is done; it needs list and watch on pods,
// namespaces and networkpolicies, and waits for sync until it has them.
// Call it once; it may run beside Run.
func (s *Source) RunPolicy(ctx context.Context, publish func(in PolicyInput, firstEvent, lastEvent time.Time)) error {
	return s.follow(ctx, s.policyEvents, s.watchPolicy, func(b batch) {
		in, err := s.policy.input()
		if err != nil { // a lister over a local store does not fail
			s.log.Error("list the policy input from the informers' caches", "err", err)
			return
		}
		publish(in, b.first, b.last)
	})
}

// policyListers are RunPolicy's informers' listers.
type policyListers struct {
	namespaces listerscorev1.NamespaceLister
	pods       listerscorev1.PodLister
	policies   listersnetworkingv1.NetworkPolicyLister
}

// watchPolicy adds the namespace, pod and NetworkPolicy informers to f,
// their events noted in s.policyEvents, and keeps their listers.
func (s *Source) watchPolicy(f informers.SharedInformerFactory) error {
	e := s.policyEvents
	nss, pods, nps := f.Core().V1().Namespaces(), f.Core().V1().Pods(), f.Networking().V1().NetworkPolicies()
	if err := errors.Join(
		handle(e, "namespace", nss.Informer(), sameNamespace),
		handle(e, "pod", pods.Informer(), samePod),
		handle(e, "networkpolicy", nps.Informer(), sameNetworkPolicy),
	); err != nil {
		return err
	}
	s.policy = policyListers{nss.Lister(), pods.Lister(), nps.Lister()}
	return nil
}

// The update filters: whether two versions of an object convert alike.
// A namespace or pod keeps its name (the informer's key).

func sameNamespace(a, b *corev1.Namespace) bool { return maps.Equal(a.Labels, b.Labels) }

func samePod(a, b *corev1.Pod) bool {
	x, y := convertPod(a), convertPod(b)
	return maps.Equal(x.Labels, y.Labels) && slices.Equal(x.IPs, y.IPs) && slices.Equal(x.Ports, y.Ports)
}

// sameNetworkPolicy compares the specs, which convertNetworkPolicy reads
// whole, nil and empty alike.
func sameNetworkPolicy(a, b *networkingv1.NetworkPolicy) bool {
	return equality.Semantic.DeepEqual(a.Spec, b.Spec)
}

// input is the policy input of the listers' objects.
func (l *policyListers) input() (PolicyInput, error) {
	nss, err := l.namespaces.List(labels.Everything())
	if err != nil {
		return PolicyInput{}, fmt.Errorf("namespaces: %w", err)
	}
	pods, err := l.pods.List(labels.Everything())
	if err != nil {
		return PolicyInput{}, fmt.Errorf("pods: %w", err)
	}
	nps, err := l.policies.List(labels.Everything())
	if err != nil {
		return PolicyInput{}, fmt.Errorf("networkpolicies: %w", err)
	}
	return policyInput(nss, pods, nps), nil
}

// policyInput converts the objects and sorts them.
func policyInput(nss []*corev1.Namespace, pods []*corev1.Pod, nps []*networkingv1.NetworkPolicy) PolicyInput {
	in := PolicyInput{
		Namespaces: make([]netpol.Namespace, len(nss)),
		Pods:       make([]netpol.Pod, len(pods)),
		Policies:   make([]netpol.NetworkPolicy, len(nps)),
	}
	for i, ns := range nss {
		in.Namespaces[i] = convertNamespace(ns)
	}
	for i, p := range pods {
		in.Pods[i] = convertPod(p)
	}
	for i, np := range nps {
		in.Policies[i] = convertNetworkPolicy(np)
	}
	slices.SortFunc(in.Namespaces, func(a, b netpol.Namespace) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(in.Pods, func(a, b netpol.Pod) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(in.Policies, func(a, b netpol.NetworkPolicy) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return in
}

// What the informers keep. Each slim function builds a new object rather
// than trimming its argument, which may be shared (client-go's fake
// tracker hands out its own), and is idempotent.

// slimMeta is the metadata kept of a namespace, pod or NetworkPolicy:
// what the store keys it by and the conversions read (name, namespace,
// labels), and its UID and resource version. Annotations (kubectl's
// last-applied configuration among them), owner references, finalizers
// and managed fields go.
func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion, Labels: m.Labels}
}

// slimNamespace keeps the metadata; the spec and status (finalizers,
// phase) go.
func slimNamespace(ns *corev1.Namespace) *corev1.Namespace {
	return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: slimMeta(&ns.ObjectMeta)}
}

// slimPod keeps what convertPod reads: the metadata, hostNetwork, the
// name, ports and restart policy of each container and init container
// with ports, the phase and the addresses. The rest of the spec (volumes,
// images, env, resources) and of the status (conditions, container
// statuses), most of a Pod, goes.
func slimPod(p *corev1.Pod) *corev1.Pod {
	s := &corev1.Pod{TypeMeta: p.TypeMeta, ObjectMeta: slimMeta(&p.ObjectMeta)}
	s.Spec.HostNetwork = p.Spec.HostNetwork
	s.Spec.Containers = slimContainers(p.Spec.Containers)
	s.Spec.InitContainers = slimContainers(p.Spec.InitContainers)
	s.Status.Phase, s.Status.PodIP, s.Status.PodIPs = p.Status.Phase, p.Status.PodIP, p.Status.PodIPs
	return s
}

func slimContainers(cs []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for i := range cs {
		if c := &cs[i]; len(c.Ports) > 0 {
			out = append(out, corev1.Container{Name: c.Name, Ports: c.Ports, RestartPolicy: c.RestartPolicy})
		}
	}
	return out
}

// slimNetworkPolicy keeps the metadata and the spec.
func slimNetworkPolicy(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{TypeMeta: np.TypeMeta, ObjectMeta: slimMeta(&np.ObjectMeta), Spec: np.Spec}
}
