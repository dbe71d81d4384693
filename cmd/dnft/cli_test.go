package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
)

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }

// runCLI runs the command line in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestExitCode(t *testing.T) {
	fe := &dnft.FieldError{Field: "subnet", Value: "x", Reason: "bad"}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"usage", usageErrorf("missing NAME"), 2},
		{"input", inputErrorf("unknown network option %q", "k"), 2},
		{"field error", fe, 2},
		{"wrapped field error", fmt.Errorf("create network: %w", fe), 2},
		{"joined field errors", errors.Join(nil, fmt.Errorf("x: %w", fe)), 2},
		{"not initialized", fmt.Errorf("create network n: %w", dnft.ErrNotInitialized), 2},
		{"kernel error", errors.New("commit batch: operation not permitted"), 1},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, exitCode(tc.err))
		})
	}
}

func TestPrintError(t *testing.T) {
	var b bytes.Buffer
	fe := &dnft.FieldError{Field: "ipv6", Value: "true", Reason: "r1"}
	fe2 := &dnft.FieldError{Field: "userland-proxy", Value: "false", Reason: "r2"}
	printError(&b, nil, errors.Join(fe, fe2))
	assert.Equal(t, "dnft: invalid ipv6 \"true\": r1\ndnft: invalid userland-proxy \"false\": r2\n", b.String())
}

// TestUsageErrors covers command lines that are refused before any
// kernel change (they run without privileges too; as root they are aimed
// at a scratch namespace, see refusalNetns).
func TestUsageErrors(t *testing.T) {
	withNetns := refusalNetns(t)
	for _, tc := range []struct {
		args      []string
		want      string
		wantUsage bool
	}{
		{[]string{}, "missing command", true},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, true},
		{[]string{"netwrk"}, "did you mean network", true},
		{[]string{"network"}, "network: missing command", true},
		{[]string{"network", "delete", "x"}, `unknown command "delete"`, true},
		{[]string{"--bogus", "init"}, "unknown flag: --bogus", true},
		{[]string{"init", "--bogus"}, "unknown flag: --bogus", true},
		{[]string{"init", "extra"}, `unexpected argument "extra"`, true},
		{[]string{"init", "--userland-proxy=maybe"}, `"maybe"`, true},
		{[]string{"init", "--ipv6=2"}, `"2"`, true},
		{[]string{"network", "create"}, "missing NAME", true},
		{[]string{"network", "create", "a", "b"}, `unexpected argument "b"`, true},
		{[]string{"network", "create", "n", "--subnet", "10.0.0.0/24"}, "missing --bridge", true},
		{[]string{"network", "create", "n", "--bridge", "br0"}, "missing --subnet", true},
		{[]string{"network", "create", "n", "--bridge"}, "flag needs an argument", true},
		{[]string{"network", "rm"}, "missing NAME", true},
		{[]string{"network", "ls", "x"}, `unexpected argument "x"`, true},
		{[]string{"network", "ls", "--json", "-q"}, "cannot be used together", true},
		{[]string{"status", "--yaml"}, "unknown flag: --yaml", true},
		{[]string{"reset", "now"}, `unexpected argument "now"`, true},
		{[]string{"network", "create", "n", "--bridge", "br0", "--subnet", "10.0.0.300/24"},
			`dnft: invalid subnet "10.0.0.300/24": `, false},
		{[]string{"network", "create", "n", "--bridge", "br0", "--subnet", "10.0.0.0/24", "-o", "foo=bar"},
			`unknown network option "foo"`, false},
		{[]string{"network", "create", "n", "--bridge", "br0", "--subnet", "10.0.0.0/24",
			"-o", optHostIPv4 + "=2001:db8::1"}, `"2001:db8::1"`, false},
		{[]string{"--netns", "dnft-cli-does-not-exist", "status"}, `invalid netns "dnft-cli-does-not-exist"`, false},
		{[]string{"--netns", "/nonexistent/netns", "network", "ls"}, `"/nonexistent/netns"`, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(withNetns(tc.args)...)
			assert.Equal(t, 2, code, "stderr: %s", stderr)
			assert.Empty(t, stdout)
			assert.True(t, strings.HasPrefix(stderr, "dnft: "), "stderr: %q", stderr)
			assert.Contains(t, stderr, tc.want)
			assert.Equal(t, 1, strings.Count(stderr, "dnft: "), "error printed once: %q", stderr)
			assert.Equal(t, tc.wantUsage, strings.Contains(stderr, "Usage:"), "usage shown: %q", stderr)
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"network", "create", "--help"}, {"help", "init"}} {
		code, stdout, stderr := runCLI(args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Contains(t, stdout, "Usage:")
		assert.Empty(t, stderr)
	}
	code, stdout, _ := runCLI("--help")
	require.Equal(t, 0, code)
	assert.NotContains(t, stdout, "dnft [flags]", "group commands are not shown as runnable")

	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCLI(args...)
		assert.Equal(t, 0, code)
		assert.True(t, strings.HasPrefix(stdout, "dnft "), "%q", stdout)
		assert.Empty(t, stderr)
	}
}

