package xdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Errors an attach can be tested for with errors.Is. The kernel's errno is
// wrapped too.
var (
	// ErrBusy: the device already runs an XDP program, in this mode or the
	// other (the kernel runs at most one of native and generic).
	ErrBusy = errors.New("device already has an xdp program")
	// ErrModeNotSupported: the device's driver cannot run XDP in the mode
	// asked for; generic mode works on every device.
	ErrModeNotSupported = errors.New("driver does not support this xdp mode")
)

// Values of IFLA_XDP_ATTACHED (enum in linux/if_link.h); 0 is none and 4
// is more than one mode.
const (
	xdpAttachedDrv = 1
	xdpAttachedSKB = 2
	xdpAttachedHW  = 3

	xdpFlagsHWMode = 1 << 3 // XDP_FLAGS_HW_MODE, for detaching offloaded programs
)

// Attachment is a Program hooked to a device through a bpf_link. The link
// is held by this process only (it is not pinned): closing it, or the
// process dying by any means including SIGKILL, detaches the program. The
// kernel refuses to replace or remove a link's program through netlink, so
// nothing else can detach it by accident either.
type Attachment struct {
	link    link.Link // nil once closed
	ifindex int
	mode    Mode
}

// Attach hooks the program to device ifindex (in the calling thread's
// network namespace) in the given mode. The mode is passed to the kernel as a
// flag, so the program runs in exactly that mode or Attach fails: it never
// falls back silently. It fails with [ErrBusy] if the device already has an
// XDP program, and with [ErrModeNotSupported] if the driver cannot run XDP
// natively.
func (p *Program) Attach(ifindex int, mode Mode) (*Attachment, error) {
	return attach(p.prog, ifindex, mode)
}

func attach(prog *ebpf.Program, ifindex int, mode Mode) (*Attachment, error) {
	if mode != ModeNative && mode != ModeGeneric {
		return nil, fmt.Errorf("attach xdp to ifindex %d: %v is not a mode: want native or generic", ifindex, mode)
	}
	l, err := link.AttachXDP(link.XDPOptions{
		Program:   prog,
		Interface: ifindex,
		Flags:     link.XDPAttachFlags(mode),
	})
	if err != nil {
		return nil, attachError(ifindex, mode, err)
	}
	return &Attachment{link: l, ifindex: ifindex, mode: mode}, nil
}

// attachError turns a failed BPF_LINK_CREATE into a message that says what
// to do. The bpf syscall carries no extended ack, so the errno is all there
// is to go on; the meanings below are dev_xdp_attach's and veth's.
func attachError(ifindex int, mode Mode, err error) error {
	ctx := fmt.Sprintf("attach xdp to ifindex %d in %s mode", ifindex, mode)
	var errno unix.Errno
	if !errors.As(err, &errno) {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%s: kernel has no bpf_link for xdp (Linux 5.9 or later): %w", ctx, err)
		}
		return fmt.Errorf("%s: %w", ctx, err)
	}
	switch errno {
	case unix.EOPNOTSUPP:
		if mode == ModeNative {
			return fmt.Errorf("%s: %w: %w: try generic", ctx, ErrModeNotSupported, errno)
		}
		return fmt.Errorf("%s: %w: %w", ctx, ErrModeNotSupported, errno)
	case unix.EBUSY:
		return fmt.Errorf("%s: %w: %w: another process holds it, or it is stale (remove a stale one with Detach, or ip link set dev DEV xdp off)", ctx, ErrBusy, errno)
	case unix.EEXIST:
		return fmt.Errorf("%s: %w in the other mode: %w", ctx, ErrBusy, errno)
	case unix.ERANGE:
		// veth: frames the peer may send would not fit one page, and
		// the program does not declare multi-buffer (frags) support.
		return fmt.Errorf("%s: %w: the veth peer's mtu is too large for native xdp (at most 3506 with 4 KiB pages)", ctx, errno)
	case unix.EINVAL, unix.ENODEV:
		if _, lerr := netlink.LinkByIndex(ifindex); lerr != nil {
			return fmt.Errorf("%s: no such device in this network namespace: %w", ctx, errno)
		}
	}
	return fmt.Errorf("%s: %w", ctx, errno)
}

