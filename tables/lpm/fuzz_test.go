package lpm

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// fuzzOps turns bytes into Builder operations, mirrored on a model. Each
// operation takes 5 bytes: an opcode and four that make the prefix.
// Addresses are built from a fixed base with one or two bytes replaced, so
// that prefixes share long beginnings and nest at every depth.
type fuzzOps struct {
	data []byte
}

func (f *fuzzOps) next() (op, a, b, c, d byte, ok bool) {
	if len(f.data) < 5 {
		return 0, 0, 0, 0, 0, false
	}
	op, a, b, c, d = f.data[0], f.data[1], f.data[2], f.data[3], f.data[4]
	f.data = f.data[5:]
	return op, a, b, c, d, true
}

// fuzzPrefix makes an IPv4 or IPv6 prefix from four bytes: where to put
// two bytes into the base address, which bytes, and the length.
func fuzzPrefix(v6 bool, a, b, c, d byte) netip.Prefix {
	if !v6 {
		base := [4]byte{10, 244, 0, 0}
		base[a%4] = b
		base[(a/4)%4] ^= c
		p, _ := netip.AddrFrom4(base).Prefix(int(d) % 33)
		return p
	}
	base := netip.MustParseAddr("2001:db8::").As16()
	base[a%16] = b
	base[(a/16)%16] ^= c
	p, _ := netip.AddrFrom16(base).Prefix(int(d) % 129)
	return p
}

// FuzzLPM builds tables from arbitrary operation sequences and checks them
// against the model: every prefix's ends and neighbours, and the
// addresses the input names. The model is a linear scan, so an input is
// cut to maxOps operations and a few intermediate checks to keep every run
// quick.
func FuzzLPM(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0, 8, 0, 3, 1, 0, 32, 2, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 1, 15, 1, 0, 128, 1, 15, 1, 0, 127, 3, 0, 0, 0, 0, 1, 15, 1, 0, 128})
	f.Add([]byte{0, 2, 77, 0, 24, 0, 2, 77, 0, 25, 0, 3, 1, 0, 30, 4, 2, 77, 0, 24, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 7, 200, 5, 64, 1, 7, 200, 5, 65, 1, 200, 1, 1, 60, 1, 8, 0, 0, 120, 6, 1, 1, 1, 1})
	const maxOps, maxChecks = 100, 4
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := &fuzzOps{data: data[:min(len(data), 5*maxOps)]}
		checks := 0
		var b Builder[uint8]
		m := model[uint8]{}
		var extra []netip.Addr
		r := rand.New(rand.NewPCG(uint64(len(data)), 1))
		if len(data) > 0 {
			b.rootBits4 = int(data[0]) % (maxRootBits + 2)
			b.rootBits6 = int(data[len(data)-1]) % (maxRootBits + 2)
		}
		for {
			op, a, bb, c, d, ok := ops.next()
			if !ok {
				break
			}
			v6 := op&1 == 1
			p := fuzzPrefix(v6, a, bb, c, d)
			switch (op >> 1) % 4 {
			case 0, 1: // insert; the value comes from the opcode's top bits
				v := op >> 3
				if err := b.Insert(p, v); err != nil {
					t.Fatal(err)
				}
				m[p] = v
			case 2: // delete
				_, had := m[p]
				if b.Delete(p) != had {
					t.Fatalf("Delete(%s) != %v", p, had)
				}
				delete(m, p)
			case 3: // a probe address, and a check of the table so far
				extra = append(extra, p.Addr(), lastAddr(p))
				if op&0x80 != 0 && checks < maxChecks {
					checks++
					check(t, "mid-sequence", b.Build(), m, m.probes(r, extra), []netip.Prefix{p})
				}
			}
		}
		check(t, "final", b.Build(), m, m.probes(r, extra), nil)
	})
}
