package xdp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Names the kernel shows for the uplink program and its prefix maps (its
// XSKMAP is called MapName, like a port's).
const (
	UplinkProgramName = "ringnet_uplink"
	Local4MapName     = "ringnet_local4"
	Local6MapName     = "ringnet_local6"
)

// MaxLocalPrefixes bounds the local prefixes of each family an uplink
// program holds: a node has a handful of pod CIDRs and service external
// IPs, not a routing table.
const MaxLocalPrefixes = 256

// MaxPortRanges bounds UplinkOptions.PortRanges: each range costs the
// program up to two instructions per frame that reaches the range checks.
const MaxPortRanges = 4

// PortRange is an inclusive range of TCP, UDP and SCTP destination ports.
type PortRange struct {
	First, Last uint16
}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// UplinkOptions configures the uplink program.
type UplinkOptions struct {
	// Queues is the size of the XSKMAP, as in ProgramOptions: one slot per
	// RX queue of the uplink, at least 1, at most MaxQueues.
	Queues int
	// MAC is the uplink's MAC address: only unicast frames to it are
	// considered. The zero MAC means any destination MAC. A multicast MAC
	// is refused.
	MAC [6]byte
	// NodeIPv4 is the node's underlay address: tunnel, NodePort and NAT
	// reply traffic must be addressed to it. Required when VXLANPort, IPIP
	// or PortRanges is set.
	NodeIPv4 [4]byte
	// VXLANPort is the UDP destination port of VXLAN to redirect (4789, or
	// 8472 for Flannel); 0 redirects no UDP for the tunnel rule.
	VXLANPort uint16
	// IPIP redirects IP protocols 4 (IPIP) and 41 (IPv6 in IPv4) addressed
	// to NodeIPv4.
	IPIP bool
	// PortRanges redirects TCP, UDP and SCTP addressed to NodeIPv4 whose
	// destination port is in one of the ranges: the NodePort range
	// (Kubernetes' default 30000-32767) and the fast path's NAT source
	// ports, where replies to masqueraded connections arrive. At most
	// MaxPortRanges, in any order, none overlapping another, none holding
	// port 0; they need NodeIPv4. A range must not overlap the ports the
	// node's kernel picks for its own connections
	// (net.ipv4.ip_local_port_range, by default 32768-60999), or the
	// replies to them go to the fast path instead of the node.
	//
	// Only IPv4 headers of exactly 20 bytes are read for ports, as for
	// VXLAN; a packet with IP options passes. So does every fragment, the
	// first included: a datagram must not be split between the fast path
	// and the kernel, and only the kernel reassembles.
	PortRanges []PortRange
}

func (o UplinkOptions) validate() error {
	if o.Queues < 1 || o.Queues > MaxQueues {
		return fmt.Errorf("queues %d out of range [1, %d]", o.Queues, MaxQueues)
	}
	if o.MAC[0]&1 != 0 {
		return fmt.Errorf("mac %x is a multicast address: give the uplink's own (or zero for any)", o.MAC)
	}
	if (o.VXLANPort != 0 || o.IPIP) && o.NodeIPv4 == [4]byte{} {
		return errors.New("vxlan or ipip needs the node's ipv4 address (NodeIPv4)")
	}
	if len(o.PortRanges) == 0 {
		return nil
	}
	if o.NodeIPv4 == [4]byte{} {
		return errors.New("port ranges need the node's ipv4 address (NodeIPv4)")
	}
	if len(o.PortRanges) > MaxPortRanges {
		return fmt.Errorf("%d port ranges, at most %d", len(o.PortRanges), MaxPortRanges)
	}
	for _, r := range o.PortRanges {
		if r.First == 0 || r.First > r.Last {
			return fmt.Errorf("port range %v: want 1 <= first <= last", r)
		}
	}
	sorted := o.sortedPortRanges()
	for i := 1; i < len(sorted); i++ {
		if sorted[i].First <= sorted[i-1].Last {
			return fmt.Errorf("port ranges %v and %v overlap", sorted[i-1], sorted[i])
		}
	}
	return nil
}

// sortedPortRanges returns a copy of o.PortRanges in ascending order.
func (o UplinkOptions) sortedPortRanges() []PortRange {
	s := slices.Clone(o.PortRanges)
	slices.SortFunc(s, func(a, b PortRange) int { return cmp.Compare(a.First, b.First) })
	return s
}

// Frame layout the uplink program reads: an untagged Ethernet header, then
// IPv4 (without options where a port is read) or IPv6.
const (
	ethLen       = 14
	offEtherType = 12
	offIPv4VIHL  = ethLen + 0           // version and IHL
	offIPv4Frag  = ethLen + 6           // flags and fragment offset
	offIPv4Proto = ethLen + 9           // protocol
	offIPv4Dst   = ethLen + 16          // destination address
	ipv4Len      = 20                   // header without options
	offUDPDst    = ethLen + ipv4Len + 2 // also TCP's and SCTP's destination port
	udpLen       = 8
	offIPv6Dst   = ethLen + 24
	ipv6Len      = 40

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	ipv4VIHL5     = 0x45   // version 4, IHL 5 (20 bytes: no options)
	ipv4MFOffset  = 0x3fff // more fragments flag and fragment offset
	protoIPIP     = 4
	protoTCP      = 6
	protoUDP      = 17
	protoIPv6     = 41
	protoSCTP     = 132
)

// offData and offDataEnd are offsetof(struct xdp_md, data) and data_end;
// see offRxQueueIndex.
const (
	offData    = 0
	offDataEnd = 4
)

// Keys of the prefix maps: struct bpf_lpm_trie_key with the address in
// network byte order. PrefixLen is in host order; binary encoding of the key
// is the machine's, which is what the kernel reads.
type (
	lpmKey4 struct {
		PrefixLen uint32
		Addr      [4]byte
	}
	lpmKey6 struct {
		PrefixLen uint32
		Addr      [16]byte
	}
)

// Stack slots of the lookup keys (R10 is the read-only frame pointer). The
// IPv6 key's address is stored as two 8-byte words, which must sit on
// 8-byte boundaries of the stack.
const (
	stackKey4 = -8  // lpmKey4: prefix length at -8, address at -4
	stackKey6 = -20 // lpmKey6: prefix length at -20, address at -16 and -8
)

// ne16 and ne32 return what a 2- or 4-byte load of the given network-order
// bytes yields on this machine. BPF loads are in host byte order, so every
// constant the program compares with frame bytes is built this way.
func ne16(b0, b1 byte) int32 { return int32(binary.NativeEndian.Uint16([]byte{b0, b1})) }
func ne32(b [4]byte) int32   { return int32(binary.NativeEndian.Uint32(b[:])) }

// be16 is ne16 of a network-order value (an EtherType, a port).
func be16(v uint16) int32 { return ne16(byte(v>>8), byte(v)) }

// uplinkInstructions is the uplink program. In pseudo-C:
//
//	if eth + 14 > end                                  return PASS
//	if MAC != 0 && eth.dst != MAC                      return PASS
//	switch eth.type {
//	case IPv4:
//		if ip + 20 > end                               return PASS
//		if ip.dst == NodeIPv4 {
//			if IPIP && ip.proto in {4, 41}             goto redirect
//			if (VXLANPort && ip.proto == 17 ||
//			    ranges && ip.proto in {6, 17, 132}) &&
//			   ip.vihl == 0x45 && l4 + 8 <= end {
//				if VXLANPort && ip.proto == 17 &&
//				   l4.dport == VXLANPort               goto redirect
//				if ranges && !(ip.frag & (MF|offset)) &&
//				   l4.dport in ranges                  goto redirect
//			}
//		}
//		if lookup(local4, {32, ip.dst})                goto redirect
//	case IPv6:
//		if ip6 + 40 > end                              return PASS
//		if lookup(local6, {128, ip6.dst})              goto redirect
//	}
//	return PASS
//	redirect: return bpf_redirect_map(&xsks, ctx->rx_queue_index, PASS)
//
// The MAC, tunnel and port blocks are only emitted when the options ask
// for them. The ranges are tested in ascending order, so a port below a
// range's first is in none of the ranges left: two instructions per
// range, one for a range that ends at 65535.
//
// Every load of 2 bytes or more is at an offset that, plus the 2 bytes of
// NET_IP_ALIGN the verifier assumes, is a multiple of its size, so the
// program also passes the verifier's strict alignment checks (BPF_F_STRICT_ALIGNMENT, or machines
// without efficient unaligned access). The MAC is therefore read as 2 + 4
// bytes, not 4 + 2.
func uplinkInstructions(o UplinkOptions) asm.Instructions {
	const (
		data  = asm.R6 // frame start (packet pointer)
		end   = asm.R7 // frame end (packet end pointer)
		queue = asm.R8 // ctx->rx_queue_index
		tmp   = asm.R2 // scratch; also the helpers' second argument
		dst4  = asm.R3 // IPv4 destination, as loaded
		proto = asm.R4 // IPv4 protocol
		port  = asm.R5 // TCP, UDP or SCTP destination port
	)
	ranges := o.sortedPortRanges()
	// Callee-saved R6-R8 hold what survives the map lookup helper calls.
	insns := asm.Instructions{
		asm.LoadMem(data, asm.R1, offData, asm.Word),
		asm.LoadMem(end, asm.R1, offDataEnd, asm.Word),
		asm.LoadMem(queue, asm.R1, offRxQueueIndex, asm.Word),

		// Ethernet header in bounds? The verifier rejects any load
		// from the frame not dominated by such a check.
		asm.Mov.Reg(tmp, data),
		asm.Add.Imm(tmp, ethLen),
		asm.JGT.Reg(tmp, end, "pass"),
	}

	// Destination MAC: ours, or pass. The first load is 2 bytes, the
	// second 4 and compared in 32 bits (a 64-bit compare would sign-extend
	// the immediate).
	if o.MAC != [6]byte{} {
		insns = append(insns,
			asm.LoadMem(tmp, data, 0, asm.Half),
			asm.JNE.Imm(tmp, ne16(o.MAC[0], o.MAC[1]), "pass"),
			asm.LoadMem(tmp, data, 2, asm.Word),
			asm.JNE.Imm32(tmp, ne32([4]byte(o.MAC[2:6])), "pass"),
		)
	}

	// EtherType: IPv4 falls through, IPv6 jumps, anything else (ARP, a
	// VLAN tag, ...) passes.
	insns = append(insns,
		asm.LoadMem(tmp, data, offEtherType, asm.Half),
		asm.JEq.Imm(tmp, be16(etherTypeIPv6), "ipv6"),
		asm.JNE.Imm(tmp, be16(etherTypeIPv4), "pass"),

		// IPv4: the fixed header in bounds? Then keep its destination.
		asm.Mov.Reg(tmp, data),
		asm.Add.Imm(tmp, ethLen+ipv4Len),
		asm.JGT.Reg(tmp, end, "pass"),
		asm.LoadMem(dst4, data, offIPv4Dst, asm.Word),
	)

	// Addressed to the node: tunnels by protocol (IPIP) or UDP port
	// (VXLAN), NodePorts and NAT replies by TCP, UDP or SCTP port. A miss
	// goes on to the prefix lookup, not to pass: the rules are
	// alternatives.
	vxlan, ports := o.VXLANPort != 0, len(ranges) > 0
	if o.IPIP || vxlan || ports {
		insns = append(insns,
			asm.JNE.Imm32(dst4, ne32(o.NodeIPv4), "local4"),
			asm.LoadMem(proto, data, offIPv4Proto, asm.Byte),
		)
	}
	if o.IPIP {
		insns = append(insns,
			asm.JEq.Imm(proto, protoIPIP, "redirect"),
			asm.JEq.Imm(proto, protoIPv6, "redirect"),
		)
	}
	if vxlan || ports {
		if ports {
			insns = append(insns,
				asm.JEq.Imm(proto, protoTCP, "l4"),
				asm.JEq.Imm(proto, protoSCTP, "l4"),
			)
		}
		insns = append(insns,
			asm.JNE.Imm(proto, protoUDP, "local4"),
			// No IP options, so the L4 header is where we read it.
			asm.LoadMem(tmp, data, offIPv4VIHL, asm.Byte).WithSymbol("l4"),
			asm.JNE.Imm(tmp, ipv4VIHL5, "local4"),
			// The first 8 bytes of the L4 header (all of UDP's, the
			// least of the three) in bounds? Then the destination port,
			// at the same place in all three.
			asm.Mov.Reg(tmp, data),
			asm.Add.Imm(tmp, ethLen+ipv4Len+udpLen),
			asm.JGT.Reg(tmp, end, "local4"),
			asm.LoadMem(port, data, offUDPDst, asm.Half),
		)
	}
	if vxlan {
		if ports {
			insns = append(insns, asm.JNE.Imm(proto, protoUDP, "ports"))
		}
		insns = append(insns, asm.JEq.Imm(port, be16(o.VXLANPort), "redirect"))
	}
	if ports {
		insns = append(insns,
			// Not a fragment: the first has the ports, but the others
			// would go to the kernel, which alone can put them together.
			asm.LoadMem(tmp, data, offIPv4Frag, asm.Half).WithSymbol("ports"),
			asm.JSet.Imm(tmp, be16(ipv4MFOffset), "local4"),
			// The port in host order, for the range compares.
			asm.HostTo(asm.BE, port, asm.Half),
		)
		for _, r := range ranges {
			if r.Last == 0xffff {
				insns = append(insns, asm.JGE.Imm(port, int32(r.First), "redirect"))
				continue
			}
			insns = append(insns,
				asm.JLT.Imm(port, int32(r.First), "local4"),
				asm.JLE.Imm(port, int32(r.Last), "redirect"),
			)
		}
	}

	insns = append(insns,
		// IPv4 destination in a local prefix? Key {32, dst} on the
		// stack; lookup(map, key) returns a value pointer or NULL.
		asm.StoreImm(asm.R10, stackKey4, 32, asm.Word).WithSymbol("local4"),
		asm.StoreMem(asm.R10, stackKey4+4, dst4, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(Local4MapName),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackKey4),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "redirect"),
		asm.Ja.Label("pass"),

		// IPv6: the fixed header in bounds? Then the lookup of {128,
		// dst}, the address copied as two 8-byte words.
		asm.Mov.Reg(tmp, data).WithSymbol("ipv6"),
		asm.Add.Imm(tmp, ethLen+ipv6Len),
		asm.JGT.Reg(tmp, end, "pass"),
		asm.StoreImm(asm.R10, stackKey6, 128, asm.Word),
		asm.LoadMem(tmp, data, offIPv6Dst, asm.DWord),
		asm.StoreMem(asm.R10, stackKey6+4, tmp, asm.DWord),
		asm.LoadMem(tmp, data, offIPv6Dst+8, asm.DWord),
		asm.StoreMem(asm.R10, stackKey6+12, tmp, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(Local6MapName),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, stackKey6),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),

		// Redirect to the socket of the frame's queue; an empty slot
		// (or a queue beyond the map) makes the helper return PASS.
		asm.Mov.Reg(asm.R2, queue).WithSymbol("redirect"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapName),
		asm.Mov.Imm(asm.R3, int32(Pass)),
		asm.FnRedirectMap.Call(),
		asm.Return(),

		asm.Mov.Imm(asm.R0, int32(Pass)).WithSymbol("pass"),
		asm.Return(),
	)
	return insns
}

