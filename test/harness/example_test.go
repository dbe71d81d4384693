package harness_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// TestExample shows the intended use: build a bridge with two containers,
// start an echo server, probe, and assert on the results. A firewall test
// would program tp.Host between New and the probes.
func TestExample(t *testing.T) {
	harness.RequireRoot(t)
	t.Parallel()
	tp := harness.New(t, harness.Spec{
		Bridges: []harness.BridgeSpec{{
			Name:     "br-example",
			Gateway4: netip.MustParsePrefix("172.18.0.1/16"),
		}},
		Containers: []harness.ContainerSpec{
			{Name: "web", Bridge: "br-example", Addr4: netip.MustParseAddr("172.18.0.2"), TCPPorts: []uint16{80}},
			{Name: "client", Bridge: "br-example", Addr4: netip.MustParseAddr("172.18.0.3")},
		},
	})
	web, client := tp.Containers["web"], tp.Containers["client"]
	port := tp.Host.ServeTCP(t, 8080) // a server on the Docker host itself
	// Probes wait up to 10 s for answers that must come (a loaded machine
	// can be slow); a probe expected to fail by a timeout would take as
	// long, so those use the default limits.
	ctx := harness.WithProbeLimit(context.Background(), 10*time.Second)

	// Container to container on the same bridge: the server sees the
	// client's own address.
	if r := client.TCP(ctx, netip.AddrPortFrom(web.Addr4, 80)); !r.OK || r.Seen != client.Addr4 {
		t.Errorf("client -> web: %v, want ok from %v", r, client.Addr4)
	}
	// Nothing listens on port 81.
	if r := client.TCP(ctx, netip.AddrPortFrom(web.Addr4, 81)); r.Err != harness.Refused {
		t.Errorf("client -> web:81: %v, want %s", r, harness.Refused)
	}
	// A LAN neighbour reaches the host's own address.
	if r := tp.LAN.TCP(ctx, netip.AddrPortFrom(harness.LANHostAddr4, port)); !r.OK || r.Seen != harness.LANAddr4 {
		t.Errorf("LAN -> host: %v, want ok from %v", r, harness.LANAddr4)
	}

	// The same checks as one concurrent matrix.
	res := harness.RunMatrix(ctx, []harness.Probe{
		{Name: "client->web", From: client, Kind: harness.KindTCP, To: netip.AddrPortFrom(web.Addr4, 80)},
		{Name: "client->web:ping", From: client, Kind: harness.KindICMP, To: netip.AddrPortFrom(web.Addr4, 0)},
		{Name: "lan->host", From: tp.LAN, Kind: harness.KindTCP, To: netip.AddrPortFrom(harness.LANHostAddr4, port)},
	})
	for name, r := range res {
		if !r.OK {
			t.Errorf("%s: %v", name, r)
		}
	}
}
