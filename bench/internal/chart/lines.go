package chart

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Lines is a figure against a number on x (policy cost against rule
// count): a line with a marker per point and the min–max range over each
// point. On a log axis (LogX, LogY) a point cannot stand at 0: a series'
// point at x = 0 is drawn as a dashed level across the chart, named in the
// legend with ZeroName ("no rules"), and points with y ≤ 0 are left out.
type Lines struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	ZeroName              string
	Series                []Line
}

// Line is one series: Values[i] measured at X[i].
type Line struct {
	Name   string
	X      []float64
	Values []Value
	Color  color.Color // nil: Palette, by the series' index
}

// WritePNG draws the chart into a PNG file at path.
func (l Lines) WritePNG(path string) error {
	p := newPlot(l.Title, l.XLabel, l.YLabel)
	p.Add(grid(true))
	if l.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = compactTicks{plot.LogTicks{Prec: -1}}
	}
	if l.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = compactTicks{plot.LogTicks{Prec: -1}}
	}
	type level struct {
		name  string
		y     float64
		color color.Color
	}
	var levels []level
	xmin, xmax, drawn := math.Inf(1), math.Inf(-1), 0
	for i, s := range l.Series {
		if len(s.X) != len(s.Values) {
			return fmt.Errorf("chart: series %q has %d x for %d values", s.Name, len(s.X), len(s.Values))
		}
		col := s.Color
		if col == nil {
			col = colorOf(i)
		}
		type point struct {
			x float64
			v Value
		}
		var pts []point
		for j, x := range s.X {
			v := s.Values[j]
			switch {
			case !v.Measured() || (l.LogY && v.lo() <= 0):
				continue
			case x <= 0 && l.LogX:
				levels = append(levels, level{s.Name + ", " + l.ZeroName, v.Median, col})
				continue
			}
			pts = append(pts, point{x, v})
			xmin, xmax = min(xmin, x), max(xmax, x)
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.x, b.x) })
		sorted, sortedErrs := make(plotter.XYs, len(pts)), make(plotter.YErrors, len(pts))
		for k, pt := range pts {
			sorted[k] = plotter.XY{X: pt.x, Y: pt.v.Median}
			sortedErrs[k].Low, sortedErrs[k].High = pt.v.Median-pt.v.lo(), pt.v.hi()-pt.v.Median
		}
		line, marks, err := plotter.NewLinePoints(sorted)
		if err != nil {
			return fmt.Errorf("chart: series %q: %w", s.Name, err)
		}
		line.Color, line.Width = col, vg.Points(1.5)
		marks.Color, marks.Shape, marks.Radius = col, draw.CircleGlyph{}, vg.Points(2.5)
		bars, err := plotter.NewYErrorBars(errorPoints{sorted, sortedErrs})
		if err != nil {
			return fmt.Errorf("chart: series %q: %w", s.Name, err)
		}
		bars.Color = col
		p.Add(line, marks, bars)
		p.Legend.Add(s.Name, line, marks)
		drawn++
	}
	if drawn == 0 {
		return errors.New("chart: nothing measured")
	}
	for _, lv := range levels {
		ln, err := plotter.NewLine(plotter.XYs{{X: xmin, Y: lv.y}, {X: xmax, Y: lv.y}})
		if err != nil {
			return err
		}
		ln.Color, ln.Dashes, ln.Width = lv.color, []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1)
		p.Add(ln)
		p.Legend.Add(lv.name, ln)
	}
	// Room on either side of the points, and above them for the legend.
	if l.LogX {
		p.X.Min, p.X.Max = xmin/1.5, xmax*1.5
	} else {
		span := (xmax - xmin) * 0.04
		p.X.Min, p.X.Max = xmin-span, xmax+span
	}
	if l.LogY {
		p.Y.Max *= 3
	} else {
		p.Y.Min, p.Y.Max = min(0, p.Y.Min), p.Y.Max*1.3
	}
	return save(p, path)
}

// errorPoints are a series' points with their ranges, for YErrorBars.
type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}