// newUplinkSpec describes, without loading anything, the maps and the
// program NewUplinkProgram loads.
func newUplinkSpec(o UplinkOptions) (*ebpf.CollectionSpec, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	// A prefix map has room for a whole set and its replacement, because
	// SetLocalPrefixes adds the new prefixes before it deletes the old.
	lpm := func(name string, keySize uint32) *ebpf.MapSpec {
		return &ebpf.MapSpec{
			Name:       name,
			Type:       ebpf.LPMTrie,
			KeySize:    keySize,
			ValueSize:  1, // unused: being in the trie is what counts
			MaxEntries: 2 * MaxLocalPrefixes,
			Flags:      unix.BPF_F_NO_PREALLOC, // required for LPM tries
		}
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			MapName: {
				Name:       MapName,
				Type:       ebpf.XSKMap,
				KeySize:    4, // RX queue index
				ValueSize:  4, // AF_XDP socket fd on update
				MaxEntries: uint32(o.Queues),
			},
			Local4MapName: lpm(Local4MapName, 4+4),
			Local6MapName: lpm(Local6MapName, 4+16),
		},
		Programs: map[string]*ebpf.ProgramSpec{
			UplinkProgramName: {
				Name:         UplinkProgramName,
				Type:         ebpf.XDP,
				AttachType:   ebpf.AttachXDP,
				License:      license,
				Instructions: uplinkInstructions(o),
			},
		},
	}, nil
}

