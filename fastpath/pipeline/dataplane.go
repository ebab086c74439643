package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/fastpath/xdp"
	"github.com/ringnet/ringnet/fastpath/xsk"
	"github.com/ringnet/ringnet/tables/conntrack"
	"github.com/ringnet/ringnet/tables/endpoint"
	"github.com/ringnet/ringnet/tables/service"
)

// Config configures a Dataplane. The zero value of each field is a default.
type Config struct {
	// Workers is the number of workers, and so the number of queues each
	// port's veth must have (default 1).
	Workers int
	// CPUs pins worker i to CPUs[i%len(CPUs)]; empty leaves workers
	// unpinned.
	CPUs []int
	// BusyPoll makes idle workers spin on their rings instead of sleeping
	// in poll(2): lowest latency, one core each at 100%.
	BusyPoll bool
	// Batch is the most frames a worker takes from one RX ring at a time
	// (default 64).
	Batch int
	// XSK sizes every socket's UMEM and rings.
	XSK xsk.Config
	// XDPMode is how the redirect program attaches to pod ports (default
	// native).
	XDPMode xdp.Mode
	// IdleSpin keeps an interrupt-driven worker stepping this long after
	// its last frame before it sleeps in poll(2): a reply that comes back
	// within it (request/response traffic) finds the worker awake, which
	// saves a wakeup per packet at the cost of up to IdleSpin of CPU per
	// idle period. Between empty steps the spinning worker yields its CPU
	// (sched_yield(2)) to any other runnable thread, so it never keeps the
	// processes the replies are for from running: on the 2-core machine
	// of docs/benchmarks.md a spin without the yield raised cross-node p99
	// latency, with it the p99 fell below the kernel's. 0: sleep at once.
	IdleSpin time.Duration
	// IdleTimeout bounds how long an interrupt-driven worker sleeps
	// without frames (default 200ms); port changes wake it sooner.
	IdleTimeout time.Duration
	// Gateway is the pods' link-local gateway.
	Gateway Gateway
	// PolicyRequired makes the dataplane fail closed: until the first
	// SetPolicy, nothing is forwarded between pods, or between pods and
	// other nodes (counted as policy_pending); the host still reaches its
	// pods. For a restart: no flow that policy denies passes before the
	// policy is known again.
	PolicyRequired bool
	// ConntrackCapacity is the connections tracked for NetworkPolicy
	// (default DefaultConntrackCapacity), allocated at the first SetPolicy.
	ConntrackCapacity int
	// NATPorts is the source port range of connections the fast path
	// masquerades to the node's address (default DefaultNATPorts). The
	// node's own sockets must not use it.
	NATPorts PortRange
	// Logger receives the rare errors of workers (never per packet);
	// default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.XDPMode == 0 {
		c.XDPMode = xdp.ModeNative
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 200 * time.Millisecond
	}
	if c.NATPorts == (PortRange{}) {
		c.NATPorts = DefaultNATPorts
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.XSK = c.XSK.WithDefaults()
	return c
}

// PortSpec describes a pod port to the dataplane: its host-side interface
// and the pod behind it.
type PortSpec struct {
	Ifname string           // host end of the pod's veth
	MAC    net.HardwareAddr // the pod's MAC
	IPv4   netip.Addr       // the pod's addresses; either may be absent
	IPv6   netip.Addr
}

// Port is a pod port attached to the dataplane.
type Port struct {
	ID   uint16
	Spec PortSpec

	mac      [6]byte
	uplink   *UplinkSpec   // non-nil for the node's uplink (AddUplink)
	mtu      int           // the uplink's MTU
	socks    []*xsk.Socket // by worker; each used only by that worker
	prog     *xdp.Program  // the uplink's own program; nil for a pod port
	dev      *xdp.Device   // a pod port's slot in a shared port program
	link     *xdp.Attachment
	counters []portCounters // by worker
}

// TxBudget is the frames the kernel sends per TX wakeup on the port's
// sockets (0: the kernel's default).
func (p *Port) TxBudget() uint32 { return p.socks[0].TxBudget() }

