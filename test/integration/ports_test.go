package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
)

// publishOp is one Publish call: bindings of one network.
type publishOp struct {
	network string
	bs      []portmap.Binding
}

// portScenario is a topology with published ports, the facts it must show
// while the ports are published, and after they are all unpublished.
type portScenario struct {
	scenario
	publish []publishOp
	want    map[string]string
	after   map[string]string
}

// portScenario4 builds the IPv4 port scenario with the userland proxy on
// or off: two networks; c1's port 80 published on all addresses
// (8080 tcp+udp) and on 127.0.0.1:8082, c2's on the LAN address only
// (192.0.2.1:8081). The 127.0.0.1 binding is published in a later call
// than the 8080 one, so that the two share c1's filter accept and hairpin
// elements across calls.
func portScenario4(proxy bool) portScenario {
	name := "ports-proxy-off"
	if proxy {
		name = "ports-proxy-on"
	}
	s := portScenario{
		scenario: scenario{
			name:   name,
			daemon: dnft.DaemonConfig{UserlandProxy: proxy},
			nets: []netSpec{
				bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16"),
				bridgeNet("b", "br-b", "172.19.0.0/16", "172.19.0.1/16"),
			},
			containers: []harness.ContainerSpec{ctr("c1", "br-a", "172.18.0.2"), ctr("c2", "br-b", "172.19.0.2")},
		},
		publish: []publishOp{
			{"a", []portmap.Binding{
				reference.Bind(portmap.TCP, "", 8080, "172.18.0.2", 80),
				reference.Bind(portmap.UDP, "", 8080, "172.18.0.2", 80),
			}},
			{"b", []portmap.Binding{reference.Bind(portmap.TCP, "192.0.2.1", 8081, "172.19.0.2", 80)}},
			{"a", []portmap.Binding{reference.Bind(portmap.TCP, "127.0.0.1", 8082, "172.18.0.2", 80)}},
		},
		want: map[string]string{
			"lan->lan0:8080/tcp":  "ok from 192.0.2.2",
			"lan->lan0:8080/udp":  "ok from 192.0.2.2",
			"lan->lan0:8081/tcp":  "ok from 192.0.2.2",
			"inet->wan0:8080/tcp": "ok from 203.0.113.2",
			"inet->wan0:8080/udp": "ok from 203.0.113.2",
			"inet->wan0:8081/tcp": "blocked", // published on the LAN address only
			"lan->lo:8082/tcp":    "blocked", // loopback binding, protected
			"lan->c1:80/tcp":      "blocked", // direct routing stays blocked
			"c2->lan0:8080/tcp":   "blocked", // proxy on: no DNAT from a bridge; off: isolated
			"inet->wan0:8082/tcp": "blocked",
		},
		after: map[string]string{
			"lan->lan0:8080/tcp":  "blocked",
			"lan->lan0:8080/udp":  "blocked",
			"lan->lan0:8081/tcp":  "blocked",
			"inet->wan0:8080/tcp": "blocked",
			"host->lo:8082/tcp":   "blocked",
			"c1->lan0:8080/tcp":   "blocked",
		},
	}
	if proxy {
		s.want["host->lo:8082/tcp"] = "blocked" // nat OUTPUT skips 127.0.0.0/8
		s.want["c1->lan0:8080/tcp"] = "blocked" // no hairpin DNAT from the own bridge
		s.want["host->lan0:8080/tcp"] = "ok from 192.0.2.1"
	} else {
		s.want["host->lo:8082/tcp"] = "ok from 172.18.0.1" // route_localnet + masquerade from host
		s.want["c1->lan0:8080/tcp"] = "ok from 172.18.0.1" // hairpin masquerade
		s.want["c2->lan0:8081/tcp"] = "ok from 172.19.0.1"
		s.want["host->lan0:8080/tcp"] = "ok from 172.18.0.1"
	}
	return s
}

// portScenario6 publishes IPv6 ports (with the userland proxy on).
func portScenario6() portScenario {
	a := bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16")
	a.cfg.Subnet6, a.gw6 = pfx("fd00:18::/64"), "fd00:18::1/64"
	return portScenario{
		scenario: scenario{
			name:       "ports-ipv6",
			daemon:     dnft.DaemonConfig{UserlandProxy: true, IPv6: true},
			nets:       []netSpec{a},
			containers: []harness.ContainerSpec{{Name: "c1", Bridge: "br-a", Addr4: ip("172.18.0.2"), Addr6: ip("fd00:18::2")}},
		},
		publish: []publishOp{
			{"a", []portmap.Binding{
				reference.Bind(portmap.TCP, "", 8080, "fd00:18::2", 80),
				reference.Bind(portmap.UDP, "", 8080, "fd00:18::2", 80),
				reference.Bind(portmap.TCP, "2001:db8:1::1", 8081, "fd00:18::2", 80),
				reference.Bind(portmap.TCP, "", 8080, "172.18.0.2", 80),
			}},
		},
		want: map[string]string{
			"lan->lan0:8080/tcp/6":  "ok from 2001:db8:1::2",
			"lan->lan0:8080/udp/6":  "ok from 2001:db8:1::2",
			"lan->lan0:8081/tcp/6":  "ok from 2001:db8:1::2",
			"inet->wan0:8080/tcp/6": "ok from 2001:db8:2::2",
			"inet->wan0:8081/tcp/6": "blocked",
			"lan->lan0:8080/tcp":    "ok from 192.0.2.2",
		},
		after: map[string]string{
			"lan->lan0:8080/tcp/6": "blocked",
			"lan->lan0:8081/tcp/6": "blocked",
			"lan->lan0:8080/tcp":   "blocked",
		},
	}
}

