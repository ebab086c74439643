package xdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Names the kernel shows for the program and its map (bpftool prog/map
// show). The kernel keeps at most 15 bytes of a name.
const (
	ProgramName = "ringnet_xsk"
	MapName     = "ringnet_xsks"
)

// MaxQueues bounds ProgramOptions.Queues. The kernel allows up to 4096 RX
// queues per device; a map larger than that has keys no frame can hit.
const MaxQueues = 4096

// license is what the kernel checks before granting GPL-only helpers. The
// program calls none (bpf_redirect_map is not GPL-only), so the string only
// has to be present.
const license = "Dual MIT/GPL"

// offRxQueueIndex is offsetof(struct xdp_md, rx_queue_index), part of the
// kernel's stable UAPI:
//
//	struct xdp_md {
//		__u32 data;             //  0
//		__u32 data_end;         //  4
//		__u32 data_meta;        //  8
//		__u32 ingress_ifindex;  // 12
//		__u32 rx_queue_index;   // 16
//		__u32 egress_ifindex;   // 20
//	};
const offRxQueueIndex = 16

// xdpMD is struct xdp_md as BPF_PROG_TEST_RUN takes it for its context.
// The kernel insists that Data, DataMeta and EgressIfindex are zero and that
// DataEnd is the frame's length.
type xdpMD struct {
	Data           uint32
	DataEnd        uint32
	DataMeta       uint32
	IngressIfindex uint32
	RxQueueIndex   uint32
	EgressIfindex  uint32
}

// ProgramOptions configures a [Program].
type ProgramOptions struct {
	// Queues is the size of the XSKMAP: the number of RX queues, 0 to
	// Queues-1, that can have a socket. At least 1, at most MaxQueues.
	// Frames on a queue at or above Queues always get the fallback.
	Queues int

	// Fallback is the verdict for a frame whose RX queue has no socket in
	// the map: Pass (the default: the frame goes to the kernel's stack) or
	// Drop. Aborted is the zero Action and so cannot be told apart from
	// "not set"; ask for it with AbortOnMiss.
	Fallback Action

	// AbortOnMiss makes the fallback Aborted (XDP_ABORTED): the frame is
	// dropped and the xdp:xdp_exception tracepoint fires, which makes
	// frames that found no socket visible while debugging. Fallback must
	// then be left zero.
	AbortOnMiss bool
}

// check checks the queue count and returns the fallback verdict.
func (o ProgramOptions) check() (Action, error) {
	if o.Queues < 1 || o.Queues > MaxQueues {
		return 0, fmt.Errorf("queues %d out of range [1, %d]", o.Queues, MaxQueues)
	}
	return o.fallback()
}

// fallback returns the verdict the options ask for, or an error.
func (o ProgramOptions) fallback() (Action, error) {
	if o.AbortOnMiss {
		if o.Fallback != Aborted {
			return 0, fmt.Errorf("fallback %v and AbortOnMiss both set", o.Fallback)
		}
		return Aborted, nil
	}
	switch o.Fallback {
	case Aborted: // zero: the default
		return Pass, nil
	case Pass, Drop:
		return o.Fallback, nil
	}
	return 0, fmt.Errorf("fallback %v is not pass or drop (or aborted, via AbortOnMiss)", o.Fallback)
}

// newSpec describes, without loading anything, the map and the program
// NewProgram loads:
//
//	r2 = ctx->rx_queue_index
//	return bpf_redirect_map(&xsks, r2, fallback)
//
// The low bits of bpf_redirect_map's flags are the verdict the helper
// returns when the map has no entry at the key (Linux 5.12 and later), so no
// separate lookup is needed and a frame costs one map access.
func newSpec(opts ProgramOptions) (*ebpf.CollectionSpec, error) {
	fallback, err := opts.check()
	if err != nil {
		return nil, err
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			MapName: {
				Name:       MapName,
				Type:       ebpf.XSKMap,
				KeySize:    4, // RX queue index
				ValueSize:  4, // AF_XDP socket fd on update; the kernel keeps the socket
				MaxEntries: uint32(opts.Queues),
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			ProgramName: {
				Name:       ProgramName,
				Type:       ebpf.XDP,
				AttachType: ebpf.AttachXDP,
				License:    license,
				Instructions: asm.Instructions{
					// R1 holds the context on entry.
					asm.LoadMem(asm.R2, asm.R1, offRxQueueIndex, asm.Word),
					asm.LoadMapPtr(asm.R1, 0).WithReference(MapName),
					asm.Mov.Imm(asm.R3, int32(fallback)),
					asm.FnRedirectMap.Call(),
					asm.Return(),
				},
			},
		},
	}, nil
}

// Program is a loaded, not yet attached, redirect program with its own
// XSKMAP: a port's (NewProgram) or an uplink's (NewUplinkProgram). One
// Program serves one device; [Program.Attach] hooks it to the device.
// Register, Unregister, SetLocalPrefixes, LocalPrefixes, Run and Attach may
// be called from any goroutine; Close must not race with them.
type Program struct {
	prog     *ebpf.Program
	xsks     *ebpf.Map
	queues   int
	fallback Action
	// local holds an uplink program's prefix maps; nil for a port's.
	// Set once by NewUplinkProgram.
	local *localPrefixes
}

// NewProgram loads the redirect program and a fresh XSKMAP of opts.Queues
// entries into the kernel. The map starts empty, so until sockets are
// registered every frame gets the fallback verdict.
func NewProgram(opts ProgramOptions) (*Program, error) {
	spec, err := newSpec(opts)
	if err != nil {
		return nil, fmt.Errorf("new xdp program: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	fallback, _ := opts.fallback()
	p := &Program{
		prog:     coll.DetachProgram(ProgramName),
		xsks:     coll.DetachMap(MapName),
		queues:   opts.Queues,
		fallback: fallback,
	}
	coll.Close() // holds nothing now
	return p, nil
}

// Queues returns the size of the XSKMAP.
func (p *Program) Queues() int { return p.queues }

// Fallback returns the verdict for frames whose queue has no socket.
func (p *Program) Fallback() Action { return p.fallback }

// ID returns the kernel's id for the program, as netlink (IFLA_XDP_PROG_ID),
// bpftool and [Query] report it.
func (p *Program) ID() (uint32, error) { return progID(p.prog) }

func progID(prog *ebpf.Program) (uint32, error) {
	info, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("xdp program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("xdp program info: kernel reports no id")
	}
	return uint32(id), nil
}

// Register puts the AF_XDP socket xskFD into the map at queue, so frames
// arriving on that RX queue are redirected to it; a socket already there is
// replaced. The socket must be bound, and to this device and queue. The
// kernel does not check either here: it accepts an unbound socket, and
// Run reports Redirect for it, but a live frame redirected to a socket that
// is unbound or bound elsewhere is dropped (the xdp:xdp_redirect_err
// tracepoint fires). The map holds the socket, not the fd: closing the
// socket's last fd removes it from the map.
func (p *Program) Register(queue int, xskFD int) error {
	if err := p.checkQueue(queue); err != nil {
		return fmt.Errorf("register xsk fd %d: %w", xskFD, err)
	}
	return registerXSK(p.xsks, uint32(queue), queue, xskFD)
}

// registerXSK puts socket xskFD into XSKMAP m at key, for queue.
func registerXSK(m *ebpf.Map, key uint32, queue int, xskFD int) error {
	if xskFD < 0 {
		return fmt.Errorf("register xsk at queue %d: invalid fd %d", queue, xskFD)
	}
	if err := m.Update(key, uint32(xskFD), ebpf.UpdateAny); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("register xsk fd %d at queue %d: not an AF_XDP socket: %w", xskFD, queue, err)
		}
		return fmt.Errorf("register xsk fd %d at queue %d: %w", xskFD, queue, err)
	}
	return nil
}

// Unregister removes the socket at queue, if any; frames on that queue get
// the fallback verdict again. Removing an empty slot is not an error.
func (p *Program) Unregister(queue int) error {
	if err := p.checkQueue(queue); err != nil {
		return fmt.Errorf("unregister xsk: %w", err)
	}
	if err := p.xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister xsk at queue %d: %w", queue, err)
	}
	return nil
}

