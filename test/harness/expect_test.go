package harness_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dnft/dnft/test/harness"
)

// TestUnmet: "blocked" takes only a firewall's answers; a probe that
// failed for another reason (a harness error) meets no expectation but
// its exact text.
func TestUnmet(t *testing.T) {
	res := map[string]harness.Result{
		"ok":      {OK: true, Seen: netip.MustParseAddr("203.0.113.1")},
		"timeout": {Err: harness.Timeout},
		"refused": {Err: harness.Refused},
		"unreach": {Err: harness.Unreachable},
		"denied":  {Err: harness.Denied},
		"socket":  {Err: "icmp socket: operation not permitted"},
		"cancel":  {Err: harness.Canceled},
		"garbled": {Err: `bad reply "x"`},
	}
	for _, tc := range []struct {
		want  map[string]string
		unmet []string
	}{
		{map[string]string{"ok": "ok", "timeout": "blocked", "refused": "blocked", "unreach": "blocked", "denied": "blocked"}, nil},
		{map[string]string{"ok": "ok from 203.0.113.1", "timeout": "timeout", "socket": "icmp socket: operation not permitted"}, nil},
		{map[string]string{"socket": "blocked", "cancel": "blocked", "garbled": "ok"}, []string{
			`cancel: want blocked, got canceled`,
			`garbled: want ok, got bad reply "x"`,
			`socket: want blocked, got icmp socket: operation not permitted`,
		}},
		{map[string]string{"ok": "blocked", "timeout": "ok", "nope": "ok"}, []string{
			"nope: want ok, got no such probe",
			"ok: want blocked, got ok from 203.0.113.1",
			"timeout: want ok, got timeout",
		}},
	} {
		assert.Equal(t, tc.unmet, harness.Unmet(res, tc.want), "%v", tc.want)
	}
}
