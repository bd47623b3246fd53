package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	systemColor = map[string]color.Color{
		"wharf": color.RGBA{R: 0x1f, G: 0x6f, B: 0xc5, A: 0xff},
		"river": color.RGBA{R: 0xe0, G: 0x7b, B: 0x10, A: 0xff},
	}
	stressShade = color.NRGBA{R: 0xe5, G: 0x39, B: 0x35, A: 0x2a}
	drainShade  = color.NRGBA{R: 0x80, G: 0x80, B: 0x80, A: 0x22}
	targetColor = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// phaseShading shades the stress phase (and the drain) over the whole
// height of a panel.
type phaseShading struct {
	spans []PhaseSpan
}

func (s phaseShading) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, _ := plt.Transforms(&c)
	for _, sp := range s.spans {
		var clr color.Color
		switch sp.Name {
		case phaseStress:
			clr = stressShade
		case phaseDrain:
			clr = drainShade
		default:
			continue
		}
		x0, x1 := trX(sp.Start), trX(sp.End)
		x0, x1 = max(x0, c.Min.X), min(x1, c.Max.X)
		if x1 <= x0 {
			continue
		}
		c.FillPolygon(clr, []vg.Point{{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
	}
}

// shadeThumb draws a legend swatch.
type shadeThumb struct{ clr color.Color }

func (s shadeThumb) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.clr, []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}})
}

func newPanel(title, ylabel string, run *ScenarioRun) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.X.Label.Text = "seconds"
	p.X.Min = 0
	p.X.Max = run.Phases[len(run.Phases)-1].End
	p.X.Tick.Marker = linearTicks{}
	p.Y.Tick.Marker = linearTicks{}
	p.Add(phaseShading{spans: run.Phases})
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	return p
}

func addLine(p *plot.Plot, xy plotter.XYs, clr color.Color, dashed bool, width vg.Length, label string) error {
	if len(xy) < 2 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = clr
	l.Width = width
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	if label != "" {
		p.Legend.Add(label, l)
	}
	return nil
}

