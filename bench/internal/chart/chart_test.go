package chart

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkPNG decodes the file at path and checks it is a chart: the size
// every chart has, and pixels of each colour in want.
func checkPNG(t *testing.T, path string, want ...color.Color) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if w, h := int(Width.Dots(DPI)), int(Height.Dots(DPI)); b != image.Rect(0, 0, w, h) {
		t.Errorf("%s: %v, want %dx%d", path, b, w, h)
	}
	counts := make([]int, len(want))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for i, c := range want {
				cr, cg, cb, _ := c.RGBA()
				if r == cr && g == cg && bl == cb {
					counts[i]++
				}
			}
		}
	}
	for i, n := range counts {
		if n < 50 {
			t.Errorf("%s: %d pixels of colour %v, want a bar or line of it", path, n, want[i])
		}
	}
}

func TestBars(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bars.png")
	b := Bars{
		Title: "64-byte UDP pps", YLabel: "packets per second",
		Groups: []string{"(a) kernel routing", "(b) asavie/xdp fwd", "(c) ringnetd"},
		Series: []Series{
			{Name: "kernel", Values: []Value{{355833, 349904, 359118}, Missing, Missing}},
			{Name: "ringnet", Values: []Value{Missing, Missing, {564874, 559096, 566303}}},
			{Name: "other", Values: []Value{Missing, Point(553920), Missing}},
		},
		Labels: true,
	}
	if err := b.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, Palette[0], Palette[1], Palette[2])

	// On a log scale, with a target level.
	b.LogY, b.TargetName, b.Target = true, "target", 400000
	if err := b.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, Palette[0], Palette[1], Palette[2], targetColor)
	if b.Series[0].Color != nil {
		t.Error("WritePNG changed the caller's series")
	}
}

func TestBarsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		b   Bars
		err string
	}{
		{Bars{}, "no groups"},
		{Bars{Groups: []string{"a"}, Series: []Series{{Name: "s"}}}, "has 0 values for 1 groups"},
		{Bars{Groups: []string{"a"}, Series: []Series{{Name: "s", Values: []Value{Missing}}}}, "nothing measured"},
		{Bars{Groups: []string{"a"}, Series: []Series{{Name: "s", Values: []Value{Point(0)}}}, LogY: true}, "nothing above 0"},
	} {
		if err := tc.b.WritePNG(filepath.Join(dir, "x.png")); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("WritePNG(%+v) = %v, want %q", tc.b, err, tc.err)
		}
	}
}

func TestLinesLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lines.png")
	l := Lines{
		Title: "policy cost", XLabel: "rules", YLabel: "pps", LogX: true, ZeroName: "no rules",
		Series: []Line{
			{Name: "iptables", X: []float64{1000, 0, 10, 100}, Values: []Value{{5e3, 4e3, 6e3}, Point(3e5), {2.5e5, 2.4e5, 2.6e5}, {1e5, 9e4, 1.1e5}}},
			{Name: "ringnet", X: []float64{0, 10, 100, 1000}, Values: []Value{Point(4e5), Point(4e5), Point(3.9e5), {3.9e5, 3.7e5, 4e5}}},
		},
	}
	if err := l.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, Palette[0], Palette[1])

	l.LogY = true
	if err := l.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, Palette[0], Palette[1])

	if err := (Lines{Series: []Line{{Name: "x", X: []float64{1}}}}).WritePNG(path); err == nil {
		t.Error("mismatched series: no error")
	}
	if err := (Lines{LogX: true, Series: []Line{{Name: "x", X: []float64{0}, Values: []Value{Point(1)}}}}).WritePNG(path); err == nil {
		t.Error("only a point at 0 on a log axis: no error")
	}
}

func TestCompact(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 0.52: "0.52", 3.333: "3.33", 18.64: "18.6", 20: "20", 355.8: "356",
		1500: "1.5k", 9999: "10k", 12000: "12k", 564874: "565k", 1.25e6: "1.2M", 2e6: "2M",
	} {
		if got := Compact(v); got != want {
			t.Errorf("Compact(%v) = %q, want %q", v, got, want)
		}
	}
}
