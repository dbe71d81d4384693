package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/test/harness"
)

// memReps is how many times each process is measured.
const memReps = 3

// BenchmarkMemory measures, at Batch bindings, the resident memory of
// processes and the size of the ruleset the kernel holds.
//
// Processes (peak RSS, getrusage ru_maxrss, KiB): the dnft-like process
// `dnft-bench mem` that programs the bindings through the library and
// reads them back (also its VmRSS after programming, from
// /proc/self/status); the `dnft port ls` CLI; iptables-restore and
// iptables-save of both variants; `nft -f` and `nft list ruleset` for
// the nft baseline.
//
// Kernel: the kernel's memory is not accounted per network namespace
// (/proc/slabinfo and /proc/meminfo are machine-wide and other work runs
// here), so the ruleset is measured by what it holds: the bytes of
// `nft list ruleset` (iptables-legacy-save for legacy, whose rules are not
// nftables objects) and the number of rules and set elements.
func BenchmarkMemory(b *testing.B) {
	s := scale(b)
	bin := binaries(b)
	n := s.Batch
	kib := func(workload, label, note string, vals []float64) Result {
		return Result{Workload: workload, Backend: label, Param: "bindings", Size: n, Unit: "KiB", Samples: vals, Median: Median(vals), Note: note}
	}
	b.Run(fmt.Sprintf("bindings=%d/dnft-bench", n), func(b *testing.B) {
		cell(b, func(b *testing.B) []Result {
			var rss, hwm []float64
			for range memReps {
				r := memChild(b, filepath.Join(bin, "dnft-bench"), n)
				rss, hwm = append(rss, float64(r.Programmed.VmRSS)), append(hwm, float64(r.Listed.VmHWM))
			}
			return []Result{
				kib("process-hwm", "dnft library", "dnft-bench mem: VmHWM after programming and reading back", hwm),
				kib("process-rss", "dnft library", "dnft-bench mem: VmRSS after programming", rss),
			}
		})
	})
	// Each process runs against a state with n bindings published, or,
	// when it has a script, programs them from an initialised namespace.
	procs := []struct {
		label, backend, note, name string
		args                       []string
		script                     func() string
	}{
		{"dnft port ls", "dnft", "dnft --netns NS port ls", filepath.Join(bin, "dnft"), []string{"port", "ls"}, nil},
		{"iptables-nft-restore", "restore-nft", "programming n bindings: iptables-nft-restore --noflush", "iptables-nft-restore", []string{"-w", "--noflush"},
			func() string { return restoreScript(bindingRules(bindings(0, n)), false) }},
		{"iptables-nft-save", "restore-nft", "", "iptables-nft-save", nil, nil},
		{"iptables-legacy-restore", "restore-legacy", "programming n bindings: iptables-legacy-restore --noflush", "iptables-legacy-restore", []string{"-w", "--noflush"},
			func() string { return restoreScript(bindingRules(bindings(0, n)), false) }},
		{"iptables-legacy-save", "restore-legacy", "", "iptables-legacy-save", nil, nil},
		{"nft -f", "nft-rules", "programming n bindings: nft -f", "nft", []string{"-f", "-"},
			func() string { return nftScript(bindingRules(bindings(0, n))) }},
		{"nft list ruleset", "nft-rules", "nft baseline's state", "nft", []string{"list", "ruleset"}, nil},
	}
	for _, p := range procs {
		b.Run(fmt.Sprintf("bindings=%d/%s", n, strings.ReplaceAll(p.label, " ", "")), func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				if _, err := os.Stat(GNUTime); err != nil {
					b.Fatalf("needs GNU time at %s (apt-get install time): %v", GNUTime, err)
				}
				ctx := context.Background()
				var ns *harness.NS
				var hwm []float64
				for range memReps {
					stdin := ""
					switch {
					case p.script != nil: // a fresh namespace for each programming run
						stdin = p.script()
						_, ns = setup(b, p.backend, 1, 0)
					case ns == nil:
						_, ns = setup(b, p.backend, 1, n)
					}
					args := p.args
					if p.backend == "dnft" {
						args = append([]string{"--netns", ns.Path()}, p.args...)
					}
					kb, err := PeakRSS(ctx, ns, stdin, p.name, args)
					if err != nil {
						b.Fatal(err)
					}
					hwm = append(hwm, float64(kb))
				}
				return []Result{kib("process-hwm", p.label, p.note, hwm)}
			})
		})
	}
	for _, name := range []string{"dnft", "restore-nft", "restore-legacy", "nft-rules"} {
		b.Run(fmt.Sprintf("bindings=%d/ruleset-%s", n, name), func(b *testing.B) {
			cell(b, func(b *testing.B) []Result {
				return rulesetSize(b, name, n)
			})
		})
	}
}

