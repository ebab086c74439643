package flowlog

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/api"
	"github.com/ringnet/ringnet/fastpath/pipeline"
	"github.com/ringnet/ringnet/tables/conntrack"
)

// fakeSource hands out the events queued in it.
type fakeSource struct {
	queued []pipeline.FlowEvent
	lost   uint64
}

func (f *fakeSource) ReadFlows(buf []pipeline.FlowEvent) []pipeline.FlowEvent {
	buf = append(buf, f.queued...)
	f.queued = nil
	return buf
}

func (f *fakeSource) FlowsLost() uint64 { return f.lost }

func event(v pipeline.FlowVerdict, sport uint16, nat conntrack.NAT, port uint16) pipeline.FlowEvent {
	return pipeline.FlowEvent{
		Time:    time.Date(2026, 11, 21, 10, 0, 0, int(sport), time.UTC),
		Tuple:   conntrack.KeyFrom(netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.96.0.10"), sport, 80, conntrack.ProtoTCP),
		NAT:     nat,
		Verdict: v,
		Port:    port,
	}
}

func readLines(t *testing.T, path string) []api.Flow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []api.Flow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var fl api.Flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		out = append(out, fl)
	}
	return out
}

func TestRecorder(t *testing.T) {
	src := &fakeSource{lost: 3}
	path := filepath.Join(t.TempDir(), "flows.log")
	r, err := New(src, Options{Path: path, Keep: 3, Ports: func() map[uint16]string { return map[uint16]string{0: "rn0"} }})
	if err != nil {
		t.Fatal(err)
	}
	backend := conntrack.NAT{Dst: netip.MustParseAddr("10.244.2.3").As16(), DstPort: 8080}
	src.queued = []pipeline.FlowEvent{
		event(pipeline.FlowAllowed, 1, backend, 0),
		event(pipeline.FlowDenied, 2, conntrack.NAT{}, pipeline.NoFlowPort),
		event(pipeline.FlowNoBackend, 3, conntrack.NAT{}, 0),
		event(pipeline.FlowAllowed, 4, conntrack.NAT{Src: netip.MustParseAddr("192.168.50.1").As16(), SrcPort: 61000}, 0),
	}
	r.Drain(nil)
	lines := readLines(t, path)
	if len(lines) != 4 {
		t.Fatalf("%d lines in the file, want 4", len(lines))
	}
	want0 := api.Flow{Time: src0Time(), Verdict: "allowed", Protocol: "TCP", Src: "10.244.1.2:1", Dst: "10.96.0.10:80",
		TranslatedDst: "10.244.2.3:8080", Interface: "rn0"}
	if !reflect.DeepEqual(lines[0], want0) {
		t.Errorf("first line %+v, want %+v", lines[0], want0)
	}
	if lines[1].Interface != "" || lines[1].TranslatedDst != "" || lines[1].Verdict != "denied" {
		t.Errorf("second line %+v", lines[1])
	}
	if lines[3].TranslatedSrc != "192.168.50.1:61000" || lines[3].TranslatedDst != "" {
		t.Errorf("masqueraded line %+v", lines[3])
	}
	// Memory keeps the latest 3, oldest first; filters and limits.
	got := r.Recent(0, "")
	if len(got.Flows) != 3 || got.Flows[0].Src != "10.244.1.2:2" || got.Flows[2].Src != "10.244.1.2:4" {
		t.Errorf("Recent: %+v", got.Flows)
	}
	if got.Lost != 3 || got.Total["allowed"] != 2 || got.Total["denied"] != 1 || got.Total["no_backend"] != 1 {
		t.Errorf("Recent totals %v, lost %d", got.Total, got.Lost)
	}
	if d := r.Recent(0, "denied"); len(d.Flows) != 1 || d.Flows[0].Verdict != "denied" {
		t.Errorf("Recent(denied): %+v", d.Flows)
	}
	if l := r.Recent(1, ""); len(l.Flows) != 1 || l.Flows[0].Src != "10.244.1.2:4" {
		t.Errorf("Recent(1): %+v", l.Flows)
	}
}

func src0Time() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 1, time.UTC) }

// TestRotate: the file never grows past MaxBytes; the previous one is
// kept as PATH.1, and nothing is lost across the rotation.
func TestRotate(t *testing.T) {
	src := &fakeSource{}
	path := filepath.Join(t.TempDir(), "flows.log")
	r, err := New(src, Options{Path: path, MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint16(30) {
		src.queued = append(src.queued, event(pipeline.FlowAllowed, i, conntrack.NAT{}, pipeline.NoFlowPort))
	}
	r.Drain(nil)
	for _, p := range []string{path, path + ".1"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1000 {
			t.Errorf("%s has %d bytes, more than MaxBytes 1000", p, st.Size())
		}
	}
	last := readLines(t, path)
	if len(last) == 0 || last[len(last)-1].Src != "10.244.1.2:29" {
		t.Errorf("the current file does not end with the last flow: %+v", last)
	}
	prev := readLines(t, path+".1")
	if n := len(prev) + len(last); n > 30 || prev[len(prev)-1].Src != "10.244.1.2:"+strconv.Itoa(29-len(last)) {
		t.Errorf("the rotated file does not continue into the current one: %d + %d lines", len(prev), len(last))
	}
}

// TestDescribe: with a describer, records name their pods (the backend's
// for a translated destination) and a denied one the isolating policies.
func TestDescribe(t *testing.T) {
	src := &fakeSource{}
	var asked []string
	r, err := New(src, Options{Describe: func(s, d netip.Addr, denied bool) (string, string, []string) {
		asked = append(asked, s.String()+">"+d.String())
		if denied {
			return "default/a", "default/w", []string{"default/allow-web"}
		}
		return "default/a", "default/w", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	backend := conntrack.NAT{Dst: netip.MustParseAddr("10.244.2.3").As16(), DstPort: 8080}
	src.queued = []pipeline.FlowEvent{event(pipeline.FlowAllowed, 1, backend, 0), event(pipeline.FlowDenied, 2, conntrack.NAT{}, 0)}
	r.Drain(nil)
	got := r.Recent(0, "").Flows
	if len(got) != 2 || got[0].SrcPod != "default/a" || got[0].DstPod != "default/w" || got[0].Policies != nil ||
		!reflect.DeepEqual(got[1].Policies, []string{"default/allow-web"}) {
		t.Errorf("described flows: %+v", got)
	}
	if want := []string{"10.244.1.2>10.244.2.3", "10.244.1.2>10.96.0.10"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("asked about %v, want %v (the backend, not the service address)", asked, want)
	}
}
