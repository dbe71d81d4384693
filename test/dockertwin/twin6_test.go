package dockertwin

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// TestTwinIPv6 is the twin with IPv6 and --ip-masq=false: dockerd
// --ipv6 --fixed-cidr-v6 (with --ip6tables on the iptables side, which
// 20.10 keeps behind --experimental) and `dnft docker --ipv6
// --ip-masq=false`. Published ports over IPv6, IPv6 masquerade of a user
// network, no masquerade of the default bridge, ICC and hairpin over
// IPv6 must match.
func TestTwinIPv6(t *testing.T) {
	RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	img, bin := buildAll(t, ctx)
	common := []string{"--ipv6", "--fixed-cidr-v6", "fd00:17::/64", "--ip-masq=false"}
	spec := harness.Spec{IPv6: true, NoForward: true}
	dk := NewSideSpec(t, "docker", spec, Config{Iptables: true, Flags: append([]string{"--experimental", "--ip6tables"}, common...)}, img)
	df := NewSideSpec(t, "dnft", spec, Config{Flags: common}, img)
	sides := []*Side{dk, df}
	fol := StartFollower(t, bin, df, "--ipv6", "--ip-masq=false", "--allow-direct-routing")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnft docker log:\n%s", fol.Log())
		}
	})
	a1 := netip.MustParseAddr("fd00:20::10")
	a2 := netip.MustParseAddr("fd00:20::11")
	both(t, sides, func(s *Side) error {
		if err := s.CreateNetwork(ctx, "n6", "172.20.0.0/16", false, nil, "fd00:20::/64"); err != nil {
			return err
		}
		for _, c := range []RunSpec{
			{Name: "web", Publish: []string{"8080:80", "8081:81/udp"}},
			{Name: "a1", Network: "n6", IP: netip.MustParseAddr("172.20.0.10"), IP6: a1, Publish: []string{"8082:80"}},
			{Name: "a2", Network: "n6", IP: netip.MustParseAddr("172.20.0.11"), IP6: a2},
		} {
			c.Serve = serve
			if _, err := s.D.Run(ctx, c); err != nil {
				return err
			}
		}
		for _, r := range []struct{ dst, via string }{
			{"172.16.0.0/12", harness.LANHostAddr4.String()}, {"fd00::/8", harness.LANHostAddr6.String()},
		} {
			if err := s.Topo.LAN.AddRoute(ctx, netip.MustParsePrefix(r.dst), netip.MustParseAddr(r.via)); err != nil {
				return err
			}
		}
		return nil
	})
	host6 := harness.LANHostAddr6
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	_, err := WaitAnswer(wctx, df.Topo.LAN, "tcp", netip.AddrPortFrom(host6, 8082), harness.LANAddr6)
	wcancel()
	if err != nil {
		t.Fatalf("dnft side never programmed: %v\n%s", err, fol.Log())
	}

	res := map[string]map[string]string{}
	var names []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range sides {
		web, err := s.ContainerNS(t, ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		n1, err := s.ContainerNS(t, ctx, "a1")
		if err != nil {
			t.Fatal(err)
		}
		web6, err := s.D.IP6(ctx, "web", "bridge")
		if err != nil {
			t.Fatal(err)
		}
		lan := s.Topo.LAN
		probes := []harness.Probe{
			{Name: "lan6->published tcp (bridge)", From: lan, Kind: "tcp", To: netip.AddrPortFrom(host6, 8080)},
			{Name: "lan6->published udp (bridge)", From: lan, Kind: "udp", To: netip.AddrPortFrom(host6, 8081)},
			{Name: "lan6->published tcp (n6)", From: lan, Kind: "tcp", To: netip.AddrPortFrom(host6, 8082)},
			{Name: "lan4->published tcp (n6)", From: lan, Kind: "tcp", To: lanPort(8082)},
			{Name: "lan6->container direct (n6)", From: lan, Kind: "tcp", To: netip.AddrPortFrom(a1, 80)},
			{Name: "lan6->container direct, unpublished port", From: lan, Kind: "tcp", To: netip.AddrPortFrom(web6, 82)},
			{Name: "host->published port via own IPv6 address", From: s.Topo.Host, Kind: "tcp", To: netip.AddrPortFrom(host6, 8080)},
			{Name: "container->lan6 (n6: masquerade)", From: n1, Kind: "tcp", To: netip.AddrPortFrom(harness.LANAddr6, harness.EchoPort)},
			{Name: "container->lan6 (bridge, --ip-masq=false)", From: web, Kind: "tcp", To: netip.AddrPortFrom(harness.LANAddr6, harness.EchoPort)},
			{Name: "container->lan4 (bridge, --ip-masq=false)", From: web, Kind: "tcp", To: netip.AddrPortFrom(harness.LANAddr4, harness.EchoPort)},
			{Name: "icc over IPv6 (n6)", From: n1, Kind: "tcp", To: netip.AddrPortFrom(a2, 80)},
			{Name: "between networks over IPv6 (bridge->n6)", From: web, Kind: "tcp", To: netip.AddrPortFrom(a2, 80)},
			{Name: "hairpin over IPv6: own published port", From: n1, Kind: "tcp", To: netip.AddrPortFrom(host6, 8082)},
		}
		if names == nil {
			for _, p := range probes {
				names = append(names, p.Name)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := harness.RunMatrix(ctx, probes)
			out := map[string]string{}
			for k, v := range r {
				out[k] = v.String()
			}
			mu.Lock()
			res[s.Name] = out
			mu.Unlock()
		}()
	}
	wg.Wait()
	judge(t, "IPv6, --ip-masq=false, --allow-direct-routing", names, res, []string{"docker", "dnft"})
}
