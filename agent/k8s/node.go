package k8s

// Nodes: the informer, and a Kubernetes Node as a cluster.Node.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/ringnet/ringnet/agent/cluster"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
)

// The annotations ringnetd writes on its node (Register) and reads on the
// others.
const (
	// AnnotationUnderlay is the node's underlay IPv4 address with its
	// subnet length, such as "192.168.50.1/24".
	AnnotationUnderlay = "ringnet.io/underlay"
	// AnnotationVtepMAC is the inner destination MAC of VXLAN frames to
	// the node, such as "02:42:c0:a8:32:01". Optional.
	AnnotationVtepMAC = "ringnet.io/vtep-mac"
)

// Flannel's annotations (its kube subnet manager's, prefix
// flannel.alpha.coreos.com), read on Flannel nodes and written by
// Register when asked to be Flannel-compatible.
const (
	// FlannelBackendType is the backend: only "vxlan" is supported.
	FlannelBackendType = "flannel.alpha.coreos.com/backend-type"
	// FlannelBackendData is the vxlan backend's JSON:
	// {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}.
	FlannelBackendData = "flannel.alpha.coreos.com/backend-data"
	// FlannelPublicIP is the node's underlay IPv4 address, without length.
	FlannelPublicIP = "flannel.alpha.coreos.com/public-ip"
	// FlannelKubeSubnetManager is "true" on nodes Flannel's kube subnet
	// manager takes into account; Flannel ignores nodes without it.
	FlannelKubeSubnetManager = "flannel.alpha.coreos.com/kube-subnet-manager"
)

// watchNodes adds the node informer to f, its events noted in
// s.nodeEvents, and keeps its lister for build.
func (s *Source) watchNodes(f informers.SharedInformerFactory) error {
	inf := f.Core().V1().Nodes()
	// An update that leaves nodeInputs as they were is a resync, a
	// heartbeat, a label: nothing the model reads.
	sameNode := func(o, n *corev1.Node) bool { return nodeInputs(o) == nodeInputs(n) }
	if err := handle(s.nodeEvents, "node", inf.Informer(), sameNode); err != nil {
		return err
	}
	s.nodes = inf.Lister()
	return nil
}

// nodeInputs is every field of a Node that convertNode reads.
func nodeInputs(n *corev1.Node) [7]string {
	a := n.Annotations
	return [7]string{
		n.Spec.PodCIDR, strings.Join(n.Spec.PodCIDRs, ","),
		a[AnnotationUnderlay], a[AnnotationVtepMAC],
		a[FlannelBackendType], a[FlannelBackendData], a[FlannelPublicIP],
	}
}

// slimNode is what the informer keeps of a node: its metadata without
// the managed fields, and its spec. The status (images, conditions,
// addresses) is most of a Node and the model reads none of it. It builds
// a new object rather than trimming n, which may be shared (client-go's
// fake tracker hands out its own).
func slimNode(n *corev1.Node) *corev1.Node {
	s := &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: n.ObjectMeta, Spec: n.Spec}
	s.ManagedFields = nil
	return s
}

// notice is what the source says about one node: why it is left out of
// the model or part of it is. The zero notice says nothing.
type notice struct {
	level slog.Level
	msg   string
}

func noted(level slog.Level, format string, args ...any) notice {
	return notice{level, fmt.Sprintf(format, args...)}
}

// convertNode turns a Kubernetes node into a model node (before defaults
// and validation), or says why it is left out (ok false). The notice may
// also be set for a node that is in, about a part left out. vni is the
// tunnel's VNI, which a Flannel node must use; self is this node's name.
// It never fails on what the API holds: anything malformed is a notice.
func convertNode(n *corev1.Node, vni uint32, self string) (_ cluster.Node, ok bool, _ notice) {
	name := n.Name
	a := n.Annotations
	_, ringnet := a[AnnotationUnderlay]
	_, ftype := a[FlannelBackendType]
	_, fdata := a[FlannelBackendData]
	_, fip := a[FlannelPublicIP]
	flannel := !ringnet && (ftype || fdata || fip)
	switch {
	case name == self && !ringnet:
		return cluster.Node{}, false, noted(slog.LevelDebug, "node %s (this node) has not registered yet: no %s annotation", name, AnnotationUnderlay)
	case !ringnet && !flannel:
		return cluster.Node{}, false, noted(slog.LevelDebug, "node %s is not networked yet: neither ringnet's (%s) nor Flannel's annotations", name, AnnotationUnderlay)
	}

	cidrs, err := podCIDRsOf(n)
	switch {
	case err != nil:
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: %v", name, err)
	case len(cidrs) == 0:
		return cluster.Node{}, false, noted(slog.LevelInfo, "node %s has no pod CIDR yet", name)
	}
	m := cluster.Node{Name: name, PodCIDRs: cidrs}

	if ringnet {
		m.Backend = cluster.BackendRingnet
		u := a[AnnotationUnderlay]
		if m.Address, err = netip.ParsePrefix(u); err != nil {
			return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: %s %q is not an address with its subnet length (such as 192.168.50.1/24)", name, AnnotationUnderlay, u)
		}
		if v := a[AnnotationVtepMAC]; v != "" {
			if m.VtepMAC, err = net.ParseMAC(v); err != nil {
				return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: %s %q is not a MAC address", name, AnnotationVtepMAC, v)
			}
		}
		return m, true, notice{}
	}

	m.Backend = cluster.BackendFlannel
	if t := a[FlannelBackendType]; t != "vxlan" {
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: Flannel backend %q (%s); ringnet reaches Flannel nodes of backend vxlan only", name, t, FlannelBackendType)
	}
	var data struct {
		VNI     *uint32
		VtepMAC string
	}
	if err := json.Unmarshal([]byte(a[FlannelBackendData]), &data); err != nil {
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: %s %q is not Flannel's vxlan backend data: %v", name, FlannelBackendData, a[FlannelBackendData], err)
	}
	if data.VNI != nil && *data.VNI != vni {
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: its Flannel VNI is %d (%s) but ringnet's is %d; give ringnet Flannel's VNI", name, *data.VNI, FlannelBackendData, vni)
	}
	if m.VtepMAC, err = net.ParseMAC(data.VtepMAC); err != nil {
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: VtepMAC %q in %s is not a MAC address", name, data.VtepMAC, FlannelBackendData)
	}
	ip, err := netip.ParseAddr(a[FlannelPublicIP])
	if err != nil || !ip.Is4() {
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: %s %q is not an IPv4 address", name, FlannelPublicIP, a[FlannelPublicIP])
	}
	m.Address = netip.PrefixFrom(ip, 32)

	var v4 []netip.Prefix
	var dropped []netip.Prefix
	for _, p := range m.PodCIDRs {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			dropped = append(dropped, p)
		}
	}
	if len(v4) == 0 {
		return cluster.Node{}, false, noted(slog.LevelWarn, "node %s left out: a Flannel node with no IPv4 pod CIDR (%v); ringnet reaches Flannel nodes over IPv4 only", name, m.PodCIDRs)
	}
	m.PodCIDRs = v4
	if len(dropped) > 0 {
		return m, true, noted(slog.LevelInfo, "node %s is a Flannel node: its IPv6 pod CIDR %v is left out, ringnet reaches Flannel nodes over IPv4 VXLAN only", name, dropped)
	}
	return m, true, notice{}
}
