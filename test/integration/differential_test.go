package integration_test

import (
	"testing"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// TestDifferential builds every scenario twice, programs one copy with dnft
// and the other with real iptables (the reference of CONTRACT.md §2), and
// requires every probe of the matrix to get the same outcome in both. It
// also checks the facts each scenario is about on the dnft side.
func TestDifferential(t *testing.T) {
	harness.RequireRoot(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ctx := testContext(t)
			dn, ref := harness.NewTwin(t, sc.spec())
			prepare(ctx, t, sc.scenario, dn)
			prepare(ctx, t, sc.scenario, ref)
			programDNFT(ctx, t, sc.scenario, dn)
			p := programReference(ctx, t, sc.scenario, ref)

			got := runMatrix(ctx, matrix(sc.scenario, dn))
			want := runMatrix(ctx, matrix(sc.scenario, ref))
			diffs := harness.DiffMatrix(got, want)
			if len(diffs) > 0 {
				out, _ := dn.Host.Run(ctx, "nft", "list", "ruleset")
				t.Logf("dnft matrix:\n%s\n\nnft ruleset:\n%s\niptables commands:\n%v", format(got), out, p.Commands())
			}
			require.Empty(t, diffs, "dnft (left) and iptables (right) differ")
			expect(t, got, sc.want)
		})
	}
}
