package cluster

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/tables/route"
	"sigs.k8s.io/yaml"
)

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestDefault(t *testing.T) {
	c, err := Parse(Default)
	if err != nil {
		t.Fatalf("Parse(Default): %v", err)
	}
	want := &Cluster{
		Tunnel: Tunnel{Mode: ModeVXLAN, VXLANPort: 8472, VNI: 1},
		Nodes: []Node{
			{Name: "node-a", Address: pfx("192.168.50.1/24"), PodCIDRs: []netip.Prefix{pfx("10.244.1.0/24"), pfx("fd00:244:1::/64")}, Backend: BackendRingnet},
			{Name: "node-b", Address: pfx("192.168.50.2/24"), PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24"), pfx("fd00:244:2::/64")}, Backend: BackendRingnet},
			{Name: "node-c", Address: pfx("192.168.50.3/24"), PodCIDRs: []netip.Prefix{pfx("10.244.3.0/24")}, Backend: BackendFlannel, VtepMAC: mac("02:42:c0:a8:32:03")},
		},
	}
	if diff := cmp.Diff(want, c, cmpPrefix); diff != "" {
		t.Errorf("Parse(Default) (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(good, Default, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(%s): %v", good, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("nodes: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if want := "cluster file " + bad + ": nodes: none given; list every node of the cluster, this one included"; err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %q", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
}

const twoNodes = `
nodes:
- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}
- {name: b, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24]}
`

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name, file string
		want       Tunnel
	}{
		{"none", twoNodes, Tunnel{Mode: ModeVXLAN, VXLANPort: 8472, VNI: 1}},
		{"crossSubnet", "tunnel: {mode: crossSubnet}" + twoNodes, Tunnel{Mode: ModeCrossSubnet, CrossSubnetEncap: ModeVXLAN, VXLANPort: 8472, VNI: 1}},
		{"crossSubnet ipip", "tunnel: {mode: crossSubnet, crossSubnetEncap: ipip}" + twoNodes, Tunnel{Mode: ModeCrossSubnet, CrossSubnetEncap: ModeIPIP, VXLANPort: 8472, VNI: 1}},
		{"port and vni", "tunnel: {mode: ipip, vxlanPort: 4789, vni: 42}" + twoNodes, Tunnel{Mode: ModeIPIP, VXLANPort: 4789, VNI: 42}},
		{"zero means default", "tunnel: {vxlanPort: 0, vni: 0}" + twoNodes, Tunnel{Mode: ModeVXLAN, VXLANPort: 8472, VNI: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Tunnel); diff != "" {
				t.Errorf("tunnel (-want +got):\n%s", diff)
			}
			for _, n := range c.Nodes {
				if n.Backend != BackendRingnet {
					t.Errorf("node %s: backend %q, want ringnet", n.Name, n.Backend)
				}
			}
		})
	}
}

// TestParseJSON: the file may be JSON, and MarshalJSON writes what Parse
// reads back, as JSON or (through sigs.k8s.io/yaml) YAML.
func TestParseJSON(t *testing.T) {
	roundTrip(t, Default)
}

// roundTrip parses file, writes the result as JSON and as YAML, and
// checks that Parse reads each back as it was.
func roundTrip(t *testing.T, file []byte) {
	t.Helper()
	c, err := Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"json": j, "yaml": y} {
		got, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: Parse(%s): %v", name, data, err)
		}
		if diff := cmp.Diff(c, got, cmpPrefix, cmpAddr); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", name, diff)
		}
	}
}