// localPrefixes are an uplink program's prefix maps. The maps are the only
// record of the set: SetLocalPrefixes reads them back rather than trusting a
// copy, so a half-applied update is repaired by the next one.
type localPrefixes struct {
	mu     sync.Mutex // held by SetLocalPrefixes: one writer at a time
	v4, v6 *ebpf.Map  // LPM tries, read by the program on every frame
}

// NewUplinkProgram loads the uplink program with a fresh XSKMAP of
// opts.Queues entries and empty prefix maps. The result is a [Program]:
// Register, Unregister, Run, Attach and Close work as for a port.
// Until sockets are registered every frame passes, as do all frames that
// match no rule.
func NewUplinkProgram(opts UplinkOptions) (*Program, error) {
	spec, err := newUplinkSpec(opts)
	if err != nil {
		return nil, fmt.Errorf("new uplink xdp program: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load uplink xdp program: %w", err)
	}
	p := &Program{
		prog:     coll.DetachProgram(UplinkProgramName),
		xsks:     coll.DetachMap(MapName),
		queues:   opts.Queues,
		fallback: Pass,
		local: &localPrefixes{
			v4: coll.DetachMap(Local4MapName),
			v6: coll.DetachMap(Local6MapName),
		},
	}
	coll.Close() // holds nothing now
	return p, nil
}

