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
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// routeAround gives the LAN a route to the Internet's link and the
// Internet one back to the LAN, both through the host: traffic between
// them is routed by the host without being Docker's.
func routeAround(ctx context.Context, t *testing.T, topo *harness.Topology, ipv6 bool) {
	t.Helper()
	require.NoError(t, topo.LAN.AddRoute(ctx, harness.WANPrefix4, harness.LANHostAddr4))
	require.NoError(t, topo.Internet.AddRoute(ctx, harness.LANPrefix4, harness.WANHostAddr4))
	if ipv6 {
		require.NoError(t, topo.LAN.AddRoute(ctx, harness.WANPrefix6, harness.LANHostAddr6))
		require.NoError(t, topo.Internet.AddRoute(ctx, harness.LANPrefix6, harness.WANHostAddr6))
	}
}

// aroundProbes are probes of routed traffic that is not Docker's: LAN to
// Internet and back, per family.
func aroundProbes(topo *harness.Topology, ipv6 bool) []harness.Probe {
	type pair struct {
		tag      string
		from     *harness.NS
		to       netip.Addr
		fromName string
		toName   string
	}
	pairs := []pair{
		{"4", topo.LAN, harness.InternetAddr4, "lan", "inet"},
		{"4", topo.Internet, harness.LANAddr4, "inet", "lan"},
	}
	if ipv6 {
		pairs = append(pairs,
			pair{"6", topo.LAN, harness.InternetAddr6, "lan", "inet"},
			pair{"6", topo.Internet, harness.LANAddr6, "inet", "lan"})
	}
	var ps []harness.Probe
	for _, p := range pairs {
		for _, k := range []string{harness.KindTCP, harness.KindUDP, harness.KindICMP} {
			ps = append(ps, harness.Probe{Name: fmt.Sprintf("%s->%s/%s:%s", p.fromName, p.toName, p.tag, k),
				From: p.from, Kind: k, To: netip.AddrPortFrom(p.to, harness.EchoPort)})
		}
	}
	return ps
}

// TestForwardPolicy is item 1 of issue #12 (CONTRACT.md §2, init): when
// init itself turns a family's forwarding on, the FORWARD policy of that
// family becomes DROP, so traffic that the host routes between two
// non-Docker interfaces is dropped, exactly as with dockerd; with the
// no-drop option, or when forwarding was already on, it passes. Docker's
// own traffic passes in every case. The iptables view prints the policy
// as real iptables does.
func TestForwardPolicy(t *testing.T) {
	harness.RequireRoot(t)
	for _, tc := range []struct {
		name       string
		forwardOn  bool // forwarding already on before init
		noDrop     bool
		ipv6       bool
		wantAround string // outcome of routed LAN<->Internet traffic
	}{
		{name: "turned-on", wantAround: "blocked"},
		{name: "turned-on-ipv6", ipv6: true, wantAround: "blocked"},
		{name: "turned-on-no-drop", noDrop: true, wantAround: "ok"},
		{name: "already-on", forwardOn: true, wantAround: "ok"},
		{name: "already-on-ipv6", forwardOn: true, ipv6: true, wantAround: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			n := bridgeNet("bridge", "docker0", "172.17.0.0/16", "172.17.0.1/16")
			c := ctr("c1", "docker0", "172.17.0.2")
			if tc.ipv6 {
				n.cfg.Subnet6, n.gw6 = pfx("fd00:17::/64"), "fd00:17::1/64"
				c.Addr6 = ip("fd00:17::2")
			}
			sc := scenario{
				name:       tc.name,
				daemon:     dnft.DaemonConfig{UserlandProxy: true, IPv6: tc.ipv6, IPForward: true, IPForwardNoDrop: tc.noDrop},
				nets:       []netSpec{n},
				containers: []harness.ContainerSpec{c},
			}
			spec := sc.spec()
			spec.NoForward = !tc.forwardOn
			dn, ref := harness.NewTwin(t, spec)
			bridgeNFOff(t, dn)
			for _, topo := range []*harness.Topology{dn, ref} {
				prepare(ctx, t, sc, topo)
				routeAround(ctx, t, topo, tc.ipv6)
			}
			programDNFT(ctx, t, sc, dn)
			p := programReference(ctx, t, sc, ref)

			facts := map[string]string{
				"lan->inet/4:tcp":  tc.wantAround,
				"inet->lan/4:icmp": tc.wantAround,
				"c1->inet/4:tcp":   "ok from 203.0.113.1", // Docker's own traffic passes
				"c1->lan/4:tcp":    "ok",
			}
			if tc.ipv6 {
				facts["lan->inet/6:udp"] = tc.wantAround
				facts["c1->inet/6:tcp"] = "ok"
			}
			compareTwins(ctx, t, tc.name, dn, ref, p, func(tp *harness.Topology) []harness.Probe {
				return append(matrix(sc, tp), aroundProbes(tp, tc.ipv6)...)
			}, facts)
			requireSameForwardView(ctx, t, dn, p, tc.ipv6)
		})
	}
}