// problemList is the problems in a Parse or Validate error, one string each.
func problemList(err error) []string {
	var p problems
	if errors.As(err, &p) {
		var s []string
		for _, e := range p {
			s = append(s, e.Error())
		}
		return s
	}
	return []string{err.Error()}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // every problem, in order
	}{
		// The file's shape.
		{"top level list", "- a", []string{"cluster file: got a list, want a mapping"}},
		{"unknown top-level key", "networkPolicies: []" + twoNodes, []string{`cluster file: unknown key "networkPolicies"; the keys here are tunnel, nodes, services, namespaces, pods, policies`}},
		{"unknown node key", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], mtu: 1500}",
			[]string{`nodes[0]: unknown key "mtu"; the keys here are name, address, podCIDRs, backend, vtepMAC`}},
		{"key in the wrong case", "nodes:\n- {name: a, address: 192.168.50.1/24, podcidrs: [10.244.1.0/24]}",
			[]string{`nodes[0]: unknown key "podcidrs"; did you mean "podCIDRs"?`}},
		{"unknown tunnel key", "tunnel: {port: 8472}" + twoNodes, []string{`tunnel: unknown key "port"; the keys here are mode, crossSubnetEncap, vxlanPort, vni`}},
		{"number for a string", "nodes:\n- {name: 1e3, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].name: got the number 1000, want a string (put it in quotes)"}},
		{"boolean for a string", "tunnel: {mode: yes}" + twoNodes,
			[]string{"tunnel.mode: got true (a boolean; YAML reads yes, no, on and off as booleans), want a string (put it in quotes)"}},
		{"string for a number", "tunnel: {vni: one}" + twoNodes, []string{`tunnel.vni: got the string "one", want a whole number`}},
		{"fraction", "tunnel: {vni: 1.5}" + twoNodes, []string{"tunnel.vni: 1.5 is not a whole number in range"}},
		{"scalar for a list", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: 10.244.1.0/24}",
			[]string{`nodes[0].podCIDRs: got the string "10.244.1.0/24", want a list`}},
		{"list for a mapping", "tunnel: [vxlan]" + twoNodes, []string{"tunnel: got a list, want a mapping"}},

		// Values that do not parse.
		{"port out of range", "tunnel: {vxlanPort: 70000}" + twoNodes,
			[]string{"tunnel.vxlanPort: 70000 is not a UDP port; give 1 to 65535, the Flannel nodes' if there are any (Flannel's default is 8472)"}},
		{"negative port", "tunnel: {vxlanPort: -1}" + twoNodes,
			[]string{"tunnel.vxlanPort: -1 is not a UDP port; give 1 to 65535, the Flannel nodes' if there are any (Flannel's default is 8472)"}},
		{"vni out of range", "tunnel: {vni: 16777216}" + twoNodes,
			[]string{"tunnel.vni: 16777216 is out of range; a VNI is 1 to 16777215, the Flannel nodes' if there are any (Flannel's default is 1)"}},
		{"address without length", "nodes:\n- {name: a, address: 192.168.50.1, podCIDRs: [10.244.1.0/24]}",
			[]string{`nodes[0].address: "192.168.50.1" has no subnet length; write it as 192.168.50.1/24 or whatever the length of the node's underlay subnet is`}},
		{"address not an address", "nodes:\n- {name: a, address: node-a.example, podCIDRs: [10.244.1.0/24]}",
			[]string{`nodes[0].address: "node-a.example" is not an IPv4 address with a subnet length, such as 192.168.50.1/24`}},
		{"pod CIDR not a CIDR", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/33]}",
			[]string{`nodes[0].podCIDRs[0]: "10.244.1.0/33" is not a CIDR; write it as address/length, such as 10.244.1.0/24`}},
		{"MAC not a MAC", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], vtepMAC: 02:42}",
			[]string{`nodes[0].vtepMAC: "02:42" is not a MAC; write it as six hex bytes, such as 02:42:c0:a8:32:03`}},

		// Validation.
		{"no nodes", "tunnel: {mode: vxlan}", []string{"nodes: none given; list every node of the cluster, this one included"}},
		{"unknown mode", "tunnel: {mode: geneve}" + twoNodes, []string{`tunnel.mode: unknown mode "geneve"; choose vxlan, ipip, direct or crossSubnet`}},
		{"mode in the wrong case", "tunnel: {mode: VXLAN}" + twoNodes,
			[]string{`tunnel.mode: unknown mode "VXLAN"; choose vxlan, ipip, direct or crossSubnet (did you mean vxlan?)`}},
		{"unknown encap", "tunnel: {mode: crossSubnet, crossSubnetEncap: direct}" + twoNodes,
			[]string{`tunnel.crossSubnetEncap: unknown encapsulation "direct"; choose vxlan or ipip`}},
		{"encap without crossSubnet", "tunnel: {mode: vxlan, crossSubnetEncap: ipip}" + twoNodes,
			[]string{"tunnel.crossSubnetEncap: only used with mode crossSubnet (mode is vxlan); remove it, or set mode: crossSubnet"}},
		{"missing name", "nodes:\n- {address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].name: missing; give the node's name as Kubernetes knows it (kubectl get nodes)"}},
		{"bad name", "nodes:\n- {name: Node_A, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}",
			[]string{`nodes[0].name: "Node_A" is not a node name; use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes requires)`}},
		{"name with an empty label", "nodes:\n- {name: a..b, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}",
			[]string{`nodes[0].name: "a..b" is not a node name; use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes requires)`}},
		{"duplicate name", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: a, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24]}",
			[]string{`nodes[1].name: "a" is also nodes[0].name; node names must be unique`}},
		{"missing address", "nodes:\n- {name: a, podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].address: missing; give the node's underlay IPv4 address with its subnet's length, such as 192.168.50.1/24"}},
		{"IPv6 address", "nodes:\n- {name: a, address: 'fd00::1/64', podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].address: fd00::1/64 is IPv6; ringnet's underlay is IPv4 for now: give the node's underlay IPv4 address with its subnet's length, such as 192.168.50.1/24"}},
		{"IPv4-mapped address", "nodes:\n- {name: a, address: '::ffff:192.168.50.1/120', podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].address: ::ffff:192.168.50.1/120 is IPv4-mapped IPv6; write it as IPv4 (192.168.50.1/24)"}},
		{"loopback address", "nodes:\n- {name: a, address: 127.0.0.1/8, podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].address: 127.0.0.1/8 is not a unicast address; give the node's underlay IPv4 address with its subnet's length, such as 192.168.50.1/24"}},
		{"subnet address", "nodes:\n- {name: a, address: 192.168.50.0/24, podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].address: 192.168.50.0/24 is the subnet's own address, not a node's; give the node's underlay IPv4 address with its subnet's length, such as 192.168.50.1/24"}},
		{"broadcast address", "nodes:\n- {name: a, address: 192.168.50.255/24, podCIDRs: [10.244.1.0/24]}",
			[]string{"nodes[0].address: 192.168.50.255/24 is the subnet's broadcast address, not a node's; give the node's underlay IPv4 address with its subnet's length, such as 192.168.50.1/24"}},
		{"duplicate address", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: b, address: 192.168.50.1/24, podCIDRs: [10.244.2.0/24]}",
			[]string{`nodes[1].address: 192.168.50.1 is also nodes[0].address (node "a"); every node needs its own address`}},
		{"one subnet, two lengths", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: b, address: 192.168.50.2/16, podCIDRs: [10.244.2.0/24]}",
			[]string{`nodes[1].address: 192.168.50.2/16 and nodes[0].address 192.168.50.1/24 (node "a") overlap with different lengths; nodes on one subnet give its one length`}},
		{"unknown backend", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], backend: calico}",
			[]string{`nodes[0].backend: unknown backend "calico"; choose ringnet or flannel`}},
		{"backend in the wrong case", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], backend: Flannel, vtepMAC: 02:00:00:00:00:01}",
			[]string{`nodes[0].backend: unknown backend "Flannel"; choose ringnet or flannel (did you mean flannel?)`}},
		{"missing pod CIDRs", "nodes:\n- {name: a, address: 192.168.50.1/24}",
			[]string{"nodes[0].podCIDRs: missing; give the node's pod CIDRs (at most one IPv4 and one IPv6, such as [10.244.1.0/24])"}},
		{"pod CIDR host bits", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.5/24]}",
			[]string{"nodes[0].podCIDRs[0]: 10.244.1.5/24 has host bits set; did you mean 10.244.1.0/24?"}},
		{"IPv4-mapped pod CIDR", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: ['::ffff:10.244.1.0/120']}",
			[]string{"nodes[0].podCIDRs[0]: ::ffff:10.244.1.0/120 is IPv4-mapped IPv6; write it as IPv4 (10.244.1.0/24)"}},
		{"two IPv4 pod CIDRs", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24, 'fd00::/64', 10.245.1.0/24]}",
			[]string{"nodes[0].podCIDRs[2]: a second IPv4 pod CIDR (nodes[0].podCIDRs[0] is 10.244.1.0/24); a node has at most one IPv4 and one IPv6"}},
		{"two IPv6 pod CIDRs", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: ['fd00:1::/64', 'fd00:2::/64']}",
			[]string{"nodes[0].podCIDRs[1]: a second IPv6 pod CIDR (nodes[0].podCIDRs[0] is fd00:1::/64); a node has at most one IPv4 and one IPv6"}},
		{"overlapping pod CIDRs", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.0.0/16]}\n- {name: b, address: 192.168.50.2/24, podCIDRs: [10.244.1.0/24]}",
			[]string{`nodes[1].podCIDRs[0]: 10.244.1.0/24 overlaps nodes[0].podCIDRs[0] 10.244.0.0/16 (node "a"); give every node its own pod CIDR`}},
		{"same IPv6 pod CIDR", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24, 'fd00::/64']}\n- {name: b, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24, 'fd00::/64']}",
			[]string{`nodes[1].podCIDRs[1]: fd00::/64 overlaps nodes[0].podCIDRs[1] fd00::/64 (node "a"); give every node its own pod CIDR`}},
		{"pod CIDR over a node address", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [192.168.0.0/16]}\n- {name: b, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24]}",
			[]string{
				`nodes[0].podCIDRs[0]: 192.168.0.0/16 contains nodes[0].address 192.168.50.1 (node "a"); pod CIDRs and node addresses must not overlap`,
				`nodes[0].podCIDRs[0]: 192.168.0.0/16 contains nodes[1].address 192.168.50.2 (node "b"); pod CIDRs and node addresses must not overlap`,
			}},
		{"flannel without vtepMAC", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], backend: flannel}",
			[]string{"nodes[0].vtepMAC: missing; a flannel node needs the MAC of its flannel.1 device (the VtepMAC in the node's flannel.alpha.coreos.com/backend-data annotation)"}},
		{"flannel without IPv4", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: ['fd00::/64'], backend: flannel, vtepMAC: 02:00:00:00:00:01}",
			[]string{
				"nodes[0].podCIDRs[0]: fd00::/64 is IPv6; ringnet reaches flannel nodes over IPv4 VXLAN (flannel.1) only: remove it",
				"nodes[0].podCIDRs: a flannel node needs an IPv4 pod CIDR (the node's spec.podCIDR)",
			}},
		{"long MAC", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], vtepMAC: '00:00:00:00:fe:80:00:00'}",
			[]string{"nodes[0].vtepMAC: 00:00:00:00:fe:80:00:00 is not an Ethernet MAC (6 bytes, such as 02:42:c0:a8:32:03)"}},
		{"multicast MAC", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], vtepMAC: '01:00:5e:00:00:01'}",
			[]string{"nodes[0].vtepMAC: 01:00:5e:00:00:01 is a multicast MAC; a VTEP's MAC is unicast (the first byte even)"}},
		{"zero MAC", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], vtepMAC: '00:00:00:00:00:00'}",
			[]string{"nodes[0].vtepMAC: 00:00:00:00:00:00 is all zeros; give the VTEP's MAC"}},
		{"duplicate MAC", "nodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24], vtepMAC: '02:00:00:00:00:01'}\n- {name: b, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24], vtepMAC: '02:00:00:00:00:01'}",
			[]string{`nodes[1].vtepMAC: 02:00:00:00:00:01 is also nodes[0].vtepMAC (node "a"); every VTEP needs its own MAC`}},
		{"direct across subnets", "tunnel: {mode: direct}\nnodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: b, address: 192.168.60.2/24, podCIDRs: [10.244.2.0/24]}",
			[]string{`tunnel.mode: direct needs the ringnet nodes on one subnet, but nodes[0] "a" (192.168.50.1/24) and nodes[1] "b" (192.168.60.2/24) are on different subnets; use mode crossSubnet (direct within a subnet, encapsulated across)`}},
		{"several problems", "tunnel: {mode: geneve}\nnodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.5/24]}",
			[]string{
				`tunnel.mode: unknown mode "geneve"; choose vxlan, ipip, direct or crossSubnet`,
				"nodes[0].podCIDRs[0]: 10.244.1.5/24 has host bits set; did you mean 10.244.1.0/24?",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.file))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if diff := cmp.Diff(tt.want, problemList(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseYAMLErrors: syntax errors are the YAML library's, whose words
// may change from version to version; they say where.
func TestParseYAMLErrors(t *testing.T) {
	for file, want := range map[string]string{
		"nodes: [":               "line 1",
		"nodes: []\nnodes: []":   `line 2: key "nodes" already set`,
		"nodes:\n- name: a\n\tx": "line 3",
	} {
		_, err := Parse([]byte(file))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", file, err, want)
		}
	}
}

func TestParseOK(t *testing.T) {
	tests := []struct{ name, file string }{
		{"direct on one subnet, flannel elsewhere", "tunnel: {mode: direct}\nnodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: b, address: 192.168.50.2/24, podCIDRs: [10.244.2.0/24]}\n- {name: c, address: 192.168.60.3/24, podCIDRs: [10.244.3.0/24], backend: flannel, vtepMAC: '02:00:00:00:00:03'}"},
		{"crossSubnet across subnets", "tunnel: {mode: crossSubnet}\nnodes:\n- {name: a, address: 192.168.50.1/24, podCIDRs: [10.244.1.0/24]}\n- {name: b, address: 192.168.60.2/24, podCIDRs: [10.244.2.0/24]}"},
		{"subdomain names", "nodes:\n- {name: ip-10-0-0-1.ec2.internal, address: 10.0.0.1/24, podCIDRs: [10.244.1.0/24]}"},
		{"IPv6 only pods", "nodes:\n- {name: a, address: 10.0.0.1/24, podCIDRs: ['fd00:1::/64']}"},
		{"point-to-point /31 and host /32", "nodes:\n- {name: a, address: 10.0.0.0/31, podCIDRs: [10.244.1.0/24]}\n- {name: b, address: 10.0.1.1/32, podCIDRs: [10.244.2.0/24]}"},
		{"ringnet node with vtepMAC", "nodes:\n- {name: a, address: 10.0.0.1/24, podCIDRs: [10.244.1.0/24], vtepMAC: 02-00-00-00-00-01}"},
		{"json", `{"nodes": [{"name": "a", "address": "10.0.0.1/24", "podCIDRs": ["10.244.1.0/24"]}]}`},
		{"null is absent", "tunnel: null\nnodes:\n- {name: a, address: 10.0.0.1/24, podCIDRs: [10.244.1.0/24], backend: null}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.file)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestValidateModel: a model built by hand (as a Kubernetes source will)
// is checked as strictly as a file; SetDefaults fills what may be empty.
func TestValidateModel(t *testing.T) {
	c := &Cluster{Nodes: []Node{{Name: "a", Address: pfx("10.0.0.1/24"), PodCIDRs: []netip.Prefix{pfx("10.244.1.0/24")}}}}
	want := []string{
		"tunnel.mode: missing; choose vxlan, ipip, direct or crossSubnet",
		"tunnel.vxlanPort: missing; give VXLAN's UDP port, the Flannel nodes' if there are any (Flannel's default is 8472)",
		"tunnel.vni: 0 is out of range; a VNI is 1 to 16777215, the Flannel nodes' if there are any (Flannel's default is 1)",
		"nodes[0].backend: missing; choose ringnet or flannel",
	}
	if diff := cmp.Diff(want, problemList(c.Validate())); diff != "" {
		t.Errorf("before SetDefaults (-want +got):\n%s", diff)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("after SetDefaults: %v", err)
	}
	c.Nodes[0].PodCIDRs = append(c.Nodes[0].PodCIDRs, netip.Prefix{})
	c.Tunnel.Mode = ModeCrossSubnet
	want = []string{
		"tunnel.crossSubnetEncap: missing; choose vxlan or ipip",
		"nodes[0].podCIDRs[1]: missing or not a CIDR; write it as address/length, such as 10.244.1.0/24",
	}
	if diff := cmp.Diff(want, problemList(c.Validate())); diff != "" {
		t.Errorf("zero prefix, crossSubnet without encap (-want +got):\n%s", diff)
	}
}

func TestNode(t *testing.T) {
	c, err := Parse(Default)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := c.Node("node-b")
	if !ok || n != &c.Nodes[1] {
		t.Errorf("Node(node-b) = %v, %v; want &c.Nodes[1]", n, ok)
	}
	if n, ok := c.Node("node-z"); ok || n != nil {
		t.Errorf("Node(node-z) = %v, %v; want nil, false", n, ok)
	}
}

func TestTunnelBetween(t *testing.T) {
	ringA := Node{Name: "a", Address: pfx("192.168.50.1/24"), Backend: BackendRingnet}
	ringB := Node{Name: "b", Address: pfx("192.168.50.2/24"), Backend: BackendRingnet}  // a's subnet
	ringC := Node{Name: "c", Address: pfx("192.168.60.3/24"), Backend: BackendRingnet}  // another subnet
	ringD := Node{Name: "d", Address: pfx("192.168.50.4/25"), Backend: BackendRingnet}  // a's network, another length
	flanB := Node{Name: "fb", Address: pfx("192.168.50.5/24"), Backend: BackendFlannel} // a's subnet
	flanC := Node{Name: "fc", Address: pfx("192.168.60.6/24"), Backend: BackendFlannel} // another subnet
	defB := Node{Name: "db", Address: pfx("192.168.50.7/24")}                           // backend empty: ringnet
	const fail = route.Tunnel(255)
	type pair struct {
		a, b *Node
		want route.Tunnel
	}
	tests := []struct {
		tunnel Tunnel
		pairs  []pair
	}{
		{Tunnel{Mode: ModeVXLAN}, []pair{{&ringA, &ringB, route.VXLAN}, {&ringA, &ringC, route.VXLAN}, {&ringA, &flanB, route.VXLAN}, {&flanC, &ringA, route.VXLAN}, {&flanB, &flanC, route.VXLAN}}},
		{Tunnel{}, []pair{{&ringA, &ringB, route.VXLAN}, {&ringA, &ringC, route.VXLAN}, {&ringA, &flanB, route.VXLAN}}},
		{Tunnel{Mode: ModeIPIP}, []pair{{&ringA, &ringB, route.IPIP}, {&ringA, &ringC, route.IPIP}, {&ringA, &flanB, route.VXLAN}, {&ringA, &flanC, route.VXLAN}, {&flanB, &ringA, route.VXLAN}}},
		{Tunnel{Mode: ModeDirect}, []pair{{&ringA, &ringB, route.Direct}, {&ringB, &ringA, route.Direct}, {&ringA, &defB, route.Direct}, {&ringA, &ringC, fail}, {&ringA, &ringD, fail}, {&ringA, &flanB, route.VXLAN}, {&ringA, &flanC, route.VXLAN}, {&flanC, &ringA, route.VXLAN}}},
		{Tunnel{Mode: ModeCrossSubnet, CrossSubnetEncap: ModeVXLAN}, []pair{{&ringA, &ringB, route.Direct}, {&ringA, &ringC, route.VXLAN}, {&ringC, &ringA, route.VXLAN}, {&ringA, &ringD, route.VXLAN}, {&ringA, &flanB, route.VXLAN}, {&ringA, &flanC, route.VXLAN}}},
		{Tunnel{Mode: ModeCrossSubnet, CrossSubnetEncap: ModeIPIP}, []pair{{&ringA, &ringB, route.Direct}, {&ringA, &ringC, route.IPIP}, {&ringA, &ringD, route.IPIP}, {&ringA, &flanB, route.VXLAN}, {&ringA, &flanC, route.VXLAN}}},
		{Tunnel{Mode: ModeCrossSubnet}, []pair{{&ringA, &ringB, route.Direct}, {&ringA, &ringC, route.VXLAN}}},
		{Tunnel{Mode: ModeCrossSubnet, CrossSubnetEncap: "gre"}, []pair{{&ringA, &ringB, route.Direct}, {&ringA, &ringC, fail}}},
		{Tunnel{Mode: "gre"}, []pair{{&ringA, &ringB, fail}, {&ringA, &flanB, route.VXLAN}}},
		{Tunnel{Mode: ModeVXLAN}, []pair{{&ringA, &ringA, fail}}},
	}
	for _, tt := range tests {
		c := &Cluster{Tunnel: tt.tunnel}
		for _, p := range tt.pairs {
			got, err := c.TunnelBetween(p.a, p.b)
			if err != nil {
				got = fail
			}
			if got != p.want {
				t.Errorf("mode %q/%q: TunnelBetween(%s %v %s, %s %v %s) = %v, %v; want %v", tt.tunnel.Mode, tt.tunnel.CrossSubnetEncap,
					p.a.Name, p.a.Address, p.a.Backend, p.b.Name, p.b.Address, p.b.Backend, got, err, p.want)
			}
		}
	}
	c := &Cluster{Tunnel: Tunnel{Mode: ModeDirect}}
	_, err := c.TunnelBetween(&ringA, &ringC)
	if want := `tunnel mode direct between nodes "a" (192.168.50.1/24) and "c" (192.168.60.3/24), which are on different subnets; use mode crossSubnet`; err == nil || err.Error() != want {
		t.Errorf("direct across subnets: %v, want %q", err, want)
	}
}

// TestDefaultIsCommented: the embedded default explains itself.
func TestDefaultIsCommented(t *testing.T) {
	for _, word := range []string{"crossSubnet", "8472", "flannel.1", "backend-data"} {
		if !strings.Contains(string(Default), word) {
			t.Errorf("default.yaml does not mention %s", word)
		}
	}
}
