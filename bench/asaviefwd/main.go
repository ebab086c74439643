// Command asaviefwd is the baseline ringnet is benchmarked against: the
// minimal pod-to-pod AF_XDP forwarder a Go user writes with
// github.com/asavie/xdp (v0.3.3), the library most people reach for.
//
// It opens one asavie xdp.Socket on queue 0 of each of two host-side veths,
// attaches asavie's own default XDP program (xdp.NewProgram, a translation
// of libbpf's default "redirect queue i to the socket in slot i") to each,
// and forwards every frame received on A out of B and every frame received on
// B out of A, rewriting only the Ethernet addresses: destination to the
// other pod's MAC, source to the gateway MAC ee:ee:ee:ee:ee:ee. It does no
// parsing, no ARP, no checks: a floor for "what AF_XDP in Go costs" with the
// library used as documented.
//
// The library is used as its documentation and its own examples/l2fwd show:
//
//   - xdp.NewProgram(queue+1) + Program.Attach + Program.Register per link,
//     DefaultXdpFlags (0: the kernel picks native mode on veth) and
//     DefaultSocketFlags (0: the kernel picks copy mode, the only mode veth
//     has).
//   - xdp.NewSocket with nil options, i.e. DefaultSocketOptions: 128 frames
//     of 2048 bytes, 64-entry fill, completion, RX and TX rings.
//   - Fill(GetDescs(NumFreeFillSlots())) before each wait; Receive; Transmit
//     (which does one sendto(2) per call); Complete on POLLOUT.
//
// One deviation is forced by the API: the library's Socket.Poll waits on one
// socket only, and a forwarder must wait on two, so the loop polls both
// descriptors with unix.Poll exactly as the library's examples/l2fwd does.
// The wait has a 100 ms timeout so that SIGINT/SIGTERM are noticed between
// waits; under load the loop never waits that long.
//
// The two sockets have separate UMEMs (v0.3.3 cannot share one), so every
// forwarded frame is copied from the receiving socket's UMEM into a free frame
// of the transmitting socket's UMEM, as in examples/l2fwd. Frames received
// when the other side has no free TX slot are dropped (counted).
//
// On exit (SIGINT or SIGTERM) it detaches both programs,
// closes the sockets and prints its counters on stdout:
//
//	asaviefwd a_to_b=N b_to_a=N dropped_no_tx_slot=N a_rx_dropped=N a_rx_ring_full=N ...
//
// (the last ones are each socket's XDP_STATISTICS).
//
// It logs "msg=forwarding" on stderr once both sockets are ready.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/asavie/xdp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// gatewayMAC is the source MAC of every forwarded frame: the pods' gateway,
// which is also the MAC of the host-side veths.
var gatewayMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// queueID is the only queue used: the veths have one.
const queueID = 0

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(os.Args[1:], log); err != nil {
		fmt.Fprintln(os.Stderr, "asaviefwd:", err)
		os.Exit(1)
	}
}

func run(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("asaviefwd", flag.ContinueOnError)
	aName := fs.String("a", "", "host-side veth of pod A (required)")
	bName := fs.String("b", "", "host-side veth of pod B (required)")
	aMACs := fs.String("a-mac", "", "pod A's eth0 MAC (required)")
	bMACs := fs.String("b-mac", "", "pod B's eth0 MAC (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *aName == "" || *bName == "" || *aMACs == "" || *bMACs == "" {
		fs.Usage()
		return errors.New("--a, --b, --a-mac and --b-mac are all required")
	}
	aMAC, err := net.ParseMAC(*aMACs)
	if err != nil {
		return fmt.Errorf("--a-mac: %w", err)
	}
	bMAC, err := net.ParseMAC(*bMACs)
	if err != nil {
		return fmt.Errorf("--b-mac: %w", err)
	}

	// Notice signals from here on, so that an interrupt during setup still
	// detaches what was attached (the deferred closes run on return).
	var stop atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		stop.Store(true)
	}()

	a, err := openPort(*aName)
	if err != nil {
		return err
	}
	defer a.close(log)
	b, err := openPort(*bName)
	if err != nil {
		return err
	}
	defer b.close(log)

	log.Info("forwarding", "a", *aName, "b", *bName)
	var c counters
	err = forward(a.xsk, b.xsk, aMAC, bMAC, &stop, &c)
	fmt.Printf("asaviefwd a_to_b=%d b_to_a=%d dropped_no_tx_slot=%d %s %s\n",
		c.aToB, c.bToA, c.noTxSlot, a.kernelStats("a"), b.kernelStats("b"))
	return err
}

