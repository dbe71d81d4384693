package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/test/harness"
)

// demoPrefixRE finds the demo's namespace prefix in its report. Only this
// run's prefix is checked for leftovers: other demo runs may be going on.
var demoPrefixRE = regexp.MustCompile(`\b` + demoNSPrefix + `[0-9a-f]{4}-`)

// demoLeftovers lists the namespaces whose names start with prefix.
func demoLeftovers(prefix string) []string {
	m, _ := filepath.Glob(filepath.Join("/run/netns", prefix+"*"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// demoRow returns the cells of the report's traffic row whose RULE
// column contains rule: mark, connection, rule, Docker, dnft.
func demoRow(t *testing.T, report, rule string, nth int) []string {
	t.Helper()
	var rows [][]string
	for _, line := range strings.Split(report, "\n") {
		cells := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		if len(cells) == 5 && (cells[0] == "✓" || cells[0] == "✗") && strings.Contains(cells[2], rule) {
			rows = append(rows, cells)
		}
	}
	require.Greater(t, len(rows), nth, "no traffic row %d for %q in:\n%s", nth, rule, report)
	return rows[nth]
}

func TestDemo(t *testing.T) {
	harness.RequireRoot(t, "nft")
	start := time.Now()
	code, out, errOut := runCLI("demo")
	t.Logf("demo took %v", time.Since(start))
	prefix := demoPrefixRE.FindString(out)
	require.NotEmpty(t, prefix, "no namespace prefix in:\n%s", out)
	assert.Empty(t, demoLeftovers(prefix), "namespaces left over")
	require.Equal(t, 0, code, "stderr: %s\nstdout:\n%s", errOut, out)

	masq := demoRow(t, out, "masquerade", 0)
	assert.Equal(t, "✓", masq[0])
	assert.Contains(t, masq[1], "web → internet 203.0.113.2:80")
	assert.Equal(t, "ok, seen from 203.0.113.1", masq[4], "masquerade seen from the host's uplink address")

	icc := demoRow(t, out, "icc", 0)
	assert.Equal(t, "✓", icc[0])
	assert.Contains(t, icc[1], "web → db")
	assert.Equal(t, "ok, seen from 172.18.0.2", icc[4])

	iso := demoRow(t, out, "isolation", 0)
	assert.Equal(t, "✓", iso[0])
	assert.Contains(t, iso[1], "other → web")
	assert.True(t, strings.HasPrefix(iso[4], "blocked"), iso[4])

	direct := demoRow(t, out, "direct routing", 0)
	assert.Equal(t, "✓", direct[0])
	assert.Contains(t, direct[1], "LAN → web")
	assert.True(t, strings.HasPrefix(direct[4], "blocked"), direct[4])

	assert.Contains(t, out, "All 4 checks behave as with Docker.")
	assert.Contains(t, out, "--- nft list ruleset (in "+prefix+"host) ---")
	assert.Contains(t, out, "table ip dnft {")
	assert.NotContains(t, out, "table ip6 dnft {")
	assert.Regexp(t, `(?m)^web +br-web +172\.18\.0\.0/16 +false +true +true `, out)
	assert.Regexp(t, `(?m)^other +br-other +172\.19\.0\.0/16 +false +false +true `, out)
	assert.Contains(t, out, "Removed the namespaces "+prefix+"*.")
}

func TestDemoIPv6Keep(t *testing.T) {
	harness.RequireRoot(t, "nft")
	code, out, errOut := runCLI("demo", "--ipv6", "--keep")
	prefix := demoPrefixRE.FindString(out)
	require.NotEmpty(t, prefix, "no namespace prefix in:\n%s", out)
	kept := demoLeftovers(prefix)
	t.Cleanup(func() {
		for _, ns := range kept {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	require.Equal(t, 0, code, "stderr: %s\nstdout:\n%s", errOut, out)

	assert.Len(t, kept, len(demoRoles), "--keep keeps every namespace")
	for _, ns := range kept {
		assert.Contains(t, out, "  ip netns del "+ns+"\n")
	}
	assert.Equal(t, "ok, seen from 2001:db8:2::1", demoRow(t, out, "masquerade", 1)[4])
	assert.Equal(t, "ok, seen from fd00:18::2", demoRow(t, out, "icc", 1)[4])
	assert.True(t, strings.HasPrefix(demoRow(t, out, "isolation", 1)[4], "blocked"))
	assert.True(t, strings.HasPrefix(demoRow(t, out, "direct routing", 1)[4], "blocked"))
	assert.Contains(t, out, "All 8 checks behave as with Docker.")
	assert.Contains(t, out, "table ip6 dnft {")

	// The kept namespaces still work: web reaches the internet.
	nsExec(t, prefix+"web", "ping", "-c1", "-W1", "203.0.113.2")
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoInterrupted cancels the command's context, as SIGINT and SIGTERM
// do, while the namespaces are being built: they must all be removed.
func TestDemoInterrupted(t *testing.T) {
	harness.RequireRoot(t, "nft")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	root := newRootCmd(&app{}, "")
	root.SetArgs([]string{"demo"})
	root.SetOut(&out)
	root.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	var prefix string
	require.Eventually(t, func() bool {
		prefix = demoPrefixRE.FindString(out.String())
		return prefix != "" && len(demoLeftovers(prefix)) > 0
	}, time.Minute, time.Millisecond, "the demo created no namespace")
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled, "output:\n%s", out.String())
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop when its context was canceled")
	}
	assert.Empty(t, demoLeftovers(prefix), "namespaces left over")
	assert.Contains(t, out.String(), "Removed the namespaces "+prefix+"*.")
}

func TestDemoRejectsNetns(t *testing.T) {
	code, stdout, stderr := runCLI("--netns", "x", "demo")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "--netns does not apply")
}
