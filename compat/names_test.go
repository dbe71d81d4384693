package compat

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	n, err := LoadNames(
		write("hosts", "127.0.0.1 localhost # comment\n127.0.0.1 second\n::1 ip6-localhost localhost\nbad line\n172.17.0.0\tdocker0-net\nfe80::1%eth0 zoned\n"),
		write("networks", "default 0.0.0.0\nloopback 127.0.0.0\nshort 10\n"),
		write("services", "http 80/tcp www\nhttp-alt 80/tcp\ndomain 53/udp\nbroken\nx 99999/tcp\n"),
		write("protocols", "ip 0 IP\ngre 47 GRE\n"),
	)
	if err != nil {
		t.Fatal(err)
	}
	host := func(s string) string { h, _ := n.Host(netip.MustParseAddr(s)); return h }
	if host("127.0.0.1") != "localhost" || host("::1") != "ip6-localhost" || host("172.17.0.0") != "docker0-net" || host("127.0.0.0") != "" {
		t.Errorf("hosts lookups wrong")
	}
	if err := n.ReadNSSwitch(strings.NewReader("hosts: files dns\n")); err != nil {
		t.Fatal(err)
	}
	n.DNS = unreachableDNS{}
	if host("127.0.0.0") != "loopback" || host("0.0.0.10") != "short" || host("::") != "" {
		t.Errorf("networks fallback wrong: %q %q", host("127.0.0.0"), host("0.0.0.10"))
	}
	if s, _ := n.Service(80, "tcp"); s != "http" {
		t.Errorf("service 80/tcp = %q", s)
	}
	if _, ok := n.Service(80, "udp"); ok {
		t.Error("service 80/udp found")
	}
	if p, _ := n.Protocol(47); p != "gre" {
		t.Errorf("protocol 47 = %q", p)
	}
	if num, ok := n.ProtocolNumber("GRE"); !ok || num != 47 {
		t.Errorf("protocol GRE = %d %v", num, ok)
	}
	var nilNames *Names
	if _, ok := nilNames.Host(netip.MustParseAddr("127.0.0.1")); ok {
		t.Error("nil Names resolved")
	}
	if m, err := LoadNames(filepath.Join(dir, "missing"), "", "", ""); err != nil || m == nil {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadNames(dir, "", "", ""); err == nil || !strings.Contains(err.Error(), "names") {
		t.Errorf("directory as hosts file: %v", err)
	}
}

// unreachableDNS is a resolver whose servers cannot be reached.
type unreachableDNS struct{}

func (unreachableDNS) LookupPTR(context.Context, netip.Addr) (string, LookupStatus) {
	return "", TryAgain
}

// fakeDNS answers from a map; other addresses are NXDOMAIN.
type fakeDNS map[netip.Addr]string

func (f fakeDNS) LookupPTR(_ context.Context, a netip.Addr) (string, LookupStatus) {
	if n, ok := f[a]; ok {
		return n, Found
	}
	return "", NotFound
}

// TestHostLookupOrder: getnameinfo's answer follows nsswitch's hosts
// line; /etc/networks is asked only when the lookup failed, and only for
// IPv4.
func TestHostLookupOrder(t *testing.T) {
	lo, ten := netip.MustParseAddr("127.0.0.0"), netip.MustParseAddr("10.0.0.0")
	web := netip.MustParseAddr("192.0.2.5")
	for _, tc := range []struct {
		hosts string
		dns   PTRResolver
		want  map[netip.Addr]string // "" = numeric
	}{
		{"hosts: files", unreachableDNS{}, map[netip.Addr]string{lo: "", ten: "", web: "web"}},
		{"hosts: files dns", unreachableDNS{}, map[netip.Addr]string{lo: "loopback", ten: "tennet", web: "web"}},
		{"hosts: files dns", fakeDNS{ten: "ten.example"}, map[netip.Addr]string{lo: "", ten: "ten.example", web: "web"}},
		{"hosts: dns files", unreachableDNS{}, map[netip.Addr]string{lo: "", ten: "", web: "web"}},
		{"hosts: files [NOTFOUND=return] dns", unreachableDNS{}, map[netip.Addr]string{lo: "", ten: "", web: "web"}},
		{"hosts: files myhostname dns", unreachableDNS{}, map[netip.Addr]string{lo: "loopback", ten: "tennet", web: "web"}},
		{"hosts: files dns", nil, map[netip.Addr]string{lo: "", ten: "", web: "web"}},
	} {
		n := &Names{DNS: tc.dns}
		if err := n.ReadHosts(strings.NewReader("192.0.2.5 web\n")); err != nil {
			t.Fatal(err)
		}
		if err := n.ReadNetworks(strings.NewReader("loopback 127.0.0.0\ntennet 10.0.0.0\n")); err != nil {
			t.Fatal(err)
		}
		if err := n.ReadNSSwitch(strings.NewReader(tc.hosts + "\n")); err != nil {
			t.Fatal(err)
		}
		for a, want := range tc.want {
			if got, _ := n.Host(a); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.hosts, a, got, want)
			}
		}
		if got, ok := n.Host(netip.MustParseAddr("fd00::")); ok {
			t.Errorf("%s: IPv6 fell back to %q", tc.hosts, got)
		}
	}
}
