package ingress

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	v4 := chains.DaemonConfig{UserlandProxy: true}
	v6 := chains.DaemonConfig{UserlandProxy: true, IPv6: true}
	ok := Port{Proto: portmap.TCP, Port: 8080, Target: netip.MustParseAddr("172.18.0.2")}
	with := func(f func(*Port)) Port { p := ok; f(&p); return p }
	for _, tc := range []struct {
		name  string
		d     chains.DaemonConfig
		p     Port
		field string // "" = valid
		want  Port
	}{
		{"default gateway", v4, ok, "", with(func(p *Port) { p.GwBridge = DefaultGateway })},
		{"mapped target", v4, with(func(p *Port) { p.Target = netip.MustParseAddr("::ffff:172.18.0.2") }), "",
			with(func(p *Port) { p.GwBridge = DefaultGateway })},
		{"v6 target", v6, with(func(p *Port) { p.Target = netip.MustParseAddr("fd00::2"); p.GwBridge = "gw" }), "",
			with(func(p *Port) { p.Target = netip.MustParseAddr("fd00::2"); p.GwBridge = "gw" })},
		{"v6 without ipv6", v4, with(func(p *Port) { p.Target = netip.MustParseAddr("fd00::2") }), "target", Port{}},
		{"port 0", v4, with(func(p *Port) { p.Port = 0 }), "port", Port{}},
		{"bad proto", v4, with(func(p *Port) { p.Proto = "icmp" }), "proto", Port{}},
		{"no proto", v4, with(func(p *Port) { p.Proto = "" }), "proto", Port{}},
		{"long bridge", v4, with(func(p *Port) { p.GwBridge = "docker_gwbridge0" }), "bridge", Port{}},
		{"bad bridge", v4, with(func(p *Port) { p.GwBridge = "a/b" }), "bridge", Port{}},
		{"no target", v4, with(func(p *Port) { p.Target = netip.Addr{} }), "target", Port{}},
		{"unspecified target", v4, with(func(p *Port) { p.Target = netip.IPv4Unspecified() }), "target", Port{}},
		{"loopback target", v4, with(func(p *Port) { p.Target = netip.MustParseAddr("127.0.0.1") }), "target", Port{}},
		{"multicast target", v4, with(func(p *Port) { p.Target = netip.MustParseAddr("224.0.0.1") }), "target", Port{}},
		{"zoned target", v6, with(func(p *Port) { p.Target = netip.MustParseAddr("fe80::1%eth0") }), "target", Port{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalize(tc.d, tc.p)
			if tc.field == "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field, err.Error())
		})
	}
}

func TestNormalizeUnpublish(t *testing.T) {
	d := chains.DaemonConfig{}
	for _, tc := range []struct {
		p     Port
		field string
	}{
		{Port{Proto: portmap.UDP, Port: 53}, ""},
		{Port{Proto: portmap.UDP, Port: 53, GwBridge: "gw", Target: netip.MustParseAddr("10.0.0.2")}, ""},
		{Port{Proto: portmap.UDP}, "port"},
		{Port{Port: 53}, "proto"},
		{Port{Proto: portmap.UDP, Port: 53, GwBridge: "0123456789abcdef"}, "bridge"},
		{Port{Proto: portmap.UDP, Port: 53, Target: netip.MustParseAddr("fd00::2")}, "target"},
	} {
		_, err := NormalizeUnpublish(d, tc.p)
		if tc.field == "" {
			require.NoError(t, err, tc.p)
			continue
		}
		var fe *FieldError
		require.ErrorAs(t, err, &fe, tc.p)
		require.Equal(t, tc.field, fe.Field)
	}
}

func TestRecords(t *testing.T) {
	r := portRecord{gw: "docker_gwbridge", refs: 3, seq: 36*36 - 1}
	require.Equal(t, "dnft1;gw=docker_gwbridge;n=3;q=zz", r.String())
	got, err := parsePortRecord(r.String())
	require.NoError(t, err)
	require.Equal(t, r, got)
	require.LessOrEqual(t, len(portRecord{gw: "123456789012345", refs: 1 << 30, seq: 1<<63 - 1}.String()), 128)

	g, err := parseGatewayRecord(gatewayRecord(Gateway{Ports: 7, Created: 1<<62 + 5, Ingress: 3}))
	require.NoError(t, err)
	require.Equal(t, Gateway{Ports: 7, Created: 1<<62 + 5, Ingress: 3}, g)
	g, err = parseGatewayRecord(gatewayRecord(Gateway{Ports: 2}))
	require.NoError(t, err)
	require.Equal(t, Gateway{Ports: 2}, g)

	for _, bad := range []string{"", "dnft2;gw=a;n=1;q=1", "dnft1;n=1;q=1", "dnft1;gw=a;n=0;q=1", "dnft1;gw=a;n=1;q=?", "dnft1;gw=a;n=1;q"} {
		_, err := parsePortRecord(bad)
		require.Error(t, err, bad)
	}
	for _, bad := range []string{"dnft1", "dnft1;n=x", "x;n=1"} {
		_, err := parseGatewayRecord(bad)
		require.Error(t, err, bad)
	}
}

// fakeReader serves chains and sets from memory.
type fakeReader struct {
	chains map[string]nft.ChainState
	sets   map[string]nft.SetState
}

func (f fakeReader) ReadSet(_ context.Context, _ nft.Family, name string) (nft.SetState, bool, error) {
	s, ok := f.sets[name]
	return s, ok, nil
}

func (f fakeReader) ReadChain(_ context.Context, _ nft.Family, name string) (nft.ChainState, bool, error) {
	c, ok := f.chains[name]
	return c, ok, nil
}

func rules(comments ...string) nft.ChainState {
	var cs nft.ChainState
	for i, c := range comments {
		cs.Rules = append(cs.Rules, nft.RuleState{Handle: uint64(10 + i), Comment: c})
	}
	return cs
}

// TestPublishFirstNeedsAnchors: the first publication finds the rules its
// jumps go before, and refuses a table without them.
func TestPublishFirstNeedsAnchors(t *testing.T) {
	ctx := context.Background()
	p, err := Normalize(chains.DaemonConfig{}, Port{Proto: portmap.TCP, Port: 80, Target: netip.MustParseAddr("10.0.0.2")})
	require.NoError(t, err)
	good := map[string]nft.ChainState{
		chains.NATPrerouting:  rules("DOCKER"),
		chains.NATOutput:      rules("DOCKER"),
		chains.FilterForward:  rules("DOCKER-USER", "DOCKER-ISOLATION", "DOCKER", "FORWARD"),
		chains.NATPostrouting: rules("MASQUERADE"),
	}
	h, err := readHooks(ctx, fakeReader{chains: good}, nft.IPv4)
	require.NoError(t, err)
	require.Equal(t, hooks{prerouting: 10, output: 10, forward: 11}, h)

	tx := &nft.Tx{}
	_, err = Publish(ctx, fakeReader{chains: good}, tx, p, 1)
	require.NoError(t, err)
	require.Positive(t, tx.Len())

	bad := map[string]nft.ChainState{}
	for k, v := range good {
		bad[k] = v
	}
	bad[chains.FilterForward] = rules("DOCKER-USER", "DOCKER", "FORWARD")
	tx = &nft.Tx{}
	_, err = Publish(ctx, fakeReader{chains: bad}, tx, p, 1)
	require.True(t, errors.Is(err, errChanged), "%v", err)
	require.Zero(t, tx.Len())
}
