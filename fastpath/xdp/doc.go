// Package xdp is the XDP program that feeds ringnet's fast path: it
// redirects every frame arriving on a port (a pod's host-side veth) into the
// AF_XDP socket that serves the frame's RX queue. It redirects everything,
// so it is not the program for the node's uplink, which must pass the
// node's own traffic.
//
// # The program
//
// The program is written in Go with cilium/ebpf's asm package; there is no C
// and no generated object. In pseudo-C:
//
//	r2 = ctx->rx_queue_index
//	return bpf_redirect_map(&xsks, r2, fallback)
//
// It does not look at the frame. Parsing, policy and forwarding happen in
// user space, in the worker that owns the socket.
//
// # The map and the fallback
//
// xsks is a BPF_MAP_TYPE_XSKMAP with one slot per RX queue (key: queue index;
// value: an AF_XDP socket, given as its fd). [Program.Register] fills a slot
// once the worker's socket is bound to (device, queue); [Program.Unregister]
// empties it. When a frame's slot is empty, or its queue is beyond the map,
// bpf_redirect_map returns the verdict in the low bits of its flags argument
// (Linux 5.12 and later) instead of XDP_REDIRECT: the fallback, chosen when
// the program is loaded. Pass (the default) hands the frame to the kernel,
// Drop drops it, and Aborted drops it with a tracepoint for debugging. The
// fallback is part of the program, so changing it means loading a new one.
//
// # One program and one map per port
//
// Every port gets its own [Program] and so its own map. Keys are queue
// numbers, which repeat on every device, and a socket in another port's map
// would receive nothing (the kernel drops frames redirected to a socket
// bound to a different device or queue). Separate maps also mean a port is
// set up and torn down without touching any other port. Both are small: six
// BPF instructions, and a map with one slot per queue.
//
// # Attachment
//
// [Program.Attach] hooks the program to the device through a bpf_link
// (cilium/ebpf's link.AttachXDP), not through netlink. The difference is
// what happens when ringnetd dies:
//
//   - A bpf_link belongs to the fds that refer to it. When ringnetd exits,
//     however it exits (SIGKILL included), the kernel closes its fds and the
//     program detaches. No port is left redirecting into sockets that no
//     longer exist; until ringnetd comes back, frames take the kernel's path
//     as if ringnet were not there.
//   - A program attached through netlink stays attached until someone removes
//     it. After a crash it would keep sending frames to a map whose sockets
//     are gone, so every frame would get the fallback verdict, forever.
//
// The kernel also refuses to let netlink replace or remove a link's program,
// so `ip link set dev DEV xdp off` or another tool cannot detach a live port
// by accident; a second Attach on the same device fails with [ErrBusy].
// [Detach] removes a program left by netlink (an older ringnet, a test, ip
// link) in whichever mode it runs, and [Query] reports what a device runs. Links are not pinned in
// bpffs: a restart of ringnetd re-creates its ports.
//
// Native XDP on veth has one limit that shows at attach time: the peer's MTU
// must let a frame fit one page (3506 bytes with 4 KiB pages), because the
// program does not declare multi-buffer support. Pods at 1500 (or 1450 for
// VXLAN) are far below it.
//
// The mode is always explicit: [ModeNative] runs in the driver (veth
// supports it), [ModeGeneric] after the skb is built (any device). The
// kernel attaches in exactly the mode asked for or fails, and
// [Attachment.Mode] reports it. Asking for native mode on a device whose
// driver has no XDP fails with [ErrModeNotSupported]; the message says to
// try generic.
//
// # Ownership and lifetime
//
// A Program owns one fd for the program and one for the map; an Attachment
// owns one link fd. The kernel counts references: the link holds the
// program, the program holds the map, and the map holds the registered
// sockets. So:
//
//   - Closing a Program while it is attached does not detach it; the port
//     keeps forwarding to the registered sockets, but they can no longer be
//     changed. Close the Attachment to detach.
//   - Closing an AF_XDP socket (its last fd) removes it from the map; its
//     queue falls back. Unregister before closing to make the order plain.
//   - Deleting the device (the pod's veth going away) detaches the program;
//     the Attachment's Close then only releases the fd.
//
// The usual order is NewProgram, bind sockets, Register each, Attach; and
// on the way down Attachment.Close, close the sockets, Program.Close.
//
// # Namespaces and concurrency
//
// Attach, Detach, Query and Run name devices by ifindex, which the kernel
// resolves in the calling thread's network namespace: call them from the
// namespace that holds the device (with runtime.LockOSThread around setns,
// if the process is not already there). Loading a program and updating its
// map do not depend on the namespace. Register, Unregister, Run and Attach
// are safe for concurrent use; Close is not, with anything. None of this is
// on the per-packet path: the per-packet work is the kernel running the
// program, and nothing here allocates per frame.
package xdp
