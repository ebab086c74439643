package k8s

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addrs(ss ...string) []netip.Addr {
	var as []netip.Addr
	for _, s := range ss {
		as = append(as, netip.MustParseAddr(s))
	}
	return as
}

// kpod is a running pod with labels, addresses and containers.
func kpod(ns, name string, labels map[string]string, ips []string, containers ...corev1.Container) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	p.Spec.Containers = containers
	p.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		p.Status.PodIP = ips[0]
	}
	return p
}

func container(ports ...corev1.ContainerPort) corev1.Container {
	return corev1.Container{Name: "c", Ports: ports}
}

func TestConvertPod(t *testing.T) {
	web := container(
		corev1.ContainerPort{Name: "http", ContainerPort: 8080}, // protocol "" is TCP
		corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		corev1.ContainerPort{Name: "assoc", ContainerPort: 9, Protocol: corev1.ProtocolSCTP},
		corev1.ContainerPort{ContainerPort: 9090},                               // no name: left out
		corev1.ContainerPort{Name: "weird", ContainerPort: 7, Protocol: "ICMP"}, // no such protocol
		corev1.ContainerPort{Name: "zero", ContainerPort: 0},                    // no such port
	)
	labels := map[string]string{"app": "web"}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want netpol.Pod
	}{
		{
			name: "dual stack, named ports",
			pod:  kpod("shop", "web-1", labels, []string{"10.244.1.5", "fd00::1:5"}, web),
			want: netpol.Pod{Namespace: "shop", Name: "web-1", Labels: labels, IPs: addrs("10.244.1.5", "fd00::1:5"), Ports: []netpol.NamedPort{
				{Name: "http", Proto: policy.TCP, Port: 8080}, {Name: "dns", Proto: policy.UDP, Port: 53}, {Name: "assoc", Proto: policy.SCTP, Port: 9},
			}},
		},
		{
			name: "podIP without podIPs, IPv4-mapped: unmapped",
			pod: func() *corev1.Pod {
				p := kpod("shop", "web-2", labels, nil)
				p.Status.PodIP = "::ffff:10.244.1.6"
				return p
			}(),
			want: netpol.Pod{Namespace: "shop", Name: "web-2", Labels: labels, IPs: addrs("10.244.1.6")},
		},
		{
			name: "an address that does not parse",
			pod:  kpod("shop", "web-3", nil, []string{"10.244.1.300", "10.244.1.7"}),
			want: netpol.Pod{Namespace: "shop", Name: "web-3", IPs: addrs("10.244.1.7")},
		},
		{
			name: "sidecar ports count, other init containers' do not",
			pod: func() *corev1.Pod {
				p := kpod("shop", "web-4", nil, []string{"10.244.1.8"})
				p.Spec.InitContainers = []corev1.Container{
					{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 1}}},
					{Name: "proxy", RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001}}},
				}
				return p
			}(),
			want: netpol.Pod{Namespace: "shop", Name: "web-4", IPs: addrs("10.244.1.8"), Ports: []netpol.NamedPort{{Name: "proxy", Proto: policy.TCP, Port: 15001}}},
		},
		{
			name: "host network: no addresses",
			pod: func() *corev1.Pod {
				p := kpod("kube-system", "kube-proxy-x", labels, []string{"192.168.50.1"}, web)
				p.Spec.HostNetwork = true
				return p
			}(),
			want: netpol.Pod{Namespace: "kube-system", Name: "kube-proxy-x", Labels: labels, Ports: []netpol.NamedPort{
				{Name: "http", Proto: policy.TCP, Port: 8080}, {Name: "dns", Proto: policy.UDP, Port: 53}, {Name: "assoc", Proto: policy.SCTP, Port: 9},
			}},
		},
		{
			name: "finished: no addresses",
			pod: func() *corev1.Pod {
				p := kpod("batch", "job-1", nil, []string{"10.244.1.9"})
				p.Status.Phase = corev1.PodSucceeded
				return p
			}(),
			want: netpol.Pod{Namespace: "batch", Name: "job-1"},
		},
		{
			name: "failed: no addresses",
			pod: func() *corev1.Pod {
				p := kpod("batch", "job-2", nil, []string{"10.244.1.10"})
				p.Status.Phase = corev1.PodFailed
				return p
			}(),
			want: netpol.Pod{Namespace: "batch", Name: "job-2"},
		},
		{
			name: "pending: no addresses yet",
			pod:  kpod("shop", "web-5", labels, nil),
			want: netpol.Pod{Namespace: "shop", Name: "web-5", Labels: labels},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, convertPod(tc.pod), cmpAddr); diff != "" {
				t.Errorf("convertPod (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "red", corev1.LabelMetadataName: "shop"}}}
	want := netpol.Namespace{Name: "shop", Labels: map[string]string{"team": "red", "kubernetes.io/metadata.name": "shop"}}
	if diff := cmp.Diff(want, convertNamespace(ns)); diff != "" {
		t.Errorf("convertNamespace (-want +got):\n%s", diff)
	}
}

func TestConvertNetworkPolicy(t *testing.T) {
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	num := func(n int32) *intstr.IntOrString { return ptr(intstr.FromInt32(n)) }
	name := func(s string) *intstr.IntOrString { return ptr(intstr.FromString(s)) }
	tests := []struct {
		name string
		np   networkingv1.NetworkPolicySpec
		want netpol.NetworkPolicy
	}{
		{
			name: "default deny: empty selector, no types, no rules",
			np:   networkingv1.NetworkPolicySpec{},
			want: netpol.NetworkPolicy{},
		},
		{
			name: "types and allow-all rules",
			np: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
			},
			want: netpol.NetworkPolicy{PolicyTypes: []string{"Ingress", "Egress"}, Ingress: []netpol.Rule{{}}, Egress: []netpol.Rule{{}}},
		},
		{
			name: "selectors and peers",
			np: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{
					MatchLabels:      map[string]string{"app": "web"},
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}}},
				},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}},
					{NamespaceSelector: &metav1.LabelSelector{}},
					{
						PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: metav1.LabelSelectorOpExists}}},
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "mon"}},
					},
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
				}}},
				Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/8"}},
				}}},
			},
			want: netpol.NetworkPolicy{
				PodSelector: netpol.LabelSelector{
					MatchLabels:      map[string]string{"app": "web"},
					MatchExpressions: []netpol.Requirement{{Key: "tier", Operator: "NotIn", Values: []string{"db"}}},
				},
				Ingress: []netpol.Rule{{Peers: []netpol.Peer{
					{PodSelector: &netpol.LabelSelector{MatchLabels: map[string]string{"role": "client"}}},
					{NamespaceSelector: &netpol.LabelSelector{}},
					{
						PodSelector:       &netpol.LabelSelector{MatchExpressions: []netpol.Requirement{{Key: "x", Operator: "Exists"}}},
						NamespaceSelector: &netpol.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "mon"}},
					},
					{IPBlock: &netpol.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
				}}},
				Egress: []netpol.Rule{{Peers: []netpol.Peer{{IPBlock: &netpol.IPBlock{CIDR: "fd00::/8"}}}}},
			},
		},
		{
			name: "ports",
			np: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{},                                   // every TCP port
				{Protocol: &udp},                     // every UDP port
				{Port: num(80)},                      // TCP 80
				{Protocol: &sctp, Port: num(9)},      // SCTP 9
				{Protocol: &tcp, Port: name("http")}, // named
				{Port: num(30000), EndPort: ptr[int32](32767)}, // range
			}}}},
			want: netpol.NetworkPolicy{Ingress: []netpol.Rule{{Ports: []netpol.PolicyPort{
				{},
				{Protocol: "UDP"},
				{Port: &netpol.PortRef{Num: 80}},
				{Protocol: "SCTP", Port: &netpol.PortRef{Num: 9}},
				{Protocol: "TCP", Port: &netpol.PortRef{Name: "http"}},
				{Port: &netpol.PortRef{Num: 30000}, EndPort: 32767},
			}}}},
		},
		{
			name: "ports the API would reject reach Compile",
			np: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: num(0)},
				{Port: num(70000)},
				{Port: num(80), EndPort: ptr[int32](70000)},
				{Port: name("http"), EndPort: ptr[int32](90)},
				{EndPort: ptr[int32](-1)},
				{Protocol: ptr(corev1.Protocol("ICMP"))},
			}}}},
			want: netpol.NetworkPolicy{Egress: []netpol.Rule{{Ports: []netpol.PolicyPort{
				{Port: &netpol.PortRef{Name: "0"}},
				{Port: &netpol.PortRef{Name: "70000"}},
				{Port: &netpol.PortRef{Name: "80-70000"}},
				{Port: &netpol.PortRef{Name: "http"}, EndPort: 90},
				{EndPort: 1},
				{Protocol: "ICMP"},
			}}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"}, Spec: tc.np}
			want := tc.want
			want.Namespace, want.Name = "shop", "p"
			if diff := cmp.Diff(want, convertNetworkPolicy(np)); diff != "" {
				t.Errorf("convertNetworkPolicy (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConvertedCompile carries converted objects through netpol.Compile:
// upstream's named-port ingress case, and a port the API would reject,
// which Compile reports against the right field.
func TestConvertedCompile(t *testing.T) {
	server := container(
		corev1.ContainerPort{Name: "serve-80-tcp", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
		corev1.ContainerPort{Name: "serve-81-tcp", ContainerPort: 81, Protocol: corev1.ProtocolTCP},
	)
	nss := []netpol.Namespace{
		convertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{corev1.LabelMetadataName: "x"}}}),
		convertNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "y", Labels: map[string]string{corev1.LabelMetadataName: "y"}}}),
	}
	pods := []netpol.Pod{
		convertPod(kpod("x", "a", map[string]string{"pod": "a"}, []string{"10.0.0.1"}, server)),
		convertPod(kpod("y", "a", map[string]string{"pod": "a"}, []string{"10.0.1.1"}, server)),
	}
	pols := []netpol.NetworkPolicy{
		convertNetworkPolicy(&networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "allow-81"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromString("serve-81-tcp"))}},
			}}},
		}),
		convertNetworkPolicy(&networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "bad-port"},
			Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromInt32(70000))}},
			}}},
		}),
	}
	c, err := netpol.Compile(1, nil, nss, pods, pols)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Error(), `networkpolicy y/bad-port: spec.ingress[0].ports[0].port: "70000" is neither a port number`) {
		t.Errorf("Problems = %v, want y/bad-port's port", c.Problems)
	}
	xa, ya := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.1.1")
	verdict := func(dst, src netip.Addr, port uint16) policy.Verdict {
		return c.Table.Verdict(policy.Key{Local: c.ByIP[dst], Peer: c.ByIP[src], PeerCIDR: c.Table.CIDR(src), Port: port, Proto: policy.TCP, Dir: policy.Ingress})
	}
	got := []policy.Verdict{verdict(xa, ya, 80), verdict(xa, ya, 81), verdict(ya, xa, 81)}
	want := []policy.Verdict{policy.Deny, policy.Allow, policy.Deny} // y/a is isolated by its bad policy
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}
