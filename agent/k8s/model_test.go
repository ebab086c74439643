package k8s

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/tables/route"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func pfxs(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, pfx(s))
	}
	return ps
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// knode is a Kubernetes node with pod CIDRs (spec.podCIDRs) and
// annotations given as key, value, key, value...
func knode(name string, cidrs []string, kv ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}}}
	n.Spec.PodCIDRs = cidrs
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Annotations[kv[i]] = kv[i+1]
	}
	return n
}

// ringnetAnn are a ringnet node's annotations.
func ringnetAnn(underlay, vtep string) []string {
	return []string{AnnotationUnderlay, underlay, AnnotationVtepMAC, vtep}
}

// flannelAnn are a Flannel vxlan node's annotations.
func flannelAnn(publicIP, data string) []string {
	return []string{FlannelBackendType, "vxlan", FlannelBackendData, data, FlannelPublicIP, publicIP, FlannelKubeSubnetManager, "true"}
}

func cidr(ss ...string) []string { return ss }

// TestBuildModel is the conversion table of the package documentation,
// node by node, and the model's pre-checks.
func TestBuildModel(t *testing.T) {
	const self = "node-a"
	vxlan := cluster.Tunnel{Mode: cluster.ModeVXLAN, VXLANPort: 8472, VNI: 1}
	type note struct {
		level slog.Level
		has   []string // substrings of the message
	}
	tests := []struct {
		name   string
		tunnel cluster.Tunnel
		nodes  []*corev1.Node
		want   []cluster.Node // nil: nothing to publish
		notes  map[string]note
	}{
		{
			name:  "ringnet node",
			nodes: []*corev1.Node{knode("node-a", cidr("10.244.1.0/24", "fd00:244:1::/64"), ringnetAnn("192.168.50.1/24", "02:42:c0:a8:32:01")...)},
			want: []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24", "fd00:244:1::/64"),
				Backend: cluster.BackendRingnet, VtepMAC: mac("02:42:c0:a8:32:01")}},
		},
		{
			name:  "ringnet node without VTEP MAC",
			nodes: []*corev1.Node{knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24")},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet}},
		},
		{
			name: "flannel node, spec.podCIDR only, backend-data without VNI",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
				func() *corev1.Node {
					n := knode("node-c", nil, flannelAnn("192.168.50.3", `{"VtepMAC":"02:42:c0:a8:32:03"}`)...)
					n.Spec.PodCIDR = "10.244.3.0/24"
					return n
				}(),
			},
			want: []cluster.Node{
				{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet},
				{Name: "node-c", Address: pfx("192.168.50.3/24"), PodCIDRs: pfxs("10.244.3.0/24"), Backend: cluster.BackendFlannel, VtepMAC: mac("02:42:c0:a8:32:03")},
			},
		},
		{
			name:  "flannel node",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.50.3", `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:03"}`)...)},
			want:  []cluster.Node{{Name: "node-c", Address: pfx("192.168.50.3/32"), PodCIDRs: pfxs("10.244.3.0/24"), Backend: cluster.BackendFlannel, VtepMAC: mac("02:42:c0:a8:32:03")}},
		},
		{
			name:  "flannel dual-stack node keeps IPv4",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24", "fd00:244:3::/64"), flannelAnn("192.168.50.3", `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:03"}`)...)},
			want:  []cluster.Node{{Name: "node-c", Address: pfx("192.168.50.3/32"), PodCIDRs: pfxs("10.244.3.0/24"), Backend: cluster.BackendFlannel, VtepMAC: mac("02:42:c0:a8:32:03")}},
			notes: map[string]note{"node-c": {slog.LevelInfo, []string{"fd00:244:3::/64", "IPv4 VXLAN only"}}},
		},
		{
			name:  "flannel IPv6-only node",
			nodes: []*corev1.Node{knode("node-c", cidr("fd00:244:3::/64"), flannelAnn("192.168.50.3", `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:03"}`)...)},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{"no IPv4 pod CIDR"}}},
		},
		{
			name: "both annotation sets: ringnet wins",
			nodes: []*corev1.Node{knode("node-b", cidr("10.244.2.0/24"),
				append(ringnetAnn("192.168.50.2/24", "02:42:c0:a8:32:02"), flannelAnn("192.168.50.2", `{"VNI":1,"VtepMAC":"0e:00:00:00:00:02"}`)...)...)},
			want: []cluster.Node{{Name: "node-b", Address: pfx("192.168.50.2/24"), PodCIDRs: pfxs("10.244.2.0/24"), Backend: cluster.BackendRingnet, VtepMAC: mac("02:42:c0:a8:32:02")}},
		},
		{
			name: "neither: not networked yet",
			nodes: []*corev1.Node{
				knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "192.168.50.2/24"),
				knode("node-z", cidr("10.244.9.0/24"), "other", "x"),
			},
			want:  []cluster.Node{{Name: "node-b", Address: pfx("192.168.50.2/24"), PodCIDRs: pfxs("10.244.2.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-z": {slog.LevelDebug, []string{"not networked yet"}}},
		},
		{
			name:  "no pod CIDR yet",
			nodes: []*corev1.Node{knode("node-b", nil, ringnetAnn("192.168.50.2/24", "02:42:c0:a8:32:02")...)},
			notes: map[string]note{"node-b": {slog.LevelInfo, []string{"node node-b has no pod CIDR yet"}}},
		},
		{
			name:  "pod CIDR masked",
			nodes: []*corev1.Node{knode("node-b", cidr("10.244.2.7/24"), AnnotationUnderlay, "192.168.50.2/24")},
			want:  []cluster.Node{{Name: "node-b", Address: pfx("192.168.50.2/24"), PodCIDRs: pfxs("10.244.2.0/24"), Backend: cluster.BackendRingnet}},
		},
		{
			name:  "pod CIDR does not parse",
			nodes: []*corev1.Node{knode("node-b", cidr("10.244.2.0"), AnnotationUnderlay, "192.168.50.2/24")},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{`"10.244.2.0"`}}},
		},
		{
			name:  "bad backend-data JSON",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.50.3", `{"VNI":1,"VtepMAC":`)...)},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{FlannelBackendData, "not Flannel's vxlan backend data"}}},
		},
		{
			name:  "backend-data without VtepMAC",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.50.3", `{"VNI":1}`)...)},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{"VtepMAC"}}},
		},
		{
			name:  "wrong VNI",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.50.3", `{"VNI":4096,"VtepMAC":"02:42:c0:a8:32:03"}`)...)},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{"VNI is 4096", "ringnet's is 1"}}},
		},
		{
			name:   "VNI as the tunnel's",
			tunnel: cluster.Tunnel{Mode: cluster.ModeVXLAN, VXLANPort: 8472, VNI: 4096},
			nodes:  []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.50.3", `{"VNI":4096,"VtepMAC":"02:42:c0:a8:32:03"}`)...)},
			want:   []cluster.Node{{Name: "node-c", Address: pfx("192.168.50.3/32"), PodCIDRs: pfxs("10.244.3.0/24"), Backend: cluster.BackendFlannel, VtepMAC: mac("02:42:c0:a8:32:03")}},
		},
		{
			name: "host-gw backend",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"),
				FlannelBackendType, "host-gw", FlannelBackendData, "null", FlannelPublicIP, "192.168.50.3")},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{`"host-gw"`, "vxlan only"}}},
		},
		{
			name:  "flannel public-ip not IPv4",
			nodes: []*corev1.Node{knode("node-c", cidr("10.244.3.0/24"), flannelAnn("fd00::3", `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:03"}`)...)},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{FlannelPublicIP}}},
		},
		{
			name:  "underlay without length",
			nodes: []*corev1.Node{knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "192.168.50.2")},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{AnnotationUnderlay, `"192.168.50.2"`}}},
		},
		{
			name:  "bad VTEP MAC",
			nodes: []*corev1.Node{knode("node-b", cidr("10.244.2.0/24"), ringnetAnn("192.168.50.2/24", "02:42")...)},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{AnnotationVtepMAC}}},
		},
		{
			name: "this node before it registers",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), flannelAnn("192.168.50.1", `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:01"}`)...),
				knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "192.168.50.2/24"),
			},
			want:  []cluster.Node{{Name: "node-b", Address: pfx("192.168.50.2/24"), PodCIDRs: pfxs("10.244.2.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-a": {slog.LevelDebug, []string{"this node", "not registered"}}},
		},
		{
			name: "overlapping pod CIDRs: the later-named goes",
			nodes: []*corev1.Node{
				knode("node-c", cidr("10.244.3.0/24"), AnnotationUnderlay, "192.168.50.3/24"),
				knode("node-b", cidr("10.244.0.0/16"), AnnotationUnderlay, "192.168.50.2/24"),
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
			},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet}, {Name: "node-c", Address: pfx("192.168.50.3/24"), PodCIDRs: pfxs("10.244.3.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{"10.244.0.0/16 overlaps node node-a's 10.244.1.0/24"}}},
		},
		{
			name: "same address",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
				knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
			},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{"192.168.50.1 is also node node-a's"}}},
		},
		{
			name: "same VTEP MAC",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), ringnetAnn("192.168.50.1/24", "02:00:00:00:00:01")...),
				knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.50.3", `{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}`)...),
			},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet, VtepMAC: mac("02:00:00:00:00:01")}},
			notes: map[string]note{"node-c": {slog.LevelWarn, []string{"VTEP MAC 02:00:00:00:00:01 is also node node-a's"}}},
		},
		{
			name: "pod CIDR holds another node's address",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
				knode("node-b", cidr("192.168.50.0/28"), AnnotationUnderlay, "192.168.60.2/24"),
			},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{"holds node node-a's address"}}},
		},
		{
			name: "one subnet, two lengths",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
				knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "192.168.50.2/25"),
			},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{"two lengths"}}},
		},
		{
			name: "invalid on its own",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
				knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "fd00::2/64"),
			},
			want:  []cluster.Node{{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet}},
			notes: map[string]note{"node-b": {slog.LevelWarn, []string{"node node-b left out: address: fd00::2/64 is IPv6"}}},
		},
		{
			name:   "direct mode: off this node's subnet",
			tunnel: cluster.Tunnel{Mode: cluster.ModeDirect},
			nodes: []*corev1.Node{
				knode("node-0", cidr("10.244.0.0/24"), AnnotationUnderlay, "192.168.60.9/24"),
				knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24"),
				knode("node-b", cidr("10.244.2.0/24"), AnnotationUnderlay, "192.168.50.2/24"),
				knode("node-c", cidr("10.244.3.0/24"), flannelAnn("192.168.70.3", `{"VNI":1,"VtepMAC":"02:42:c0:a8:32:03"}`)...),
			},
			want: []cluster.Node{
				{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: pfxs("10.244.1.0/24"), Backend: cluster.BackendRingnet},
				{Name: "node-b", Address: pfx("192.168.50.2/24"), PodCIDRs: pfxs("10.244.2.0/24"), Backend: cluster.BackendRingnet},
				{Name: "node-c", Address: pfx("192.168.70.3/32"), PodCIDRs: pfxs("10.244.3.0/24"), Backend: cluster.BackendFlannel, VtepMAC: mac("02:42:c0:a8:32:03")},
			},
			notes: map[string]note{"node-0": {slog.LevelWarn, []string{"tunnel mode direct", "node node-a's 192.168.50.0/24", "crossSubnet"}}},
		},
		{
			name: "nothing qualifies",
			nodes: []*corev1.Node{
				knode("node-a", cidr("10.244.1.0/24")),
				knode("node-b", nil, AnnotationUnderlay, "192.168.50.2/24"),
			},
			notes: map[string]note{
				"node-a": {slog.LevelDebug, []string{"not registered"}},
				"node-b": {slog.LevelInfo, []string{"no pod CIDR yet"}},
			},
		},
		{name: "no nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun := tt.tunnel
			if tun == (cluster.Tunnel{}) {
				tun = vxlan
			}
			c, notes, err := buildModel(tun, self, tt.nodes)
			if err != nil {
				t.Fatalf("buildModel: %v", err)
			}
			if tt.want == nil {
				if c != nil {
					t.Errorf("model %+v, want none", c.Nodes)
				}
			} else if c == nil {
				t.Errorf("no model, want %+v", tt.want)
			} else {
				if diff := cmp.Diff(tt.want, c.Nodes, cmpPrefix); diff != "" {
					t.Errorf("nodes (-want +got):\n%s", diff)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("published model does not validate: %v", err)
				}
				if c.Tunnel.Mode == "" || c.Tunnel.VNI == 0 {
					t.Errorf("tunnel %+v: defaults not applied", c.Tunnel)
				}
				for i := range c.Nodes {
					for j := range c.Nodes {
						a, b := &c.Nodes[i], &c.Nodes[j]
						if i == j || a.Backend != cluster.BackendFlannel && b.Backend != cluster.BackendFlannel {
							continue
						}
						if tun, err := c.TunnelBetween(a, b); err != nil || tun != route.VXLAN {
							t.Errorf("TunnelBetween(%s, %s) = %v, %v; want VXLAN to and from a Flannel node", a.Name, b.Name, tun, err)
						}
					}
				}
			}
			for name, n := range notes {
				w, ok := tt.notes[name]
				if !ok {
					t.Errorf("unexpected notice for %s: %v %q", name, n.level, n.msg)
					continue
				}
				if n.level != w.level {
					t.Errorf("%s: level %v, want %v (%q)", name, n.level, w.level, n.msg)
				}
				for _, s := range w.has {
					if !strings.Contains(n.msg, s) {
						t.Errorf("%s: notice %q does not say %q", name, n.msg, s)
					}
				}
			}
			for name := range tt.notes {
				if _, ok := notes[name]; !ok {
					t.Errorf("no notice for %s", name)
				}
			}
		})
	}
}

