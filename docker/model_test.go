package docker

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/dnft/dnft"
)

func TestNetworkConfig(t *testing.T) {
	def := DefaultOptions()
	noMasq := def
	noMasq.IPMasq = false
	v6 := def
	v6.IPv6 = true
	ipam := func(subnets ...string) network.IPAM {
		var c []network.IPAMConfig
		for _, s := range subnets {
			c = append(c, network.IPAMConfig{Subnet: s})
		}
		return network.IPAM{Config: c}
	}
	for _, tc := range []struct {
		name string
		n    network.Inspect
		opt  Options
		want dnft.NetworkConfig
		err  string
	}{
		{"default bridge takes --ip-masq, not what inspect says", network.Inspect{Name: "bridge", ID: "0123456789abcdef", Options: map[string]string{
			optDefault: "true", optBridgeName: "docker0", optMasquerade: "false", optICC: "true", optHostBinding: "0.0.0.0"},
			IPAM: ipam("172.17.0.0/16")}, def,
			dnft.NetworkConfig{Name: "bridge", Bridge: "docker0", Subnet4: netip.MustParsePrefix("172.17.0.0/16"), ICC: true, Masquerade: true}, ""},
		{"default bridge with --ip-masq=false", network.Inspect{Name: "bridge", ID: "0123456789abcdef", Options: map[string]string{
			optDefault: "true", optBridgeName: "docker0"}, IPAM: ipam("172.17.0.0/16")}, noMasq,
			dnft.NetworkConfig{Name: "bridge", Bridge: "docker0", Subnet4: netip.MustParsePrefix("172.17.0.0/16"), ICC: true}, ""},
		{"user network: br- and 12 characters of the ID, defaults on", network.Inspect{Name: "n1", ID: "abcdef0123456789abcdef",
			IPAM: ipam("172.20.0.0/16")}, noMasq,
			dnft.NetworkConfig{Name: "n1", Bridge: "br-abcdef012345", Subnet4: netip.MustParsePrefix("172.20.0.0/16"), ICC: true, Masquerade: true}, ""},
		{"user network options", network.Inspect{Name: "n2", ID: "abcdef0123456789abcdef", Internal: true, Options: map[string]string{
			optBridgeName: "mybr", optICC: "false", optMasquerade: "false", optHostBinding: "127.0.0.1", optHostIPv4: "192.0.2.9"},
			IPAM: ipam("172.21.0.0/16")}, def,
			dnft.NetworkConfig{Name: "n2", Bridge: "mybr", Subnet4: netip.MustParsePrefix("172.21.0.0/16"), Internal: true,
				HostBindingIPv4: netip.MustParseAddr("127.0.0.1"), HostIPv4: netip.MustParseAddr("192.0.2.9")}, ""},
		{"IPv6 subnet only with --ipv6 and EnableIPv6", network.Inspect{Name: "n6", ID: "abcdef0123456789abcdef", EnableIPv6: true,
			IPAM: ipam("fd00:1::/64", "172.22.0.0/16")}, v6,
			dnft.NetworkConfig{Name: "n6", Bridge: "br-abcdef012345", Subnet4: netip.MustParsePrefix("172.22.0.0/16"),
				Subnet6: netip.MustParsePrefix("fd00:1::/64"), ICC: true, Masquerade: true}, ""},
		{"IPv6 subnet ignored without --ipv6", network.Inspect{Name: "n6", ID: "abcdef0123456789abcdef", EnableIPv6: true,
			IPAM: ipam("fd00:1::/64", "172.22.0.0/16")}, def,
			dnft.NetworkConfig{Name: "n6", Bridge: "br-abcdef012345", Subnet4: netip.MustParsePrefix("172.22.0.0/16"), ICC: true, Masquerade: true}, ""},
		{"no IPv4 subnet", network.Inspect{Name: "x", ID: "abcdef0123456789abcdef", IPAM: ipam("fd00:1::/64")}, def, dnft.NetworkConfig{}, "no IPv4 subnet"},
		{"bad option", network.Inspect{Name: "x", ID: "abcdef0123456789abcdef", Options: map[string]string{optICC: "maybe"}, IPAM: ipam("10.0.0.0/8")}, def, dnft.NetworkConfig{}, "enable_icc"},
		{"bridge name too long", network.Inspect{Name: "x", ID: "abcdef0123456789abcdef", Options: map[string]string{optBridgeName: "a-very-long-bridge-name"}, IPAM: ipam("10.0.0.0/8")}, def, dnft.NetworkConfig{}, "15 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.n.Created = time.Unix(1, 0)
			got, err := networkConfig(tc.n, tc.opt)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got.config != tc.want {
				t.Fatalf("got %+v, %v\nwant %+v", got.config, err, tc.want)
			}
		})
	}
}

