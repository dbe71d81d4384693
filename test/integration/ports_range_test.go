package integration_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
)

// TestPortsRange: a 20-port range published in one call
// (-p 9000-9019:9000-9019) reaches each container port from the LAN and
// the Internet, on dnft as on the iptables reference (which gets the 20
// bindings one by one), and unpublishing the range in one call closes
// every port and restores dnft's ruleset.
func TestPortsRange(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	const first, n = 9000, 20
	sc := scenario{
		name:   "ports-range",
		daemon: dnft.DaemonConfig{UserlandProxy: true},
		nets:   []netSpec{bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16")},
	}
	c1 := ctr("c1", "br-a", "172.18.0.2")
	for p := uint16(first); p < first+n; p++ {
		c1.TCPPorts = append(c1.TCPPorts, p)
	}
	spec := harness.Spec{
		Bridges:    []harness.BridgeSpec{{Name: "br-a", Gateway4: netip.MustParsePrefix("172.18.0.1/16")}},
		Containers: []harness.ContainerSpec{c1},
	}
	dn, ref := harness.NewTwin(t, spec)
	bridgeNFOff(t, dn) // dnft must not depend on it (issue #12)
	for _, topo := range []*harness.Topology{dn, ref} {
		prepare(ctx, t, sc, topo)
	}
	fw := programDNFT(ctx, t, sc, dn)
	p := programReference(ctx, t, sc, ref)
	before := ruleset(ctx, t, dn)

	rng, err := dnft.ParsePortSpec("9000-9019:9000-9019")
	require.NoError(t, err)
	got, err := fw.PublishSpecs(ctx, "a", c1.Addr4, []dnft.PortSpec{rng})
	require.NoError(t, err)
	require.Len(t, got, n)
	var bs []portmap.Binding
	for i := range n {
		port := uint16(first + i)
		b := reference.Bind(portmap.TCP, "", port, "172.18.0.2", port)
		bs = append(bs, b)
		require.Equal(t, fmt.Sprintf("0.0.0.0:%d->172.18.0.2:%d/tcp", port, port), got[i].String())
	}
	require.NoError(t, p.Publish(ctx, "a", bs))

	probes := func(topo *harness.Topology) []harness.Probe {
		var ps []harness.Probe
		for port := uint16(first - 1); port <= first+n; port++ {
			ps = append(ps,
				harness.Probe{Name: fmt.Sprintf("lan->lan0:%d", port), From: topo.LAN, Kind: harness.KindTCP, To: netip.AddrPortFrom(harness.LANHostAddr4, port)},
				harness.Probe{Name: fmt.Sprintf("inet->wan0:%d", port), From: topo.Internet, Kind: harness.KindTCP, To: netip.AddrPortFrom(harness.WANHostAddr4, port)})
		}
		return ps
	}
	check := func(stage string, published bool) {
		t.Helper()
		want := map[string]string{
			fmt.Sprintf("lan->lan0:%d", first-1): "blocked",
			fmt.Sprintf("lan->lan0:%d", first+n): "blocked",
		}
		for port := first; port < first+n; port++ {
			want[fmt.Sprintf("lan->lan0:%d", port)] = "blocked"
			want[fmt.Sprintf("inet->wan0:%d", port)] = "blocked"
			if published {
				want[fmt.Sprintf("lan->lan0:%d", port)] = "ok from 192.0.2.2"
				want[fmt.Sprintf("inet->wan0:%d", port)] = "ok from 203.0.113.2"
			}
		}
		compareTwins(ctx, t, stage, dn, ref, p, probes, want)
	}
	check("published", true)

	// The DNAT counters of the range's elements are per port.
	ports, err := fw.Ports(ctx)
	require.NoError(t, err)
	require.Len(t, ports, n)
	for _, pb := range ports {
		require.GreaterOrEqual(t, pb.Packets, uint64(2), "%s: one connection from the LAN, one from the Internet", pb.Binding)
	}

	// Publishing and unpublishing another port keeps the counters of the
	// range's elements: only elements are added and removed.
	counters := func() string {
		t.Helper()
		out, err := dn.Host.Run(ctx, "sh", "-c", "nft list map ip dnft dnat-any; nft list set ip dnft published")
		require.NoError(t, err, out)
		return out
	}
	withCounters := counters()
	other, err := dnft.ParsePortSpec("9100:9100")
	require.NoError(t, err)
	_, err = fw.PublishSpecs(ctx, "a", c1.Addr4, []dnft.PortSpec{other})
	require.NoError(t, err)
	_, err = fw.UnpublishSpecs(ctx, "a", c1.Addr4, []dnft.PortSpec{other})
	require.NoError(t, err)
	require.Equal(t, withCounters, counters())

	gone, err := fw.UnpublishSpecs(ctx, "a", c1.Addr4, []dnft.PortSpec{rng})
	require.NoError(t, err)
	require.Equal(t, got, gone)
	require.NoError(t, p.Unpublish(ctx, "a", bs))
	require.Equal(t, before, ruleset(ctx, t, dn), "unpublishing the range removes exactly what publishing it added")
	check("unpublished", false)
}
