package dockertwin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dnft/dnft/test/bench"
)

// BenchmarkRunPublish1k times `docker run -p` until the port answers the
// LAN through DNAT, with 1,000 bindings already published and the
// userland proxy off: dockerd programming its own iptables (iptables-nft,
// one exec per rule) against dockerd with --iptables=false followed by
// `dnft docker`. ns/op is the time from the create call; the
// "ms-after-start" metric counts from the start call's return, which is
// the firewall's share. With DNFT_BENCH_RESULTS set (test/bench/run.sh),
// both times are saved for the benchmark report, every run a sample.
func BenchmarkRunPublish1k(b *testing.B) {
	RequireDocker(b)
	ctx := context.Background()
	img, bin := buildAll(b, ctx)
	flags := []string{"--userland-proxy=false"}
	for _, tc := range []struct {
		name, backend string
		iptables      bool
		follower      []string
	}{
		{"docker", "dockerd's iptables", true, nil},
		{"dnft", "dnft", false, []string{"--userland-proxy=false", "--allow-direct-routing"}},
		{"dnft-nowatch", "dnft --watch=false", false, []string{"--userland-proxy=false", "--allow-direct-routing", "--watch=false"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := NewSide(b, tc.name, Config{Iptables: tc.iptables, Flags: flags}, img)
			if tc.follower != nil {
				StartFollower(b, bin, s, tc.follower...)
			}
			if err := s.PublishMany(ctx, "bulk", "", 1000, 100, 20000); err != nil {
				b.Fatal(err)
			}
			// The followed side has the 1,000 bindings once the last answers.
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			_, err := WaitAnswer(wctx, s.Topo.LAN, "tcp", lanPort(20999), s.Topo.LAN.Addr4)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			var after time.Duration
			var totals, afters []time.Duration
			i := 0
			for b.Loop() {
				t, a, err := s.TimeRunPublish(ctx, fmt.Sprintf("r%d", i), "", 8080)
				if err != nil {
					b.Fatal(err)
				}
				after += a
				totals, afters = append(totals, t), append(afters, a)
				i++
			}
			b.ReportMetric(float64(after.Milliseconds())/float64(i), "ms-after-start")
			for _, r := range []struct {
				workload string
				ds       []time.Duration
			}{{"docker-run-publish", totals}, {"docker-run-publish-after-start", afters}} {
				xs := bench.Seconds(r.ds)
				if err := bench.Save(bench.Result{Workload: r.workload, Backend: tc.backend, Param: "bindings", Size: 1000,
					Unit: "s", Median: bench.Median(xs), Samples: xs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
