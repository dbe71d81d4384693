package ingress

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"github.com/stretchr/testify/require"
)

// getter is a Reader with an ElementGetter emulated by listing the set
// (as nft.Conn would do with one GETSETELEM request). It counts listings of
// the ingress-dnat map that do not go through GetElement.
type getter struct {
	*nft.Conn
	dnatListings int
}

func (g *getter) ReadSet(ctx context.Context, f nft.Family, name string) (nft.SetState, bool, error) {
	if name == MapDNAT {
		g.dnatListings++
	}
	return g.Conn.ReadSet(ctx, f, name)
}

func (g *getter) GetElement(ctx context.Context, s nft.Set, key []nft.Value) (nft.ElementState, bool, error) {
	st, ok, err := g.Conn.ReadSet(ctx, s.Family, s.Name)
	if err != nil || !ok {
		return nft.ElementState{}, false, err
	}
	for _, e := range st.Elements {
		v, err := nft.DecodeKey(s.Family, s.Key, e.Key)
		if err != nil {
			return e, false, err
		}
		if slices.Equal(v, key) {
			return e, true, nil
		}
	}
	return nft.ElementState{}, false, nil
}

// TestElementGetter: with an ElementGetter, publishing, counting,
// unpublishing and the container binding check get the one element they
// need instead of listing the ingress-dnat map, with the same results.
func TestElementGetter(t *testing.T) {
	k := newKernel(t, chains.DaemonConfig{UserlandProxy: true})
	ctx := context.Background()
	g := &getter{Conn: k.c}
	before := nftIn(t, k.ns, "-s", "list", "ruleset")
	apply := func(tx *nft.Tx) { require.NoError(t, k.c.Apply(ctx, tx)) }

	p, err := Normalize(k.d, tcp(8080, "172.18.0.2"))
	require.NoError(t, err)
	other := p
	other.Port = 8081
	for i, q := range []Port{p, other, p} {
		tx := &nft.Tx{}
		_, err := Publish(ctx, g, tx, q, int64(i+1))
		require.NoError(t, err)
		apply(tx)
	}
	tx := &nft.Tx{}
	_, err = Publish(ctx, g, tx, Port{GwBridge: DefaultGateway, Proto: portmap.TCP, Port: 8080, Target: netip.MustParseAddr("172.18.0.3")}, 9)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)

	ps, err := List(ctx, k.c, k.d)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	require.Equal(t, 2, ps[0].Refs)

	b := portmap.Binding{Proto: portmap.TCP, HostIP: netip.IPv4Unspecified(), HostPort: 8081}
	require.ErrorAs(t, CheckBindings(ctx, g, k.d, []portmap.Binding{b}), &fe)
	b.Proto = portmap.UDP
	require.NoError(t, CheckBindings(ctx, g, k.d, []portmap.Binding{b}))

	for _, q := range []Port{p, other, p} {
		tx := &nft.Tx{}
		_, err := Unpublish(ctx, g, tx, k.d, Port{Proto: q.Proto, Port: q.Port})
		require.NoError(t, err)
		apply(tx)
	}
	require.Equal(t, before, nftIn(t, k.ns, "-s", "list", "ruleset"))
	require.Zero(t, g.dnatListings, "the ingress-dnat map is never listed")
}
