package testbed

import (
	"maps"
	"testing"
)

func TestPortRole(t *testing.T) {
	for in, want := range map[string]string{
		"port.rn8ed6a35dc48.xsk_rx_ring_full": "port.pod.xsk_rx_ring_full",
		"port.uplink0.tx_frames":              "port.uplink0.tx_frames",
		"port.ringnet0.rx_frames":             "port.ringnet0.rx_frames",
		"reason.to_peer":                      "reason.to_peer",
		"worker.0.dropped":                    "worker.0.dropped",
	} {
		if got := portRole(in); got != want {
			t.Errorf("portRole(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLosses(t *testing.T) {
	d := map[string]uint64{
		"n1.reason.to_peer": 100, "n2.reason.from_peer": 90, "n2.reason.tx_ring_full": 3,
		"n1.port.pod.xsk_rx_ring_full": 7, "n1.port.pod.xsk_fill_ring_empty": 2, "n1.port.pod.xsk_rx_dropped": 2,
		"n1.port.uplink0.tx_kicks": 50, "n2.worker.0.dropped": 3, "n2.uplink.rx_dropped": 4, "n2.reason.multicast": 0,
	}
	kernel := (&Bed{}).Losses(d)
	ringnet := (&Bed{Ringnetd: map[string]int{"n1": 1, "n2": 2}}).Losses(d)
	want := map[string]uint64{"n2.reason.tx_ring_full": 3, "n1.port.pod.xsk_rx_ring_full": 7, "n1.port.pod.xsk_rx_dropped": 2}
	if !maps.Equal(ringnet, want) {
		t.Errorf("ringnet losses %v, want %v", ringnet, want)
	}
	if kernel["n2.uplink.rx_dropped"] != 4 || ringnet["n2.uplink.rx_dropped"] != 0 {
		t.Errorf("uplink rx_dropped: kernel %v, ringnet %v; want it only without ringnetd", kernel, ringnet)
	}
}
