package hardening_test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringnet/ringnet/internal/topo"
)

var soakFor = flag.Duration("soak", 8*time.Second, "how long TestSoak runs (docs/reliability.md records a 10m run)")

// TestSoak runs mixed traffic through ringnetd while its Services and
// NetworkPolicy change every second (the cluster file rewritten and
// reloaded with SIGHUP): a client opens TCP connections to a ClusterIP
// whose backends come and go, and which policy always admits it to; a
// second pod tries the backends directly while a policy admitting it
// comes and goes; a third pair pings. It checks that no reload fails,
// the admitted client never fails, the toggled policy is seen both ways,
// ringnetd's memory is flat and its connection table bounded.
//
//	go test ./test/hardening/ -run TestSoak -soak 10m -v
func TestSoak(t *testing.T) {
	n := newNode(t)
	client, other, w1, w2 := n.addPod(t, "client"), n.addPod(t, "other"), n.addPod(t, "w1"), n.addPod(t, "w2")
	for _, p := range []struct {
		p    *pod
		name string
	}{{w1, "w1"}, {w2, "w2"}} {
		ln, err := topo.Greeter(p.p.ns.Name, p.name, 8080)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	vip := netip.MustParseAddrPort("10.96.0.10:80")
	file := func(round int) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, "nodes:\n- name: a\n  address: %s\n  podCIDRs: [%s, %q]\n", nodeAddr, podCIDR4, podCIDR6)
		// The backends: both, w1 only, w2 only, in turn.
		eps := [][]*pod{{w1, w2}, {w1}, {w2}}[round%3]
		fmt.Fprintf(&b, "services:\n- name: web\n  clusterIPs: [%s]\n  ports: [{port: %d, targetPort: 8080}]\n  endpoints:\n", vip.Addr(), vip.Port())
		for _, e := range eps {
			fmt.Fprintf(&b, "  - {address: %s, node: a}\n", e.ip4)
		}
		if round%2 == 1 {
			b.WriteString("  sessionAffinity: ClientIP\n")
		}
		b.WriteString("pods:\n")
		for _, p := range []struct {
			p      *pod
			labels string
		}{{client, "{role: client}"}, {other, "{role: other}"}, {w1, "{app: web}"}, {w2, "{app: web}"}} {
			fmt.Fprintf(&b, "- {namespace: soak, name: %s, labels: %s, addresses: [%s]}\n", p.p.id, p.labels, p.p.ip4)
		}
		b.WriteString("policies:\n- namespace: soak\n  name: web-from-clients\n  spec:\n    podSelector: {matchLabels: {app: web}}\n" +
			"    ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 8080}]}]\n")
		// Admitted for 4 s, refused for 4 s: longer than a connection
		// attempt (3 s), so that some fail outright.
		if round%8 >= 4 {
			b.WriteString("- namespace: soak\n  name: web-from-other\n  spec:\n    podSelector: {matchLabels: {app: web}}\n" +
				"    ingress: [{from: [{podSelector: {matchLabels: {role: other}}}]}]\n")
		}
		return []byte(b.String())
	}
	if err := n.d.ReplaceCluster(file(0)); err != nil {
		t.Fatal(err)
	}
	if err := topo.WaitGreeting(client.ns.Name, vip, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if pl, err := n.api.Policy(context.Background()); err != nil || !pl.Enforcing || len(pl.Policies) != 1 {
		t.Fatalf("policy not enforced after the reload: %+v, %v\n%s", pl, err, n.logTail(20))
	}

	ctx, cancel := context.WithTimeout(context.Background(), *soakFor)
	defer cancel()
	var wg sync.WaitGroup
	var clientOK, clientFailed, otherOK, otherRefused atomic.Int64
	var firstClientErr atomic.Value
	wg.Go(func() { // the admitted client, through the service
		for ctx.Err() == nil {
			s, err := topo.Dial(client.ns.Name, vip)
			if err != nil {
				if ctx.Err() == nil {
					clientFailed.Add(1)
					firstClientErr.CompareAndSwap(nil, err.Error())
				}
				continue
			}
			s.Conn.Close()
			clientOK.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() { // the other pod, straight to a backend, admitted half the time (4 s on, 4 s off)
		for ctx.Err() == nil {
			s, err := topo.Dial(other.ns.Name, netip.AddrPortFrom(w1.ip4, 8080))
			if err != nil {
				otherRefused.Add(1)
				continue
			}
			s.Conn.Close()
			otherOK.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
	})
	pingOut := make(chan string, 1)
	wg.Go(func() { // ping between two pods no policy selects
		// -w: ping stops itself at the end of the run and prints its summary.
		secs := strconv.Itoa(max(1, int(*soakFor/time.Second)))
		out, _ := topo.Output(context.Background(), client.ns.Name, "ping", "-q", "-i", "0.05", "-W", "1", "-w", secs, other.ip4.String())
		pingOut <- out
	})

	var rss []uint64
	var tracked []int
	reloads := 0
	tick := time.NewTicker(time.Second)
	for round := 1; ctx.Err() == nil; round++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
			if err := n.d.ReplaceCluster(file(round)); err != nil {
				t.Errorf("reload %d: %v", round, err)
			}
			reloads++
			rss = append(rss, kBLines(t, fmt.Sprintf("/proc/%d/status", n.pid()))["VmRSS"])
			st, err := n.api.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			tracked = append(tracked, st.Tables["conntrack"])
		}
	}
	tick.Stop()
	wg.Wait()
	out := <-pingOut

	t.Logf("%v: %d reloads; client through the service: %d connections, %d failed; other pod to w1: %d admitted, %d refused",
		*soakFor, reloads, clientOK.Load(), clientFailed.Load(), otherOK.Load(), otherRefused.Load())
	t.Logf("VmRSS once a second, MiB: %s", mibList(rss))
	t.Logf("connections tracked once a second: %v", tracked)
	if i := strings.Index(out, "packets transmitted"); i >= 0 {
		t.Logf("ping: %s", strings.TrimSpace(out[i:]))
	}
	if !n.d.Running() {
		t.Fatalf("ringnetd died:\n%s", n.logTail(30))
	}
	if clientFailed.Load() > 0 {
		t.Errorf("the client, which policy always admits, failed %d of %d connections to the service (first: %v)",
			clientFailed.Load(), clientFailed.Load()+clientOK.Load(), firstClientErr.Load())
	}
	if clientOK.Load() == 0 {
		t.Error("the client made no connection")
	}
	if reloads >= 8 && (otherOK.Load() == 0 || otherRefused.Load() == 0) {
		t.Errorf("the policy admitting the other pod came and went %d times, but it was admitted %d and refused %d times",
			reloads/8, otherOK.Load(), otherRefused.Load())
	}
	if !strings.Contains(out, " 0% packet loss") && !strings.Contains(out, " 1% packet loss") {
		t.Errorf("pings between pods no policy selects were lost:\n%s", out)
	}
	// Memory: the end of the run against its second second (the first
	// has the start-up's garbage). The connection and affinity tables are
	// allocated whole but touched as they fill, so their pages (12.6 MiB
	// at the default sizes) may become resident during the run; beyond
	// them RSS must stay flat.
	if len(rss) >= 4 {
		base, last := rss[1], rss[len(rss)-1]
		if last > base+20<<20 {
			t.Errorf("VmRSS grew from %.1f to %.1f MiB", float64(base)/(1<<20), float64(last)/(1<<20))
		}
	}
	for _, n := range tracked {
		if n > 65536 {
			t.Errorf("%d connections tracked, above the table's capacity", n)
		}
	}
}
