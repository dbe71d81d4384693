package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dnft/dnft/test/harness"
)

// runCLI runs dnft-docker in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestDockerUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--userland-proxy=maybe"}, `"maybe"`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"--netns", "/nonexistent/netns", "--once"}, `"/nonexistent/netns"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)
			assert.Equal(t, 2, code, "stderr: %s", stderr)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// TestDockerNoDaemon: without a dockerd, --once fails (exit 1), says
// where it looked, and leaves the namespace untouched.
func TestDockerNoDaemon(t *testing.T) {
	ns := harness.Scratch(t)
	code, _, stderr := runCLI("--netns", ns.Path(), "--once", "--host", "unix:///nonexistent/docker.sock")
	assert.Equal(t, 1, code, "stderr: %s", stderr)
	assert.Contains(t, stderr, "unix:///nonexistent/docker.sock")
	out, err := ns.Run(t.Context(), "nft", "list", "ruleset")
	assert.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(out))
}
