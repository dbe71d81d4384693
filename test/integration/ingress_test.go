package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
)

// Ingress topology: the gateway bridge docker_gwbridge (an ordinary dnft
// network with ICC off, as Docker creates it) with the ingress sandbox
// "sbox" listening on the published port and on one that is never
// published, and a container network "a" with c1.
const (
	ingressPub   uint16 = 8080 // published to the sandbox
	ingressOther uint16 = 8081 // the sandbox listens, never published
	containerPub uint16 = 9090 // a container binding (to c1:80)
)

type ingressScenario struct {
	scenario
	sbox4, sbox6 netip.Addr
}

func ingressScenarioFor(name string, d dnft.DaemonConfig) ingressScenario {
	gw := bridgeNet(ingressGw, ingressGw, "172.30.0.0/16", "172.30.0.1/16")
	gw.cfg.ICC = false
	s := ingressScenario{
		scenario: scenario{
			name:   name,
			daemon: d,
			nets:   []netSpec{gw, bridgeNet("a", "br-a", "172.18.0.0/16", "172.18.0.1/16")},
			containers: []harness.ContainerSpec{
				{Name: "sbox", Bridge: ingressGw, Addr4: ip("172.30.0.2")},
				ctr("c1", "br-a", "172.18.0.2"),
			},
		},
		sbox4: ip("172.30.0.2"),
	}
	if d.IPv6 {
		s.nets[0].cfg.Subnet6, s.nets[0].gw6 = pfx("fd00:30::/64"), "fd00:30::1/64"
		s.containers[0].Addr6 = ip("fd00:30::2")
		s.sbox6 = ip("fd00:30::2")
	}
	return s
}

const ingressGw = "docker_gwbridge"

// spec is the scenario's spec with the sandbox listening on both ports.
func (s ingressScenario) spec() harness.Spec {
	spec := s.scenario.spec()
	for i, c := range spec.Containers {
		if c.Name == "sbox" {
			spec.Containers[i].TCPPorts = []uint16{ingressPub, ingressOther}
			spec.Containers[i].UDPPorts = []uint16{ingressPub, ingressOther}
		}
	}
	return spec
}

// ingressOp publishes or unpublishes on both twins.
type ingressOp struct {
	proto  portmap.Proto
	target netip.Addr
}

func (o ingressOp) port() dnft.IngressPort {
	return dnft.IngressPort{Proto: o.proto, Port: ingressPub, Target: o.target}
}

// ingressTwin is a dnft-programmed topology and its iptables-programmed copy.
type ingressTwin struct {
	sc  ingressScenario
	dn  *harness.Topology
	ref *harness.Topology
	fw  *dnft.Firewall
	p   *reference.Programmer
}

func newIngressTwin(ctx context.Context, t *testing.T, sc ingressScenario) *ingressTwin {
	t.Helper()
	dn, ref := harness.NewTwin(t, sc.spec())
	bridgeNFOff(t, dn) // dnft must not depend on it (issue #12)
	for _, topo := range []*harness.Topology{dn, ref} {
		prepare(ctx, t, sc.scenario, topo)
		require.NoError(t, topo.LAN.AddRoute(ctx, pfx("127.0.0.1/32"), harness.LANHostAddr4))
	}
	return &ingressTwin{sc: sc, dn: dn, ref: ref, fw: programDNFT(ctx, t, sc.scenario, dn), p: programReference(ctx, t, sc.scenario, ref)}
}

func (tw *ingressTwin) publish(ctx context.Context, t *testing.T, o ingressOp) {
	t.Helper()
	require.NoError(t, tw.fw.PublishIngress(ctx, o.port()), "dnft publish %v", o)
	require.NoError(t, tw.p.PublishIngress(ctx, "", o.proto, ingressPub, o.target), "reference publish %v", o)
}

func (tw *ingressTwin) unpublish(ctx context.Context, t *testing.T, o ingressOp) {
	t.Helper()
	require.NoError(t, tw.fw.UnpublishIngress(ctx, o.port()), "dnft unpublish %v", o)
	require.NoError(t, tw.p.UnpublishIngress(ctx, "", o.proto, ingressPub), "reference unpublish %v", o)
}

// compare runs the ingress matrix on both twins, requires equal outcomes,
// then checks the facts in want.
func (tw *ingressTwin) compare(ctx context.Context, t *testing.T, stage string, want map[string]string) {
	t.Helper()
	compareTwins(ctx, t, stage, tw.dn, tw.ref, tw.p, func(tp *harness.Topology) []harness.Probe { return ingressProbes(tw.sc, tp) }, want)
}

