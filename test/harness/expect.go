package harness

import (
	"fmt"
	"sort"
	"strings"
)

// Blocked reports whether the probe got one of the answers a firewall
// gives: no answer ([Timeout]), a TCP reset or ICMP port unreachable
// ([Refused]), another ICMP unreachable ([Unreachable]), or a drop on the
// prober's own output ([Denied]). A probe that failed for another reason
// (a socket that could not be opened, a garbled reply, a canceled
// context) is neither OK nor Blocked: it proves nothing about the path.
func (r Result) Blocked() bool {
	switch r.Err {
	case Timeout, Refused, Unreachable, Denied:
		return !r.OK
	}
	return false
}

// Unmet checks probe results against expectations and returns one line
// per expectation that is not met, sorted. An expectation is "ok" (any
// answer), "blocked" (see [Result.Blocked]), or the exact [Result.String],
// such as "ok from 203.0.113.1" or "refused". A probe missing from res is
// unmet.
func Unmet(res map[string]Result, want map[string]string) []string {
	var out []string
	for name, w := range want {
		r, ok := res[name]
		var met bool
		switch {
		case !ok:
		case w == "ok":
			met = r.OK
		case w == "blocked":
			met = r.Blocked()
		default:
			met = r.String() == w
		}
		if met {
			continue
		}
		got := r.String()
		if !ok {
			got = "no such probe"
		}
		out = append(out, fmt.Sprintf("%s: want %s, got %s", name, w, got))
	}
	sort.Strings(out)
	return out
}

// FormatMatrix prints results one probe per line, sorted by name, for
// failure messages.
func FormatMatrix(res map[string]Result) string {
	lines := make([]string, 0, len(res))
	for name, r := range res {
		lines = append(lines, fmt.Sprintf("%-28s %s", name, r))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
