// Package chart draws the benchmark report's figures as PNG files with
// gonum/plot: Bars, groups of bars each with its min–max range (pps by
// datapath, latency percentiles per datapath, CNI ADD latency per plugin),
// and Lines, a figure against a count on a linear or log axis (policy
// cost against rule count).
//
// A chart is a value the caller fills and then writes with WritePNG; it
// keeps no state and nothing here is safe to share while it is being
// filled. Every figure is a median over rounds with the range of the
// rounds around it, as bench/internal/figure summarises them.
package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Size of every chart: 8 × 4.5 in at DPI dots per inch.
const (
	Width  = 8 * vg.Inch
	Height = 4.5 * vg.Inch
	DPI    = 120
)

// Value is a median and the range of the rounds around it. A NaN median
// is a figure that was not measured: nothing is drawn for it.
type Value struct {
	Median, Min, Max float64
}

// Missing is a Value that was not measured.
var Missing = Value{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}

// Point is a Value with no range.
func Point(v float64) Value { return Value{v, v, v} }

// Measured reports whether v was measured.
func (v Value) Measured() bool { return !math.IsNaN(v.Median) && !math.IsInf(v.Median, 0) }

// lo and hi are the ends of the range, the median if the range is unknown.
func (v Value) lo() float64 {
	if math.IsNaN(v.Min) {
		return v.Median
	}
	return min(v.Min, v.Median)
}

func (v Value) hi() float64 {
	if math.IsNaN(v.Max) {
		return v.Median
	}
	return max(v.Max, v.Median)
}

// Palette colours the series of a chart in order. The first is for
// baselines (the kernel, another plugin), the second for ringnet.
var Palette = []color.Color{
	color.RGBA{0x8c, 0x8c, 0x8c, 0xff}, // grey
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, // blue
	color.RGBA{0xff, 0x7f, 0x0e, 0xff}, // orange
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, // green
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, // red
	color.RGBA{0x94, 0x67, 0xbd, 0xff}, // purple
}

// targetColor draws a target's level.
var targetColor = color.RGBA{0xd6, 0x27, 0x28, 0xff}

func colorOf(i int) color.Color { return Palette[i%len(Palette)] }

// Compact writes v shortly for a label or a tick: 565k, 1.2M, 18.6, 0.52.
func Compact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(v/1e6, 1) + "M"
	case a >= 1e4:
		return trim(v/1e3, 0) + "k"
	case a >= 1e3:
		return trim(v/1e3, 1) + "k"
	case a >= 100:
		return trim(v, 0)
	case a >= 10:
		return trim(v, 1)
	default:
		return trim(v, 2)
	}
}

func trim(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// compactTicks labels the default ticks with Compact.
type compactTicks struct{ plot.Ticker }

func (t compactTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := t.Ticker.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = Compact(ticks[i].Value)
		}
	}
	return ticks
}

// newPlot is a plot with the house look: title, axis labels, a white
// background, a light horizontal grid, compact tick labels on y.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	p.Y.Tick.Marker = compactTicks{plot.DefaultTicks{}}
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(10)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p
}

// save draws p and writes it as a PNG file.
func save(p *plot.Plot, path string) (err error) {
	c := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(Width, Height), vgimg.UseDPI(DPI),
		vgimg.UseBackgroundColor(color.White))}
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := c.WriteTo(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// grid is light horizontal lines behind the data; vertical ones with
// vertical set (a numeric x axis).
func grid(vertical bool) *plotter.Grid {
	g := plotter.NewGrid()
	g.Horizontal.Color = color.Gray{Y: 0xdd}
	g.Vertical.Color = nil
	if vertical {
		g.Vertical.Color = color.Gray{Y: 0xee}
	}
	return g
}
