package bench

import (
	"context"

	"github.com/dnft/dnft/test/harness"
)

// NewNS creates an empty namespace (lo up) with [harness.NewNS] and
// returns it with the function that deletes it. Benchmarks that need many
// short-lived namespaces use it instead of [harness.Scratch], whose
// namespaces live until the end of the benchmark.
func NewNS(ctx context.Context) (*harness.NS, func(), error) {
	ns, err := harness.NewNS(ctx, "bench")
	if err != nil {
		return nil, nil, err
	}
	return ns, func() { _ = ns.Remove() }, nil
}
