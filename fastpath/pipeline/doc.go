// Package pipeline is ringnet's fast path: the workers that move frames
// between pod ports, and between pods and the node's own stack.
//
// # Model
//
// A [Dataplane] has a fixed set of workers and a changing set of ports. A
// pod [Port] is the host end of a pod's veth with one AF_XDP socket per
// worker; worker i owns socket i of every port (its rings and its UMEM), so
// no two workers touch the same memory. The port set and the endpoint table
// (pod address → port, MAC) are immutable snapshots behind atomic pointers:
// the control plane (AddPort, RemovePort, SetHost) builds the next one under
// a mutex and publishes it; a worker loads them once per batch.
//
// A worker's step receives a batch from each of its sockets, runs process
// on every frame (decode, ARP/ND for the gateway, endpoint lookup, L2
// rewrite, TTL, the punt list) and acts on the verdict: forward (copy into
// the destination port's UMEM, TX), reply (in place, back out of the port
// it came in on), punt (copy into the queue to the node) or drop. Every
// frame is counted under exactly one reason (package stats).
//
// # The host port
//
// With [Dataplane.EnableSlowPath], each worker also owns a pair of
// [FrameQueue]s, its [HostPort]: ToHost, which it fills with the frames the
// punt list hands to the node (and the answers to frames from the node),
// and FromHost, which the slow path fills with frames the node sends to
// pods. Package slowpath moves them to and from the TAP. The punt list,
// the token buckets and the ICMP errors the fast path sends are in
// punt.go and icmp.go; what the fast path knows of the node (the TAP's MAC,
// the node's addresses, the pod prefixes) is a [Host] snapshot.
//
// # Policy, services and flows
//
// Once NetworkPolicy, services or masquerade are published, process looks
// each packet's connection up in the connection table (tables/conntrack)
// once: translate (nat.go) opens service and masqueraded connections and
// rewrites every packet of a translated one, both ways, before routing;
// admit (policy.go) checks the first packet of a connection against the
// policy and passes the rest on the tracked entry. Each decision about a
// new connection, never a later packet, goes into the worker's flow ring
// (flows.go), which the agent drains for its flow log.
//
// # Cost
//
// Per frame, nothing allocates, locks, logs or makes a syscall; per batch a
// worker makes at most one TX wakeup per destination socket, one atomic
// store per queue to the node, and one channel send when the slow path's
// writer sleeps. Tests assert zero allocations with testing.AllocsPerRun.
package pipeline
