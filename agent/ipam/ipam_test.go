package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var pools = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/28"), netip.MustParsePrefix("fd00:1::/64")}

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, pools)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func key(i int) Key { return Key{ContainerID: fmt.Sprintf("c%03d", i), IfName: "eth0"} }

// checkInvariants verifies the store against itself: every record's
// addresses are in the index pointing back at it, no address belongs to two
// records, every index entry has its record.
func checkInvariants(t *testing.T, s *Store) map[netip.Addr]Key {
	t.Helper()
	recs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	owners := map[netip.Addr]Key{}
	for _, r := range recs {
		held := 0
		for _, a := range []netip.Addr{r.IPv4, r.IPv6} {
			if a.IsValid() {
				held++
			}
		}
		if held != len(s.pools) {
			t.Errorf("record %s holds %d addresses, want one per pool: %+v", r.Key, held, r)
		}
		for _, a := range []netip.Addr{r.IPv4, r.IPv6} {
			if !a.IsValid() {
				continue
			}
			if o, dup := owners[a]; dup {
				t.Fatalf("address %s held by %s and %s", a, o, r.Key)
			}
			owners[a] = r.Key
			if k, ok, _ := s.Owner(a); !ok || k != r.Key {
				t.Errorf("index says %s belongs to %v (%v), record says %s", a, k, ok, r.Key)
			}
		}
	}
	n := 0
	s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketAddrs).Stats().KeyN; return nil })
	if n != len(owners) {
		t.Errorf("index has %d addresses, records hold %d", n, len(owners))
	}
	return owners
}

func TestAllocateIdempotentUniqueExhausted(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ipam.db"))
	defer s.Close()
	// A /28 has 14 usable IPv4 addresses (.1 to .14).
	seen := map[netip.Addr]bool{}
	for i := range 14 {
		r, created, err := s.Allocate(Record{Key: key(i), PodName: "p"})
		if err != nil || !created {
			t.Fatalf("allocate %d: %v created=%v", i, err, created)
		}
		if seen[r.IPv4] || seen[r.IPv6] || !pools[0].Contains(r.IPv4) || !pools[1].Contains(r.IPv6) {
			t.Fatalf("allocate %d: bad or duplicate %s %s", i, r.IPv4, r.IPv6)
		}
		if r.IPv4 == pools[0].Addr() || r.IPv4 == netip.MustParseAddr("10.244.0.15") {
			t.Fatalf("handed out network or broadcast address %s", r.IPv4)
		}
		seen[r.IPv4], seen[r.IPv6] = true, true
		if b := r.IPv4.As4(); r.PodMAC != fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]) {
			t.Fatalf("allocate %d: pod MAC %q, want 0a:58 and the bytes of %s", i, r.PodMAC, r.IPv4)
		}
		again, created, err := s.Allocate(Record{Key: key(i)})
		if err != nil || created || again.IPv4 != r.IPv4 || again.IPv6 != r.IPv6 || again.PodName != "p" || again.PodMAC != r.PodMAC {
			t.Fatalf("second allocate %d: %+v created=%v err=%v; want the first", i, again, created, err)
		}
	}
	_, _, err := s.Allocate(Record{Key: key(99)})
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "10.244.0.0/28") {
		t.Fatalf("allocate from a full pool: %v; want ErrPoolExhausted naming the pool", err)
	}
	// The failed allocation left nothing behind.
	if _, ok, _ := s.Get(key(99)); ok {
		t.Error("failed allocation left a record")
	}
	checkInvariants(t, s)

	// Release frees; the next allocation reuses only after the cursor
	// wraps, and never an address still held.
	old, found, err := s.Release(key(3))
	if err != nil || !found {
		t.Fatal(err)
	}
	if _, found, err := s.Release(key(3)); err != nil || found {
		t.Errorf("second release: found=%v err=%v", found, err)
	}
	r, _, err := s.Allocate(Record{Key: key(100)})
	if err != nil || r.IPv4 != old.IPv4 {
		t.Errorf("allocate after release: %v %v; want the only free address %s", r.IPv4, err, old.IPv4)
	}
	checkInvariants(t, s)
}

func TestPodMAC(t *testing.T) {
	for _, c := range []struct{ v4, v6, want string }{
		{"10.244.1.7", "fd00::1:2:3:4", "0a:58:0a:f4:01:07"},
		{"", "fd00::1:2:a0b:c0d", "0a:58:0a:0b:0c:0d"},
	} {
		var v4, v6 netip.Addr
		if c.v4 != "" {
			v4 = netip.MustParseAddr(c.v4)
		}
		v6 = netip.MustParseAddr(c.v6)
		mac := PodMAC(v4, v6)
		if mac.String() != c.want || mac[0]&1 != 0 || mac[0]&2 == 0 {
			t.Errorf("PodMAC(%v, %v) = %v, want %s (unicast, locally administered)", v4, v6, mac, c.want)
		}
	}
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.db")
	s := open(t, path)
	r1, _, _ := s.Allocate(Record{Key: key(1)})
	s.Update(key(1), func(r *Record) { r.HostIfname = "rnabc" })
	s.Close()
	s = open(t, path)
	defer s.Close()
	got, ok, err := s.Get(key(1))
	if err != nil || !ok || got.IPv4 != r1.IPv4 || got.HostIfname != "rnabc" {
		t.Fatalf("after reopen: %+v ok=%v err=%v", got, ok, err)
	}
	r2, _, _ := s.Allocate(Record{Key: key(2)})
	if r2.IPv4 == r1.IPv4 {
		t.Fatal("reopened store handed out a held address")
	}
	if _, err := Open(path, pools); err == nil || !strings.Contains(err.Error(), "another ringnetd") {
		t.Errorf("second Open of a locked store: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ipam.db"), []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				k := key(g*100 + i)
				if _, _, err := s.Allocate(Record{Key: k}); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					s.Release(k)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(checkInvariants(t, s)); n == 0 {
		t.Error("nothing allocated")
	}
}

// TestKill9 kills a process that allocates and releases in a loop at random
// moments, many times, and checks after each that the store is consistent
// and no address has two owners.
func TestKill9(t *testing.T) {
	if os.Getenv("RINGNET_IPAM_CHILD") != "" {
		t.Skip("child")
	}
	path := filepath.Join(t.TempDir(), "ipam.db")
	exe, _ := os.Executable()
	for round := range 6 {
		cmd := exec.Command(exe, "-test.run=^TestChildLoop$")
		cmd.Env = append(os.Environ(), "RINGNET_IPAM_CHILD="+path, fmt.Sprintf("RINGNET_IPAM_SEED=%d", round))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rand.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		s := open(t, path)
		if n := len(checkInvariants(t, s)); round == 5 && n == 0 {
			t.Error("the child never allocated")
		}
		s.Close()
	}
}

func TestChildLoop(t *testing.T) {
	path := os.Getenv("RINGNET_IPAM_CHILD")
	if path == "" {
		t.Skip("run by TestKill9")
	}
	s, err := Open(path, pools)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(len(os.Getenv("RINGNET_IPAM_SEED"))), uint64(time.Now().UnixNano())))
	for {
		k := key(r.IntN(20))
		if r.IntN(2) == 0 {
			s.Allocate(Record{Key: k})
		} else {
			s.Release(k)
		}
	}
}