// memChild runs `dnft-bench mem` in a fresh namespace.
func memChild(b *testing.B, bin string, n int) MemReport {
	b.Helper()
	ctx := context.Background()
	ns, del, err := NewNS(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer del()
	if err := ns.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
		b.Fatal(err)
	}
	p, err := execIn(ctx, ns, "", bin, []string{"mem", "-netns", ns.Path(), "-bindings", fmt.Sprint(n)})
	if err != nil {
		b.Fatal(err)
	}
	var r MemReport
	if err := json.Unmarshal([]byte(p.Stdout), &r); err != nil {
		b.Fatalf("dnft-bench output %q: %v", p.Stdout, err)
	}
	if r.ListedCount != n {
		b.Fatalf("dnft-bench published %d bindings but read back %d", n, r.ListedCount)
	}
	return r
}

// rulesetSize programs n bindings with backend and returns the size of
// what the kernel holds (see BenchmarkMemory).
func rulesetSize(b *testing.B, backend string, n int) []Result {
	b.Helper()
	ctx := context.Background()
	_, ns := setup(b, backend, 1, n)
	label := map[string]string{"dnft": "dnft", "restore-nft": "iptables-nft", "restore-legacy": "iptables-legacy", "nft-rules": "nft-rules"}[backend]
	listing, what := "nft", []string{"list", "ruleset"}
	if backend == "restore-legacy" {
		listing, what = "iptables-legacy-save", nil
	}
	out, _, err := runIn(ctx, ns, "", listing, what)
	if err != nil {
		b.Fatal(err)
	}
	one := func(workload, unit string, v float64, note string) Result {
		return Result{Workload: workload, Backend: label, Param: "bindings", Size: n, Unit: unit, Median: v, Samples: []float64{v}, Note: note}
	}
	rs := []Result{one("ruleset-bytes", "bytes", float64(len(out)), listing+" "+strings.Join(what, " "))}
	switch backend {
	case "dnft":
		conn, err := nft.Open(ctx, ns.Path())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ts, _, err := conn.ReadTable(ctx, nft.IPv4)
		if err != nil {
			b.Fatal(err)
		}
		var rules, elems int
		for _, c := range ts.Chains {
			rules += len(c.Rules)
		}
		for _, s := range ts.Sets {
			elems += len(s.Elements)
		}
		rs = append(rs, one("rules", "count", float64(rules), "rules in table ip dnft"),
			one("set-elements", "count", float64(elems), "set and map elements in table ip dnft"))
	case "nft-rules":
		rules := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "\t\t") && !strings.HasPrefix(l, "\t\ttype ") {
				rules++
			}
		}
		rs = append(rs, one("rules", "count", float64(rules), "rules in table ip docker"))
	default:
		save, _, err := runIn(ctx, ns, "", "iptables-"+label[len("iptables-"):]+"-save", nil)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, one("rules", "count", float64(strings.Count(save, "\n-A ")), "-A lines of iptables-save"))
	}
	return rs
}
