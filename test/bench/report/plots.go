package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of a plot: a backend's medians over the sizes of a
// workload (restricted to a size parameter for the data plane).
type series struct {
	label, workload, backend, param string
	scale                           float64 // multiplies the medians (1e3: seconds to ms)
}

// figure is one PNG.
type figure struct {
	file, title, x, y string
	logY              bool
	lines             []series
}

// figures returns the plots the command draws.
func figures(rs Results) []figure {
	lat := func(workload string) []series {
		var out []series
		for _, be := range rs.backends(workload) {
			out = append(out, series{be, workload, be, "", 1e3})
		}
		return out
	}
	rate := func(param string) []series {
		return []series{
			{"dnft TCP", "tcp-connect", "dnft", param, 1},
			{"iptables-ref TCP", "tcp-connect", "iptables-ref", param, 1},
			{"dnft UDP", "udp-request", "dnft", param, 1},
			{"iptables-ref UDP", "udp-request", "iptables-ref", param, 1},
		}
	}
	return []figure{
		{"publish-latency.png", "Publishing one binding", "bindings already published", "median latency (ms, log)", true, lat("publish-one")},
		{"network-create.png", "Creating network number k", "k", "median latency (ms, log)", true, lat("network-create")},
		{"rate-bindings.png", "Connection and request rate vs published bindings", "bindings", "per second (median)", false, rate("bindings")},
		{"rate-networks.png", "Connection and request rate vs networks", "networks", "per second (median)", false, rate("networks")},
	}
}

// writePlots draws every figure that has data and returns the file names.
func writePlots(rs Results, dir string) ([]string, error) {
	var out []string
	for _, f := range figures(rs) {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = f.title, f.x, f.y
		if f.logY {
			p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
		}
		p.Legend.Top, p.Legend.Left = true, true
		var args []any
		for _, s := range f.lines {
			var pts plotter.XYs
			for _, size := range rs.sizesParam(s.workload, s.param) {
				r, ok := rs.get(s.workload, s.backend, size)
				if s.param != "" {
					v, okp := rs.valueParam(s.workload, s.backend, s.param, size)
					r, ok = Result{Median: v}, okp
				}
				if ok && r.Skipped == "" && r.Median > 0 {
					pts = append(pts, plotter.XY{X: float64(size), Y: r.Median * s.scale})
				}
			}
			if len(pts) > 0 {
				args = append(args, s.label, pts)
			}
		}
		if len(args) == 0 {
			continue
		}
		if err := plotutil.AddLinePoints(p, args...); err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
		// Head room for the legend in the top left corner.
		if f.logY {
			p.Y.Max *= 4
		} else {
			p.Y.Min, p.Y.Max = 0, p.Y.Max*1.35
		}
		if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(dir, f.file)); err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
		out = append(out, f.file)
	}
	return out, nil
}

// logTicks marks 1, 2 and 5 times each power of ten on a log axis, so
// that a range of less than two decades still has labels.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for p := math.Pow(10, math.Floor(math.Log10(lo))); p <= hi; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := p * m; v >= lo && v <= hi {
				ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ts
}
