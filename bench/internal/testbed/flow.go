package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/ringnet/ringnet/bench/internal/child"
	"github.com/ringnet/ringnet/bench/internal/trafgen"
)

// ResolveFlow pings the receiver from the sender pod, which proves the
// path and makes the sender's kernel resolve its next hop, and returns the
// benchmark frame for that path, from SenderPort (the caller sets the
// destination port): the sender's MAC to its gateway's (cni0 on a kernel
// node, ringnet's link-local gateway on a ringnet node).
func ResolveFlow(ctx context.Context, send, recv Endpoint) (trafgen.Flow, error) {
	f := trafgen.Flow{Src: send.IP, Dst: recv.IP, SrcPort: SenderPort}
	out, err := child.Run(ctx, send.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", recv.IP.String())
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		return f, fmt.Errorf("ping %v from the sender pod: %v\n%s", recv.IP, err, out)
	}
	var route []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	}
	if err := ipJSON(ctx, send.NS, &route, "route", "get", recv.IP.String()); err != nil {
		return f, err
	}
	if len(route) != 1 || route[0].Dev != "eth0" {
		return f, fmt.Errorf("sender pod: route to %v: %+v, want one through eth0", recv.IP, route)
	}
	next := recv.IP.String()
	if route[0].Gateway != "" {
		next = route[0].Gateway
	}
	var neigh []struct {
		LLAddr string `json:"lladdr"`
	}
	if err := ipJSON(ctx, send.NS, &neigh, "neigh", "show", "to", next, "dev", "eth0"); err != nil {
		return f, err
	}
	var link []struct {
		Address string `json:"address"`
	}
	if err := ipJSON(ctx, send.NS, &link, "link", "show", "dev", "eth0"); err != nil {
		return f, err
	}
	if len(neigh) != 1 || len(link) != 1 {
		return f, fmt.Errorf("sender pod: neighbour %s: %+v, eth0: %+v", next, neigh, link)
	}
	if f.DstMAC, err = net.ParseMAC(neigh[0].LLAddr); err != nil {
		return f, fmt.Errorf("sender pod: neighbour %s: %w", next, err)
	}
	if f.SrcMAC, err = net.ParseMAC(link[0].Address); err != nil {
		return f, fmt.Errorf("sender pod: eth0: %w", err)
	}
	return f, nil
}

// ipJSON runs ip -j with args in a namespace and decodes its output.
func ipJSON(ctx context.Context, ns string, v any, args ...string) error {
	out, err := child.Run(ctx, ns, append([]string{"ip", "-j"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("ip -j %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
