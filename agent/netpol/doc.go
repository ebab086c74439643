// Package netpol compiles Kubernetes NetworkPolicies (networking.k8s.io/v1)
// into the policy table of the fast path (tables/policy), and gives pods
// the identities that table is keyed by.
//
// # Model and data flow
//
//	agent/k8s (informers)  -->  []Namespace, []Pod, []NetworkPolicy   plain values
//	                                   |
//	                                   v  Compile(gen, prev, ...)
//	  identities: one uint32 per distinct (namespace, labels, named ports)
//	  selectors resolved to identity sets, named ports to numbers
//	                                   |
//	                                   v  tables/policy.Build
//	Compiled{Table, Identity, ByIP, Policies, Problems, Stats}  --> published
//
// Compile is a pure function of its inputs and the previous result: it
// keeps nothing between calls but what it returns, starts no goroutines,
// and neither keeps nor changes its inputs. The agent calls it from the one
// goroutine that builds snapshots and publishes the result; Compiled is
// read-only from then on (the next Compile reads its identity numbers).
//
// Identities ([Compiled.Identity], [Compiled.ByIP]) are what the endpoint
// table (tables/endpoint) stores per local pod and what the fast path puts
// in policy.Key: Local for the local pod, Peer for the other side when its
// address is a pod's, and PeerCIDR from Table.CIDR of that address, so a
// pod matches ipBlocks by its address as well as selectors by identity. A
// pod that is not a known pod (Peer 0) matches only by address. Identity
// numbers are stable: a (namespace, labels, named ports) that the
// previous compilation numbered keeps its number (identity.go).
//
// # Semantics
//
// As the NetworkPolicy API defines them (the field documentation of
// k8s.io/api/networking/v1 and the upstream e2e suite,
// test/e2e/network/netpol), compiled as follows:
//
//	API                                        compiled as
//	-----------------------------------------  ---------------------------------------------------
//	podSelector: {} / a selector               every pod of the policy's namespace / those matching
//	policyTypes omitted                        [Ingress], plus Egress when spec.egress has rules
//	policyTypes given                          as given; the rules of a direction not listed are
//	                                           ignored (Egress rules under [Ingress] do nothing)
//	a pod no policy selects for a direction    everything allowed that way (Unselected)
//	a pod some policy selects for a direction  isolated that way: denied all but what the union of
//	                                           the rules of every policy selecting it allows
//	type set, no rules (ingress: [] / absent)  isolation only: deny all that way
//	ingress: [{}] / egress: [{}]               allow all: every peer, every protocol and port
//	rule without from/to                       every peer: pods and addresses outside the cluster
//	rule without ports                         every protocol (ICMP too) and every port
//	a rule                                     allows traffic matching one of its peers AND one of
//	                                           its ports; rules and peers and ports are ORed
//	peer podSelector only                      matching pods of the policy's namespace
//	peer namespaceSelector only                every pod of the matching namespaces
//	peer podSelector + namespaceSelector       matching pods in matching namespaces (AND, one peer)
//	peer selector {}                           everything in its scope (pods of the namespace, or
//	                                           all namespaces)
//	selector matchLabels / In / NotIn /        key=value / value in set / key absent or value not
//	  Exists / DoesNotExist                    in set / key present / key absent; all must hold
//	namespace labels                           as given, plus kubernetes.io/metadata.name=<name>,
//	                                           which the API server sets on every namespace
//	peer ipBlock {cidr, except}                addresses in cidr and in none of except, pod
//	                                           addresses included (tables/policy's PeerCIDR)
//	port protocol omitted                      TCP
//	port without port                          every port of the protocol
//	port: N / port: N, endPort: M              N / N..M inclusive
//	named port, ingress                        resolved per selected pod against its own container
//	                                           ports (name and protocol): pods resolving alike
//	                                           share a tables/policy Policy
//	named port, egress                         resolved per destination pod against its container
//	                                           ports: pods resolving alike share a rule
//	named port a pod does not have             matches nothing for that pod; the rule's other
//	                                           ports still apply
//	named port, egress rule without to         each pod of the cluster with that name, on its port;
//	                                           nothing that is not a pod
//	named port, egress to an ipBlock           matches nothing (see below)
//	traffic from the pod's own node            not decided here: the API allows it whatever the
//	                                           policies ("OR if the traffic source is the pod's
//	                                           local node"); the dataplane lets it through
//	a pod to its own address                   never reaches the dataplane (the pod's loopback);
//	                                           the e2e suite ignores it too
//
// Named ports with ipBlock peers: the API says only that a named port is
// "a named port on a pod". For ingress that is the selected pod, which is
// known whatever the peer, so an ingress rule with an ipBlock and a named
// port allows the block to the local pod's port of that name. For egress
// it is the destination; an ipBlock names addresses, not pods, and an
// address outside the cluster has no ports to resolve, so the named port
// matches nothing for an ipBlock peer, even for a pod whose address lies
// in the block (Cilium reads it so; Calico resolves against pods in the
// block). Resolving by address could not be expressed by identity anyway:
// pods of one identity may lie on both sides of a block. Numeric ports of
// the same rule are unaffected.
//
// # Problems
//
// The API server validates policies; the compiler checks again, since a
// static cluster file has no API server, and never lets one bad policy
// stop the others. Each problem is a [*PolicyError] in Compiled.Problems
// naming the policy and the field (such as
// spec.ingress[0].from[1].ipBlock.except[0]). [Check] runs the same checks
// without compiling: the cluster file (agent/cluster) refuses a policy
// with a problem instead. In Compile, the policy fails closed:
//
//	problem                                    the policy
//	-----------------------------------------  ---------------------------------------------------
//	podSelector invalid (operator, values)     left out: it is unknown which pods it selects
//	policyTypes with an unknown value          isolates its pods both ways, no rules apply
//	any rule invalid: peer (none set, ipBlock  isolates its pods for its policyTypes, none of its
//	  with selectors, bad selector), ipBlock   rules apply (no rule of a policy is dropped alone,
//	  (bad CIDR, except not strictly inside),  which could widen or narrow it unexpectedly)
//	  port (protocol, port 0, bad name,
//	  endPort without or below a numeric port)
//
// Two pods with one address, or a pod or namespace given twice, are
// problems too (the address goes to the pod first in namespace/name
// order).
//
// # Explaining
//
// [View] answers ringnet policy's questions about a compiled policy: what
// one pod may reach and what may reach it, rule by rule, and whether one
// connection is allowed and by which rule. Compile keeps in Compiled, off
// the table and the fast path, what that takes: the identities, each
// NetworkPolicy as parsed with the identities its selector peers picked,
// and for every rule of Policies the NetworkPolicy rule it comes from.
// Isolation and verdicts come from Table itself; a rule is said to allow a
// connection when a table built, by tables/policy.Build, of its compiled
// rules alone allows it. So an explanation cannot disagree with what the
// fast path enforces.
//
// # Cost
//
// Selectors are evaluated against identities, not pods, and what each
// (scope, selector) selects is computed once per compilation. Compile
// allocates its result and scratch proportional to the input; the figure
// for 10k pods and 1k policies is BenchmarkCompile's.
package netpol
