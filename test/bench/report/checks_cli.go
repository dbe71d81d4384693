package main

import "fmt"

// cliName is the dnft command's backend (test/bench.CLIName).
const cliName = "dnft CLI"

// Limits of the performance issue's targets for one process per
// operation and for the library.
const (
	cliFlatLimit   = 1.5   // CLI operation at the most bindings ÷ at the fewest
	cliVsExecNeed  = 5.0   // iptables-nft exec path ÷ CLI, at cliVsExecSize
	cliVsExecSize  = 5000  // existing bindings of that comparison
	cliStartLimit  = 2.5   // CLI publish at 0 ÷ an empty Go program's start
	libPublishMax  = 50e-6 // library publish, seconds, at every size
	emptyGoProgram = "empty Go program"
)

// cliChecks evaluates the targets of one dnft process per operation and
// of the library's publish:
//   - the CLI publishes one binding at the most existing bindings within
//     1.5x of its time at the fewest;
//   - at 5,000 existing bindings the CLI is at least 5x faster than the
//     exec-per-rule iptables-nft path (Docker's on an nft-only host);
//   - a CLI publication at 0 bindings takes at most 2.5x the start of an
//     empty Go program;
//   - the library publishes one binding in at most 50 µs (median) at the
//     fewest and at the most existing bindings.
func cliChecks(rs Results) []check {
	return []check{
		flatCheck(rs, "CLI publish flat", "publish-one", cliName, cliFlatLimit),
		cliVsExec(rs),
		cliStart(rs),
		libPublish(rs),
	}
}

// cliInfoChecks are the CLI's other operations, for information.
func cliInfoChecks(rs Results) []check {
	var out []check
	for _, c := range []struct{ name, workload string }{
		{"CLI unpublish flat", "unpublish-one"},
		{"CLI network create flat", "network-create-at-bindings"},
		{"CLI ingress publish flat", "publish-ingress"},
	} {
		if len(rs.sizes(c.workload)) > 0 {
			out = append(out, flatCheck(rs, c.name, c.workload, cliName, cliFlatLimit))
		}
	}
	return out
}

// flatCheck compares a backend's median at the largest size of a workload
// with the one at the smallest.
func flatCheck(rs Results, name, workload, backend string, limit float64) check {
	sizes := rs.sizes(workload)
	if len(sizes) < 2 {
		return missing(name, workload+" at two sizes")
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	t0, ok0 := rs.value(workload, backend, lo)
	t1, ok1 := rs.value(workload, backend, hi)
	if !ok0 || !ok1 {
		return missing(name, backend+" "+workload)
	}
	return check{pass: t1 <= limit*t0, name: name,
		text: fmt.Sprintf("%s: %s at %d, %s at %d (%.2fx, limit %.1fx)", backend, dur(t1), hi, dur(t0), lo, t1/t0, limit)}
}

func cliVsExec(rs Results) check {
	name := fmt.Sprintf("CLI publish vs iptables-nft+C at %d", cliVsExecSize)
	c, ok1 := rs.value("publish-one", cliName, cliVsExecSize)
	e, ok2 := rs.value("publish-one", "iptables-nft+C", cliVsExecSize)
	if !ok1 || !ok2 {
		return missing(name, fmt.Sprintf("publish-one of %s and iptables-nft+C at %d", cliName, cliVsExecSize))
	}
	return check{pass: e >= cliVsExecNeed*c, name: name,
		text: fmt.Sprintf("one `dnft port publish` takes %s, Docker's 3 iptables-nft execs with -C %s (%.1fx faster, need %.0fx)", dur(c), dur(e), e/c, cliVsExecNeed)}
}

// cliStart compares a CLI publication at the fewest bindings with an
// empty Go program's start: round by round when the CLI's cell started
// the empty program before each publication ("process-start-paired"),
// so that both are measured under the same conditions; else the medians
// of the two cells.
func cliStart(rs Results) check {
	const name = "CLI publish vs an empty Go program"
	sizes := rs.sizes("publish-one")
	if len(sizes) == 0 {
		return missing(name, "publish-one")
	}
	c, ok1 := rs.get("publish-one", cliName, sizes[0])
	if !ok1 || c.Skipped != "" {
		return missing(name, "CLI publish-one")
	}
	if e, ok := rs.get("process-start-paired", emptyGoProgram, sizes[0]); ok && e.Skipped == "" {
		if q, how := pairedRatio(c.Samples, e.Samples); how != "" {
			return check{pass: q <= cliStartLimit, name: name,
				text: fmt.Sprintf("one `dnft port publish` at %d bindings takes %s, starting an empty Go program right before it %s (medians); %s %.2f (limit %.1fx)", sizes[0], dur(c.Median), dur(e.Median), how, q, cliStartLimit)}
		}
	}
	e, ok2 := rs.value("process-start", emptyGoProgram, 0)
	if !ok2 {
		return missing(name, "the empty program's start")
	}
	return check{pass: c.Median <= cliStartLimit*e, name: name,
		text: fmt.Sprintf("one `dnft port publish` at %d bindings takes %s, starting an empty Go program %s (%.2fx, limit %.1fx)", sizes[0], dur(c.Median), dur(e), c.Median/e, cliStartLimit)}
}

// libPublish checks the library's median publication at the fewest
// and the most existing bindings: on "publish-one-steady" (2,000
// publications per size) when the run has it, else on the 11 of
// "publish-one".
func libPublish(rs Results) check {
	const name = "library publish ≤ 50 µs"
	workload, how := "publish-one-steady", "median of %d publications"
	sizes := rs.sizes(workload)
	if len(sizes) < 2 {
		workload, how = "publish-one", "median of %d"
		sizes = rs.sizes(workload)
	}
	if len(sizes) < 2 {
		return missing(name, "publish-one at two sizes")
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	r0, ok0 := rs.get(workload, "dnft", lo)
	r1, ok1 := rs.get(workload, "dnft", hi)
	if !ok0 || !ok1 || r0.Skipped != "" || r1.Skipped != "" {
		return missing(name, "dnft "+workload)
	}
	t0, t1 := r0.Median, r1.Median
	return check{pass: t0 <= libPublishMax && t1 <= libPublishMax, name: name,
		text: fmt.Sprintf("dnft publishes one binding in %s with %d existing and %s with %d existing (%s; limit %s)", dur(t0), lo, dur(t1), hi, fmt.Sprintf(how, len(r0.Samples)), dur(libPublishMax))}
}
