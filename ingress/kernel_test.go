package ingress

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

func nftIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// kernel is a scratch namespace initialized with the daemon objects.
type kernel struct {
	ns string
	c  *nft.Conn
	d  chains.DaemonConfig
}

func newKernel(t *testing.T, d chains.DaemonConfig) *kernel {
	t.Helper()
	ns := harness.Scratch(t).Name
	c, err := nft.Open(context.Background(), ns)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	tx := &nft.Tx{}
	chains.Init(tx, d)
	portmap.Init(tx, d)
	require.NoError(t, c.Apply(context.Background(), tx))
	return &kernel{ns: ns, c: c, d: d}
}

func (k *kernel) publish(t *testing.T, p Port, seq int64) (Change, error) {
	t.Helper()
	np, err := Normalize(k.d, p)
	if err != nil {
		return Change{}, err
	}
	tx := &nft.Tx{}
	out, err := Publish(context.Background(), k.c, tx, np, seq)
	if err != nil {
		return out, err
	}
	return out, k.c.Apply(context.Background(), tx)
}

func (k *kernel) unpublish(t *testing.T, p Port) error {
	t.Helper()
	np, err := NormalizeUnpublish(k.d, p)
	if err != nil {
		return err
	}
	tx := &nft.Tx{}
	if _, err := Unpublish(context.Background(), k.c, tx, k.d, np); err != nil {
		return err
	}
	return k.c.Apply(context.Background(), tx)
}

func tcp(port uint16, target string) Port {
	return Port{Proto: portmap.TCP, Port: port, Target: netip.MustParseAddr(target)}
}

// TestKernelObjects publishes ingress ports in both families of a scratch
// namespace, checks how nft prints the objects and where the jumps went,
// and that removing the last reference restores the ruleset exactly.
func TestKernelObjects(t *testing.T) {
	k := newKernel(t, chains.DaemonConfig{UserlandProxy: true, IPv6: true})
	ctx := context.Background()
	before := nftIn(t, k.ns, "-s", "list", "ruleset")

	udp := Port{GwBridge: "gw2", Proto: portmap.UDP, Port: 53, Target: netip.MustParseAddr("172.19.0.2")}
	for i, tc := range []struct {
		p          Port
		refs       int
		newGateway bool
	}{
		{tcp(8080, "172.18.0.2"), 1, true},
		{tcp(8080, "172.18.0.2"), 2, false},
		{udp, 1, true},
		{tcp(8080, "fd00:18::2"), 1, true}, // another family
	} {
		ch, err := k.publish(t, tc.p, int64(100+i))
		require.NoError(t, err, tc.p)
		require.Equal(t, tc.refs, ch.Refs, tc.p)
		require.Equal(t, tc.newGateway, ch.NewGateway, tc.p)
	}
	rs := nftIn(t, k.ns, "list", "ruleset")

	for _, want := range []string{
		`fib daddr type local counter packets 0 bytes 0 jump nat-DOCKER-INGRESS comment "DOCKER-INGRESS"`,
		`counter packets 0 bytes 0 dnat ip to meta l4proto . th dport map @ingress-dnat comment "INGRESS DNAT"`,
		`ip6 saddr != fe80::/10 counter packets 0 bytes 0 dnat ip6 to meta l4proto . th dport map @ingress-dnat comment "INGRESS DNAT"`,
		`meta l4proto . th dport @ingress-ports counter packets 0 bytes 0 accept comment "INGRESS PORT"`,
		`ct state established,related meta l4proto . th sport @ingress-replies counter packets 0 bytes 0 accept comment "INGRESS RELATED,ESTABLISHED"`,
		`fib saddr type local oifname @ingress-gateways counter packets 0 bytes 0 masquerade comment "INGRESS MASQUERADE"`,
		`tcp . 8080 counter packets 0 bytes 0 comment "dnft1;gw=docker_gwbridge;n=2;q=2s" : 172.18.0.2 . 8080`,
		`udp . 53 counter packets 0 bytes 0 comment "dnft1;gw=gw2;n=1;q=2u" : 172.19.0.2 . 53`,
		`tcp . 8080 counter packets 0 bytes 0 comment "dnft1;gw=docker_gwbridge;n=1;q=2v" : fd00:18::2 . 8080`,
		`"docker_gwbridge" comment "dnft1;n=1;c=2s;i=2s"`,
		`"gw2" comment "dnft1;n=1;c=2u;i=2s"`,
	} {
		require.Contains(t, rs, want)
	}

	// Positions: the jumps run before DOCKER's, and in forward right after
	// DOCKER-USER; the masquerade first in postrouting.
	for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
		for _, c := range []struct {
			chain string
			want  []string
		}{
			{chains.NATPrerouting, []string{"DOCKER-INGRESS", "DOCKER"}},
			{chains.NATOutput, []string{"DOCKER-INGRESS", "DOCKER"}},
			{chains.FilterForward, []string{"DOCKER-USER", "DOCKER-INGRESS", "DOCKER-ISOLATION", "DOCKER", "FORWARD"}},
			{chains.NATPostrouting, []string{"MASQUERADE", "MASQUERADE FROM HOST", "HAIRPIN MASQUERADE", "INGRESS MASQUERADE"}},
		} {
			cs, ok, err := k.c.ReadChain(ctx, f, c.chain)
			require.NoError(t, err)
			require.True(t, ok)
			var got []string
			for _, r := range cs.Rules {
				got = append(got, r.Comment)
			}
			require.Equal(t, c.want, got, "%s %s", f, c.chain)
		}
	}

	d := k.d
	ps, err := List(ctx, k.c, d)
	require.NoError(t, err)
	require.Len(t, ps, 3)
	require.Equal(t, Published{Port: Port{GwBridge: DefaultGateway, Proto: portmap.TCP, Port: 8080, Target: netip.MustParseAddr("172.18.0.2")}, Refs: 2, Seq: 100}, ps[0])
	require.Equal(t, 1, ps[1].Refs)
	require.Equal(t, "gw2", ps[1].GwBridge)
	require.Equal(t, netip.MustParseAddr("fd00:18::2"), ps[2].Target)

	// Unpublish 8080/tcp without a target: one reference in each family.
	// IPv6 had one: its objects go; IPv4 keeps the port with one reference.
	require.NoError(t, k.unpublish(t, Port{Proto: portmap.TCP, Port: 8080}))
	rs = nftIn(t, k.ns, "list", "table", "ip6", "dnft")
	require.NotContains(t, rs, "INGRESS")
	require.NotContains(t, rs, "ingress")
	rs = nftIn(t, k.ns, "list", "map", "ip", "dnft", MapDNAT)
	require.Contains(t, rs, `comment "dnft1;gw=docker_gwbridge;n=1;q=2s" : 172.18.0.2 . 8080`)

	require.NoError(t, k.unpublish(t, Port{Proto: portmap.UDP, Port: 53, GwBridge: "gw2"}))
	rs = nftIn(t, k.ns, "list", "set", "ip", "dnft", SetGateways)
	require.NotContains(t, rs, "gw2")
	require.NoError(t, k.unpublish(t, tcp(8080, "172.18.0.2")))
	require.Equal(t, before, nftIn(t, k.ns, "-s", "list", "ruleset"), "the last unpublish removes everything ingress added")
}

