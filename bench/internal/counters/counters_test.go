package counters

import (
	"maps"
	"slices"
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

func TestParseIPTables(t *testing.T) {
	out := `Chain FORWARD (policy ACCEPT 3 packets, 180 bytes)
    pkts      bytes target     prot opt in     out     source               destination         
      12      720 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
       0        0 ACCEPT     17   --  *      *       172.16.0.0           10.244.2.2           udp dpts:8960:9215
 1234567 74074020 ACCEPT     17   --  *      *       10.244.1.2           10.244.2.2           udp dpts:8960:9215
       3      138 DROP       0    --  *      *       0.0.0.0/0            10.244.2.2          
`
	got, err := parseIPTables(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{12, 0, 1234567, 3}; !slices.Equal(got, want) {
		t.Errorf("parseIPTables = %v, want %v", got, want)
	}
	if _, err := parseIPTables("iptables: No chain/target/match by that name.\n"); err == nil {
		t.Error("parseIPTables took an error message for a chain")
	}
}

func TestParseConntrack(t *testing.T) {
	out := `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
0000002a  00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000010 00000000 00000000 0000000f 00000000  00000000 00000000 00000000 00000000
0000002a  00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000020 00000000 00000001 00000001 00000000  00000000 00000000 00000000 00000000
`
	got, err := parseConntrack(out)
	if err != nil {
		t.Fatal(err)
	}
	if got["insert"] != 0x30 || got["early_drop"] != 0x10 || got["found"] != 3 || got["drop"] != 1 {
		t.Errorf("parseConntrack = %v; want insert 48, early_drop 16, found 3, drop 1 (summed over CPUs)", got)
	}
	if _, ok := got["entries"]; ok {
		t.Errorf("parseConntrack kept entries, a gauge: %v", got)
	}
}
