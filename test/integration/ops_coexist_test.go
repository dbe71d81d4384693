package integration_test

import (
	"context"
	"testing"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// foreignTables lists the tables dnft must never touch, as nft prints
// them (with counters: no packets are sent while they are compared).
func foreignTables(ctx context.Context, t *testing.T, h *harness.NS) string {
	t.Helper()
	return mustNft(ctx, t, h, "list", "table", "ip", "filter") + mustNft(ctx, t, h, "list", "table", "inet", "fw")
}

// TestCoexistence: with an iptables-nft filter table and a firewalld-like
// inet table whose forward chain drops by policy, dnft's operations
// (init, network create and rm, publish, repair, restore, apply, reset)
// never change them; and packets show what nftables does with two
// tables on one hook: dnft's accept does not override the other table's
// drop, so forwarded traffic that dnft accepts is still dropped until the
// other table accepts it too.
func TestCoexistence(t *testing.T) {
	ctx := testContext(t)
	topo, _ := opsSetup(ctx, t) // init, network, port 8080, DOCKER-USER rule
	h := topo.Host
	requireFlows(ctx, t, topo)
	mustCLI(ctx, t, h, "reset")

	out, err := h.Run(ctx, "iptables-nft", "-A", "FORWARD", "-s", "10.9.9.9", "-j", "DROP")
	require.NoError(t, err, out)
	mustNft(ctx, t, h, "add table inet fw")
	mustNft(ctx, t, h, "add chain inet fw filter_FWD { type filter hook forward priority 10; policy drop; }")
	want := foreignTables(ctx, t, h)
	require.Contains(t, want, "ip saddr 10.9.9.9")
	require.Contains(t, want, "policy drop")

	untouched := func(op string) {
		t.Helper()
		require.Equal(t, want, foreignTables(ctx, t, h), "%s changed a foreign table", op)
	}
	steps := []struct {
		op   string
		args []string
	}{
		{"init", []string{"init"}},
		{"network create", []string{"network", "create", "bridge", "--bridge", "docker0", "--subnet", "172.17.0.0/16"}},
		{"network create", []string{"network", "create", "other", "--bridge", "br-o", "--subnet", "172.29.0.0/16"}},
		{"publish", []string{"port", "publish", "bridge", "172.17.0.2", "-p", "8080:80"}},
		{"ingress publish", []string{"ingress", "publish", "-p", "30000/tcp", "--target", "172.17.0.9"}},
		{"network rm", []string{"network", "rm", "other"}},
	}
	for _, s := range steps {
		mustCLI(ctx, t, h, s.args...)
		untouched(s.op)
	}
	state := mustCLI(ctx, t, h, "save")
	deleteRule(ctx, t, h, "filter-FORWARD", `comment "DOCKER-USER"`)
	mustCLI(ctx, t, h, "repair")
	untouched("repair")
	mustCLI(ctx, t, h, "reset")
	untouched("reset")
	r := dnftCLI(ctx, t, h, state, "restore")
	require.Zero(t, r.code, r.stderr)
	untouched("restore")
	r = dnftCLI(ctx, t, h, state, "apply", "-f", "-")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "nothing to change\n", r.stdout)
	untouched("apply")
	tables := mustNft(ctx, t, h, "list", "tables")
	require.Equal(t, "table ip filter\ntable inet fw\ntable ip dnft\ntable bridge dnft\n", tables)

	// Packets: dnft accepts the forwarded flows, the foreign chain's
	// policy drops them anyway.
	lan := topo.LAN.TCP(ctx, addrPort(harness.LANHostAddr4, 8080))
	require.True(t, lan.Blocked(), "LAN -> published port must be dropped by inet fw: %s", lan)
	inet := topo.Containers["c1"].TCP(ctx, addrPort(harness.InternetAddr4, harness.EchoPort))
	require.True(t, inet.Blocked(), "container -> internet must be dropped by inet fw: %s", inet)
	require.True(t, h.TCP(answered(ctx), addrPort(ip("172.17.0.2"), 80)).OK, "host -> container is not forwarded: not dropped")
	fwd := mustNft(ctx, t, h, "list", "chain", "ip", "dnft", "filter-FORWARD")
	require.Regexp(t, `jump DOCKER-USER comment "DOCKER-USER"`, fwd)

	// Once the other table accepts forwarded traffic too, it flows.
	mustNft(ctx, t, h, "add rule inet fw filter_FWD accept")
	requireFlows(ctx, t, topo)
}