// TestKernelRefused: conflicts and unknown ports are refused with a
// FieldError and queue nothing.
func TestKernelRefused(t *testing.T) {
	k := newKernel(t, chains.DaemonConfig{UserlandProxy: true})
	_, err := k.publish(t, tcp(8080, "172.18.0.2"), 1)
	require.NoError(t, err)
	before := nftIn(t, k.ns, "-s", "list", "ruleset")
	for _, tc := range []struct {
		name  string
		op    func() error
		field string
	}{
		{"other target", func() error { _, err := k.publish(t, tcp(8080, "172.18.0.3"), 2); return err }, "port"},
		{"other gateway", func() error {
			p := tcp(8080, "172.18.0.2")
			p.GwBridge = "gw2"
			_, err := k.publish(t, p, 2)
			return err
		}, "port"},
		{"not published", func() error { return k.unpublish(t, Port{Proto: portmap.TCP, Port: 8081}) }, "port"},
		{"other proto", func() error { return k.unpublish(t, Port{Proto: portmap.UDP, Port: 8080}) }, "port"},
		{"wrong target", func() error { return k.unpublish(t, tcp(8080, "172.18.0.9")) }, "target"},
		{"wrong gateway", func() error { return k.unpublish(t, Port{GwBridge: "gw2", Proto: portmap.TCP, Port: 8080}) }, "bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field, err.Error())
		})
	}
	require.Equal(t, before, nftIn(t, k.ns, "-s", "list", "ruleset"))

	// Container bindings on the same host port and proto are refused,
	// whatever their host address; another proto is fine.
	ctx := context.Background()
	for _, tc := range []struct {
		b    portmap.Binding
		want bool
	}{
		{portmap.Binding{Proto: portmap.TCP, HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 8080}, true},
		{portmap.Binding{Proto: portmap.TCP, HostIP: netip.IPv6Unspecified(), HostPort: 8080}, true},
		{portmap.Binding{Proto: portmap.UDP, HostIP: netip.IPv4Unspecified(), HostPort: 8080}, false},
		{portmap.Binding{Proto: portmap.TCP, HostIP: netip.IPv4Unspecified(), HostPort: 8081}, false},
	} {
		err := CheckBindings(ctx, k.c, k.d, []portmap.Binding{tc.b})
		held, herr := Held(ctx, k.c, k.d, tc.b.Proto, tc.b.HostPort)
		require.NoError(t, herr)
		require.Equal(t, tc.want, held != nil, tc.b)
		if !tc.want {
			require.NoError(t, err, tc.b)
			continue
		}
		var fe *FieldError
		require.ErrorAs(t, err, &fe, tc.b)
		require.Equal(t, "binding", fe.Field)
		require.Contains(t, fe.Reason, "8080/tcp->172.18.0.2 (docker_gwbridge)")
	}
}
