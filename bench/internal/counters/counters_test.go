package counters

import (
	"maps"
	"testing"
)

func TestRingnetd(t *testing.T) {
	out := "counters\nport rna rx_frames=1 tx_frames=2\nreason forwarded 5\n" +
		"counters\nport rna rx_frames=10 tx_frames=20 xsk_rx_dropped=3\nworker 0 forwarded=7 dropped=1\nreason forwarded 7\nreason ip_options 1\n"
	c, err := Ringnetd(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"port.rna.rx_frames": 10, "port.rna.tx_frames": 20, "port.rna.xsk_rx_dropped": 3,
		"worker.0.forwarded": 7, "worker.0.dropped": 1,
		"reason.forwarded": 7, "reason.ip_options": 1,
	}
	if !maps.Equal(c, want) {
		t.Errorf("got %v, want %v", c, want)
	}
	if _, err := Ringnetd("nothing here"); err == nil {
		t.Error("no error without a counters block")
	}
}

func TestDelta(t *testing.T) {
	d := Delta(map[string]uint64{"a": 1, "b": 5}, map[string]uint64{"a": 4, "b": 5, "c": 2})
	want := map[string]uint64{"a": 3, "b": 0, "c": 2}
	if !maps.Equal(d, want) {
		t.Errorf("got %v, want %v", d, want)
	}
}
