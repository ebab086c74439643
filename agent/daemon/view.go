package daemon

// The read-only views the ringnet CLI shows: endpoints, routes, peers,
// services and counters, read off the dataplane (and the address store, for who a pod
// is) when asked. Each takes the dataplane's control-plane lock for the
// copy, so it waits while a port is being attached (until the workers
// forward for it), but never takes the daemon's own lock across a whole
// Attach, and a view may show a pod between its allocation and its
// attachment. Nothing here runs on the fast path.

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/flowlog"
	"github.com/ringnet/ringnet/agent/ipam"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/fastpath/stats"
	"github.com/ringnet/ringnet/tables/route"
	"github.com/ringnet/ringnet/tables/service"
)

// Endpoints implements api.Handler: every address in the fast path's
// endpoint table, with the pod the address store says it belongs to, then
// the addresses of pods whose port is not attached.
func (d *Daemon) Endpoints(context.Context) (api.EndpointList, error) {
	recs, err := d.store.List()
	if err != nil {
		return api.EndpointList{}, err
	}
	return endpointList(d.dp.Endpoints(), recs), nil
}

// Routes implements api.Handler.
func (d *Daemon) Routes(context.Context) (api.RouteList, error) {
	return routeList(d.dp.Routes()), nil
}

// Peers implements api.Handler.
func (d *Daemon) Peers(context.Context) (api.PeerList, error) {
	return peerList(d.dp.Routes()), nil
}

// Services implements api.Handler: every entry of the published service
// table (none before ringnetd publishes one).
func (d *Daemon) Services(context.Context) (api.ServiceList, error) {
	return serviceList(d.dp.Services()), nil
}

// Stats implements api.Handler.
func (d *Daemon) Stats(context.Context) (api.Stats, error) {
	ports, reasons := d.dp.Stats()
	up, _ := d.dp.Uplink()
	out := api.Stats{Ports: []api.PortStats{}, Workers: []api.WorkerStats{}, Reasons: make([]api.ReasonCount, 0, stats.NumReasons)}
	for _, p := range ports {
		ps := api.PortStats{ID: int(p.ID), Interface: p.Ifname, Kind: api.PortPod, RxFrames: p.RxFrames, TxFrames: p.TxFrames}
		switch {
		case p.ID == pipeline.HostPortID:
			ps.Kind = api.PortHost
		case up.Ifname != "" && p.Ifname == up.Ifname:
			ps.Kind = api.PortUplink
		}
		for _, s := range p.Sockets {
			ps.XSKRxDropped += s.RxDropped
			ps.XSKRxRingFull += s.RxRingFull
			ps.XSKRxFillRingEmpty += s.RxFillRingEmpty
			ps.XSKRxInvalidDescs += s.RxInvalidDescs
			ps.XSKTxInvalidDescs += s.TxInvalidDescs
			ps.XSKTxKicks += s.Kicks
			ps.XSKTxKickErrors += s.KickErrors
		}
		out.Ports = append(out.Ports, ps)
	}
	for i, w := range d.dp.Workers() {
		ws := api.WorkerStats{ID: i}
		for _, r := range stats.Reasons() {
			n := w.Counters.Load(r)
			switch reasonGroups[r] {
			case api.GroupForwarded:
				ws.Forwarded += n
			case api.GroupPunted:
				ws.Punted += n
			default:
				ws.Dropped += n
			}
		}
		if busy, total := w.BusyTime(); total > 0 {
			ws.Busy = busy.Seconds() / total.Seconds()
		}
		out.Workers = append(out.Workers, ws)
	}
	for _, r := range stats.Reasons() {
		out.Reasons = append(out.Reasons, api.ReasonCount{Reason: r.String(), Group: reasonGroups[r], Count: reasons[r]})
	}
	return out, nil
}

// reasonGroups sorts every reason into its api group as the metrics do:
// the reasons of the punt list (pipeline.PuntClass, whose String is its
// reason's name) are punted, other reasons with IsDrop dropped, the rest
// forwarded.
var reasonGroups = func() [stats.NumReasons]string {
	var g [stats.NumReasons]string
	byName := make(map[string]stats.Reason, stats.NumReasons)
	for _, r := range stats.Reasons() {
		byName[r.String()] = r
		g[r] = api.GroupForwarded
		if r.IsDrop() {
			g[r] = api.GroupDropped
		}
	}
	for c := range pipeline.NumPuntClasses {
		if r, ok := byName[c.String()]; ok && r.IsDrop() {
			g[r] = api.GroupPunted
		}
	}
	return g
}()

