package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"

	"github.com/dnft/dnft/test/harness"
)

func samplePorts() []dnft.Published {
	return []dnft.Published{
		{Network: "a", Binding: portmap.Binding{Proto: portmap.TCP, HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 32768,
			ContainerIP: netip.MustParseAddr("172.18.0.2"), ContainerPort: 80}, Seq: 1, Packets: 3, Bytes: 180},
		{Network: "a", Binding: portmap.Binding{Proto: portmap.UDP, HostIP: netip.MustParseAddr("::1"), HostPort: 53,
			ContainerIP: netip.MustParseAddr("fd00::2"), ContainerPort: 53}, Seq: 2},
	}
}

func TestPortOutput(t *testing.T) {
	var b bytes.Buffer
	ps := samplePorts()
	require.NoError(t, writeBindings(&b, []dnft.Binding{ps[0].Binding, ps[1].Binding}))
	assert.Equal(t, "0.0.0.0:32768->172.18.0.2:80/tcp\n[::1]:53->[fd00::2]:53/udp\n", b.String())

	b.Reset()
	require.NoError(t, writePortTable(&b, ps))
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, []string{"NETWORK", "HOST", "CONTAINER", "PROTO", "PACKETS", "BYTES"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{"a", "0.0.0.0:32768", "172.18.0.2:80", "tcp", "3", "180"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{"a", "[::1]:53", "[fd00::2]:53", "udp", "0", "0"}, strings.Fields(lines[2]))
	assert.Equal(t, strings.Index(lines[0], "BYTES"), strings.Index(lines[1], "180"), "columns are aligned")

	b.Reset()
	require.NoError(t, writeJSON(&b, portsJSON(ps)))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &got))
	assert.Equal(t, map[string]any{"network": "a", "proto": "tcp", "host_ip": "0.0.0.0", "host_port": 32768.0,
		"container_ip": "172.18.0.2", "container_port": 80.0, "packets": 3.0, "bytes": 180.0}, got[0])
	b.Reset()
	require.NoError(t, writeJSON(&b, portsJSON(nil)))
	assert.Equal(t, "[]\n", b.String())
}

