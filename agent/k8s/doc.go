// Package k8s is Kubernetes as a source of the agent's cluster model and
// of its NetworkPolicy compiler's input: it watches the API through
// client-go informers and hands the agent a complete, validated
// [cluster.Cluster] each time what the model is made of changes
// ([Source.Run]), a complete [PolicyInput] each time what NetworkPolicy
// is compiled from changes ([Source.RunPolicy]), and every
// [cluster.Service] with its endpoints each time a Service or an
// EndpointSlice changes them ([Source.RunServices]). Kubernetes types stop
// here: what leaves the package is agent/cluster's model and agent/netpol's
// input (only the clientset, from [Client], passes through ringnetd's
// wiring), and nothing here touches a table.
//
// # Data flow and goroutines
//
// Run, RunPolicy and RunServices each start their own shared informer
// factory (Run the node informer; RunPolicy the namespace, pod and
// NetworkPolicy ones; RunServices the Service and EndpointSlice ones) and
// their own batching of its events (the events type), and may run at the
// same time. Each goes the same way:
//
//	kube-apiserver --watch--> shared informer factory (client-go goroutines)
//	                             |  store updated, then handler called
//	                             v
//	                  events.changed: note the event's time   (mutex)
//	                             |  kick (chan, cap 1)
//	                             v
//	   Run's goroutine: wait Options.Debounce from the batch's first event,
//	                    take the batch, build the model from the listers,
//	                    SetDefaults + Validate, publish(c, first, last)
//	   RunPolicy's:     the same wait, then convert and sort the listers'
//	                    objects, publish(in, first, last)
//	   RunServices's:   the same wait, then join, convert and sort, and
//	                    publish(svcs, first, last) unless unchanged
//
// The informers' goroutines only record that something changed and when
// (events.pending, under events.mu). Everything else, the listers' reads,
// the model, what has been logged about each node and the last model
// published, belongs to the goroutine that calls [Source.Run] (the
// policy listers to the one that calls [Source.RunPolicy], the service
// listers and the last list published to the one that calls
// [Source.RunServices]); publish is called on it too. A burst of events gives one build and at most one
// call; a change that leaves the model as it was (a label, a status
// heartbeat, a change undone within the batch) gives none: updates that
// touch no field read below are dropped in the handler, and a model equal
// to the last one published is not published again. The first and last
// event times passed to publish are when the informer delivered the
// earliest and the latest event of the batch (time.Now, monotonic), for
// the "API event -> table published" histogram. Once the caches have
// synced, a build follows even if no object was there to add (its times
// are the sync's).
//
// The *cluster.Cluster handed to publish is new for each call and must be
// treated as read-only from then on (the source compares the next model
// with it). Informers keep what the model needs of each node and drop the
// rest (status, managed fields) as the objects arrive.
//
// # Nodes
//
// Each Kubernetes Node becomes at most one [cluster.Node]:
//
//	model field  Kubernetes
//	-----------  ------------------------------------------------------------
//	Name         metadata.name
//	PodCIDRs     spec.podCIDRs (spec.podCIDR when podCIDRs is empty), masked;
//	             a Flannel node keeps only its IPv4 one (see below)
//	Backend      ringnet  if the node has ringnet.io/underlay (ringnet wins
//	                      when a node has both ringnet's and Flannel's)
//	             flannel  if it has Flannel's annotations and not ringnet's
//	Address      ringnet: ringnet.io/underlay, the address with its subnet
//	                      length ("192.168.50.1/24"), as written
//	             flannel: flannel.alpha.coreos.com/public-ip, as a /32
//	                      ("192.168.50.3/32"), or, when a ringnet node's
//	                      subnet holds it, with that subnet's length (this
//	                      node's first): Validate wants one length per
//	                      subnet. Either way a Flannel node is reached by
//	                      VXLAN (TunnelBetween), never directly
//	VtepMAC      ringnet: ringnet.io/vtep-mac (may be absent: nil)
//	             flannel: VtepMAC of flannel.alpha.coreos.com/backend-data,
//	                      JSON such as {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}
//
// Left out of the model, and logged once per node and reason (again only
// when the reason changes):
//
//	node                                            log    why
//	----------------------------------------------  -----  -------------------------------
//	neither ringnet's nor Flannel's annotations     debug  not networked yet (ringnetd not up)
//	this node (Options.NodeName) without ringnet's  debug  not registered yet: this node is
//	                                                       in the model only once ringnetd has
//	                                                       registered it ([Register])
//	no spec.podCIDRs nor spec.podCIDR               info   "node X has no pod CIDR yet"
//	a pod CIDR, ringnet.io/underlay or               warn   malformed annotation or spec
//	  ringnet.io/vtep-mac that does not parse
//	flannel backend-type other than vxlan           warn   host-gw, wireguard, ... unsupported
//	flannel backend-data not JSON, or no VtepMAC    warn   cannot address its flannel.1
//	flannel backend-data VNI != Options.Tunnel.VNI  warn   names both VNIs; fix one side
//	flannel public-ip missing or not IPv4           warn
//	flannel node with no IPv4 pod CIDR              warn   flannel.1 carries IPv4 only
//
// A Flannel node's IPv6 pod CIDR is left out of the model (info, once):
// ringnet reaches Flannel nodes over IPv4 VXLAN (flannel.1) only. A
// backend-data without a VNI is taken as Options.Tunnel.VNI. Flannel's
// kube-subnet-manager annotation is not required (Flannel requires it;
// [Register] writes it).
//
// The nodes that remain are sorted by name, given Options.Tunnel, and
// SetDefaults+Validate'd. When that fails the source finds the offending
// nodes itself and leaves them out with a warning: each node checked on
// its own, then against the nodes before it in name order (overlapping
// pod CIDRs, a pod CIDR holding another node's address, a shared address
// or VTEP MAC, one subnet given two lengths: the later-named node goes),
// and, in tunnel mode direct, ringnet nodes off this node's subnet (or,
// before this node registers, the first ringnet node's). If what is left
// still does not validate, the error is logged and the last good model
// stays published. An invalid model is never published, and nothing here
// panics on what the API holds. A model needs a node: until one
// qualifies, nothing is published.
//
// # Registration
//
// [Register] is ringnetd's side of the annotations above. It writes, with
// a JSON merge patch on the node:
//
//	ringnet.io/underlay                          192.168.50.1/24
//	ringnet.io/vtep-mac                          02:42:c0:a8:32:01 (removed if none)
//
// and, with Registration.FlannelCompatible, what Flannel's kube subnet
// manager reads, so Flannel nodes send this node's pods VXLAN as to
// another Flannel node:
//
//	flannel.alpha.coreos.com/backend-type        vxlan
//	flannel.alpha.coreos.com/backend-data        {"VNI":1,"VtepMAC":"02:42:c0:a8:32:01"}
//	flannel.alpha.coreos.com/public-ip           192.168.50.1
//	flannel.alpha.coreos.com/kube-subnet-manager true
//
// Then it sets the node's NetworkUnavailable condition to False, reason
// RingnetIsUp (as Flannel's FlannelIsUp and Calico's CalicoIsUp do),
// through the status subresource with a get-modify-update loop that
// retries on conflict. Both steps leave an already registered node as it
// is.
//
// # Policy input
//
// RunPolicy converts every Namespace, Pod and NetworkPolicy (netpol.go
// says how, field by field) and publishes them sorted, namespaces by name,
// pods and policies by namespace and name. A pod without addresses
// (pending, host network, finished) is in the input, without IPs. Updates
// that leave an object's conversion as it was (a pod's conditions or
// container statuses, annotations, a resource version) are dropped in
// the handler; any other batch publishes, even one whose changes undo
// each other. The informers keep of each object what the conversion reads
// (slimPod, slimNamespace, slimNetworkPolicy): of a pod its name,
// namespace, labels, hostNetwork, container ports, phase and
// addresses. Each PolicyInput is new; its label maps and selector slices
// are the informers' own, so it is read-only.
//
// [PodCIDRs] waits for the controller manager to give the node its pod
// CIDRs (--allocate-node-cidrs), which ringnetd's IPAM takes; [Client]
// makes the clientset from a kubeconfig or the pod's service account.
//
// # Services
//
// RunServices converts every Service but those of type ExternalName, each
// with the endpoints of the EndpointSlices labelled
// kubernetes.io/service-name with its name in its namespace (service.go
// says how, field by field, after the API's documentation and, where that
// leaves a choice, kube-proxy), and publishes them sorted by namespace and
// name, each service's endpoints by address. Updates that leave a
// conversion as it was (a label, an annotation, a slice's zones, hints or
// target references, the order of its endpoints) are dropped in the
// handler, and a list equal to the last one published is not published
// again. The informers keep of a Service its spec's type, addresses,
// ports, affinity and traffic policy and its LoadBalancer status, and of
// an EndpointSlice its service-name label, address type, ports, and each
// endpoint's first address, conditions and node (slimService,
// slimEndpointSlice). Each list is new; the source keeps it to compare
// the next with, so it is read-only.
//
// # Adding a kind
//
// A new kind (Ingresses, say) is a file beside node.go and policy.go: a
// watch function that registers the kind's informer on the factory with a
// handler noting its events (handle, filtering updates that change
// nothing that is built from it), keeps its lister, and its part of the
// build. Source.follow starts, syncs and stops every informer of a
// factory together, so one debounced build sees all of its kinds at once.
// Add the kind's verbs (list, watch) to deploy/ringnet.yaml's ClusterRole
// and to test/kubernetes's proof that the role is minimal.
package k8s
