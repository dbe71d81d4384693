package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// twinStep is one probe of the twin traffic and whether it must answer.
type twinStep struct {
	name string
	run  func(ctx context.Context, topo *harness.Topology) harness.Result
	ok   bool
}

func udpTo(from func(*harness.Topology) *harness.NS, to netip.AddrPort) func(context.Context, *harness.Topology) harness.Result {
	return func(ctx context.Context, topo *harness.Topology) harness.Result { return from(topo).UDP(ctx, to) }
}

func tcpTo(from func(*harness.Topology) *harness.NS, to netip.AddrPort) func(context.Context, *harness.Topology) harness.Result {
	return func(ctx context.Context, topo *harness.Topology) harness.Result { return from(topo).TCP(ctx, to) }
}

func lanNS(topo *harness.Topology) *harness.NS  { return topo.LAN }
func hostNS(topo *harness.Topology) *harness.NS { return topo.Host }
func ctrNS(name string) func(*harness.Topology) *harness.NS {
	return func(topo *harness.Topology) *harness.NS { return topo.Containers[name] }
}

// twinUDP is traffic whose packet count does not depend on timing (one
// datagram and at most one answer per probe, ICMP echoes): published
// ports from the LAN, a container to the Internet and to another network
// (isolated), the LAN straight to a container (direct access), the LAN to
// the Internet through the host (not Docker's: the FORWARD policy), the
// host to a container and to a published port (nat OUTPUT), DOCKER-USER's
// own drop.
var twinUDP = []twinStep{
	{"lan->8081/udp", udpTo(lanNS, netip.AddrPortFrom(harness.LANHostAddr4, 8081)), true},
	{"lan->8081/udp again", udpTo(lanNS, netip.AddrPortFrom(harness.LANHostAddr4, 8081)), true},
	{"lan->8083/udp", udpTo(lanNS, netip.AddrPortFrom(harness.LANHostAddr4, 8083)), true},
	{"c1->inet/udp", udpTo(ctrNS("c1"), netip.AddrPortFrom(harness.InternetAddr4, harness.EchoPort)), true},
	{"c1->inet/icmp", func(ctx context.Context, topo *harness.Topology) harness.Result {
		return topo.Containers["c1"].Ping(ctx, harness.InternetAddr4)
	}, true},
	{"c2->c1/udp (isolated)", udpTo(ctrNS("c2"), netip.AddrPortFrom(ip("172.18.0.2"), 80)), false},
	{"lan->c1:80/udp direct (dropped)", udpTo(lanNS, netip.AddrPortFrom(ip("172.18.0.2"), 80)), false},
	{"lan->inet/udp (policy)", udpTo(lanNS, netip.AddrPortFrom(harness.InternetAddr4, harness.EchoPort)), false},
	{"host->c1/udp", udpTo(hostNS, netip.AddrPortFrom(ip("172.18.0.2"), 80)), true},
	{"host->8081/udp (nat OUTPUT)", udpTo(hostNS, netip.AddrPortFrom(harness.LANHostAddr4, 8081)), true},
	{"c2->inet/udp (DOCKER-USER drop)", udpTo(ctrNS("c2"), netip.AddrPortFrom(harness.InternetAddr4, harness.EchoPort)), false},
	{"c2->inet/icmp", func(ctx context.Context, topo *harness.Topology) harness.Result {
		return topo.Containers["c2"].Ping(ctx, harness.InternetAddr4)
	}, true},
}

// twinTCP is traffic whose packet counts depend on timing (delayed
// acknowledgements, who closes first): only which counters move is
// compared.
var twinTCP = []twinStep{
	{"lan->8080/tcp", tcpTo(lanNS, netip.AddrPortFrom(harness.LANHostAddr4, 8080)), true},
	{"c1->inet/tcp", tcpTo(ctrNS("c1"), netip.AddrPortFrom(harness.InternetAddr4, harness.EchoPort)), true},
	{"host->c1/tcp", tcpTo(hostNS, netip.AddrPortFrom(ip("172.18.0.2"), 80)), true},
	{"c2->c1/tcp (isolated)", tcpTo(ctrNS("c2"), netip.AddrPortFrom(ip("172.18.0.2"), 80)), false},
}

// runTwin runs the steps in a topology.
func runTwin(ctx context.Context, t *testing.T, topo *harness.Topology, steps []twinStep) {
	t.Helper()
	for _, s := range steps {
		r := s.run(ctx, topo)
		require.Equal(t, s.ok, r.OK, "%s: %s", s.name, r)
	}
}

