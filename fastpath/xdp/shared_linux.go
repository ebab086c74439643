package xdp

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Names the kernel shows for the shared port program and its device map.
const (
	SharedProgramName = "ringnet_ports"
	DevicesMapName    = "ringnet_devs"
)

// MaxDevices bounds SharedOptions.Devices.
const MaxDevices = 1 << 16

// ErrFull: a shared program has a slot for every device it was made for,
// and all are taken.
var ErrFull = errors.New("shared xdp program: every device slot is taken")

// SharedOptions configures a [SharedProgram].
type SharedOptions struct {
	// Devices is how many devices the program serves at once, at least 1
	// and at most MaxDevices.
	Devices int
	// Queues is the number of RX queues of each device that can have a
	// socket, as in ProgramOptions; frames on a queue at or above it get
	// the fallback.
	Queues int
	// Fallback and AbortOnMiss are as in ProgramOptions. The fallback is
	// also the verdict on a device the program has no slot for.
	Fallback    Action
	AbortOnMiss bool
}

// SharedProgram is one port program for many devices: every pod port of a
// node attaches the same program, which finds the device's sockets by the
// frame's ingress ifindex. Attaching a program that is already attached
// elsewhere costs the kernel nothing more than the link, whereas attaching
// a program that is not costs an RCU grace period: the kernel's XDP
// dispatcher, a trampoline that direct-calls the attached programs, is
// rebuilt whenever the set of distinct attached programs changes, and
// waits for the old one to go out of use (bpf_dispatcher_change_prog). On
// a 2-core VM that was about 10 ms of every pod ADD and DEL with one
// program per port (BenchmarkAttach). See the package doc, "The shared
// port program".
//
// Its methods may be called from any goroutine; Close must not race with
// them.
type SharedProgram struct {
	prog   *ebpf.Program
	xsks   *ebpf.Map // key: slot*queues + queue
	devs   *ebpf.Map // key: ifindex; value: slot*queues
	queues int

	mu    sync.Mutex
	free  []int        // free slots, taken from the end
	inUse map[int]bool // ifindexes with a slot

	hold    *Attachment // to the holding TAP (Hold)
	holdTAP int         // the TAP's fd; -1 without one
}

// NewSharedProgram loads the shared port program with an XSKMAP of
// Devices*Queues entries and an empty device map.
func NewSharedProgram(opts SharedOptions) (*SharedProgram, error) {
	if opts.Devices < 1 || opts.Devices > MaxDevices {
		return nil, fmt.Errorf("new shared xdp program: devices %d out of range [1, %d]", opts.Devices, MaxDevices)
	}
	fallback, err := ProgramOptions{Queues: opts.Queues, Fallback: opts.Fallback, AbortOnMiss: opts.AbortOnMiss}.check()
	if err != nil {
		return nil, fmt.Errorf("new shared xdp program: %w", err)
	}
	if opts.Devices*opts.Queues > 1<<24 {
		return nil, fmt.Errorf("new shared xdp program: %d devices of %d queues need more than 2^24 map entries", opts.Devices, opts.Queues)
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			MapName: {
				Name:       MapName,
				Type:       ebpf.XSKMap,
				KeySize:    4, // slot*queues + RX queue index
				ValueSize:  4, // AF_XDP socket fd on update
				MaxEntries: uint32(opts.Devices * opts.Queues),
			},
			DevicesMapName: {
				Name:       DevicesMapName,
				Type:       ebpf.Hash,
				KeySize:    4, // ingress ifindex
				ValueSize:  4, // the device's first XSKMAP key: slot*queues
				MaxEntries: uint32(opts.Devices),
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			SharedProgramName: {
				Name:         SharedProgramName,
				Type:         ebpf.XDP,
				AttachType:   ebpf.AttachXDP,
				License:      license,
				Instructions: sharedInstructions(opts.Queues, fallback),
			},
		},
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load shared xdp program: %w", err)
	}
	p := &SharedProgram{
		prog:    coll.DetachProgram(SharedProgramName),
		xsks:    coll.DetachMap(MapName),
		devs:    coll.DetachMap(DevicesMapName),
		queues:  opts.Queues,
		inUse:   map[int]bool{},
		holdTAP: -1,
	}
	coll.Close()
	for s := opts.Devices - 1; s >= 0; s-- {
		p.free = append(p.free, s) // slot 0 is taken first
	}
	return p, nil
}

// Offsets in struct xdp_md (see offRxQueueIndex).
const offIngressIfindex = 12

// sharedInstructions is, in pseudo-C:
//
//	key = ctx->ingress_ifindex
//	base = lookup(&devs, &key)
//	if !base || ctx->rx_queue_index >= queues   return fallback
//	return bpf_redirect_map(&xsks, *base + ctx->rx_queue_index, fallback)
func sharedInstructions(queues int, fallback Action) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, offIngressIfindex, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, 0).WithReference(DevicesMapName),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "fallback"),
		asm.LoadMem(asm.R3, asm.R6, offRxQueueIndex, asm.Word),
		asm.JGE.Imm(asm.R3, int32(queues), "fallback"),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapName),
		asm.Mov.Imm(asm.R3, int32(fallback)),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, int32(fallback)).WithSymbol("fallback"),
		asm.Return(),
	}
}

// Free returns how many more devices the program can take.
func (p *SharedProgram) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// Device is one device's slot in a SharedProgram: its queues' sockets are
// registered through it, and Close gives the slot back.
type Device struct {
	p       *SharedProgram
	ifindex int
	base    int // first XSKMAP key of the slot; -1 once closed
}