// TestNodeInputs: the update filter sees every field convertNode reads,
// and nothing else.
func TestNodeInputs(t *testing.T) {
	base := knode("n", cidr("10.244.1.0/24"), append(ringnetAnn("192.168.50.1/24", "02:00:00:00:00:01"), flannelAnn("192.168.50.1", "{}")...)...)
	edits := map[string]func(n *corev1.Node){
		"podCIDR":  func(n *corev1.Node) { n.Spec.PodCIDR = "10.244.9.0/24" },
		"podCIDRs": func(n *corev1.Node) { n.Spec.PodCIDRs = append(n.Spec.PodCIDRs, "fd00::/64") },
	}
	for _, k := range []string{AnnotationUnderlay, AnnotationVtepMAC, FlannelBackendType, FlannelBackendData, FlannelPublicIP} {
		edits[k] = func(n *corev1.Node) { n.Annotations[k] += "x" }
	}
	for name, edit := range edits {
		n := base.DeepCopy()
		edit(n)
		if nodeInputs(n) == nodeInputs(base) {
			t.Errorf("changing %s is not seen", name)
		}
	}
	n := base.DeepCopy()
	n.Labels = map[string]string{"a": "b"}
	n.Annotations["node.alpha.kubernetes.io/ttl"] = "0"
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	n.ResourceVersion = "42"
	if nodeInputs(n) != nodeInputs(base) {
		t.Error("labels, other annotations, status or resource version count as a change")
	}
}