// portCounters are one worker's counts for one port, published once per
// batch. Padded so that workers never share a cache line.
type portCounters struct {
	rx, tx atomic.Uint64
	_      [48]byte
}

// portSet is an immutable snapshot of the attached ports, indexed by ID.
type portSet struct {
	gen   uint64
	ports []*Port // nil where an ID is free
}

// Dataplane is the fast path of one node: ports, workers, and the tables
// they read.
type Dataplane struct {
	cfg Config

	ports     atomic.Pointer[portSet]         // written under mu, read by workers per step
	endpoints atomic.Pointer[endpoint.Table]  // written under mu, read by workers per step
	host      atomic.Pointer[hostTable]       // written under mu (SetHost), read by workers per step; nil: no slow path yet
	under     atomic.Pointer[underlay]        // written under mu (SetRoutes, AddUplink), read by workers per step; nil: no uplink
	routes    Routes                          // guarded by mu: the last SetRoutes, recompiled when the uplink changes
	policy    atomic.Pointer[Policy]          // written under mu (SetPolicy), read by workers per step; nil: no enforcement
	pending   atomic.Bool                     // Config.PolicyRequired until the first SetPolicy; read by workers per step
	ct        atomic.Pointer[conntrack.Table] // made once under mu by the first SetPolicy or SetServices; the table itself is concurrent
	services  atomic.Pointer[service.Table]   // written under mu (SetServices), read by workers per step; nil: no services
	aff       atomic.Pointer[conntrack.Table] // session affinity; made once under mu by the first SetServices
	masq      atomic.Pointer[Masquerade]      // written under mu (SetMasquerade), read by workers per step; nil: none
	hostPort  *HostPort                       // set under mu before Start, then fixed; nil: no slow path
	hostGen   uint64                          // guarded by mu
	epoch     time.Time                       // zero of the workers' clock for token buckets
	flowMu    sync.Mutex                      // serializes ReadFlows

	// wakeMu guards the workers' eventfds (Worker.wakeFD) against being
	// closed while the slow path writes to one: Start and Close take it
	// for writing, HostPort.Wake for reading.
	wakeMu sync.RWMutex

	watch func(PortSpec, bool) // guarded by mu; see WatchPorts

	portProgs []*xdp.SharedProgram // guarded by mu: the port programs pod ports share (portDevice)
	spares    *sockPool            // guarded by mu: sockets prepared ahead for pod ports; made by the first AddPort
	switched  chan struct{}        // cap 1: a worker switched to a new port set (Worker.seen); quiesce waits on it

	mu      sync.Mutex // serialises the control plane: AddPort, RemovePort, Close
	gen     uint64     // guarded by mu
	workers []*Worker
	running sync.WaitGroup
	started bool        // guarded by mu
	stop    atomic.Bool // set by Close, read by workers
	wake    []int       // eventfd per worker, to end a poll(2) early
}

// MaxMTU is the largest IP packet a pod (or the uplink) may send for frames
// of frameSize bytes: in copy mode the kernel places a received frame
// behind XDP_PACKET_HEADROOM (256 bytes) in its chunk, and the Ethernet
// header takes 14 more. Larger frames are dropped by the kernel
// (xsk_rx_dropped).
func MaxMTU(frameSize uint32) int { return int(frameSize) - 256 - 14 }

// New makes a dataplane with no ports. Start runs its workers.
func New(cfg Config) (*Dataplane, error) {
	cfg = cfg.withDefaults()
	if cfg.Batch < 1 || cfg.Batch > 4096 {
		return nil, fmt.Errorf("dataplane: batch %d out of range [1, 4096]", cfg.Batch)
	}
	if cfg.Workers < 1 || cfg.Workers > 64 {
		return nil, fmt.Errorf("dataplane: %d workers out of range [1, 64]", cfg.Workers)
	}
	if cfg.NATPorts.First == 0 || cfg.NATPorts.First > cfg.NATPorts.Last {
		return nil, fmt.Errorf("dataplane: NAT port range %d-%d is empty or starts at 0", cfg.NATPorts.First, cfg.NATPorts.Last)
	}
	if err := cfg.XSK.Validate(); err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	d := &Dataplane{cfg: cfg, epoch: time.Now(), switched: make(chan struct{}, 1)}
	d.pending.Store(cfg.PolicyRequired)
	d.ports.Store(&portSet{})
	eps, _ := endpoint.New(0, nil)
	d.endpoints.Store(eps)
	for i := range cfg.Workers {
		d.workers = append(d.workers, newWorker(d, i))
	}
	return d, nil
}

