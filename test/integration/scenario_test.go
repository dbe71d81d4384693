package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
	"github.com/stretchr/testify/require"
)

// hostPort is the port of the echo server in the Host namespace, used to
// check that a container reaches the host's own bridge addresses.
const hostPort uint16 = 8000

// netSpec is one network of a scenario with its bridge's gateway addresses.
type netSpec struct {
	cfg      dnft.NetworkConfig
	gw4, gw6 string
}

// scenario is a topology plus the operations that program it.
type scenario struct {
	name       string
	daemon     dnft.DaemonConfig
	nets       []netSpec
	containers []harness.ContainerSpec
	// remove lists networks removed after all were created.
	remove []string
}

func (s scenario) spec() harness.Spec {
	spec := harness.Spec{IPv6: s.daemon.IPv6}
	for _, n := range s.nets {
		b := harness.BridgeSpec{Name: n.cfg.Bridge, Gateway4: netip.MustParsePrefix(n.gw4)}
		if n.gw6 != "" {
			b.Gateway6 = netip.MustParsePrefix(n.gw6)
		}
		spec.Bridges = append(spec.Bridges, b)
	}
	for _, c := range s.containers {
		c.TCPPorts, c.UDPPorts = []uint16{80}, []uint16{80}
		spec.Containers = append(spec.Containers, c)
	}
	return spec
}

// programDNFT applies the scenario with dnft in the topology's Host.
func programDNFT(ctx context.Context, t *testing.T, s scenario, topo *harness.Topology) *dnft.Firewall {
	t.Helper()
	fw, err := dnft.Open(ctx, topo.Host.Path())
	require.NoError(t, err)
	t.Cleanup(func() { fw.Close() })
	require.NoError(t, fw.Init(ctx, s.daemon))
	for _, n := range s.nets {
		require.NoError(t, fw.CreateNetwork(ctx, n.cfg), n.cfg.Name)
	}
	for _, name := range s.remove {
		require.NoError(t, fw.RemoveNetwork(ctx, name, false))
	}
	return fw
}

// programReference applies the scenario with real iptables.
func programReference(ctx context.Context, t *testing.T, s scenario, topo *harness.Topology) *reference.Programmer {
	t.Helper()
	p, err := reference.New(ctx, topo.Host.Name, s.daemon)
	require.NoError(t, err)
	for _, n := range s.nets {
		require.NoError(t, p.CreateNetwork(ctx, n.cfg), n.cfg.Name)
	}
	for _, name := range s.remove {
		require.NoError(t, p.RemoveNetwork(ctx, name, false))
	}
	return p
}

// prepare starts the Host's echo server and gives the LAN routes to every
// container subnet through the host (as a router on the LAN would).
func prepare(ctx context.Context, t *testing.T, s scenario, topo *harness.Topology) {
	t.Helper()
	topo.Host.ServeTCP(t, hostPort)
	for _, n := range s.nets {
		require.NoError(t, topo.LAN.AddRoute(ctx, n.cfg.Subnet4, harness.LANHostAddr4))
		if s.daemon.IPv6 && n.cfg.Subnet6.IsValid() {
			require.NoError(t, topo.LAN.AddRoute(ctx, n.cfg.Subnet6, harness.LANHostAddr6))
		}
	}
}