// ingressProbes sends TCP and UDP to the published and the unpublished
// port from the LAN, the Internet, the host (its own LAN address and
// 127.0.0.1), a container of another network and the LAN to 127.0.0.1;
// with IPv6 also to the host's IPv6 addresses; plus the container binding.
func ingressProbes(s ingressScenario, topo *harness.Topology) []harness.Probe {
	var ps []harness.Probe
	add := func(name string, from *harness.NS, kind string, to netip.Addr, port uint16) {
		ps = append(ps, harness.Probe{Name: name, From: from, Kind: kind, To: netip.AddrPortFrom(to, port)})
	}
	for _, port := range []uint16{ingressPub, ingressOther} {
		for _, k := range []string{harness.KindTCP, harness.KindUDP} {
			tag := fmt.Sprintf(":%d/%s", port, k)
			add("lan->lan0"+tag, topo.LAN, k, harness.LANHostAddr4, port)
			add("inet->wan0"+tag, topo.Internet, k, harness.WANHostAddr4, port)
			add("host->lan0"+tag, topo.Host, k, harness.LANHostAddr4, port)
			add("host->lo"+tag, topo.Host, k, ip("127.0.0.1"), port)
			add("lan->lo"+tag, topo.LAN, k, ip("127.0.0.1"), port)
			add("c1->lan0"+tag, topo.Containers["c1"], k, harness.LANHostAddr4, port)
			if s.daemon.IPv6 {
				add("lan->lan0"+tag+"/6", topo.LAN, k, harness.LANHostAddr6, port)
				add("inet->wan0"+tag+"/6", topo.Internet, k, harness.WANHostAddr6, port)
				add("host->lan0"+tag+"/6", topo.Host, k, harness.LANHostAddr6, port)
				add("host->lo"+tag+"/6", topo.Host, k, ip("::1"), port)
			}
		}
	}
	add(fmt.Sprintf("lan->lan0:%d/tcp", containerPub), topo.LAN, harness.KindTCP, harness.LANHostAddr4, containerPub)
	return ps
}

// ingressReachable is what a published ingress port shows in both families.
func ingressReachable(proto string, v6 bool) map[string]string {
	tag := fmt.Sprintf(":%d/%s", ingressPub, proto)
	other := fmt.Sprintf(":%d/%s", ingressOther, proto)
	w := map[string]string{
		"lan->lan0" + tag:    "ok from 192.0.2.2",   // DNAT only
		"inet->wan0" + tag:   "ok from 203.0.113.2", //
		"host->lan0" + tag:   "ok from 172.30.0.1",  // masquerade of local sources into the gateway
		"host->lo" + tag:     "ok from 172.30.0.1",  // route_localnet on the gateway bridge
		"c1->lan0" + tag:     "ok",
		"lan->lan0" + other:  "blocked", // not published
		"host->lan0" + other: "blocked",
		"host->lo" + other:   "blocked",
	}
	if v6 {
		w["lan->lan0"+tag+"/6"] = "ok from 2001:db8:1::2"
		w["host->lan0"+tag+"/6"] = "ok from fd00:30::1"
		w["lan->lan0"+other+"/6"] = "blocked"
	}
	return w
}

// ingressUnreachable is what an unpublished ingress port shows.
func ingressUnreachable(proto string, v6 bool) map[string]string {
	w := map[string]string{}
	for k, v := range ingressReachable(proto, v6) {
		if v != "blocked" {
			w[k] = "blocked"
		}
	}
	return w
}

