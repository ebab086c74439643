// Package cluster is the agent's model of the cluster it runs in: the
// nodes (name, underlay address, pod CIDRs, and whether ringnet or Flannel
// serves them), how a node reaches another node's pods (the tunnel), the
// Services with their endpoints, and the NetworkPolicies with the
// namespaces and pods they select.
//
// Data flow: a source fills a [Cluster] and the agent compiles it into the
// fast path's tables. Today the source is a static cluster file, read by
// [Parse] or [Load] ([Default] is the embedded example the demo and the
// tests run); agent/k8s fills the same model from client-go informers on Nodes.
// Kubernetes types stop at that source: nothing here imports them. The
// compiler asks [Cluster.TunnelBetween] how this node reaches each other
// node's pod CIDRs (tables/route's Tunnel), and agent/underlay resolves each
// node's address to a next-hop MAC (tables/neighbor). [ServiceSpecs] turns
// the Services into one node's service table entries (tables/service):
// cluster IPs, NodePorts and external IPs, each with its backends. The
// namespaces, pods and policies are agent/netpol's input as they are, for
// netpol.Compile (agent/k8s delivers its own from informers).
//
// A Cluster is plain values and is not safe for concurrent mutation: a
// source builds a new one for each change, validates it and hands it over;
// from then on it is read-only. [Parse] applies the defaults
// ([Cluster.SetDefaults]) and validates ([Cluster.Validate]); a source that
// builds the model itself does the same.
//
// # The cluster file
//
// YAML or JSON, with camelCase keys that mirror the model. Unknown keys are
// errors (a misspelt key is not silently ignored), and so is anything that
// does not validate; the message names the field and says what to do, for
// example
//
//	nodes[1].podCIDRs[0]: 10.244.1.0/24 overlaps nodes[0].podCIDRs[0] 10.244.0.0/16 (node "a"); give every node its own pod CIDR
//
// The file today:
//
//	tunnel:                    # optional, defaults shown
//	  mode: vxlan              # vxlan, ipip, direct or crossSubnet
//	  crossSubnetEncap: vxlan  # crossSubnet only: vxlan or ipip across subnets
//	  vxlanPort: 8472          # VXLAN's UDP port and VNI, ringnet's and the
//	  vni: 1                   # Flannel nodes' (Flannel's defaults are 8472 and 1)
//	nodes:
//	- name: node-a                         # the Kubernetes node name
//	  address: 192.168.50.1/24             # underlay IPv4 address / subnet length
//	  podCIDRs: [10.244.1.0/24, fd00:244:1::/64]  # at most one per family
//	  backend: ringnet                     # ringnet (default) or flannel
//	  vtepMAC: 02:42:c0:a8:32:01           # flannel: required; ringnet: optional
//	services:                  # optional
//	- name: web                            # a DNS-1035 label
//	  namespace: default                   # the default
//	  clusterIPs: [10.96.0.10]             # at most one per family; none is headless, not here
//	  externalIPs: [192.168.50.100]        # optional: also LoadBalancer ingress IPs
//	  ports:                               # each named if there are several
//	  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
//	                                       # protocol TCP (default), UDP or SCTP; targetPort
//	                                       # default the port; nodePort optional, 30000-32767
//	  sessionAffinity: ClientIP            # or None (the default)
//	  sessionAffinityTimeout: 3h           # with ClientIP; default 3h, at most 24h
//	  externalTrafficPolicy: Local         # or Cluster (the default)
//	  endpoints:                           # their ports are the targetPorts
//	  - {address: 10.244.1.2, node: node-a}  # node: optional, a node of this file
//	  - {address: 10.244.2.3, node: node-b, terminating: true}
//	                                       # ready: default true, false when terminating;
//	                                       # serving: default ready, true when terminating
//	namespaces:                # optional: labels for namespaceSelectors
//	- {name: prod, labels: {team: a}}      # a DNS-1123 label; every namespace a pod or policy
//	                                       # names exists, with kubernetes.io/metadata.name=<name>
//	pods:                      # the pods policies select or allow (a pod missing here is no pod
//	                           # to policy: nothing selects it, only ipBlocks match it)
//	- namespace: default                   # the default
//	  name: web-1
//	  labels: {app: web}
//	  addresses: [10.244.1.2]              # status.podIPs: one per family, in a node's pod CIDR
//	  ports: [{name: http, port: 8080, protocol: TCP}]  # its named container ports
//	policies:                  # NetworkPolicies
//	- namespace: default                   # the default
//	  name: allow-web
//	  spec:                                # networking.k8s.io/v1, field for field
//	    podSelector: {matchLabels: {app: web}}   # required; {} is every pod of the namespace
//	    policyTypes: [Ingress]
//	    ingress:
//	    - from: [{podSelector: {matchLabels: {role: client}}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
//	      ports: [{protocol: TCP, port: 8080, endPort: 8090}]  # port: a number or a named port
//
// The policies mean what they mean in Kubernetes (agent/netpol's package
// documentation says how each field is compiled); a policy the API server
// would refuse is an error here, named as netpol names it.
//
// The file grows with the model: each part is a new top-level key,
// decoded by a new field of the file's struct in file.go, so strict
// checking of unknown keys stays as it is.
package cluster

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/route"
)

