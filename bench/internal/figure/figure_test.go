package figure

import "testing"

func TestOf(t *testing.T) {
	s := Of([]float64{5, 1, 3, 2})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 5 || s.N != 4 {
		t.Errorf("Of = %+v", *s)
	}
	if Of(nil) != nil {
		t.Error("Of(nil) != nil")
	}
}

func TestGroup(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1\u202f000", 1234567: "1\u202f234\u202f567"} {
		if got := Group(v); got != want {
			t.Errorf("Group(%v) = %q, want %q", v, got, want)
		}
	}
}
