package compat

import (
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
	n.NetworksFallback = true
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
