package nft

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGetElement(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	m := Set{Family: IPv6, Name: "m", Key: []Field{FieldL4Proto, FieldDport}, Data: DataAddrPort, Counter: true}
	s := Set{Family: IPv6, Name: "s", Key: []Field{FieldOIFName}}
	tx := &Tx{}
	tx.AddTable(IPv6)
	tx.AddSet(m)
	tx.AddSet(s)
	tx.AddElements(m, Element{Key: []Value{Proto(6), Port(8080)}, Target: netip.MustParseAddrPort("[fd00::2]:8080"), Comment: "hello"})
	tx.AddElements(s, Element{Key: []Value{Ifname("br0")}})
	require.NoError(t, c.Apply(ctx, tx))

	e, ok, err := c.GetElement(ctx, m, []Value{Proto(6), Port(8080)})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "hello", e.Comment)
	to, err := DecodeTarget(IPv6, e.Data)
	require.NoError(t, err)
	require.Equal(t, netip.MustParseAddrPort("[fd00::2]:8080"), to)
	v, err := DecodeKey(IPv6, m.Key, e.Key)
	require.NoError(t, err)
	require.Equal(t, uint16(8080), v[1].Port)

	_, ok, err = c.GetElement(ctx, m, []Value{Proto(17), Port(8080)})
	require.NoError(t, err)
	require.False(t, ok, "missing element")
	_, ok, err = c.GetElement(ctx, s, []Value{Ifname("br0")})
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = c.GetElement(ctx, Set{Family: IPv6, Name: "nope", Key: s.Key}, []Value{Ifname("br0")})
	require.NoError(t, err)
	require.False(t, ok, "missing set")
	_, ok, err = c.GetElement(ctx, Set{Family: IPv4, Name: "m", Key: m.Key}, []Value{Proto(6), Port(8080)})
	require.NoError(t, err)
	require.False(t, ok, "missing table")
	// The socket still works after errors.
	_, ok, err = c.GetElement(ctx, m, []Value{Proto(6), Port(8080)})
	require.NoError(t, err)
	require.True(t, ok)
}
