package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStateCLI measures the commands that read dnft's whole state
// from the kernel, as processes (the static binary, started in the
// namespace), at growing numbers of bindings: `dnft check` (which reads
// the tables back, validates both copies of every record, builds what
// they should hold and compares rules, policies and elements by key and
// value; exit 0: no drift) and `dnft save` (the state document). Each
// repetition runs under GNU time: the cell is the wall-clock time of the
// run (GNU time's own fork and exec, about a millisecond, included) and a
// second result its peak resident memory (maxrss, KiB).
func BenchmarkStateCLI(b *testing.B) {
	s := scale(b)
	dnftBin := filepath.Join(binaries(b), "dnft")
	if _, err := os.Stat(GNUTime); err != nil {
		b.Fatalf("needs GNU time at %s (apt-get install time): %v", GNUTime, err)
	}
	slow := tooSlow{}
	for _, n := range s.State {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			_, ns := setup(b, "dnft", 1, n)
			for _, cmd := range []string{"check", "save"} {
				b.Run(cmd, func(b *testing.B) {
					cell(b, func(b *testing.B) []Result {
						label := "dnft " + cmd
						r := Result{Workload: "state-cli", Backend: label, Param: "bindings", Size: n,
							Note: fmt.Sprintf("dnft --netns NS %s (process, under GNU time)", cmd)}
						if why := slow[label]; why != "" {
							r.Skipped = why
							return []Result{r}
						}
						var ds []time.Duration
						var kib []float64
						o, err := s.Repeat(context.Background(), func(ctx context.Context, _ int) error {
							return timed(&ds, func() error {
								kb, err := PeakRSS(ctx, ns, "", dnftBin, []string{"--netns", ns.Path(), cmd})
								if err == nil {
									kib = append(kib, float64(kb))
								}
								return err
							})
						})
						if err != nil {
							b.Fatal(err)
						}
						r = durations(r, ds, o)
						slow.check(r)
						hwm := Result{Workload: "state-cli-hwm", Backend: label, Param: "bindings", Size: n, Unit: "KiB",
							Samples: kib, Median: Median(kib), Note: "peak RSS of " + r.Note}
						if len(kib) == 0 {
							hwm.Skipped = "not measured: no run finished"
						}
						return []Result{r, hwm}
					})
				})
			}
		})
	}
}