// Config returns the configuration in effect.
func (d *Dataplane) Config() Config { return d.cfg }

// Port returns the attached port whose host interface is ifname.
func (d *Dataplane) Port(ifname string) (*Port, bool) {
	for _, p := range d.ports.Load().ports {
		if p != nil && p.Spec.Ifname == ifname {
			return p, true
		}
	}
	return nil, false
}

// NumPorts is the number of attached ports.
func (d *Dataplane) NumPorts() int {
	n := 0
	for _, p := range d.ports.Load().ports {
		if p != nil {
			n++
		}
	}
	return n
}

// Workers returns the workers, for their counters.
func (d *Dataplane) Workers() []*Worker { return d.workers }

// addPort gives p, whose sockets are open, an ID and publishes it. Caller
// holds d.mu.
func (d *Dataplane) addPort(p *Port) error {
	old := d.ports.Load()
	id := len(old.ports)
	for i, p := range old.ports {
		if p == nil {
			id = i
			break
		}
	}
	if id > 0xffff {
		return errors.New("dataplane: 65536 ports in use")
	}
	p.ID, p.mac = uint16(id), [6]byte(p.Spec.MAC)
	p.counters = make([]portCounters, d.cfg.Workers)
	next := &portSet{gen: d.nextGen(), ports: append([]*Port(nil), old.ports...)}
	if id == len(next.ports) {
		next.ports = append(next.ports, p)
	} else {
		next.ports[id] = p
	}
	// Ports before endpoints: a worker that sees the new endpoint also
	// finds its port (or, having loaded the old set, drops the frame as
	// NoPort); it never sends to a port it does not know.
	d.ports.Store(next)
	if err := d.publishEndpoints(next); err != nil {
		d.ports.Store(old)
		return err
	}
	if d.watch != nil {
		d.watch(p.Spec, true)
	}
	return nil
}

// WatchPorts has fn called, under the control-plane lock, after each port
// is added (added true) and after each is removed, and returns the ports
// attached now, so that the caller misses none. It is how the slow path
// keeps the host's routes to the pods in step with the ports. fn must not
// call back into the Dataplane. One watcher at a time; nil removes it.
func (d *Dataplane) WatchPorts(fn func(spec PortSpec, added bool)) []PortSpec {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.watch = fn
	var specs []PortSpec
	for _, p := range d.ports.Load().ports {
		if p != nil {
			specs = append(specs, p.Spec)
		}
	}
	return specs
}

// checkSpec rejects a port whose name or addresses another port has.
// Caller holds d.mu.
func (d *Dataplane) checkSpec(spec PortSpec) error {
	if !spec.IPv4.IsValid() && !spec.IPv6.IsValid() {
		return fmt.Errorf("port %s: no address", spec.Ifname)
	}
	if len(spec.MAC) != 6 {
		return fmt.Errorf("port %s: pod MAC %q is not a 6-byte MAC", spec.Ifname, spec.MAC)
	}
	for _, p := range d.ports.Load().ports {
		if p == nil {
			continue
		}
		switch {
		case p.Spec.Ifname == spec.Ifname:
			return fmt.Errorf("port %s: already attached", spec.Ifname)
		case spec.IPv4.IsValid() && p.Spec.IPv4 == spec.IPv4, spec.IPv6.IsValid() && p.Spec.IPv6 == spec.IPv6:
			return fmt.Errorf("port %s: an address of it belongs to port %s", spec.Ifname, p.Spec.Ifname)
		}
	}
	return nil
}

func (d *Dataplane) nextGen() uint64 { d.gen++; return d.gen }