// AddDevice gives device ifindex (in the namespace the program will be
// attached in) a slot, with no sockets yet: until they are registered,
// its frames get the fallback. It fails with [ErrFull] when no slot is
// free, and if the device already has one.
func (p *SharedProgram) AddDevice(ifindex int) (*Device, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("shared xdp program: add device: invalid ifindex %d", ifindex)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inUse[ifindex] {
		return nil, fmt.Errorf("shared xdp program: ifindex %d already has a slot", ifindex)
	}
	if len(p.free) == 0 {
		return nil, fmt.Errorf("add ifindex %d: %w", ifindex, ErrFull)
	}
	slot := p.free[len(p.free)-1]
	d := &Device{p: p, ifindex: ifindex, base: slot * p.queues}
	// A slot given back had its sockets removed; clear it again all the
	// same, so that no frame of this device can reach a stale socket.
	if err := p.clearSlot(d.base); err != nil {
		return nil, fmt.Errorf("shared xdp program: clear slot %d: %w", slot, err)
	}
	if err := p.devs.Update(uint32(ifindex), uint32(d.base), ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("shared xdp program: add ifindex %d: %w", ifindex, err)
	}
	p.free = p.free[:len(p.free)-1]
	p.inUse[ifindex] = true
	return d, nil
}

// Register puts the AF_XDP socket xskFD in the device's slot at queue, as
// [Program.Register] does for a program of its own.
func (d *Device) Register(queue int, xskFD int) error {
	if d.base < 0 {
		return fmt.Errorf("register xsk fd %d: device %d was removed", xskFD, d.ifindex)
	}
	if queue < 0 || queue >= d.p.queues {
		return fmt.Errorf("register xsk fd %d: queue %d out of range [0, %d)", xskFD, queue, d.p.queues)
	}
	return registerXSK(d.p.xsks, uint32(d.base+queue), queue, xskFD)
}

// Attach hooks the shared program to the device, as [Program.Attach]
// does.
func (d *Device) Attach(mode Mode) (*Attachment, error) { return d.p.Attach(d.ifindex, mode) }

// Close removes the device from the program and its sockets from the
// map, and frees its slot. Frames the device still receives get the
// fallback. Closing twice is a no-op.
func (d *Device) Close() error {
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.base < 0 {
		return nil
	}
	err := p.devs.Delete(uint32(d.ifindex))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	if err = errors.Join(err, p.clearSlot(d.base)); err != nil {
		// Keep the slot out of use: what is left in the maps is unknown.
		d.base = -1
		delete(p.inUse, d.ifindex)
		return fmt.Errorf("shared xdp program: remove ifindex %d: %w", d.ifindex, err)
	}
	p.free = append(p.free, d.base/p.queues)
	delete(p.inUse, d.ifindex)
	d.base = -1
	return nil
}

// clearSlot removes the sockets of the slot whose first key is base.
func (p *SharedProgram) clearSlot(base int) error {
	var errs []error
	for q := range p.queues {
		if err := p.xsks.Delete(uint32(base + q)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Attach hooks the program to device ifindex as [Program.Attach] does.
// The device should have a slot (AddDevice) first; without one its frames
// get the fallback.
func (p *SharedProgram) Attach(ifindex int, mode Mode) (*Attachment, error) {
	return attach(p.prog, ifindex, mode)
}

// Run runs the program once on frame as [Program.Run] does.
func (p *SharedProgram) Run(frame []byte, queue int, ifindex int) (Action, error) {
	return run(p.prog, frame, queue, ifindex)
}

// ID returns the kernel's id for the program.
func (p *SharedProgram) ID() (uint32, error) { return progID(p.prog) }

// Hold keeps the program in the kernel's XDP dispatcher while no device
// runs it, so that the first device to attach it after none did (the
// first pod of an empty node) does not pay for the dispatcher's rebuild,
// and neither does the last to detach it. It attaches the program, in
// generic mode, to a TAP device of its own, made in the calling thread's
// network namespace with the name pattern (e.g. "rnxdp%d": the kernel
// picks the number): down, without addresses, never passing a frame. The
// TAP is not persistent: it goes with Close, or with the process. It
// returns the TAP's name. Hold once; it needs CAP_NET_ADMIN and
// /dev/net/tun.
func (p *SharedProgram) Hold(pattern string) (string, error) {
	if p.hold != nil {
		return "", errors.New("hold shared xdp program: held already")
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("hold shared xdp program: %w", err)
	}
	ifr, err := unix.NewIfreq(pattern)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return "", fmt.Errorf("hold shared xdp program: make TAP %s: %w", pattern, err)
	}
	name := ifr.Name()
	l, err := netlink.LinkByName(name)
	if err == nil {
		p.hold, err = attach(p.prog, l.Attrs().Index, ModeGeneric)
	}
	if err != nil {
		unix.Close(fd) // the TAP goes with it
		return "", fmt.Errorf("hold shared xdp program on TAP %s: %w", name, err)
	}
	p.holdTAP = fd
	return name, nil
}

// Close unloads the program and its maps as far as this process is
// concerned; attachments keep their own references, as with
// [Program.Close].
func (p *SharedProgram) Close() error {
	var errs []error
	if p.hold != nil {
		errs = append(errs, p.hold.Close(), unix.Close(p.holdTAP))
		p.hold, p.holdTAP = nil, -1
	}
	if err := errors.Join(append(errs, p.prog.Close(), p.xsks.Close(), p.devs.Close())...); err != nil {
		return fmt.Errorf("close shared xdp program: %w", err)
	}
	return nil
}
