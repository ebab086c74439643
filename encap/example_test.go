package encap_test

import (
	"fmt"

	"github.com/ringnet/ringnet/encap"
)

// A frame goes from a pod on node A, through the tunnel, to node B.
func Example() {
	var (
		macA, macB   = [6]byte{2, 0, 0, 0, 0, 0xa}, [6]byte{2, 0, 0, 0, 0, 0xb}
		nodeA, nodeB = [4]byte{192, 168, 1, 10}, [4]byte{192, 168, 1, 20}
	)
	vx := encap.VXLAN{VNI: encap.FlannelVNI, Port: encap.FlannelPort}
	toB := encap.NewOuter(macA, macB, nodeA, nodeB) // built once per peer

	// Node A: a 64-byte inner frame at offset 256 of its UMEM frame.
	buf := make([]byte, 2048)
	const off, n = 256, 64
	copy(buf[off+12:], []byte{0x08, 0x00}) // EtherType IPv4; the rest is left zero here
	start, ok := vx.Encap(buf, off, n, &toB, 1)
	fmt.Println("encap:", start, ok, "outer length", n+encap.VXLANOverhead)

	// Node B: the outer frame arrives on the uplink.
	frame := buf[start : start+n+encap.VXLANOverhead]
	inner, end, src, err := vx.Decap(frame, nodeB)
	fmt.Println("decap:", err, inner, end, src)
	// Output:
	// encap: 206 true outer length 114
	// decap: ok 50 114 [192 168 1 10]
}
