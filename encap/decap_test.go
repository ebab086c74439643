package encap

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket/layers"
)

// decapResult is what a decapsulation returns, in a form cmp can diff:
// Inner is frame[inner:end] and Start is inner. When Err is not OK the other
// fields are meaningless and left zero.
type decapResult struct {
	Err   Error
	Start int
	Inner []byte
	Src   [4]byte
}

type decapCase struct {
	name  string
	frame []byte
	want  decapResult
}

// edit returns a copy of frame changed by f; with fix, the outer IPv4
// header checksum is then made right again, so that the change is the only
// thing wrong with the frame.
func edit(frame []byte, fix bool, f func(b []byte) []byte) []byte {
	b := f(bytes.Clone(frame))
	if fix {
		fixIPv4Checksum(b)
	}
	return b
}

func setTotal(b []byte, n int) { binary.BigEndian.PutUint16(b[16:18], uint16(n)) }
func setULen(b []byte, n int)  { binary.BigEndian.PutUint16(b[38:40], uint16(n)) }

// withOptions inserts 4 bytes of IPv4 options (NOP NOP NOP EOL) into the
// outer header and fixes IHL and the total length.
func withOptions(b []byte) []byte {
	b = cat(b[:34], []byte{1, 1, 1, 0}, b[34:])
	b[14] = 0x46
	setTotal(b, int(binary.BigEndian.Uint16(b[16:18]))+4)
	return b
}

// vlanTagged inserts an 802.1Q tag (VID 42) after the MAC addresses.
func vlanTagged(b []byte) []byte { return cat(b[:12], []byte{0x81, 0x00, 0x00, 42}, b[12:]) }

func vxlanDecapCases(t testing.TB) []decapCase {
	in := innerIPv4UDP(t, 40000, 53, make([]byte, 22))
	base := vxlanFrame(t, flannel, outerAB(), in, 0x0101)
	ok := decapResult{Err: OK, Start: VXLANOverhead, Inner: in, Src: nodeA}
	fail := func(e Error) decapResult { return decapResult{Err: e} }
	set := func(at int, v ...byte) func([]byte) []byte {
		return func(b []byte) []byte { copy(b[at:], v); return b }
	}
	return []decapCase{
		{"ok", base, ok},
		{"ok padded", cat(base, make([]byte, 20)), ok},
		{"ok udp checksum", edit(base, false, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[40:42], udpChecksum(b))
			return b
		}), ok},
		{"ok udp length below ip length", edit(base, false, func(b []byte) []byte {
			setULen(b, len(b)-34-4)
			return b
		}), decapResult{Err: OK, Start: VXLANOverhead, Inner: in[:len(in)-4], Src: nodeA}},
		{"ok ipv6 inner", vxlanFrame(t, flannel, outerAB(), innerIPv6TCP(t, 1, 2, nil), 0),
			decapResult{Err: OK, Start: VXLANOverhead, Inner: innerIPv6TCP(t, 1, 2, nil), Src: nodeA}},

		{"empty", nil, fail(Truncated)},
		{"13 bytes", base[:13], fail(Truncated)},
		{"ethernet only", base[:14], fail(Truncated)},
		{"short ipv4 header", base[:33], fail(Truncated)},
		{"ip total too short for udp", edit(base[:34+20+4], true, func(b []byte) []byte {
			setTotal(b, 24)
			return b
		}), fail(Truncated)},
		{"ip total too short for vxlan", edit(base[:34+20+12], true, func(b []byte) []byte {
			setTotal(b, 32)
			return b
		}), fail(Truncated)},
		{"udp length past ip packet", edit(base, false, func(b []byte) []byte {
			setULen(b, len(b)-34+1)
			return b
		}), fail(Truncated)},
		{"udp length below udp+vxlan", edit(base, false, func(b []byte) []byte {
			setULen(b, 15)
			return b
		}), fail(Truncated)},

		{"ipv6 ethertype", edit(base, false, set(12, 0x86, 0xdd)), fail(NotIPv4)},
		{"arp ethertype", edit(base, false, set(12, 0x08, 0x06)), fail(NotIPv4)},
		{"vlan tagged", vlanTagged(base), fail(NotIPv4)},

		{"version 6", edit(base, true, set(14, 0x65)), fail(BadIPHeader)},
		{"ihl 4", edit(base, true, set(14, 0x44)), fail(BadIPHeader)},
		{"ihl 0", edit(base[:60], false, set(14, 0x40)), fail(BadIPHeader)},
		{"total length past frame", edit(base, true, func(b []byte) []byte {
			setTotal(b, len(b)-14+1)
			return b
		}), fail(BadIPHeader)},
		{"total length below header", edit(base, true, func(b []byte) []byte {
			setTotal(b, 19)
			return b
		}), fail(BadIPHeader)},

		{"options", edit(base, true, withOptions), fail(IPOptions)},

		{"more fragments", edit(base, true, set(20, 0x20, 0x00)), fail(Fragment)},
		{"fragment offset", edit(base, true, set(20, 0x00, 0xb9)), fail(Fragment)},
		{"df and offset", edit(base, true, set(20, 0x40, 0x01)), fail(Fragment)},

		{"bad ip checksum", edit(base, false, func(b []byte) []byte {
			b[25] ^= 0x01
			return b
		}), fail(BadChecksum)},
		{"bad udp checksum", edit(base, false, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[40:42], udpChecksum(b)^0x0100)
			return b
		}), fail(BadChecksum)},
		{"udp checksum over changed payload", edit(base, false, func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[40:42], udpChecksum(b))
			b[len(b)-1] ^= 0xff
			return b
		}), fail(BadChecksum)},

		{"not local", edit(base, true, set(30, 192, 168, 1, 21)), fail(NotLocal)},
		{"broadcast", edit(base, true, set(30, 255, 255, 255, 255)), fail(NotLocal)},

		{"tcp", edit(base, true, set(23, 6)), fail(WrongProtocol)},
		{"ipip", edit(base, true, set(23, 4)), fail(WrongProtocol)},

		{"iana port", edit(base, false, set(36, 0x12, 0xb5)), fail(WrongPort)},
		{"port 0", edit(base, false, set(36, 0, 0)), fail(WrongPort)},

		{"no I flag", edit(base, false, set(42, 0x00)), fail(BadVXLANHeader)},
		{"reserved flag bit", edit(base, false, set(42, 0x0c)), fail(BadVXLANHeader)},
		{"gbp flag", edit(base, false, set(42, 0x88)), fail(BadVXLANHeader)},
		{"reserved bits after flags", edit(base, false, set(45, 0x01)), fail(BadVXLANHeader)},
		{"reserved byte after vni", edit(base, false, set(49, 0x01)), fail(BadVXLANHeader)},

		{"vni 2", edit(base, false, set(46, 0, 0, 2)), fail(WrongVNI)},
		{"vni 0x010001", edit(base, false, set(46, 1, 0, 1)), fail(WrongVNI)},

		{"inner 13 bytes", edit(base[:50+13], true, func(b []byte) []byte {
			setTotal(b, 20+8+8+13)
			setULen(b, 8+8+13)
			return b
		}), fail(InnerTruncated)},
		{"inner empty", edit(base[:50], true, func(b []byte) []byte {
			setTotal(b, 20+8+8)
			setULen(b, 8+8)
			return b
		}), fail(InnerTruncated)},
	}
}

