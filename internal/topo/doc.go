// Package topo builds the multi-node topology that the tests, the benchmarks
// and the demo run on: a cluster of nodes on one machine, each node a network
// namespace, all joined by an underlay bridge in the root namespace.
//
//	root namespace
//	+--------------------------------------------------------------------+
//	|            underlay bridge <id>-br  (up, no address, no IPv6)      |
//	|    +-----------------+------------------+-------------------+      |
//	|  <id>-1            <id>-2             <id>-3               ...     |
//	+----|-----------------|------------------|--------------------------+
//	     | veth            | veth             | veth (Queues rx/tx, MTU)
//	+----|--------+  +-----|----------+  +----|------------------------------+
//	| uplink0     |  | uplink0        |  | uplink0  192.168.60.1/24          |
//	| .50.1/24    |  | .50.254/24     |  |   default via 192.168.60.254      |
//	|             |  | .60.254/24     |  | flannel.1  vxlan id 1, udp 8472,  |
//	| netns       |  | netns <id>-r   |  |   nolearning, 10.244.2.0/32,      |
//	| <id>-a      |  | (router)       |  |   mtu = uplink - 50               |
//	+-------------+  +----------------+  | cni0  10.244.2.1/24               |
//	  AddNode          AddRouter         |   veth0 -- eth0 10.244.2.2/24     |
//	                                     |            netns <id>-b-<pod>     |
//	                                     +-----------------------------------+
//	                                       AddFlannelNode, AddPod, AddPeer
//
// Every node has lo up and forwarding on (IPv4 and IPv6). A node whose
// options name no gateway gets a default route through the router address
// on its subnet, if a router has one (in whichever order the two were added).
// The router does not send ICMP redirects, so cross-subnet traffic really
// goes through it. A Flannel-style node carries the kernel datapath that
// Flannel's vxlan backend builds, so ringnet can be tested against, and next
// to, the real thing.
//
// # Names
//
// A Topology has an ID: the fixed stem "rnt", the caller's prefix (at most 4
// of [a-z0-9]) and 4 random characters, e.g. "rntfl3k9a". Every name it makes
// starts with the ID: the bridge <id>-br and the root ends of the veths
// <id>-<n> (both fit IFNAMSIZ), the node namespaces <id>-<node> and the pod
// namespaces <id>-<node>-<pod>. Inside a namespace names are fixed: uplink0,
// flannel.1, cni0, veth<n>, eth0.
//
// While a Topology lives, its process holds an flock on
// /run/ringnet-topo/<id>.lock. Close removes everything and then the lock
// file. Sweep removes the leftovers of a run that died without Close: names
// with the stem and prefix whose lock file is missing or no longer locked.
// It never touches a name outside that pattern, nor a live run's.
//
// # Use
//
// A Topology is built and closed through its methods, which serialise on one
// mutex; the Node, FlannelNode and Pod values they return are plain records
// that callers read but do not change. Nothing here is on a hot path: it
// execs ip, tcpdump and tshark, and configures links through netlink.
// NewT wraps New and Close for tests and benchmarks without importing
// package testing, so the demo links none of it.
//
// Capture and Decode record with tcpdump and read back with tshark, which
// decodes UDP 8472 as VXLAN (Flannel's port; tshark assumes 4789). Veths
// and bridges carry GSO frames: a capture on the underlay holds VXLAN
// packets of up to 64 KiB, each several MTU-sized segments on a real wire,
// so count TCP bytes (tcp.len), not packets.
package topo
