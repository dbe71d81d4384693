package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/test/harness"
)

// TestBadStateFiles: every command that reads a state document refuses a
// bad one with exit 2 and a message naming the file and the field, and
// changes nothing.
func TestBadStateFiles(t *testing.T) {
	harness.RequireRoot(t, "nft")
	ns := harness.Scratch(t).Name
	for _, args := range [][]string{
		{"init", "--ip-forward"},
		{"network", "create", "n", "--bridge", "br-n", "--subnet", "172.18.0.0/16"},
		{"port", "publish", "n", "172.18.0.2", "-p", "8080:80"},
	} {
		code, _, stderr := runCLI(append([]string{"--netns", ns}, args...)...)
		require.Zero(t, code, stderr)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	code, _, stderr := runCLI("--netns", ns, "save", "-o", good)
	require.Zero(t, code, stderr)
	saved, err := os.ReadFile(good)
	require.NoError(t, err)
	st, err := os.Stat(good)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	before := ruleset(t, ns)

	bad := func(old, new string) string {
		require.Contains(t, string(saved), old)
		return strings.Replace(string(saved), old, new, 1)
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not json", "{", "invalid state"},
		{"version", bad(`"version": 1`, `"version": 7`), `invalid version "7": unsupported`},
		{"subnet", bad(`"172.18.0.0/16"`, `"172.18.0.0/33"`), `invalid networks[0].subnets[0] "172.18.0.0/33": not a CIDR prefix`},
		{"port", bad(`"host_port": 8080`, `"host_port": 0`), `invalid ports[0].host_port "0": must be 1-65535`},
		{"unknown", bad(`"version": 1`, `"version": 1, "netwroks": []`), `invalid netwroks "": unknown field`},
	} {
		path := filepath.Join(dir, tc.name+".json")
		require.NoError(t, os.WriteFile(path, []byte(tc.doc), 0o600))
		for _, cmd := range [][]string{
			{"restore", path}, {"apply", "-f", path}, {"check", "--state", path},
			{"repair", "--state", path}, {"watch", "--state", path},
		} {
			t.Run(tc.name+"/"+cmd[0], func(t *testing.T) {
				code, _, stderr := runCLI(append([]string{"--netns", ns}, cmd...)...)
				require.Equal(t, exitBadInput, code, stderr)
				require.Contains(t, stderr, path+": "+tc.want)
				require.Equal(t, before, ruleset(t, ns), "nothing changes")
			})
		}
	}
	code, _, stderr = runCLI("--netns", ns, "restore", filepath.Join(dir, "missing.json"))
	require.Equal(t, exitBadInput, code)
	require.Contains(t, stderr, "no such file")
	code, _, stderr = runCLI("--netns", ns, "restore", "a", "b")
	require.Equal(t, exitBadInput, code)
	require.Contains(t, stderr, `unexpected argument "b"`)
	code, _, stderr = runCLI("--netns", ns, "apply")
	require.Equal(t, exitBadInput, code)
	require.Contains(t, stderr, "missing -f FILE")

	// The good document restores without a change (nothing to send).
	code, _, stderr = runCLI("--netns", ns, "restore", good)
	require.Zero(t, code, stderr)
	code, stdout, stderr := runCLI("--netns", ns, "apply", "-f", good)
	require.Zero(t, code, stderr)
	require.Equal(t, "nothing to change\n", stdout)
	require.Equal(t, before, ruleset(t, ns))
}
