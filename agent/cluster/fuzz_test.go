package cluster

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ringnet/ringnet/agent/netpol"
	"github.com/ringnet/ringnet/tables/service"
)

// FuzzParse: Parse never panics; what it accepts validates, survives a
// round trip through MarshalJSON unchanged, its services compile, for
// every node, into specs the fast path's service table takes, and its
// policies compile (agent/netpol) without a problem: the file refuses
// whatever the compiler would not take as given. The committed corpus is
// in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(Default)
	f.Add([]byte(twoNodes))
	f.Add([]byte("tunnel: {mode: crossSubnet, crossSubnetEncap: ipip, vxlanPort: 4789, vni: 7}" + twoNodes))
	f.Add([]byte(servicesFile))
	f.Add([]byte(policiesFile))
	f.Add([]byte(`{"nodes":[{"name":"a","address":"10.0.0.1/24","podCIDRs":["10.244.1.0/24","fd00::/64"],"backend":"flannel","vtepMAC":"02:00:00:00:00:01"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		c2, err := Parse(j)
		if err != nil {
			t.Fatalf("Parse(MarshalJSON) of %q: %v\n%s", data, err, j)
		}
		if diff := cmp.Diff(c, c2, cmpPrefix, cmpAddr); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", data, diff)
		}
		for i := range c.Nodes {
			specs, _ := ServiceSpecs(&c.Nodes[i], c.Services)
			if _, err := service.Build(1, specs); err != nil {
				t.Fatalf("services of %q for node %s: service.Build: %v", data, c.Nodes[i].Name, err)
			}
		}
		comp, err := netpol.Compile(1, nil, c.Namespaces, c.Pods, c.Policies)
		if err != nil {
			t.Fatalf("policies of %q: %v", data, err)
		}
		if len(comp.Problems) > 0 {
			t.Fatalf("policies of %q compiled with problems Validate let through: %v", data, comp.Problems)
		}
	})
}