// Cluster is the cluster's nodes and how they reach each other.
type Cluster struct {
	Tunnel Tunnel
	Nodes  []Node
	// Services are the cluster file's services (agent/k8s delivers them
	// apart, from their own informers).
	Services []Service
	// Namespaces, Pods and Policies are the cluster file's NetworkPolicy
	// input, as netpol.Compile takes it (agent/k8s delivers its own, from
	// informers). Pods are the pods policies select or allow, with their
	// addresses: the file is their source of truth, as it is of
	// services' endpoints.
	Namespaces []netpol.Namespace
	Pods       []netpol.Pod
	Policies   []netpol.NetworkPolicy
}

// Tunnel says how traffic between the pods of two nodes crosses the
// underlay.
type Tunnel struct {
	// Mode is how ringnet nodes reach each other; a Flannel node is
	// always reached by VXLAN. Default ModeVXLAN.
	Mode Mode
	// CrossSubnetEncap is, in ModeCrossSubnet, the encapsulation between
	// nodes on different subnets: ModeVXLAN (the default) or ModeIPIP.
	// Empty in every other mode.
	CrossSubnetEncap Mode
	// VXLANPort is the UDP port of VXLAN, both ringnet's and the Flannel
	// nodes': it must be what they use (Flannel's default is 8472, which
	// is ringnet's default too; the IANA port 4789 is not Flannel's).
	VXLANPort uint16
	// VNI is the VXLAN network identifier, 1 to 2^24-1; like VXLANPort
	// it must be the Flannel nodes' (Flannel's default is 1, as is ours).
	VNI uint32
}

// Mode is a way of carrying pod traffic between nodes.
type Mode string

const (
	// ModeVXLAN encapsulates in UDP/VXLAN, whatever the underlay.
	ModeVXLAN Mode = "vxlan"
	// ModeIPIP encapsulates in IP (IPv4 in IPv4, IPv6 in IPv4).
	ModeIPIP Mode = "ipip"
	// ModeDirect sends pod packets unencapsulated to the peer node's MAC:
	// every ringnet node must be on one underlay subnet.
	ModeDirect Mode = "direct"
	// ModeCrossSubnet is ModeDirect between nodes on one subnet and
	// Tunnel.CrossSubnetEncap between subnets, like Calico's CrossSubnet.
	ModeCrossSubnet Mode = "crossSubnet"
)

var modes = []Mode{ModeVXLAN, ModeIPIP, ModeDirect, ModeCrossSubnet}

// Backend is what forwards a node's pod traffic.
type Backend string

const (
	// BackendRingnet is a node running ringnetd.
	BackendRingnet Backend = "ringnet"
	// BackendFlannel is a node still on Flannel's vxlan backend: its pods
	// sit behind the kernel's vxlan device (flannel.1), which takes VXLAN
	// on Tunnel.VXLANPort with Tunnel.VNI and an inner destination MAC of
	// Node.VtepMAC. Such nodes let a cluster move to ringnet node by node.
	BackendFlannel Backend = "flannel"
)

var backends = []Backend{BackendRingnet, BackendFlannel}

// The defaults, Flannel's: ringnet nodes talk VXLAN to Flannel nodes as
// Flannel nodes do to each other.
const (
	DefaultVXLANPort = 8472
	DefaultVNI       = 1
)

// Node is one node of the cluster.
type Node struct {
	// Name is the node's name as Kubernetes knows it (a DNS-1123
	// subdomain: lowercase letters, digits, '-' and '.').
	Name string
	// Address is the node's underlay IPv4 address with the length of its
	// subnet, such as 192.168.50.1/24: nodes whose addresses share the
	// subnet reach each other directly at layer 2.
	Address netip.Prefix
	// PodCIDRs are the node's pod address ranges: at most one IPv4 and
	// one IPv6 prefix, masked.
	PodCIDRs []netip.Prefix
	// Backend is ringnet (the default) or flannel.
	Backend Backend
	// VtepMAC is the inner destination MAC of VXLAN frames to this node.
	// Required for a flannel node (its flannel.1 device's MAC). Optional
	// for a ringnet node: when nil, the node's uplink MAC, which only
	// that node knows and which ringnet nodes do not check anyway.
	VtepMAC net.HardwareAddr
}

