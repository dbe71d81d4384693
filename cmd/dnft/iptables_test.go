package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/compat"

	"github.com/dnft/dnft/test/harness"
)

func TestSplitNetns(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		netns string
		rest  []string
		err   bool
	}{
		{[]string{"-L", "-n"}, "", []string{"-L", "-n"}, false},
		{[]string{"--netns", "x", "-t", "nat", "-L"}, "x", []string{"-t", "nat", "-L"}, false},
		{[]string{"-S", "--netns=/run/netns/y"}, "/run/netns/y", []string{"-S"}, false},
		{[]string{"-L", "--netns"}, "", nil, true},
	} {
		netns, rest, err := splitNetns(tc.args)
		if tc.err {
			assert.Error(t, err, "%q", tc.args)
			continue
		}
		require.NoError(t, err, "%q", tc.args)
		assert.Equal(t, tc.netns, netns)
		assert.Equal(t, tc.rest, rest)
	}
}

func TestSystemVariant(t *testing.T) {
	t.Setenv(variantEnv, "legacy")
	assert.Equal(t, compat.Legacy, systemVariant())
	t.Setenv(variantEnv, "nft")
	assert.Equal(t, compat.NFT, systemVariant())
}

// execView runs a dnft command line through cobra (not through run, so
// that the iptables exit code is read from the returned error).
func execView(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	root := newRootCmd(&app{}, "")
	root.SetArgs(args)
	root.SetOut(&o)
	root.SetErr(&e)
	_, err := root.ExecuteC()
	var ie *iptablesExit
	switch {
	case errors.As(err, &ie):
		code = ie.exitStatus()
	case err != nil:
		code = exitCode(err)
		e.WriteString(err.Error())
	}
	return code, o.String(), e.String()
}

// TestIPTablesView programs a namespace through the CLI and reads it back
// with dnft iptables, ip6tables, iptables-save and list.
func TestIPTablesView(t *testing.T) {
	harness.RequireRoot(t, "nft")
	t.Setenv(variantEnv, "nft")
	ns := harness.Scratch(t).Name
	for _, args := range [][]string{
		{"init", "--ip-forward"},
		{"network", "create", "web", "--bridge", "br-web", "--subnet", "172.18.0.0/16"},
		{"port", "publish", "web", "172.18.0.2", "-p", "8080:80", "-p", "127.0.0.1:9000:80/udp"},
	} {
		code, _, stderr := runCLI(append([]string{"--netns", ns}, args...)...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a line it must contain; "" for none at all
		stderr string // text it must contain; "" for none at all
	}{
		{[]string{"--netns", ns, "iptables", "-t", "nat", "-S"}, 0,
			"-A DOCKER ! -i br-web -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80\n", ""},
		{[]string{"iptables", "--netns", ns, "-t", "nat", "-L", "DOCKER", "-n"}, 0,
			"DNAT       17   --  0.0.0.0/0            127.0.0.1            udp dpt:9000 to:172.18.0.2:80\n", ""},
		{[]string{"iptables", "--netns=" + ns, "-t", "raw", "-S", "PREROUTING"}, 0,
			"-A PREROUTING -d 127.0.0.1/32 ! -i lo -p udp -m udp --dport 9000 -j DROP\n", ""},
		{[]string{"--netns", ns, "iptables", "-L", "-n", "DOCKER"}, 2, "", "Bad argument `DOCKER'\n"},
		{[]string{"--netns", ns, "iptables", "-L", "NOPE"}, 1, "",
			"iptables v1.8.9 (nf_tables): chain `NOPE' in table `filter' is incompatible, use 'nft' tool.\n"},
		{[]string{"--netns", ns, "ip6tables", "-S"}, 0, "-P FORWARD ACCEPT\n", ""},
		{[]string{"--netns", ns, "iptables-save", "-t", "filter"}, 0, "-A FORWARD -o br-web -j DOCKER\n", ""},
		{[]string{"--netns", ns, "ip6tables-save"}, 0, "", ""}, // no IPv6: no table, as on a fresh host
		{[]string{"--netns", ns, "iptables-save", "-x"}, 1, "", "iptables-save: invalid option -- 'x'\n"},
		{[]string{"--netns", ns, "list"}, 0, "0.0.0.0:8080->172.18.0.2:80/tcp     web       0         0\n", ""},
		{[]string{"--netns", ns, "ls"}, 0, "web       br-web   172.18.0.0/16   -\n", ""},
		{[]string{"--netns", "dnft-no-such-ns", "iptables", "-L"}, 2, "", "no such network namespace"},
	} {
		code, stdout, stderr := execView(tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, stderr)
		for _, out := range []struct{ name, got, want string }{{"stdout", stdout, tc.stdout}, {"stderr", stderr, tc.stderr}} {
			if out.want == "" {
				assert.Empty(t, out.got, "%v: %s", tc.args, out.name)
			} else {
				assert.Contains(t, out.got, out.want, "%v: %s", tc.args, out.name)
			}
		}
	}
}

func TestListNotInitialized(t *testing.T) {
	harness.RequireRoot(t, "nft")
	ns := harness.Scratch(t).Name
	// Not initialized is a valid, empty state for list, save, check and
	// the view alike.
	code, stdout, stderr := execView("--netns", ns, "list")
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "not initialized")
	assert.Equal(t, "NETWORK   BRIDGE   SUBNETS   OPTIONS\n", stdout)
	code, stdout, stderr = execView("--netns", ns, "check")
	assert.Equal(t, 0, code, stderr)
	assert.Empty(t, stdout)
	code, stdout, _ = execView("--netns", ns, "save")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, `"daemon": null`)
	code, stdout, _ = execView("--netns", ns, "iptables", "-S")
	assert.Equal(t, 0, code)
	assert.Equal(t, "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n", stdout, "a fresh namespace lists empty built-in chains")
	assert.True(t, strings.HasPrefix(stdout, "-P INPUT"))
}

// TestIPTablesExitThroughRun checks what a user sees: iptables' exit code
// and messages, without a "dnft:" line.
func TestIPTablesExitThroughRun(t *testing.T) {
	require.Equal(t, 3, exitCode(&iptablesExit{3}))
	harness.RequireRoot(t, "nft")
	ns := harness.Scratch(t).Name
	code, stdout, stderr := runCLI("--netns", ns, "iptables", "-L", "-n", "FORWARD")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Equal(t, "Bad argument `FORWARD'\nTry `iptables -h' or 'iptables --help' for more information.\n", stderr)
	code, _, stderr = runCLI("--netns", ns, "iptables", "-t", "nosuch", "-L")
	assert.Equal(t, 3, code)
	assert.NotContains(t, stderr, "dnft:")
	code, stdout, stderr = runCLI("--netns", ns, "iptables", "-L", "INPUT", "-n")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination         \n", stdout)
}
