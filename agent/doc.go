// Package agent is the home of ringnetd's control plane: the packages
// below it turn the desired state of the cluster and what the kernel
// knows into the table snapshots the fast path reads. The agent is the
// tables' one writer; it never runs per packet.
//
//	agent/cluster   the model of the cluster's nodes and how they reach each
//	                other (tunnel mode, Flannel nodes), read from a static
//	                cluster file (the embedded default for the demo and the
//	                tests) or filled by agent/k8s.
//	agent/k8s       Kubernetes as a source of that model: client-go
//	                informers on Nodes, this node's registration (ringnet's
//	                and Flannel's annotations, NetworkUnavailable=False),
//	                its pod CIDRs. Kubernetes types stop there.
//	agent/netpol    the NetworkPolicy compiler: namespaces, pods (labels,
//	                addresses, named ports) and networking.k8s.io/v1
//	                policies to identities and a tables/policy snapshot,
//	                checked against a reference evaluator. Not yet wired to
//	                the fast path.
//	agent/metrics   Prometheus metrics over the dataplane's counters, and
//	                /healthz, /readyz.
//	agent/underlay  the MACs of the peer nodes' underlay next hops, from the
//	                kernel's neighbour table, kept current through netlink
//	                subscriptions.
//	agent/ipam      pod addresses from the node's pod CIDRs, persisted.
//	agent/api       the CNI plugin's API to ringnetd (stdlib only).
//	agent/daemon    ringnetd's side of that API: addresses and pod ports.
//
// Data flow on a node of a cluster (cmd/ringnetd wires it): the
// cluster.Cluster gives every other node's pod CIDRs and, through
// TunnelBetween, the tunnel to it; those become tables/route entries. The
// peers' underlay addresses go to underlay.Neighbors, whose maps of
// next-hop MACs complete the dataplane's view of each peer. Each change is
// published as a new snapshot (see tables/...), so nothing here blocks the
// fast path.
package agent
