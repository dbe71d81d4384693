package main

import (
	"fmt"
	"strings"
)

// check is one must-show check.
type check struct {
	pass bool
	name string
	text string
	skip bool // not evaluated: what it needs was not measured
}

func (c check) verdict() string {
	switch {
	case c.skip:
		return "SKIP"
	case c.pass:
		return "PASS"
	}
	return "FAIL"
}

func (c check) line() string { return fmt.Sprintf("%s %s: %s", c.verdict(), c.name, c.text) }

// missing is a check that could not be evaluated (a partial run, or a
// benchmark that failed): it fails the run too, as a check must be shown
// to pass.
func missing(name, what string) check {
	return check{name: name, text: "not measured: " + what, skip: true}
}

// mustShow evaluates the checks of the performance issue:
//   - dnft publishes one binding at the largest existing count within 2x
//     of its time at the smallest;
//   - at the largest count dnft takes at least 50x less than the
//     exec-per-rule iptables path (each variant);
//   - dnft's TCP connection rate at the most bindings is within 10% of
//     the rate at the fewest.
//   - `dnft iptables -L -n -v` (a process) at the most bindings takes no
//     longer than `iptables-nft -L -n -v` on the same rules.
//   - the targets of one dnft process per operation and of the
//     library's publish (see [cliChecks]);
//   - `dnft check` at 65,000 bindings (see [stateChecks]).
func mustShow(rs Results) []check {
	out := append(append(publishChecks(rs), rateCheck(rs), cliCheck(rs)), cliChecks(rs)...)
	return append(out, stateChecks(rs)...)
}

// cliCheck compares the `iptables -L -n -v` commands at the largest size.
func cliCheck(rs Results) check {
	const name = "iptables -L -n -v vs iptables-nft"
	sizes := rs.sizes("iptables-cli")
	if len(sizes) == 0 {
		return missing(name, "iptables-cli")
	}
	n := sizes[len(sizes)-1]
	d, ok1 := rs.value("iptables-cli", "dnft", n)
	t, ok2 := rs.value("iptables-cli", "iptables-nft", n)
	if !ok1 || !ok2 {
		return missing(name, "iptables-cli of dnft and iptables-nft")
	}
	return check{pass: d <= t, name: name,
		text: fmt.Sprintf("`dnft iptables -L -n -v` takes %s at %d bindings, `iptables-nft -L -n -v` %s (%.2fx)", dur(d), n, dur(t), d/t)}
}

