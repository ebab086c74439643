package snapshot

import (
	"errors"
	"sync"
	"testing"
)

type table struct {
	gen  uint64
	data [4]uint64 // every element equals gen: a torn snapshot would show
}

func (t *table) Generation() uint64 { return t.gen }

func newTable(gen uint64) *table {
	return &table{gen: gen, data: [4]uint64{gen, gen, gen, gen}}
}

func TestStoreOrder(t *testing.T) {
	var p Pointer[table, *table]
	if err := p.Store(newTable(5)); err != nil {
		t.Fatalf("first Store: %v", err)
	}
	for _, gen := range []uint64{5, 4, 0} {
		if err := p.Store(newTable(gen)); !errors.Is(err, ErrStale) {
			t.Errorf("Store(gen %d) after 5 = %v, want ErrStale", gen, err)
		}
	}
	if got := p.Load().Generation(); got != 5 {
		t.Errorf("after stale stores Load().Generation() = %d, want 5", got)
	}
	if err := p.Store(newTable(6)); err != nil {
		t.Errorf("Store(gen 6) after 5: %v", err)
	}
	if err := p.Store(nil); err == nil {
		t.Error("Store(nil) succeeded")
	}
	p.Init(newTable(1))
	if got := p.Load().Generation(); got != 1 {
		t.Errorf("after Init(gen 1) Load().Generation() = %d, want 1", got)
	}
}

// TestConcurrent has readers check that every snapshot they load is whole
// and that generations never go back, while writers race to publish.
func TestConcurrent(t *testing.T) {
	var p Pointer[table, *table]
	p.Init(newTable(0))
	const gens = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{}) // closed when the writers are done
	for range 4 {
		wg.Go(func() {
			var last uint64
			for {
				s := p.Load()
				for _, v := range s.data {
					if v != s.gen {
						t.Errorf("snapshot gen %d holds %d", s.gen, v)
						return
					}
				}
				if s.gen < last {
					t.Errorf("generation went back from %d to %d", last, s.gen)
					return
				}
				last = s.gen
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for g := uint64(1 + w); g <= gens; g += 2 {
				if err := p.Store(newTable(g)); err != nil && !errors.Is(err, ErrStale) {
					t.Errorf("Store(gen %d): %v", g, err)
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if got := p.Load().Generation(); got != gens {
		t.Errorf("final generation %d, want %d", got, gens)
	}
}

func TestLoadAllocs(t *testing.T) {
	var p Pointer[table, *table]
	p.Init(newTable(1))
	if n := testing.AllocsPerRun(1000, func() { _ = p.Load() }); n != 0 {
		t.Errorf("Load allocates %v times per run", n)
	}
}