// TestPortUsageErrors: command lines refused before any kernel change
// (see refusalNetns).
func TestPortUsageErrors(t *testing.T) {
	withNetns := refusalNetns(t)
	for _, tc := range []struct {
		args      []string
		want      string
		wantUsage bool
	}{
		{[]string{"port"}, "port: missing command", true},
		{[]string{"port", "publish", "a"}, "missing CONTAINER_IP", true},
		{[]string{"port", "publish", "a", "172.18.0.2"}, "port publish: missing -p SPEC", true},
		{[]string{"port", "unpublish", "a", "172.18.0.2"}, "port unpublish: missing -p SPEC", true},
		{[]string{"port", "publish", "a", "172.18.0.2", "x", "-p", "80"}, `unexpected argument "x"`, true},
		{[]string{"port", "ls", "a"}, `unexpected argument "a"`, true},
		{[]string{"port", "publish", "a", "172.18.0.300", "-p", "80"}, `invalid container-ip "172.18.0.300"`, false},
		{[]string{"port", "publish", "a", "172.18.0.2", "-p", "80", "-p", "0:80"}, `invalid port spec "0:80": host port "0": port 0 is not allowed`, false},
		{[]string{"port", "unpublish", "a", "172.18.0.2", "-p", "80/icmp"}, `invalid port spec "80/icmp": unknown proto "icmp"`, false},
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

// TestPortCLI drives dnft port and network rm --force in a namespace:
// every bad spec and every conflict exits 2 with a message naming the
// spec and leaves the ruleset byte-identical; good ones print the
// resulting bindings; port ls shows the DNAT counters.
func TestPortCLI(t *testing.T) {
	harness.RequireRoot(t, "nft")
	bin := harness.Build(t, ".")
	ns := harness.Scratch(t).Name
	c := dnftCLI{bin, ns}
	// A local address to connect to, for counters.
	nsExec(t, ns, "ip", "link", "set", "lo", "up")
	nsExec(t, ns, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
	c.ok(t, "init", "--ip-forward", "--ipv6")
	c.ok(t, "network", "create", "n1", "--bridge", "br-n1", "--subnet", "10.10.0.0/24", "--subnet", "fd00:10::/64")
	c.ok(t, "network", "create", "n2", "--bridge", "br-n2", "--subnet", "10.20.0.0/24", "-o", optHostBindingIPv4+"=192.0.2.1")
	c.ok(t, "network", "create", "in", "--bridge", "br-in", "--subnet", "10.30.0.0/24", "--internal")

	assert.Equal(t, "0.0.0.0:8080->10.10.0.2:80/tcp\n0.0.0.0:32768->10.10.0.2:443/tcp\n127.0.0.1:32768->10.10.0.2:53/udp\n",
		c.ok(t, "port", "publish", "n1", "10.10.0.2", "-p", "8080:80", "-p", "443", "-p", "127.0.0.1::53/udp"))
	assert.Equal(t, "192.0.2.1:8081->10.20.0.2:80/tcp\n192.0.2.1:32769->10.20.0.2:81/tcp\n",
		c.ok(t, "port", "publish", "n2", "10.20.0.2", "--publish", "8080-8081:80", "-p", "81"))
	assert.Equal(t, "[::]:8080->[fd00:10::2]:80/sctp\n",
		c.ok(t, "port", "publish", "n1", "fd00:10::2", "-p", "8080:80/sctp"))

	stateless := func() string { return nsExec(t, ns, "nft", "-s", "list", "ruleset") }
	before := stateless()
	pub := func(network, ctr string, specs ...string) []string {
		args := []string{"port", "publish", network, ctr}
		for _, s := range specs {
			args = append(args, "-p", s)
		}
		return args
	}
	unpub := func(network, ctr string, specs ...string) []string {
		args := pub(network, ctr, specs...)
		args[1] = "unpublish"
		return args
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"port 0", pub("n1", "10.10.0.3", "0:80"), `invalid port spec "0:80": host port "0": port 0 is not allowed`},
		{"port too big", pub("n1", "10.10.0.3", "80:65536"), `invalid port spec "80:65536": container port "65536": port 65536 is greater than 65535`},
		{"bad range", pub("n1", "10.10.0.3", "90-80"), `invalid port spec "90-80": container port "90-80": bad range`},
		{"range lengths", pub("n1", "10.10.0.3", "9000-9001:80-82"), `invalid port spec "9000-9001:80-82": host ports 9000-9001 (2) and container ports 80-82 (3): range lengths differ`},
		{"bad host IP", pub("n1", "10.10.0.3", "10.0.0.256:80:80"), `invalid port spec "10.0.0.256:80:80": host IP "10.0.0.256"`},
		{"unknown proto", pub("n1", "10.10.0.3", "80/dccp"), `invalid port spec "80/dccp": unknown proto "dccp"`},
		{"bad container IP", pub("n1", "10.10.0.x", "80"), `invalid container-ip "10.10.0.x"`},
		{"taken", pub("n1", "10.10.0.3", "8080:80"), `-p 8080:80/tcp: invalid binding "0.0.0.0:8080->10.10.0.3:80/tcp": 0.0.0.0:8080/tcp is already published by network "n1"`},
		{"same binding again", pub("n1", "10.10.0.2", "8080:80"), `already published on network "n1"`},
		{"specific under all addresses", pub("n1", "10.10.0.3", "127.0.0.1:8080:80"), `-p 127.0.0.1:8080:80/tcp: invalid binding "127.0.0.1:8080->10.10.0.3:80/tcp": overlaps 0.0.0.0:8080/tcp`},
		{"all addresses over specific", pub("n1", "10.10.0.3", "8081:80"), `-p 8081:80/tcp: invalid binding "0.0.0.0:8081->10.10.0.3:80/tcp": overlaps 192.0.2.1:8081/tcp, already published by network "n2"`},
		{"default address taken", pub("n2", "10.20.0.3", "8081:80"), `192.0.2.1:8081/tcp is already published by network "n2"`},
		{"range taken", pub("n2", "10.20.0.3", "8080-8081:80"), `-p 8080-8081:80/tcp: invalid port spec "8080-8081:80/tcp": no free tcp host port in 8080-8081 on 192.0.2.1`},
		{"twice in one call", pub("n1", "10.10.0.3", "9000:80", "9000:81"), `-p 9000:81/tcp: invalid binding "0.0.0.0:9000->10.10.0.3:81/tcp": conflicts with binding 1 of the same request`},
		{"second spec conflicts", pub("n1", "10.10.0.3", "9000:80", "8080:81"), `-p 8080:81/tcp`},
		{"other family", pub("n1", "10.10.0.3", "[::1]:9000:80"), `-p [::1]:9000:80/tcp: invalid host-ip "::1"`},
		{"outside the subnet", pub("n1", "10.20.0.3", "9000:80"), `invalid container-ip "10.20.0.3": not in network "n1"'s subnet`},
		{"no IPv6 subnet", pub("n2", "fd00:20::2", "9000:80"), `network "n2" has no IPv6 subnet`},
		{"internal network", pub("in", "10.30.0.2", "9000:80"), `invalid network "in": is internal`},
		{"unknown network", pub("nope", "10.10.0.3", "9000:80"), `invalid network "nope": no such network`},
		{"unpublish absent", unpub("n1", "10.10.0.2", "9000:80"), `invalid binding "0.0.0.0:9000->10.10.0.2:80/tcp": not published on network "n1"`},
		{"unpublish other container", unpub("n1", "10.10.0.3", "8080:80"), `not published on network "n1" (0.0.0.0:8080/tcp is published by network "n1" as 0.0.0.0:8080->10.10.0.2:80/tcp)`},
		{"unpublish nothing there", unpub("n1", "10.10.0.2", "81"), `-p 81/tcp: invalid port spec "81/tcp": 10.10.0.2:81/tcp is not published on network "n1" from any host port on 0.0.0.0`},
		{"unpublish twice", unpub("n1", "10.10.0.2", "8080:80", "80"), "listed twice"},
		{"rm with ports", []string{"network", "rm", "n1"}, `invalid network "n1": still has 4 published port(s)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(t, tc.args...)
			assert.Equal(t, 2, r.code, "stderr: %s", r.stderr)
			assert.True(t, strings.HasPrefix(r.stderr, "dnft: "), "stderr: %q", r.stderr)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
			assert.Equal(t, before, stateless(), "ruleset changed")
		})
	}

	// Counters: a connection from the namespace itself to 192.0.2.1:8080
	// goes through nat OUTPUT's DNAT (the container does not exist, so it
	// fails, but it was counted).
	_ = exec.Command("ip", "netns", "exec", ns, "timeout", "2", "bash", "-c", "echo > /dev/tcp/192.0.2.1/8080").Run()
	var ports []portJSON
	require.NoError(t, json.Unmarshal([]byte(c.ok(t, "port", "ls", "--json")), &ports))
	require.Len(t, ports, 6)
	assert.Equal(t, portJSON{Network: "n1", Proto: "tcp", HostIP: "0.0.0.0", HostPort: 8080, ContainerIP: "10.10.0.2", ContainerPort: 80,
		Packets: ports[0].Packets, Bytes: ports[0].Bytes}, ports[0])
	assert.GreaterOrEqual(t, ports[0].Packets, uint64(1), "the DNAT element counted the connection")
	table := c.ok(t, "port", "ls")
	assert.Contains(t, table, "PACKETS")
	assert.Contains(t, table, "[::]:8080")

	// Unpublish by spec prints what it removed.
	assert.Equal(t, "0.0.0.0:32768->10.10.0.2:443/tcp\n", c.ok(t, "port", "unpublish", "n1", "10.10.0.2", "-p", "443"))
	// Forced removal unpublishes the rest of n1 in the same batch.
	assert.Equal(t, "n1\n", c.ok(t, "network", "rm", "--force", "n1"))
	require.NoError(t, json.Unmarshal([]byte(c.ok(t, "port", "ls", "--json")), &ports))
	require.Len(t, ports, 2)
	for _, p := range ports {
		assert.Equal(t, "n2", p.Network)
	}
	assert.Equal(t, "n2\n", c.ok(t, "network", "rm", "-f", "n2"))
	assert.Equal(t, "[]\n", c.ok(t, "port", "ls", "--json"))
	assert.NotContains(t, nsExec(t, ns, "nft", "list", "ruleset"), "comment \"dnft1;net=", "no binding element is left")
}
