package trafgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var testFlow = Flow{
	SrcMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}, DstMAC: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee},
	Src: netip.MustParseAddr("10.244.0.10"), Dst: netip.MustParseAddr("10.244.0.11"),
	SrcPort: 40000, DstPort: 9000,
}

func TestFrame(t *testing.T) {
	f := testFlow.Frame()
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

func TestConfigBytes(t *testing.T) {
	cfg := testFlow.Config()
	body := cfg[strings.Index(cfg, "{")+1 : strings.LastIndex(cfg, "}")]
	var got []byte
	for _, m := range regexp.MustCompile(`0x([0-9a-f]{2})`).FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseUint(m[1], 16, 8)
		got = append(got, byte(n))
	}
	if want := testFlow.Frame(); string(got) != string(want) {
		t.Errorf("config bytes\n%x\nwant\n%x", got, want)
	}
	if strings.Contains(body, ",\n}") || strings.HasSuffix(strings.TrimSpace(body), ",") {
		t.Errorf("trailing comma in config:\n%s", cfg)
	}
}
