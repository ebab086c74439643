package cluster

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/policy"
)

// policiesFile has every part of the namespaces, pods and policies
// sections, on twoNodes.
const policiesFile = twoNodes + `
namespaces:
- {name: prod, labels: {team: a}}
- name: dev
pods:
- {name: web-1, labels: {app: web}, addresses: [10.244.1.2], ports: [{name: http, port: 8080}, {name: metrics, port: 9090, protocol: TCP}]}
- {namespace: default, name: client, labels: {role: client}, addresses: [10.244.1.3]}
- {name: other, labels: {role: other}, addresses: [10.244.2.3]}
- {namespace: prod, name: batch-7, labels: {app.kubernetes.io/name: batch, tier: ""}, addresses: [10.244.2.4]}
- {namespace: dev, name: dns, labels: {app: dns}, addresses: [10.244.2.5], ports: [{name: dns, port: 5353, protocol: UDP}]}
policies:
- name: allow-web
  spec:
    podSelector: {matchLabels: {app: web}}
    policyTypes: [Ingress]
    ingress:
    - from:
      - podSelector: {matchLabels: {role: client}}
      - namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a, b]}]}
      - ipBlock: {cidr: 192.168.0.0/16, except: [192.168.50.0/24]}
      ports: [{port: http}, {protocol: TCP, port: 9000, endPort: 9010}]
- namespace: prod
  name: egress-dns-only
  spec:
    podSelector: {}
    policyTypes: [Egress]
    egress:
    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}, podSelector: {matchLabels: {app: dns}}}]
      ports: [{protocol: UDP, port: dns}]
- namespace: dev
  name: allow-all-in
  spec:
    podSelector: {matchExpressions: [{key: app, operator: Exists}]}
    ingress: [{}]
`

func TestParsePolicies(t *testing.T) {
	c, err := Parse([]byte(policiesFile))
	if err != nil {
		t.Fatal(err)
	}
	sel := func(kv ...string) *netpol.LabelSelector {
		s := netpol.LabelSelector{MatchLabels: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			s.MatchLabels[kv[i]] = kv[i+1]
		}
		return &s
	}
	wantNS := []netpol.Namespace{{Name: "prod", Labels: map[string]string{"team": "a"}}, {Name: "dev"}}
	wantPods := []netpol.Pod{
		{Namespace: "default", Name: "web-1", Labels: map[string]string{"app": "web"}, IPs: addrs("10.244.1.2"),
			Ports: []netpol.NamedPort{{Name: "http", Proto: policy.TCP, Port: 8080}, {Name: "metrics", Proto: policy.TCP, Port: 9090}}},
		{Namespace: "default", Name: "client", Labels: map[string]string{"role": "client"}, IPs: addrs("10.244.1.3")},
		{Namespace: "default", Name: "other", Labels: map[string]string{"role": "other"}, IPs: addrs("10.244.2.3")},
		{Namespace: "prod", Name: "batch-7", Labels: map[string]string{"app.kubernetes.io/name": "batch", "tier": ""}, IPs: addrs("10.244.2.4")},
		{Namespace: "dev", Name: "dns", Labels: map[string]string{"app": "dns"}, IPs: addrs("10.244.2.5"),
			Ports: []netpol.NamedPort{{Name: "dns", Proto: policy.UDP, Port: 5353}}},
	}
	wantPols := []netpol.NetworkPolicy{
		{Namespace: "default", Name: "allow-web", PodSelector: *sel("app", "web"), PolicyTypes: []string{"Ingress"},
			Ingress: []netpol.Rule{{
				Peers: []netpol.Peer{
					{PodSelector: sel("role", "client")},
					{NamespaceSelector: &netpol.LabelSelector{MatchExpressions: []netpol.Requirement{{Key: "team", Operator: "In", Values: []string{"a", "b"}}}}},
					{IPBlock: &netpol.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.50.0/24"}}},
				},
				Ports: []netpol.PolicyPort{{Port: &netpol.PortRef{Name: "http"}}, {Protocol: "TCP", Port: &netpol.PortRef{Num: 9000}, EndPort: 9010}},
			}}},
		{Namespace: "prod", Name: "egress-dns-only", PolicyTypes: []string{"Egress"},
			Egress: []netpol.Rule{{
				Peers: []netpol.Peer{{NamespaceSelector: sel("kubernetes.io/metadata.name", "dev"), PodSelector: sel("app", "dns")}},
				Ports: []netpol.PolicyPort{{Protocol: "UDP", Port: &netpol.PortRef{Name: "dns"}}},
			}}},
		{Namespace: "dev", Name: "allow-all-in", PodSelector: netpol.LabelSelector{MatchExpressions: []netpol.Requirement{{Key: "app", Operator: "Exists"}}},
			Ingress: []netpol.Rule{{}}},
	}
	if diff := cmp.Diff(wantNS, c.Namespaces); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPods, c.Pods, cmpAddr); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPols, c.Policies); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
}