func sampleNetworks() []dnft.Network {
	return []dnft.Network{
		{NetworkConfig: dnft.NetworkConfig{Name: "bridge", Bridge: "docker0", ICC: true, Masquerade: true,
			Subnet4: netip.MustParsePrefix("172.17.0.0/16")}, Seq: 1},
		{NetworkConfig: dnft.NetworkConfig{Name: "n2", Bridge: "br-n2", Internal: true,
			Subnet4:         netip.MustParsePrefix("10.2.0.0/24"),
			Subnet6:         netip.MustParsePrefix("fd00:2::/64"),
			HostIPv4:        netip.MustParseAddr("192.0.2.1"),
			HostIPv6:        netip.MustParseAddr("2001:db8::1"),
			HostBindingIPv4: netip.MustParseAddr("127.0.0.1")}, Seq: 2},
	}
}

func TestNetworkTable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeNetworkTable(&b, sampleNetworks()))
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, []string{"NAME", "BRIDGE", "SUBNETS", "INTERNAL", "ICC", "MASQ", "HOST-IP/SNAT"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{"bridge", "docker0", "172.17.0.0/16", "false", "true", "true", "-"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{"n2", "br-n2", "10.2.0.0/24,fd00:2::/64", "true", "false", "false",
		"host-ip=127.0.0.1", "snat=192.0.2.1,2001:db8::1"}, strings.Fields(lines[2]))
	// Columns are aligned.
	assert.Equal(t, strings.Index(lines[0], "BRIDGE"), strings.Index(lines[1], "docker0"))

	b.Reset()
	require.NoError(t, writeNetworkTable(&b, nil))
	assert.Equal(t, 1, strings.Count(b.String(), "\n"), "header only")
}

func TestNetworksJSON(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeJSON(&b, networksJSON(sampleNetworks())))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &got))
	require.Len(t, got, 2)
	keys := []string{"name", "bridge", "subnets", "internal", "icc", "masquerade", "host_ipv4", "host_ipv6", "host_binding_ipv4"}
	for _, n := range got {
		assert.Len(t, n, len(keys))
		for _, k := range keys {
			assert.Contains(t, n, k)
		}
	}
	assert.Equal(t, map[string]any{
		"name": "bridge", "bridge": "docker0", "subnets": []any{"172.17.0.0/16"},
		"internal": false, "icc": true, "masquerade": true,
		"host_ipv4": "", "host_ipv6": "", "host_binding_ipv4": "",
	}, got[0])
	assert.Equal(t, []any{"10.2.0.0/24", "fd00:2::/64"}, got[1]["subnets"])
	assert.Equal(t, "2001:db8::1", got[1]["host_ipv6"])
	assert.Equal(t, "127.0.0.1", got[1]["host_binding_ipv4"])

	b.Reset()
	require.NoError(t, writeJSON(&b, networksJSON(nil)))
	assert.Equal(t, "[]\n", b.String())
}

func TestStatusOutput(t *testing.T) {
	var b bytes.Buffer
	st := status{NetNS: "/run/netns/x", Initialized: true, Daemon: &daemonJSON{UserlandProxy: true}, Networks: 3}
	require.NoError(t, writeStatus(&b, st))
	assert.Contains(t, b.String(), "initialized:")
	assert.Contains(t, b.String(), "userland-proxy:")
	b.Reset()
	require.NoError(t, writeJSON(&b, status{NetNS: "/run/netns/x"}))
	var got map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &got))
	assert.Equal(t, map[string]any{"netns": "/run/netns/x", "initialized": false, "daemon": nil, "networks": 0.0}, got)
}

// TestCommandTable: the table that newRootCmd builds a single command
// from names every command by its name and aliases, and a command line
// finds its command past the root's --netns flag.
func TestCommandTable(t *testing.T) {
	for _, c := range commands() {
		cmd := c.build(&app{})
		assert.Equal(t, append([]string{cmd.Name()}, cmd.Aliases...), c.names)
		root := newRootCmd(&app{}, c.names[len(c.names)-1])
		require.Len(t, root.Commands(), 1, c.names)
	}
	assert.Len(t, newRootCmd(&app{}, "").Commands(), len(commands()))
	assert.Len(t, newRootCmd(&app{}, "prot").Commands(), len(commands()), "a typo gets suggestions from every command")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"port", "ls"}, "port"},
		{[]string{"--netns", "x", "port", "ls"}, "port"},
		{[]string{"--netns=x", "network", "ls"}, "network"},
		{[]string{"--help"}, ""},
		{[]string{"--version"}, ""},
		{[]string{"--netns", "x", "--bogus", "port"}, ""},
		{[]string{"help", "port"}, "help"},
	} {
		assert.Equal(t, tc.want, commandName(tc.args), "%q", tc.args)
	}
}
