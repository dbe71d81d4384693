package bench

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/portmap"
)

// ingressBackends are the backends of the swarm ingress workload: dnft
// and Docker's exec-per-rule path through iptables-nft.
var ingressBackends = []string{"dnft", CLIName, "iptables-nft+C"}

// ingressTarget is the ingress sandbox's address on the gateway bridge
// (docker_gwbridge, 172.30.0.0/16 in this workload).
var ingressTarget = netip.MustParseAddr("172.30.0.2")

// ingressFirst is the first pre-filled ingress port; the measured port
// is ingressMeasured, outside the pre-filled range.
const (
	ingressFirst    = 10000
	ingressMeasured = 9000
)

// BenchmarkPublishIngress measures publishing one swarm ingress port, and
// unpublishing it again, with n ingress ports already published (at least
// one, so that the chains exist and flatness is measured from there).
// dnft: Firewall.PublishIngress and UnpublishIngress on a
// docker_gwbridge-like network (the pre-fill publishes port by port,
// untimed); dnft CLI: `dnft ingress publish` and `unpublish`, one process
// each. iptables-nft+C:
// Docker's three rules per port in DOCKER-INGRESS, one exec per rule with
// -C first, pre-filled with iptables-restore.
func BenchmarkPublishIngress(b *testing.B) {
	s := scale(b)
	slow := tooSlow{}
	for _, n := range s.Ingress {
		for _, name := range ingressBackends {
			b.Run(fmt.Sprintf("existing=%d/%s", n, name), func(b *testing.B) {
				cell(b, func(b *testing.B) []Result {
					pub := Result{Workload: "publish-ingress", Backend: name, Param: "existing", Size: n}
					unpub := pub
					unpub.Workload = "unpublish-ingress"
					if why := slow[name]; why != "" {
						pub.Skipped, unpub.Skipped = why, why
						return []Result{pub, unpub}
					}
					publish, unpublish := ingressSetup(b, name, n)
					var dp, du []time.Duration
					o, err := s.RepeatWarm(context.Background(), func(ctx context.Context, _ int) error {
						if err := timed(&dp, func() error { return publish(ctx, ingressMeasured) }); err != nil {
							return err
						}
						return timed(&du, func() error { return unpublish(ctx, ingressMeasured) })
					})
					if err != nil {
						b.Fatal(err)
					}
					pub, unpub = durations(pub, dp, o), durations(unpub, du, Outcome{Warm: o.Warm})
					slow.check(pub)
					return []Result{pub, unpub}
				})
			})
		}
	}
}

// ingressSetup prepares a namespace for backend name with n ingress ports
// ingressFirst... published (untimed) and returns its publish and
// unpublish operations for one port.
func ingressSetup(b *testing.B, name string, n int) (publish, unpublish func(ctx context.Context, port uint16) error) {
	b.Helper()
	ctx := context.Background()
	be, _ := setup(b, name, 0, 0)
	switch be := be.(type) {
	case *dnftBackend:
		dnftIngressPrefill(b, be, n)
		return func(ctx context.Context, p uint16) error { return be.fw.PublishIngress(ctx, ingressPort(p)) },
			func(ctx context.Context, p uint16) error { return be.fw.UnpublishIngress(ctx, ingressPort(p)) }
	case *cliBackend:
		if err := be.library(ctx, func(d *dnftBackend) error { dnftIngressPrefill(b, d, n); return nil }); err != nil {
			b.Fatal(err)
		}
		spec := func(p uint16) string { return strconv.Itoa(int(p)) + "/tcp" }
		return func(ctx context.Context, p uint16) error {
				return be.run(ctx, "ingress", "publish", "-p", spec(p), "--target", ingressTarget.String(), "--bridge", ingress.DefaultGateway)
			}, func(ctx context.Context, p uint16) error {
				return be.run(ctx, "ingress", "unpublish", "-p", spec(p))
			}
	case *iptablesBackend:
		var rs []Rule
		for i := range n {
			rs = append(rs, ingressRules(uint16(ingressFirst+i))...)
		}
		decl := map[string][]string{"nat": {":DOCKER-INGRESS - [0:0]"}, "filter": {":DOCKER-INGRESS - [0:0]"}}
		if err := be.restore(ctx, script(rs, false, decl)); err != nil {
			b.Fatalf("%s prefill %d ingress ports: %v", name, n, err)
		}
		return func(ctx context.Context, p uint16) error { return be.program(ctx, ingressRules(p), false) },
			func(ctx context.Context, p uint16) error { return be.program(ctx, ingressRules(p), true) }
	}
	b.Fatalf("bench: no ingress workload for %s", name)
	return nil, nil
}

// ingressPort is the measured workload's ingress port p.
func ingressPort(p uint16) dnft.IngressPort {
	return dnft.IngressPort{GwBridge: ingress.DefaultGateway, Proto: portmap.TCP, Port: p, Target: ingressTarget}
}

// dnftIngressPrefill creates the gateway network and publishes n ingress
// ports through the library.
func dnftIngressPrefill(b *testing.B, be *dnftBackend, n int) {
	b.Helper()
	ctx := context.Background()
	gw := dnft.NetworkConfig{Name: "docker_gwbridge", Bridge: ingress.DefaultGateway,
		Subnet4: netip.MustParsePrefix("172.30.0.0/16"), Masquerade: true}
	if err := be.fw.CreateNetwork(ctx, gw); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := range n {
		if err := be.fw.PublishIngress(ctx, ingressPort(uint16(ingressFirst+i))); err != nil {
			b.Fatalf("dnft prefill ingress port %d: %v", ingressFirst+i, err)
		}
	}
	ps, err := be.fw.Ingress(ctx)
	if err != nil || len(ps) != n {
		b.Fatalf("dnft: published %d ingress ports, but %d are in the kernel (%v)", n, len(ps), err)
	}
	b.Logf("dnft: pre-filled %d ingress ports in %s", n, time.Since(t0).Round(time.Millisecond))
}

// ingressRules are Docker's iptables rules of one ingress port
// (daemon/network, programIngressPorts): the DNAT to the ingress sandbox
// and the two forward accepts, each inserted at the top of DOCKER-INGRESS.
func ingressRules(port uint16) []Rule {
	p := strconv.Itoa(int(port))
	return []Rule{
		{Table: "nat", Chain: "DOCKER-INGRESS", Insert: true,
			Spec: []string{"-p", "tcp", "--dport", p, "-j", "DNAT", "--to-destination", ingressTarget.String() + ":" + p}},
		{Table: "filter", Chain: "DOCKER-INGRESS", Insert: true,
			Spec: []string{"-m", "state", "-p", "tcp", "--sport", p, "--state", "ESTABLISHED,RELATED", "-j", "ACCEPT"}},
		{Table: "filter", Chain: "DOCKER-INGRESS", Insert: true,
			Spec: []string{"-p", "tcp", "--dport", p, "-j", "ACCEPT"}},
	}
}
