package nft

import (
	"context"
	"testing"

	"github.com/dnft/dnft/test/harness"
)

// BenchmarkRoundTrip measures one request answered by the kernel on the
// raw socket: the generation and the conntrack entry count.
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, harness.Scratch(b).Path())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("generation", func(b *testing.B) {
		for range b.N {
			if _, err := c.Generation(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("conntrack-count", func(b *testing.B) {
		for range b.N {
			if _, err := c.ConntrackCount(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
