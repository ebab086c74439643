package chart

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Bars is a bar chart: one group of bars per Groups entry along x, in each
// group one bar per series that measured it, side by side and centred, its
// height the median and a line with caps over it the min–max range. With
// Labels each bar is labelled with its median (Compact).
type Bars struct {
	Title, YLabel string
	Groups        []string // x labels; "(a) kernel routing" breaks after the id
	Series        []Series
	Labels        bool
	// LogY puts y on a log scale, for figures that span orders of
	// magnitude (a latency tail); the bars rise from the power of ten
	// below the lowest range.
	LogY bool
	// TargetName, if set, draws Target as a dashed red level across the
	// chart, named in the legend: "target: p99 ≤ 20 ms".
	TargetName string
	Target     float64
}

// Series is one bar in every group: its Values are by group, Missing
// where it has none.
type Series struct {
	Name   string
	Values []Value
	Color  color.Color // nil: Palette, by the series' index
}

// WritePNG draws the chart into a PNG file at path.
func (b Bars) WritePNG(path string) error {
	if len(b.Groups) == 0 {
		return errors.New("chart: no groups")
	}
	measured, lowest := false, math.Inf(1)
	b.Series = slices.Clone(b.Series)
	for i, s := range b.Series {
		if len(s.Values) != len(b.Groups) {
			return fmt.Errorf("chart: series %q has %d values for %d groups", s.Name, len(s.Values), len(b.Groups))
		}
		for _, v := range s.Values {
			measured = measured || v.Measured()
			if v.Measured() && v.lo() > 0 {
				lowest = min(lowest, v.lo())
			}
		}
		if s.Color == nil {
			b.Series[i].Color = colorOf(i)
		}
	}
	if !measured {
		return errors.New("chart: nothing measured")
	}
	p := newPlot(b.Title, "", b.YLabel)
	p.Add(grid(false))
	g := &groupedBars{b: b}
	if b.LogY {
		if math.IsInf(lowest, 1) {
			return errors.New("chart: nothing above 0 for a log scale")
		}
		g.base = math.Pow(10, math.Floor(math.Log10(lowest)))
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = compactTicks{plot.LogTicks{Prec: -1}}
	}
	p.Add(g)
	names := make([]string, len(b.Groups))
	for i, n := range b.Groups {
		names[i] = breakID(n)
	}
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(9)
	if len(b.Series) > 1 {
		for i := range b.Series {
			p.Legend.Add(b.Series[i].Name, swatch{b.Series[i].Color})
		}
	}
	if b.TargetName != "" {
		ln, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: b.Target}, {X: float64(len(b.Groups)) - 0.5, Y: b.Target}})
		if err != nil {
			return err
		}
		ln.Color, ln.Width, ln.Dashes = targetColor, vg.Points(1.2), []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(ln)
		p.Legend.Add(b.TargetName, ln)
	}
	return save(p, path)
}

// breakID puts a variant's id, "(a)", on a line of its own.
func breakID(name string) string {
	if strings.HasPrefix(name, "(") {
		if i := strings.Index(name, ") "); i > 0 {
			return name[:i+1] + "\n" + name[i+2:]
		}
	}
	return name
}

// groupedBars is the plotter behind Bars, in data coordinates: group i is
// centred on x = i and its bars share 0.8 of the unit, rising from base
// (0, or on a log scale the power of ten below the lowest figure).
type groupedBars struct {
	b    Bars
	base float64
}

// slot is where bar s of group g stands: its centre and half width in
// data units, or ok false if the series has no value there.
func (g *groupedBars) slot(grp, s int) (centre, half float64, ok bool) {
	var present []int
	for i, se := range g.b.Series {
		if se.Values[grp].Measured() {
			present = append(present, i)
		}
	}
	for k, i := range present {
		if i == s {
			w := 0.8 / float64(len(present))
			return float64(grp) - 0.4 + (float64(k)+0.5)*w, 0.42 * w, true
		}
	}
	return 0, 0, false
}

func (g *groupedBars) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	rng := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	label := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler,
		XAlign: draw.XCenter, YAlign: draw.YBottom}
	label.Font.Size = vg.Points(8)
	for si, s := range g.b.Series {
		for gi, v := range s.Values {
			x, half, ok := g.slot(gi, si)
			if !ok || v.Median <= g.base {
				continue
			}
			x0, x1, y0, y1 := tx(x-half), tx(x+half), ty(g.base), ty(v.Median)
			c.FillPolygon(s.Color, c.ClipPolygonY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
			top := y1
			if lo, hi := max(v.lo(), g.base), v.hi(); hi > lo {
				xc, capw := tx(x), (x1-x0)/4
				c.StrokeLines(rng, c.ClipLinesY([]vg.Point{{X: xc, Y: ty(lo)}, {X: xc, Y: ty(hi)}})...)
				for _, y := range []vg.Length{ty(lo), ty(hi)} {
					c.StrokeLines(rng, c.ClipLinesY([]vg.Point{{X: xc - capw, Y: y}, {X: xc + capw, Y: y}})...)
				}
				top = ty(hi)
			}
			if g.b.Labels {
				c.FillText(label, vg.Point{X: tx(x), Y: top + vg.Points(2)}, Compact(v.Median))
			}
		}
	}
}

// DataRange spans every group and reaches from 0 to the highest range,
// with room above for the labels and the legend.
func (g *groupedBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	for _, s := range g.b.Series {
		for _, v := range s.Values {
			if v.Measured() {
				ymax = max(ymax, v.hi())
			}
		}
	}
	headroom := 1.08
	if len(g.b.Series) > 1 || g.b.TargetName != "" {
		headroom = 1.25 // the legend sits top right
	}
	if g.b.LogY {
		headroom *= headroom * headroom
	}
	return -0.5, float64(len(g.b.Groups)) - 0.5, g.base, ymax * headroom
}

// swatch is a legend entry's filled square.
type swatch struct{ color color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.color, []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}})
}
