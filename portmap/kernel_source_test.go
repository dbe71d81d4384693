package portmap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/stretchr/testify/require"
)

// TestKernelBindingsMatchIndex programs random bindings (few ports, host
// addresses and container ports, so that they clash and share) through
// the index into a scratch namespace, then asks the same random requests
// of the index and of the kernel element by element (KernelBindings):
// every check, resolution and queued batch must be the same, refusals
// word for word. Each round also commits one change made through the
// kernel source, so that its own bookkeeping is what later rounds read.
func TestKernelBindingsMatchIndex(t *testing.T) {
	ctx := context.Background()
	c, err := nft.Open(ctx, testNS(t))
	require.NoError(t, err)
	defer c.Close()
	d := d6
	nets := []chains.Network{netA, netB}
	tx := &nft.Tx{}
	chains.Init(tx, d)
	Init(tx, d)
	for _, n := range nets {
		chains.CreateNetwork(tx, d, n)
	}
	require.NoError(t, c.Apply(ctx, tx))

	rng := rand.New(rand.NewPCG(1, 2))
	hosts := []string{"", "0.0.0.0", "127.0.0.1", "192.0.2.1", "::", "::1", "2001:db8::1"}
	random := func() (chains.Network, Binding) {
		n := nets[rng.IntN(len(nets))]
		b := Binding{Proto: []Proto{TCP, UDP}[rng.IntN(2)], HostPort: uint16(40000 + rng.IntN(8)), ContainerPort: uint16(80 + rng.IntN(3))}
		if h := hosts[rng.IntN(len(hosts))]; h != "" {
			b.HostIP = netip.MustParseAddr(h)
		}
		sub := n.Subnet4
		if b.HostIP.Is6() && n.Subnet6.IsValid() {
			sub = n.Subnet6
		}
		a := sub.Addr().As16()
		if sub.Addr().Is4() {
			a4 := sub.Addr().As4()
			a4[3] = byte(2 + rng.IntN(3))
			b.ContainerIP = netip.AddrFrom4(a4)
		} else {
			a[15] = byte(2 + rng.IntN(3))
			b.ContainerIP = netip.AddrFrom16(a)
		}
		return n, b
	}
	x := NewIndex(nil)
	seq := int64(1)
	publish := func(src Bindings, n chains.Network, bs []Binding) error {
		norm, err := src.CheckPublish(ctx, d, n, bs)
		if err != nil {
			return err
		}
		tx := &nft.Tx{}
		require.NoError(t, src.Publish(ctx, tx, d, n, norm, seq))
		require.NoError(t, c.Apply(ctx, tx))
		x.Add(n.Name, norm, seq)
		seq += int64(len(norm))
		return nil
	}
	for range 150 {
		n, b := random()
		_ = publish(x.Bindings(), n, []Binding{b}) // refusals are expected
	}
	require.Greater(t, x.Len(), 20)

	outcomes := map[string]int{} // "check ok", "check refused", ...
	same := func(what string, f func(Bindings) (any, error)) {
		t.Helper()
		got, gerr := f(KernelBindings(c, d))
		want, werr := f(x.Bindings())
		require.Equal(t, fmt.Sprint(werr), fmt.Sprint(gerr), what)
		require.Equal(t, want, got, what)
		kind, _, _ := strings.Cut(strings.SplitN(what, ": ", 2)[1], " ")
		if werr != nil {
			outcomes[kind+" refused"]++
		} else {
			outcomes[kind+" ok"]++
		}
	}
	for round := range 200 {
		n, b := random()
		same(fmt.Sprintf("round %d: check %s", round, b), func(s Bindings) (any, error) {
			norm, err := s.CheckPublish(ctx, d, n, []Binding{b})
			if err != nil {
				return nil, err
			}
			tx := &nft.Tx{}
			err = s.Publish(ctx, tx, d, n, norm, 7)
			return []any{norm, tx}, err
		})
		sp := Spec{Proto: b.Proto, HostIP: b.HostIP, HostPorts: PortRange{40000, 40009}, ContainerPorts: PortRange{b.ContainerPort, b.ContainerPort}}
		if rng.IntN(2) == 0 {
			sp.HostPorts = PortRange{}
		}
		same(fmt.Sprintf("round %d: resolve %s", round, sp), func(s Bindings) (any, error) {
			return s.Resolve(ctx, d, n, b.ContainerIP, []Spec{sp}, nil)
		})
		same(fmt.Sprintf("round %d: resolve unpublish %s", round, sp), func(s Bindings) (any, error) {
			return s.ResolveUnpublish(ctx, d, n, b.ContainerIP, []Spec{sp})
		})
		same(fmt.Sprintf("round %d: port holder %s", round, PortProto(b)), func(s Bindings) (any, error) {
			p, ok, err := s.PortHolder(ctx, d, b.Proto, b.HostPort)
			return []any{p, ok}, err
		})
		// Unpublish a random published binding, or probe one that is not.
		all := x.All()
		for len(all) < 10 {
			n, b := random()
			_ = publish(x.Bindings(), n, []Binding{b})
			all = x.All()
		}
		p := all[rng.IntN(len(all))]
		pn, _ := chains.Find(nets, p.Network)
		vn, victim := pn, []Binding{p.Binding}
		if rng.IntN(4) == 0 {
			vn, victim = n, []Binding{b}
		}
		same(fmt.Sprintf("round %d: unpublish %s", round, victim[0]), func(s Bindings) (any, error) {
			norm, err := s.CheckUnpublish(ctx, d, vn, victim)
			if err != nil {
				return nil, err
			}
			tx := &nft.Tx{}
			err = s.Unpublish(ctx, tx, d, vn, norm)
			return []any{norm, tx}, err
		})
		// One change through the kernel source, alternately a removal
		// and a publication, so that the bookkeeping it wrote is read.
		k := KernelBindings(c, d)
		if round%2 == 0 {
			norm, err := k.CheckUnpublish(ctx, d, pn, []Binding{p.Binding})
			require.NoError(t, err)
			tx := &nft.Tx{}
			require.NoError(t, k.Unpublish(ctx, tx, d, pn, norm))
			require.NoError(t, c.Apply(ctx, tx))
			x.Remove(pn.Name, norm)
		} else {
			_ = publish(k, n, []Binding{b})
		}
	}
	got, err := ReadBindings(ctx, c, d)
	require.NoError(t, err)
	require.Equal(t, x.All(), got, "the kernel holds what the index says")
	for _, k := range []string{"check ok", "check refused", "resolve ok", "resolve refused", "unpublish ok", "unpublish refused"} {
		require.Greater(t, outcomes[k], 5, "%s: %v", k, outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
}
