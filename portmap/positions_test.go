package portmap

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRemoveShared: iptables' -D of a binding's filter accept removes the
// topmost copy (the newest, -I) and of its hairpin the topmost (the
// oldest, -A); the binding whose copy went takes the removed one's place.
func TestRemoveShared(t *testing.T) {
	a := pub("a", 1, "8001->172.18.0.2:80/tcp")
	b := pub("a", 2, "8002->172.18.0.2:80/tcp")
	c := pub("a", 3, "8003->172.18.0.2:80/tcp")
	moved := func(p Published, f, h int64) Published { p.FilterSeq, p.HairpinSeq = f, h; return p }
	for _, tc := range []struct {
		name    string
		members []Published
		gone    []Published
		want    []Published
	}{
		{"newest", []Published{a, b, c}, []Published{c}, []Published{moved(a, 0, 3), b}},
		{"oldest", []Published{a, b, c}, []Published{a}, []Published{b, moved(c, 1, 0)}},
		{"middle", []Published{a, b, c}, []Published{b}, []Published{moved(a, 0, 2), moved(c, 2, 0)}},
		{"middle then oldest", []Published{a, b, c}, []Published{b, a}, []Published{moved(c, 1, 0)}},
		{"twice moved", []Published{b, moved(c, 1, 0)}, []Published{c}, []Published{moved(b, 1, 3)}},
		{"moved stays", []Published{moved(a, 0, 3), b}, []Published{b}, []Published{moved(a, 0, 3)}},
		{"nothing", []Published{moved(b, 1, 3)}, nil, []Published{moved(b, 1, 3)}},
		{"all", []Published{a, b, c}, []Published{a, b, c}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gone []Binding
			for _, g := range tc.gone {
				gone = append(gone, g.Binding)
			}
			got := removeShared(tc.members, gone)
			if len(tc.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPositionsRecord(t *testing.T) {
	for _, tc := range []struct{ f, h int64 }{{5, 0}, {0, 7}, {1 << 62, 1<<63 - 1}} {
		f, h, err := parsePositions(positionsRecord(tc.f, tc.h))
		require.NoError(t, err)
		require.Equal(t, tc, struct{ f, h int64 }{f, h})
	}
	for _, bad := range []string{"", "dnft1", "dnft2;f=1", "dnft1;f=0", "dnft1;f=1;f=2", "dnft1;x=1", "dnft1;f=-1", "dnft1;f=1;h=2;h=3"} {
		_, _, err := parsePositions(bad)
		require.Error(t, err, bad)
	}
	require.LessOrEqual(t, len(positionsRecord(1<<63-1, 1<<63-1)), 128)
	require.True(t, strings.HasPrefix(positionsRecord(1, 2), recordVersion+";"))
}
