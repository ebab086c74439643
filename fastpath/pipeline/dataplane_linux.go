package pipeline

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/ringnet/ringnet/fastpath/xdp"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"golang.org/x/sys/unix"
)

// AddPort attaches a pod port: one AF_XDP socket per worker on the host-side
// veth's queues, an XDP program redirecting each queue to its socket, and
// the pod's addresses in the endpoint table. Frames that reach a queue
// without a socket are dropped by the program, never passed to the node's
// stack. On failure nothing stays attached.
func (d *Dataplane) AddPort(spec PortSpec) (_ *Port, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop.Load() {
		return nil, errors.New("dataplane: closed")
	}
	if err := d.checkSpec(spec); err != nil {
		return nil, err
	}
	index, err := xsk.Ifindex(spec.Ifname)
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", spec.Ifname, err)
	}
	ifi := &net.Interface{Index: index, Name: spec.Ifname}
	p := &Port{Spec: spec}
	if d.spares == nil {
		// From the second pod port on, sockets are found prepared.
		d.spares = newSockPool(d.cfg.XSK, d.cfg.Workers)
	}
	if p.dev, err = d.portDevice(ifi.Index); err != nil {
		return nil, fmt.Errorf("port %s: %w", spec.Ifname, err)
	}
	defer d.spares.refill()
	if err := d.attach(p, ifi); err != nil {
		return nil, err
	}
	// Return only once every worker forwards for the port. If a worker is
	// stuck the port stays attached (closing sockets a worker may still
	// touch would be unsafe) and the caller hears of it.
	if qerr := d.quiesce(d.ports.Load().gen); qerr != nil {
		return p, qerr
	}
	return p, nil
}

// Replaced reports whether the interface p was attached to is gone: no
// interface has its name any more, or another one does (a veth made again
// under the same name). Call it in the dataplane's network namespace.
func (p *Port) Replaced() bool {
	index, err := xsk.Ifindex(p.Spec.Ifname)
	return err != nil || len(p.socks) == 0 || index != p.socks[0].Ifindex()
}

// portsPerProgram is how many pod ports share one port program. Loading a
// program and holding it (xdp.SharedProgram.Hold) pays for the kernel's XDP
// dispatcher update (an RCU grace period) once; ports attach at the cost
// of a link.
const portsPerProgram = 256

// portDevice gives device ifindex a slot in a shared port program, and
// loads another program when every one is full. Caller holds d.mu.
func (d *Dataplane) portDevice(ifindex int) (*xdp.Device, error) {
	for _, sp := range d.portProgs {
		if dev, err := sp.AddDevice(ifindex); !errors.Is(err, xdp.ErrFull) {
			return dev, err
		}
	}
	sp, err := xdp.NewSharedProgram(xdp.SharedOptions{Devices: portsPerProgram, Queues: d.cfg.Workers, Fallback: xdp.Drop})
	if err != nil {
		return nil, err
	}
	// Held, the program stays in the kernel's XDP dispatcher when its last
	// port goes: the next first port (an empty node's next pod) attaches
	// in tens of microseconds, not an RCU grace period.
	if tap, err := sp.Hold("rnxdp%d"); err != nil {
		d.cfg.Logger.Warn("pod port XDP program not held: the first pod port after none pays an RCU grace period (ms) on attach and detach", "err", err)
	} else {
		d.cfg.Logger.Debug("pod port XDP program held", "tap", tap)
	}
	d.portProgs = append(d.portProgs, sp)
	return sp.AddDevice(ifindex)
}

// attach opens p's sockets on device ifi, one per worker, registers them
// with p's program (its own, p.prog, or its slot in a shared one, p.dev),
// attaches the program and publishes the port. Caller holds d.mu. On
// failure nothing stays attached and p's program or slot is closed.
func (d *Dataplane) attach(p *Port, ifi *net.Interface) (err error) {
	name := ifi.Name
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	for q := range d.cfg.Workers {
		var spare *xsk.Socket
		if p.uplink == nil && d.spares != nil {
			spare = d.spares.get()
		}
		s, err := openRetry(name, q, d.cfg.XSK, spare)
		if err != nil {
			return fmt.Errorf("port %s: %w (the device needs %d queues, one per worker)", name, err, d.cfg.Workers)
		}
		p.socks = append(p.socks, s)
		if p.dev != nil {
			err = p.dev.Register(q, s.FD())
		} else {
			err = p.prog.Register(q, s.FD())
		}
		if err != nil {
			return fmt.Errorf("port %s: %w", name, err)
		}
	}
	if p.dev != nil {
		p.link, err = p.dev.Attach(d.cfg.XDPMode)
	} else {
		p.link, err = p.prog.Attach(ifi.Index, d.cfg.XDPMode)
	}
	if err != nil {
		return fmt.Errorf("port %s: %w", name, err)
	}
	return d.addPort(p)
}

