package cpustat

import (
	"slices"
	"testing"
)

func TestKept(t *testing.T) {
	quiet, busy := Noise{}, Noise{Disturbed: true}
	for _, c := range []struct {
		in   []Noise
		want []bool
	}{
		{[]Noise{quiet, busy, quiet}, []bool{true, false, true}},
		{[]Noise{busy, busy}, []bool{true, true}}, // all disturbed: all kept
		{nil, []bool{}},
	} {
		if got := Kept(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Kept(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