// Ifindex returns the device the program is attached to.
func (a *Attachment) Ifindex() int { return a.ifindex }

// Mode returns the mode the program runs in on the device. Attach passes the
// mode to the kernel explicitly, so this is the mode the kernel attached in,
// not a request.
func (a *Attachment) Mode() Mode { return a.mode }

// Close detaches the program from the device. Closing twice is a no-op.
// Close must not race with other calls on the Attachment.
func (a *Attachment) Close() error {
	if a.link == nil {
		return nil
	}
	err := a.link.Close()
	a.link = nil
	if err != nil {
		return fmt.Errorf("detach xdp from ifindex %d: %w", a.ifindex, err)
	}
	return nil
}

// Status is what the kernel reports about a device's XDP hook.
type Status struct {
	// ProgramID is the id of the attached program, 0 if none.
	ProgramID uint32
	// Mode is the mode it runs in; 0 if none, or if it is offloaded to
	// hardware or attached in more than one mode, which ringnet never does.
	Mode Mode
}

// Query reports the XDP program attached to device ifindex (in the calling
// thread's network namespace), however it was attached.
func Query(ifindex int) (Status, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return Status{}, fmt.Errorf("query xdp on ifindex %d: %w", ifindex, err)
	}
	return status(l.Attrs().Xdp), nil
}

func status(x *netlink.LinkXdp) Status {
	if x == nil || !x.Attached {
		return Status{}
	}
	st := Status{ProgramID: x.ProgId}
	switch x.AttachMode {
	case xdpAttachedDrv:
		st.Mode = ModeNative
	case xdpAttachedSKB:
		st.Mode = ModeGeneric
	}
	return st
}

// Detach removes a stale XDP program from device ifindex (in the calling
// thread's network namespace): one attached through netlink, which outlives
// the process that attached it, for instance by an older ringnet, by
// ip link set dev DEV xdp, or by another tool. Detaching a device with no
// program is not an error.
//
// Detach asks netlink to remove the program in the mode the kernel reports
// it in. A plain netlink detach (fd -1 and no mode flag, as in
// netlink.LinkSetXdpFd(link, -1)) means native mode on a device with a
// driver hook such as veth: it succeeds and leaves a generic program where
// it was.
//
// Detach cannot remove a program held by a bpf_link (such as an
// [Attachment]): the kernel refuses, so a live ringnetd is never broken by
// it. A link outlives its process only if it was pinned or its fd passed on.
func Detach(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("detach xdp from ifindex %d: %w", ifindex, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return nil
	}
	var flags []int
	switch x.AttachMode {
	case xdpAttachedDrv:
		flags = []int{int(ModeNative)}
	case xdpAttachedSKB:
		flags = []int{int(ModeGeneric)}
	case xdpAttachedHW:
		flags = []int{xdpFlagsHWMode}
	default: // several modes (4), or a value newer than this code
		flags = []int{int(ModeNative), int(ModeGeneric), xdpFlagsHWMode}
	}
	for _, f := range flags {
		if err := netlink.LinkSetXdpFdWithFlags(l, -1, f); err != nil {
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("detach xdp from ifindex %d: program %d is held by a bpf_link, so its owner is alive (or the link is pinned): %w", ifindex, x.ProgId, err)
			}
			return fmt.Errorf("detach xdp from ifindex %d: %w", ifindex, err)
		}
	}
	st, err := Query(ifindex)
	if err != nil {
		return fmt.Errorf("detach xdp: %w", err)
	}
	if st.ProgramID != 0 {
		return fmt.Errorf("detach xdp from ifindex %d: program %d is still attached", ifindex, st.ProgramID)
	}
	return nil
}