// ctr builds an inspect response with endpoints (network name, network
// ID, IPv4, gateway, IPv6 gateway, priority) and ports.
func ctr(ports nat.PortMap, eps ...network.EndpointSettings) container.InspectResponse {
	nets := map[string]*network.EndpointSettings{}
	for _, e := range eps {
		nets[e.NetworkID] = &e
	}
	ns := &container.NetworkSettings{Networks: nets}
	ns.Ports = ports
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{Name: "/c", State: &container.State{Running: true, Pid: 1}},
		NetworkSettings:   ns,
	}
}

func TestGatewayEndpoint(t *testing.T) {
	ep := func(name, gw, gw6 string, prio int) network.EndpointSettings {
		return network.EndpointSettings{NetworkID: name, Gateway: gw, IPv6Gateway: gw6, GwPriority: prio}
	}
	for _, tc := range []struct {
		name string
		c    container.InspectResponse
		want string
	}{
		{"one network", ctr(nil, ep("n1", "172.20.0.1", "", 0)), "n1"},
		{"internal (no gateway) never", ctr(nil, ep("aint", "", "", 0), ep("zz", "172.20.0.1", "", 0)), "zz"},
		{"by name", ctr(nil, ep("n2", "172.21.0.1", "", 0), ep("n1", "172.20.0.1", "", 0)), "n1"},
		{"dual stack first", ctr(nil, ep("n1", "172.20.0.1", "", 0), ep("n2", "172.21.0.1", "fd00::1", 0)), "n2"},
		{"priority", ctr(nil, ep("n1", "172.20.0.1", "", 0), ep("n2", "172.21.0.1", "", 10)), "n2"},
		{"none", ctr(nil, ep("aint", "", "", 0)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := gatewayEndpoint(tc.c)
			if ok != (tc.want != "") || ok && got.network != tc.want {
				t.Fatalf("got %q (%v), want %q", got.network, ok, tc.want)
			}
		})
	}
}

func TestContainerBindings(t *testing.T) {
	nets := map[string]bridgeNet{
		"id1": {config: dnft.NetworkConfig{Name: "n1", Subnet4: netip.MustParsePrefix("172.20.0.0/16"), Subnet6: netip.MustParsePrefix("fd00:1::/64")}},
		"idi": {config: dnft.NetworkConfig{Name: "ni", Internal: true}},
	}
	ports := nat.PortMap{
		"80/tcp":  {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "::", HostPort: "8080"}},
		"81/udp":  {{HostIP: "127.0.0.1", HostPort: "9090"}},
		"82/tcp":  nil, // exposed, not published
		"83/sctp": {{HostIP: "", HostPort: "8083"}},
	}
	c := ctr(ports, network.EndpointSettings{NetworkID: "id1", Gateway: "172.20.0.1", IPAddress: "172.20.0.5", GlobalIPv6Address: "fd00:1::5"})
	c.NetworkSettings.Networks = map[string]*network.EndpointSettings{"n1": c.NetworkSettings.Networks["id1"]}
	b := func(proto dnft.Proto, host string, hp uint16, ctr string, cp uint16) dnft.Binding {
		return dnft.Binding{Proto: proto, HostIP: netip.MustParseAddr(host), HostPort: hp, ContainerIP: netip.MustParseAddr(ctr), ContainerPort: cp}
	}
	// in the order dockerd programs them: the port of the larger host port first
	v4 := []dnft.Binding{b(dnft.UDP, "127.0.0.1", 9090, "172.20.0.5", 81), b(dnft.SCTP, "0.0.0.0", 8083, "172.20.0.5", 83), b(dnft.TCP, "0.0.0.0", 8080, "172.20.0.5", 80)}
	opt := DefaultOptions()
	got, ok := containerBindings(c, nets, opt)
	if !ok || got.network != "n1" || !equalBindings(got.bindings, v4) || len(got.skipped) != 0 {
		t.Fatalf("IPv4 only: %+v", got)
	}
	opt.IPv6 = true
	got, _ = containerBindings(c, nets, opt)
	want6 := append(slices.Clone(v4), b(dnft.TCP, "::", 8080, "fd00:1::5", 80))
	if !equalBindings(got.bindings, want6) {
		t.Fatalf("with IPv6: %v, want %v", got.bindings, want6)
	}
	c.NetworkSettings.Networks["n1"].NetworkID = "unknown"
	if _, ok := containerBindings(c, nets, opt); ok {
		t.Fatal("bindings on a network that is not a followed bridge")
	}
}

