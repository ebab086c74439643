// Package slowpath connects the fast path to the node's own network stack
// through a TAP device, ringnet0: host ↔ pod traffic (kubelet probes,
// node-local services, pod → node), and whatever the fast path does not
// handle itself (IP options, fragments, unknown protocols, destinations off
// the node), rate-limited and counted. docs/slowpath.md has the whole
// picture and the measurements.
//
// # Data flow
//
//	host stack --route via 169.254.1.1 dev ringnet0--> TAP
//	    --reader goroutine--> FromHost(w) queue --> worker w --> pod's AF_XDP socket
//	pod --> worker w --punt list, token bucket--> ToHost(w) queue
//	    --writer goroutine--> TAP --> host stack
//
// The host routes each pod's /32 and /128 (or each pod CIDR, Options.
// PodPrefixes) "via 169.254.1.1 dev ringnet0 onlink" (IPv6: via fe80::1),
// and has permanent neighbour entries for both gateway addresses with the
// gateway's MAC, so every frame the host sends into the TAP is addressed to
// the gateway, as a pod's frames are, and no ARP or ND is needed. The fast
// path hands frames to the host with the TAP's MAC as destination and the
// gateway's as source.
//
// # Goroutines and queues
//
// Two goroutines, each with its own counters (pipeline.HostPort's
// ReaderCounters and WriterCounters):
//
//   - the reader reads batches from the TAP (one read(2) per frame, up to
//     Options.Batch per trip through Go's poller), picks a worker per frame
//     by a hash of addresses, protocol and ports (a flow stays on one worker
//     and in order), copies the frame into that worker's FromHost queue,
//     publishes each touched queue once per batch and wakes the worker if it
//     sleeps (an eventfd write, only then);
//   - the writer drains the workers' ToHost queues in turn, writing each
//     frame to the TAP straight from its queue slot, and parks on a
//     doorbell when all are empty; a worker rings it only when it has
//     flushed frames and the writer is parked.
//
// The queues (pipeline.FrameQueue) are bounded single-producer
// single-consumer rings of preallocated frame slots, one pair per worker,
// with one atomic store per batch on each side. A full queue drops the frame
// and counts it: PuntQueueFull on the worker, HostRxQueueFull on the reader.
// Nothing blocks the fast path, and no frame is allocated: the reader, the
// writer and the worker's side allocate nothing per frame or per batch
// (tests assert it with testing.AllocsPerRun).
//
// Why not a channel of batches: it costs the same per frame (pipeline's
// BenchmarkFrameQueueSPSC and BenchmarkChannelOfBatches), but its capacity
// is counted in batches, and a worker hands over a whole batch buffer at the
// end of every step even for one frame; the ring's is counted in frames.
//
// # The TAP
//
// Package tap opens the device with github.com/songgao/water and does its
// batched I/O through the *os.File's syscall.RawConn, which water's
// io.ReadWriter interface does not offer (see package tap). The device is
// not persistent: it disappears, with its routes and neighbour entries, when
// ringnetd exits, also on SIGKILL.
//
// # What the host's side gets
//
// Start configures, besides the routes and neighbours above: the TAP's MTU
// (Options.MTU, the pods'), IPv6 on it without router advertisements or
// solicitations, no ICMP redirects sent or accepted on it, and a route to
// 169.254.1.1 on it, so that ICMP errors the fast path sends the host from
// the gateway's address pass the host's reverse-path filter.
//
// It also sets accept_local=1 and rp_filter=0 on the TAP, so that the host
// forwards the replies the fast path reverse-NATs to one of the node's own
// addresses (a NodePort reply from a local pod to a client off the node)
// instead of dropping them as martians. The kernel applies the larger of
// net.ipv4.conf.all.rp_filter and the TAP's; when conf.all's is on, Start
// logs a warning and changes nothing global (docs/slowpath.md).
//
// It publishes a pipeline.Host to the fast path: the TAP's MAC, the node's
// addresses (every address in the namespace but loopback and link-local
// ones, followed through a netlink subscription), the pod prefixes, and the
// source addresses of ICMP errors to pods (the default route's preferred
// source, else the first address by interface index, per family; else the
// gateway's).
//
// # Concurrency
//
// Start and Close are control-plane calls. Start must run on a thread in
// the node's namespace (ringnetd runs there as a whole); it keeps a netlink
// handle in that namespace for the watchers, which run on other threads.
package slowpath
