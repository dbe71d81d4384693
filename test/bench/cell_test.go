package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// scale returns the run's [Scale] or fails the benchmark; it also skips
// without root (harness.RequireRoot).
func scale(b *testing.B) Scale {
	b.Helper()
	harness.RequireRoot(b)
	s, err := ScaleFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var (
	memoMu sync.Mutex
	memo   = map[string][]Result{}
)

// cell is the body of one sub-benchmark. The first call of a run (b.N ==
// 1: a new -count, or the only call under -benchtime=1x) measures with
// fn, saves the results ([Save]) and reports them; later calls with a
// larger b.N only report them again, so the expensive setup runs once
// whatever -benchtime says. The first result is the cell's own: a
// duration becomes ns/op, any other unit is reported as is. Further
// results are reported as "<workload>-<unit>". A skipped first result
// skips the benchmark.
func cell(b *testing.B, fn func(b *testing.B) []Result) {
	b.Helper()
	memoMu.Lock()
	rs, ok := memo[b.Name()]
	memoMu.Unlock()
	if b.N == 1 || !ok {
		if _, quiet := settle(context.Background()); !quiet {
			b.Logf("the machine was not quiet within %s: the cell starts anyway", settleMax)
		}
		rs = fn(b)
		for _, r := range rs {
			if err := Save(r); err != nil {
				b.Fatal(err)
			}
		}
		memoMu.Lock()
		memo[b.Name()] = rs
		memoMu.Unlock()
	}
	if len(rs) == 0 {
		return
	}
	if rs[0].Skipped != "" {
		b.Skip(rs[0].Skipped)
	}
	b.ReportMetric(0, "ns/op")
	for i, r := range rs {
		if r.Skipped != "" {
			continue
		}
		unit, v := r.Unit, r.Median
		if unit == "s" {
			unit, v = "ns/op", v*1e9
		}
		if i > 0 {
			unit = r.Workload + "-" + unit
		}
		b.ReportMetric(v, unit)
		if r.LowerBound {
			b.Logf("%s %s: lower bound, aborted after %.1f s", r.Workload, r.Backend, r.Median)
		}
	}
	if n := len(rs[0].Samples); n > 0 {
		b.ReportMetric(float64(n), "samples")
	}
}

// durations turns the timings of a repeated operation into a Result;
// an aborted loop adds its time as a lower-bound sample, and no timings
// at all (the repetitions stopped before this operation) skip it.
func durations(r Result, ds []time.Duration, o Outcome) Result {
	if o.Warm > 0 && len(ds) > o.Warm {
		ds = ds[o.Warm:]
	}
	r.Unit = "s"
	if len(ds) == 0 && !o.Aborted {
		r.Skipped = "not run: the operation before it in each repetition did not finish within the time limit"
		return r
	}
	r.Samples = Seconds(ds)
	r.Median = Median(r.Samples)
	if o.Aborted {
		r.LowerBound = true
		r.Median = o.Spent.Seconds()
		r.Samples = append(r.Samples, r.Median)
		r.Note = strings.TrimSpace(r.Note + fmt.Sprintf(" aborted after %.1f s (limit); larger sizes are skipped", o.Spent.Seconds()))
	}
	return r
}

// tooSlow remembers, per backend, why larger sizes of a workload are
// skipped once an operation ran into the abort limit.
type tooSlow map[string]string

func (t tooSlow) check(r Result) {
	if r.LowerBound {
		t[r.Backend] = fmt.Sprintf("skipped: at %s=%d one operation took over %.0f s", r.Param, r.Size, r.Median)
	}
}

// setup creates a namespace for backend name, initialised, with networks
// 0..nets-1 and the given bindings pre-filled (untimed); everything is
// removed by b's cleanup.
func setup(b *testing.B, name string, nets, nbindings int) (Backend, *harness.NS) {
	b.Helper()
	ctx := context.Background()
	ns, del, err := NewNS(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(del)
	be, err := NewBackend(ctx, name, ns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	if err := be.Init(ctx); err != nil {
		b.Fatalf("%s init: %v", name, err)
	}
	if err := be.PrefillNetworks(ctx, 0, nets); err != nil {
		b.Fatalf("%s prefill %d networks: %v", name, nets, err)
	}
	if err := be.PrefillBindings(ctx, bindings(0, nbindings)); err != nil {
		b.Fatalf("%s prefill %d bindings: %v", name, nbindings, err)
	}
	if d, ok := be.(*dnftBackend); ok && nbindings > 0 {
		ps, err := d.fw.Ports(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(ps) != nbindings {
			b.Fatalf("dnft: published %d bindings in batches of %d, but %d are in the kernel", nbindings, prefillBatch, len(ps))
		}
	}
	return be, ns
}
