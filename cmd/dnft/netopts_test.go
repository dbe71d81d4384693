package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
)

func TestCreateFlagsConfig(t *testing.T) {
	base := func(mod func(*dnft.NetworkConfig)) dnft.NetworkConfig {
		c := dnft.NetworkConfig{
			Name: "n1", Bridge: "br-n1", ICC: true, Masquerade: true,
			Subnet4: netip.MustParsePrefix("10.1.0.0/24"),
		}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	flags := func(subnets []string, opts ...string) createFlags {
		return createFlags{bridge: "br-n1", subnets: subnets, opts: opts}
	}
	v4 := []string{"10.1.0.0/24"}

	good := []struct {
		name string
		in   createFlags
		want dnft.NetworkConfig
	}{
		{"defaults", flags(v4), base(nil)},
		{"internal", createFlags{bridge: "br-n1", subnets: v4, internal: true},
			base(func(c *dnft.NetworkConfig) { c.Internal = true })},
		{"dual stack", flags([]string{"10.1.0.0/24", "fd00:1::/64"}),
			base(func(c *dnft.NetworkConfig) { c.Subnet6 = netip.MustParsePrefix("fd00:1::/64") })},
		{"dual stack, IPv6 first", flags([]string{"fd00:1::/64", "10.1.0.0/24"}),
			base(func(c *dnft.NetworkConfig) { c.Subnet6 = netip.MustParsePrefix("fd00:1::/64") })},
		{"icc false", flags(v4, optEnableICC+"=false"),
			base(func(c *dnft.NetworkConfig) { c.ICC = false })},
		{"icc 0 (ParseBool)", flags(v4, optEnableICC+"=0"),
			base(func(c *dnft.NetworkConfig) { c.ICC = false })},
		{"masq F (ParseBool)", flags(v4, optEnableMasq+"=F"),
			base(func(c *dnft.NetworkConfig) { c.Masquerade = false })},
		{"last value wins", flags(v4, optEnableICC+"=false", optEnableICC+"=TRUE"), base(nil)},
		{"addresses", flags([]string{"10.1.0.0/24", "fd00:1::/64"},
			optHostIPv4+"=192.0.2.1", optHostIPv6+"=2001:db8::1", optHostBindingIPv4+"=127.0.0.1"),
			base(func(c *dnft.NetworkConfig) {
				c.Subnet6 = netip.MustParsePrefix("fd00:1::/64")
				c.HostIPv4 = netip.MustParseAddr("192.0.2.1")
				c.HostIPv6 = netip.MustParseAddr("2001:db8::1")
				c.HostBindingIPv4 = netip.MustParseAddr("127.0.0.1")
			})},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.config("n1")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	bad := []struct {
		name  string
		in    createFlags
		cname string
		want  []string // substrings of the message
		usage bool     // a usage error rather than a field error
	}{
		{"missing bridge", createFlags{subnets: v4}, "n1", []string{"missing --bridge"}, true},
		{"missing subnet", createFlags{bridge: "br0"}, "n1", []string{"missing --subnet"}, true},
		{"bad CIDR", flags([]string{"10.0.0.300/24"}), "n1", []string{`invalid subnet "10.0.0.300/24"`, ">255"}, false},
		{"no prefix length", flags([]string{"10.0.0.0"}), "n1", []string{`invalid subnet "10.0.0.0"`}, false},
		{"host bits", flags([]string{"10.1.0.1/24"}), "n1", []string{`"10.1.0.1/24"`, "host bits", "10.1.0.0/24"}, false},
		{"IPv6 host bits", flags([]string{"10.1.0.0/24", "fd00::1/64"}), "n1", []string{`"fd00::1/64"`, "host bits"}, false},
		{"second IPv4 subnet", flags([]string{"10.1.0.0/24", "10.2.0.0/24"}), "n1", []string{`"10.2.0.0/24"`, "must be IPv6"}, false},
		{"two IPv6 subnets", flags([]string{"10.1.0.0/24", "fd00:1::/64", "fd00:2::/64"}), "n1", []string{`"fd00:2::/64"`}, false},
		{"IPv6 only", flags([]string{"fd00:1::/64"}), "n1", []string{`"fd00:1::/64"`, "IPv4 subnet is required"}, false},
		{"three subnets", flags([]string{"10.1.0.0/24", "fd00:1::/64", "10.2.0.0/24"}), "n1", []string{`"10.2.0.0/24"`}, false},
		{"4in6 subnet", flags([]string{"10.1.0.0/24", "::ffff:10.3.0.0/120"}), "n1", []string{`"::ffff:10.3.0.0/120"`}, false},
		{"long bridge", createFlags{bridge: "br-0123456789abc", subnets: v4}, "n1", []string{`"br-0123456789abc"`, "15 bytes"}, false},
		{"bridge with slash", createFlags{bridge: "br/0", subnets: v4}, "n1", []string{`"br/0"`}, false},
		{"bad name", flags(v4), "bad name", []string{`invalid name "bad name"`}, false},
		{"bad bool", flags(v4, optEnableICC+"=maybe"), "n1", []string{optEnableICC, `"maybe"`}, false},
		{"empty bool", flags(v4, optEnableMasq+"="), "n1", []string{optEnableMasq, `""`}, false},
		{"unknown option", flags(v4, "com.docker.network.bridge.name=br0"), "n1",
			[]string{`unknown network option "com.docker.network.bridge.name"`}, false},
		{"option without =", flags(v4, optEnableICC), "n1", []string{`invalid option "` + optEnableICC + `"`, "KEY=VALUE"}, false},
		{"bad address", flags(v4, optHostIPv4+"=192.0.2.300"), "n1", []string{optHostIPv4, `"192.0.2.300"`}, false},
		{"host_ipv4 is IPv6", flags(v4, optHostIPv4+"=2001:db8::1"), "n1", []string{optHostIPv4, `"2001:db8::1"`, "IPv4"}, false},
		{"host_ipv6 is IPv4", flags(v4, optHostIPv6+"=192.0.2.1"), "n1", []string{optHostIPv6, `"192.0.2.1"`, "IPv6"}, false},
		{"host_ipv6 is 4in6", flags(v4, optHostIPv6+"=::ffff:192.0.2.1"), "n1", []string{optHostIPv6, `"::ffff:192.0.2.1"`}, false},
		{"host_binding_ipv4 is IPv6", flags(v4, optHostBindingIPv4+"=::1"), "n1", []string{optHostBindingIPv4, `"::1"`}, false},
		{"zone", flags(v4, optHostIPv6+"=fe80::1%eth0"), "n1", []string{optHostIPv6, `"fe80::1%eth0"`, "zone"}, false},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.in.config(tc.cname)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, exitBadInput, exitCode(err), "exit code for %v", err)
			var ue *usageError
			assert.Equal(t, tc.usage, errorsAs(err, &ue), "usage error")
			assert.NotContains(t, err.Error(), "ParsePrefix(", "netip's prefix repeats the value")
		})
	}
}

func TestKnownOptionsInHelp(t *testing.T) {
	c := newNetworkCreateCmd(&app{})
	for _, k := range knownOptions() {
		assert.True(t, strings.Contains(c.Long, k), "help mentions %s", k)
	}
}
