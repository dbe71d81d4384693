package dnft

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// TestIngressGateway: several ports publish in one batch, and
// route_localnet, which dnft turns on with a gateway's first IPv4 port,
// is turned off with its last.
func TestIngressGateway(t *testing.T) {
	ns := harness.Scratch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, br := range []string{"br-gw", "br-n1"} {
		out, err := ns.Run(ctx, "ip", "link", "add", br, "type", "bridge")
		require.NoError(t, err, out)
	}
	fw, err := Open(ctx, ns.Path())
	require.NoError(t, err)
	defer fw.Close()
	require.NoError(t, fw.Init(ctx, DaemonConfig{UserlandProxy: true, IPForward: true}))
	require.NoError(t, fw.CreateNetwork(ctx, NetworkConfig{Name: "n1", Bridge: "br-n1", Subnet4: netip.MustParsePrefix("10.1.0.0/24"), ICC: true, Masquerade: true}))
	target := netip.MustParseAddr("172.30.0.2")
	localnet := func(br string) string {
		v, ok, err := fw.conn.Sysctl("net/ipv4/conf/" + br + "/route_localnet")
		require.NoError(t, err)
		require.True(t, ok)
		return v
	}

	require.Equal(t, "0", localnet("br-gw"))
	require.NoError(t, fw.PublishIngress(ctx, IngressPort{GwBridge: "br-gw", Proto: portmap.TCP, Port: 80, Target: target},
		IngressPort{GwBridge: "br-gw", Proto: portmap.UDP, Port: 53, Target: target}))
	ps, err := fw.Ingress(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	require.Equal(t, "1", localnet("br-gw"))

	require.NoError(t, fw.UnpublishIngress(ctx, IngressPort{Proto: portmap.TCP, Port: 80}))
	require.Equal(t, "1", localnet("br-gw"), "a port is left on the gateway")
	require.NoError(t, fw.UnpublishIngress(ctx, IngressPort{Proto: portmap.UDP, Port: 53}))
	require.Equal(t, "0", localnet("br-gw"), "the gateway's last port turns route_localnet off")
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)
}
