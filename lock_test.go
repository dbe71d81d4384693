package dnft

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// TestNamespaceLock: Firewalls on one namespace, whatever path names it,
// share one lock file; exclusive excludes, shared coexists, a waiter
// gives up with its context.
func TestNamespaceLock(t *testing.T) {
	ctx := context.Background()
	ns := harness.Scratch(t)
	a, err := Open(ctx, ns.Name)
	require.NoError(t, err)
	defer a.Close()
	b, err := Open(ctx, ns.Path())
	require.NoError(t, err)
	defer b.Close()
	other, err := Open(ctx, harness.Scratch(t).Path())
	require.NoError(t, err)
	defer other.Close()
	require.Equal(t, a.lk.path, b.lk.path)
	require.NotEqual(t, a.lk.path, other.lk.path)
	require.Equal(t, LockDir, filepath.Dir(a.lk.path))

	unlock, err := a.lk.lock(ctx, true)
	require.NoError(t, err)
	st, err := os.Stat(a.lk.path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(LockDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dst.Mode().Perm())

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = b.lk.lock(short, false)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "shared waits for exclusive")
	u3, err := other.lk.lock(ctx, true)
	require.NoError(t, err, "another namespace is not locked")
	u3()

	got := make(chan time.Time, 1)
	go func() {
		u, err := b.lk.lock(ctx, true)
		got <- time.Now()
		if err == nil {
			u()
		}
	}()
	time.Sleep(30 * time.Millisecond)
	released := time.Now()
	unlock()
	select {
	case at := <-got:
		require.True(t, !at.Before(released), "the waiter got the lock only after the release")
	case <-time.After(2 * time.Second):
		t.Fatal("waiter never got the lock")
	}

	s1, err := a.lk.lock(ctx, false)
	require.NoError(t, err)
	s2, err := b.lk.lock(ctx, false)
	require.NoError(t, err, "shared locks coexist")
	s1()
	s2()
}
