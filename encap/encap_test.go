package encap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestVXLANRoundTrip encapsulates every inner frame with several settings
// and headrooms, and checks that Decap at the peer returns exactly the inner
// frame, and that Encap wrote only its 50 bytes of headroom.
func TestVXLANRoundTrip(t *testing.T) {
	settings := []VXLAN{flannel, {VNI: 4096, Port: IANAPort}, {VNI: 1<<24 - 1, Port: 1}, {VNI: 0, Port: 0}, {VNI: 0xff000005, Port: FlannelPort}}
	for _, v := range settings {
		for _, in := range innerFrames(t) {
			for _, headroom := range []int{VXLANOverhead, 256} {
				t.Run(fmt.Sprintf("%s/vni%d/port%d/headroom%d", in.name, v.VNI, v.Port, headroom), func(t *testing.T) {
					o := outerAB()
					buf := withHeadroom(in.frame, headroom, 7)
					orig := bytes.Clone(buf)
					n := len(in.frame)
					start, ok := v.Encap(buf, headroom, n, &o, 0xbeef)
					if !ok || start != headroom-VXLANOverhead {
						t.Fatalf("Encap = %d, %v; want %d, true", start, ok, headroom-VXLANOverhead)
					}
					// Only the headroom's last 50 bytes change.
					copy(orig[start:headroom], buf[start:headroom])
					if !bytes.Equal(buf, orig) {
						t.Fatalf("Encap wrote outside buf[%d:%d]", start, headroom)
					}
					outer := buf[start : start+n+VXLANOverhead]
					inner, end, src, err := v.Decap(outer, nodeB)
					got := decapResult{Err: err, Start: inner, Inner: outer[inner:end], Src: src}
					want := decapResult{Err: OK, Start: VXLANOverhead, Inner: in.frame, Src: nodeA}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("Decap(Encap(x)) (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}

// TestIPIPRoundTrip does the same for IPIP, which carries IP frames only:
// the peer gets the inner IP packet back behind an Ethernet header made of
// the outer MACs.
func TestIPIPRoundTrip(t *testing.T) {
	for _, in := range innerFrames(t) {
		if !isIP(in.frame) {
			continue
		}
		for _, headroom := range []int{IPIPOverhead, 256} {
			t.Run(fmt.Sprintf("%s/headroom%d", in.name, headroom), func(t *testing.T) {
				o := outerAB()
				buf := withHeadroom(in.frame, headroom, 3)
				orig := bytes.Clone(buf)
				n := len(in.frame)
				start, ok := EncapIPIP(buf, headroom, n, &o, 0xbeef)
				if !ok || start != headroom-IPIPOverhead {
					t.Fatalf("EncapIPIP = %d, %v; want %d, true", start, ok, headroom-IPIPOverhead)
				}
				copy(orig[start:headroom+14], buf[start:headroom+14])
				if !bytes.Equal(buf, orig) {
					t.Fatalf("EncapIPIP wrote outside buf[%d:%d]", start, headroom+14)
				}
				outer := buf[start : start+n+IPIPOverhead]
				inner, end, src, err := DecapIPIP(outer, nodeB)
				got := decapResult{Err: err, Start: inner, Inner: outer[inner:end], Src: src}
				want := decapResult{Err: OK, Start: IPIPOverhead, Inner: cat(macB[:], macA[:], in.frame[12:]), Src: nodeA}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("DecapIPIP(EncapIPIP(x)) (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestEncapRefuses checks every reason Encap and EncapIPIP give up, and that
// they write nothing then.
func TestEncapRefuses(t *testing.T) {
	in := innerIPv4UDP(t, 1000, 2000, make([]byte, 22))
	in6 := innerIPv6UDP(t, 1000, 2000, nil)
	o := outerAB()
	var zero Outer
	big := make([]byte, 70000)
	type call struct {
		name    string
		buf     []byte
		off, n  int
		o       *Outer
		vxlanOK bool // whether Encap accepts it
		ipipOK  bool // whether EncapIPIP accepts it
	}
	calls := []call{
		{"fits exactly", withHeadroom(in, VXLANOverhead, 0), VXLANOverhead, len(in), &o, true, true},
		{"headroom 49", withHeadroom(in, 49, 0), 49, len(in), &o, false, true},
		{"headroom 20", withHeadroom(in, 20, 0), 20, len(in), &o, false, true},
		{"headroom 19", withHeadroom(in, 19, 0), 19, len(in), &o, false, false},
		{"headroom 0", withHeadroom(in, 0, 0), 0, len(in), &o, false, false},
		{"negative offset", withHeadroom(in, 64, 0), -1, len(in), &o, false, false},
		{"past the buffer", withHeadroom(in, 64, 0), 64, len(in) + 1, &o, false, false},
		{"offset past the buffer", withHeadroom(in, 64, 0), 64 + len(in) + 1, 0, &o, false, false},
		{"huge offset", withHeadroom(in, 64, 0), int(^uint(0) >> 1), 14, &o, false, false},
		{"huge length", withHeadroom(in, 64, 0), 64, int(^uint(0) >> 1), &o, false, false},
		{"13 bytes", withHeadroom(in, 64, 0), 64, 13, &o, false, false},
		{"negative length", withHeadroom(in, 64, 0), 64, -1, &o, false, false},
		{"zero outer", withHeadroom(in, 64, 0), 64, len(in), &zero, false, false},
		{"largest vxlan", withHeadroom(cat(in, make([]byte, 65499-len(in))), 64, 0), 64, 65499, &o, true, true},
		{"too large for vxlan", withHeadroom(cat(in, make([]byte, 65500-len(in))), 64, 0), 64, 65500, &o, false, true},
		{"largest ipip", withHeadroom(cat(in, make([]byte, 65529-len(in))), 64, 0), 64, 65529, &o, false, true},
		{"too large for ipip", withHeadroom(cat(in, make([]byte, 65530-len(in))), 64, 0), 64, 65530, &o, false, false},
		{"arp", withHeadroom(innerARP(t), 64, 0), 64, len(innerARP(t)), &o, true, false},
		{"vlan tagged", withHeadroom(vlanTagged(in), 64, 0), 64, len(in) + 4, &o, true, false},
		{"ipv4 ethertype, ipv6 packet", withHeadroom(cat(in[:12], []byte{0x08, 0x00}, in6[14:]), 64, 0), 64, len(in6), &o, true, false},
		{"ipv6 ethertype, ipv4 packet", withHeadroom(cat(in[:12], []byte{0x86, 0xdd}, in[14:]), 64, 0), 64, len(in), &o, true, false},
		{"ipv4 19 bytes", withHeadroom(in[:14+19], 64, 0), 64, 14 + 19, &o, true, false},
		{"ipv4 20 bytes", withHeadroom(in[:14+20], 64, 0), 64, 14 + 20, &o, true, true},
		{"ipv6 39 bytes", withHeadroom(in6[:14+39], 64, 0), 64, 14 + 39, &o, true, false},
		{"ipv6 40 bytes", withHeadroom(in6[:14+40], 64, 0), 64, 14 + 40, &o, true, true},
		{"ethernet header only", withHeadroom(in[:14], 64, 0), 64, 14, &o, true, false},
		{"in a larger buffer", big, 1000, 60000, &o, true, false}, // zeros: EtherType 0
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			buf := bytes.Clone(c.buf)
			if _, ok := flannel.Encap(buf, c.off, c.n, c.o, 1); ok != c.vxlanOK {
				t.Errorf("Encap ok = %v, want %v", ok, c.vxlanOK)
			} else if !ok && !bytes.Equal(buf, c.buf) {
				t.Errorf("Encap refused but wrote into the buffer")
			}
			buf = bytes.Clone(c.buf)
			if _, ok := EncapIPIP(buf, c.off, c.n, c.o, 1); ok != c.ipipOK {
				t.Errorf("EncapIPIP ok = %v, want %v", ok, c.ipipOK)
			} else if !ok && !bytes.Equal(buf, c.buf) {
				t.Errorf("EncapIPIP refused but wrote into the buffer")
			}
		})
	}
}

// TestOuterChecksum proves the precomputed-sum arithmetic against the
// reference checksum for every IP ID, for lengths at the edges, and for
// random peers.
func TestOuterChecksum(t *testing.T) {
	check := func(t *testing.T, frame []byte, format string, args ...any) {
		t.Helper()
		if c := refChecksum(frame[14:34]); c != 0 {
			t.Fatalf("%s: outer IPv4 header %x does not verify (reference sum gives %#04x)", fmt.Sprintf(format, args...), frame[14:34], c)
		}
	}
	in := innerIPv4UDP(t, 1, 2, nil)
	for _, n := range []int{14, len(in), 1514, 9014, 65499} {
		inner := cat(in, make([]byte, max(0, n-len(in))))[:n]
		o := outerAB()
		buf := withHeadroom(inner, VXLANOverhead, 0)
		ipip := withHeadroom(inner, IPIPOverhead, 0)
		for id := range 1 << 16 {
			if _, ok := flannel.Encap(buf, VXLANOverhead, n, &o, uint16(id)); !ok {
				t.Fatalf("Encap(n=%d) failed", n)
			}
			check(t, buf, "vxlan n=%d id=%d", n, id)
			if n < 34 {
				continue
			}
			copy(ipip[IPIPOverhead:], inner[:14])
			if _, ok := EncapIPIP(ipip, IPIPOverhead, n, &o, uint16(id)); !ok {
				t.Fatalf("EncapIPIP(n=%d) failed", n)
			}
			check(t, ipip, "ipip n=%d id=%d", n, id)
		}
	}
	// Random peers, including all-ones addresses that push the sum up.
	r := rand.New(rand.NewPCG(1, 2))
	peers := []Outer{NewOuter(macA, macB, [4]byte{255, 255, 255, 255}, [4]byte{255, 255, 255, 255}), NewOuter(macA, macB, [4]byte{}, [4]byte{})}
	for range 2000 {
		var s, d [4]byte
		binary.BigEndian.PutUint32(s[:], r.Uint32())
		binary.BigEndian.PutUint32(d[:], r.Uint32())
		peers = append(peers, NewOuter(macA, macB, s, d))
	}
	for i := range peers {
		o := &peers[i]
		n := 14 + r.IntN(65499-14+1)
		id := uint16(r.Uint32())
		inner := cat(in, make([]byte, max(0, n-len(in))))[:n]
		buf := withHeadroom(inner, VXLANOverhead, 0)
		if _, ok := flannel.Encap(buf, VXLANOverhead, n, o, id); !ok {
			t.Fatalf("Encap(n=%d) failed", n)
		}
		check(t, buf, "vxlan %v->%v n=%d id=%d", o.SrcIP, o.DstIP, n, id)
		for _, p := range []uint8{4, 41} {
			// Protocol 41 needs an IPv6 inner packet; the checksum does not
			// care what the packet is, so build the header directly.
			h := make([]byte, 34)
			writeOuter(h, o, p, n, id)
			check(t, h, "ipip proto %d %v->%v total=%d id=%d", p, o.SrcIP, o.DstIP, n, id)
		}
	}
}

// TestVXLANSourcePort checks the UDP source port: in the dynamic range,
// taken from FlowHash, and spread over many values by many flows.
func TestVXLANSourcePort(t *testing.T) {
	o := outerAB()
	ports := make(map[uint16]bool)
	for sport := range 2000 {
		in := innerIPv4TCP(t, uint16(10000+sport), 443, nil)
		frame := vxlanFrame(t, flannel, o, in, 0)
		p := binary.BigEndian.Uint16(frame[34:36])
		if p < 49152 {
			t.Fatalf("source port %d below 49152", p)
		}
		if want := uint16(49152 | FlowHash(in)&0x3fff); p != want {
			t.Fatalf("source port %d, want 49152|FlowHash&0x3fff = %d", p, want)
		}
		ports[p] = true
	}
	// 2000 flows into 16384 ports: about 1885 distinct values expected.
	if len(ports) < 1800 {
		t.Errorf("2000 flows used only %d source ports", len(ports))
	}
}

// TestVNIHighBits: a VNI's bits above 24 are ignored on both sides.
func TestVNIHighBits(t *testing.T) {
	in := innerIPv4UDP(t, 1, 2, nil)
	frame := vxlanFrame(t, VXLAN{VNI: 0xff000005, Port: FlannelPort}, outerAB(), in, 0)
	if got, want := frame[42:50], []byte{0x08, 0, 0, 0, 0, 0, 5, 0}; !bytes.Equal(got, want) {
		t.Errorf("VXLAN header %x, want %x", got, want)
	}
	for _, vni := range []uint32{5, 0x01000005} {
		v := VXLAN{VNI: vni, Port: FlannelPort}
		if _, _, _, err := v.Decap(frame, nodeB); err != OK {
			t.Errorf("VXLAN{VNI: %#x}.Decap = %v, want ok", vni, err)
		}
	}
}
