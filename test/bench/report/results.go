package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
)

// Result is one cell as the benchmarks write it (bench.Result).
type Result struct {
	Workload   string    `json:"workload"`
	Backend    string    `json:"backend"`
	Param      string    `json:"param,omitempty"`
	Size       int       `json:"size"`
	Unit       string    `json:"unit"`
	Median     float64   `json:"median"`
	Samples    []float64 `json:"samples,omitempty"`
	LowerBound bool      `json:"lower_bound,omitempty"`
	Skipped    string    `json:"skipped,omitempty"`
	Note       string    `json:"note,omitempty"`
	// Estimated marks a value computed by the report, not measured.
	Estimated bool `json:"-"`
}

// Results are all cells of a run. A cell measured more than once (go test
// -count) keeps the median of its medians.
type Results []Result

func load(path string) (Results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type key struct {
		w, b, p string
		n       int
	}
	idx := map[key]int{}
	var rs Results
	var runs [][]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		k := key{r.Workload, r.Backend, r.Param, r.Size}
		i, seen := idx[k]
		if !seen {
			idx[k] = len(rs)
			rs = append(rs, r)
			runs = append(runs, nil)
			i = len(rs) - 1
		} else if rs[i].Skipped != "" {
			rs[i] = r
		}
		if r.Skipped == "" {
			runs[i] = append(runs[i], r.Median)
			rs[i].LowerBound = rs[i].LowerBound || r.LowerBound
		}
	}
	for i := range rs {
		if len(runs[i]) > 1 {
			rs[i].Median = median(runs[i])
			rs[i].Note = fmt.Sprintf("median of %d runs; %s", len(runs[i]), rs[i].Note)
		}
	}
	return rs, sc.Err()
}

// get returns the cell, if any.
func (rs Results) get(workload, backend string, size int) (Result, bool) {
	for _, r := range rs {
		if r.Workload == workload && r.Backend == backend && r.Size == size {
			return r, true
		}
	}
	return Result{}, false
}

// value returns a measured (not skipped) cell's median.
func (rs Results) value(workload, backend string, size int) (float64, bool) {
	r, ok := rs.get(workload, backend, size)
	if !ok || r.Skipped != "" {
		return 0, false
	}
	return r.Median, true
}

// sizes returns the sizes a workload was measured at, ascending.
func (rs Results) sizes(workload string) []int { return rs.sizesParam(workload, "") }

// sizesParam is sizes restricted to one size parameter ("" for any).
func (rs Results) sizesParam(workload, param string) []int {
	var out []int
	for _, r := range rs {
		if r.Workload == workload && (param == "" || r.Param == param) && !slices.Contains(out, r.Size) {
			out = append(out, r.Size)
		}
	}
	slices.Sort(out)
	return out
}

// backends returns the backends of a workload in first-seen order.
func (rs Results) backends(workload string) []string {
	var out []string
	for _, r := range rs {
		if r.Workload == workload && !slices.Contains(out, r.Backend) {
			out = append(out, r.Backend)
		}
	}
	return out
}

// param returns the size parameter's name of a workload.
func (rs Results) param(workload string) string {
	for _, r := range rs {
		if r.Workload == workload {
			return r.Param
		}
	}
	return ""
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// estimateBatch estimates a batch of n operations of a backend from its
// per-operation medians measured at several existing sizes (workload
// "publish-one" or "unpublish-one"): the sum over i < n of the cost at i
// existing, interpolated linearly between the measured sizes (and held
// flat beyond the last). ok is false without two measured sizes.
func (rs Results) estimateBatch(oneWorkload, backend string, n int) (float64, bool) {
	type pt struct{ x, y float64 }
	var pts []pt
	for _, s := range rs.sizes(oneWorkload) {
		r, ok := rs.get(oneWorkload, backend, s)
		if ok && r.Skipped == "" && !r.LowerBound {
			pts = append(pts, pt{float64(s), r.Median})
		}
	}
	if len(pts) < 2 {
		return 0, false
	}
	at := func(x float64) float64 {
		for i := 1; i < len(pts); i++ {
			if x <= pts[i].x {
				a, b := pts[i-1], pts[i]
				return a.y + (b.y-a.y)*(x-a.x)/(b.x-a.x)
			}
		}
		return pts[len(pts)-1].y
	}
	// Trapezoids over [0, n] with 100 steps are plenty for a linear curve.
	const steps = 100
	total, h := 0.0, float64(n)/steps
	for i := range steps {
		x0, x1 := float64(i)*h, float64(i+1)*h
		total += (at(x0) + at(x1)) / 2 * h
	}
	return total, true
}
