package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"

	"github.com/dnft/dnft/test/harness"
)

// NewNS creates an empty namespace (lo up) named "dnft-bench-<hex>" and
// returns it with the function that deletes it. Benchmarks that need many
// short-lived namespaces use it instead of [harness.Scratch], whose
// namespaces live until the end of the benchmark.
func NewNS(ctx context.Context) (*harness.NS, func(), error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, nil, err
	}
	name := harness.NamePrefix + "bench-" + hex.EncodeToString(rnd[:])
	if err := ipCmd(ctx, "netns", "add", name); err != nil {
		return nil, nil, err
	}
	del := func() { _ = ipCmd(context.Background(), "netns", "del", name) }
	if err := ipCmd(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		del()
		return nil, nil, err
	}
	return &harness.NS{Name: name}, del, nil
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
