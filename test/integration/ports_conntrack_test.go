package integration_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
)

// udpFlow is one UDP socket of the LAN with a fixed source port: every
// datagram it sends to the same destination belongs to one conntrack
// entry in the host.
type udpFlow struct {
	c  *net.UDPConn
	to netip.AddrPort
}

func newUDPFlow(t *testing.T, from *harness.NS, to netip.AddrPort) *udpFlow {
	t.Helper()
	var c *net.UDPConn
	require.NoError(t, from.Do(func() error {
		var err error
		// Unconnected, so that ICMP port unreachable errors are ignored.
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 40123})
		return err
	}))
	t.Cleanup(func() { c.Close() })
	return &udpFlow{c: c, to: to}
}

// exchange sends up to three datagrams, each followed by a short wait for
// an answer, and returns the first answer ("" if none came).
func (f *udpFlow) exchange(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 512)
	for range 3 {
		_, err := f.c.WriteToUDPAddrPort([]byte("ping\n"), f.to)
		require.NoError(t, err)
		require.NoError(t, f.c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
		n, _, err := f.c.ReadFromUDPAddrPort(buf)
		if err == nil {
			return strings.TrimSpace(string(buf[:n]))
		}
	}
	return ""
}

// conntrackCount counts the host's UDP conntrack entries matching args
// (conntrack -L filters).
func conntrackCount(ctx context.Context, t *testing.T, ns *harness.NS, args ...string) int {
	t.Helper()
	out, err := ns.Run(ctx, append([]string{"conntrack", "-L", "-p", "udp"}, args...)...)
	require.NoError(t, err, out)
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "udp ") {
			n++
		}
	}
	return n
}

func udpHits(ns *harness.NS, port uint16) int {
	n := 0
	for _, h := range ns.Hits() {
		if h.Proto == "udp" && h.Port == port {
			n++
		}
	}
	return n
}

// TestConntrackUDPFlow: a UDP "flow" from the LAN to a host port, started
// before the port is published (its datagrams went to the host and were
// refused there, but left a conntrack entry), reaches the container once
// the port is published, and stops reaching it once it is unpublished: dnft
// deletes the conntrack entries to the published UDP host port, as Docker
// does. On the iptables reference, which leaves conntrack alone, the
// stale entry keeps the flow away from the container. Publishing also
// deletes the entries whose original destination is the container.
func TestConntrackUDPFlow(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := scenario{
		name:       "conntrack",
		daemon:     dnft.DaemonConfig{UserlandProxy: true},
		nets:       []netSpec{bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16")},
		containers: []harness.ContainerSpec{ctr("c1", "br-a", "172.18.0.2")},
	}
	dn, ref := harness.NewTwin(t, sc.spec()) // c1 serves UDP port 80
	fw := programDNFT(ctx, t, sc, dn)
	p := programReference(ctx, t, sc, ref)
	hostPort := netip.AddrPortFrom(harness.LANHostAddr4, 8080)
	b := reference.Bind(portmap.UDP, "", 8080, "172.18.0.2", 80)

	flows := map[string]*udpFlow{}
	for _, tc := range []struct {
		name    string
		topo    *harness.Topology
		publish func() error
		want    string
	}{
		{"dnft", dn, func() error { return fw.Publish(ctx, "a", []portmap.Binding{b}) }, "192.0.2.2"},
		{"reference", ref, func() error { return p.Publish(ctx, "a", []portmap.Binding{b}) }, ""},
	} {
		flow := newUDPFlow(t, tc.topo.LAN, hostPort)
		flows[tc.name] = flow
		require.Empty(t, flow.exchange(t), "%s: nothing answers on the host before publishing", tc.name)
		require.Equal(t, 1, conntrackCount(ctx, t, tc.topo.Host, "--orig-port-dst", "8080"), "%s: the flow has a conntrack entry", tc.name)
		// The host talks to the container directly: an entry whose
		// original destination is the container.
		r := tc.topo.Host.UDP(ctx, netip.AddrPortFrom(ip("172.18.0.2"), 80))
		require.True(t, r.OK, "%s: host to container: %s", tc.name, r)
		require.Equal(t, 1, conntrackCount(ctx, t, tc.topo.Host, "--orig-dst", "172.18.0.2"), tc.name)

		require.NoError(t, tc.publish(), tc.name)
		require.Equal(t, tc.want, flow.exchange(t), "%s: the flow after publishing", tc.name)
		if tc.name == "dnft" {
			require.Equal(t, 0, conntrackCount(ctx, t, tc.topo.Host, "--orig-dst", "172.18.0.2"), "entries to the container are deleted")
		}
	}

	// Unpublishing: the flow, now DNATed to the container, stops reaching it.
	c1 := dn.Containers["c1"]
	require.NotZero(t, udpHits(c1, 80))
	require.NoError(t, fw.Unpublish(ctx, "a", []portmap.Binding{b}))
	hits := udpHits(c1, 80)
	require.Empty(t, flows["dnft"].exchange(t), "the flow stops reaching the container after unpublish")
	require.Equal(t, hits, udpHits(c1, 80), "no datagram reached the container after unpublish")
}
