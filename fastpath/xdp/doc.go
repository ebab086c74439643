// Package xdp holds the two XDP programs that feed ringnet's fast path, and
// attaches them:
//
//   - The port program ([NewProgram] for one device, [NewSharedProgram] for
//     every pod port of a node) sits on a pod's host-side veth. Every
//     frame that arrives there is the pod's, so it redirects every frame
//     into the AF_XDP socket that serves the frame's device and RX queue.
//   - The uplink program ([NewUplinkProgram]) sits on the node's uplink,
//     which the node's own networking shares. It redirects only ringnet's
//     traffic (tunnels to the node, NodePorts and NAT replies on the node's
//     address, frames for the node's pod prefixes and services' external
//     IPs) and passes everything else to the kernel, so SSH, kubelet, BGP,
//     ARP and ND for the node's addresses work as if ringnet were not
//     there.
//
// A [Program] serves one device: Register, Unregister, Run, Attach and
// Close work the same for a port's and the uplink's. A [SharedProgram]
// serves many ports, each through a [Device] slot. All are written in Go
// with cilium/ebpf's asm package; there is no C and no generated object.
//
// # The port program
//
// In pseudo-C:
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
// The uplink program's fallback is always Pass.
//
// # The shared port program
//
// Pod ports do not each load a program: they share a [SharedProgram],
// which ringnet's dataplane loads once for up to 256 ports. It keys its
// XSKMAP by slot*queues + queue and finds a device's slot by the frame's
// ingress ifindex in a hash map:
//
//	base = lookup(&devs, ctx->ingress_ifindex)
//	if !base || ctx->rx_queue_index >= queues     return fallback
//	return bpf_redirect_map(&xsks, *base + ctx->rx_queue_index, fallback)
//
// Twenty BPF instructions and one hash lookup per frame, against one program
// per port, because of what attaching costs. The kernel's XDP dispatcher
// is a trampoline that direct-calls the programs attached anywhere
// (instead of an indirect call, which retpolines make slow); when the set
// of distinct attached programs changes it rebuilds the trampoline and
// waits out an RCU grace period (bpf_dispatcher_change_prog), under the
// RTNL lock, in native and generic mode alike. With a program per port,
// every pod ADD and DEL paid that wait: about 10 ms on a 2-core VM, most
// of a CNI ADD (docs/cni.md). Attaching a program already attached
// elsewhere only counts one more user: tens of microseconds
// (BenchmarkAttach). Only the first port of a shared program would pay the
// grace period, and its last, on detach; so the dataplane holds each shared
// program on a TAP of its own ([SharedProgram.Hold]: generic mode, the TAP
// down, "rnxdp0" in the node's namespace), and the program stays in the
// dispatcher while no pod runs it. The grace period is paid once, when the
// program is loaded.
//
// A slot ([SharedProgram.AddDevice]) is filled before the device is
// attached and emptied ([Device.Close]) after it is detached. Keys are
// bounded per slot, so a device with more RX queues than the program
// cannot reach the next slot's sockets; a slot is cleared before it is
// handed out again. The kernel drops a frame redirected to a socket bound
// to another device or queue, so even a wrong map entry could not deliver
// one pod's frames to another pod's socket.
//
// The uplink keeps a [Program] of its own: its rules are the node's, not
// a pod's. A single-device [Program] (NewProgram) is also what tools and
// tests that hook one device use; its XSKMAP is keyed by queue alone.

