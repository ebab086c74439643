package policy

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringnet/ringnet/tables/snapshot"
)

// Identities of the example cluster.
const (
	web     = 1
	client  = 2
	db      = 3
	nodePod = 4
	other   = 5
)

var examples = []Policy{
	{
		Name:     "shop/web",
		Selected: []uint32{web},
		Types:    []Direction{Ingress},
		Ingress: []Rule{
			{Peers: []Peer{{Identities: []uint32{client}}}, Ports: []Port{{Proto: TCP, Port: 80}}},
			{
				Peers: []Peer{{CIDR: netip.MustParsePrefix("192.168.0.0/16"), Except: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}},
				Ports: []Port{{Proto: TCP, Port: 443}},
			},
		},
	},
	{
		Name:     "shop/db",
		Selected: []uint32{db},
		Types:    []Direction{Ingress, Egress}, // no egress rules: egress denied
		Ingress:  []Rule{{Peers: []Peer{{Identities: []uint32{web}}}, Ports: []Port{{Proto: TCP, Port: 5432}}}},
	},
	{
		Name:     "shop/nodeports",
		Selected: []uint32{nodePod},
		Types:    []Direction{Ingress},
		Ingress: []Rule{
			{Ports: []Port{{Proto: TCP, Port: 30000, EndPort: 32767}, {Proto: UDP}}},
			{Peers: []Peer{{CIDR: netip.MustParsePrefix("fd00::/8")}}}, // everything from fd00::/8
		},
	},
	{
		Name:     "shop/web-egress-ignored",
		Selected: []uint32{web},
		Types:    []Direction{Ingress},                           // egress rules without the type are ignored
		Egress:   []Rule{{Ports: []Port{{Proto: TCP, Port: 1}}}}, // ...so web stays unselected for egress
	},
}

