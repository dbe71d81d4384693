package chains

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/nft"
)

func TestNetworkRecordRoundTrip(t *testing.T) {
	for _, n := range []Network{
		{NetworkConfig: NetworkConfig{Name: "bridge", Bridge: "docker0", Subnet4: netip.MustParsePrefix("172.17.0.0/16"), ICC: true, Masquerade: true}, Seq: 1},
		{NetworkConfig: NetworkConfig{Name: "int", Bridge: "br-i", Subnet4: netip.MustParsePrefix("10.0.0.0/24"), Internal: true}, Seq: 1 << 60},
		{NetworkConfig: NetworkConfig{Name: "gw", Bridge: "docker_gwbridge", Subnet4: netip.MustParsePrefix("172.30.0.0/16"), Masquerade: true}, Seq: 1 << 60, MasqSeq4: 5, MasqSeq6: 1<<60 - 1},
		{NetworkConfig: NetworkConfig{
			Name: strings.Repeat("n", 11), Bridge: "br-full", Subnet4: netip.MustParsePrefix("192.168.0.0/24"),
			Subnet6: netip.MustParsePrefix("fd49:efd7:54aa:1234::/64"), Masquerade: true,
			HostIPv4: netip.MustParseAddr("192.168.123.1"), HostIPv6: netip.MustParseAddr("fd34::123"),
			HostBindingIPv4: netip.MustParseAddr("127.0.0.1"),
		}, Seq: 1795661154172003603},
	} {
		s := EncodeNetwork(n)
		require.LessOrEqual(t, len(s), MaxRecordLen, s)
		got, err := DecodeNetwork(n.Bridge, s)
		require.NoError(t, err)
		require.Equal(t, n, got)
	}
	d := DaemonConfig{UserlandProxy: true, IPv6: true}
	got, err := DecodeDaemon(EncodeDaemon(d))
	require.NoError(t, err)
	require.Equal(t, d, got)
	_, err = DecodeNetwork("x", "other;n=a")
	require.Error(t, err)
	for _, bad := range []string{"m4=0", "m4=z", "m6=a"} { // positive, older than the network (q=a)
		_, err = DecodeNetwork("x", "dnft1;n=a;s4=10.0.0.0/8;f=011;q=a;"+bad)
		require.Error(t, err, bad)
	}
	_, err = DecodeNetwork("x", "dnft1;n=a;s4=10.0.0.0/8;f=011;q=a;m4=9")
	require.NoError(t, err)

	n := Network{Seq: 10}
	require.Equal(t, int64(10), n.MasqPos(nft.IPv4))
	n = n.WithMasqPos(nft.IPv6, 4)
	require.Equal(t, []int64{10, 4}, []int64{n.MasqPos(nft.IPv4), n.MasqPos(nft.IPv6)})
	require.Zero(t, n.WithMasqPos(nft.IPv6, 10).MasqSeq6, "back at its own place")
}