// # The uplink program
//
// The uplink program reads the Ethernet header and the fixed IPv4 or IPv6
// header, and redirects a frame when its destination MAC is the uplink's
// ([UplinkOptions].MAC; zero accepts any) and one of these holds:
//
//   - a tunnel to the node: EtherType IPv4, destination NodeIPv4, and
//     either UDP to VXLANPort (non-zero) in a header of exactly 20 bytes
//     (version 4, IHL 5), or, with IPIP set, IP protocol 4 (IPIP) or 41
//     (IPv6 in IPv4);
//   - a service port on the node: EtherType IPv4, destination NodeIPv4, a
//     header of exactly 20 bytes, not a fragment (neither the more
//     fragments flag nor an offset), TCP, UDP or SCTP, and a destination
//     port in one of [UplinkOptions].PortRanges: the NodePort range, and
//     the NAT range where replies to connections the fast path masqueraded
//     come back;
//   - direct routing to a pod or a service: EtherType IPv4 with a
//     destination in an IPv4 local prefix, or EtherType IPv6 with a
//     destination in an IPv6 one, whatever the protocol and port. The
//     prefixes are the node's pod CIDRs and, as /32 and /128, the external
//     IPs of services the fast path balances.
//
// Everything else passes: other EtherTypes (ARP, VLAN-tagged frames, LLDP),
// multicast and broadcast, the node's own unicast traffic, frames too short
// to hold the headers a rule reads, and frames whose queue has no socket.
// In pseudo-C (the MAC, tunnel and port blocks are emitted only when
// configured):
//
//	if eth + 14 > end || (MAC && eth.dst != MAC)      return PASS
//	if eth.type == IPv4 {
//		if ip + 20 > end                              return PASS
//		if ip.dst == NodeIPv4 &&
//		   (IPIP && ip.proto in {4, 41} ||
//		    VXLANPort && ip.proto == 17 && ip.vihl == 0x45 &&
//		    l4 + 8 <= end && l4.dport == VXLANPort ||
//		    ranges && ip.proto in {6, 17, 132} && ip.vihl == 0x45 &&
//		    !(ip.frag & (MF|offset)) &&
//		    l4 + 8 <= end && l4.dport in ranges)      goto redirect
//		if lookup(local4, ip.dst)                     goto redirect
//	} else if eth.type == IPv6 {
//		if ip6 + 40 > end                             return PASS
//		if lookup(local6, ip6.dst)                    goto redirect
//	}
//	return PASS
//	redirect: return bpf_redirect_map(&xsks, ctx->rx_queue_index, PASS)
//
// That is at most 60 BPF instructions without port ranges, and at most 74
// with every rule and [MaxPortRanges] ranges: the ranges are tested in
// ascending order, two instructions each (one for a range that ends at
// 65535). The program checks only what it reads: a frame cut short after
// the headers a rule needs is redirected (for ports, the first 8 bytes of
// the L4 header: all of UDP's, the least of TCP's and SCTP's), and user
// space validates the rest (lengths, checksums) as for any frame.
//
// Fragments: for the port ranges every IPv4 fragment passes, the first one
// (offset 0, more fragments set) included, although it holds the ports.
// The later fragments hold no ports and cannot be told from the node's own
// traffic, so they go to the kernel; sending the first one to the fast
// path would split the datagram between two places, neither of which could
// put it together. Passed whole, the kernel reassembles it and answers as
// for any port it has no socket on. So NodePort and NAT traffic must not be
// fragmented on the underlay (TCP with path MTU discovery never is). The
// tunnel rules do not look at the fragment field: the first fragment of a
// VXLAN packet is redirected, while later ones carry no UDP header and pass
// (unless the bytes where the port would be happen to match), so the
// underlay must not fragment VXLAN either; IPIP fragments and fragments
// for a local prefix are all redirected. IPv4 packets with options to a
// NodePort pass, as for VXLAN; the node's IPv6 address has no NodePorts
// here (the underlay is IPv4): a service reached over IPv6 is an external
// IP, a /128 local prefix.
//
// A NAT range must not overlap the ports the node's own kernel picks for
// its connections (net.ipv4.ip_local_port_range, 32768-60999 by default):
// the replies to them would go to the fast path. The NodePort range must
// not hold ports the node's own services listen on, for the same reason.
//
// The local prefixes live in two BPF_MAP_TYPE_LPM_TRIE maps, one per family
// (key: prefix length and address), set with [Program.SetLocalPrefixes] and
// read back with [Program.LocalPrefixes]: typically the node's pod CIDRs,
// which peers on the same subnet route straight to the node's uplink, and
// services' external IPs as /32s and /128s. An
// update adds the new prefixes before it deletes the old ones, so a frame
// that both the old and the new set cover is redirected throughout (the
// kernel has no atomic swap of a whole trie short of map-in-map, which would
// cost a lookup per frame). Each family holds at most [MaxLocalPrefixes]; the
// maps have room for twice that, for the moment both sets are in.
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
// A Program owns one fd for the program and one per map (one map for a
// port, three for the uplink); an Attachment owns one link fd. The kernel
// counts references: the link holds the program, the program holds its
// maps, and the XSKMAP holds the registered sockets. So:
//
//   - Closing a Program while it is attached does not detach it; the port
//     keeps forwarding to the registered sockets, but they can no longer be
//     changed. Close the Attachment to detach.
//   - Closing an AF_XDP socket (its last fd) removes it from the map; its
//     queue falls back. Unregister before closing to make the order plain.
//   - Deleting the device (the pod's veth going away) detaches the program;
//     the Attachment's Close then only releases the fd.
//
// The usual order is NewProgram (or NewUplinkProgram and
// SetLocalPrefixes), bind sockets, Register each, Attach; and on the way
// down Attachment.Close, close the sockets, Program.Close. With a shared
// program: AddDevice, bind sockets, Device.Register each, Device.Attach;
// and on the way down Attachment.Close, Device.Close, close the sockets;
// SharedProgram.Close once no device uses it.
//
// # Namespaces and concurrency
//
// Attach, Detach, Query and Run name devices by ifindex, which the kernel
// resolves in the calling thread's network namespace: call them from the
// namespace that holds the device (with runtime.LockOSThread around setns,
// if the process is not already there). Loading a program and updating its
// maps do not depend on the namespace. Register, Unregister,
// SetLocalPrefixes, LocalPrefixes, Run and Attach are safe for concurrent
// use (SetLocalPrefixes calls take turns); Close is not, with anything.
// None of this is on the per-packet path: the per-packet work is the kernel
// running the program, and nothing here allocates per frame.
package xdp
