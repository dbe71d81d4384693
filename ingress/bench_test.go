package ingress_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// BenchmarkPublishIngress measures Firewall.PublishIngress followed by
// UnpublishIngress of one extra port, with 0, 1, 1000 and 5000 ingress
// ports already published (pre-filled in one batch). With 0, every
// iteration also creates and removes the chains, jumps and maps; from 1 on
// it only adds and deletes elements, so it should not grow with the count
// except for the one O(N) read (the ingress-dnat map, see ingress.lookup).
func BenchmarkPublishIngress(b *testing.B) {
	for _, n := range []int{0, 1, 1000, 5000} {
		b.Run(fmt.Sprintf("existing=%d", n), func(b *testing.B) {
			ctx := context.Background()
			fw := benchFirewall(b, n)
			p := dnft.IngressPort{Proto: portmap.TCP, Port: 80, Target: target}
			b.ResetTimer()
			for b.Loop() {
				if err := fw.PublishIngress(ctx, p); err != nil {
					b.Fatal(err)
				}
				if err := fw.UnpublishIngress(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRepublishIngress measures one more reference to a published
// port and its removal (the ingress-dnat element rewritten twice).
func BenchmarkRepublishIngress(b *testing.B) {
	for _, n := range []int{1, 1000, 5000} {
		b.Run(fmt.Sprintf("existing=%d", n), func(b *testing.B) {
			ctx := context.Background()
			fw := benchFirewall(b, n)
			p := dnft.IngressPort{Proto: portmap.TCP, Port: 10000, Target: target}
			b.ResetTimer()
			for b.Loop() {
				if err := fw.PublishIngress(ctx, p); err != nil {
					b.Fatal(err)
				}
				if err := fw.UnpublishIngress(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var target = netip.MustParseAddr("172.30.0.2")

// benchFirewall initializes a scratch namespace with the gateway bridge
// and network, and n ingress ports 10000... published.
func benchFirewall(b *testing.B, n int) *dnft.Firewall {
	b.Helper()
	ctx := context.Background()
	ns := harness.Scratch(b)
	if out, err := ns.Run(ctx, "ip", "link", "add", ingress.DefaultGateway, "type", "bridge"); err != nil {
		b.Fatal(err, out)
	}
	fw, err := dnft.Open(ctx, ns.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fw.Close() })
	if err := fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPForward: true}); err != nil {
		b.Fatal(err)
	}
	gw := dnft.NetworkConfig{Name: "docker_gwbridge", Bridge: ingress.DefaultGateway, Subnet4: netip.MustParsePrefix("172.30.0.0/16"), Masquerade: true}
	if err := fw.CreateNetwork(ctx, gw); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		return fw
	}
	if err := fw.PublishIngress(ctx, dnft.IngressPort{Proto: portmap.TCP, Port: 10000, Target: target}); err != nil {
		b.Fatal(err)
	}
	c, err := nft.Open(ctx, ns.Path())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tx := &nft.Tx{}
	ingress.Prefill(tx, target, 10001, n-1, 1)
	if err := c.Apply(ctx, tx); err != nil {
		b.Fatal(err)
	}
	ps, err := fw.Ingress(ctx)
	if err != nil || len(ps) != n {
		b.Fatalf("prefill: %d ports, %v", len(ps), err)
	}
	return fw
}
