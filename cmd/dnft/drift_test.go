package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/test/harness"
)

// TestTablesGone: when dnft's tables were deleted behind its back (the
// commit journal says dnft left them), list, save, check and the
// iptables view all say so (exit 1); after dnft reset, the same
// namespace is simply not initialized (exit 0 everywhere).
func TestTablesGone(t *testing.T) {
	harness.RequireRoot(t, "nft")
	ns := harness.Scratch(t).Name
	nsExec(t, ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	c := dnftCLI{harness.Build(t, "."), ns}
	c.ok(t, "init")
	c.ok(t, "network", "create", "n1", "--bridge", "br-n1", "--subnet", "10.10.0.0/24")
	nsExec(t, ns, "nft", "delete", "table", "ip", "dnft")
	for _, args := range [][]string{{"list"}, {"save"}, {"check"}, {"iptables", "-S"}} {
		r := c.run(t, args...)
		assert.Equal(t, 1, r.code, "%v: %s %s", args, r.stdout, r.stderr)
		assert.Contains(t, r.stdout+r.stderr, "deleted", "%v", args)
	}
	c.ok(t, "reset")
	assert.Equal(t, "", c.ok(t, "check"))
	assert.Contains(t, c.ok(t, "save"), `"daemon": null`)
	c.ok(t, "list")
	c.ok(t, "iptables", "-S")
}

// TestNetnsRefused: --netns "" does not mean the caller's namespace, and
// a path that is no network namespace is bad input (exit 2).
func TestNetnsRefused(t *testing.T) {
	harness.RequireRoot(t, "nft")
	notNS := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notNS, nil, 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--netns", "", "list"}, "empty name"},
		{[]string{"--netns=", "status"}, "empty name"},
		{[]string{"iptables", "--netns", "", "-S"}, "empty name"},
		{[]string{"--netns", notNS, "status"}, "is not a network namespace"},
		{[]string{"--netns", "/proc/self/ns/uts", "check"}, "is not a network namespace"},
		{[]string{"iptables", "--netns", notNS, "-S"}, "is not a network namespace"},
	} {
		code, _, stderr := runCLI(tc.args...)
		assert.Equal(t, exitBadInput, code, "%v: %s", tc.args, stderr)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
	}
}

// TestNeedsRoot: without root, dnft says it needs root and exits 2.
func TestNeedsRoot(t *testing.T) {
	harness.RequireRoot(t, "setpriv")
	ns := harness.Scratch(t).Name
	bin := harness.Build(t, ".")
	require.NoError(t, os.Chmod(filepath.Dir(bin), 0o755))
	for _, args := range [][]string{{"--netns", ns, "status"}, {"--netns", ns, "init"}, {"list"}} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%v: %s", args, out)
		assert.Equal(t, exitBadInput, ee.ExitCode(), "%v: %s", args, out)
		assert.Contains(t, string(out), "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)", "%v", args)
	}
}

// TestIngressRepeatedPublish: -p repeats in ingress publish, all ports in
// one batch; unpublish takes one.
func TestIngressRepeatedPublish(t *testing.T) {
	harness.RequireRoot(t, "nft")
	ns := harness.Scratch(t).Name
	nsExec(t, ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	c := dnftCLI{harness.Build(t, "."), ns}
	c.ok(t, "init")
	assert.Equal(t, "8080/tcp\n9090/udp\n", c.ok(t, "ingress", "publish", "-p", "8080", "-p", "9090/udp", "--target", "172.30.0.2"))
	ls := c.ok(t, "ingress", "ls")
	assert.Contains(t, ls, "8080/tcp")
	assert.Contains(t, ls, "9090/udp")
	r := c.run(t, "ingress", "unpublish", "-p", "8080", "-p", "9090/udp")
	assert.Equal(t, exitBadInput, r.code, r.stderr)
	assert.True(t, strings.Contains(r.stderr, "one -p at a time"), r.stderr)
	assert.Equal(t, "", c.ok(t, "check"))
}