// plotRun draws a scenario's three panels (throughput, pickup p99, the
// dialect's table statistic) with the stress phase shaded, as one SVG (or
// PNG when path ends in .png).
func plotRun(run *ScenarioRun, path string) error {
	label := map[string]string{"wharf": "wharf", "river": "River"}
	title := fmt.Sprintf("%s — %s", run.Dialect, run.Scenario)

	thr := newPanel(title+": throughput", "msgs/s", run)
	lat := newPanel("pickup latency p99 (per second, log scale)", "ms", run)
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = logTicks{}
	key, dbLabel := dbHeadline(run.Dialect)
	dbp := newPanel(dbLabel+" (per second)", dbLabel, run)
	cost := newPanel("claim cost: shared buffers per claim statement (pg_stat_statements, per second, log scale)", "buffers", run)
	cost.Y.Scale = plot.LogScale{}
	cost.Y.Tick.Marker = logTicks{}
	hasCost := false

	for i, s := range run.Systems {
		clr := systemColor[s.System]
		var target, done, p99 plotter.XYs
		for _, pt := range s.Series {
			target = append(target, plotter.XY{X: pt.T, Y: pt.Target})
			done = append(done, plotter.XY{X: pt.T, Y: pt.Completed})
			if pt.N > 0 {
				p99 = append(p99, plotter.XY{X: pt.T, Y: math.Max(pt.P99, 0.1)})
			}
		}
		if i == 0 {
			if err := addLine(thr, target, targetColor, true, vg.Points(1), "offered (target)"); err != nil {
				return err
			}
		}
		if err := addLine(thr, done, clr, false, vg.Points(1.2), label[s.System]+" completed"); err != nil {
			return err
		}
		if err := addLine(lat, p99, clr, false, vg.Points(1.2), label[s.System]+" p99"); err != nil {
			return err
		}
		var db plotter.XYs
		for _, d := range run.DB {
			v, ok := d.Values[s.System+"."+key]
			if !ok {
				v, ok = d.Values[key]
			}
			if ok {
				db = append(db, plotter.XY{X: d.T, Y: v})
			}
		}
		name := label[s.System]
		if run.Dialect == "mysql" {
			name = "InnoDB history list length"
		}
		if err := addLine(dbp, db, clr, false, vg.Points(1.2), name); err != nil {
			return err
		}
		var bpc plotter.XYs
		for i := 1; i < len(run.DB); i++ {
			a, b := run.DB[i-1].Values, run.DB[i].Values
			calls := b[s.System+".claim_calls"] - a[s.System+".claim_calls"]
			if calls > 0 {
				bpc = append(bpc, plotter.XY{X: run.DB[i].T, Y: math.Max((b[s.System+".claim_buffers"]-a[s.System+".claim_buffers"])/calls, 0.1)})
			}
		}
		if len(bpc) > 1 {
			hasCost = true
			if err := addLine(cost, bpc, clr, false, vg.Points(1.2), label[s.System]); err != nil {
				return err
			}
		}
		if run.Dialect == "mysql" {
			break // one server-wide series
		}
	}
	thr.Legend.Add("stress phase", shadeThumb{stressShade})
	thr.Legend.Add("drain", shadeThumb{drainShade})
	// Headroom above the data for the legends.
	// A catch-up burst may reach many times the rate: the axis stops at
	// 3× the highest target (lines are clipped).
	var maxTarget float64
	for _, s := range run.Systems {
		for _, pt := range s.Series {
			maxTarget = math.Max(maxTarget, pt.Target)
		}
	}
	if maxTarget > 0 {
		thr.Y.Max = math.Min(thr.Y.Max, 3*maxTarget)
	}
	thr.Y.Min, thr.Y.Max = 0, thr.Y.Max*1.45
	dbp.Y.Min, dbp.Y.Max = 0, math.Max(dbp.Y.Max*1.3, 1)
	lat.Y.Min, lat.Y.Max = math.Max(lat.Y.Min, 0.1), math.Max(lat.Y.Max*6, 1)
	cost.Y.Min, cost.Y.Max = math.Max(cost.Y.Min, 0.1), math.Max(cost.Y.Max*6, 1)

	panels := [][]*plot.Plot{{thr}, {lat}, {dbp}}
	if hasCost {
		panels = append(panels, []*plot.Plot{cost})
	}
	w, h := 8*vg.Inch, vg.Length(3*len(panels))*vg.Inch
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if strings.HasSuffix(path, ".png") {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))}
	} else {
		c = vgsvg.New(w, h)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadY: vg.Points(10), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		panels[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logTicks labels 1, 2 and 5 times the powers of ten in range (gonum's
// LogTicks labels the powers of ten only).
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	mults := []float64{1, 2, 5}
	if hi/lo > 1e4 {
		mults = []float64{1} // wide ranges: powers of ten only, or the labels collide
	}
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range mults {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
		for m := 2.0; m < 10; m++ {
			if v := m * math.Pow(10, e); v >= lo && v <= hi && !slices.Contains(mults, m) {
				out = append(out, plot.Tick{Value: v}) // minor
			}
		}
	}
	return out
}

// linearTicks labels round values, 1, 2 or 5 times a power of ten apart,
// without trailing zeros (gonum's default ticks print "25.00").
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	base := math.Pow(10, math.Floor(math.Log10(hi-lo)))
	step := base
	for _, m := range []float64{0.1, 0.2, 0.5, 1} {
		if (hi-lo)/(m*base) <= 8 {
			step = m * base
			break
		}
	}
	dec := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	var out []plot.Tick
	for k := math.Ceil(lo/step - 1e-9); k*step <= hi+step*1e-9; k++ {
		v := k*step + 0 // no "-0"
		// shortest form of the value rounded to the step: 0.6, not 0.6000000000000001 or 0.60
		r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', dec, 64), 64)
		out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(r, 'f', -1, 64)})
		if minor := v + step/2; minor < hi {
			out = append(out, plot.Tick{Value: minor})
		}
	}
	return out
}
