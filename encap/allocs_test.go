package encap

import "testing"

// The per-packet functions must not allocate: they run once per frame on
// every worker.
func TestAllocs(t *testing.T) {
	o := outerAB()
	in4 := innerIPv4UDP(t, 40000, 53, make([]byte, 22))
	in6 := innerIPv6TCP(t, 50000, 8080, nil)

	vbuf := withHeadroom(in4, VXLANOverhead, 0)
	vframe := vxlanFrame(t, flannel, o, in4, 1)
	ibuf := withHeadroom(in4, IPIPOverhead, 0)
	iframe := ipipFrame(t, o, in6, 1)
	saved := append([]byte(nil), iframe[20:34]...)

	for _, tc := range []struct {
		name string
		f    func() bool
	}{
		{"Encap", func() bool {
			_, ok := flannel.Encap(vbuf, VXLANOverhead, len(in4), &o, 1)
			return ok
		}},
		{"Decap", func() bool {
			_, _, _, err := flannel.Decap(vframe, nodeB)
			return err == OK
		}},
		{"EncapIPIP", func() bool {
			copy(ibuf[IPIPOverhead:], in4[:14]) // EncapIPIP overwrote the inner Ethernet header
			_, ok := EncapIPIP(ibuf, IPIPOverhead, len(in4), &o, 1)
			return ok
		}},
		{"DecapIPIP", func() bool {
			copy(iframe[20:34], saved) // DecapIPIP overwrote the outer IPv4 header's second half
			_, _, _, err := DecapIPIP(iframe, nodeB)
			return err == OK
		}},
		{"FlowHash", func() bool { return FlowHash(in6) != 0 }},
	} {
		if !tc.f() {
			t.Fatalf("%s failed on a valid frame", tc.name)
		}
		if n := testing.AllocsPerRun(1000, func() { tc.f() }); n != 0 {
			t.Errorf("%s allocates %v times per run, want 0", tc.name, n)
		}
	}
}
