package bench

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// Outcome says how a [Scale.Repeat] loop ended.
type Outcome struct {
	// Reps is the number of operations that completed.
	Reps int
	// Aborted is set when an operation ran into the Abort limit; Spent is
	// how long it had run.
	Aborted bool
	Spent   time.Duration
	// Warm is the number of first repetitions that warmed up and are not
	// counted (see [Scale.RepeatWarm] and durations).
	Warm int
}

// RepeatWarm is [Scale.Repeat] with Warm more repetitions first, whose
// timings [durations] leaves out: the first calls of an operation pay for
// cold caches and first-use paths, which a cell of a few quick
// operations would otherwise count.
func (s Scale) RepeatWarm(ctx context.Context, op func(ctx context.Context, rep int) error) (Outcome, error) {
	s.Reps += s.Warm
	o, err := s.Repeat(ctx, op)
	o.Warm = min(s.Warm, o.Reps)
	o.Reps -= o.Warm
	return o, err
}

// Repeat calls op (rep = 0, 1, …) Reps times. op records its own timings (so it can leave preparation
// and undo out of them) and runs with a deadline of Abort: a call that
// runs into it ends the loop with Outcome.Aborted. Any other error is
// returned.
//
// It collects the benchmark process's garbage first, as testing.B does
// before timing: the in-process backend (the library) shares this
// process, and a GC cycle started by the cell's setup (a pre-fill of
// thousands of bindings) would otherwise run during its first
// operations.
func (s Scale) Repeat(ctx context.Context, op func(ctx context.Context, rep int) error) (Outcome, error) {
	runtime.GC()
	var o Outcome
	for o.Reps < s.Reps {
		octx, cancel := context.WithTimeout(ctx, s.Abort)
		t0 := time.Now()
		err := op(octx, o.Reps)
		aborted := octx.Err() != nil && ctx.Err() == nil
		cancel()
		if aborted && (err == nil || errors.Is(err, context.DeadlineExceeded)) {
			o.Aborted, o.Spent = true, time.Since(t0)
			return o, nil
		}
		if err != nil {
			return o, err
		}
		o.Reps++
	}
	return o, nil
}

// timed runs fn and appends its duration to *ds when it succeeds.
func timed(ds *[]time.Duration, fn func() error) error {
	t0 := time.Now()
	if err := fn(); err != nil {
		return err
	}
	*ds = append(*ds, time.Since(t0))
	return nil
}