// SetLocalPrefixes replaces the set of destination prefixes, IPv4 and IPv6,
// whose frames the uplink program redirects whatever their protocol and
// port: this node's pod CIDRs, reached by direct routing from peers on the
// same subnet, and single addresses (a /32 or /128) such as the external
// IPs of services the fast path balances. Prefixes are masked
// (10.244.1.7/24 means 10.244.1.0/24) and duplicates ignored; an
// IPv4-mapped IPv6 prefix is an IPv6 prefix. Only valid on a program made
// by NewUplinkProgram.
//
// The update is not one atomic step, but it never makes a frame pass that
// both the old and the new set redirect: it adds the new prefixes first and
// deletes the removed ones after. A frame covered by a prefix in both sets
// keeps being redirected throughout. On error the set is somewhere between
// the old and the new one (a superset of what both share); calling again
// converges.
func (p *Program) SetLocalPrefixes(prefixes []netip.Prefix) error {
	if p.local == nil {
		return errors.New("set local prefixes: not an uplink program (see NewUplinkProgram)")
	}
	want := make(map[netip.Prefix]bool, len(prefixes))
	var order []netip.Prefix // want, in the caller's order
	var n4, n6 int
	for _, pfx := range prefixes {
		if !pfx.IsValid() {
			return fmt.Errorf("set local prefixes: invalid prefix %v", pfx)
		}
		pfx = pfx.Masked()
		if want[pfx] {
			continue
		}
		want[pfx] = true
		order = append(order, pfx)
		if pfx.Addr().Is4() {
			n4++
		} else {
			n6++
		}
	}
	if n4 > MaxLocalPrefixes || n6 > MaxLocalPrefixes {
		return fmt.Errorf("set local prefixes: %d ipv4 and %d ipv6 prefixes, at most %d of each", n4, n6, MaxLocalPrefixes)
	}

	l := p.local
	l.mu.Lock()
	defer l.mu.Unlock()
	have, err := l.list()
	if err != nil {
		return fmt.Errorf("set local prefixes: %w", err)
	}
	for _, pfx := range order {
		if slices.Contains(have, pfx) {
			continue
		}
		if err := l.update(pfx); err != nil {
			return fmt.Errorf("set local prefixes: add %v: %w", pfx, err)
		}
	}
	for _, pfx := range have {
		if want[pfx] {
			continue
		}
		if err := l.delete(pfx); err != nil {
			return fmt.Errorf("set local prefixes: remove %v: %w", pfx, err)
		}
	}
	return nil
}