// AddUplink attaches the node's uplink: one AF_XDP socket per worker on its
// queues and the narrow uplink XDP program, which hands the fast path only
// tunnel traffic for spec.Address and frames for spec.LocalPrefixes and
// passes everything else to the kernel. Frames that reach a queue without
// a socket go to the kernel too. The uplink needs at least as many queues
// as there are workers; on queues beyond them ringnet's traffic reaches
// the kernel instead (and is dropped there). Routes to peers (SetRoutes)
// are kept and start using the uplink.
func (d *Dataplane) AddUplink(spec UplinkSpec) (_ *Port, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.stop.Load():
		return nil, errors.New("dataplane: closed")
	case d.uplinkPort() != nil:
		return nil, fmt.Errorf("uplink %s: dataplane already has uplink %s", spec.Ifname, d.uplinkPort().Spec.Ifname)
	case !spec.Address.Is4():
		return nil, fmt.Errorf("uplink %s: node address %v is not IPv4 (the underlay is IPv4)", spec.Ifname, spec.Address)
	case spec.VtepMAC != nil && len(spec.VtepMAC) != 6:
		return nil, fmt.Errorf("uplink %s: VTEP MAC %q is not a 6-byte MAC", spec.Ifname, spec.VtepMAC)
	}
	spec = spec.withDefaults()
	for _, p := range d.ports.Load().ports {
		if p != nil && p.Spec.Ifname == spec.Ifname {
			return nil, fmt.Errorf("uplink %s: already attached as a pod port", spec.Ifname)
		}
	}
	ifi, err := net.InterfaceByName(spec.Ifname)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", spec.Ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("uplink %s: not an Ethernet device", spec.Ifname)
	}
	p := &Port{Spec: PortSpec{Ifname: spec.Ifname, MAC: ifi.HardwareAddr}, uplink: &spec, mtu: ifi.MTU}
	p.prog, err = xdp.NewUplinkProgram(xdp.UplinkOptions{
		Queues: d.cfg.Workers, MAC: [6]byte(ifi.HardwareAddr), NodeIPv4: spec.Address.As4(),
		VXLANPort: spec.VXLANPort, IPIP: true,
		PortRanges: []xdp.PortRange{spec.NodePorts, d.cfg.NATPorts},
	})
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", spec.Ifname, err)
	}
	if err := p.prog.SetLocalPrefixes(spec.LocalPrefixes); err != nil {
		p.prog.Close()
		return nil, fmt.Errorf("uplink %s: %w", spec.Ifname, err)
	}
	if err := d.attach(p, ifi); err != nil {
		return nil, err
	}
	if err := d.publishUnderlay(d.routes); err != nil {
		return p, err
	}
	if qerr := d.quiesce(d.ports.Load().gen); qerr != nil {
		return p, qerr
	}
	return p, nil
}

// SetUplinkPrefixes replaces the destinations, beyond tunnel traffic and
// the NAT and NodePort ranges of the node's address, whose frames the
// uplink's XDP program hands to the fast path: the node's pod CIDRs (for
// peers routing directly) and the external and LoadBalancer IPs of
// services (as /32 and /128 prefixes). AddUplink starts with
// UplinkSpec.LocalPrefixes.
func (d *Dataplane) SetUplinkPrefixes(prefixes []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.uplinkPort()
	if p == nil {
		return errors.New("dataplane: no uplink")
	}
	if err := p.prog.SetLocalPrefixes(prefixes); err != nil {
		return fmt.Errorf("uplink %s: %w", p.Spec.Ifname, err)
	}
	p.uplink.LocalPrefixes = slices.Clone(prefixes)
	return nil
}

// RemoveUplink detaches the uplink: peers become unreachable (their routes
// are kept for the next uplink), then the port goes like a pod port.
func (d *Dataplane) RemoveUplink() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.uplinkPort()
	if p == nil {
		return errors.New("dataplane: no uplink")
	}
	d.under.Store(nil)
	if err := d.unpublish(p); err != nil {
		return err
	}
	return p.close()
}

