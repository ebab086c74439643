// Package daemon is ringnetd's side of the API (package api): for the CNI
// plugin it allocates pod addresses (package ipam), attaches and detaches
// pod ports on the dataplane, and brings existing pods back after a
// restart; for the ringnet CLI it shows the dataplane's endpoints, routes,
// peers, services and counters (view.go), the NetworkPolicy it enforces
// (policy.go) and what that lets each pod do (explain.go), changing
// nothing.
//
// Calls for one pod interface are serialised by a per-daemon lock around
// the store and the dataplane; bbolt and the dataplane are safe on their
// own, the lock keeps "record says attached" and "port is attached" in step.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/flowlog"
	"github.com/ringnet/ringnet/agent/ipam"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/podport"
)

// Daemon implements api.Handler.
type Daemon struct {
	dp       *pipeline.Dataplane
	store    *ipam.Store
	mtu      int
	log      *slog.Logger
	flows    *flowlog.Recorder // nil: no flow log
	policies *Policies         // nil: no policy view (SetPolicies)
	mu       sync.Mutex        // serialises Allocate/Attach/Release/GC
}

// New returns a daemon over a started dataplane and an open store. mtu is
// the pod MTU it hands out.
func New(dp *pipeline.Dataplane, store *ipam.Store, mtu int, log *slog.Logger) *Daemon {
	return &Daemon{dp: dp, store: store, mtu: mtu, log: log}
}

func key(p api.Pod) ipam.Key { return ipam.Key{ContainerID: p.ContainerID, IfName: p.IfName} }

func addrString(r ipam.Record) (v4, v6 string) {
	if r.IPv4.IsValid() {
		v4 = r.IPv4.String()
	}
	if r.IPv6.IsValid() {
		v6 = r.IPv6.String()
	}
	return v4, v6
}

// Allocate implements api.Handler.
func (d *Daemon) Allocate(_ context.Context, p api.Pod) (api.AllocateResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	host := api.HostIfname(p.ContainerID, p.IfName)
	rec, created, err := d.store.Allocate(ipam.Record{Key: key(p), Netns: p.Netns,
		PodNamespace: p.PodNamespace, PodName: p.PodName, HostIfname: host})
	if err != nil {
		if errors.Is(err, ipam.ErrPoolExhausted) {
			return api.AllocateResponse{}, &api.Error{Code: api.CodePoolExhausted, Message: err.Error()}
		}
		return api.AllocateResponse{}, err
	}
	if created {
		d.log.Info("allocated", "pod", p.PodNamespace+"/"+p.PodName, "container", p.ContainerID,
			"if", p.IfName, "ipv4", rec.IPv4, "ipv6", rec.IPv6)
	}
	v4, v6 := addrString(rec)
	return api.AllocateResponse{IPv4: v4, IPv6: v6, HostIfname: rec.HostIfname, PodMAC: rec.PodMAC, MTU: d.mtu,
		Queues: d.dp.Config().Workers}, nil
}

// Attach implements api.Handler: it attaches the port and returns once it
// forwards. Attaching an attached port with the same MAC is a no-op.
func (d *Daemon) Attach(_ context.Context, a api.AttachRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok, err := d.store.Get(key(a.Pod))
	if err != nil {
		return err
	}
	if !ok {
		return &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no allocation for container %s interface %s: call allocate first", a.ContainerID, a.IfName)}
	}
	if a.HostIfname != rec.HostIfname {
		return &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf("host interface %q, but the allocation says %q", a.HostIfname, rec.HostIfname)}
	}
	mac, err := net.ParseMAC(a.PodMAC)
	if err != nil || len(mac) != 6 {
		return &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf("podMAC %q is not an Ethernet MAC", a.PodMAC)}
	}
	if p, ok := d.dp.Port(rec.HostIfname); ok {
		// Attached already: a repeated ADD, or a restart's Restore. Unless
		// the plugin has since made the veth again (a repeated ADD does),
		// with the same MAC or another.
		if p.Spec.MAC.String() == mac.String() && !p.Replaced() {
			return nil
		}
		if err := d.dp.RemovePort(rec.HostIfname); err != nil {
			return err
		}
	}
	// The allocation chose the MAC (ipam.PodMAC) and the plugin made the
	// veth with it: nothing to write. Older allocations learn it here.
	if rec.PodMAC != mac.String() {
		if _, err := d.store.Update(rec.Key, func(r *ipam.Record) { r.PodMAC = mac.String() }); err != nil {
			return err
		}
	}
	_, err = d.dp.AddPort(pipeline.PortSpec{Ifname: rec.HostIfname, MAC: mac, IPv4: rec.IPv4, IPv6: rec.IPv6})
	if err != nil {
		return fmt.Errorf("attach %s: %w", rec.HostIfname, err)
	}
	d.log.Info("attached", "container", a.ContainerID, "if", a.IfName, "port", rec.HostIfname, "mac", mac.String())
	return nil
}

// Release implements api.Handler: detach, remove the veth, free the
// addresses. Unknown pods are not an error.
func (d *Daemon) Release(_ context.Context, p api.Pod) (api.ReleaseResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.release(key(p))
}

