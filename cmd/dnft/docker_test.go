package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/test/harness"
)

// TestDockerRunsDnftDocker: `dnft docker ARGS` runs the dnft-docker
// installed next to dnft with dnft's --netns and ARGS (its exit status and
// messages are dnft-docker's), and says what is missing without it.
func TestDockerRunsDnftDocker(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	bin, err := harness.BuildTo(ctx, dir, "github.com/dnft/dnft/cmd/dnft")
	require.NoError(t, err)
	run := func(bin string, args ...string) (int, string) {
		var e bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stderr = &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), e.String()
		}
		require.NoError(t, err)
		return 0, e.String()
	}

	code, stderr := run(bin, "docker", "--once")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "dnft-docker, which is neither next to dnft nor on PATH")

	_, err = harness.BuildTo(ctx, dir, "github.com/dnft/dnft/cmd/dnft-docker")
	require.NoError(t, err)
	code, stderr = run(bin, "--netns", "/nonexistent/netns", "docker", "--once")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, `"/nonexistent/netns"`)
	code, stderr = run(bin, "docker", "--bogus")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "unknown flag: --bogus")
	code, stderr = run(filepath.Join(dir, "dnft"), "docker", "--netns", "/nonexistent/netns", "--once")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, `"/nonexistent/netns"`)
}
