package integration_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// TestDockerUser: an operator's drop rule in DOCKER-USER takes effect
// before dnft's accepts and survives network create and remove.
func TestDockerUser(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenarios[0].scenario // default bridge
	topo := harness.New(t, sc.spec())
	prepare(ctx, t, sc, topo)
	fw := programDNFT(ctx, t, sc, topo)
	c1 := topo.Containers["c1"]
	inet := netip.AddrPortFrom(harness.InternetAddr4, harness.EchoPort)
	require.True(t, c1.TCP(answered(ctx), inet).OK)

	out, err := topo.Host.Run(ctx, "nft", "insert", "rule", "ip", "dnft", "DOCKER-USER", "ip", "saddr", "172.17.0.2", "ip", "daddr", "203.0.113.2", "counter", "drop")
	require.NoError(t, err, out)
	require.True(t, c1.TCP(ctx, inet).Blocked(), "DOCKER-USER drop must win")
	require.True(t, topo.Containers["c2"].TCP(answered(ctx), inet).OK, "other traffic still flows")

	extra := dnft.NetworkConfig{Name: "extra", Bridge: "br-extra", Subnet4: pfx("10.99.0.0/24"), ICC: true, Masquerade: true}
	require.NoError(t, fw.CreateNetwork(ctx, extra))
	require.NoError(t, fw.RemoveNetwork(ctx, "extra", false))
	require.True(t, c1.TCP(ctx, inet).Blocked(), "DOCKER-USER rule survives network create/remove")
	rules, err := topo.Host.Run(ctx, "nft", "list", "chain", "ip", "dnft", "DOCKER-USER")
	require.NoError(t, err)
	require.Contains(t, rules, "ip saddr 172.17.0.2 ip daddr 203.0.113.2 counter packets")
	require.NoError(t, fw.Init(ctx, sc.daemon), "init again keeps DOCKER-USER")
	require.True(t, c1.TCP(ctx, inet).Blocked())
}

// TestICCWithoutBridgeNetfilter: with bridge-nf-call-iptables off, an
// ICC=false network stops traffic between its containers (the bridge
// table's drop), and dnft leaves the sysctl off (issue #12).
func TestICCWithoutBridgeNetfilter(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenarios[2].scenario // icc-off
	topo := harness.New(t, sc.spec())
	bridgeNFOff(t, topo)
	n1, n2 := topo.Containers["n1"], topo.Containers["n2"]
	to := netip.AddrPortFrom(ip("172.20.0.3"), 80)
	require.True(t, n1.TCP(answered(ctx), to).OK, "no firewall yet")
	programDNFT(ctx, t, sc, topo)
	v, err := topo.Host.Sysctl("net.bridge.bridge-nf-call-iptables")
	require.NoError(t, err)
	require.Equal(t, "0", v)
	require.True(t, n1.TCP(ctx, to).Blocked())
	require.True(t, n2.Ping(ctx, ip("172.20.0.2")).Blocked())
	require.True(t, n1.TCP(answered(ctx), netip.AddrPortFrom(harness.InternetAddr4, harness.EchoPort)).OK, "containers still reach out")
}

// TestAtomicKernelFailure: an operation the kernel rejects leaves the
// ruleset byte-identical, and the firewall keeps working afterwards.
func TestAtomicKernelFailure(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenarios[1].scenario // two networks
	topo := harness.New(t, sc.spec())
	fw := programDNFT(ctx, t, sc, topo)
	// Someone deletes one of network b's chains behind dnft's back: the
	// removal batch now contains a delete of a missing chain and the
	// kernel aborts all of it.
	// (forward-in and DOCKER__B hold no record: dnft's records stay
	// intact, so operations on other networks still work.)
	out, err := topo.Host.Run(ctx, "nft", "delete", "element", "ip", "dnft", "forward-in", `{ "br-b" }`)
	require.NoError(t, err, out)
	out, err = topo.Host.Run(ctx, "nft", "delete", "chain", "ip", "dnft", "DOCKER__br-b")
	require.NoError(t, err, out)
	// -s: stateless, counters left out (stray packets may move them).
	before, err := topo.Host.Run(ctx, "nft", "-s", "list", "ruleset")
	require.NoError(t, err)
	err = fw.RemoveNetwork(ctx, "b", false)
	require.Error(t, err)
	after, _ := topo.Host.Run(ctx, "nft", "-s", "list", "ruleset")
	require.Equal(t, before, after, "a failed operation must change nothing")
	// The connection was replaced after the error: the next operation works.
	require.NoError(t, fw.RemoveNetwork(ctx, "a", false))
	nets, err := fw.Networks(ctx)
	require.NoError(t, err)
	require.Len(t, nets, 1)
}

// TestNativeRuleset: CONTRACT §4 layer 3. Only dnft's tables exist (ip,
// ip6 with IPv6, and bridge for ICC off), no xt expression is used, and
// chain names say which Docker chain they are.
func TestNativeRuleset(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	for _, sc := range []scenario{scenarios[5].scenario, scenarios[4].scenario, scenarios[3].scenario} {
		topo := harness.New(t, sc.spec())
		programDNFT(ctx, t, sc, topo)
		out, err := topo.Host.Run(ctx, "nft", "list", "tables")
		require.NoError(t, err)
		tables := strings.Fields(strings.TrimSpace(out))
		want := []string{"table", "ip", "dnft"}
		if sc.daemon.IPv6 {
			want = append(want, "table", "ip6", "dnft")
		}
		want = append(want, "table", "bridge", "dnft")
		require.Equal(t, want, tables)
		rs, err := topo.Host.Run(ctx, "nft", "list", "ruleset")
		require.NoError(t, err)
		require.NotRegexp(t, `\bxt (match|target)\b|# xt_`, rs)
		for _, c := range []string{"chain DOCKER-USER", "chain DOCKER-ISOLATION", "chain nat-DOCKER", "chain filter-FORWARD", "chain raw-PREROUTING"} {
			require.Contains(t, rs, c)
		}
	}
}
