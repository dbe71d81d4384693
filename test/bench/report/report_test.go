package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cellsFixture is a tiny run: the library, the command and a baseline
// publishing at two sizes, the process floor.
func cellsFixture() Results {
	d := func(w, be string, size int, v float64) Result {
		return Result{Workload: w, Backend: be, Param: "existing", Size: size, Unit: "s", Median: v, Samples: []float64{v, v, v}}
	}
	return Results{
		d("publish-one", "dnft", 0, 40e-6),
		d("publish-one", "dnft", 5000, 45e-6),
		d("publish-one", cliName, 0, 5e-3),
		d("publish-one", cliName, 5000, 6e-3),
		d("publish-one", "iptables-nft+C", 0, 14e-3),
		d("publish-one", "iptables-nft+C", 5000, 400e-3),
		{Workload: "process-start", Backend: emptyGoProgram, Unit: "s", Median: 2.5e-3, Samples: []float64{2.5e-3}},
	}
}

// TestCLIChecks: the command's and the library's targets are evaluated
// from the cells, pass and fail at their limits, and need their inputs.
func TestCLIChecks(t *testing.T) {
	verdicts := func(rs Results) map[string]string {
		out := map[string]string{}
		for _, c := range cliChecks(rs) {
			out[c.name] = c.verdict()
		}
		return out
	}
	rs := cellsFixture()
	for name, v := range verdicts(rs) {
		if v != "PASS" {
			t.Errorf("%s: %s, want PASS", name, v)
		}
	}
	rs[3].Median = 8e-3 // CLI at 5000: 1.6x its time at 0, 50x less than iptables
	got := verdicts(rs)
	if got["CLI publish flat"] != "FAIL" || got["CLI publish vs iptables-nft+C at 5000"] != "PASS" {
		t.Errorf("CLI at 8 ms: %v", got)
	}
	if got := verdicts(rs[:2]); got["CLI publish flat"] != "SKIP" || got["library publish ≤ 50 µs"] != "PASS" {
		t.Errorf("without the command's cells: %v", got)
	}
}

// TestMarkdown: results.md shows the command next to the library with
// ratios against both, and the run's machine description.
func TestMarkdown(t *testing.T) {
	md := markdown(cellsFixture(), "run time: 1 min", mustShow(cellsFixture()), nil)
	for _, want := range []string{
		"| existing | dnft | dnft CLI | iptables-nft+C |",
		"| 5000 | 45 µs | 6 ms (×133) | 400 ms (×8889; CLI ×66.7) |",
		"run time: 1 min",
		"**PASS** CLI publish vs an empty Go program",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
}

// TestLoad reads JSON lines and keeps the median of a cell measured twice.
func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.jsonl")
	lines := `{"workload":"publish-one","backend":"dnft","size":0,"unit":"s","median":1}
{"workload":"publish-one","backend":"dnft","size":0,"unit":"s","median":3}
`
	if err := os.WriteFile(p, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := load(p)
	if err != nil || len(rs) != 1 || rs[0].Median != 2 {
		t.Fatalf("load: %v %+v", err, rs)
	}
}

// TestStateChecks: `dnft check` at 65k bindings passes within 2 s and
// 150 MB (10^6 bytes) and fails beyond either, is not evaluated without
// its cells; check and save are linear per binding within 1.5x.
func TestStateChecks(t *testing.T) {
	cells := func(sec, kib float64) Results {
		c := func(w, be string, n int, unit string, v float64) Result {
			return Result{Workload: w, Backend: be, Param: "bindings", Size: n, Unit: unit, Median: v, Samples: []float64{v}}
		}
		return Results{
			c("state-cli", "dnft check", 10000, "s", sec/6.5),
			c("state-cli", "dnft check", 65000, "s", sec),
			c("state-cli-hwm", "dnft check", 65000, "KiB", kib),
			c("state-cli", "dnft save", 10000, "s", 0.3),
			c("state-cli", "dnft save", 65000, "s", 2.0),
		}
	}
	for _, tc := range []struct {
		name     string
		rs       Results
		want     string
		linear   string // dnft check linear
		saveLine string // dnft save linear
	}{
		{"within both", cells(1.9, 140000), "PASS", "PASS", "PASS"},
		{"at the limits", cells(2.0, 146484), "PASS", "PASS", "PASS"},
		{"too slow", cells(2.1, 100000), "FAIL", "PASS", "PASS"},
		{"too big", cells(1.5, 150000), "FAIL", "PASS", "PASS"},
		{"no memory cell", cells(1.5, 0)[:2], "SKIP", "PASS", "SKIP"},
		{"none", nil, "SKIP", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := stateChecks(tc.rs)
			if len(cs) != 1 || cs[0].verdict() != tc.want || cs[0].name != "check at 65k ≤ 2 s and ≤ 150 MB" {
				t.Errorf("stateChecks: %+v, want one %s", cs, tc.want)
			}
			got := map[string]string{}
			for _, c := range stateInfoChecks(tc.rs) {
				got[c.name] = c.verdict()
			}
			if got["dnft check linear"] != tc.linear || got["dnft save linear"] != tc.saveLine {
				t.Errorf("stateInfoChecks: %v, want check %q save %q", got, tc.linear, tc.saveLine)
			}
		})
	}
	// Quadratic growth fails the linear check.
	rs := cells(1.9, 140000)
	rs[0].Median = 1.9 / 42
	for _, c := range stateInfoChecks(rs) {
		if c.name == "dnft check linear" && c.verdict() != "FAIL" {
			t.Errorf("quadratic check: %s", c.line())
		}
	}
}

