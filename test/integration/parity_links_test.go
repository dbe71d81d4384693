package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// deleteBridge removes a bridge from the host; its ports (the containers'
// host-side veths) stay, detached.
func deleteBridge(ctx context.Context, t *testing.T, topo *harness.Topology, name string) {
	t.Helper()
	out, err := topo.Host.Run(ctx, "ip", "link", "del", name)
	require.NoError(t, err, out)
}

// createBridge creates a bridge of the topology's spec as a runtime would,
// and attaches its containers' veths, without hairpin mode: setting that
// (with the userland proxy off) is what dnft's link following is for.
func createBridge(ctx context.Context, t *testing.T, topo *harness.Topology, name string) {
	t.Helper()
	var script strings.Builder
	for _, b := range topo.Spec.Bridges {
		if b.Name != name {
			continue
		}
		fmt.Fprintf(&script, "link add %s type bridge\naddr add %s dev %s\nlink set %s up\n", name, b.Gateway4, name, name)
	}
	for _, c := range topo.Spec.Containers {
		if c.Bridge == name {
			fmt.Fprintf(&script, "link set %s master %s\n", harness.VethName(c.Name), name)
		}
	}
	out, err := topo.Host.RunStdin(ctx, script.String(), "ip", "-batch", "-")
	require.NoError(t, err, out)
}

// lateProbes are the probes that need what dnft keeps on a bridge with
// the userland proxy off: the host to a port published on 127.0.0.1
// (route_localnet), a container to its own published port (hairpin
// mode), a container to another's published port on the same bridge
// (bridge netfilter for the reply), plus plain traffic.
func lateProbes(topo *harness.Topology) []harness.Probe {
	c1, c2 := topo.Containers["c1"], topo.Containers["c2"]
	ap := netip.AddrPortFrom
	return []harness.Probe{
		{Name: "host->lo:8082", From: topo.Host, Kind: harness.KindTCP, To: ap(ip("127.0.0.1"), 8082)},
		{Name: "host->lan0:8080", From: topo.Host, Kind: harness.KindTCP, To: ap(harness.LANHostAddr4, 8080)},
		{Name: "lan->lan0:8080", From: topo.LAN, Kind: harness.KindTCP, To: ap(harness.LANHostAddr4, 8080)},
		{Name: "c1->lan0:8080", From: c1, Kind: harness.KindTCP, To: ap(harness.LANHostAddr4, 8080)},
		{Name: "c1->lan0:8080/udp", From: c1, Kind: harness.KindUDP, To: ap(harness.LANHostAddr4, 8080)},
		{Name: "c2->lan0:8080", From: c2, Kind: harness.KindTCP, To: ap(harness.LANHostAddr4, 8080)},
		{Name: "c2->lan0:8080/udp", From: c2, Kind: harness.KindUDP, To: ap(harness.LANHostAddr4, 8080)},
		{Name: "c2->c1:80", From: c2, Kind: harness.KindTCP, To: ap(ip("172.18.0.2"), 80)},
		{Name: "c1->inet", From: c1, Kind: harness.KindTCP, To: ap(harness.InternetAddr4, harness.EchoPort)},
	}
}

// lateFacts are what lateProbes must show with the userland proxy off.
var lateFacts = map[string]string{
	"host->lo:8082":     "ok from 172.18.0.1", // route_localnet, masquerade from the host
	"c1->lan0:8080":     "ok from 172.18.0.1", // hairpin mode, hairpin masquerade
	"c2->lan0:8080":     "ok from 172.18.0.3", // bridge netfilter undoes the DNAT of the reply
	"c2->lan0:8080/udp": "ok from 172.18.0.3",
	"lan->lan0:8080":    "ok from 192.0.2.2",
	"c2->c1:80":         "ok from 172.18.0.3",
	"c1->inet":          "ok from 203.0.113.1",
}