// portProbes is the matrix of a port scenario: to the host's addresses
// and published ports from the LAN, the Internet, the host itself and the
// containers (hairpin), plus direct and loopback attempts.
func portProbes(s portScenario, topo *harness.Topology) []harness.Probe {
	var ps []harness.Probe
	add := func(name string, from *harness.NS, kind string, to netip.Addr, port uint16) {
		ps = append(ps, harness.Probe{Name: name, From: from, Kind: kind, To: netip.AddrPortFrom(to, port)})
	}
	type fam struct {
		tag        string
		lan0, wan0 netip.Addr
		ctr        func(harness.ContainerSpec) netip.Addr
	}
	fams := []fam{{"", harness.LANHostAddr4, harness.WANHostAddr4, func(c harness.ContainerSpec) netip.Addr { return c.Addr4 }}}
	if s.daemon.IPv6 {
		fams = append(fams, fam{"/6", harness.LANHostAddr6, harness.WANHostAddr6, func(c harness.ContainerSpec) netip.Addr { return c.Addr6 }})
	}
	ports := []uint16{8080, 8081, 8082}
	for _, f := range fams {
		for _, port := range ports {
			for _, k := range []string{harness.KindTCP, harness.KindUDP} {
				add(fmt.Sprintf("lan->lan0:%d/%s%s", port, k, f.tag), topo.LAN, k, f.lan0, port)
				add(fmt.Sprintf("inet->wan0:%d/%s%s", port, k, f.tag), topo.Internet, k, f.wan0, port)
				add(fmt.Sprintf("host->lan0:%d/%s%s", port, k, f.tag), topo.Host, k, f.lan0, port)
				for _, c := range s.containers {
					add(fmt.Sprintf("%s->lan0:%d/%s%s", c.Name, port, k, f.tag), topo.Containers[c.Name], k, f.lan0, port)
				}
			}
		}
		for _, c := range s.containers {
			if a := f.ctr(c); a.IsValid() {
				add(fmt.Sprintf("lan->%s:80/tcp%s", c.Name, f.tag), topo.LAN, harness.KindTCP, a, 80)
			}
		}
	}
	for _, port := range ports {
		add(fmt.Sprintf("host->lo:%d/tcp", port), topo.Host, harness.KindTCP, ip("127.0.0.1"), port)
		add(fmt.Sprintf("lan->lo:%d/tcp", port), topo.LAN, harness.KindTCP, ip("127.0.0.1"), port)
	}
	return ps
}

// publishAll runs the scenario's publish operations on both twins and
// returns the dnft ruleset (stateless) before each operation and after
// the last one.
func publishAll(ctx context.Context, t *testing.T, s portScenario, fw *dnft.Firewall, dn *harness.Topology, p *reference.Programmer) []string {
	t.Helper()
	var snaps []string
	for _, op := range s.publish {
		snaps = append(snaps, ruleset(ctx, t, dn))
		require.NoError(t, fw.Publish(ctx, op.network, op.bs), "dnft publish on %s", op.network)
		require.NoError(t, p.Publish(ctx, op.network, op.bs), "reference publish on %s", op.network)
	}
	return append(snaps, ruleset(ctx, t, dn))
}

func ruleset(ctx context.Context, t *testing.T, topo *harness.Topology) string {
	t.Helper()
	out, err := topo.Host.Run(ctx, "nft", "-s", "list", "ruleset")
	require.NoError(t, err, out)
	return out
}

// positionsElems matches the elements of the positions sets.
var positionsElems = regexp.MustCompile(`(?s)(set ` + portmap.SetPositions + ` \{\n[^}]*?comment "[^"]*"\n)\t\telements = \{[^}]*\}\n`)

// withoutPositions is a ruleset without the elements of its positions
// sets: the history of iptables' view, which iptables' -D changes too
// (it deletes the first of byte-identical rules, not necessarily the
// unpublished binding's: see portmap.SetPositions).
func withoutPositions(ruleset string) string {
	return positionsElems.ReplaceAllString(ruleset, "$1")
}