// infoChecks are reported like the checks but do not fail the run:
//   - dnft publishes one ingress port at the largest existing count within
//     2x of its time at the smallest.
func infoChecks(rs Results) []check {
	out := append(cliInfoChecks(rs), stateInfoChecks(rs)...)
	sizes := rs.sizes("publish-ingress")
	if len(sizes) < 2 {
		return out
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	t0, ok0 := rs.value("publish-ingress", "dnft", lo)
	t1, ok1 := rs.value("publish-ingress", "dnft", hi)
	if !ok0 || !ok1 {
		return append(out, missing("ingress publish flat", "dnft publish-ingress"))
	}
	return append(out, check{pass: t1 <= 2*t0, name: "ingress publish flat",
		text: fmt.Sprintf("dnft publishes one ingress port in %s with %d existing, %s with %d existing (%.2fx, limit 2x)", dur(t1), hi, dur(t0), lo, t1/t0)})
}

func publishChecks(rs Results) []check {
	var out []check
	sizes := rs.sizes("publish-one")
	if len(sizes) < 2 {
		return []check{missing("publish flat", "publish-one at two sizes")}
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	t0, ok0 := rs.value("publish-one", "dnft", lo)
	t1, ok1 := rs.value("publish-one", "dnft", hi)
	if ok0 && ok1 {
		out = append(out, check{pass: t1 <= 2*t0, name: "publish flat",
			text: fmt.Sprintf("dnft publishes one binding in %s with %d existing, %s with %d existing (%.2fx, limit 2x)", dur(t1), hi, dur(t0), lo, t1/t0)})
	} else {
		out = append(out, missing("publish flat", "dnft publish-one"))
	}
	for _, be := range []string{"iptables-nft+C", "iptables-legacy+C"} {
		name := "publish vs " + be
		r, ok := rs.get("publish-one", be, hi)
		switch {
		case !ok1:
			out = append(out, missing(name, "dnft publish-one"))
		case !ok || r.Skipped != "":
			// Larger sizes of a baseline are not run once one operation
			// exceeded the time limit: that lower bound, at fewer existing
			// bindings, is what it takes at least.
			lb, found := rs.lowerBound("publish-one", be, hi)
			if !found {
				out = append(out, missing(name, be+" publish-one at "+fmt.Sprint(hi)))
				break
			}
			out = append(out, check{pass: lb.Median >= 50*t1, name: name,
				text: fmt.Sprintf("at %d existing dnft takes %s; %s took over %s already at %d existing, where it was stopped (%.0fx less, need 50x)",
					hi, dur(t1), be, dur(lb.Median), lb.Size, lb.Median/t1)})
		default:
			bound := ""
			if r.LowerBound {
				bound = "over "
			}
			out = append(out, check{pass: r.Median >= 50*t1, name: name,
				text: fmt.Sprintf("at %d existing dnft takes %s, %s %s%s (%.0fx less, need 50x)", hi, dur(t1), be, bound, dur(r.Median), r.Median/t1)})
		}
	}
	return out
}

func rateCheck(rs Results) check {
	bsz := rs.sizesParam("tcp-connect", "bindings")
	if len(bsz) < 2 {
		return missing("connection rate flat", "tcp-connect over bindings")
	}
	lo, hi := bsz[0], bsz[len(bsz)-1]
	r0, ok0 := rs.getParam("tcp-connect", "dnft", "bindings", lo)
	r1, ok1 := rs.getParam("tcp-connect", "dnft", "bindings", hi)
	if !ok0 || !ok1 {
		return missing("connection rate flat", "dnft tcp-connect")
	}
	q, how := pairedRatio(r1.Samples, r0.Samples)
	if how == "" {
		q, how = r1.Median/r0.Median, "ratio of medians"
	}
	return check{pass: q >= 0.9, name: "connection rate flat",
		text: fmt.Sprintf("dnft accepts %.0f conn/s at %d bindings, %.0f at %d (median); %s %.3f (limit 0.9)", r1.Median, hi, r0.Median, lo, how, q)}
}

// pairedRatio returns the median over rounds of a[i]/b[i], when a and b
// hold one sample per interleaved round (the data plane's cells do).
func pairedRatio(a, b []float64) (float64, string) {
	if len(a) != len(b) || len(a) < 3 {
		return 0, ""
	}
	qs := make([]float64, len(a))
	for i := range a {
		if b[i] <= 0 {
			return 0, ""
		}
		qs[i] = a[i] / b[i]
	}
	return median(qs), fmt.Sprintf("median of the %d per-round ratios", len(qs))
}

// lowerBound returns the aborted (lower-bound) cell of a workload and
// backend at the largest size up to max.
func (rs Results) lowerBound(workload, backend string, max int) (Result, bool) {
	var best Result
	found := false
	for _, r := range rs {
		if r.Workload == workload && r.Backend == backend && r.LowerBound && r.Skipped == "" && r.Size <= max && (!found || r.Size > best.Size) {
			best, found = r, true
		}
	}
	return best, found
}

// getParam is get restricted to one size parameter, measured cells only.
func (rs Results) getParam(workload, backend, param string, size int) (Result, bool) {
	for _, r := range rs {
		if r.Workload == workload && r.Backend == backend && r.Param == param && r.Size == size && r.Skipped == "" {
			return r, true
		}
	}
	return Result{}, false
}

// valueParam is value restricted to cells of one size parameter (the
// data-plane workloads have two series).
func (rs Results) valueParam(workload, backend, param string, size int) (float64, bool) {
	for _, r := range rs {
		if r.Workload == workload && r.Backend == backend && r.Param == param && r.Size == size && r.Skipped == "" {
			return r.Median, true
		}
	}
	return 0, false
}

// dur formats seconds for people.
func dur(s float64) string {
	switch {
	case s < 1e-3:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case s < 1:
		return strings.TrimSuffix(fmt.Sprintf("%.3g", s*1e3), ".") + " ms"
	case s < 100:
		return fmt.Sprintf("%.3g s", s)
	case s < 3600:
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.1f h", s/3600)
}
