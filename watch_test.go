package dnft

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// TestWatchLibrary: a watch started on an uninitialized namespace keeps
// what a later Init creates, restores it after `nft flush ruleset`, and
// returns nil when its context ends.
func TestWatchLibrary(t *testing.T) {
	ns := harness.Scratch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fw, err := Open(ctx, ns.Path())
	require.NoError(t, err)
	defer fw.Close()
	op, err := Open(ctx, ns.Path())
	require.NoError(t, err)
	defer op.Close()

	var (
		mu   sync.Mutex
		logs []string
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	logged := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(logs, "\n"), s)
	}
	checks := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(strings.Join(logs, "\n"), "no drift")
	}
	wctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- fw.Watch(wctx, WatchOptions{Logf: logf, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch returned before it was ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Watch never became ready")
	}
	require.True(t, logged("not initialized"))

	require.NoError(t, op.Init(ctx, DaemonConfig{UserlandProxy: true, IPForward: true}))
	require.NoError(t, op.CreateNetwork(ctx, NetworkConfig{Name: "n", Bridge: "br-n", Subnet4: netip.MustParsePrefix("10.1.0.0/24"), ICC: true, Masquerade: true}))
	g, err := op.conn.Generation(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return logged(fmt.Sprintf("(generation %d): dnft's own", g)) }, time.Minute, 5*time.Millisecond,
		"the last change was recognised as dnft's own, by the commit journal")
	require.Zero(t, checks(), "dnft's own commits are not checked")
	before, err := ns.Run(ctx, "nft", "-s", "list", "ruleset")
	require.NoError(t, err)
	out, err := ns.Run(ctx, "nft", "flush", "ruleset")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool {
		now, err := ns.Run(ctx, "nft", "-s", "list", "ruleset")
		return err == nil && now == before
	}, time.Minute, 5*time.Millisecond, "the flushed ruleset was not restored")
	require.Eventually(t, func() bool { return logged("repaired 2 finding(s)") }, time.Minute, 5*time.Millisecond, "the repair (ip and bridge tables) was not logged")

	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Watch did not return after its context ended")
	}
}
