package metrics

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/internal/netnstest"
	"github.com/ringnet/ringnet/podport"
)

// TestDataplanePing scrapes a real dataplane: a node namespace with two
// pods on AF_XDP ports, pod A pinging pod B through the fast path.
func TestDataplanePing(t *testing.T) {
	netnstest.RequireRoot(t)
	node := netnstest.New(t, "rnm")
	dp, err := pipeline.New(pipeline.Config{Gateway: pipeline.Gateway{MAC: [6]byte(podport.GatewayMAC),
		IPv4: podport.GatewayIPv4.As4(), IPv6: podport.GatewayIPv6.As16()}})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	pods := []struct {
		ns   netnstest.NS
		host string
		ip   netip.Addr
	}{
		{netnstest.New(t, "rmp"), netnstest.Name("rma"), netip.MustParseAddr("10.244.0.10")},
		{netnstest.New(t, "rmp"), netnstest.Name("rmb"), netip.MustParseAddr("10.244.0.11")},
	}
	for _, p := range pods {
		node.Do(t, func() error {
			port, err := podport.Setup(podport.Config{NetNS: p.ns.Path, HostIfname: p.host, IPv4: p.ip})
			if err != nil {
				return err
			}
			_, err = dp.AddPort(pipeline.PortSpec{Ifname: p.host, MAC: port.PodMAC, IPv4: p.ip})
			return err
		})
	}
	if err := dp.Start(); err != nil {
		t.Fatal(err)
	}
	m := New(dp, Options{Tables: func() map[string]int { return map[string]int{"endpoints": dp.NumPorts()} }})
	netnstest.Run(t, pods[0].ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "2", pods[1].ip.String())
	time.Sleep(20 * time.Millisecond) // the last step's publish

	got := gather(t, m.Registry())
	atLeast := map[string]float64{
		`ringnet_port_rx_packets_total{port="` + pods[0].host + `"}`: 3, // echo requests (and ARP)
		`ringnet_port_tx_packets_total{port="` + pods[1].host + `"}`: 3,
		`ringnet_port_rx_packets_total{port="` + pods[1].host + `"}`: 3, // echo replies
		`ringnet_port_tx_packets_total{port="` + pods[0].host + `"}`: 3,
		`ringnet_packets_total{reason="forwarded"}`:                  6,
		`ringnet_packets_total{reason="arp_reply"}`:                  2, // each pod resolves the gateway
		`ringnet_table_entries{table="endpoints"}`:                   2,
	}
	for series, min := range atLeast {
		if v, ok := got[series]; !ok || v < min {
			t.Errorf("%s = %v (present %v), want >= %v", series, v, ok, min)
		}
	}
	for _, p := range pods {
		for _, name := range []string{"ringnet_xsk_rx_dropped_total", "ringnet_xsk_rx_ring_full_total", "ringnet_xsk_bad_frees_total"} {
			series := name + `{port="` + p.host + `"}`
			if v, ok := got[series]; !ok || v != 0 {
				t.Errorf("%s = %v (present %v), want 0", series, v, ok)
			}
		}
	}
	if v := got[`ringnet_worker_busy_seconds_total{worker="0"}`]; v <= 0 {
		t.Errorf("worker 0 busy %vs after forwarding", v)
	}
	if r, ok := got[`ringnet_worker_busy_ratio{worker="0"}`]; !ok || r < 0 || r > 1 {
		t.Errorf("worker 0 busy ratio %v (present %v)", r, ok)
	}
}
