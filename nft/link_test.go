package nft

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	require.NoError(t, err, string(out))
}

// TestLinks reads and changes bridges and their ports through rtnetlink,
// and receives their notifications.
func TestLinks(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	m, err := c.MonitorLinks()
	require.NoError(t, err)
	defer m.Close()

	ipIn(t, ns, "link", "add", "br0", "type", "bridge")
	ipIn(t, ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ipIn(t, ns, "link", "set", "v0", "master", "br0")
	ipIn(t, ns, "addr", "add", "10.9.0.1/24", "dev", "br0")

	lo, ok, err := c.LinkByName(ctx, "lo")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, lo.Loopback)
	br, ok, err := c.LinkByName(ctx, "br0")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "bridge", br.Kind)
	require.False(t, br.NFCallIPTables)
	_, ok, err = c.LinkByName(ctx, "nope0")
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, c.SetBridgeNFCall(ctx, br.Index, true, false))
	v0, ok, err := c.LinkByName(ctx, "v0")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, v0.BridgePort)
	require.Equal(t, br.Index, v0.Master)
	require.False(t, v0.Hairpin)
	require.NoError(t, c.SetHairpin(ctx, v0.Index, true))

	links, err := c.Links(ctx)
	require.NoError(t, err)
	byName := map[string]Link{}
	for _, l := range links {
		byName[l.Name] = l
	}
	require.True(t, byName["br0"].NFCallIPTables)
	require.False(t, byName["br0"].NFCallIP6Tables)
	require.True(t, byName["v0"].Hairpin)
	require.Equal(t, "veth", byName["v1"].Kind)
	require.False(t, byName["v1"].BridgePort)

	ports, err := c.LinkPorts(ctx, br.Index)
	require.NoError(t, err)
	require.Len(t, ports, 1)
	require.Equal(t, "v0", ports[0].Name)

	addrs, err := c.Addrs(ctx)
	require.NoError(t, err)
	require.Contains(t, addrs, IfAddr{Index: br.Index, Prefix: netip.MustParsePrefix("10.9.0.1/24")})

	ipIn(t, ns, "link", "del", "br0")
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for !seen["new br0"] || !seen["hairpin v0"] || !seen["del br0"] {
		require.True(t, time.Now().Before(deadline), "events seen: %v", seen)
		evs, err := m.Receive()
		require.NoError(t, err)
		for _, e := range evs {
			switch {
			case e.Deleted:
				seen["del "+e.Name] = true
			case e.Hairpin:
				seen["hairpin "+e.Name] = true
			default:
				seen["new "+e.Name] = true
			}
		}
	}
}