// TestCLIStartPaired: with an empty program started before each CLI
// publication, the start check takes the median of the per-round ratios
// instead of the medians of two cells measured at other times.
func TestCLIStartPaired(t *testing.T) {
	const name = "CLI publish vs an empty Go program"
	for _, tc := range []struct {
		paired []float64
		want   string
	}{
		{nil, "PASS"}, // the separate cell: 5 ms against 2.5 ms
		{[]float64{2.5e-3, 2.4e-3, 2.6e-3}, "PASS"},
		{[]float64{1.5e-3, 1.6e-3, 1.4e-3}, "FAIL"}, // 3.3x, whatever the separate cell says
	} {
		rs := cellsFixture()
		if tc.paired != nil {
			rs = append(rs, Result{Workload: "process-start-paired", Backend: emptyGoProgram, Param: "existing", Size: 0, Unit: "s", Median: median(tc.paired), Samples: tc.paired})
		}
		got := cliStart(rs)
		if got.name != name || got.verdict() != tc.want {
			t.Errorf("paired %v: %s %s (%s), want %s", tc.paired, got.name, got.verdict(), got.text, tc.want)
		}
		if tc.paired != nil && !strings.Contains(got.text, "per-round ratios") {
			t.Errorf("paired %v: %q does not say it compared round by round", tc.paired, got.text)
		}
	}
}

// TestLibPublishSteady: the library's 50 µs check is made on the 2,000
// publications of "publish-one-steady" when the run has them, whatever
// the 11 of its publish-one cell say.
func TestLibPublishSteady(t *testing.T) {
	steady := func(size int, v float64) Result {
		return Result{Workload: "publish-one-steady", Backend: "dnft", Param: "existing", Size: size, Unit: "s", Median: v, Samples: []float64{v, v, v}}
	}
	for _, tc := range []struct {
		name  string
		extra Results
		want  string
	}{
		{"publish-one cells only (40 and 45 µs)", nil, "PASS"},
		{"steady under 50 µs", Results{steady(0, 38e-6), steady(5000, 39e-6)}, "PASS"},
		{"steady over 50 µs", Results{steady(0, 38e-6), steady(5000, 52e-6)}, "FAIL"},
	} {
		got := libPublish(append(cellsFixture(), tc.extra...))
		if got.verdict() != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got.verdict(), got.text, tc.want)
		}
		if tc.extra != nil && !strings.Contains(got.text, "publications") {
			t.Errorf("%s: %q does not name the steady cells", tc.name, got.text)
		}
	}
}
