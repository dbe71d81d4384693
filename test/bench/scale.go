package bench

import (
	"fmt"
	"os"
	"time"
)

// Scale holds the sizes and repetition limits of one run.
type Scale struct {
	// Name is "small" or "full".
	Name string
	// Networks are the k of "create network number k".
	Networks []int
	// Existing are the numbers of bindings already published when one
	// more is published.
	Existing []int
	// Batch is the size of the batch publish/unpublish, the listing, the
	// restore and the memory workloads.
	Batch int
	// State are the numbers of bindings at which the commands that read
	// the whole state (dnft check, dnft save) are measured.
	State []int
	// Ingress are the numbers of swarm ingress ports already published
	// when one more is published.
	Ingress []int
	// DataBindings and DataNetworks are the data-plane states; the first
	// of each is the other series' fixed value.
	DataBindings, DataNetworks []int
	// DataRun is the length of one data-plane TCP run (UDP runs take
	// half); DataRuns the number of runs per cell (interleaved across
	// cells: many short runs resist bursts of load from elsewhere better
	// than a few long ones).
	DataRun  time.Duration
	DataRuns int
	// Reps is the number of repetitions of a cell's operation: the same
	// for every backend at every size, so that their medians rest on as
	// many samples. An operation taking longer than Abort is stopped and
	// reported as a lower bound.
	Reps  int
	Abort time.Duration
	// Warm is how many repetitions of a quick operation run before the
	// counted ones (see [Scale.RepeatWarm]).
	Warm int
}

// Scales are the predefined scales.
var Scales = map[string]Scale{
	"small": {
		Name: "small", Networks: []int{1, 5, 20}, Existing: []int{0, 100, 1000}, Batch: 1000, State: []int{1000, 2000}, Ingress: []int{1, 100, 1000},
		DataBindings: []int{10, 100, 1000}, DataNetworks: []int{10, 20, 50},
		DataRun: 150 * time.Millisecond, DataRuns: 6,
		Reps: 5, Abort: 5 * time.Second, Warm: 1,
	},
	"full": {
		Name: "full", Networks: []int{1, 50, 500}, Existing: []int{0, 1000, 5000, 10000}, Batch: 10000, State: []int{10000, 20000, 40000, 65000}, Ingress: []int{1, 1000, 5000},
		DataBindings: []int{10, 1000, 10000}, DataNetworks: []int{10, 100, 500},
		DataRun: 400 * time.Millisecond, DataRuns: 12,
		Reps: 11, Abort: 20 * time.Second, Warm: 2,
	},
}

// ScaleFromEnv returns the scale named by DNFT_BENCH_SCALE ("small" when
// unset).
func ScaleFromEnv() (Scale, error) {
	name := os.Getenv("DNFT_BENCH_SCALE")
	if name == "" {
		name = "small"
	}
	s, ok := Scales[name]
	if !ok {
		return s, fmt.Errorf("bench: DNFT_BENCH_SCALE=%q: want small or full", name)
	}
	return s, nil
}