func TestExamples(t *testing.T) {
	tab, err := Build(7, examples)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	type c struct {
		name string
		p    packet
		want Verdict
	}
	cases := []c{
		{"client to web:80", packet{Local: web, Peer: client, Dir: Ingress, Proto: TCP, Port: 80}, Allow},
		{"client to web:81", packet{Local: web, Peer: client, Dir: Ingress, Proto: TCP, Port: 81}, Deny},
		{"client to web udp:80", packet{Local: web, Peer: client, Dir: Ingress, Proto: UDP, Port: 80}, Deny},
		{"other to web:80", packet{Local: web, Peer: other, Dir: Ingress, Proto: TCP, Port: 80}, Deny},
		{"block to web:443", packet{Local: web, Addr: a("192.168.2.9"), Dir: Ingress, Proto: TCP, Port: 443}, Allow},
		{"mapped block to web:443", packet{Local: web, Addr: a("::ffff:192.168.2.9"), Dir: Ingress, Proto: TCP, Port: 443}, Allow},
		{"except to web:443", packet{Local: web, Addr: a("192.168.1.9"), Dir: Ingress, Proto: TCP, Port: 443}, Deny},
		{"pod in block to web:443", packet{Local: web, Peer: other, Addr: a("192.168.7.7"), Dir: Ingress, Proto: TCP, Port: 443}, Allow},
		{"client in except to web:80", packet{Local: web, Peer: client, Addr: a("192.168.1.1"), Dir: Ingress, Proto: TCP, Port: 80}, Allow},
		{"web egress", packet{Local: web, Peer: db, Dir: Egress, Proto: TCP, Port: 5432}, Unselected},
		{"web to db", packet{Local: db, Peer: web, Dir: Ingress, Proto: TCP, Port: 5432}, Allow},
		{"db egress", packet{Local: db, Peer: web, Dir: Egress, Proto: TCP, Port: 80}, Deny},
		{"db ping", packet{Local: db, Peer: web, Dir: Ingress, Proto: 1}, Deny},
		{"nodeport low", packet{Local: nodePod, Dir: Ingress, Proto: TCP, Port: 30000}, Allow},
		{"nodeport high", packet{Local: nodePod, Dir: Ingress, Proto: TCP, Port: 32767}, Allow},
		{"nodeport above", packet{Local: nodePod, Dir: Ingress, Proto: TCP, Port: 32768}, Deny},
		{"nodeport any udp", packet{Local: nodePod, Peer: web, Dir: Ingress, Proto: UDP, Port: 9}, Allow},
		{"nodeport sctp", packet{Local: nodePod, Dir: Ingress, Proto: SCTP, Port: 30000}, Deny},
		{"v6 block ping", packet{Local: nodePod, Addr: a("fd12::1"), Dir: Ingress, Proto: 58}, Allow},
		{"v6 outside ping", packet{Local: nodePod, Addr: a("fe80::1"), Dir: Ingress, Proto: 58}, Deny},
		{"unselected", packet{Local: other, Peer: web, Dir: Ingress, Proto: TCP, Port: 22}, Unselected},
		{"unknown local", packet{Local: 999, Dir: Egress, Proto: UDP, Port: 53}, Unselected},
	}
	var want, got []string
	for _, c := range cases {
		want = append(want, c.name+": "+c.want.String())
		got = append(got, c.name+": "+verdictOf(tab, c.p).String())
		if r := reference(examples, c.p); r != c.want {
			t.Errorf("%s: the reference says %v, the case %v", c.name, r, c.want)
		}
		if sel := tab.Selects(c.p.Local, c.p.Dir); sel != (c.want != Unselected) {
			t.Errorf("%s: Selects = %v, with the verdict %v", c.name, sel, c.want)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	if s := tab.Stats(); s.Locals != 3 || s.CIDRs != 3 {
		t.Errorf("Stats() = %+v, want 3 locals and 3 CIDRs", s)
	}
}

func TestBuildErrors(t *testing.T) {
	ids := []uint32{1}
	bad := map[string]Policy{
		"identity 0":            {Selected: []uint32{0}},
		"direction(7)":          {Selected: ids, Types: []Direction{7}},
		"protocol 1":            {Selected: ids, Ingress: []Rule{{Ports: []Port{{Proto: 1}}}}},
		"end port 9 without":    {Selected: ids, Ingress: []Rule{{Ports: []Port{{Proto: TCP, EndPort: 9}}}}},
		"end port 9 below port": {Selected: ids, Egress: []Rule{{Ports: []Port{{Proto: UDP, Port: 10, EndPort: 9}}}}},
		"both identities and":   {Selected: ids, Ingress: []Rule{{Peers: []Peer{{Identities: ids, CIDR: netip.MustParsePrefix("10.0.0.0/8")}}}}},
		"excepts but no CIDR":   {Selected: ids, Ingress: []Rule{{Peers: []Peer{{Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}}}},
		"peer 0: identity 0":    {Selected: ids, Ingress: []Rule{{Peers: []Peer{{Identities: []uint32{0}}}}}},
		"as IPv4":               {Selected: ids, Ingress: []Rule{{Peers: []Peer{{CIDR: netip.MustParsePrefix("::ffff:10.0.0.0/104")}}}}},
		"except: invalid":       {Selected: ids, Ingress: []Rule{{Peers: []Peer{{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Except: []netip.Prefix{{}}}}}}},
	}
	for want, p := range bad {
		p.Name = "ns/bad"
		_, err := Build(1, []Policy{{Name: "ns/good", Selected: ids}, p})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `policy "ns/bad"`) {
			t.Errorf("Build(%s) error = %v, want one naming ns/bad and saying %q", want, err, want)
		}
	}
}

func TestVerdictAllocs(t *testing.T) {
	tab, err := Build(1, examples)
	if err != nil {
		t.Fatal(err)
	}
	g := gen{rand.New(rand.NewPCG(7, 8))}
	packets := g.packets(examples, 64)
	a4, a6 := netip.MustParseAddr("192.168.2.9"), netip.MustParseAddr("fd12::1")
	if n := testing.AllocsPerRun(100, func() {
		for _, p := range packets {
			verdictOf(tab, p)
		}
		tab.CIDR(a4)
		tab.CIDR(a6)
	}); n != 0 {
		t.Errorf("Verdict and CIDR allocate %v times per run", n)
	}
}

// byteSource feeds a fuzzer's bytes to the random generator, so that the
// fuzzer steers the policies and packets it makes. Once they run out it
// counts on (a source stuck at one value would hang rand's rejection
// sampling).
type byteSource struct {
	b []byte
	n uint64
}

func (s *byteSource) Uint64() uint64 {
	if len(s.b) == 0 {
		s.n++
		return s.n * 0x9E3779B97F4A7C15
	}
	var buf [8]byte
	n := copy(buf[:], s.b)
	s.b = s.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

func FuzzVerdict(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 8 {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := gen{rand.New(&byteSource{b: data})}
		policies := g.policies()
		tab, err := Build(1, policies)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		if diff := compare(tab, policies, g.packets(policies, 50)); diff != "" {
			t.Fatalf("verdicts (-reference +table):\n%s\npolicies: %+v", diff, policies)
		}
	})
}

// TestConcurrentRebuild has workers decide packets on the published
// snapshot while the agent rebuilds and publishes policies. Each
// generation allows exactly one port, derived from the generation, so a
// worker can check that the snapshot it loaded answers as a whole for the
// generation it says it is. Run it with -race.
func TestConcurrentRebuild(t *testing.T) {
	build := func(gen uint64) *Table {
		port := uint16(1000 + gen%100)
		pols := []Policy{{
			Name: "gen", Selected: []uint32{web}, Types: []Direction{Ingress, Egress},
			Ingress: []Rule{{Peers: []Peer{{Identities: []uint32{client}}}, Ports: []Port{{Proto: TCP, Port: port}}}},
			Egress:  []Rule{{Peers: []Peer{{CIDR: netip.MustParsePrefix("10.0.0.0/8")}}, Ports: []Port{{Proto: UDP, Port: port}}}},
		}}
		tab, err := Build(gen, pols)
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	var cur snapshot.Pointer[Table, *Table]
	cur.Init(build(0))
	stop := make(chan struct{}) // closed when the writer is done
	var loads atomic.Int64      // snapshots the workers loaded
	var workers sync.WaitGroup
	peer := netip.MustParseAddr("10.1.2.3")
	for range 3 {
		workers.Go(func() {
			for {
				tab := cur.Load() // once per batch
				loads.Add(1)
				port := uint16(1000 + tab.Generation()%100)
				for _, k := range []Key{
					{Local: web, Peer: client, Dir: Ingress, Proto: TCP, Port: port},
					{Local: web, PeerCIDR: tab.CIDR(peer), Dir: Egress, Proto: UDP, Port: port},
				} {
					if v := tab.Verdict(k); v != Allow {
						t.Errorf("generation %d: %+v = %v, want allow", tab.Generation(), k, v)
						return
					}
					k.Port++
					if v := tab.Verdict(k); v != Deny {
						t.Errorf("generation %d: %+v = %v, want deny", tab.Generation(), k, v)
						return
					}
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	// Publish until the workers have read many snapshots (or enough time
	// has passed on a slow machine).
	deadline := time.Now().Add(2 * time.Second)
	for gen := uint64(1); gen <= 300 || (loads.Load() < 10000 && time.Now().Before(deadline)); gen++ {
		if err := cur.Store(build(gen)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	workers.Wait()
	t.Logf("%d snapshots read, last generation %d", loads.Load(), cur.Load().Generation())
}