func TestSlimNode(t *testing.T) {
	n := knode("n", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24")
	n.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"big"}}}
	orig := n.DeepCopy()
	got, err := slim(n)
	if err != nil {
		t.Fatal(err)
	}
	s := got.(*corev1.Node)
	if s.ManagedFields != nil || len(s.Status.Images) != 0 {
		t.Errorf("slim kept managed fields or status: %+v", s)
	}
	if s.Name != "n" || s.Annotations[AnnotationUnderlay] == "" || len(s.Spec.PodCIDRs) != 1 {
		t.Errorf("slim lost what the model reads: %+v", s)
	}
	if diff := cmp.Diff(orig, n); diff != "" {
		t.Errorf("slim changed its input (-was +now):\n%s", diff)
	}
}

func TestTunnelProblem(t *testing.T) {
	for _, tun := range []cluster.Tunnel{
		{Mode: cluster.ModeVXLAN, VXLANPort: 8472, VNI: 1},
		{Mode: cluster.ModeDirect, VXLANPort: 8472, VNI: 1},
		{Mode: cluster.ModeCrossSubnet, CrossSubnetEncap: cluster.ModeIPIP, VXLANPort: 4789, VNI: 42},
	} {
		if err := tunnelProblem(tun); err != nil {
			t.Errorf("tunnelProblem(%+v) = %v", tun, err)
		}
	}
	for _, tun := range []cluster.Tunnel{
		{Mode: "gre", VXLANPort: 8472, VNI: 1},
		{Mode: cluster.ModeVXLAN, VXLANPort: 8472, VNI: 1 << 24},
		{Mode: cluster.ModeVXLAN, CrossSubnetEncap: cluster.ModeIPIP, VXLANPort: 8472, VNI: 1},
	} {
		if err := tunnelProblem(tun); err == nil || !strings.Contains(err.Error(), "tunnel.") {
			t.Errorf("tunnelProblem(%+v) = %v, want a tunnel problem", tun, err)
		}
	}
}