// TestParsePoliciesRoundTrip: MarshalJSON writes the namespaces, pods and
// policies so that Parse reads them back as they were, as JSON and YAML.
func TestParsePoliciesRoundTrip(t *testing.T) {
	roundTrip(t, []byte(policiesFile))
}

// TestPoliciesCompile: the file's policies, compiled by agent/netpol, allow
// and deny what the NetworkPolicy API says they do: the conversion from
// the file loses nothing and invents nothing.
func TestPoliciesCompile(t *testing.T) {
	c, err := Parse([]byte(policiesFile))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := netpol.Compile(1, nil, c.Namespaces, c.Pods, c.Policies)
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Problems) > 0 {
		t.Fatalf("a file that validates compiled with problems: %v", comp.Problems)
	}
	// allowed is both verdicts a connection's first packet gets: egress
	// for its source, ingress for its destination (a pod no policy
	// selects, or an address that is no pod, allows).
	allowed := func(src, dst netip.Addr, proto uint8, port uint16) bool {
		side := func(dir policy.Direction, local, peer netip.Addr) bool {
			id, ok := comp.ByIP[local]
			if !ok {
				return true
			}
			return comp.Table.Verdict(policy.Key{Local: id, Peer: comp.ByIP[peer], PeerCIDR: comp.Table.CIDR(peer),
				Port: port, Proto: proto, Dir: dir}).Allowed()
		}
		return side(policy.Egress, src, dst) && side(policy.Ingress, dst, src)
	}
	var (
		web    = addr("10.244.1.2")
		client = addr("10.244.1.3")
		other  = addr("10.244.2.3")
		batch  = addr("10.244.2.4") // prod: team=a
		dns    = addr("10.244.2.5") // dev
		lan    = addr("192.168.60.7")
		node   = addr("192.168.50.1") // in the except
	)
	tests := []struct {
		name     string
		src, dst netip.Addr
		proto    uint8
		port     uint16
		want     bool
	}{
		{"client to web on http, a named port", client, web, policy.TCP, 8080, true},
		{"client to web on another port", client, web, policy.TCP, 8081, false},
		{"client to web in the port range", client, web, policy.TCP, 9005, true},
		{"client to web past the range", client, web, policy.TCP, 9011, false},
		{"client to web, UDP on http's number", client, web, policy.UDP, 8080, false},
		{"a pod whose labels the podSelector does not pick", other, web, policy.TCP, 8080, false},
		{"web is isolated for ingress only: it connects out", web, other, policy.TCP, 80, true},
		{"a pod of a namespace the namespaceSelector picks", batch, web, policy.TCP, 8080, false}, // prod's egress allows DNS only
		{"an address in the ipBlock", lan, web, policy.TCP, 9000, true},
		{"an address in the ipBlock's except", node, web, policy.TCP, 9000, false},
		{"prod's egress: to dev's dns on the named UDP port", batch, dns, policy.UDP, 5353, true},
		{"prod's egress: dns on TCP", batch, dns, policy.TCP, 5353, false},
		{"prod's egress: anything else", batch, other, policy.TCP, 80, false},
		{"dev's ingress [{}]: everything into pods with app", client, dns, policy.TCP, 1, true},
		{"a pod no policy selects, both ways", other, client, policy.TCP, 22, true},
	}
	for _, tt := range tests {
		if got := allowed(tt.src, tt.dst, tt.proto, tt.port); got != tt.want {
			t.Errorf("%s: %v -> %v %d/%d allowed = %v, want %v", tt.name, tt.src, tt.dst, tt.proto, tt.port, got, tt.want)
		}
	}
	// The namespaceSelector team In (a, b) picks prod's pods: allowed
	// once prod's egress policy is gone.
	c.Policies = c.Policies[:1]
	if comp, err = netpol.Compile(2, comp, c.Namespaces, c.Pods, c.Policies); err != nil {
		t.Fatal(err)
	}
	if !allowed(batch, web, policy.TCP, 8080) {
		t.Errorf("prod/batch-7 -> web: the namespaceSelector team In (a, b) does not pick prod (labels team: a)")
	}
	if allowed(dns, web, policy.TCP, 8080) {
		t.Errorf("dev/dns -> web: allowed, but dev has no team label")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	file := func(s string) string { return twoNodes + s }
	pol := func(spec string) string { return twoNodes + "policies:\n- name: p\n  spec: " + spec }
	tests := []struct {
		name, file string
		want       []string
	}{
		// Shape.
		{"unknown pod key", file("pods:\n- {name: a, addresses: [10.244.1.2], ips: [10.244.1.2]}"),
			[]string{`pods[0]: unknown key "ips"; the keys here are namespace, name, labels, addresses, ports`}},
		{"a number for a label value", file("pods:\n- {name: a, labels: {version: 2}, addresses: [10.244.1.2]}"),
			[]string{`pods[0].labels["version"]: got the number 2, want a string (put it in quotes)`}},
		{"labels as a list", file("namespaces:\n- {name: a, labels: [team]}"),
			[]string{`namespaces[0].labels: got a list, want a mapping`}},
		{"spec key in the wrong case", pol("{podselector: {}}"),
			[]string{`policies[0].spec: unknown key "podselector"; did you mean "podSelector"?`}},
		{"to in an ingress rule", pol("{podSelector: {}, ingress: [{to: []}]}"),
			[]string{`policies[0].spec.ingress[0]: unknown key "to"; the keys here are from, ports`}},
		{"unknown peer key", pol("{podSelector: {}, egress: [{to: [{cidr: 10.0.0.0/8}]}]}"),
			[]string{`policies[0].spec.egress[0].to[0]: unknown key "cidr"; the keys here are podSelector, namespaceSelector, ipBlock`}},
		{"port neither a number nor a name", pol("{podSelector: {}, ingress: [{ports: [{port: [80]}]}]}"),
			[]string{`policies[0].spec.ingress[0].ports[0].port: got a list, want a number or a name`}},
		{"port a fraction", pol("{podSelector: {}, ingress: [{ports: [{port: 80.5}]}]}"),
			[]string{`policies[0].spec.ingress[0].ports[0].port: 80.5 is not a whole number in range`}},

		// Values that do not parse, and what the model cannot hold.
		{"pod values", file("pods:\n- {name: a, addresses: [10.244.1.0/24], ports: [{name: http, port: 70000, protocol: tcp}]}"),
			[]string{
				`pods[0].addresses[0]: "10.244.1.0/24" is a prefix; give one address, without a length, such as 10.244.1.5`,
				`pods[0].ports[0].protocol: unknown protocol "tcp"; choose TCP, UDP or SCTP (did you mean TCP?)`,
				`pods[0].ports[0].port: 70000 is not a port; give 1 to 65535`,
			}},
		{"no spec", file("policies:\n- {name: p}"),
			[]string{"policies[0].spec: missing; give the policy's spec as Kubernetes writes it: podSelector, policyTypes, ingress, egress"}},
		{"no podSelector", pol("{policyTypes: [Ingress]}"),
			[]string{"policies[0].spec.podSelector: missing; select the pods of the policy's namespace it applies to, such as {matchLabels: {app: web}}, or give {} for all of them"}},
		{"policy port values", pol("{podSelector: {}, egress: [{ports: [{protocol: ICMP}, {port: 0}, {port: 80, endPort: 65536}]}]}"),
			[]string{
				`policies[0].spec.egress[0].ports[0].protocol: unknown protocol "ICMP"; choose TCP, UDP or SCTP`,
				"policies[0].spec.egress[0].ports[1].port: 0 is not a port; give 1 to 65535, or the name of a container port",
				"policies[0].spec.egress[0].ports[2].endPort: 65536 is not a port; give 1 to 65535",
			}},
		{"ipBlock without cidr", pol("{podSelector: {}, ingress: [{from: [{ipBlock: {except: [10.1.0.0/16]}}]}]}"),
			[]string{"policies[0].spec.ingress[0].from[0].ipBlock.cidr: missing; give the block's CIDR, such as 10.0.0.0/8"}},

		// Validation: namespaces.
		{"namespaces", file("namespaces:\n- {name: Prod}\n- {labels: {a: b}}\n- {name: dev}\n- {name: dev, labels: {kubernetes.io/metadata.name: prod}}"),
			[]string{
				`namespaces[0].name: "Prod" is not a namespace name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)`,
				"namespaces[1].name: missing; give the namespace's name",
				`namespaces[3].name: "dev" is also namespaces[2].name; list each namespace once`,
				`namespaces[3].labels: kubernetes.io/metadata.name is "prod", but Kubernetes sets it to the namespace's name, "dev"; remove it (every namespace has it)`,
			}},
		{"labels", file("namespaces:\n- {name: a, labels: {'': x, 'team a': x, 'Example.com/x': z, 'app.kubernetes.io/name': '-web', ok: ''}}"),
			[]string{
				`namespaces[0].labels: "" is not a label key; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, after an optional DNS subdomain and '/' (such as app.kubernetes.io/name)`,
				`namespaces[0].labels: "Example.com/x" is not a label key; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, after an optional DNS subdomain and '/' (such as app.kubernetes.io/name)`,
				`namespaces[0].labels: "-web", the value of "app.kubernetes.io/name", is not a label value; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or nothing`,
				`namespaces[0].labels: "team a" is not a label key; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, after an optional DNS subdomain and '/' (such as app.kubernetes.io/name)`,
			}},

		// Validation: pods.
		{"pod names", file("pods:\n- {addresses: [10.244.1.2]}\n- {name: Web_1, namespace: a.b, addresses: [10.244.1.3]}\n- {name: c, addresses: [10.244.1.4]}\n- {name: c, namespace: default, addresses: [10.244.1.5]}"),
			[]string{
				"pods[0].name: missing; give the pod's name (its metadata.name)",
				`pods[1].namespace: "a.b" is not a namespace name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)`,
				`pods[1].name: "Web_1" is not a pod name; use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes requires)`,
				`pods[3].name: "c" is also pods[2].name in namespace "default"; a pod's namespace and name must be unique`,
			}},
		{"pod addresses", file("pods:\n- {name: a}\n- {name: b, addresses: [10.244.1.2, 10.244.1.3, 10.9.0.1, 'fe80::1']}\n- {name: c, addresses: ['::ffff:10.244.2.2', 10.244.1.2]}"),
			[]string{
				"pods[0].addresses: missing; give the pod's addresses (its status.podIPs: at most one IPv4 and one IPv6, such as [10.244.1.5])",
				"pods[1].addresses[1]: a second IPv4 address (pods[1].addresses[0] is 10.244.1.2); a pod has at most one per family",
				"pods[1].addresses[2]: a second IPv4 address (pods[1].addresses[0] is 10.244.1.2); a pod has at most one per family",
				"pods[1].addresses[3]: fe80::1 is not a unicast address a pod may have; give the pod's address, from its node's pod CIDR",
				"pods[2].addresses[0]: ::ffff:10.244.2.2 is IPv4-mapped IPv6; write it as IPv4 (10.244.2.2)",
				"pods[2].addresses[1]: 10.244.1.2 is also pods[1].addresses[0] (pod default/b); every pod needs its own addresses",
			}},
		{"pod address outside the pod CIDRs", file("pods:\n- {name: a, addresses: [10.9.0.1]}"),
			[]string{"pods[0].addresses[0]: 10.9.0.1 is in no node's pod CIDR; give the pod's address, from its node's pod CIDR (an address outside the pod CIDRs is no pod's: match it with an ipBlock)"}},
		{"pod ports", file("pods:\n- {name: a, addresses: [10.244.1.2], ports: [{port: 80}, {name: HTTP, port: 80}, {name: http-alt-service-x, port: 81}, {name: web, port: 82}, {name: web, protocol: UDP}]}"),
			[]string{
				"pods[0].ports[0].name: missing; give the container port's name (only named ports matter to policies, whose ports name them)",
				`pods[0].ports[1].name: "HTTP" is not a port name; use at most 15 lowercase letters, digits and '-', with a letter, no '-' at either end or beside another (an IANA service name, as Kubernetes requires)`,
				`pods[0].ports[2].name: "http-alt-service-x" is not a port name; use at most 15 lowercase letters, digits and '-', with a letter, no '-' at either end or beside another (an IANA service name, as Kubernetes requires)`,
				`pods[0].ports[4].name: "web" is also pods[0].ports[3].name; port names must be unique within a pod`,
				"pods[0].ports[4].port: missing; give the container port's number, 1 to 65535",
			}},

		// Validation: policies.
		{"policy names", file("policies:\n- {spec: {podSelector: {}}}\n- {name: p, namespace: -x, spec: {podSelector: {}}}\n- {name: q, spec: {podSelector: {}}}\n- {name: q, spec: {podSelector: {}}}"),
			[]string{
				"policies[0].name: missing; give the policy's name (its metadata.name)",
				`policies[1].namespace: "-x" is not a namespace name; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label, as Kubernetes requires)`,
				`policies[3].name: "q" is also policies[2].name in namespace "default"; a policy's namespace and name must be unique`,
			}},
		{"selector operators", pol("{podSelector: {matchExpressions: [{key: app, operator: in, values: [web]}, {key: app, operator: In}, {key: tier, operator: Exists, values: [x]}]}}"),
			[]string{
				`policies[0].spec.podSelector.matchExpressions[0].operator: unknown operator "in"; use In, NotIn, Exists or DoesNotExist`,
				"policies[0].spec.podSelector.matchExpressions[1].values: operator In needs values; list them, or use Exists or DoesNotExist",
				"policies[0].spec.podSelector.matchExpressions[2].values: operator Exists takes no values; remove values",
			}},
		{"selector labels", pol("{podSelector: {}, egress: [{to: [{namespaceSelector: {matchLabels: {'a b': c}}, podSelector: {matchExpressions: [{key: 'x/y/z', operator: NotIn, values: [ok, 'not ok']}]}}]}]}"),
			[]string{
				`policies[0].spec.egress[0].to[0].podSelector.matchExpressions[0].key: "x/y/z" is not a label key; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, after an optional DNS subdomain and '/' (such as app.kubernetes.io/name)`,
				`policies[0].spec.egress[0].to[0].podSelector.matchExpressions[0].values[1]: "not ok" is not a label value; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or nothing`,
				`policies[0].spec.egress[0].to[0].namespaceSelector.matchLabels: "a b" is not a label key; use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, after an optional DNS subdomain and '/' (such as app.kubernetes.io/name)`,
			}},
		{"empty selector key", pol("{podSelector: {matchLabels: {'': x}}}"),
			[]string{"policies[0].spec.podSelector.matchLabels: empty key"}},
		{"policy types", pol("{podSelector: {}, policyTypes: [Ingress, egress]}"),
			[]string{`policies[0].spec.policyTypes[1]: "egress" is neither Ingress nor Egress`}},
		{"peers", pol("{podSelector: {}, ingress: [{from: [{}, {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}"),
			[]string{
				"policies[0].spec.ingress[0].from[0]: a peer needs a podSelector, a namespaceSelector or an ipBlock",
				"policies[0].spec.ingress[0].from[1]: ipBlock cannot go with podSelector or namespaceSelector; make it a peer of its own",
			}},
		{"CIDRs", pol("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8, 11.0.0.0/16, x]}}]}]}"),
			[]string{
				`policies[0].spec.egress[0].to[0].ipBlock.cidr: "10.0.0.0/33" is not a CIDR such as 10.0.0.0/16 or fd00::/64`,
				`policies[0].spec.egress[0].to[1].ipBlock.except[0]: "10.0.0.0/8" is not strictly inside cidr 10.0.0.0/8; each except is a part of cidr, with a longer prefix`,
				`policies[0].spec.egress[0].to[1].ipBlock.except[1]: "11.0.0.0/16" is not strictly inside cidr 10.0.0.0/8; each except is a part of cidr, with a longer prefix`,
				`policies[0].spec.egress[0].to[1].ipBlock.except[2]: "x" is not a CIDR such as 10.0.1.0/24`,
			}},
		{"ports", pol("{podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}, {endPort: 90}, {port: 90, endPort: 80}, {port: HTTP}, {port: '8080'}]}]}"),
			[]string{
				`policies[0].spec.ingress[0].ports[0].endPort: endPort 90 with the named port "http"; endPort needs a numeric port`,
				"policies[0].spec.ingress[0].ports[1].endPort: endPort 90 without a port; give port, the first of the range, or remove endPort",
				"policies[0].spec.ingress[0].ports[2].endPort: endPort 80 is below port 90; give the last port of the range, at least port",
				`policies[0].spec.ingress[0].ports[3].port: "HTTP" is neither a port number (1-65535) nor a port name (up to 15 lowercase letters, digits and single inner hyphens, with a letter)`,
				`policies[0].spec.ingress[0].ports[4].port: "8080" is neither a port number (1-65535) nor a port name (up to 15 lowercase letters, digits and single inner hyphens, with a letter)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.file))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v %+v %+v", c.Namespaces, c.Pods, c.Policies)
			}
			if diff := cmp.Diff(tt.want, problemList(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
