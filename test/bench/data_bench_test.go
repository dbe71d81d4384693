package bench

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// dataBackends are compared on the data plane: dnft, and the contract's
// reference (Docker's per-binding rules in iptables-nft, the "iptables"
// of Debian; programmed with iptables-restore, rule for rule what
// test/reference programs, see TestRulesMatchReference).
var dataBackends = []struct{ name, backend string }{
	{"dnft", "dnft"},
	{"iptables-ref", "restore-nft"},
}

// The measured port: published last, TCP and UDP, host port 8000 to the
// topology's one container at 172.18.0.2:8080.
var (
	dataContainer = netip.MustParseAddr("172.18.0.2")
	dataHostPort  = uint16(8000)
	dataCtrPort   = uint16(8080)
)

// dataCell is one programmed topology of a data-plane series.
type dataCell struct {
	size                 int
	name                 string
	topo                 *harness.Topology
	tcp, udp             []float64 // one rate per round
	tcpFailed, udpFailed int
	nets, npub           int
}

// BenchmarkDataPlane measures, from the LAN namespace to the last
// published port (DNATed by the Host), the TCP connection rate and the UDP
// request rate, for dnft and the iptables reference: one series over the
// number of bindings (with DataNetworks[0] networks) and one over the
// number of networks (with DataBindings[0] bindings). All cells of a
// series are built first and their many short runs interleaved (run r of
// every cell, in reverse order every other round, then run r+1), so that
// load from elsewhere on the machine affects them alike; a backend's cells
// run next to each other, and sample i of every cell belongs to round i
// (the report pairs them). Each cell reports the median of its runs.
// Conntrack is flushed in the Host after every run.
func BenchmarkDataPlane(b *testing.B) {
	s := scale(b)
	series := []struct {
		param      string
		sizes      []int
		nets, pubs func(size int) int
	}{
		{"bindings", s.DataBindings, func(int) int { return s.DataNetworks[0] }, func(n int) int { return n }},
		{"networks", s.DataNetworks, func(n int) int { return n }, func(int) int { return s.DataBindings[0] }},
	}
	for _, se := range series {
		b.Run(se.param, func(b *testing.B) {
			ctx := context.Background()
			var cells []*dataCell
			for _, db := range dataBackends {
				for _, size := range se.sizes {
					c := &dataCell{size: size, name: db.name, nets: se.nets(size), npub: se.pubs(size)}
					c.topo = buildDataCell(b, db.backend, c.nets, c.npub)
					cells = append(cells, c)
				}
			}
			dst := netip.AddrPortFrom(harness.LANHostAddr4, dataHostPort)
			for round := range s.DataRuns {
				order := slices.Clone(cells)
				if round%2 == 1 {
					slices.Reverse(order)
				}
				for _, c := range order {
					tr, err := TCPRate(ctx, c.topo.LAN, dst, s.DataRun)
					if err != nil {
						b.Fatal(err)
					}
					flushConntrack(b, c.topo.Host)
					ur, err := UDPRate(ctx, c.topo.LAN, dst, s.DataRun/2)
					if err != nil {
						b.Fatal(err)
					}
					flushConntrack(b, c.topo.Host)
					c.tcp, c.udp = append(c.tcp, tr.PerSecond), append(c.udp, ur.PerSecond)
					c.tcpFailed += tr.Failed
					c.udpFailed += ur.Failed
				}
			}
			for _, c := range cells {
				b.Run(fmt.Sprintf("%s=%d/%s", se.param, c.size, c.name), func(b *testing.B) {
					cell(b, func(b *testing.B) []Result {
						note := fmt.Sprintf("%d networks, %d bindings; failed exchanges: tcp %d, udp %d", c.nets, c.npub, c.tcpFailed, c.udpFailed)
						base := Result{Backend: c.name, Param: se.param, Size: c.size, Note: note}
						tcp, udp := base, base
						tcp.Workload, tcp.Unit, tcp.Samples, tcp.Median = "tcp-connect", "conn/s", c.tcp, Median(c.tcp)
						udp.Workload, udp.Unit, udp.Samples, udp.Median = "udp-request", "req/s", c.udp, Median(c.udp)
						return []Result{tcp, udp}
					})
				})
			}
		})
	}
}

// buildDataCell builds a topology (bridge br0 172.18.0.1/16, one
// container at 172.18.0.2 with the servers) and programs it with backend:
// networks 0..nets-1, npub-2 filler bindings, then the measured TCP and
// UDP bindings as the last two publications. It checks that both pass.
func buildDataCell(b *testing.B, backend string, nets, npub int) *harness.Topology {
	b.Helper()
	ctx := context.Background()
	tp := harness.New(b, harness.Spec{
		Bridges:    []harness.BridgeSpec{{Name: bridgeName(0), Gateway4: netip.MustParsePrefix("172.18.0.1/16")}},
		Containers: []harness.ContainerSpec{{Name: "c", Bridge: bridgeName(0), Addr4: dataContainer}},
	})
	srv, err := StartServers(tp.Containers["c"], dataCtrPort)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	be, err := NewBackend(ctx, backend, tp.Host)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	if err := be.Init(ctx); err != nil {
		b.Fatal(err)
	}
	if err := be.PrefillNetworks(ctx, 0, nets); err != nil {
		b.Fatal(err)
	}
	if err := be.PrefillBindings(ctx, bindings(0, max(npub-2, 0))); err != nil {
		b.Fatal(err)
	}
	for _, p := range []portmap.Proto{portmap.TCP, portmap.UDP} {
		m := portmap.Binding{Proto: p, HostPort: dataHostPort, ContainerIP: dataContainer, ContainerPort: dataCtrPort}
		if err := be.Publish(ctx, []portmap.Binding{m}); err != nil {
			b.Fatal(err)
		}
	}
	if err := Probe(ctx, tp.LAN, netip.AddrPortFrom(harness.LANHostAddr4, dataHostPort)); err != nil {
		out, _ := tp.Host.Run(ctx, "nft", "list", "ruleset")
		b.Fatalf("%s: %v\nHost ruleset:\n%s", backend, err, clip(out))
	}
	return tp
}

// flushConntrack empties the Host's conntrack table between runs.
func flushConntrack(b *testing.B, host *harness.NS) {
	b.Helper()
	if _, err := host.Run(context.Background(), "conntrack", "-F"); err != nil {
		b.Fatal(err)
	}
}
