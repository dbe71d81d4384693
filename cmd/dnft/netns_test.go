package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/test/harness"
)

// refusalNetns is for tests of command lines that must be refused before
// they reach the kernel: as root it returns a scratch namespace and the
// function that adds "--netns NAME" to a command line that names none,
// and registers a check that the namespace's ruleset is still empty at the
// end, so that a command that wrongly went on touches only that
// namespace, and is caught. Without root it returns no namespace and
// leaves command lines as they are (the kernel refuses such a process any
// change anyway).
func refusalNetns(t *testing.T) func(args []string) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		return func(args []string) []string { return args }
	}
	ns := harness.Scratch(t).Name
	t.Cleanup(func() {
		assert.Empty(t, strings.TrimSpace(ruleset(t, ns)), "a refused command line changed the ruleset")
	})
	return func(args []string) []string {
		for _, a := range args {
			if a == "--netns" || strings.HasPrefix(a, "--netns=") {
				return args
			}
		}
		return append([]string{"--netns", ns}, args...)
	}
}

// nsExec runs a command inside the namespace and returns its stdout.
func nsExec(t *testing.T, ns string, args ...string) string {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	require.NoError(t, cmd.Run(), "%v: %s", args, e.String())
	return o.String()
}

func ruleset(t *testing.T, ns string) string {
	t.Helper()
	return nsExec(t, ns, "nft", "list", "ruleset")
}

func sysctl(t *testing.T, ns, key string) string {
	t.Helper()
	return strings.TrimSpace(nsExec(t, ns, "sysctl", "-n", key))
}

// dnftCLI runs the built binary against one namespace.
type dnftCLI struct {
	bin, ns string
}

type result struct {
	code           int
	stdout, stderr string
}

func (c dnftCLI) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--netns", c.ns}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("dnft %v: %v", args, err)
	}
	return r
}

// ok runs a command that must succeed.
func (c dnftCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := c.run(t, args...)
	require.Equal(t, 0, r.code, "dnft %v: %s", args, r.stderr)
	return r.stdout
}

