package lpm_test

import (
	"fmt"
	"net/netip"

	"github.com/ringnet/ringnet/tables/lpm"
)

// An ipBlock {cidr: 10.0.0.0/8, except: [10.1.0.0/16]} is two prefixes:
// the block, and the except as a longer prefix that says "not in it".
func Example_ipBlock() {
	var b lpm.Builder[bool]
	b.Insert(netip.MustParsePrefix("10.0.0.0/8"), true)
	b.Insert(netip.MustParsePrefix("10.1.0.0/16"), false)
	t := b.Build()
	for _, s := range []string{"10.2.3.4", "10.1.2.3", "192.168.0.1"} {
		in, _ := t.Lookup(netip.MustParseAddr(s)) // no match gives the zero value, false
		fmt.Println(s, in)
	}
	// Output:
	// 10.2.3.4 true
	// 10.1.2.3 false
	// 192.168.0.1 false
}

// The writer keeps its Builder (or gets one from the current snapshot),
// changes it, builds, and publishes; readers keep using the old snapshot
// until they load the new one.
func ExampleTable_Builder() {
	var b lpm.Builder[uint16]
	b.Insert(netip.MustParsePrefix("10.244.1.0/24"), 1)
	old := b.Build()

	nb := old.Builder()
	nb.Insert(netip.MustParsePrefix("10.244.2.0/24"), 2)
	nb.Delete(netip.MustParsePrefix("10.244.1.0/24"))
	cur := nb.Build()

	for p, v := range cur.All() {
		fmt.Println(p, v)
	}
	fmt.Println(old.Len(), cur.Len())
	// Output:
	// 10.244.2.0/24 2
	// 1 1
}
