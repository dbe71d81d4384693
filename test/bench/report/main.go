// Command report turns the results of dnft's benchmarks (test/bench, the
// JSON lines that DNFT_BENCH_RESULTS collects) into results.md (medians
// and ratios against dnft, with the machine description), PNG plots, and
// the must-show checks, printed as PASS/FAIL lines.
//
//	go run . -in results.jsonl -machine machine.txt -out DIR
//
// It exits 0 when every check passes, 3 when one fails or could not be
// evaluated because its inputs were not measured (printed SKIP: a
// missing baseline is not a pass), 1 on errors. With -partial (a run of
// some benchmarks only) a SKIP does not fail the run; a FAIL still does. It is
// a module of its own so that its plotting dependency (gonum.org/v1/plot)
// stays out of dnft's module.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	in := flag.String("in", "results.jsonl", "benchmark results (JSON lines)")
	machine := flag.String("machine", "", "machine description file (optional)")
	out := flag.String("out", ".", "output directory for results.md and the plots")
	partial := flag.Bool("partial", false, "some benchmarks only: checks that were not measured (SKIP) do not fail the run")
	flag.Parse()
	if err := run(*in, *machine, *out, *partial); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, machinePath, out string, partial bool) error {
	rs, err := load(in)
	if err != nil {
		return err
	}
	var machine []byte
	if machinePath != "" {
		if machine, err = os.ReadFile(machinePath); err != nil {
			return err
		}
	}
	checks := mustShow(rs)
	plots, err := writePlots(rs, out)
	if err != nil {
		return err
	}
	md := markdown(rs, string(machine), checks, plots)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	failed := false
	for _, c := range checks {
		fmt.Println(c.line())
		failed = failed || c.verdict() == "FAIL" || (c.verdict() == "SKIP" && !partial)
	}
	for _, c := range infoChecks(rs) {
		fmt.Println("info: " + c.line())
	}
	fmt.Printf("report: wrote %s and %d plots\n", filepath.Join(out, "results.md"), len(plots))
	if failed {
		os.Exit(3)
	}
	return nil
}