func ipipDecapCases(t testing.TB) []decapCase {
	in4 := innerIPv4UDP(t, 40000, 53, make([]byte, 22))
	in6 := innerIPv6TCP(t, 50000, 8080, nil)
	base4 := ipipFrame(t, outerAB(), in4, 7)
	base6 := ipipFrame(t, outerAB(), in6, 8)
	// The inner frame DecapIPIP hands back: the outer MACs around the inner
	// packet.
	want := func(in []byte) decapResult {
		return decapResult{Err: OK, Start: IPIPOverhead, Inner: cat(macB[:], macA[:], in[12:]), Src: nodeA}
	}
	fail := func(e Error) decapResult { return decapResult{Err: e} }
	set := func(at int, v ...byte) func([]byte) []byte {
		return func(b []byte) []byte { copy(b[at:], v); return b }
	}
	// A bare IPv4 header (protocol 253, no payload): the outer frame is 54
	// bytes, which the sender pads to the 60-byte minimum.
	bare := serialize(t, podEth(layers.EthernetTypeIPv4), podIPv4(253))
	return []decapCase{
		{"ok ipv4", base4, want(in4)},
		{"ok ipv6", base6, want(in6)},
		{"ok padded", cat(ipipFrame(t, outerAB(), bare, 9), make([]byte, 6)), want(bare)},
		{"ok ipv4 with options inside", func() []byte {
			ip := podIPv4(253)
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
			in := serialize(t, podEth(layers.EthernetTypeIPv4), ip)
			return ipipFrame(t, outerAB(), in, 1)
		}(), func() decapResult {
			ip := podIPv4(253)
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
			return want(serialize(t, podEth(layers.EthernetTypeIPv4), ip))
		}()},

		{"empty", nil, fail(Truncated)},
		{"short ipv4 header", base4[:30], fail(Truncated)},
		{"ipv6 ethertype", edit(base4, false, set(12, 0x86, 0xdd)), fail(NotIPv4)},
		{"vlan tagged", vlanTagged(base4), fail(NotIPv4)},
		{"version 5", edit(base4, true, set(14, 0x55)), fail(BadIPHeader)},
		{"total length past frame", edit(base4, true, func(b []byte) []byte {
			setTotal(b, len(b)-14+1)
			return b
		}), fail(BadIPHeader)},
		{"options", edit(base4, true, withOptions), fail(IPOptions)},
		{"more fragments", edit(base6, true, set(20, 0x20, 0x00)), fail(Fragment)},
		{"bad ip checksum", edit(base6, false, func(b []byte) []byte {
			b[24] ^= 0x80
			return b
		}), fail(BadChecksum)},
		{"not local", edit(base4, true, set(30, 10, 0, 0, 1)), fail(NotLocal)},

		{"udp", edit(base4, true, set(23, 17)), fail(WrongProtocol)},
		{"gre", edit(base4, true, set(23, 47)), fail(WrongProtocol)},
		{"vxlan frame", vxlanFrame(t, flannel, outerAB(), in4, 1), fail(WrongProtocol)},

		{"protocol 4 carrying ipv6", edit(base6, true, set(23, 4)), fail(InnerVersion)},
		{"protocol 41 carrying ipv4", edit(base4, true, set(23, 41)), fail(InnerVersion)},
		{"inner version 0", edit(base4, false, set(34, 0x05)), fail(InnerVersion)},

		{"inner empty", edit(base4[:34], true, func(b []byte) []byte {
			setTotal(b, 20)
			return b
		}), fail(InnerTruncated)},
		{"inner ipv4 19 bytes", edit(base4[:34+19], true, func(b []byte) []byte {
			setTotal(b, 20+19)
			return b
		}), fail(InnerTruncated)},
		{"inner ipv6 39 bytes", edit(base6[:34+39], true, func(b []byte) []byte {
			setTotal(b, 20+39)
			return b
		}), fail(InnerTruncated)},
		{"inner ipv4 cut by total length", edit(cat(base4[:34+19], make([]byte, 10)), true, func(b []byte) []byte {
			setTotal(b, 20+19) // the padding after it holds the missing byte
			return b
		}), fail(InnerTruncated)},
	}
}

