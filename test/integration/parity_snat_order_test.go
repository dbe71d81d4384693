package integration_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// orderOp is one step of a source-NAT order scenario: a network to
// create, or (network nil) the ingress port 80 to the sandbox.
type orderOp struct {
	net *netSpec
}

// snatNet is a network that SNATs to the host's LAN address
// (com.docker.network.host_ipv4).
func snatNet(name, bridge, subnet, gw string) netSpec {
	n := bridgeNet(name, bridge, subnet, gw)
	n.cfg.HostIPv4 = harness.LANHostAddr4
	return n
}

// TestSNATOrder is item 6 of issue #12: nat POSTROUTING decides in
// creation order, newest first, as iptables' `-I POSTROUTING` does,
// between a network's SNAT, the ingress gateway's masquerade of local
// sources and the userland-proxy-off masquerade of local sources. The
// host connects from one network's gateway address into another bridge;
// the peer sees the address of whichever rule is newest. Both issue
// scenarios, and each the other way round.
func TestSNATOrder(t *testing.T) {
	harness.RequireRoot(t)
	gw := bridgeNet("docker_gwbridge", "docker_gwbridge", "172.18.0.0/16", "172.18.0.1/16")
	snat := snatNet("snat", "br-n", "172.19.0.0/16", "172.19.0.1/16")
	n1 := snatNet("n1", "br-1", "172.20.0.0/16", "172.20.0.1/16")
	n2 := bridgeNet("n2", "br-2", "172.21.0.0/16", "172.21.0.1/16")
	ingressPort := orderOp{}
	sbx := netip.AddrPortFrom(ip("172.18.0.2"), 80)
	c2 := netip.AddrPortFrom(ip("172.21.0.2"), 80)
	for _, tc := range []struct {
		name  string
		proxy bool
		ops   []orderOp
		from  netip.Addr // the host's source address
		to    netip.AddrPort
		want  string
	}{
		// Ingress published, then a network with host_ipv4: the
		// network's SNAT is newer, the sandbox sees the SNAT address.
		{"ingress-then-snat", true, []orderOp{{&gw}, ingressPort, {&snat}}, ip("172.19.0.1"), sbx, "ok from 192.0.2.1"},
		{"snat-then-ingress", true, []orderOp{{&gw}, {&snat}, ingressPort}, ip("172.19.0.1"), sbx, "ok from 172.18.0.1"},
		// Userland proxy off: n1 with host SNAT, n2 created later; n2's
		// masquerade of local sources is newer: the gateway address.
		{"snat-then-proxy-off", false, []orderOp{{&n1}, {&n2}}, ip("172.20.0.1"), c2, "ok from 172.21.0.1"},
		{"proxy-off-then-snat", false, []orderOp{{&n2}, {&n1}}, ip("172.20.0.1"), c2, "ok from 192.0.2.1"},
		// Both at once, with proxy off: the gateway bridge is a network
		// with its own masquerade of local sources too.
		{"proxy-off-ingress-then-snat", false, []orderOp{{&gw}, ingressPort, {&snat}}, ip("172.19.0.1"), sbx, "ok from 192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			sc := scenario{name: tc.name, daemon: dnft.DaemonConfig{UserlandProxy: tc.proxy}}
			for _, op := range tc.ops {
				if op.net != nil {
					sc.nets = append(sc.nets, *op.net)
				}
			}
			for _, c := range []harness.ContainerSpec{ctr("sbx", "docker_gwbridge", "172.18.0.2"), ctr("c2", "br-2", "172.21.0.2")} {
				for _, n := range sc.nets {
					if n.cfg.Bridge == c.Bridge {
						sc.containers = append(sc.containers, c)
					}
				}
			}
			dn, ref := harness.NewTwin(t, sc.spec())
			bridgeNFOff(t, dn)
			fw, err := dnft.Open(ctx, dn.Host.Path())
			require.NoError(t, err)
			defer fw.Close()
			require.NoError(t, fw.Init(ctx, sc.daemon))
			p, err := reference.New(ctx, ref.Host.Name, sc.daemon)
			require.NoError(t, err)
			for _, op := range tc.ops {
				if op.net != nil {
					require.NoError(t, fw.CreateNetwork(ctx, op.net.cfg))
					require.NoError(t, p.CreateNetwork(ctx, op.net.cfg))
					continue
				}
				in := dnft.IngressPort{GwBridge: "docker_gwbridge", Proto: portmap.TCP, Port: 80, Target: sbx.Addr()}
				require.NoError(t, fw.PublishIngress(ctx, in))
				require.NoError(t, p.PublishIngress(ctx, in.GwBridge, in.Proto, in.Port, in.Target))
			}
			got, want := dn.Host.TCPFrom(ctx, tc.from, tc.to), ref.Host.TCPFrom(ctx, tc.from, tc.to)
			if got.String() != want.String() {
				t.Logf("nft ruleset:\n%s\niptables commands:\n%v", ruleset(ctx, t, dn), p.Commands())
			}
			require.Equal(t, want.String(), got.String(), "dnft (left) and iptables (right) differ")
			require.Equal(t, tc.want, got.String())

			// The yield sets follow from the recorded state: no drift, and
			// a restore of the saved state programs the same ruleset.
			findings, err := fw.Check(ctx, nil)
			require.NoError(t, err)
			require.Empty(t, findings)
			requireRestoreSame(ctx, t, fw, dn)
			got = dn.Host.TCPFrom(ctx, tc.from, tc.to)
			require.Equal(t, tc.want, got.String(), "after restore")
		})
	}
}

// requireRestoreSame saves the state, resets and restores it, and
// requires the same ruleset (without counters and sequence numbers).
func requireRestoreSame(ctx context.Context, t *testing.T, fw *dnft.Firewall, topo *harness.Topology) {
	t.Helper()
	before := ruleset(ctx, t, topo)
	s, err := fw.Save(ctx)
	require.NoError(t, err)
	require.NoError(t, fw.Reset(ctx))
	require.NoError(t, fw.Restore(ctx, s))
	require.Equal(t, withoutSeqs(before), withoutSeqs(ruleset(ctx, t, topo)))
}
