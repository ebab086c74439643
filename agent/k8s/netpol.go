package k8s

// Namespaces, Pods and NetworkPolicies as agent/netpol's input.
//
//	netpol           Kubernetes
//	---------------  ---------------------------------------------------------
//	Namespace        metadata.name, metadata.labels
//	Pod.Labels       metadata.labels
//	Pod.IPs          status.podIPs (status.podIP when podIPs is empty), parsed;
//	                 none for a hostNetwork pod (its addresses are the node's,
//	                 and policy does not apply to host networking) nor for a
//	                 pod that has finished (Succeeded, Failed: its address may
//	                 already be another pod's). An address that does not
//	                 parse is left out.
//	Pod.Ports        the named ports of spec.containers and of sidecars
//	                 (spec.initContainers with restartPolicy Always), as
//	                 Kubernetes resolves a Service's named targetPort;
//	                 protocol "" is TCP; other protocols and numbers outside
//	                 1-65535 are left out (they can match no policy port)
//	NetworkPolicy    the spec field by field: policyTypes as strings, from/to
//	                 as Peers, selectors and ipBlocks as written (Compile
//	                 validates them and reports what is wrong)
//	PolicyPort.Port  an IntOrString: a number, or a name; a number the API
//	                 would reject (outside 1-65535, also with endPort) is
//	                 kept as its text in Name, which Compile reports as
//	                 neither a port number nor a name
//
// Conversion never fails and never drops a policy: what the API server
// would have rejected reaches Compile, which reports it and fails closed.
// The results share label maps and value slices with the objects, which,
// being informer objects, nobody changes.

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ringnet/ringnet/agent/netpol"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// convertNamespace returns ns as netpol sees it.
func convertNamespace(ns *corev1.Namespace) netpol.Namespace {
	return netpol.Namespace{Name: ns.Name, Labels: ns.Labels}
}

// convertPod returns p as netpol sees it.
func convertPod(p *corev1.Pod) netpol.Pod {
	out := netpol.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels}
	if !p.Spec.HostNetwork && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		ips := p.Status.PodIPs
		if len(ips) == 0 && p.Status.PodIP != "" {
			ips = []corev1.PodIP{{IP: p.Status.PodIP}}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				out.IPs = append(out.IPs, a.Unmap())
			}
		}
	}
	add := func(cs []corev1.Container, sidecarsOnly bool) {
		for i := range cs {
			c := &cs[i]
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, cp := range c.Ports {
				proto, ok := netpol.ProtocolNumber(string(cp.Protocol))
				if cp.Name == "" || !ok || cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
					continue
				}
				out.Ports = append(out.Ports, netpol.NamedPort{Name: cp.Name, Proto: proto, Port: uint16(cp.ContainerPort)})
			}
		}
	}
	add(p.Spec.Containers, false)
	add(p.Spec.InitContainers, true)
	return out
}

// convertNetworkPolicy returns np as netpol sees it.
func convertNetworkPolicy(np *networkingv1.NetworkPolicy) netpol.NetworkPolicy {
	out := netpol.NetworkPolicy{
		Namespace:   np.Namespace,
		Name:        np.Name,
		PodSelector: convertSelector(&np.Spec.PodSelector),
	}
	for _, t := range np.Spec.PolicyTypes {
		out.PolicyTypes = append(out.PolicyTypes, string(t))
	}
	for i := range np.Spec.Ingress {
		r := &np.Spec.Ingress[i]
		out.Ingress = append(out.Ingress, netpol.Rule{Peers: convertPeers(r.From), Ports: convertPorts(r.Ports)})
	}
	for i := range np.Spec.Egress {
		r := &np.Spec.Egress[i]
		out.Egress = append(out.Egress, netpol.Rule{Peers: convertPeers(r.To), Ports: convertPorts(r.Ports)})
	}
	return out
}

func convertSelector(s *metav1.LabelSelector) netpol.LabelSelector {
	out := netpol.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, netpol.Requirement{Key: r.Key, Operator: string(r.Operator), Values: r.Values})
	}
	return out
}

func convertPeers(peers []networkingv1.NetworkPolicyPeer) []netpol.Peer {
	var out []netpol.Peer
	for _, pe := range peers {
		var p netpol.Peer
		if pe.PodSelector != nil {
			s := convertSelector(pe.PodSelector)
			p.PodSelector = &s
		}
		if pe.NamespaceSelector != nil {
			s := convertSelector(pe.NamespaceSelector)
			p.NamespaceSelector = &s
		}
		if pe.IPBlock != nil {
			p.IPBlock = &netpol.IPBlock{CIDR: pe.IPBlock.CIDR, Except: pe.IPBlock.Except}
		}
		out = append(out, p)
	}
	return out
}

func convertPorts(ports []networkingv1.NetworkPolicyPort) []netpol.PolicyPort {
	var out []netpol.PolicyPort
	for _, po := range ports {
		var p netpol.PolicyPort
		if po.Protocol != nil {
			p.Protocol = string(*po.Protocol)
		}
		inRange := func(n int32) bool { return 1 <= n && n <= 65535 }
		switch {
		case po.Port == nil:
			if po.EndPort != nil {
				p.EndPort = uint16(min(max(*po.EndPort, 1), 65535)) // endPort without a port: Compile reports it
			}
		case po.Port.Type == intstr.String:
			p.Port = &netpol.PortRef{Name: po.Port.StrVal}
			if po.EndPort != nil {
				p.EndPort = uint16(min(max(*po.EndPort, 1), 65535)) // endPort with a name: Compile reports it
			}
		case !inRange(po.Port.IntVal) || po.EndPort != nil && !inRange(*po.EndPort):
			// A number netpol's types cannot hold: keep it as text, which
			// Compile reports as neither a number nor a name.
			text := strconv.Itoa(int(po.Port.IntVal))
			if po.EndPort != nil {
				text = fmt.Sprintf("%d-%d", po.Port.IntVal, *po.EndPort)
			}
			p.Port = &netpol.PortRef{Name: text}
		default:
			p.Port = &netpol.PortRef{Num: uint16(po.Port.IntVal)}
			if po.EndPort != nil {
				p.EndPort = uint16(*po.EndPort)
			}
		}
		out = append(out, p)
	}
	return out
}
