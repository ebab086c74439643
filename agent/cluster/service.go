package cluster

import (
	"net/netip"
	"time"
)

// Service is a Kubernetes Service with its endpoints, as the agent needs
// it to program the fast path's load balancer: the source (the cluster
// file, or agent/k8s from Services and EndpointSlices) fills it, and
// [Cluster.ServiceSpecs] compiles it, for one node, into tables/service
// specs.
type Service struct {
	Namespace, Name string
	// ClusterIPs are the service's cluster IPs (one per family); none for
	// a headless service, which the fast path does not see.
	ClusterIPs []netip.Addr
	// ExternalIPs are spec.externalIPs and the LoadBalancer ingress IPs
	// (status.loadBalancer.ingress[].ip): addresses clients outside the
	// cluster reach the service at, on the service's ports.
	ExternalIPs []netip.Addr
	Ports       []ServicePort
	// Affinity is sessionAffinity ClientIP's timeout
	// (sessionAffinityConfig.clientIP.timeoutSeconds, default 3 hours);
	// 0 is sessionAffinity None.
	Affinity time.Duration
	// ExternalLocal is externalTrafficPolicy Local: NodePorts, externalIPs
	// and LoadBalancer IPs reach only the receiving node's endpoints, and
	// clients keep their address. False is Cluster: any endpoint, the
	// client masqueraded to the node's address.
	ExternalLocal bool
	Endpoints     []ServiceEndpoint
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string // matches EndpointPort.Name; may be empty for a single-port service
	Protocol uint8  // IP protocol: 6 TCP, 17 UDP, 132 SCTP
	Port     uint16 // the port on the cluster IPs and external IPs
	NodePort uint16 // 0: none
}

// ServiceEndpoint is one endpoint address of a service (from an
// EndpointSlice), with its conditions.
type ServiceEndpoint struct {
	Addr netip.Addr
	Node string // the node it runs on (EndpointSlice nodeName); may be empty
	// Ready, Serving and Terminating are the EndpointSlice conditions. A
	// backend is what is Ready; when no endpoint of a port is Ready, the
	// endpoints that are Serving and Terminating (kube-proxy's fallback,
	// so that connections drain during a rollout).
	Ready, Serving, Terminating bool
	Ports                       []EndpointPort
}

// EndpointPort is a port of an endpoint: the target port of the service
// port with the same name and protocol.
type EndpointPort struct {
	Name     string
	Protocol uint8
	Port     uint16
}