// TestDecodeNetworkRefuses: a record read back is validated like user
// input; anything dnft would not have written is an error.
func TestDecodeNetworkRefuses(t *testing.T) {
	good := EncodeNetwork(Network{NetworkConfig: NetworkConfig{Name: "a", Bridge: "br-a", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), ICC: true, Masquerade: true}, Seq: 5})
	for _, tc := range []struct{ name, record, want string }{
		{"no subnet", strings.Replace(good, ";s4=172.18.0.0/16", "", 1), "no s4"},
		{"every address", strings.Replace(good, "172.18.0.0/16", "0.0.0.0/0", 1), "0.0.0.0/8"},
		{"loopback", strings.Replace(good, "172.18.0.0/16", "127.0.0.0/24", 1), "loopback"},
		{"control character", strings.Replace(good, "n=a", "n=a\x1b[2J", 1), "must be 1-64 characters"},
		{"unknown field", good + ";x=1", "unknown field"},
		{"twice", good + ";q=6", "twice"},
		{"bad flags", strings.Replace(good, "f=011", "f=0z1", 1), "bad flags"},
		{"negative seq", strings.Replace(good, "q=5", "q=-5", 1), "bad sequence"},
		{"too long", good + strings.Repeat("x", 128), "more than 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeNetwork("br-a", tc.record)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := DecodeDaemon("dnft1;proxy=1;ipv6=2;adr=0")
	require.ErrorContains(t, err, "ipv6 must be 0 or 1")
	_, err = DecodeNetwork("lo", good)
	require.ErrorContains(t, err, "loopback interface")
}

func TestCheckNew(t *testing.T) {
	existing := []Network{{NetworkConfig: NetworkConfig{Name: "a", Bridge: "br-a", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), Subnet6: netip.MustParsePrefix("fd00:18::/64")}}}
	base := NetworkConfig{Name: "b", Bridge: "br-b", Subnet4: netip.MustParsePrefix("172.19.0.0/16")}
	for _, tc := range []struct {
		name  string
		edit  func(*NetworkConfig)
		field string
	}{
		{"ok", func(*NetworkConfig) {}, ""},
		{"duplicate name", func(c *NetworkConfig) { c.Name = "a" }, "name"},
		{"bad name", func(c *NetworkConfig) { c.Name = "-x" }, "name"},
		{"duplicate bridge", func(c *NetworkConfig) { c.Bridge = "br-a" }, "bridge"},
		{"long bridge", func(c *NetworkConfig) { c.Bridge = "br-0123456789abc" }, "bridge"},
		{"bridge with slash", func(c *NetworkConfig) { c.Bridge = "br/x" }, "bridge"},
		{"overlap v4", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("172.18.5.0/24") }, "subnet"},
		{"overlap v6", func(c *NetworkConfig) { c.Subnet6 = netip.MustParsePrefix("fd00:18::/48") }, "subnet"},
		{"host bits", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("172.19.0.1/16") }, "subnet"},
		{"v6 as first subnet", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("fd00:19::/64") }, "subnet"},
		{"v4 as second subnet", func(c *NetworkConfig) { c.Subnet6 = netip.MustParsePrefix("10.1.0.0/16") }, "subnet"},
		{"host_ipv4 family", func(c *NetworkConfig) { c.HostIPv4 = netip.MustParseAddr("fd00::1") }, "com.docker.network.host_ipv4"},
		{"host_ipv6 family", func(c *NetworkConfig) { c.HostIPv6 = netip.MustParseAddr("10.0.0.1") }, "com.docker.network.host_ipv6"},
		{"binding family", func(c *NetworkConfig) { c.HostBindingIPv4 = netip.MustParseAddr("::1") }, "com.docker.network.bridge.host_binding_ipv4"},
		{"bridge .", func(c *NetworkConfig) { c.Bridge = "." }, "bridge"},
		{"bridge ..", func(c *NetworkConfig) { c.Bridge = ".." }, "bridge"},
		{"bridge *", func(c *NetworkConfig) { c.Bridge = "br*" }, "bridge"},
		{"bridge +", func(c *NetworkConfig) { c.Bridge = "br+" }, "bridge"},
		{"bridge lo", func(c *NetworkConfig) { c.Bridge = "lo" }, "bridge"},
		{"bridge all", func(c *NetworkConfig) { c.Bridge = "all" }, "bridge"},
		{"subnet /32", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("10.9.9.9/32") }, "subnet"},
		{"subnet /31", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("10.9.9.8/31") }, "subnet"},
		{"subnet loopback", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("127.1.0.0/16") }, "subnet"},
		{"subnet multicast", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("239.1.0.0/16") }, "subnet"},
		{"subnet everything", func(c *NetworkConfig) { c.Subnet4 = netip.MustParsePrefix("0.0.0.0/0") }, "subnet"},
		{"subnet6 /128", func(c *NetworkConfig) { c.Subnet6 = netip.MustParsePrefix("fd00:99::1/128") }, "subnet"},
		{"subnet6 multicast", func(c *NetworkConfig) { c.Subnet6 = netip.MustParsePrefix("ff05::/64") }, "subnet"},
		{"record too long", func(c *NetworkConfig) {
			c.Name = strings.Repeat("n", 64)
			c.HostIPv6 = netip.MustParseAddr("fd34:d0d4:672f:ffff:ffff:ffff:ffff:123")
		}, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := CheckNew(c, existing)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, err.Error(), fe.Value)
		})
	}
}

// TestValidName: the hand-written check accepts exactly what
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ accepts.
func TestValidName(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	cases := []string{"", "a", "A9", "9", "_a", ".a", "-a", "a_b.c-d", "a b", "a/b", "é", "aé", strings.Repeat("a", 64), strings.Repeat("a", 65), "a\x00"}
	for c := byte(0); c < 128; c++ {
		cases = append(cases, string([]byte{'a', c}), string([]byte{c}))
	}
	for _, s := range cases {
		if got, want := validName(s), re.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, want %v", s, got, want)
		}
	}
}