// TestPorts: port publishing, differential against the iptables reference
// (CONTRACT §2 "port publish"), while published and after unpublishing.
// Unpublishing, in reverse order, returns dnft's ruleset to exactly what
// it was before each publish, history aside (see [withoutPositions]).
func TestPorts(t *testing.T) {
	harness.RequireRoot(t)
	for _, sc := range []portScenario{portScenario4(true), portScenario4(false), portScenario6()} {
		t.Run(sc.name, func(t *testing.T) {
			ctx := testContext(t)
			dn, ref := harness.NewTwin(t, sc.spec())
			bridgeNFOff(t, dn) // dnft must not depend on it (issue #12)
			for _, topo := range []*harness.Topology{dn, ref} {
				prepare(ctx, t, sc.scenario, topo)
				require.NoError(t, topo.LAN.AddRoute(ctx, pfx("127.0.0.1/32"), harness.LANHostAddr4))
			}
			fw := programDNFT(ctx, t, sc.scenario, dn)
			p := programReference(ctx, t, sc.scenario, ref)
			snaps := publishAll(ctx, t, sc, fw, dn, p)

			compare := func(stage string, want map[string]string) {
				t.Helper()
				compareTwins(ctx, t, stage, dn, ref, p, func(tp *harness.Topology) []harness.Probe { return portProbes(sc, tp) }, want)
			}
			compare("published", sc.want)
			if !sc.daemon.IPv6 {
				// The LAN's packets to 127.0.0.1:8082 were dropped by the
				// loopback protection, not by the kernel's martian check
				// (which comes after DNAT and would not stop them).
				out, err := dn.Host.Run(ctx, "nft", "list", "set", "ip", "dnft", portmap.SetLoopbackPorts)
				require.NoError(t, err, out)
				require.Regexp(t, `127\.0\.0\.1 \. tcp \. 8082 counter packets [1-9]`, out)
			}

			// Ports reads the bindings back, in publication order.
			ports, err := fw.Ports(ctx)
			require.NoError(t, err)
			var want []string
			for _, op := range sc.publish {
				for _, b := range op.bs {
					want = append(want, op.network+" "+b.String())
				}
			}
			var got []string
			for _, pb := range ports {
				got = append(got, pb.Network+" "+pb.Binding.String())
			}
			require.Equal(t, want, got)

			for i := len(sc.publish) - 1; i >= 0; i-- {
				op := sc.publish[i]
				require.NoError(t, fw.Unpublish(ctx, op.network, op.bs))
				require.NoError(t, p.Unpublish(ctx, op.network, op.bs))
				require.Equal(t, withoutPositions(snaps[i]), withoutPositions(ruleset(ctx, t, dn)), "unpublish of operation %d must remove exactly what it added", i+1)
			}
			ports, err = fw.Ports(ctx)
			require.NoError(t, err)
			require.Empty(t, ports)
			compare("unpublished", sc.after)
		})
	}
}

// TestPortsErrors: bad and conflicting bindings are refused with a
// FieldError and change nothing in the kernel.
func TestPortsErrors(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := portScenario4(true)
	topo := harness.New(t, sc.spec())
	fw := programDNFT(ctx, t, sc.scenario, topo)
	require.NoError(t, fw.Publish(ctx, "a", sc.publish[0].bs))
	before := ruleset(ctx, t, topo)
	for _, tc := range []struct {
		network string
		bs      []portmap.Binding
		field   string
	}{
		{"a", []portmap.Binding{reference.Bind(portmap.TCP, "", 0, "172.18.0.2", 80)}, "host-port"},
		{"a", []portmap.Binding{reference.Bind("icmp", "", 80, "172.18.0.2", 80)}, "proto"},
		{"a", []portmap.Binding{reference.Bind(portmap.TCP, "", 9000, "172.19.0.2", 80)}, "container-ip"},
		{"b", []portmap.Binding{reference.Bind(portmap.TCP, "192.0.2.1", 8080, "172.19.0.2", 80)}, "binding"},                                                 // overlaps 0.0.0.0:8080
		{"a", []portmap.Binding{reference.Bind(portmap.TCP, "", 9000, "172.18.0.2", 80), reference.Bind(portmap.TCP, "", 9000, "172.18.0.3", 80)}, "binding"}, // twice in one call
		{"nope", []portmap.Binding{reference.Bind(portmap.TCP, "", 9000, "172.18.0.2", 80)}, "network"},
	} {
		err := fw.Publish(ctx, tc.network, tc.bs)
		var fe *dnft.FieldError
		require.ErrorAs(t, err, &fe, "%v", tc.bs)
		require.Equal(t, tc.field, fe.Field, err.Error())
	}
	err := fw.Unpublish(ctx, "a", []portmap.Binding{reference.Bind(portmap.TCP, "", 8080, "172.18.0.3", 80)})
	require.ErrorContains(t, err, "not published")
	require.Equal(t, before, ruleset(ctx, t, topo), "refused operations change nothing")
}