func TestCLIInNetns(t *testing.T) {
	harness.RequireRoot(t, "nft")
	bin := harness.Build(t, ".")

	t.Run("bad input", func(t *testing.T) {
		ns := harness.Scratch(t).Name
		nsExec(t, ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		c := dnftCLI{bin, ns}

		// Before init, network commands are bad input too.
		empty := ruleset(t, ns)
		for _, args := range [][]string{
			{"network", "create", "n0", "--bridge", "br-n0", "--subnet", "10.9.0.0/24"},
			{"network", "ls"},
			{"network", "rm", "n0"},
		} {
			r := c.run(t, args...)
			assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
			assert.Contains(t, r.stderr, "not initialized")
		}
		assert.Equal(t, empty, ruleset(t, ns))
		assert.Contains(t, c.ok(t, "status"), "initialized: false")

		c.ok(t, "init")
		c.ok(t, "init") // same options again: no change, success
		assert.Equal(t, "n1\n", c.ok(t, "network", "create", "n1", "--bridge", "br-n1", "--subnet", "10.10.0.0/24"))
		before := ruleset(t, ns)
		require.NotEmpty(t, before)

		create := func(name, bridge string, rest ...string) []string {
			return append([]string{"network", "create", name, "--bridge", bridge}, rest...)
		}
		v4 := []string{"--subnet", "10.20.0.0/24"}
		opt := func(kv string) []string { return append(append([]string{}, v4...), "-o", kv) }
		for _, tc := range []struct {
			name string
			args []string
			want string // the offending value, quoted as the message shows it
		}{
			{"bad CIDR", create("n2", "br-n2", "--subnet", "10.0.0.300/24"), `"10.0.0.300/24"`},
			{"host bits", create("n2", "br-n2", "--subnet", "10.20.0.1/24"), `"10.20.0.1/24"`},
			{"IPv4 second subnet", create("n2", "br-n2", "--subnet", "10.20.0.0/24", "--subnet", "10.30.0.0/24"), `"10.30.0.0/24"`},
			{"interface name too long", create("n2", "br-0123456789abc", v4...), `"br-0123456789abc"`},
			{"unknown network for rm", []string{"network", "rm", "nosuch"}, `"nosuch"`},
			{"duplicate name", create("n1", "br-n2", v4...), `"n1"`},
			{"duplicate bridge", create("n2", "br-n1", v4...), `"br-n1"`},
			{"overlapping subnet", create("n2", "br-n2", "--subnet", "10.10.0.128/25"), `"10.10.0.128/25"`},
			{"overlapping supernet", create("n2", "br-n2", "--subnet", "10.0.0.0/8"), `"10.0.0.0/8"`},
			{"host_ipv4 is IPv6", create("n2", "br-n2", opt(optHostIPv4+"=2001:db8::1")...), `"2001:db8::1"`},
			{"host_ipv6 is IPv4", create("n2", "br-n2", opt(optHostIPv6+"=192.0.2.1")...), `"192.0.2.1"`},
			{"host_binding_ipv4 is IPv6", create("n2", "br-n2", opt(optHostBindingIPv4+"=2001:db8::2")...), `"2001:db8::2"`},
			{"bad address", create("n2", "br-n2", opt(optHostIPv4+"=192.0.2.256")...), `"192.0.2.256"`},
			{"bad bool", create("n2", "br-n2", opt(optEnableICC+"=maybe")...), `"maybe"`},
			{"bad masquerade bool", create("n2", "br-n2", opt(optEnableMasq+"=yes")...), `"yes"`},
			{"unknown -o key", create("n2", "br-n2", opt("com.docker.network.driver.mtu=1400")...), `"com.docker.network.driver.mtu"`},
			{"-o without =", create("n2", "br-n2", opt("novalue")...), `"novalue"`},
			{"IPv6 subnet without init --ipv6", create("n2", "br-n2", "--subnet", "10.20.0.0/24", "--subnet", "fd00:20::/64"), `"fd00:20::/64"`},
			{"bad network name", create("bad/name", "br-n2", v4...), `"bad/name"`},
			{"init --ipv6", []string{"init", "--ipv6"}, "ipv6"},
			{"init --userland-proxy=false", []string{"init", "--userland-proxy=false"}, "userland-proxy"},
			{"init --allow-direct-routing", []string{"init", "--allow-direct-routing"}, "allow-direct-routing"},
			{"unknown flag", []string{"network", "create", "n2", "--bridgee", "br-n2"}, "--bridgee"},
			{"missing argument", []string{"network", "rm"}, "NAME"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := c.run(t, tc.args...)
				assert.Equal(t, 2, r.code, "stderr: %s", r.stderr)
				assert.True(t, strings.HasPrefix(r.stderr, "dnft: "), "stderr: %q", r.stderr)
				assert.Contains(t, r.stderr, tc.want)
				assert.Empty(t, r.stdout)
				assert.Equal(t, before, ruleset(t, ns), "ruleset changed")
			})
		}

		// The good counterparts do change the ruleset, and rm undoes create.
		c.ok(t, create("n2", "br-n2", "--subnet", "10.20.0.0/24",
			"-o", optEnableICC+"=false", "-o", optEnableMasq+"=0",
			"-o", optHostIPv4+"=192.0.2.1", "-o", optHostBindingIPv4+"=127.0.0.1")...)
		assert.NotEqual(t, before, ruleset(t, ns))

		var nets []networkJSON
		require.NoError(t, json.Unmarshal([]byte(c.ok(t, "network", "ls", "--json")), &nets))
		require.Len(t, nets, 2)
		assert.Equal(t, networkJSON{Name: "n1", Bridge: "br-n1", Subnets: []string{"10.10.0.0/24"}, ICC: true, Masquerade: true}, nets[0])
		assert.Equal(t, networkJSON{Name: "n2", Bridge: "br-n2", Subnets: []string{"10.20.0.0/24"},
			HostIPv4: "192.0.2.1", HostBindingIPv4: "127.0.0.1"}, nets[1])

		table := c.ok(t, "network", "ls")
		assert.Contains(t, table, "HOST-IP/SNAT")
		assert.Contains(t, table, "snat=192.0.2.1")
		assert.Equal(t, "n1\nn2\n", c.ok(t, "network", "ls", "-q"))

		var st status
		require.NoError(t, json.Unmarshal([]byte(c.ok(t, "status", "--json")), &st))
		assert.True(t, st.Initialized)
		assert.Equal(t, &daemonJSON{UserlandProxy: true}, st.Daemon)
		assert.Equal(t, 2, st.Networks)

		assert.Equal(t, "n2\n", c.ok(t, "network", "rm", "n2"))
		assert.Equal(t, before, ruleset(t, ns), "rm restores the ruleset create changed")

		c.ok(t, "reset")
		assert.Empty(t, strings.TrimSpace(ruleset(t, ns)), "reset leaves an empty ruleset")
		c.ok(t, "reset") // nothing to reset: still fine
		require.NoError(t, json.Unmarshal([]byte(c.ok(t, "status", "--json")), &st))
		assert.False(t, st.Initialized)
		assert.Nil(t, st.Daemon)
		assert.Equal(t, 2, c.run(t, "network", "ls").code)
	})

	t.Run("dual stack", func(t *testing.T) {
		ns := harness.Scratch(t).Name
		c := dnftCLI{bin, ns}
		c.ok(t, "init", "--ipv6", "--userland-proxy=false", "--ip-forward")
		c.ok(t, "network", "create", "v6", "--bridge", "br-v6", "--subnet", "fd00:6::/64", "--subnet", "10.6.0.0/24",
			"-o", optHostIPv6+"=2001:db8::6")
		before := ruleset(t, ns)
		r := c.run(t, "network", "create", "v7", "--bridge", "br-v7", "--subnet", "10.7.0.0/24", "--subnet", "fd00:6::/48")
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, `"fd00:6::/48"`)
		assert.Equal(t, before, ruleset(t, ns))

		var nets []networkJSON
		require.NoError(t, json.Unmarshal([]byte(c.ok(t, "network", "ls", "--json")), &nets))
		require.Len(t, nets, 1)
		assert.Equal(t, []string{"10.6.0.0/24", "fd00:6::/64"}, nets[0].Subnets)
		assert.Equal(t, "2001:db8::6", nets[0].HostIPv6)
		c.ok(t, "reset")
		assert.Empty(t, strings.TrimSpace(ruleset(t, ns)))
	})

	t.Run("ip forwarding", func(t *testing.T) {
		ns := harness.Scratch(t).Name
		nsExec(t, ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
		nsExec(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
		c := dnftCLI{bin, ns}

		r := c.run(t, "init")
		assert.NotEqual(t, 0, r.code)
		assert.True(t, strings.HasPrefix(r.stderr, "dnft: "), r.stderr)
		assert.Contains(t, r.stderr, "net.ipv4.ip_forward")
		assert.Contains(t, r.stderr, "--ip-forward")
		assert.Empty(t, strings.TrimSpace(ruleset(t, ns)), "failed init leaves no tables")
		assert.Equal(t, "0", sysctl(t, ns, "net.ipv4.ip_forward"))

		c.ok(t, "init", "--ip-forward", "--ipv6")
		assert.Equal(t, "1", sysctl(t, ns, "net.ipv4.ip_forward"))
		assert.Equal(t, "1", sysctl(t, ns, "net.ipv6.conf.all.forwarding"))
		assert.NotEmpty(t, strings.TrimSpace(ruleset(t, ns)))
	})
}
