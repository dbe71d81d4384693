package integration_test

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// crashRuns is the number of killed publications (DNFT_CRASH_RUNS
// overrides it).
func crashRuns(t *testing.T) int {
	if s := os.Getenv("DNFT_CRASH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		return n
	}
	return 200
}

// TestCrashSafety: a dnft process publishing 1,000 bindings in one batch
// is killed with SIGKILL at a random moment of its life; the namespace is
// always exactly as before the command or exactly as after it (`nft -s
// list ruleset` compared with both snapshots; the sequence numbers in
// element comments, which differ between two publications, are blanked).
func TestCrashSafety(t *testing.T) {
	ctx := testContext(t)
	ns := harness.Scratch(t)
	mustCLI(ctx, t, ns, "init", "--ip-forward")
	mustCLI(ctx, t, ns, "network", "create", "n", "--bridge", "br-n", "--subnet", "172.18.0.0/16")
	fw := openFirewall(ctx, t, ns)
	publish := []string{"--netns", ns.Path(), "port", "publish", "n", "172.18.0.2", "-p", "10000-10999:10000-10999"}
	specs := portSpecs(t, "10000-10999:10000-10999")
	list := func() string { return withoutSeqs(mustNft(ctx, t, ns, "-s", "list", "ruleset")) }
	undo := func() {
		bs, err := fw.UnpublishSpecs(ctx, "n", ip("172.18.0.2"), specs)
		require.NoError(t, err)
		require.Len(t, bs, 1000)
	}

	before := list()
	start := time.Now()
	out, err := exec.CommandContext(ctx, dnftBinary(t), publish...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	full := time.Since(start)
	after := list()
	require.NotEqual(t, before, after)
	undo()
	require.Equal(t, before, list())
	t.Logf("a full publication of 1,000 bindings takes %s; killing at random within %s", full.Round(time.Millisecond), (full * 11 / 10).Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(7, 7))
	var nBefore, nAfter int
	runs := crashRuns(t)
	for i := range runs {
		cmd := exec.CommandContext(ctx, dnftBinary(t), publish...)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(rng.Int64N(int64(full * 11 / 10))))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		switch got := list(); got {
		case before:
			nBefore++
		case after:
			nAfter++
			undo()
		default:
			require.Failf(t, "mixed state", "run %d: the ruleset is neither the one before nor the one after:\n%s", i, got)
		}
	}
	t.Logf("%d runs: %d left the state before, %d after, none in between", runs, nBefore, nAfter)
	require.Equal(t, runs, nBefore+nAfter)
	_ = context.Canceled
}
