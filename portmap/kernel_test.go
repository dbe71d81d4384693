package portmap

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// testNS creates a throwaway namespace and returns its name.
func testNS(t *testing.T) string {
	t.Helper()
	return harness.Scratch(t).Name
}

func nftIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// TestKernelObjects programs the port objects in a scratch namespace and
// checks how nft prints them, and that bindings read back as published.
func TestKernelObjects(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := nft.Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()

	d := chains.DaemonConfig{UserlandProxy: true, IPv6: true}
	n := net6()
	tx := &nft.Tx{}
	chains.Init(tx, d)
	Init(tx, d)
	chains.CreateNetwork(tx, d, n)
	require.NoError(t, c.Apply(ctx, tx))

	bs := []Binding{
		{Proto: TCP, HostPort: 8080, ContainerIP: ip("172.18.0.2"), ContainerPort: 80},
		{Proto: UDP, HostIP: ip("192.0.2.1"), HostPort: 8081, ContainerIP: ip("172.18.0.2"), ContainerPort: 80},
		{Proto: TCP, HostIP: ip("127.0.0.1"), HostPort: 8082, ContainerIP: ip("172.18.0.2"), ContainerPort: 80},
		{Proto: SCTP, HostPort: 9000, ContainerIP: ip("fd00:18::2"), ContainerPort: 9},
		{Proto: TCP, HostIP: ip("::1"), HostPort: 9001, ContainerIP: ip("fd00:18::2"), ContainerPort: 9},
	}
	norm, err := CheckPublish(d, n, bs, nil)
	require.NoError(t, err)
	before := nftIn(t, ns, "-s", "list", "ruleset")
	tx = &nft.Tx{}
	Publish(tx, d, n, norm, 100, nil)
	require.NoError(t, c.Apply(ctx, tx))

	rs := nftIn(t, ns, "list", "ruleset")
	for _, want := range []string{
		`iifname . ip daddr . meta l4proto . th dport @dnat-skip-host counter packets 0 bytes 0 return comment "DNAT NOT FROM OWN BRIDGE"`,
		`iifname . meta l4proto . th dport @dnat-skip-any counter packets 0 bytes 0 return comment "DNAT NOT FROM OWN BRIDGE"`,
		`dnat ip to ip daddr . meta l4proto . th dport map @dnat-host comment "DNAT HOST ADDRESS"`,
		`dnat ip to meta l4proto . th dport map @dnat-any comment "DNAT ALL ADDRESSES"`,
		`ip6 saddr != fe80::/10 counter packets 0 bytes 0 dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat-host`,
		`ip6 saddr != fe80::/10 counter packets 0 bytes 0 dnat ip6 to meta l4proto . th dport map @dnat-any`,
		`ip saddr . ip daddr . meta l4proto . th dport @hairpin counter packets 0 bytes 0 masquerade comment "HAIRPIN MASQUERADE"`,
		`iifname != "lo" ip daddr . meta l4proto . th dport @loopback-ports counter packets 0 bytes 0 drop comment "LOOPBACK PORT DROP"`,
		`tcp . 8080 counter packets 0 bytes 0 comment "dnft1;net=a;q=2s" : 172.18.0.2 . 80`,
		`192.0.2.1 . udp . 8081 counter packets 0 bytes 0 comment "dnft1;net=a;q=2t" : 172.18.0.2 . 80`,
		`"br-a" . 192.0.2.1 . udp . 8081 comment "dnft1;q=2t;to=172.18.0.2:80"`,
		`127.0.0.1 . tcp . 8082 counter packets 0 bytes 0 comment "dnft1;net=a"`,
		`172.18.0.2 . 172.18.0.2 . tcp . 80 counter packets 0 bytes 0 comment "dnft1;net=a"`,
		`sctp . 9000 counter packets 0 bytes 0 comment "dnft1;net=a;q=2v" : fd00:18::2 . 9`,
		`::1 . tcp . 9001`,
	} {
		require.Contains(t, rs, want)
	}

	got, err := ReadBindings(ctx, c, d)
	require.NoError(t, err)
	require.Len(t, got, len(bs))
	for i, p := range got {
		require.Equal(t, "a", p.Network)
		require.Equal(t, int64(100+i), p.Seq)
		require.Equal(t, norm[i], p.Binding)
	}

	// Unpublishing removes exactly what was added.
	tx = &nft.Tx{}
	Unpublish(tx, d, n, norm, got)
	require.NoError(t, c.Apply(ctx, tx))
	require.Equal(t, before, nftIn(t, ns, "-s", "list", "ruleset"))
}

func net6() chains.Network {
	return chains.Network{NetworkConfig: chains.NetworkConfig{
		Name: "a", Bridge: "br-a", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), Subnet6: netip.MustParsePrefix("fd00:18::/64"),
		ICC: true, Masquerade: true,
	}, Seq: 1}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }
