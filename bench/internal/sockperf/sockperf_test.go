package sockperf

import "testing"

func TestParse(t *testing.T) {
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
	if err := Parse(out, &l); err != nil {
		t.Fatal(err)
	}
	want := Latency{P50us: 25.217, P99us: 32.032, P999us: 41.396, AvgUs: 24.853, MinUs: 5.528, MaxUs: 798.21, Samples: 51290}
	if l != want {
		t.Errorf("got %+v\nwant %+v", l, want)
	}
	if err := Parse("sockperf: Test ended\n", &l); err == nil {
		t.Error("no error for output without percentiles")
	}
}