func (d *Daemon) release(k ipam.Key) (api.ReleaseResponse, error) {
	host := api.HostIfname(k.ContainerID, k.IfName)
	if rec, ok, err := d.store.Get(k); err != nil {
		return api.ReleaseResponse{}, err
	} else if ok && rec.HostIfname != "" {
		host = rec.HostIfname
	}
	if _, ok := d.dp.Port(host); ok {
		if err := d.dp.RemovePort(host); err != nil {
			return api.ReleaseResponse{}, err
		}
	}
	if err := podport.Teardown(host); err != nil {
		return api.ReleaseResponse{}, err
	}
	rec, found, err := d.store.Release(k)
	if err != nil {
		return api.ReleaseResponse{}, err
	}
	if found {
		d.log.Info("released", "container", k.ContainerID, "if", k.IfName, "ipv4", rec.IPv4, "ipv6", rec.IPv6)
	}
	return api.ReleaseResponse{Found: found, HostIfname: host}, nil
}

// Check implements api.Handler.
func (d *Daemon) Check(_ context.Context, p api.Pod) (api.CheckResponse, error) {
	rec, ok, err := d.store.Get(key(p))
	if err != nil {
		return api.CheckResponse{}, err
	}
	if !ok {
		return api.CheckResponse{}, &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no allocation for container %s interface %s", p.ContainerID, p.IfName)}
	}
	_, attached := d.dp.Port(rec.HostIfname)
	v4, v6 := addrString(rec)
	return api.CheckResponse{IPv4: v4, IPv6: v6, HostIfname: rec.HostIfname, Attached: attached}, nil
}

// Status implements api.Handler. The API serves only once the dataplane
// forwards (ringnetd starts it after Start), so a daemon that answers is
// ready.
func (d *Daemon) Status(context.Context) (api.Status, error) {
	recs, err := d.store.List()
	if err != nil {
		return api.Status{}, err
	}
	st := api.Status{Ready: true, Ports: d.dp.NumPorts(), Allocated: len(recs),
		Workers: d.dp.Config().Workers, Tables: TableSizes(d.dp)}
	for _, p := range d.store.Pools() {
		st.PodCIDRs = append(st.PodCIDRs, p.String())
	}
	if up, ok := d.dp.Uplink(); ok {
		st.Uplink = &api.Uplink{Interface: up.Ifname, Address: up.Address.String(), VtepMAC: up.VtepMAC.String(),
			VXLANPort: int(up.VXLANPort), VNI: int(up.VNI)}
	}
	for _, p := range d.dp.Routes().Peers {
		st.Peers++
		if p.MAC == ([6]byte{}) {
			st.PeersUnresolved++
		}
	}
	return st, nil
}

// TableSizes is the number of entries of each table the fast path reads,
// by name: the dataplane's TableSizes (endpoints, ports, peers, routes),
// services, the entries of the service table (0 without one), and, once
// the fast path tracks connections, conntrack (the connections tracked)
// and affinity (the clients remembered for session affinity). For Status
// and the metrics.
func TableSizes(dp *pipeline.Dataplane) map[string]int {
	m := dp.TableSizes()
	m["services"] = 0
	if t := dp.Services(); t != nil {
		m["services"] = t.Len()
	}
	if ct := dp.Conntrack(); ct != nil {
		m["conntrack"] = ct.Len()
	}
	if aff := dp.Affinity(); aff != nil {
		m["affinity"] = aff.Len()
	}
	return m
}

// GC implements api.Handler: every allocation the runtime no longer lists
// is released, its port detached and its veth removed.
func (d *Daemon) GC(_ context.Context, g api.GCRequest) (api.GCResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	valid := map[ipam.Key]bool{}
	for _, p := range g.Valid {
		valid[key(p)] = true
	}
	recs, err := d.store.List()
	if err != nil {
		return api.GCResponse{}, err
	}
	var out api.GCResponse
	var errs []error
	for _, r := range recs {
		if valid[r.Key] {
			continue
		}
		if _, err := d.release(r.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		out.Released = append(out.Released, api.Pod{ContainerID: r.ContainerID, IfName: r.IfName})
	}
	return out, errors.Join(errs...)
}

// Restore re-attaches the ports of every recorded pod whose host interface
// still exists, after a restart or crash of the daemon. Pods whose veth is
// gone keep their addresses until the runtime deletes them (DEL or GC).
func (d *Daemon) Restore() (restored, missing int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.store.List()
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, r := range recs {
		if r.HostIfname == "" || r.PodMAC == "" {
			missing++
			continue
		}
		if _, err := net.InterfaceByName(r.HostIfname); err != nil {
			missing++
			continue
		}
		mac, _ := net.ParseMAC(r.PodMAC)
		if _, err := d.dp.AddPort(pipeline.PortSpec{Ifname: r.HostIfname, MAC: mac, IPv4: r.IPv4, IPv6: r.IPv6}); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", r.Key, err))
			continue
		}
		restored++
	}
	return restored, missing, errors.Join(errs...)
}