// openRetry opens a socket, waiting up to busyWait while the queue is still
// held by a socket being released: after a crash the kernel frees the old
// process's sockets asynchronously, a moment after its XDP program is gone.
// spare, if not nil, is a socket prepared ahead (sockPool) for the first
// try; it is closed if it cannot bind.
func openRetry(ifname string, queue int, cfg xsk.Config, spare *xsk.Socket) (*xsk.Socket, error) {
	deadline := time.Now().Add(busyWait)
	for {
		var s *xsk.Socket
		var err error
		if spare != nil {
			s, spare = spare, nil
			if err = s.Bind(ifname, queue); err != nil {
				s.Close()
				s = nil
			}
		} else {
			s, err = xsk.Open(ifname, queue, cfg)
		}
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const busyWait = 5 * time.Second

// RemovePort detaches the port on host interface ifname: its addresses leave
// the endpoint table, workers let go of its sockets, then the XDP program is
// detached and the sockets closed.
func (d *Dataplane) RemovePort(ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var p *Port
	for _, q := range d.ports.Load().ports {
		if q != nil && q.Spec.Ifname == ifname && q.uplink == nil {
			p = q
		}
	}
	if p == nil {
		return fmt.Errorf("port %s: not attached", ifname)
	}
	if err := d.unpublish(p); err != nil {
		return err
	}
	return p.close()
}

func (p *Port) close() error {
	var errs []error
	if p.link != nil {
		errs = append(errs, p.link.Close())
	}
	if p.dev != nil {
		errs = append(errs, p.dev.Close())
	}
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	for _, s := range p.socks {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Start runs one goroutine per worker.
func (d *Dataplane) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return errors.New("dataplane: already started")
	}
	for range d.workers {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			d.closeWake()
			return fmt.Errorf("dataplane: eventfd: %w", err)
		}
		d.wake = append(d.wake, fd)
	}
	d.wakeMu.Lock()
	for i, w := range d.workers {
		w.wakeFD.Store(int32(d.wake[i]))
	}
	d.wakeMu.Unlock()
	d.started = true
	for i, w := range d.workers {
		cpu := -1
		if len(d.cfg.CPUs) > 0 {
			cpu = d.cfg.CPUs[i%len(d.cfg.CPUs)]
		}
		d.running.Add(1)
		go func() {
			defer d.running.Done()
			w.run(cpu, d.wake[i])
		}()
	}
	return nil
}

// Close stops the workers, then detaches and closes every port. After
// Close nothing of the dataplane stays attached to any device; Stats still
// reports the final counts.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop.Load() {
		return nil
	}
	d.stop.Store(true)
	d.wakeWorkers()
	d.running.Wait()
	var errs []error
	for _, p := range d.ports.Load().ports {
		if p != nil {
			errs = append(errs, p.close())
		}
	}
	for _, sp := range d.portProgs {
		errs = append(errs, sp.Close())
	}
	d.portProgs = nil
	if d.spares != nil {
		d.spares.close()
		d.spares = nil
	}
	d.closeWake()
	return errors.Join(errs...)
}

func (d *Dataplane) closeWake() {
	d.wakeMu.Lock()
	for _, w := range d.workers {
		w.wakeFD.Store(-1)
	}
	for _, fd := range d.wake {
		unix.Close(fd)
	}
	d.wakeMu.Unlock()
	d.wake = nil
}

func (d *Dataplane) wakeWorkers() {
	for _, fd := range d.wake {
		writeEventFD(fd)
	}
}

// eventOne is the 8-byte counter increment written to an eventfd.
var eventOne = []byte{1, 0, 0, 0, 0, 0, 0, 0}

func writeEventFD(fd int) { _, _ = unix.Write(fd, eventOne) }

// run is the worker goroutine: pinned to cpu if cpu >= 0, stepping until
// the dataplane stops, and between steps with no work either spinning
// (BusyPoll) or sleeping in poll(2) on its sockets and wakeFD. Its time
// from here on is what BusyTime accounts (see Worker).
func (w *Worker) run(cpu, wakeFD int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			w.dp.cfg.Logger.Warn("worker runs unpinned", "worker", w.id, "cpu", cpu, "err", err)
		}
	}
	var fds []unix.PollFd
	var fdsFor *portSet
	timeout := int(w.dp.cfg.IdleTimeout.Milliseconds())
	var drain [8]byte
	w.lastStep = int64(time.Since(w.dp.epoch)) // time before Start is not the worker's
	spin := w.dp.cfg.IdleSpin
	var lastWork time.Time
	for !w.dp.stop.Load() {
		if w.step() > 0 {
			if spin > 0 {
				lastWork = time.Now()
			}
			continue
		}
		if w.dp.cfg.BusyPoll {
			continue
		}
		if spin > 0 && time.Since(lastWork) < spin {
			// Spin politely: the reply the worker waits for may need
			// this very CPU to be sent (the pod's process, the kernel's
			// softirq), so let any runnable thread have it first.
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		// Say we sleep, then look at the host queue once more: the slow
		// path queues, then looks at asleep (HostPort.Wake), so one of the
		// two sees the other.
		w.asleep.Store(true)
		if w.fromHost != nil && w.fromHost.Pending() {
			w.asleep.Store(false)
			continue
		}
		if fdsFor != w.set {
			fds = fds[:0]
			fds = append(fds, unix.PollFd{Fd: int32(wakeFD), Events: unix.POLLIN})
			for _, p := range w.active {
				fds = append(fds, unix.PollFd{Fd: int32(p.socks[w.id].FD()), Events: unix.POLLIN})
			}
			fdsFor = w.set
		}
		if _, err := xsk.Poll(fds, timeout); err != nil {
			w.dp.cfg.Logger.Error("worker poll failed", "worker", w.id, "err", err)
		}
		w.asleep.Store(false)
		if fds[0].Revents&unix.POLLIN != 0 {
			_, _ = unix.Read(wakeFD, drain[:])
		}
	}
	// Publish what the last steps counted, and timed.
	w.account(int64(time.Since(w.dp.epoch)))
	w.publish()
}
