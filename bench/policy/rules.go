package main

// The rule sets: N ingress rules applying to the receiver pod, written
// once as NetworkPolicies for ringnet's cluster file and once as the
// iptables rules the kernel path is given, rule for rule.

import (
	"fmt"
	"net/netip"
	"strings"
)

// rulesPerPolicy is how many ingress rules each NetworkPolicy holds: N
// rules are N/rulesPerPolicy policies.
const rulesPerPolicy = 10

// A rule allows UDP to the receiver pod's ports Lo to Hi from one peer:
// the sender pod (Sender), or the address Peer, where no pod is.
type rule struct {
	Sender bool
	Peer   netip.Addr
	Lo, Hi uint16
}

// otherPeers is where the peers of the rules that name no pod lie: one
// address each, none of them a node's or a pod's.
var otherPeers = netip.MustParsePrefix("172.16.0.0/12")

// otherPortBase is the first port of the rules that allow the sender on
// another port than the sink's.
const otherPortBase = 20000

// ruleSet is n rules (a multiple of rulesPerPolicy) of which only the last
// allows the load: from the sender to the sink ports lo to hi. Of the
// others, the last of every ten allows the sender on another port
// (otherPortBase + its index), and the rest allow the sink ports from an
// address of otherPeers (its start + the index). So every frame of the
// load is checked against a table of n rules, and iptables, which tries
// them in order, walks all n.
func ruleSet(n int, lo, hi uint16) []rule {
	rs := make([]rule, n)
	for i := range rs[:n-1] {
		if i%rulesPerPolicy == rulesPerPolicy-1 {
			p := uint16(otherPortBase + i)
			rs[i] = rule{Sender: true, Lo: p, Hi: p}
			continue
		}
		a := otherPeers.Addr().As4()
		a[2], a[3] = byte(i>>8), byte(i)
		rs[i] = rule{Peer: netip.AddrFrom4(a), Lo: lo, Hi: hi}
	}
	rs[n-1] = rule{Sender: true, Lo: lo, Hi: hi}
	return rs
}

// Pod labels the policies select by.
const (
	sinkLabel   = "app: sink"
	senderLabel = "role: sender"
)

// clusterPolicies writes the cluster file's pods and policies for rules:
// the two pods with their labels and addresses, and len(rules)/10
// NetworkPolicies selecting the receiver for ingress, ten rules each, in
// order.
func clusterPolicies(rules []rule, send, recv netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pods:\n- {namespace: default, name: rx, labels: {%s}, addresses: [%s]}\n", sinkLabel, recv)
	fmt.Fprintf(&b, "- {namespace: default, name: tx, labels: {%s}, addresses: [%s]}\n", senderLabel, send)
	b.WriteString("policies:\n")
	for i, r := range rules {
		if i%rulesPerPolicy == 0 {
			fmt.Fprintf(&b, "- namespace: default\n  name: p%d\n  spec:\n    podSelector: {matchLabels: {%s}}\n    policyTypes: [Ingress]\n    ingress:\n",
				i/rulesPerPolicy, sinkLabel)
		}
		peer := fmt.Sprintf("{podSelector: {matchLabels: {%s}}}", senderLabel)
		if !r.Sender {
			peer = fmt.Sprintf("{ipBlock: {cidr: %s/32}}", r.Peer)
		}
		port := fmt.Sprintf("{protocol: UDP, port: %d}", r.Lo)
		if r.Hi != r.Lo {
			port = fmt.Sprintf("{protocol: UDP, port: %d, endPort: %d}", r.Lo, r.Hi)
		}
		fmt.Fprintf(&b, "    - {from: [%s], ports: [%s]}\n", peer, port)
	}
	return b.String()
}

// iptablesRules writes the kernel's equivalent for iptables-restore: the
// filter table's FORWARD chain with, as a Kubernetes node has it first,
// ESTABLISHED and RELATED traffic accepted; then one rule per rule, in
// order; then whatever else is for the receiver dropped, as a policy that
// selects it isolates it.
func iptablesRules(rules []rule, send, recv netip.Addr) string {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	b.WriteString("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	for _, r := range rules {
		src := send
		if !r.Sender {
			src = r.Peer
		}
		ports := fmt.Sprint(r.Lo)
		if r.Hi != r.Lo {
			ports = fmt.Sprintf("%d:%d", r.Lo, r.Hi)
		}
		fmt.Fprintf(&b, "-A FORWARD -s %s/32 -d %s/32 -p udp -m udp --dport %s -j ACCEPT\n", src, recv, ports)
	}
	fmt.Fprintf(&b, "-A FORWARD -d %s/32 -j DROP\nCOMMIT\n", recv)
	return b.String()
}

// The rows of the FORWARD chain that iptablesRules writes, as counters
// name them: the ESTABLISHED rule, the n rules (the last of them, the one
// allowing the load, apart), and the DROP.
const (
	rowEstablished = "established"
	rowOthers      = "other_rules"
	rowAllow       = "allow"
	rowDrop        = "drop"
)

// rowName names row i (from 0) of a FORWARD chain of n rules.
func rowName(i, n int) string {
	switch {
	case i == 0:
		return rowEstablished
	case i < n:
		return rowOthers
	case i == n:
		return rowAllow
	}
	return rowDrop
}
