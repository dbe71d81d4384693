package dnft_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/test/harness"
)

// TestProgramResolver sends DNS-port traffic to 127.0.0.11:53 in a
// namespace where "the resolver" (echo servers) listens on other ports:
// it arrives only once the rules are programmed, follows a port change,
// and the answer comes back from 127.0.0.11:53 (the client's connected
// socket accepts nothing else).
func TestProgramResolver(t *testing.T) {
	ns := harness.Scratch(t)
	ctx := context.Background()
	udp, tcp := ns.ServeUDP(t, 0), ns.ServeTCP(t, 0)
	dns := netip.MustParseAddrPort("127.0.0.11:53")
	if r := ns.UDP(ctx, dns); r.OK {
		t.Fatalf("udp to %s answered before the rules: %s", dns, r)
	}
	for i, want := range []bool{true, false} {
		changed, err := dnft.ProgramResolver(ctx, ns.Path(), dnft.Resolver{UDPPort: udp, TCPPort: tcp})
		if err != nil || changed != want {
			t.Fatalf("call %d: changed %v, err %v; want changed %v", i, changed, err, want)
		}
	}
	for _, r := range []harness.Result{ns.UDP(ctx, dns), ns.TCP(ctx, dns)} {
		if !r.OK {
			t.Fatalf("to %s: %s, want ok", dns, r)
		}
	}
	// The resolver moved (a restarted container): the rules follow.
	udp2 := ns.ServeUDP(t, 0)
	if changed, err := dnft.ProgramResolver(ctx, ns.Path(), dnft.Resolver{UDPPort: udp2, TCPPort: tcp}); err != nil || !changed {
		t.Fatalf("new port: changed %v, err %v", changed, err)
	}
	if r := ns.UDP(ctx, dns); !r.OK {
		t.Fatalf("udp after the move: %s", r)
	}
	hits := 0
	for _, h := range ns.Hits() {
		if h.Proto == "udp" && h.Port == udp2 {
			hits++
		}
	}
	if hits != 1 {
		t.Fatalf("new resolver port got %d datagrams, want 1", hits)
	}
}

// TestProgramResolverRefuses keeps the resolver out of the caller's
// namespace and out of a namespace where dnft keeps a firewall.
func TestProgramResolverRefuses(t *testing.T) {
	ns := harness.Scratch(t)
	ctx := context.Background()
	fw, err := dnft.Open(ctx, ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if err := ns.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		netns string
		r     dnft.Resolver
	}{
		{"", dnft.Resolver{UDPPort: 1, TCPPort: 2}},
		{ns.Path(), dnft.Resolver{UDPPort: 1, TCPPort: 2}},
		{ns.Path(), dnft.Resolver{UDPPort: 0, TCPPort: 2}},
		{ns.Path(), dnft.Resolver{Addr: netip.MustParseAddr("::1"), UDPPort: 1, TCPPort: 2}},
	} {
		_, err := dnft.ProgramResolver(ctx, tc.netns, tc.r)
		var fe *dnft.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("ProgramResolver(%q, %v) = %v, want a FieldError", tc.netns, tc.r, err)
		}
	}
	if _, err := fw.Networks(ctx); err != nil {
		t.Fatalf("firewall damaged: %v", err)
	}
}
