package cluster

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse: Parse never panics; what it accepts validates, and survives
// a round trip through MarshalJSON unchanged. The committed corpus is in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(Default)
	f.Add([]byte(twoNodes))
	f.Add([]byte("tunnel: {mode: crossSubnet, crossSubnetEncap: ipip, vxlanPort: 4789, vni: 7}" + twoNodes))
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
		if diff := cmp.Diff(c, c2, cmpPrefix); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", data, diff)
		}
	})
}