// SetDefaults fills what is left empty: tunnel mode vxlan, crossSubnet's
// encapsulation vxlan, VXLAN port 8472 and VNI 1, backend ringnet; a
// service's namespace "default", its ports' (and its endpoints' ports')
// protocol TCP; a pod's and a policy's namespace "default", a pod's
// ports' protocol TCP. A policy port's protocol stays empty, which netpol
// reads as TCP.
func (c *Cluster) SetDefaults() {
	t := &c.Tunnel
	if t.Mode == "" {
		t.Mode = ModeVXLAN
	}
	if t.Mode == ModeCrossSubnet && t.CrossSubnetEncap == "" {
		t.CrossSubnetEncap = ModeVXLAN
	}
	if t.VXLANPort == 0 {
		t.VXLANPort = DefaultVXLANPort
	}
	if t.VNI == 0 {
		t.VNI = DefaultVNI
	}
	for i := range c.Nodes {
		if c.Nodes[i].Backend == "" {
			c.Nodes[i].Backend = BackendRingnet
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		defaultNS(&s.Namespace)
		for j := range s.Ports {
			defaultProtocol(&s.Ports[j].Protocol)
		}
		for k := range s.Endpoints {
			for j := range s.Endpoints[k].Ports {
				defaultProtocol(&s.Endpoints[k].Ports[j].Protocol)
			}
		}
	}
	for i := range c.Pods {
		defaultNS(&c.Pods[i].Namespace)
		for j := range c.Pods[i].Ports {
			defaultProtocol(&c.Pods[i].Ports[j].Proto)
		}
	}
	for i := range c.Policies {
		defaultNS(&c.Policies[i].Namespace)
	}
}

// defaultNS makes an unset namespace "default", as Kubernetes does.
func defaultNS(ns *string) {
	if *ns == "" {
		*ns = defaultNamespace
	}
}

// defaultProtocol makes an unset protocol TCP, as Kubernetes does.
func defaultProtocol(p *uint8) {
	if *p == 0 {
		*p = ProtoTCP
	}
}

// Node returns the node with the given name. The pointer is into c.Nodes.
func (c *Cluster) Node(name string) (*Node, bool) {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i], true
		}
	}
	return nil, false
}

// TunnelBetween is how traffic from node a to node b's pods travels:
// Direct, VXLAN or IPIP. A flannel node (either end) is always reached by
// VXLAN. Otherwise the tunnel mode decides: vxlan and ipip always
// encapsulate; direct needs a and b on one subnet and is an error
// otherwise; crossSubnet is Direct within a subnet (a.Address and
// b.Address are the same prefix) and CrossSubnetEncap across. Empty modes
// and backends count as their defaults.
func (c *Cluster) TunnelBetween(a, b *Node) (route.Tunnel, error) {
	if a.Name == b.Name {
		return 0, fmt.Errorf("tunnel from node %q to itself: its pods are local", a.Name)
	}
	if a.Backend == BackendFlannel || b.Backend == BackendFlannel {
		return route.VXLAN, nil
	}
	switch c.Tunnel.Mode {
	case ModeVXLAN, "":
		return route.VXLAN, nil
	case ModeIPIP:
		return route.IPIP, nil
	case ModeDirect:
		if !SameSubnet(a.Address, b.Address) {
			return 0, fmt.Errorf("tunnel mode direct between nodes %q (%v) and %q (%v), which are on different subnets; use mode crossSubnet",
				a.Name, a.Address, b.Name, b.Address)
		}
		return route.Direct, nil
	case ModeCrossSubnet:
		if SameSubnet(a.Address, b.Address) {
			return route.Direct, nil
		}
		switch c.Tunnel.CrossSubnetEncap {
		case ModeVXLAN, "":
			return route.VXLAN, nil
		case ModeIPIP:
			return route.IPIP, nil
		}
		return 0, fmt.Errorf("tunnel crossSubnetEncap %q: want vxlan or ipip", c.Tunnel.CrossSubnetEncap)
	}
	return 0, fmt.Errorf("tunnel mode %q: want one of %s", c.Tunnel.Mode, choices(modes))
}

// SameSubnet reports whether two node addresses are on one subnet: the
// same prefix once masked (192.168.50.1/24 and 192.168.50.2/24, not
// 192.168.50.1/24 and 192.168.50.2/25).
func SameSubnet(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Masked() == b.Masked()
}
