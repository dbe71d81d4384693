package integration_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// BenchmarkPublish measures one Publish plus one Unpublish of a single
// binding while n other bindings are published (the perf-baselines
// publication: C = 172.18.(i/250).(i%250+2), P = 10000+i). Their cost
// must not grow with n. With conntrack=1 the namespace has one conntrack
// entry, so each operation's conntrack cleanup walks the kernel's
// conntrack table (shared by all namespaces) instead of skipping it. The
// medians of each operation are reported as publish-µs and unpublish-µs.
//
//	go test ./test/integration -run XXX -bench Publish -benchtime 200x
func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct{ n, ct int }{{0, 0}, {1000, 0}, {10000, 0}, {0, 1}, {10000, 1}} {
		n := tc.n
		b.Run(fmt.Sprintf("bindings=%d/conntrack=%d", n, tc.ct), func(b *testing.B) {
			ctx := context.Background()
			ns, fw := prefilled(ctx, b, n)
			if tc.ct > 0 {
				out, err := ns.Run(ctx, "conntrack", "-I", "-p", "udp", "-s", "198.51.100.1", "-d", "198.51.100.2", "--sport", "1", "--dport", "2", "-t", "600")
				if err != nil {
					b.Fatal(out, err)
				}
			}
			one := []portmap.Binding{{Proto: portmap.TCP, HostPort: 8080, ContainerIP: netip.MustParseAddr("172.18.255.2"), ContainerPort: 80}}
			pub := make([]time.Duration, 0, b.N)
			unpub := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if err := fw.Publish(ctx, "a", one); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := fw.Unpublish(ctx, "a", one); err != nil {
					b.Fatal(err)
				}
				pub, unpub = append(pub, t1.Sub(t0)), append(unpub, time.Since(t1))
			}
			b.StopTimer()
			b.ReportMetric(median(pub), "publish-µs")
			b.ReportMetric(median(unpub), "unpublish-µs")
		})
	}
}

// median returns the median of ds in microseconds.
func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Microsecond)
}

// prefilled initializes dnft in a scratch namespace with network "a"
// (172.18.0.0/16) and n published bindings (the perf-baselines
// publication: C = 172.18.(i/250).(i%250+2), P = 10000+i).
func prefilled(ctx context.Context, b *testing.B, n int) (*harness.NS, *dnft.Firewall) {
	b.Helper()
	ns := harness.Scratch(b)
	fw, err := dnft.Open(ctx, ns.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fw.Close() })
	if err := fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true, IPForward: true}); err != nil {
		b.Fatal(err)
	}
	if err := fw.CreateNetwork(ctx, dnft.NetworkConfig{Name: "a", Bridge: "br-a", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), ICC: true, Masquerade: true}); err != nil {
		b.Fatal(err)
	}
	var bs []portmap.Binding
	for i := range n {
		c := netip.AddrFrom4([4]byte{172, 18, byte(i / 250), byte(i%250 + 2)})
		bs = append(bs, portmap.Binding{Proto: portmap.TCP, HostPort: uint16(10000 + i), ContainerIP: c, ContainerPort: uint16(10000 + i)})
	}
	if err := fw.Publish(ctx, "a", bs); err != nil {
		b.Fatal(err)
	}
	return ns, fw
}
