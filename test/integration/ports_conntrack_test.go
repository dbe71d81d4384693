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

func newUDPFlow(t *testing.T, from *harness.NS, srcPort uint16, to netip.AddrPort) *udpFlow {
	t.Helper()
	var c *net.UDPConn
	require.NoError(t, from.Do(func() error {
		var err error
		// Unconnected, so that ICMP port unreachable errors are ignored.
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: int(srcPort)})
		return err
	}))
	t.Cleanup(func() { c.Close() })
	return &udpFlow{c: c, to: to}
}

// send sends one datagram.
func (f *udpFlow) send(t *testing.T) {
	t.Helper()
	_, err := f.c.WriteToUDPAddrPort([]byte("ping\n"), f.to)
	require.NoError(t, err)
}

// answer sends a datagram every 200 ms until one is answered and returns
// the answer, or "" after answerWait. Use it for flows that must be
// answered; that a flow is not answered is shown by a control flow that
// is (see hitsFrom).
func (f *udpFlow) answer(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 512)
	for end := time.Now().Add(answerWait); time.Now().Before(end); {
		f.send(t)
		require.NoError(t, f.c.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
		n, _, err := f.c.ReadFromUDPAddrPort(buf)
		if err == nil {
			return strings.TrimSpace(string(buf[:n]))
		}
	}
	return ""
}

// hitsFrom counts the datagrams that the namespace's UDP echo servers got
// from src (address and port).
func hitsFrom(ns *harness.NS, src netip.AddrPort) int {
	n := 0
	for _, h := range ns.Hits() {
		if h.Proto == "udp" && h.From == src {
			n++
		}
	}
	return n
}

// conntrackCount counts the host's UDP conntrack entries matching args
// (conntrack -L filters).
func conntrackCount(ctx context.Context, t *testing.T, ns *harness.NS, args ...string) int {
	t.Helper()
	n, err := conntrackEntries(ctx, ns, args...)
	require.NoError(t, err)
	return n
}

// conntrackEntries is conntrackCount without a testing.T, for conditions
// that testify polls on another goroutine.
func conntrackEntries(ctx context.Context, ns *harness.NS, args ...string) (int, error) {
	out, err := ns.Run(ctx, append([]string{"conntrack", "-L", "-p", "udp"}, args...)...)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "udp ") {
			n++
		}
	}
	return n, nil
}

// TestConntrackUDPFlow: a UDP "flow" from the LAN to a host port, started
// before the port is published (its datagrams went to the host and were
// refused there, but left a conntrack entry), reaches the container once
// the port is published, and stops reaching it once it is unpublished: dnft
// deletes the conntrack entries to the published UDP host port, as Docker
// does. On the iptables reference, which leaves conntrack alone, the
// stale entry keeps the flow away from the container while a new flow
// gets through. Publishing also deletes the entries whose original
// destination is the container.
//
// That a flow does not reach the container is shown by a control flow
// sent after it through the same path that does: once the control's
// answer is back, the container's server has no datagram of the flow.
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
	bridgeNFOff(t, dn)                       // dnft must not depend on it (issue #12)
	fw := programDNFT(ctx, t, sc, dn)
	p := programReference(ctx, t, sc, ref)
	hostPort := netip.AddrPortFrom(harness.LANHostAddr4, 8080)
	ctlPort := netip.AddrPortFrom(harness.LANHostAddr4, 8081)
	b := reference.Bind(portmap.UDP, "", 8080, "172.18.0.2", 80)
	ctl := reference.Bind(portmap.UDP, "", 8081, "172.18.0.2", 80) // for control flows
	const oldPort, newPort, ctlSrc = 40123, 40124, 40125
	oldSrc := netip.AddrPortFrom(harness.LANAddr4, oldPort)

	flows := map[string]*udpFlow{}
	for _, tc := range []struct {
		name    string
		topo    *harness.Topology
		publish func() error
	}{
		{"dnft", dn, func() error { return fw.Publish(ctx, "a", []portmap.Binding{b, ctl}) }},
		{"reference", ref, func() error { return p.Publish(ctx, "a", []portmap.Binding{b, ctl}) }},
	} {
		flow := newUDPFlow(t, tc.topo.LAN, oldPort, hostPort)
		flows[tc.name] = flow
		flow.send(t) // refused by the host: nothing is published yet
		require.Eventually(t, func() bool {
			n, err := conntrackEntries(ctx, tc.topo.Host, "--orig-port-dst", "8080")
			return err == nil && n == 1
		},
			answerWait, 10*time.Millisecond, "%s: the flow has a conntrack entry", tc.name)
		// The host talks to the container directly: an entry whose
		// original destination is the container.
		r := tc.topo.Host.UDP(answered(ctx), netip.AddrPortFrom(ip("172.18.0.2"), 80))
		require.True(t, r.OK, "%s: host to container: %s", tc.name, r)
		require.Equal(t, 1, conntrackCount(ctx, t, tc.topo.Host, "--orig-dst", "172.18.0.2"), tc.name)

		require.NoError(t, tc.publish(), tc.name)
		c1 := tc.topo.Containers["c1"]
		switch tc.name {
		case "dnft":
			require.Equal(t, "192.0.2.2", flow.answer(t), "dnft: the flow reaches the container after publishing")
			require.Equal(t, 0, conntrackCount(ctx, t, tc.topo.Host, "--orig-dst", "172.18.0.2"), "entries to the container are deleted")
		case "reference":
			flow.send(t)
			fresh := newUDPFlow(t, tc.topo.LAN, newPort, hostPort)
			require.Equal(t, "192.0.2.2", fresh.answer(t), "reference: a new flow reaches the container (control)")
			require.Zero(t, hitsFrom(c1, oldSrc), "reference: the stale entry keeps the old flow away")
		}
	}

	// Unpublishing: the flow, now DNATed to the container, stops reaching
	// it; the control flow to the other published port still does.
	c1 := dn.Containers["c1"]
	control := newUDPFlow(t, dn.LAN, ctlSrc, ctlPort)
	require.Equal(t, "192.0.2.2", control.answer(t), "control flow before unpublish")
	hits := hitsFrom(c1, oldSrc) // every datagram the flow sent so far has arrived
	require.NotZero(t, hits)
	require.NoError(t, fw.Unpublish(ctx, "a", []portmap.Binding{b}))
	flows["dnft"].send(t)
	require.Equal(t, "192.0.2.2", control.answer(t), "control flow after unpublish")
	require.Equal(t, hits, hitsFrom(c1, oldSrc), "no datagram of the flow reached the container after unpublish")
}
