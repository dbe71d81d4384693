package dockertwin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dnft/dnft/test/harness"
)

// The twin's networks (same subnets on both sides).
var twinNetworks = []struct {
	name, subnet string
	internal     bool
	opts         map[string]string
}{
	{"n1", "172.20.0.0/16", false, nil},
	{"n2", "172.21.0.0/16", false, map[string]string{"com.docker.network.bridge.enable_icc": "false"}},
	{"nint", "172.22.0.0/16", true, nil},
	{"n3", "172.23.0.0/16", false, map[string]string{
		"com.docker.network.bridge.name":                 "dnft-n3",
		"com.docker.network.bridge.enable_ip_masquerade": "false",
	}},
}

// serve is what every twin container runs: TCP 80 and 82, UDP 81.
var serve = []string{"tcp:80", "udp:81", "tcp:82"}

// The twin's containers, started in this order on both sides. web is on
// the default bridge, so it gets 172.17.0.2 on both.
var twinContainers = []RunSpec{
	{Name: "web", Publish: []string{"8080:80", "8081:81/udp"}},
	{Name: "a1", Network: "n1", IP: netip.MustParseAddr("172.20.0.10"), Publish: []string{"8082:80", "127.0.0.1:9090:80"}},
	{Name: "a2", Network: "n1", IP: netip.MustParseAddr("172.20.0.11")},
	{Name: "b1", Network: "n2", IP: netip.MustParseAddr("172.21.0.10"), Publish: []string{"8083:80"}},
	{Name: "b2", Network: "n2", IP: netip.MustParseAddr("172.21.0.11")},
	{Name: "i1", Network: "nint", IP: netip.MustParseAddr("172.22.0.10"), Publish: []string{"8084:80"}},
	{Name: "i2", Network: "nint", IP: netip.MustParseAddr("172.22.0.11")},
	{Name: "m1", Network: "n3", IP: netip.MustParseAddr("172.23.0.10"), Publish: []string{"8085:80"}},
}

