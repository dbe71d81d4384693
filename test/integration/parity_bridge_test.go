package integration_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
)

// TestNotABridge is item 4 of issue #12: lo and an existing interface
// that is not a bridge (here the host's LAN uplink) are refused as a
// network's bridge, with a FieldError (exit status 2) and no kernel
// change; a bridge that does not exist yet is accepted; a subnet that
// overlaps an address of another interface is accepted with a warning.
// With packets: after the refused networks, the host's LAN and containers
// work exactly as with the iptables reference, which never took them
// (dockerd refuses an existing non-bridge device as a network's bridge).
func TestNotABridge(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenario{
		name:       "not-a-bridge",
		daemon:     dnft.DaemonConfig{UserlandProxy: true},
		nets:       []netSpec{bridgeNet("bridge", "docker0", "172.17.0.0/16", "172.17.0.1/16")},
		containers: []harness.ContainerSpec{ctr("c1", "docker0", "172.17.0.2")},
	}
	dn, ref := harness.NewTwin(t, sc.spec())
	bridgeNFOff(t, dn)
	for _, topo := range []*harness.Topology{dn, ref} {
		prepare(ctx, t, sc, topo)
	}
	fw := programDNFT(ctx, t, sc, dn)
	p := programReference(ctx, t, sc, ref)
	before := ruleset(ctx, t, dn)

	for _, bad := range []string{harness.HostLANIf, "lo", harness.VethName("c1")} {
		cfg := dnft.NetworkConfig{Name: "bad", Bridge: bad, Subnet4: pfx("10.99.0.0/24"), ICC: true, Masquerade: true}
		err := fw.CreateNetwork(ctx, cfg)
		var fe *dnft.FieldError
		require.True(t, errors.As(err, &fe), "bridge %s: %v", bad, err)
		require.Equal(t, "bridge", fe.Field)
		require.Equal(t, bad, fe.Value)
		r := dnftCLI(ctx, t, dn.Host, "", "network", "create", "bad", "--bridge", bad, "--subnet", "10.99.0.0/24")
		require.Equal(t, 2, r.code, r.stderr)
		require.Contains(t, r.stderr, "not a bridge")
	}
	require.Equal(t, before, ruleset(ctx, t, dn), "refused networks change nothing")

	// A missing bridge is fine; a subnet on the LAN's is worth a warning.
	r := dnftCLI(ctx, t, dn.Host, "", "network", "create", "lanlike", "--bridge", "br-later", "--subnet", "192.0.2.0/25")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stderr, "dnft: warning: network lanlike: subnet 192.0.2.0/25 overlaps 192.0.2.1/24 on interface lan0")
	r = dnftCLI(ctx, t, dn.Host, "", "network", "create", "quiet", "--bridge", "br-quiet", "--subnet", "10.98.0.0/24")
	require.Zero(t, r.code, r.stderr)
	require.Empty(t, r.stderr)
	mustCLI(ctx, t, dn.Host, "network", "rm", "lanlike")
	mustCLI(ctx, t, dn.Host, "network", "rm", "quiet")

	compareTwins(ctx, t, "after refused networks", dn, ref, p, func(tp *harness.Topology) []harness.Probe { return matrix(sc, tp) },
		map[string]string{"c1->lan/4:tcp": "ok from 192.0.2.1", "c1->inet/4:tcp": "ok from 203.0.113.1"})
}
