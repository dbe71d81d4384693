package dockertwin

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// TestDaemon starts dockerd with and without iptables and publishes a
// port: with iptables the container sees the LAN client's address
// (DNAT), without it docker-proxy answers and the container sees the
// bridge gateway's.
func TestDaemon(t *testing.T) {
	RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := BuildImage(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		iptables bool
		seen     netip.Addr
	}{
		{"iptables", true, harness.LANAddr4},
		{"no-iptables", false, netip.MustParseAddr("172.17.0.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := harness.New(t, harness.Spec{NoForward: true})
			d := Start(t, topo.Host, Config{Iptables: tc.iptables})
			if err := d.ImportImage(ctx, img); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Run(ctx, RunSpec{Name: "web", Publish: []string{"8080:80"}, Serve: []string{"tcp:80"}}); err != nil {
				t.Fatal(err)
			}
			to := netip.AddrPortFrom(harness.LANHostAddr4, 8080)
			var r harness.Result
			for range 50 {
				if r = topo.LAN.TCP(ctx, to); r.OK {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !r.OK || r.Seen != tc.seen {
				t.Fatalf("LAN -> %s: %s, want ok from %s\n%s", to, r, tc.seen, d.LogTail(20))
			}
		})
	}
}