// matrix builds the probes of CONTRACT §4 layer 2 for a topology: from the
// LAN, from the host, to the internet, between containers of the same and
// of other networks, and to the host's bridge addresses.
func matrix(s scenario, topo *harness.Topology) []harness.Probe {
	var ps []harness.Probe
	add := func(name string, from *harness.NS, kind string, to netip.Addr, port uint16) {
		ps = append(ps, harness.Probe{Name: name + ":" + kind, From: from, Kind: kind, To: netip.AddrPortFrom(to, port)})
	}
	kinds := []string{harness.KindTCP, harness.KindUDP, harness.KindICMP}
	type fam struct {
		tag       string
		inet, lan func() netip.Addr
		addr      func(c harness.ContainerSpec) netip.Addr
		gateway   func(n netSpec) (netip.Addr, bool)
	}
	fams := []fam{{
		tag:  "4",
		inet: func() netip.Addr { return harness.InternetAddr4 },
		lan:  func() netip.Addr { return harness.LANAddr4 },
		addr: func(c harness.ContainerSpec) netip.Addr { return c.Addr4 },
		gateway: func(n netSpec) (netip.Addr, bool) {
			return netip.MustParsePrefix(n.gw4).Addr(), true
		},
	}}
	if s.daemon.IPv6 {
		fams = append(fams, fam{
			tag:  "6",
			inet: func() netip.Addr { return harness.InternetAddr6 },
			lan:  func() netip.Addr { return harness.LANAddr6 },
			addr: func(c harness.ContainerSpec) netip.Addr { return c.Addr6 },
			gateway: func(n netSpec) (netip.Addr, bool) {
				if n.gw6 == "" {
					return netip.Addr{}, false
				}
				return netip.MustParsePrefix(n.gw6).Addr(), true
			},
		})
	}
	for _, f := range fams {
		for _, c := range s.containers {
			a := f.addr(c)
			if !a.IsValid() {
				continue
			}
			cn := topo.Containers[c.Name]
			for _, k := range kinds {
				add(fmt.Sprintf("lan->%s/%s", c.Name, f.tag), topo.LAN, k, a, 80)
				add(fmt.Sprintf("%s->inet/%s", c.Name, f.tag), cn, k, f.inet(), 80)
				if k != harness.KindUDP {
					add(fmt.Sprintf("host->%s/%s", c.Name, f.tag), topo.Host, k, a, 80)
					add(fmt.Sprintf("%s->lan/%s", c.Name, f.tag), cn, k, f.lan(), 80)
				}
				for _, d := range s.containers {
					if da := f.addr(d); d.Name != c.Name && da.IsValid() {
						add(fmt.Sprintf("%s->%s/%s", c.Name, d.Name, f.tag), cn, k, da, 80)
					}
				}
			}
			for _, n := range s.nets {
				if gw, ok := f.gateway(n); ok {
					add(fmt.Sprintf("%s->gw-%s/%s", c.Name, n.cfg.Bridge, f.tag), cn, harness.KindTCP, gw, hostPort)
				}
			}
		}
	}
	return ps
}

// compareTwins runs the probes that probes builds on both twins,
// requires the same outcome for each on dnft's side (dn) as on the
// iptables reference's (ref), then every expectation of want on dnft's
// side. On a difference it shows dnft's matrix and ruleset and the
// reference's commands.
func compareTwins(ctx context.Context, t *testing.T, stage string, dn, ref *harness.Topology, p *reference.Programmer,
	probes func(*harness.Topology) []harness.Probe, want map[string]string) {
	t.Helper()
	got := harness.RunMatrix(ctx, probes(dn))
	exp := harness.RunMatrix(ctx, probes(ref))
	if diffs := harness.DiffMatrix(got, exp); len(diffs) > 0 {
		out, _ := dn.Host.Run(ctx, "nft", "list", "ruleset")
		t.Fatalf("%s: dnft (left) and iptables (right) differ:\n%s\n\ndnft matrix:\n%s\n\nnft ruleset:\n%s\niptables commands:\n%s",
			stage, strings.Join(diffs, "\n"), harness.FormatMatrix(got), out, strings.Join(p.Commands(), "\n"))
	}
	expect(t, stage, got, want)
}

// expect requires every expectation of want to hold in res (see
// harness.Unmet: "ok", "blocked", or an exact result), naming the stage.
func expect(t *testing.T, stage string, res map[string]harness.Result, want map[string]string) {
	t.Helper()
	if unmet := harness.Unmet(res, want); len(unmet) > 0 {
		t.Fatalf("%s: %d expectation(s) unmet:\n%s\nall results:\n%s", stage, len(unmet), strings.Join(unmet, "\n"), harness.FormatMatrix(res))
	}
}

// answerWait bounds the wait for an answer that must come.
const answerWait = 30 * time.Second

// answered returns ctx for probes that must be answered: they wait up to
// answerWait for the answer, which on a loaded machine can be late
// without anything having dropped it.
func answered(ctx context.Context) context.Context { return harness.WithProbeLimit(ctx, answerWait) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
