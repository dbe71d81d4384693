package integration_test

import (
	"net/netip"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func bridgeNet(name, bridge, subnet, gw string) netSpec {
	return netSpec{cfg: dnft.NetworkConfig{Name: name, Bridge: bridge, Subnet4: pfx(subnet), ICC: true, Masquerade: true}, gw4: gw}
}

func ctr(name, bridge, addr string) harness.ContainerSpec {
	return harness.ContainerSpec{Name: name, Bridge: bridge, Addr4: ip(addr)}
}

// scenarios are the differential scenarios of issue #2; want holds the
// facts each one must show on top of matching the iptables reference.
var scenarios = []struct {
	scenario
	want map[string]string
}{
	{
		scenario: scenario{
			name:   "default-bridge",
			daemon: dnft.DaemonConfig{UserlandProxy: true},
			nets:   []netSpec{bridgeNet("bridge", "docker0", "172.17.0.0/16", "172.17.0.1/16")},
			containers: []harness.ContainerSpec{
				ctr("c1", "docker0", "172.17.0.2"), ctr("c2", "docker0", "172.17.0.3"),
			},
		},
		want: map[string]string{
			"c1->inet/4:tcp":       "ok from 203.0.113.1", // masquerade
			"c1->inet/4:udp":       "ok from 203.0.113.1",
			"c1->c2/4:tcp":         "ok from 172.17.0.2", // ICC on
			"lan->c1/4:tcp":        "blocked",            // protected: no direct routing
			"lan->c1/4:icmp":       "blocked",
			"host->c1/4:tcp":       "ok",
			"c1->gw-docker0/4:tcp": "ok",
		},
	},
	{
		scenario: scenario{
			name:   "two-networks",
			daemon: dnft.DaemonConfig{UserlandProxy: true},
			nets: []netSpec{
				bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16"),
				bridgeNet("b", "br-b", "172.19.0.0/16", "172.19.0.1/16"),
			},
			containers: []harness.ContainerSpec{
				ctr("a1", "br-a", "172.18.0.2"), ctr("a2", "br-a", "172.18.0.3"), ctr("b1", "br-b", "172.19.0.2"),
			},
		},
		want: map[string]string{
			"a1->b1/4:tcp":      "blocked", // isolated both ways
			"b1->a1/4:tcp":      "blocked",
			"b1->a1/4:icmp":     "blocked",
			"a1->a2/4:tcp":      "ok",
			"b1->gw-br-a/4:tcp": "ok", // the host's bridge address stays reachable
			"a1->gw-br-b/4:tcp": "ok",
			"b1->inet/4:tcp":    "ok from 203.0.113.1",
		},
	},
	{
		scenario: scenario{
			name:   "icc-off",
			daemon: dnft.DaemonConfig{UserlandProxy: true},
			nets: []netSpec{func() netSpec {
				n := bridgeNet("noicc", "br-n", "172.20.0.0/16", "172.20.0.1/16")
				n.cfg.ICC = false
				return n
			}()},
			containers: []harness.ContainerSpec{ctr("n1", "br-n", "172.20.0.2"), ctr("n2", "br-n", "172.20.0.3")},
		},
		want: map[string]string{
			"n1->n2/4:tcp":   "blocked",
			"n1->n2/4:icmp":  "blocked",
			"n2->n1/4:udp":   "blocked",
			"n1->inet/4:tcp": "ok from 203.0.113.1",
		},
	},
	{
		scenario: scenario{
			name:   "internal",
			daemon: dnft.DaemonConfig{UserlandProxy: true},
			nets: []netSpec{
				func() netSpec {
					n := bridgeNet("int", "br-int", "172.21.0.0/16", "172.21.0.1/16")
					n.cfg.Internal, n.cfg.Masquerade = true, false
					return n
				}(),
				bridgeNet("ext", "br-ext", "172.22.0.0/16", "172.22.0.1/16"),
			},
			containers: []harness.ContainerSpec{
				ctr("i1", "br-int", "172.21.0.2"), ctr("i2", "br-int", "172.21.0.3"), ctr("e1", "br-ext", "172.22.0.2"),
			},
		},
		want: map[string]string{
			"i1->i2/4:tcp":   "ok", // ICC inside the internal network
			"i1->inet/4:tcp": "blocked",
			"i1->lan/4:tcp":  "blocked",
			"lan->i1/4:tcp":  "blocked",
			"e1->i1/4:tcp":   "blocked",
			"i1->e1/4:tcp":   "blocked",
			"e1->inet/4:tcp": "ok from 203.0.113.1",
		},
	},
	{
		scenario: scenario{
			name:   "proxy-off",
			daemon: dnft.DaemonConfig{UserlandProxy: false},
			nets: []netSpec{
				bridgeNet("p", "br-p", "172.23.0.0/16", "172.23.0.1/16"),
				func() netSpec {
					n := bridgeNet("nomasq", "br-q", "172.24.0.0/16", "172.24.0.1/16")
					n.cfg.Masquerade = false
					return n
				}(),
				func() netSpec {
					n := bridgeNet("snat", "br-s", "172.25.0.0/16", "172.25.0.1/16")
					n.cfg.HostIPv4 = harness.WANHostAddr4
					return n
				}(),
			},
			containers: []harness.ContainerSpec{
				ctr("p1", "br-p", "172.23.0.2"), ctr("p2", "br-p", "172.23.0.3"),
				ctr("q1", "br-q", "172.24.0.2"), ctr("s1", "br-s", "172.25.0.2"),
			},
		},
		want: map[string]string{
			"p1->inet/4:tcp": "ok from 203.0.113.1",
			"q1->inet/4:tcp": "blocked",             // no masquerade: the internet cannot answer
			"q1->lan/4:tcp":  "blocked",             // protected: the reply to an unmasqueraded address is dropped in raw
			"s1->inet/4:tcp": "ok from 203.0.113.1", // SNAT to the host address
			"p1->p2/4:tcp":   "ok",
		},
	},
	{
		scenario: scenario{
			name:   "ipv6",
			daemon: dnft.DaemonConfig{UserlandProxy: true, IPv6: true},
			nets: []netSpec{
				func() netSpec {
					n := bridgeNet("v6a", "br-6a", "172.26.0.0/16", "172.26.0.1/16")
					n.cfg.Subnet6, n.gw6 = pfx("fd00:26::/64"), "fd00:26::1/64"
					return n
				}(),
				func() netSpec {
					n := bridgeNet("v6b", "br-6b", "172.27.0.0/16", "172.27.0.1/16")
					n.cfg.Subnet6, n.gw6 = pfx("fd00:27::/64"), "fd00:27::1/64"
					n.cfg.ICC = false
					return n
				}(),
			},
			containers: []harness.ContainerSpec{
				{Name: "x1", Bridge: "br-6a", Addr4: ip("172.26.0.2"), Addr6: ip("fd00:26::2")},
				{Name: "x2", Bridge: "br-6a", Addr4: ip("172.26.0.3"), Addr6: ip("fd00:26::3")},
				{Name: "y1", Bridge: "br-6b", Addr4: ip("172.27.0.2"), Addr6: ip("fd00:27::2")},
				{Name: "y2", Bridge: "br-6b", Addr4: ip("172.27.0.3"), Addr6: ip("fd00:27::3")},
			},
		},
		want: map[string]string{
			"x1->inet/6:tcp":     "ok from 2001:db8:2::1",
			"x1->x2/6:tcp":       "ok from fd00:26::2",
			"y1->y2/6:tcp":       "blocked",
			"x1->y1/6:tcp":       "blocked",
			"y1->x1/6:icmp":      "blocked",
			"lan->x1/6:tcp":      "blocked",
			"x1->gw-br-6b/6:tcp": "ok",
		},
	},
	{
		scenario: scenario{
			name:       "direct-routing",
			daemon:     dnft.DaemonConfig{UserlandProxy: true, AllowDirectRouting: true},
			nets:       []netSpec{bridgeNet("d", "br-d", "172.28.0.0/16", "172.28.0.1/16")},
			containers: []harness.ContainerSpec{ctr("d1", "br-d", "172.28.0.2")},
		},
		want: map[string]string{
			"lan->d1/4:tcp":  "ok from 192.0.2.2",
			"lan->d1/4:icmp": "ok",
		},
	},
	{
		scenario: scenario{
			name:   "removal",
			daemon: dnft.DaemonConfig{UserlandProxy: true},
			nets: []netSpec{
				bridgeNet("r1", "br-r1", "172.29.0.0/16", "172.29.0.1/16"),
				bridgeNet("r2", "br-r2", "172.30.0.0/16", "172.30.0.1/16"),
				bridgeNet("r3", "br-r3", "172.31.0.0/16", "172.31.0.1/16"),
			},
			containers: []harness.ContainerSpec{
				ctr("r1c", "br-r1", "172.29.0.2"), ctr("r2c", "br-r2", "172.30.0.2"), ctr("r3c", "br-r3", "172.31.0.2"),
			},
			remove: []string{"r2"},
		},
		want: map[string]string{
			"r1c->r3c/4:tcp":  "blocked",
			"r2c->inet/4:tcp": "blocked", // removed: no masquerade any more
			"r2c->lan/4:tcp":  "ok from 172.30.0.2",
			"r1c->inet/4:tcp": "ok from 203.0.113.1",
		},
	},
}