// endpointList joins the dataplane's endpoints with the store's records
// by host interface; records with no attached port follow, one entry per
// address.
func endpointList(eps []pipeline.EndpointInfo, recs []ipam.Record) api.EndpointList {
	byIf := make(map[string]ipam.Record, len(recs))
	for _, r := range recs {
		if r.HostIfname != "" {
			byIf[r.HostIfname] = r
		}
	}
	out := api.EndpointList{Endpoints: []api.Endpoint{}}
	attached := map[string]bool{}
	for _, e := range eps {
		port := int(e.Port)
		ep := api.Endpoint{Address: e.Addr.String(), Interface: e.Ifname, Port: &port,
			MAC: net.HardwareAddr(e.MAC[:]).String(), Attached: true}
		if r, ok := byIf[e.Ifname]; ok {
			ep.PodNamespace, ep.PodName, ep.ContainerID, ep.IfName = r.PodNamespace, r.PodName, r.ContainerID, r.IfName
		}
		attached[e.Ifname] = true
		out.Endpoints = append(out.Endpoints, ep)
	}
	type pending struct {
		addr netip.Addr
		ep   api.Endpoint
	}
	var rest []pending
	for _, r := range recs {
		if r.HostIfname != "" && attached[r.HostIfname] {
			continue
		}
		for _, a := range []netip.Addr{r.IPv4, r.IPv6} {
			if a.IsValid() {
				rest = append(rest, pending{a, api.Endpoint{Address: a.String(), Interface: r.HostIfname, MAC: r.PodMAC,
					PodNamespace: r.PodNamespace, PodName: r.PodName, ContainerID: r.ContainerID, IfName: r.IfName}})
			}
		}
	}
	slices.SortFunc(rest, func(a, b pending) int { return a.addr.Compare(b.addr) })
	for _, p := range rest {
		out.Endpoints = append(out.Endpoints, p.ep)
	}
	return out
}

// routeList lists r's table, naming the peer of each RemoteNode route.
func routeList(r pipeline.Routes) api.RouteList {
	out := api.RouteList{Routes: []api.Route{}}
	if r.Table == nil {
		return out
	}
	for pfx, nh := range r.Table.All() {
		rt := api.Route{Prefix: pfx.String(), Kind: nh.Kind.String()}
		switch nh.Kind {
		case route.RemoteNode:
			rt.Tunnel = nh.Tunnel.String()
			if int(nh.Node) < len(r.Peers) {
				p := r.Peers[nh.Node]
				rt.Peer, rt.PeerAddress = p.Name, p.Address.String()
			}
		case route.LocalPort:
			if nh.Port != route.ViaEndpoint {
				port := int(nh.Port)
				rt.Port = &port
			}
		}
		out.Routes = append(out.Routes, rt)
	}
	return out
}

// peerList lists r's peers with the prefixes routed to each.
func peerList(r pipeline.Routes) api.PeerList {
	out := api.PeerList{Peers: make([]api.Peer, 0, len(r.Peers))}
	for _, p := range r.Peers {
		ap := api.Peer{Name: p.Name, Address: p.Address.String(), Tunnel: p.Tunnel.String(),
			Resolved: p.MAC != [6]byte{}, PodCIDRs: []string{}}
		if ap.Resolved {
			ap.NextHopMAC = net.HardwareAddr(p.MAC[:]).String()
		}
		if p.VtepMAC != ([6]byte{}) {
			ap.VtepMAC = net.HardwareAddr(p.VtepMAC[:]).String()
		}
		out.Peers = append(out.Peers, ap)
	}
	if r.Table == nil {
		return out
	}
	for pfx, nh := range r.Table.All() {
		if nh.Kind == route.RemoteNode && int(nh.Node) < len(out.Peers) {
			out.Peers[nh.Node].PodCIDRs = append(out.Peers[nh.Node].PodCIDRs, pfx.String())
		}
	}
	return out
}

// serviceList lists t's entries, sorted by address, port and protocol.
func serviceList(t *service.Table) api.ServiceList {
	out := api.ServiceList{Services: []api.Service{}}
	if t == nil {
		return out
	}
	out.Generation = t.Generation()
	specs := t.All()
	slices.SortFunc(specs, func(a, b service.Spec) int {
		return cmp.Or(a.VIP.Compare(b.VIP), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	for _, sp := range specs {
		s := api.Service{VIP: sp.VIP.String(), Protocol: cluster.ProtocolName(sp.Proto), Port: int(sp.Port),
			Backends: []string{}, AffinitySeconds: int(sp.Affinity / time.Second), External: sp.External, Local: sp.Local,
			TableSize: int(sp.TableSize)}
		for _, b := range sp.Backends {
			s.Backends = append(s.Backends, netip.AddrPortFrom(b.Addr, b.Port).String())
		}
		out.Services = append(out.Services, s)
	}
	return out
}

// SetFlowLog makes r the source of Flows. Call it before serving.
func (d *Daemon) SetFlowLog(r *flowlog.Recorder) { d.flows = r }

// Flows implements api.Handler: the latest flows the flow log keeps.
func (d *Daemon) Flows(context.Context) (api.FlowList, error) {
	if d.flows == nil {
		return api.FlowList{Flows: []api.Flow{}, Total: map[string]uint64{}}, nil
	}
	return d.flows.Recent(0, ""), nil
}
