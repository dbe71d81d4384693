package integration_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// crashRuns is the number of publications killed at a random moment
// (DNFT_CRASH_RUNS overrides it; it must be positive).
func crashRuns(t *testing.T) int {
	if s := os.Getenv("DNFT_CRASH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		return n
	}
	return 100
}

// tracedRuns is the number of publications killed at each moment of
// their batch send.
const tracedRuns = 4

// tracedAttempts bounds the runs spent on landing a kill inside the
// batch's sendmsg.
const tracedAttempts = 20

// TestCrashSafety: a dnft process publishing 1,000 bindings in one batch
// is killed with SIGKILL; the namespace is always exactly as before the
// command or exactly as after it (`nft -s list ruleset` compared with
// both snapshots; the sequence numbers in element comments, which differ
// between two publications, are blanked). The kills land at the four
// moments that matter, found by tracing the process's system calls: as
// it starts the sendmsg(2) carrying its batch (must leave the state
// before), while the kernel processes that batch (either), as the kernel
// announces its commit (after), and when the call has returned but the
// answer is unread (after); and at random moments of the process's life.
// Kills inside the call are timed from the thread's own progress (its
// switches onto a CPU and its CPU time, not the wall clock, which a
// loaded machine stretches) and from the kernel's commit notification;
// at least one of each kind must land while the call is under way. Both
// outcomes must occur.
func TestCrashSafety(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := harness.Scratch(t)
	bin := dnftBinary(t)
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
	out, err := exec.CommandContext(ctx, bin, publish...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	full := time.Since(start)
	after := list()
	require.NotEqual(t, before, after)
	undo()
	require.Equal(t, before, list())

	outcomes := map[string]int{} // "before" and "after": the state a kill left
	// outcome reads the state a killed run left, which must be one of the
	// two, and goes back to the state before.
	outcome := func(what string) string {
		t.Helper()
		switch got := list(); got {
		case before:
			outcomes["before"]++
			return "before"
		case after:
			outcomes["after"]++
			undo()
			return "after"
		default:
			require.Failf(t, "mixed state", "%s: the ruleset is neither the one before nor the one after:\n%s", what, got)
			return ""
		}
	}

	// Kills at the four moments of the batch send. Kills during the send
	// come once the thread runs inside the call and has spent there a
	// random part of half the CPU time the call takes (the least the kills
	// after the send measured): the kernel then has the batch, and commits
	// or aborts it whole (it aborts when an allocation sees the pending
	// kill). Kills at the commit come as the kernel announces it. Both go
	// on until one has landed inside the call (the call had not returned
	// when the kill was sent), or tracedAttempts runs.
	monitor, err := commitMonitor(ns)
	if errors.Is(err, errTraceUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	defer unix.Close(monitor)
	rng := rand.New(rand.NewPCG(7, 7))
	var call, cpu time.Duration // the least wall and CPU time of the batch sendmsg the kills after it saw
	for _, m := range []killMoment{killBeforeSend, killAfterSend, killDuringSend, killAtCommit} {
		seen := map[string]int{}
		inside := false
		inCall := m == killDuringSend || m == killAtCommit
		for i := 0; i < tracedRuns || (inCall && !inside && i < tracedAttempts); i++ {
			var work time.Duration
			if m == killDuringSend {
				work = time.Duration(rng.Int64N(int64(cpu/2) + 1))
			}
			tr, err := tracedKill(bin, publish, m, work, monitor)
			require.NoError(t, err, "%s", tr.output)
			require.True(t, tr.reached, "killed %s: the process sent no batch:\n%s", m, tr.output)
			if m == killAfterSend {
				call = min(cmp.Or(call, tr.call), tr.call)
				cpu = min(cmp.Or(cpu, tr.cpu), tr.cpu)
			}
			got := outcome(fmt.Sprintf("killed %s, run %d", m, i))
			switch m {
			case killBeforeSend:
				require.Equal(t, "before", got, "run %d: killed before its batch was sent", i)
			case killAfterSend:
				require.Equal(t, "after", got, "run %d: killed after its batch was committed", i)
				require.True(t, tr.returned)
			case killAtCommit:
				require.Equal(t, "after", got, "run %d: killed as its batch was committed", i)
			}
			if inCall {
				if tr.returned {
					got += ", the call had returned"
				} else {
					got += ", killed inside the call"
					inside = true
				}
			}
			seen[got]++
		}
		t.Logf("killed %s: %v (the batch's sendmsg takes at least %s, %s of CPU)", m, seen, call.Round(time.Microsecond), cpu.Round(time.Microsecond))
		if inCall {
			require.True(t, inside, "killed %s: no kill landed while the kernel had the batch: %v", m, seen)
		}
	}

	runs := crashRuns(t)
	require.Positive(t, runs, "DNFT_CRASH_RUNS")
	seen := map[string]int{}
	for i := range runs {
		cmd := exec.CommandContext(ctx, bin, publish...)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(rng.Int64N(int64(full * 11 / 10))))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		seen[outcome("killed at random, run "+strconv.Itoa(i))]++
	}
	t.Logf("killed at random moments within %s (a full run): %v", (full * 11 / 10).Round(time.Millisecond), seen)
	require.Positive(t, outcomes["before"], "no kill left the state before: %v", outcomes)
	require.Positive(t, outcomes["after"], "no kill left the state after: %v", outcomes)
}