func TestVXLANDecap(t *testing.T) {
	for _, tc := range vxlanDecapCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			frame := bytes.Clone(tc.frame)
			inner, end, src, err := flannel.Decap(frame, nodeB)
			got := decapResult{Err: err}
			if err == OK {
				got = decapResult{Err: err, Start: inner, Inner: frame[inner:end], Src: src}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decap (-want +got):\n%s", diff)
			}
			if !bytes.Equal(frame, tc.frame) {
				t.Errorf("Decap modified the frame")
			}
		})
	}
}

func TestIPIPDecap(t *testing.T) {
	for _, tc := range ipipDecapCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			frame := bytes.Clone(tc.frame)
			inner, end, src, err := DecapIPIP(frame, nodeB)
			got := decapResult{Err: err}
			if err == OK {
				got = decapResult{Err: err, Start: inner, Inner: frame[inner:end], Src: src}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecapIPIP (-want +got):\n%s", diff)
			}
			// Only the 14 bytes in front of the inner packet may change,
			// and only when the frame is accepted.
			orig := bytes.Clone(tc.frame)
			if err == OK {
				copy(orig[20:34], frame[20:34])
			}
			if !bytes.Equal(frame, orig) {
				t.Errorf("DecapIPIP modified the frame outside the new Ethernet header, or rejected it and modified it")
			}
		})
	}
}

// TestDecapReasonsCovered keeps the tables above honest: every reason has at
// least one frame that produces it.
func TestDecapReasonsCovered(t *testing.T) {
	seen := make(map[Error]bool)
	for _, tc := range vxlanDecapCases(t) {
		seen[tc.want.Err] = true
	}
	for _, tc := range ipipDecapCases(t) {
		seen[tc.want.Err] = true
	}
	for e := OK; e < NumErrors; e++ {
		if !seen[e] {
			t.Errorf("no decap test case expects %v", e)
		}
	}
}

func TestErrorString(t *testing.T) {
	seen := make(map[string]Error)
	for e := OK; e < NumErrors; e++ {
		s := e.String()
		if s == "" || s == "unknown" {
			t.Errorf("Error(%d) has no name", e)
		}
		for _, r := range s {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
				t.Errorf("Error(%d).String() = %q, want lowercase snake_case", e, s)
				break
			}
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("Error(%d) and Error(%d) are both %q", prev, e, s)
		}
		seen[s] = e
	}
	if got := WrongVNI.String(); got != "wrong_vni" {
		t.Errorf("WrongVNI.String() = %q, want %q", got, "wrong_vni")
	}
	if got := NumErrors.String(); got != "unknown" {
		t.Errorf("NumErrors.String() = %q, want %q", got, "unknown")
	}
}