// publishEndpoints builds the endpoint table for ps and publishes it.
func (d *Dataplane) publishEndpoints(ps *portSet) error {
	m := map[netip.Addr]endpoint.Endpoint{}
	for _, p := range ps.ports {
		if p == nil {
			continue
		}
		ep := endpoint.Endpoint{Port: p.ID, MAC: p.mac}
		for _, a := range []netip.Addr{p.Spec.IPv4, p.Spec.IPv6} {
			if a.IsValid() {
				m[a] = ep
			}
		}
	}
	t, err := endpoint.New(ps.gen, m)
	if err != nil {
		return err
	}
	d.endpoints.Store(t)
	return nil
}

// unpublish removes a port from the port set and the endpoint table and
// waits until no worker can still be using its sockets. Caller holds d.mu.
func (d *Dataplane) unpublish(p *Port) error {
	old := d.ports.Load()
	next := &portSet{gen: d.nextGen(), ports: append([]*Port(nil), old.ports...)}
	next.ports[p.ID] = nil
	for len(next.ports) > 0 && next.ports[len(next.ports)-1] == nil {
		next.ports = next.ports[:len(next.ports)-1]
	}
	// Endpoints before ports: no new frame is routed to the port, then
	// workers let go of it.
	if err := d.publishEndpoints(next); err != nil {
		return err
	}
	d.ports.Store(next)
	if d.watch != nil {
		d.watch(p.Spec, false)
	}
	return d.quiesce(next.gen)
}

// quiesce waits until every running worker has switched to generation gen.
func (d *Dataplane) quiesce(gen uint64) error {
	if !d.started {
		return nil
	}
	d.wakeWorkers()
	deadline := time.Now().Add(5*time.Second + 2*d.cfg.IdleTimeout)
	// A worker stores seen, then signals switched (or finds a signal
	// pending); this loop takes a signal, then loads seen. So no switch
	// goes unnoticed, and a stale signal only costs one more look. The
	// timer is a safety net, not needed for that.
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	for _, w := range d.workers {
		for w.seen.Load() < gen && !d.stop.Load() {
			if time.Now().After(deadline) {
				return fmt.Errorf("dataplane: worker %d did not switch to port set %d within 5s", w.id, gen)
			}
			t.Reset(time.Millisecond)
			select {
			case <-d.switched:
			case <-t.C:
			}
		}
	}
	return nil
}

// PortStats are the counters of one port.
type PortStats struct {
	ID       uint16
	Ifname   string
	RxFrames uint64 // frames taken off the port's RX rings
	TxFrames uint64 // frames put on the port's TX rings
	Sockets  []xsk.Stats
}

// Stats returns the counters of every port (the host port last, with ID
// HostPortID, if there is a slow path) and the per-reason totals over all
// workers and the slow path's goroutines.
func (d *Dataplane) Stats() ([]PortStats, [stats.NumReasons]uint64) {
	d.mu.Lock() // sockets are closed under mu
	defer d.mu.Unlock()
	var reasons [stats.NumReasons]uint64
	cs := make([]*stats.Counters, 0, len(d.workers)+2)
	for _, w := range d.workers {
		cs = append(cs, &w.Counters)
	}
	if hp := d.hostPort; hp != nil {
		cs = append(cs, &hp.ReaderCounters, &hp.WriterCounters)
	}
	for _, c := range cs {
		for r := range reasons {
			reasons[r] += c.Load(stats.Reason(r))
		}
	}
	var out []PortStats
	for _, p := range d.ports.Load().ports {
		if p == nil {
			continue
		}
		ps := PortStats{ID: p.ID, Ifname: p.Spec.Ifname}
		for i := range p.counters {
			ps.RxFrames += p.counters[i].rx.Load()
			ps.TxFrames += p.counters[i].tx.Load()
		}
		for _, s := range p.socks {
			st, _ := s.Stats()
			ps.Sockets = append(ps.Sockets, st)
		}
		out = append(out, ps)
	}
	if hp := d.hostPort; hp != nil {
		out = append(out, hp.stats())
	}
	return out, reasons
}
