package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"

	"github.com/dnft/dnft/test/harness"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		in    string
		port  uint16
		proto portmap.Proto
		bad   bool
	}{
		{"8080", 8080, portmap.TCP, false},
		{"53/udp", 53, portmap.UDP, false},
		{"9/SCTP", 9, portmap.SCTP, false},
		{"65535/tcp", 65535, portmap.TCP, false},
		{"0", 0, "", true},
		{"65536", 0, "", true},
		{"80/icmp", 0, "", true},
		{"80/", 0, "", true},
		{"/tcp", 0, "", true},
		{"8080:80", 0, "", true},
		{"-1", 0, "", true},
	} {
		port, proto, err := parsePublish(tc.in)
		if tc.bad {
			var fe *dnft.FieldError
			require.ErrorAs(t, err, &fe, tc.in)
			assert.Equal(t, "publish", fe.Field)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.port, port, tc.in)
		assert.Equal(t, tc.proto, proto, tc.in)
	}
}

// TestIngressUsageErrors covers command lines that are refused before
// any kernel change (see refusalNetns).
func TestIngressUsageErrors(t *testing.T) {
	withNetns := refusalNetns(t)
	for _, tc := range []struct {
		args      []string
		want      string
		wantUsage bool
	}{
		{[]string{"ingress"}, "ingress: missing command", true},
		{[]string{"ingress", "add"}, `unknown command "add"`, true},
		{[]string{"ingress", "publish", "--target", "10.0.0.2"}, "missing -p", true},
		{[]string{"ingress", "publish", "-p", "80"}, "missing --target", true},
		{[]string{"ingress", "publish", "-p", "80", "--target", "10.0.0.2", "x"}, `unexpected argument "x"`, true},
		{[]string{"ingress", "unpublish"}, "missing -p", true},
		{[]string{"ingress", "ls", "--yaml"}, "unknown flag: --yaml", true},
		{[]string{"ingress", "publish", "-p", "80/icmp", "--target", "10.0.0.2"}, `invalid publish "80/icmp"`, false},
		{[]string{"ingress", "publish", "-p", "80", "--target", "10.0.0"}, `invalid target "10.0.0"`, false},
		{[]string{"ingress", "unpublish", "-p", "0"}, `invalid publish "0"`, false},
		{[]string{"--netns", "dnft-cli-does-not-exist", "ingress", "ls"}, `invalid netns`, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(withNetns(tc.args)...)
			assert.Equal(t, 2, code, "stderr: %s", stderr)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
			assert.Equal(t, 1, strings.Count(stderr, "dnft: "), "error printed once: %q", stderr)
			assert.Equal(t, tc.wantUsage, strings.Contains(stderr, "Usage:"), "usage shown: %q", stderr)
		})
	}
}

func TestIngressOutput(t *testing.T) {
	ps := []dnft.IngressPublished{
		{Port: dnft.IngressPort{GwBridge: "docker_gwbridge", Proto: portmap.TCP, Port: 8080, Target: netip.MustParseAddr("172.18.0.2")}, Refs: 2, Seq: 1, Packets: 7, Bytes: 420},
		{Port: dnft.IngressPort{GwBridge: "gw2", Proto: portmap.UDP, Port: 53, Target: netip.MustParseAddr("fd00::2")}, Refs: 1, Seq: 2},
	}
	var b bytes.Buffer
	require.NoError(t, writeIngressTable(&b, ps))
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, []string{"PORT", "TARGET", "BRIDGE", "REFS", "PACKETS"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{"8080/tcp", "172.18.0.2", "docker_gwbridge", "2", "7"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{"53/udp", "fd00::2", "gw2", "1", "0"}, strings.Fields(lines[2]))

	b.Reset()
	require.NoError(t, writeJSON(&b, ingressJSON(ps)))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &got))
	assert.Equal(t, map[string]any{"port": 8080.0, "proto": "tcp", "target": "172.18.0.2", "bridge": "docker_gwbridge",
		"refs": 2.0, "packets": 7.0, "bytes": 420.0}, got[0])
	b.Reset()
	require.NoError(t, writeJSON(&b, ingressJSON(nil)))
	assert.Equal(t, "[]\n", b.String())
}

// TestIngressCLI runs the ingress commands in-process against a namespace:
// counting, listing, refusals with exit code 2, and the last unpublish
// leaving the ruleset as it was.
func TestIngressCLI(t *testing.T) {
	harness.RequireRoot(t, "nft")
	ns := harness.Scratch(t).Name
	cli := func(args ...string) (int, string, string) { return runCLI(append([]string{"--netns", ns}, args...)...) }
	ok := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := cli(args...)
		require.Equal(t, 0, code, "dnft %v: %s", args, stderr)
		return stdout
	}
	ok("init", "--ip-forward")
	ok("network", "create", "gw", "--bridge", "docker_gwbridge", "--subnet", "172.30.0.0/16", "-o", optEnableICC+"=false")
	ok("network", "create", "n1", "--bridge", "br-n1", "--subnet", "172.31.0.0/16")
	before := nsExec(t, ns, "nft", "-s", "list", "ruleset")

	assert.Equal(t, "8080/tcp\n", ok("ingress", "publish", "-p", "8080", "--target", "172.30.0.2"))
	ok("ingress", "publish", "-p", "8080/tcp", "--target", "172.30.0.2", "--bridge", "docker_gwbridge")
	ok("ingress", "publish", "-p", "53/udp", "--target", "172.30.0.2")
	var ls []ingressPortJSON
	require.NoError(t, json.Unmarshal([]byte(ok("ingress", "ls", "--json")), &ls))
	require.Len(t, ls, 2)
	assert.Equal(t, ingressPortJSON{Port: 8080, Proto: "tcp", Target: "172.30.0.2", Bridge: "docker_gwbridge", Refs: 2}, ls[0])
	assert.Equal(t, 1, ls[1].Refs)
	assert.Contains(t, ok("ingress", "ls"), "8080/tcp")

	held := nsExec(t, ns, "nft", "-s", "list", "ruleset")
	for _, args := range [][]string{
		{"ingress", "publish", "-p", "8080", "--target", "172.30.0.3"},
		{"ingress", "publish", "-p", "8080", "--target", "fd00::2"},
		{"ingress", "publish", "-p", "9090", "--target", "172.30.0.2", "--bridge", "br-n1"}, // a container network's bridge
		{"ingress", "unpublish", "-p", "8081"},
		{"ingress", "unpublish", "-p", "8080", "--target", "172.30.0.9"},
	} {
		code, _, stderr := cli(args...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	require.Equal(t, held, nsExec(t, ns, "nft", "-s", "list", "ruleset"), "refused commands change nothing")

	ok("ingress", "unpublish", "-p", "8080")
	ok("ingress", "unpublish", "-p", "53/udp")
	require.NoError(t, json.Unmarshal([]byte(ok("ingress", "ls", "--json")), &ls))
	require.Len(t, ls, 1)
	assert.Equal(t, 1, ls[0].Refs)
	ok("ingress", "unpublish", "-p", "8080/tcp", "--bridge", "docker_gwbridge")
	assert.Equal(t, "[]\n", ok("ingress", "ls", "--json"))
	require.Equal(t, before, nsExec(t, ns, "nft", "-s", "list", "ruleset"))
}
