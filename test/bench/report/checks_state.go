package main

import "fmt"

// Targets of the commands that read the whole state (workloads
// "state-cli" and "state-cli-hwm" of BenchmarkStateCLI).
const (
	stateTargetSize = 65000 // bindings
	stateCheckMax   = 2.0   // seconds, dnft check at stateTargetSize
	stateCheckMaxMB = 150.0 // peak RSS, MB (10^6 bytes), dnft check at stateTargetSize
	stateLinear     = 1.5   // time per binding at the most bindings ÷ at the fewest
)

// stateChecks evaluates the target of `dnft check` at 65,000 bindings:
// at most 2 s (median) and 150 MB of peak resident memory.
func stateChecks(rs Results) []check {
	name := fmt.Sprintf("check at %dk ≤ %.0f s and ≤ %.0f MB", stateTargetSize/1000, stateCheckMax, stateCheckMaxMB)
	t, ok1 := rs.value("state-cli", "dnft check", stateTargetSize)
	kib, ok2 := rs.value("state-cli-hwm", "dnft check", stateTargetSize)
	if !ok1 || !ok2 {
		return []check{missing(name, fmt.Sprintf("dnft check at %d bindings (state-cli, state-cli-hwm)", stateTargetSize))}
	}
	mb := kib * 1024 / 1e6
	return []check{{pass: t <= stateCheckMax && mb <= stateCheckMaxMB, name: name,
		text: fmt.Sprintf("`dnft check` at %d bindings takes %s with a peak RSS of %.0f MB (median; limits %.0f s, %.0f MB)", stateTargetSize, dur(t), mb, stateCheckMax, stateCheckMaxMB)}}
}

// stateInfoChecks say whether check and save grow linearly: their time
// per binding at the most bindings is within 1.5x of the one at the
// fewest.
func stateInfoChecks(rs Results) []check {
	sizes := rs.sizes("state-cli")
	if len(sizes) < 2 {
		return nil
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	var out []check
	for _, cmd := range []string{"dnft check", "dnft save"} {
		name := cmd + " linear"
		t0, ok0 := rs.value("state-cli", cmd, lo)
		t1, ok1 := rs.value("state-cli", cmd, hi)
		if !ok0 || !ok1 {
			out = append(out, missing(name, cmd+" state-cli at two sizes"))
			continue
		}
		q := (t1 / float64(hi)) / (t0 / float64(lo))
		out = append(out, check{pass: q <= stateLinear, name: name,
			text: fmt.Sprintf("%s: %s at %d bindings, %s at %d (per binding %.2fx, limit %.1fx)", cmd, dur(t1), hi, dur(t0), lo, q, stateLinear)})
	}
	return out
}