// ingressWant merges expectations.
func ingressWant(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestIngress: swarm ingress publishing, differential against the
// iptables reference (CONTRACT §2 "ingress"), with reference counting:
// tcp published twice and udp once; after one unpublication of each, tcp
// still reaches the sandbox and udp does not; after the second nothing
// does, and dnft's ruleset is byte for byte what it was before the first
// publication.
func TestIngress(t *testing.T) {
	harness.RequireRoot(t)
	for _, sc := range []ingressScenario{
		ingressScenarioFor("ingress-proxy-on", dnft.DaemonConfig{UserlandProxy: true}),
		ingressScenarioFor("ingress-proxy-off", dnft.DaemonConfig{UserlandProxy: false}),
		ingressScenarioFor("ingress-ipv6", dnft.DaemonConfig{UserlandProxy: true, IPv6: true}),
	} {
		t.Run(sc.name, func(t *testing.T) {
			ctx := testContext(t)
			tw := newIngressTwin(ctx, t, sc)
			v6 := sc.daemon.IPv6
			ops := []ingressOp{{portmap.TCP, sc.sbox4}, {portmap.UDP, sc.sbox4}}
			if v6 {
				ops = append(ops, ingressOp{portmap.TCP, sc.sbox6}, ingressOp{portmap.UDP, sc.sbox6})
			}
			tw.compare(ctx, t, "before", ingressWant(ingressUnreachable("tcp", v6), ingressUnreachable("udp", v6)))
			before := ruleset(ctx, t, tw.dn)

			for _, o := range ops {
				tw.publish(ctx, t, o)
			}
			for _, o := range ops {
				if o.proto == portmap.TCP {
					tw.publish(ctx, t, o) // a second reference
				}
			}
			tw.compare(ctx, t, "published", ingressWant(ingressReachable("tcp", v6), ingressReachable("udp", v6)))
			requireIngressRefs(ctx, t, tw.fw, map[string]int{"8080/tcp": 2, "8080/udp": 1})

			// One unpublication per proto (it covers both families).
			tw.unpublish(ctx, t, ingressOp{portmap.TCP, netip.Addr{}})
			tw.unpublish(ctx, t, ingressOp{portmap.UDP, netip.Addr{}})
			tw.compare(ctx, t, "tcp has one reference left", ingressWant(ingressReachable("tcp", v6), ingressUnreachable("udp", v6)))
			requireIngressRefs(ctx, t, tw.fw, map[string]int{"8080/tcp": 1})

			tw.unpublish(ctx, t, ingressOp{portmap.TCP, netip.Addr{}})
			tw.compare(ctx, t, "unpublished", ingressWant(ingressUnreachable("tcp", v6), ingressUnreachable("udp", v6)))
			requireIngressRefs(ctx, t, tw.fw, map[string]int{})
			after := ruleset(ctx, t, tw.dn)
			require.Equal(t, before, after, "the last unpublication removes every ingress object")
			require.NotContains(t, strings.ToLower(after), "ingress")
		})
	}
}

// requireIngressRefs checks the reference count of every ingress publication
// (port/proto, the same in every family).
func requireIngressRefs(ctx context.Context, t *testing.T, fw *dnft.Firewall, want map[string]int) {
	t.Helper()
	ps, err := fw.Ingress(ctx)
	require.NoError(t, err)
	got := map[string]int{}
	for _, p := range ps {
		k := fmt.Sprintf("%d/%s", p.Port.Port, p.Proto)
		if n, ok := got[k]; ok {
			require.Equal(t, n, p.Refs, "%s differs between families", k)
		}
		got[k] = p.Refs
	}
	require.Equal(t, want, got)
}

// TestIngressWithPorts: ingress and container port publications live side
// by side (differential), and a host port held by one cannot be taken by
// the other, in either direction: refused with a FieldError, ruleset
// unchanged.
func TestIngressWithPorts(t *testing.T) {
	harness.RequireRoot(t)
	ctx := testContext(t)
	sc := ingressScenarioFor("ingress-and-ports", dnft.DaemonConfig{UserlandProxy: true})
	tw := newIngressTwin(ctx, t, sc)
	c1 := reference.Bind(portmap.TCP, "", containerPub, "172.18.0.2", 80)
	require.NoError(t, tw.fw.Publish(ctx, "a", []portmap.Binding{c1}))
	require.NoError(t, tw.p.Publish(ctx, "a", []portmap.Binding{c1}))
	tw.publish(ctx, t, ingressOp{portmap.TCP, sc.sbox4})
	tw.publish(ctx, t, ingressOp{portmap.UDP, sc.sbox4})
	tw.compare(ctx, t, "both", ingressWant(ingressReachable("tcp", false), ingressReachable("udp", false),
		map[string]string{fmt.Sprintf("lan->lan0:%d/tcp", containerPub): "ok from 192.0.2.2"}))

	held := ruleset(ctx, t, tw.dn)
	refuse := func(t *testing.T, name, field string, err error) {
		t.Helper()
		var fe *dnft.FieldError
		require.ErrorAs(t, err, &fe, name)
		require.Equal(t, field, fe.Field, "%s: %v", name, err)
	}
	t.Run("ingress on a container's port", func(t *testing.T) {
		err := tw.fw.PublishIngress(ctx, dnft.IngressPort{Proto: portmap.TCP, Port: containerPub, Target: sc.sbox4})
		refuse(t, "ingress 9090/tcp", "port", err)
		require.ErrorContains(t, err, `network "a"`)
		require.Equal(t, held, ruleset(ctx, t, tw.dn))
	})
	t.Run("container on an ingress port", func(t *testing.T) {
		// Needs the ports.go call of ingress.CheckBindings.
		for _, b := range []portmap.Binding{
			reference.Bind(portmap.TCP, "192.0.2.1", ingressPub, "172.18.0.2", 80),
			reference.Bind(portmap.UDP, "", ingressPub, "172.18.0.2", 80),
		} {
			err := tw.fw.Publish(ctx, "a", []portmap.Binding{b})
			refuse(t, b.String(), "binding", err)
			require.ErrorContains(t, err, "ingress port")
		}
		require.Equal(t, held, ruleset(ctx, t, tw.dn))
	})
	t.Run("other target on a held port", func(t *testing.T) {
		err := tw.fw.PublishIngress(ctx, dnft.IngressPort{Proto: portmap.TCP, Port: ingressPub, Target: ip("172.30.0.3")})
		refuse(t, "ingress to another target", "port", err)
		require.Equal(t, held, ruleset(ctx, t, tw.dn))
	})

	// Free again once the other side is gone.
	require.NoError(t, tw.fw.Unpublish(ctx, "a", []portmap.Binding{c1}))
	require.NoError(t, tw.fw.PublishIngress(ctx, dnft.IngressPort{Proto: portmap.TCP, Port: containerPub, Target: sc.sbox4}))
}