// syncBuffer is a log sink safe for the source's and the test's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBuildLogsOnce: what is said about a node is said once, until it
// changes, and a node that comes in is announced.
func TestBuildLogsOnce(t *testing.T) {
	var logs syncBuffer
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	s := New(nil, Options{NodeName: "node-a", Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s.nodes = listerscorev1.NewNodeLister(idx)
	a := knode("node-a", cidr("10.244.1.0/24"), AnnotationUnderlay, "192.168.50.1/24")
	b := knode("node-b", nil, AnnotationUnderlay, "192.168.50.2/24")
	for _, n := range []*corev1.Node{a, b} {
		if err := idx.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if c := s.build(); c == nil || len(c.Nodes) != 1 {
			t.Fatalf("build = %+v, want node-a alone", c)
		}
	}
	if n := strings.Count(logs.String(), "node node-b has no pod CIDR yet"); n != 1 {
		t.Errorf("said %d times that node-b has no pod CIDR, want once:\n%s", n, logs.String())
	}
	b = b.DeepCopy()
	b.Spec.PodCIDRs = cidr("10.244.2.0/24")
	if err := idx.Update(b); err != nil {
		t.Fatal(err)
	}
	if c := s.build(); c == nil || len(c.Nodes) != 2 {
		t.Fatalf("build = %+v, want node-a and node-b", c)
	}
	if !strings.Contains(logs.String(), "node node-b is in the model now") {
		t.Errorf("node-b's arrival not announced:\n%s", logs.String())
	}
	// Leaving a node out again says so again.
	b = b.DeepCopy()
	b.Spec.PodCIDRs, b.Spec.PodCIDR = nil, ""
	if err := idx.Update(b); err != nil {
		t.Fatal(err)
	}
	s.build()
	if n := strings.Count(logs.String(), "node node-b has no pod CIDR yet"); n != 2 {
		t.Errorf("said %d times that node-b has no pod CIDR, want twice:\n%s", n, logs.String())
	}
}
