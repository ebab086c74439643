package stats

import (
	"testing"

	"github.com/ringnet/ringnet/fastpath/packet"
)

func TestNamesUnique(t *testing.T) {
	seen := map[string]Reason{}
	for _, r := range Reasons() {
		n := r.String()
		if n == "" || n == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("reasons %d and %d share the name %q", o, r, n)
		}
		seen[n] = r
	}
	if got := Malformed(packet.BadIHL).String(); got != "malformed_"+packet.BadIHL.String() {
		t.Errorf("Malformed(BadIHL) = %q", got)
	}
	if Forwarded.IsDrop() || ARPReply.IsDrop() || NDReply.IsDrop() || !TTLExpired.IsDrop() || !Malformed(packet.BadIHL).IsDrop() {
		t.Error("IsDrop wrong")
	}
	if Reason(NumReasons).String() != "unknown" {
		t.Error("out-of-range reason has a name")
	}
}

func TestPublish(t *testing.T) {
	var c Counters
	c.Inc(NoRoute)
	c.Add(Forwarded, 41)
	c.Inc(Forwarded)
	if c.Load(Forwarded) != 0 {
		t.Error("counts visible before Publish")
	}
	c.Publish()
	if c.Load(Forwarded) != 42 || c.Load(NoRoute) != 1 || c.Load(TTLExpired) != 0 {
		t.Errorf("after Publish: forwarded %d no_route %d", c.Load(Forwarded), c.Load(NoRoute))
	}
	if n := testing.AllocsPerRun(100, func() { c.Inc(Forwarded); c.Publish() }); n != 0 {
		t.Errorf("Inc+Publish allocates %v times", n)
	}
}
