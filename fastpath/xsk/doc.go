// Package xsk is ringnet's AF_XDP socket layer: a UMEM, its fill and
// completion rings, and a socket's RX and TX rings, on golang.org/x/sys/unix.
//
// # Model
//
// A [Socket] is bound to one (device, queue) and owns one UMEM: NumFrames
// chunks of FrameSize bytes. UMEMs are not shared between sockets, so a frame
// address always belongs to exactly one socket and one goroutine; forwarding
// between ports copies the frame into the destination socket's UMEM. On veth
// (copy mode only) the kernel copies every frame in and out of the UMEM
// anyway, so a shared UMEM would save one copy of at most one frame while
// forcing frame pools to be synchronised across workers and sized for the
// largest number of ports up front.
//
// Every frame is in exactly one place at a time:
//
//	free stack --Refill--> fill ring --kernel--> RX ring --Receive--> caller
//	caller --Transmit--> TX ring --kernel--> completion ring --Complete--> free stack
//	caller --Free--> free stack
//
// The free stack is a LIFO of chunk addresses; taking and returning a frame
// is O(1), never a scan.
//
// # Rings
//
// The four rings live in memory shared with the kernel. Each has a producer
// and a consumer index; one side writes each (the comments on the ring types
// say which). Indexes are read and written with sync/atomic — Go's atomics
// are sequentially consistent, which is at least the acquire/release order
// the kernel's ring protocol asks for — and only once per batch: each side
// caches the other side's index and reloads it only when the cached value
// says the batch will not fit.
//
// # Wakeups
//
// Sockets are bound with XDP_USE_NEED_WAKEUP. The kernel sets
// XDP_RING_NEED_WAKEUP in a ring's flags when it will not make progress
// without a syscall; [Socket.Transmit] calls sendto and [Socket.Refill]
// calls recvfrom only then. In copy mode the TX ring always asks, because the
// kernel transmits in the context of that sendto.
//
// # Concurrency and allocation
//
// A Socket is used by one goroutine at a time (its worker); only Close and
// Stats may be called from another goroutine after the worker has stopped.
// Nothing on the per-batch path allocates or takes a lock. Errors are
// returned with the device and queue in their context; nothing panics.
package xsk