func equalBindings(a, b []dnft.Binding) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLayoutOf(t *testing.T) {
	for v, want := range map[string]Layout{
		"20.10.24+dfsg1": LayoutStages, "27.5.1": LayoutStages, "17.06.2-ce": LayoutStages,
		"17.03.1-ce": LayoutClassic, "28.0.0": LayoutClassic, "29.1.2": LayoutClassic, "dev": LayoutClassic,
	} {
		if got := LayoutOf(v); got != want {
			t.Errorf("LayoutOf(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestResolverPorts(t *testing.T) {
	dir := t.TempDir()
	net := filepath.Join(dir, "42", "net")
	if err := os.MkdirAll(net, 0o755); err != nil {
		t.Fatal(err)
	}
	const head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(net, name), []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A connected UDP socket of the container, then the resolver's.
	write("udp", " 4271: 020012AC:A68A 35FFFF0A:0035 01 00000000:00000000 00:00000000 00000000     0        0 223045 2\n"+
		" 4800: 0B00007F:E89B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 221679 2\n")
	write("tcp", "   0: 0B00007F:8275 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 221680 1\n"+
		"   1: 0B00007F:8276 0100007F:1234 01 00000000:00000000 00:00000000 00000000     0        0 221681 1\n")
	r, err := ResolverPorts(dir, 42)
	if err != nil || r.UDPPort != 59547 || r.TCPPort != 33397 {
		t.Fatalf("got %+v, %v; want udp 59547 tcp 33397", r, err)
	}
	write("tcp", "")
	if _, err := ResolverPorts(dir, 42); err == nil {
		t.Fatal("no TCP listener, no error")
	}
}

// TestDropInvalid keeps every binding dnft accepts when one conflicts.
func TestDropInvalid(t *testing.T) {
	f := &Follower{opt: DefaultOptions()}
	d := f.Daemon()
	n := dnft.Network{NetworkConfig: dnft.NetworkConfig{Name: "n1", Bridge: "br-1", Subnet4: netip.MustParsePrefix("172.20.0.0/16"), ICC: true, Masquerade: true}}
	b := func(hp uint16, ip string) dnft.Published {
		return dnft.Published{Network: "n1", Binding: dnft.Binding{Proto: dnft.TCP, HostIP: netip.IPv4Unspecified(), HostPort: hp,
			ContainerIP: netip.MustParseAddr(ip), ContainerPort: 80}}
	}
	s := dnft.State{Daemon: &d, Networks: []dnft.Network{n}, Ports: []dnft.Published{b(8080, "172.20.0.2"), b(8080, "172.20.0.3"), b(8081, "172.20.0.4")}}
	got := f.dropInvalid(s)
	if len(got.Ports) != 2 || got.Ports[0] != s.Ports[0] || got.Ports[1] != s.Ports[2] {
		t.Fatalf("got %v", got.Ports)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}