// requireSameForwardView compares `-S FORWARD` of dnft's iptables view
// with real iptables' for each family: the -P line included.
func requireSameForwardView(ctx context.Context, t *testing.T, dn *harness.Topology, p *reference.Programmer, ipv6 bool) {
	t.Helper()
	view := readView(ctx, t, dn.Host)
	fams := []struct {
		rs  *compat.Ruleset
		fam reference.Family
	}{{view.IPv4, reference.IPv4}}
	if ipv6 {
		fams = append(fams, struct {
			rs  *compat.Ruleset
			fam reference.Family
		}{view.IPv6, reference.IPv6})
	}
	for _, f := range fams {
		want, err := p.IPTables(ctx, f.fam, "-S", "FORWARD")
		require.NoError(t, err)
		got := cvRun(f.rs, compat.NFT, nil, false, []string{"-S", "FORWARD"})
		require.Equal(t, 0, got.code, got.stderr)
		require.Equal(t, want, got.stdout, "%s -S FORWARD", f.fam.Tool())
	}
}

// bridgeNFOff turns bridge-nf-call-iptables and -ip6tables off in the
// dnft twin's host namespace (they are on by default in a new namespace
// where br_netfilter exists): dnft must not depend on them.
func bridgeNFOff(t *testing.T, topo *harness.Topology) {
	t.Helper()
	for _, k := range []string{"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"} {
		if _, err := topo.Host.Sysctl(k); err != nil {
			continue // no br_netfilter in this kernel: nothing to turn off
		}
		require.NoError(t, topo.Host.SetSysctl(k, "0"))
	}
}

// TestForwardPolicyKept checks that init's FORWARD policy decision is part
// of dnft's state: save records it, check reports a changed policy as
// drift, repair and restore bring it back, and init again does not change
// it.
func TestForwardPolicyKept(t *testing.T) {
	ctx := testContext(t)
	ns := harness.Scratch(t) // forwarding is off in a new namespace
	fw, err := dnft.Open(ctx, ns.Path())
	require.NoError(t, err)
	defer fw.Close()
	require.NoError(t, fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPv6: true, IPForward: true}))
	d, ok, err := fw.Daemon(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, d.ForwardDrop4 && d.ForwardDrop6, "init turned both families on: %+v", d)
	policy := func(fam string) string {
		out := mustNft(ctx, t, ns, "list", "chain", fam, "dnft", "filter-FORWARD")
		if strings.Contains(out, "policy drop;") {
			return "drop"
		}
		return "accept"
	}
	require.Equal(t, "drop", policy("ip"))
	require.Equal(t, "drop", policy("ip6"))

	// Forwarding is on now: init again changes nothing, reset and init
	// again leave the policy accept (forwarding was already on).
	require.NoError(t, fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPv6: true, IPForward: true}))
	require.Equal(t, "drop", policy("ip"))
	saved, err := fw.Save(ctx)
	require.NoError(t, err)
	doc, err := saved.Encode()
	require.NoError(t, err)
	require.Contains(t, string(doc), `"forward_drop_ipv4": true`)

	mustNft(ctx, t, ns, "add", "chain", "ip", "dnft", "filter-FORWARD", "{ type filter hook forward priority 0; policy accept; }")
	findings, err := fw.Check(ctx, nil)
	require.NoError(t, err)
	require.Len(t, findings, 1)
	require.Equal(t, "ip chain filter-FORWARD: changed (type filter hook forward priority 0 policy accept, want type filter hook forward priority 0 policy drop)", findings[0].String())
	_, err = fw.Repair(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, "drop", policy("ip"))

	require.NoError(t, fw.Reset(ctx))
	require.NoError(t, fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPv6: true, IPForward: true}))
	require.Equal(t, "accept", policy("ip"), "forwarding was on: the policy stays")
	require.Equal(t, "accept", policy("ip6"))

	parsed, err := dnft.ParseState(doc)
	require.NoError(t, err)
	require.NoError(t, fw.Reset(ctx))
	require.NoError(t, fw.Restore(ctx, parsed))
	require.Equal(t, "drop", policy("ip"), "restore keeps the recorded decision")
	require.Equal(t, "drop", policy("ip6"))
}
