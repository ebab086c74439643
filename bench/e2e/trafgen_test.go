package main

import (
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUDPFrame(t *testing.T) {
	f := udpFrame(gwMAC, podAMAC, podAIP, podBIP, 40000, sinkPort)
	if len(f) != 60 {
		t.Fatalf("frame is %d bytes, want 60 (64 with FCS)", len(f))
	}
	ip := f[14:34]
	// A correct header sums, checksum included, to 0xffff: its checksum
	// over itself is zero.
	if got := ipv4Checksum(ip); got != 0 {
		t.Errorf("IPv4 header does not verify: checksum over it is %#04x, want 0", got)
	}
	// Known value for these addresses, computed independently (Python).
	if got := binary.BigEndian.Uint16(ip[10:12]); got != 0x24c3 {
		t.Errorf("IPv4 checksum %#04x, want 0x24c3", got)
	}
	if got := binary.BigEndian.Uint16(ip[2:4]); got != 46 {
		t.Errorf("IPv4 total length %d, want 46", got)
	}
	if got := binary.BigEndian.Uint16(f[38:40]); got != 26 {
		t.Errorf("UDP length %d, want 26", got)
	}
}

func TestTrafgenConfigBytes(t *testing.T) {
	cfg := trafgenConfig(podAMAC, gwMAC, podAIP, podBIP, 40000, sinkPort)
	body := cfg[strings.Index(cfg, "{")+1 : strings.LastIndex(cfg, "}")]
	var got []byte
	for _, m := range regexp.MustCompile(`0x([0-9a-f]{2})`).FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseUint(m[1], 16, 8)
		got = append(got, byte(n))
	}
	want := udpFrame(gwMAC, podAMAC, podAIP, podBIP, 40000, sinkPort)
	if string(got) != string(want) {
		t.Errorf("config bytes\n%x\nwant\n%x", got, want)
	}
	if strings.Contains(body, ",\n}") || strings.HasSuffix(strings.TrimSpace(body), ",") {
		t.Errorf("trailing comma in config:\n%s", cfg)
	}
}

func TestParseSockperf(t *testing.T) {
	out := "sockperf: \x1b[2;35m====> avg-latency=24.853 (std-dev=7.114)\x1b[0m\n" +
		"sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0\n" +
		"sockperf: \x1b[2;35mTotal 51290 observations\x1b[0m; each percentile contains 512.90 observations\n" +
		"sockperf: ---> <MAX> observation =  798.210\n" +
		"sockperf: ---> percentile 99.999 =  717.820\n" +
		"sockperf: ---> percentile 99.990 =  428.614\n" +
		"sockperf: ---> percentile 99.900 =   41.396\n" +
		"sockperf: ---> percentile 99.000 =   32.032\n" +
		"sockperf: ---> percentile 90.000 =   26.885\n" +
		"sockperf: ---> percentile 50.000 =   25.217\n" +
		"sockperf: ---> <MIN> observation =    5.528\n"
	var l Latency
	if err := parseSockperf(out, &l); err != nil {
		t.Fatal(err)
	}
	want := Latency{P50us: 25.217, P99us: 32.032, P999us: 41.396, AvgUs: 24.853, MinUs: 5.528, MaxUs: 798.21, Samples: 51290}
	if l != want {
		t.Errorf("got %+v\nwant %+v", l, want)
	}
	if err := parseSockperf("sockperf: Test ended\n", &l); err == nil {
		t.Error("no error for output without percentiles")
	}
}

func TestLastCounters(t *testing.T) {
	out := "counters\nport rna rx_frames=1 tx_frames=2\nreason forwarded 5\n" +
		"counters\nport rna rx_frames=10 tx_frames=20 xsk_rx_dropped=3\nworker 0 forwarded=7 dropped=1\nreason forwarded 7\nreason ip_options 1\n"
	c, err := lastCounters(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"port.rna.rx_frames": 10, "port.rna.tx_frames": 20, "port.rna.xsk_rx_dropped": 3,
		"worker.0.forwarded": 7, "worker.0.dropped": 1,
		"reason.forwarded": 7, "reason.ip_options": 1,
	}
	if len(c) != len(want) {
		t.Errorf("got %v, want %v", c, want)
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %d, want %d", k, c[k], v)
		}
	}
	if _, err := lastCounters("nothing here"); err == nil {
		t.Error("no error without a counters block")
	}
}

func TestStatOf(t *testing.T) {
	s := statOf([]float64{5, 1, 3, 2})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 5 || s.N != 4 {
		t.Errorf("statOf = %+v", *s)
	}
	if statOf(nil) != nil {
		t.Error("statOf(nil) != nil")
	}
}