// kernelStats formats the socket's kernel-side drop counters
// (XDP_STATISTICS): frames the kernel could not put on the RX ring.
func (p *port) kernelStats(side string) string {
	st, err := p.xsk.Stats()
	if err != nil {
		return side + "_stats_error=1"
	}
	k := st.KernelStats
	return fmt.Sprintf("%s_rx_dropped=%d %s_rx_ring_full=%d %s_fill_ring_empty=%d",
		side, k.Rx_dropped, side, k.Rx_ring_full, side, k.Rx_fill_ring_empty_descs)
}

// port is one host-side veth with asavie's program attached and one socket
// on queue 0 registered in it.
type port struct {
	name    string
	ifindex int
	prog    *xdp.Program
	xsk     *xdp.Socket
}

func openPort(name string) (*port, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", name, err)
	}
	p := &port{name: name, ifindex: link.Attrs().Index}
	p.prog, err = xdp.NewProgram(queueID + 1)
	if err != nil {
		return nil, fmt.Errorf("%s: new program: %w", name, err)
	}
	if err := p.prog.Attach(p.ifindex); err != nil {
		p.prog.Close()
		return nil, fmt.Errorf("%s: attach program: %w", name, err)
	}
	p.xsk, err = xdp.NewSocket(p.ifindex, queueID, nil)
	if err != nil {
		p.prog.Detach(p.ifindex)
		p.prog.Close()
		return nil, fmt.Errorf("%s: new socket: %w", name, err)
	}
	if err := p.prog.Register(queueID, p.xsk.FD()); err != nil {
		p.xsk.Close()
		p.prog.Detach(p.ifindex)
		p.prog.Close()
		return nil, fmt.Errorf("%s: register socket: %w", name, err)
	}
	return p, nil
}

// close detaches the program and closes the socket. It does not call
// Program.Unregister: in v0.3.3 that deletes from an array map first, which
// the kernel refuses (EINVAL), and detaching the program is what matters.
func (p *port) close(log *slog.Logger) {
	if err := p.prog.Detach(p.ifindex); err != nil {
		log.Warn("detach program", "link", p.name, "err", err)
	}
	if err := p.xsk.Close(); err != nil {
		log.Warn("close socket", "link", p.name, "err", err)
	}
	if err := p.prog.Close(); err != nil {
		log.Warn("close program", "link", p.name, "err", err)
	}
}

// counters are written by the forwarding loop only and read after it ends.
type counters struct {
	aToB, bToA, noTxSlot uint64
}

// forward is the forwarding loop, in the shape of the library's
// examples/l2fwd: fill both fill rings, wait on both sockets, move what
// arrived, reap completions.
func forward(a, b *xdp.Socket, aMAC, bMAC net.HardwareAddr, stop *atomic.Bool, c *counters) error {
	var fds [2]unix.PollFd
	fds[0].Fd = int32(a.FD())
	fds[1].Fd = int32(b.FD())
	for !stop.Load() {
		a.Fill(a.GetDescs(a.NumFreeFillSlots()))
		b.Fill(b.GetDescs(b.NumFreeFillSlots()))

		fds[0].Events = unix.POLLIN
		if a.NumTransmitted() > 0 {
			fds[0].Events |= unix.POLLOUT
		}
		fds[1].Events = unix.POLLIN
		if b.NumTransmitted() > 0 {
			fds[1].Events |= unix.POLLOUT
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds[:], 100); err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("poll: %w", err)
		}

		if fds[0].Revents&unix.POLLIN != 0 {
			n, dropped := move(a, b, bMAC)
			c.aToB += n
			c.noTxSlot += dropped
		}
		if fds[0].Revents&unix.POLLOUT != 0 {
			a.Complete(a.NumCompleted())
		}
		if fds[1].Revents&unix.POLLIN != 0 {
			n, dropped := move(b, a, aMAC)
			c.bToA += n
			c.noTxSlot += dropped
		}
		if fds[1].Revents&unix.POLLOUT != 0 {
			b.Complete(b.NumCompleted())
		}
	}
	return nil
}

// move receives what in holds, copies each frame into a free frame of out
// with the Ethernet addresses rewritten, and transmits them. It returns how
// many frames it handed to out and how many it dropped for want of a TX slot.
func move(in, out *xdp.Socket, dst net.HardwareAddr) (moved, dropped uint64) {
	rx := in.Receive(in.NumReceived())
	tx := out.GetDescs(out.NumFreeTxSlots())
	n := min(len(rx), len(tx))
	for i := 0; i < n; i++ {
		src := in.GetFrame(rx[i])
		f := out.GetFrame(tx[i])
		tx[i].Len = uint32(copy(f, src))
		if tx[i].Len >= 12 {
			copy(f[0:6], dst)
			copy(f[6:12], gatewayMAC)
		}
	}
	out.Transmit(tx[:n])
	return uint64(n), uint64(len(rx) - n)
}