// LocalPrefixes returns the prefixes the uplink program redirects, as the
// kernel holds them, IPv4 first, sorted.
func (p *Program) LocalPrefixes() ([]netip.Prefix, error) {
	if p.local == nil {
		return nil, errors.New("local prefixes: not an uplink program (see NewUplinkProgram)")
	}
	p.local.mu.Lock()
	defer p.local.mu.Unlock()
	have, err := p.local.list()
	if err != nil {
		return nil, fmt.Errorf("local prefixes: %w", err)
	}
	return have, nil
}

// list reads both maps back, sorted: IPv4 before IPv6, then by address
// and length.
func (l *localPrefixes) list() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var k4 lpmKey4
	var v uint8
	it := l.v4.Iterate()
	for it.Next(&k4, &v) {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(k4.Addr), int(k4.PrefixLen)))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", Local4MapName, err)
	}
	var k6 lpmKey6
	it = l.v6.Iterate()
	for it.Next(&k6, &v) {
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(k6.Addr), int(k6.PrefixLen)))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", Local6MapName, err)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	return out, nil
}

func (l *localPrefixes) update(pfx netip.Prefix) error {
	if pfx.Addr().Is4() {
		return l.v4.Update(lpmKey4{uint32(pfx.Bits()), pfx.Addr().As4()}, uint8(1), ebpf.UpdateAny)
	}
	return l.v6.Update(lpmKey6{uint32(pfx.Bits()), pfx.Addr().As16()}, uint8(1), ebpf.UpdateAny)
}

func (l *localPrefixes) delete(pfx netip.Prefix) error {
	var err error
	if pfx.Addr().Is4() {
		err = l.v4.Delete(lpmKey4{uint32(pfx.Bits()), pfx.Addr().As4()})
	} else {
		err = l.v6.Delete(lpmKey6{uint32(pfx.Bits()), pfx.Addr().As16()})
	}
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

func (l *localPrefixes) close() error {
	return errors.Join(l.v4.Close(), l.v6.Close())
}
