package bench

import (
	"encoding/json"
	"os"
	"slices"
	"sync"
	"time"
)

// Result is one measured cell: a workload at one size for one backend.
// It is the line format of the DNFT_BENCH_RESULTS file that the report
// generator (test/bench/report) reads.
type Result struct {
	// Workload names what was measured, e.g. "publish-one".
	Workload string `json:"workload"`
	// Backend is a name from [BackendNames], or "iptables (reference)"
	// and the like for views and the data plane.
	Backend string `json:"backend"`
	// Param names the size ("existing", "networks", "bindings"); Size is
	// its value.
	Param string `json:"param,omitempty"`
	Size  int    `json:"size"`
	// Unit is "s", "conn/s", "req/s", "KiB", "bytes" or "count".
	Unit string `json:"unit"`
	// Median is the median of Samples.
	Median  float64   `json:"median"`
	Samples []float64 `json:"samples,omitempty"`
	// LowerBound marks an operation aborted at the time limit: Median is
	// the time it had taken so far.
	LowerBound bool `json:"lower_bound,omitempty"`
	// Skipped gives the reason a cell was not measured.
	Skipped string `json:"skipped,omitempty"`
	// Note says anything else the reader needs (e.g. the method).
	Note string `json:"note,omitempty"`
}

// Median returns the median of xs (0 for none); xs is not changed.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Seconds converts durations to seconds.
func Seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

var resultsMu sync.Mutex

// Save appends r as a JSON line to the file named by DNFT_BENCH_RESULTS,
// if set.
func Save(r Result) error {
	path := os.Getenv("DNFT_BENCH_RESULTS")
	if path == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