func (p *Program) checkQueue(queue int) error {
	if queue < 0 || queue >= p.queues {
		return fmt.Errorf("queue %d out of range [0, %d)", queue, p.queues)
	}
	return nil
}

// Run runs the program once on frame with BPF_PROG_TEST_RUN, as if it had
// arrived on RX queue queue of device ifindex, and returns the verdict. No
// frame is delivered anywhere: a Redirect verdict only says the map had a
// socket at queue. It is for tests and the CLI.
//
// The kernel resolves ifindex in the calling thread's network namespace and
// requires queue to be below the device's number of RX queues; with ifindex
// 0 (no device) queue must be 0. frame must hold at least an Ethernet header
// (14 bytes).
func (p *Program) Run(frame []byte, queue int, ifindex int) (Action, error) {
	return run(p.prog, frame, queue, ifindex)
}

func run(prog *ebpf.Program, frame []byte, queue int, ifindex int) (Action, error) {
	switch {
	case len(frame) < 14:
		return 0, fmt.Errorf("run xdp program: frame of %d bytes is shorter than an ethernet header", len(frame))
	case queue < 0 || ifindex < 0:
		return 0, fmt.Errorf("run xdp program: invalid queue %d or ifindex %d", queue, ifindex)
	case ifindex == 0 && queue != 0:
		return 0, fmt.Errorf("run xdp program: rx queue %d needs an ingress device", queue)
	}
	ctx := xdpMD{
		DataEnd:        uint32(len(frame)),
		IngressIfindex: uint32(ifindex),
		RxQueueIndex:   uint32(queue),
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: ctx})
	switch {
	case errors.Is(err, unix.ENODEV):
		return 0, fmt.Errorf("run xdp program: no device with ifindex %d in this network namespace: %w", ifindex, err)
	case errors.Is(err, unix.EINVAL) && ifindex != 0:
		return 0, fmt.Errorf("run xdp program: ifindex %d has no rx queue %d: %w", ifindex, queue, err)
	case err != nil:
		return 0, fmt.Errorf("run xdp program: %w", err)
	}
	return Action(ret), nil
}

// Close unloads the program and its map as far as this process is
// concerned. An attachment keeps its own references: a Program closed while
// attached keeps redirecting to the registered sockets until the
// [Attachment] is closed, but can no longer be changed.
func (p *Program) Close() error {
	err := p.prog.Close()
	if err2 := p.xsks.Close(); err == nil {
		err = err2
	}
	if p.local != nil {
		if err2 := p.local.close(); err == nil {
			err = err2
		}
	}
	if err != nil {
		return fmt.Errorf("close xdp program: %w", err)
	}
	return nil
}