// TestCompatTwinCounters is items 2 and 3 of issue #15: the same rules
// programmed by dnft and by real iptables (legacy: it counts policies),
// the same packets through both, and then every counter of the iptables
// view (rules, jumps, RETURNs, DOCKER-USER, policies of every built-in
// chain) equals real iptables' byte for byte: `-L -n -v -x` of every
// table.
func TestCompatTwinCounters(t *testing.T) {
	harness.RequireRoot(t, "iptables-legacy")
	ctx := cvContext(t)
	d := dnft.DaemonConfig{UserlandProxy: true, IPForward: true}
	n1 := bridgeNet("n1", "br1", "172.18.0.0/16", "172.18.0.1/16")
	n2 := bridgeNet("n2", "br2", "172.19.0.0/16", "172.19.0.1/16")
	sc := scenario{name: "counters", daemon: d, nets: []netSpec{n1, n2},
		containers: []harness.ContainerSpec{ctr("c1", "br1", "172.18.0.2"), ctr("c2", "br2", "172.19.0.2")}}
	spec := sc.spec()
	spec.NoForward = true // init turns forwarding on: FORWARD policy DROP on both sides
	dn, refTopo := harness.NewTwin(t, spec)
	for _, topo := range []*harness.Topology{dn, refTopo} {
		// The bridges' IGMP reports (for link-local groups, repeated for
		// a while after they come up) would be counted on one side and
		// not the other, depending on when its firewall came: stop them
		// before either exists.
		require.NoError(t, topo.Host.SetSysctl("net.ipv4.igmp_link_local_mcast_reports", "0"))
	}
	binds := []portmap.Binding{
		reference.Bind(tcp, "", 8080, "172.18.0.2", 80),
		reference.Bind(udp, "", 8081, "172.18.0.2", 80),
		reference.Bind(tcp, "127.0.0.1", 8082, "172.18.0.2", 80),
		reference.Bind(udp, "", 8083, "172.18.0.2", 80),
	}
	userRule := []string{"-I", "DOCKER-USER", "-i", "br2", "-p", "udp", "-j", "DROP"}

	fw := openFirewall(ctx, t, dn.Host)
	require.NoError(t, fw.Init(ctx, d))
	ref, err := reference.New(ctx, refTopo.Host.Name, d, reference.WithLegacy())
	require.NoError(t, err)
	for _, n := range sc.nets {
		require.NoError(t, fw.CreateNetwork(ctx, n.cfg))
		require.NoError(t, ref.CreateNetwork(ctx, n.cfg))
	}
	require.NoError(t, fw.Publish(ctx, "n1", binds))
	require.NoError(t, ref.Publish(ctx, "n1", binds))
	r := dnftCLI(ctx, t, dn.Host, "", append([]string{"iptables"}, userRule...)...)
	require.Zero(t, r.code, r.stderr)
	_, err = ref.IPTables(ctx, reference.IPv4, userRule...)
	require.NoError(t, err)

	for _, topo := range []*harness.Topology{dn, refTopo} {
		prepare(ctx, t, sc, topo)
		routeAround(ctx, t, topo, false)
		runTwin(ctx, t, topo, twinUDP)
	}
	lists := func() (got, want map[string]string) {
		got, want = map[string]string{}, map[string]string{}
		view := readView(ctx, t, dn.Host)
		for _, table := range []string{compat.TableFilter, compat.TableNAT, compat.TableRaw} {
			args := []string{"-t", table, "-L", "-n", "-v", "-x"}
			w, err := ref.IPTables(ctx, reference.IPv4, args...)
			require.NoError(t, err)
			g := cvRun(view.IPv4, compat.Legacy, nil, false, args)
			require.Zero(t, g.code, g.stderr)
			got[table], want[table] = g.stdout, w
		}
		return got, want
	}
	got, want := lists()
	for table := range want {
		if got[table] != want[table] {
			t.Errorf("iptables -t %s -L -n -v -x differs:\n%s", table, lineDiff(got[table], want[table]))
		}
	}
	for _, topo := range []*harness.Topology{dn, refTopo} {
		runTwin(ctx, t, topo, twinTCP)
	}
	got, want = lists()
	for table := range want {
		if g, w := movedOnly(got[table]), movedOnly(want[table]); g != w {
			t.Errorf("after TCP, the counters that moved in -t %s differ:\n%s", table, lineDiff(g, w))
		}
	}
	if t.Failed() {
		out, _ := dn.Host.Run(ctx, "nft", "list", "ruleset")
		t.Logf("dnft ruleset:\n%s", out)
	}
}

// movedOnly blanks the counter values of `-L -n -v -x` output, keeping
// whether each is zero: which counters moved.
func movedOnly(listing string) string {
	moved := func(v string) string {
		if v == "0" {
			return "0"
		}
		return "N"
	}
	var b strings.Builder
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 7 && f[0] == "Chain" && f[2] == "(policy":
			f[4], f[6] = moved(f[4]), moved(f[6])
		case len(f) > 2 && f[0] != "Chain" && f[0] != "pkts":
			f[0], f[1] = moved(f[0]), moved(f[1])
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	return b.String()
}

// lineDiff shows the lines of got (dnft) and want (iptables) that differ.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "dnft:     %s\niptables: %s\n", gl, wl)
		}
	}
	return b.String()
}
