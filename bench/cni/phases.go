package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/podport"
)

// Phase names, in the order the plugin runs them.
const (
	phaseAllocate = "ADD: allocate (ringnetd IPAM)"
	phaseVeth     = "ADD: veth + pod side (podport)"
	phaseAttach   = "ADD: attach (XDP, AF_XDP, workers)"
	phaseAdd      = "ADD: all three"
	phaseRelease  = "DEL: release (detach, veth, IPAM)"
)

var phaseOrder = []string{phaseAllocate, phaseVeth, phaseAttach, phaseAdd, phaseRelease}

// phases does ringnet's ADD and DEL for every pod the way the plugin does
// (package cni), but in this process, timing each step: where the time of
// an ADD goes, without cnitool's and the plugin's exec. The thread stays in
// the node namespace throughout, as the plugin's would.
func (e *env) phases(ctx context.Context) (map[string][]float64, error) {
	out := map[string][]float64{}
	since := func(name string, t time.Time) { out[name] = append(out[name], ms(time.Since(t))) }
	cl := api.NewClient(e.socket)
	pod := func(i int) api.Pod {
		return api.Pod{ContainerID: fmt.Sprintf("phases-%d", i), IfName: "eth0", Netns: "/run/netns/" + e.pods[i],
			PodNamespace: "bench", PodName: fmt.Sprintf("pod%d", i)}
	}
	err := ns.WithNetNSPath(e.tool.NodeNetns, func(ns.NetNS) error {
		for i := range e.pods {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := pod(i)
			t0 := time.Now()
			a, err := cl.Allocate(ctx, p)
			if err != nil {
				return fmt.Errorf("allocate: %w", err)
			}
			since(phaseAllocate, t0)
			t1 := time.Now()
			cfg := podport.Config{NetNS: p.Netns, HostIfname: a.HostIfname, PodIfname: p.IfName, MTU: a.MTU, Queues: a.Queues}
			if cfg.IPv4, err = parseOpt(a.IPv4); err == nil {
				cfg.IPv6, err = parseOpt(a.IPv6)
			}
			if err != nil {
				return err
			}
			if err := podport.Teardown(a.HostIfname); err != nil {
				return err
			}
			port, err := podport.Setup(cfg)
			if err != nil {
				return fmt.Errorf("podport: %w", err)
			}
			since(phaseVeth, t1)
			t2 := time.Now()
			if err := cl.Attach(ctx, api.AttachRequest{Pod: p, HostIfname: port.HostIfname, PodMAC: port.PodMAC.String()}); err != nil {
				return fmt.Errorf("attach: %w", err)
			}
			since(phaseAttach, t2)
			since(phaseAdd, t0)
		}
		for i := range e.pods {
			t0 := time.Now()
			rel, err := cl.Release(ctx, pod(i))
			if err != nil {
				return fmt.Errorf("release: %w", err)
			}
			if err := podport.Teardown(rel.HostIfname); err != nil {
				return err
			}
			since(phaseRelease, t0)
		}
		return nil
	})
	return out, err
}

func parseOpt(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}