// TestBridgeAppearsLater is items 2 and 5 of issue #12 (and the hairpin
// part of item 3): with the userland proxy off, a network whose bridge a
// runtime creates only after `network create` — and deletes and creates
// again later — works as with dockerd (which creates the bridge itself):
// a port published on 127.0.0.1 answers the host, containers reach their
// own and each other's published ports. dnft applies route_localnet, the
// bridge's netfilter options and hairpin mode on its ports when the links
// appear (FollowLinks); without link following, check reports the
// missing settings as drift and repair applies them. bridge-nf-call-* are
// off in dnft's namespace throughout.
func TestBridgeAppearsLater(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenario{
		name:   "bridge-appears-later",
		daemon: dnft.DaemonConfig{UserlandProxy: false},
		nets:   []netSpec{bridgeNet("late", "br-late", "172.18.0.0/16", "172.18.0.1/16")},
		containers: []harness.ContainerSpec{
			ctr("c1", "br-late", "172.18.0.2"), ctr("c2", "br-late", "172.18.0.3"),
		},
	}
	bs := []portmap.Binding{
		reference.Bind(portmap.TCP, "127.0.0.1", 8082, "172.18.0.2", 80),
		reference.Bind(portmap.TCP, "", 8080, "172.18.0.2", 80),
		reference.Bind(portmap.UDP, "", 8080, "172.18.0.2", 80),
	}
	dn, ref := harness.NewTwin(t, sc.spec())
	bridgeNFOff(t, dn)
	for _, topo := range []*harness.Topology{dn, ref} {
		prepare(ctx, t, sc, topo)
	}
	p := programReference(ctx, t, sc, ref) // dockerd: the bridge exists
	require.NoError(t, p.Publish(ctx, "late", bs))

	deleteBridge(ctx, t, dn, "br-late")
	fw, err := dnft.Open(ctx, dn.Host.Path())
	require.NoError(t, err)
	defer fw.Close()
	fctx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		followed <- fw.FollowLinks(fctx, dnft.FollowOptions{Logf: t.Logf, Ready: func() { close(ready) }})
	}()
	<-ready
	require.NoError(t, fw.Init(ctx, sc.daemon))
	require.NoError(t, fw.CreateNetwork(ctx, sc.nets[0].cfg), "the bridge may be missing")
	require.NoError(t, fw.Publish(ctx, "late", bs))
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings, "a missing bridge is no drift")

	compare := func(stage string) {
		t.Helper()
		// The new links need a moment before they pass packets (carrier,
		// neighbour caches): wait for the first fact, then compare all.
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := dn.Host.TCP(ctx, netip.AddrPortFrom(ip("127.0.0.1"), 8082))
			c := dn.Containers["c2"].TCP(ctx, netip.AddrPortFrom(harness.LANHostAddr4, 8080))
			if r.OK && c.OK || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		compareTwins(ctx, t, stage, dn, ref, p, lateProbes, lateFacts)
	}

	createBridge(ctx, t, dn, "br-late")
	compare("bridge created after the network")
	requireBridgeSettings(ctx, t, dn, fw)

	deleteBridge(ctx, t, dn, "br-late")
	createBridge(ctx, t, dn, "br-late")
	compare("bridge deleted and created again")

	stopFollowing()
	require.NoError(t, <-followed)
	deleteBridge(ctx, t, dn, "br-late")
	createBridge(ctx, t, dn, "br-late")
	findings, err = fw.Check(ctx, nil)
	require.NoError(t, err)
	var lines []string
	for _, f := range findings {
		lines = append(lines, f.String())
	}
	require.Contains(t, lines, "ip link br-late: route_localnet is 0, want 1")
	require.Contains(t, lines, "ip link br-late: nf_call_iptables is off, want on (bridge netfilter for hairpin NAT)")
	require.Contains(t, lines, "ip link "+harness.VethName("c1")+" (port of br-late): hairpin mode is off, want on")
	require.Len(t, lines, 4, "%v", lines) // and c2's port
	before := ruleset(ctx, t, dn)
	repaired, err := fw.Repair(ctx, nil)
	require.NoError(t, err)
	require.Len(t, repaired, 4)
	require.Equal(t, before, ruleset(ctx, t, dn), "repairing links leaves the tables alone")
	findings, err = fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)
	compare("bridge created again and repaired")
}

// requireBridgeSettings checks the settings dnft applied to the bridge
// and its ports, through check (no drift) and the kernel.
func requireBridgeSettings(ctx context.Context, t *testing.T, dn *harness.Topology, fw *dnft.Firewall) {
	t.Helper()
	v, err := dn.Host.Sysctl("net/ipv4/conf/br-late/route_localnet")
	require.NoError(t, err)
	require.Equal(t, "1", v)
	v, err = dn.Host.Sysctl("net/bridge/bridge-nf-call-iptables")
	require.NoError(t, err)
	require.Equal(t, "0", v, "dnft uses the bridge's own option, not the namespace's")
	out, err := dn.Host.Run(ctx, "ip", "-d", "link", "show", harness.VethName("c1"))
	require.NoError(t, err)
	require.Contains(t, out, "hairpin on")
	out, err = dn.Host.Run(ctx, "ip", "-d", "link", "show", "br-late")
	require.NoError(t, err)
	require.Contains(t, out, "nf_call_iptables 1")
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, findings)
}
