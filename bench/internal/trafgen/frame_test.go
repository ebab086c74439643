package trafgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

// TestConfigNewFlows checks that NewFlows puts trafgen's drnd() over
// exactly the source port and the destination port's low byte, and keeps
// every other byte of the frame.
func TestConfigNewFlows(t *testing.T) {
	f := testFlow
	f.NewFlows = true
	cfg := f.Config()
	body := cfg[strings.Index(cfg, "{")+1 : strings.LastIndex(cfg, "}")]
	var got []string
	for _, e := range strings.Split(body, ",") {
		got = append(got, strings.TrimSpace(e))
	}
	frame := f.Frame()
	var want []string
	for i := 0; i < len(frame); i++ {
		switch i {
		case 34:
			want = append(want, "drnd(2)")
			i++
		case 37:
			want = append(want, "drnd()")
		default:
			want = append(want, "0x"+strconv.FormatUint(uint64(frame[i])|0x100, 16)[1:])
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("config elements\n%q\nwant\n%q\nconfig:\n%s", got, want, cfg)
	}
	if lo, hi := f.DstPorts(); lo != 8960 || hi != 9215 {
		t.Errorf("DstPorts() = %d, %d; want 8960, 9215 (9000's high byte)", lo, hi)
	}
	if lo, hi := testFlow.DstPorts(); lo != 9000 || hi != 9000 {
		t.Errorf("one flow: DstPorts() = %d, %d; want 9000, 9000", lo, hi)
	}
	if got := f.NewFlowShare(65536); got != 1.0/256 {
		t.Errorf("NewFlowShare(65536) = %v, want 1/256", got)
	}
	if got := testFlow.NewFlowShare(65536); got != 1 {
		t.Errorf("one flow: NewFlowShare = %v, want 1", got)
	}
}

// TestTrafgenReadsNewFlows has trafgen itself read the NewFlows config
// and send one frame on the loopback of a fresh network namespace: its
// verbose listing must show random bytes at the source port's offsets and
// the destination port's low byte, and nowhere else.
func TestTrafgenReadsNewFlows(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace)")
	}
	for _, tool := range []string{"trafgen", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
	f := testFlow
	f.NewFlows = true
	conf := filepath.Join(t.TempDir(), "new-flows.trafgen")
	if err := os.WriteFile(conf, []byte(f.Config()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unshare", "--net", "sh", "-c",
		"ip link set lo up && trafgen --cpus 1 --no-sock-mem -V --dev lo -n 1 --conf "+conf).CombinedOutput()
	if err != nil {
		t.Fatalf("trafgen: %v\n%s", err, out)
	}
	var offs []string
	for _, m := range regexp.MustCompile(`rnd\d+ off (\d+)`).FindAllStringSubmatch(string(out), -1) {
		offs = append(offs, m[1])
	}
	if got := strings.Join(offs, ","); got != "34,35,37" {
		t.Errorf("trafgen randomizes offsets %q, want 34,35,37 (source port, destination port's low byte)\n%s", got, out)
	}
	if !strings.Contains(string(out), "len 60 ") {
		t.Errorf("trafgen did not read a 60-byte frame:\n%s", out)
	}
}
