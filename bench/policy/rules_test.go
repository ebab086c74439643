package main

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ringnet/ringnet/agent/cluster"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/policy"
)

var (
	testSend = netip.MustParseAddr("10.244.1.2")
	testRecv = netip.MustParseAddr("10.244.2.2")
)

const testLo, testHi = 8960, 9215

func TestRuleSet(t *testing.T) {
	for _, n := range []int{10, 100, 10000} {
		rs := ruleSet(n, testLo, testHi)
		if len(rs) != n {
			t.Fatalf("ruleSet(%d): %d rules", n, len(rs))
		}
		if want := (rule{Sender: true, Lo: testLo, Hi: testHi}); rs[n-1] != want {
			t.Errorf("ruleSet(%d): last rule %+v, want the load's %+v", n, rs[n-1], want)
		}
		peers := map[netip.Addr]bool{}
		senders := 0
		for i, r := range rs[:n-1] {
			switch {
			case r.Sender && r.Lo == r.Hi && r.Lo == otherPortBase+uint16(i):
				senders++
			case r.Sender:
				t.Errorf("ruleSet(%d): rule %d %+v allows the sender on the load's ports", n, i, r)
			case !otherPeers.Contains(r.Peer) || peers[r.Peer] || r.Lo != testLo || r.Hi != testHi:
				t.Errorf("ruleSet(%d): rule %d %+v: want a new address of %s, the sink ports", n, i, r, otherPeers)
			}
			peers[r.Peer] = true
		}
		if want := n/rulesPerPolicy - 1; senders != want {
			t.Errorf("ruleSet(%d): %d rules for the sender on other ports, want %d", n, senders, want)
		}
	}
}

// TestRowNames checks that the rows iptablesRules writes are the ones
// rowName names.
func TestRowNames(t *testing.T) {
	const n = 20
	lines := strings.Split(strings.TrimSpace(iptablesRules(ruleSet(n, testLo, testHi), testSend, testRecv)), "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A FORWARD ") {
			rows = append(rows, l)
		}
	}
	if len(rows) != n+2 {
		t.Fatalf("%d rules in FORWARD, want %d:\n%s", len(rows), n+2, strings.Join(lines, "\n"))
	}
	want := map[string]string{
		rowEstablished: "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		rowAllow:       fmt.Sprintf("-s %s/32 -d %s/32 -p udp -m udp --dport %d:%d -j ACCEPT", testSend, testRecv, testLo, testHi),
		rowDrop:        fmt.Sprintf("-d %s/32 -j DROP", testRecv),
		rowOthers:      " -j ACCEPT",
	}
	for i, row := range rows {
		if name := rowName(i, n); !strings.HasSuffix(row, want[name]) {
			t.Errorf("row %d (%s) is %q, want it to end in %q", i, name, row, want[name])
		}
	}
}

// TestRulesAgree compiles the cluster file's policies as ringnetd does
// (agent/cluster.Parse, agent/netpol.Compile) and checks that the verdict
// table and the iptables rules, read by a first-match reference model,
// decide alike for packets from the sender, the rules' other peers and an
// address no rule names, to the load's ports, the others' and ports no
// rule allows.
func TestRulesAgree(t *testing.T) {
	const n = 100
	rs := ruleSet(n, testLo, testHi)
	file := "nodes:\n- {name: n1, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: n2, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24]}\n" +
		clusterPolicies(rs, testSend, testRecv)
	c, err := cluster.Parse([]byte(file))
	if err != nil {
		t.Fatalf("the cluster file does not parse: %v", err)
	}
	rules := 0
	for _, p := range c.Policies {
		rules += len(p.Ingress)
	}
	if len(c.Policies) != n/rulesPerPolicy || rules != n {
		t.Fatalf("%d policies of %d rules in all, want %d of %d", len(c.Policies), rules, n/rulesPerPolicy, n)
	}
	comp, err := netpol.Compile(1, nil, c.Namespaces, c.Pods, c.Policies)
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Problems) > 0 {
		t.Fatalf("compile problems: %v", comp.Problems)
	}
	ringnet := func(src netip.Addr, port uint16) bool {
		k := policy.Key{Local: comp.ByIP[testRecv], Peer: comp.ByIP[src], PeerCIDR: comp.Table.CIDR(src), Port: port, Proto: 17, Dir: policy.Ingress}
		return comp.Table.Verdict(k).Allowed()
	}
	kernel := firstMatch(t, iptablesRules(rs, testSend, testRecv))

	srcs := []netip.Addr{testSend, rs[0].Peer, rs[n-2].Peer, netip.MustParseAddr("172.15.255.255"), netip.MustParseAddr("10.244.1.3")}
	ports := []uint16{testLo, sinkPort, testHi, testLo - 1, testHi + 1, denyPort, otherPortBase + 9, otherPortBase + 10}
	allowed := 0
	for _, src := range srcs {
		for _, port := range ports {
			r, k := ringnet(src, port), kernel(src, port)
			if r != k {
				t.Errorf("UDP from %v to port %d: ringnet allows %v, iptables %v", src, port, r, k)
			}
			if r {
				allowed++
			}
		}
	}
	// The sender to the three sink ports and to rule 9's port, and each
	// other peer to the three sink ports.
	if allowed != 4+3+3 {
		t.Errorf("%d of the packets allowed, want 10", allowed)
	}
}

// firstMatch reads iptablesRules' FORWARD chain and returns the verdict of
// the first rule that matches a UDP packet from src to the receiver's
// port (a packet of a connection not yet established).
func firstMatch(t *testing.T, rules string) func(src netip.Addr, port uint16) bool {
	t.Helper()
	re := regexp.MustCompile(`^-A FORWARD (?:-s (\S+)/32 )?-d (\S+)/32 (?:-p udp -m udp --dport (\d+)(?::(\d+))? )?-j (ACCEPT|DROP)$`)
	type row struct {
		src    netip.Addr // invalid: any
		lo, hi int
		accept bool
	}
	var rows []row
	for _, l := range strings.Split(rules, "\n") {
		if !strings.HasPrefix(l, "-A FORWARD") || strings.Contains(l, "--ctstate") {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil || m[2] != testRecv.String() {
			t.Fatalf("rule %q: not of the form the reference model reads", l)
		}
		r := row{lo: 0, hi: 65535, accept: m[5] == "ACCEPT"}
		if m[1] != "" {
			r.src = netip.MustParseAddr(m[1])
		}
		if m[3] != "" {
			r.lo, _ = strconv.Atoi(m[3])
			r.hi = r.lo
			if m[4] != "" {
				r.hi, _ = strconv.Atoi(m[4])
			}
		}
		rows = append(rows, r)
	}
	return func(src netip.Addr, port uint16) bool {
		for _, r := range rows {
			if (!r.src.IsValid() || r.src == src) && int(port) >= r.lo && int(port) <= r.hi {
				return r.accept
			}
		}
		return true // the chain's policy
	}
}

func TestParseRules(t *testing.T) {
	got, err := parseRules("1000, 10,100,10")
	if err != nil || fmt.Sprint(got) != "[10 100 1000]" {
		t.Errorf("parseRules = %v, %v; want [10 100 1000]", got, err)
	}
	for _, bad := range []string{"", "5", "15", "x", "0", "2000000"} {
		if _, err := parseRules(bad); err == nil {
			t.Errorf("parseRules(%q) took it", bad)
		}
	}
}