// setupScenario creates the twin's networks and containers on one side.
func setupScenario(ctx context.Context, s *Side) error {
	for _, n := range twinNetworks {
		if err := s.CreateNetwork(ctx, n.name, n.subnet, n.internal, n.opts); err != nil {
			return err
		}
	}
	for _, c := range twinContainers {
		c.Serve = serve
		c.Restart = "always"
		if _, err := s.D.Run(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return nil
}

// both runs fn for the two sides at once and fails the test on errors.
func both(t *testing.T, sides []*Side, fn func(s *Side) error) {
	t.Helper()
	errs := make([]error, len(sides))
	var wg sync.WaitGroup
	for i, s := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(s)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// probeSpec is a probe in terms both sides understand: from "lan",
// "host", "inet" or a container; to "lan", "inet", "host" (the host's LAN
// address), "lo" (127.0.0.1), a container name, or an address.
type probeSpec struct {
	name, from, proto, to string
	port                  uint16
}

// twinProbes is the probe matrix.
var twinProbes = []probeSpec{
	{"lan->published tcp (bridge)", "lan", "tcp", "host", 8080},
	{"lan->published udp (bridge)", "lan", "udp", "host", 8081},
	{"lan->published tcp (n1)", "lan", "tcp", "host", 8082},
	{"lan->published tcp (n2, icc off)", "lan", "tcp", "host", 8083},
	{"lan->published tcp (internal)", "lan", "tcp", "host", 8084},
	{"lan->published tcp (n3, no masq)", "lan", "tcp", "host", 8085},
	{"lan->unpublished host port", "lan", "tcp", "host", 8089},
	{"lan->127.0.0.1-bound port via host address", "lan", "tcp", "host", 9090},
	{"host->127.0.0.1-bound port", "host", "tcp", "lo", 9090},
	{"host->published port via own address", "host", "tcp", "host", 8080},
	{"host->published udp via own address", "host", "udp", "host", 8081},
	{"lan->container direct, published port", "lan", "tcp", "web", 80},
	{"lan->container direct, unpublished port", "lan", "tcp", "web", 82},
	{"lan->container direct (n1)", "lan", "tcp", "a1", 80},
	{"lan->container direct (internal)", "lan", "tcp", "i1", 80},
	{"host->container direct", "host", "tcp", "a2", 80},
	{"container->lan (bridge)", "web", "tcp", "lan", harness.EchoPort},
	{"container->lan udp (n1)", "a1", "udp", "lan", harness.EchoPort},
	{"container->internet (n2)", "b1", "tcp", "inet", harness.EchoPort},
	{"container->lan (n3, no masq)", "m1", "tcp", "lan", harness.EchoPort},
	{"icc on (n1)", "a1", "tcp", "a2", 80},
	{"icc on udp (n1)", "a2", "udp", "a1", 81},
	{"icc off (n2)", "b1", "tcp", "b2", 80},
	{"between networks n1->n2", "a1", "tcp", "b1", 80},
	{"between networks bridge->n1", "web", "tcp", "a1", 80},
	{"between networks n3->n1", "m1", "tcp", "a2", 80},
	{"internal icc", "i1", "tcp", "i2", 80},
	{"internal->lan", "i1", "tcp", "lan", harness.EchoPort},
	{"n1->internal", "a1", "tcp", "i1", 80},
	{"hairpin: own published port via host address", "a1", "tcp", "host", 8082},
	{"other network's published port via host address", "web", "tcp", "host", 8082},
	{"same network's published port via host address", "a2", "tcp", "host", 8082},
	{"container->host address, unpublished", "a1", "tcp", "host", 8089},
	{"lan->internet (routed, not Docker's)", "lan", "tcp", "inet", harness.EchoPort},
}

// dnsProbes resolve a container's name through Docker's embedded DNS
// (from a container on a user-defined network) and connect to it.
var dnsProbes = []struct{ name, from, target string }{
	{"dns a1->a2 (n1)", "a1", "a2:80"},
	{"dns b2->b1 (n2, icc off)", "b2", "b1:80"},
	{"dns i2->i1 (internal)", "i2", "i1:80"},
	{"dns web->a1 (default bridge: no embedded DNS)", "web", "a1:80"},
}

// env resolves probe names on one side.
type env struct {
	s    *Side
	nss  map[string]*harness.NS
	addr map[string]netip.Addr
}

func newEnv(t *testing.T, ctx context.Context, s *Side) (*env, error) {
	e := &env{s: s, nss: map[string]*harness.NS{"lan": s.Topo.LAN, "host": s.Topo.Host, "inet": s.Topo.Internet},
		addr: map[string]netip.Addr{"lan": harness.LANAddr4, "inet": harness.InternetAddr4, "host": harness.LANHostAddr4,
			"lo": netip.MustParseAddr("127.0.0.1")}}
	for _, c := range twinContainers {
		if pid, err := s.D.Pid(ctx, c.Name); err != nil || pid == 0 {
			continue // removed or stopped by the lifecycle: its probes are skipped
		}
		ns, err := s.ContainerNS(t, ctx, c.Name)
		if err != nil {
			return nil, err
		}
		net := c.Network
		if net == "" {
			net = "bridge"
		}
		a, err := s.D.IP(ctx, c.Name, net)
		if err != nil {
			return nil, err
		}
		e.nss[c.Name], e.addr[c.Name] = ns, a
	}
	// The LAN reaches container subnets and the Internet through Host,
	// as a neighbour that routes through the Docker host would.
	for _, p := range []string{"172.16.0.0/12", harness.WANPrefix4.String()} {
		if err := s.Topo.LAN.AddRoute(ctx, netip.MustParsePrefix(p), harness.LANHostAddr4); err != nil {
			return nil, err
		}
	}
	// The Internet routes the LAN back through Host: routed traffic that
	// is not Docker's then depends on the FORWARD policy alone.
	if err := s.Topo.Internet.AddRoute(ctx, harness.LANPrefix4, harness.WANHostAddr4); err != nil {
		return nil, err
	}
	return e, nil
}

// run sends the matrix and the DNS probes on one side.
func (e *env) run(ctx context.Context) (map[string]string, error) {
	var probes []harness.Probe
	for _, p := range twinProbes {
		from, ok := e.nss[p.from]
		to, ok2 := e.addr[p.to]
		if !ok || !ok2 {
			continue // a container that is gone
		}
		probes = append(probes, harness.Probe{Name: p.name, From: from, Kind: p.proto, To: netip.AddrPortFrom(to, p.port)})
	}
	res := harness.RunMatrix(ctx, probes)
	out := map[string]string{}
	for k, r := range res {
		out[k] = r.String()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range dnsProbes {
		if _, ok := e.nss[d.from]; !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := e.s.D.Exec(ctx, d.from, "/bin/echod", "dial", "tcp", d.target)
			r := "ok from " + strings.TrimSpace(got)
			if err != nil {
				r = "failed: " + dnsError(err)
			}
			mu.Lock()
			out[d.name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, nil
}

// dnsError shortens echod's error to its kind.
func dnsError(err error) string {
	s := err.Error()
	for _, k := range []string{"no such host", "i/o timeout", "connection refused", "server misbehaving", "network is unreachable"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	return s
}

// table renders the results of the sides as aligned rows, and returns
// the names of the probes that differ.
func table(names []string, res map[string]map[string]string, order []string) (string, []string) {
	var b strings.Builder
	var diffs []string
	fmt.Fprintf(&b, "%-52s | %-28s | %-28s |\n", "probe", order[0], order[1])
	for _, n := range names {
		a, c := res[order[0]][n], res[order[1]][n]
		if a == "" && c == "" {
			a, c = "- (container removed)", "- (container removed)"
		}
		mark := ""
		if a != c {
			mark = " DIFF"
			diffs = append(diffs, n)
		}
		fmt.Fprintf(&b, "%-52s | %-28s | %-28s |%s\n", n, a, c, mark)
	}
	return b.String(), diffs
}

// probeNames lists every probe name, matrix first.
func probeNames() []string {
	var out []string
	for _, p := range twinProbes {
		out = append(out, p.name)
	}
	var dns []string
	for _, d := range dnsProbes {
		dns = append(dns, d.name)
	}
	sort.Strings(dns)
	return append(out, dns...)
}
