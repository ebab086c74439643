package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ringnet/ringnet/agent/api"
)

func TestFlowFilter(t *testing.T) {
	denied := api.Flow{Verdict: "denied", SrcPod: "shop/client", DstPod: "db/pg", Policies: []string{"db/only-api"}}
	outside := api.Flow{Verdict: "allowed", SrcPod: "shop/client"}
	unknown := api.Flow{Verdict: "allowed"}
	for _, tc := range []struct {
		verdict, pod, ns string
		want             [3]bool // denied, outside, unknown
	}{
		{"", "", "", [3]bool{true, true, true}},
		{"denied", "", "", [3]bool{true, false, false}},
		{"", "client", "", [3]bool{true, true, false}},
		{"", "shop/client", "", [3]bool{true, true, false}},
		{"", "db/client", "", [3]bool{false, false, false}},
		{"", "pg", "", [3]bool{true, false, false}},
		{"", "", "db", [3]bool{true, false, false}},
		{"", "", "sho", [3]bool{false, false, false}},
		{"allowed", "", "shop", [3]bool{false, true, false}},
	} {
		keep := flowFilter(tc.verdict, tc.pod, tc.ns)
		if got := [3]bool{keep(denied), keep(outside), keep(unknown)}; got != tc.want {
			t.Errorf("--verdict %q --pod %q --namespace %q: %v, want %v", tc.verdict, tc.pod, tc.ns, got, tc.want)
		}
	}
}

func TestFlowRowPods(t *testing.T) {
	var b bytes.Buffer
	tw := newTable(&b)
	flowRow(tw, api.Flow{Time: time.Date(2026, 11, 21, 10, 0, 0, 0, time.Local), Verdict: "denied", Protocol: "TCP",
		Src: "10.244.1.4:40000", SrcPod: "shop/client", Dst: "10.244.2.9:5432", DstPod: "db/pg", Policies: []string{"db/only-api", "db/deny"}})
	tw.Flush()
	want := "10:00:00.000  denied (db/only-api,db/deny)  TCP  10.244.1.4:40000 shop/client  10.244.2.9:5432 db/pg  -  -\n"
	if got := b.String(); got != want {
		t.Errorf("row:\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(b.String(), "db/only-api") {
		t.Error("the isolating policies are not shown")
	}
}
