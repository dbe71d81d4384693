package dnft

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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

	// A waiter that is blocked in flock(2) on the held lock (the kernel
	// lists it in /proc/locks) does not get it until the holder releases
	// it.
	got := make(chan error, 1)
	go func() {
		u, err := b.lk.lock(ctx, true)
		got <- err
		if err == nil {
			u()
		}
	}()
	var lockFile unix.Stat_t
	require.NoError(t, unix.Stat(a.lk.path, &lockFile))
	require.Eventually(t, func() bool { return flockWaiters(lockFile) > 0 }, time.Minute, time.Millisecond,
		"the waiter never blocked on the lock")
	select {
	case err := <-got:
		t.Fatalf("the waiter got the lock while it was held exclusively (err %v)", err)
	default:
	}
	unlock()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("waiter never got the lock")
	}

	s1, err := a.lk.lock(ctx, false)
	require.NoError(t, err)
	s2, err := b.lk.lock(ctx, false)
	require.NoError(t, err, "shared locks coexist")
	s1()
	s2()
}

// flockWaiters counts the flock(2) requests blocked on the file st
// describes, as /proc/locks lists them ("->" lines with the file's device
// and inode). It calls no testing.T method: testify polls it on another
// goroutine.
func flockWaiters(st unix.Stat_t) int {
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 6 && f[1] == "->" && f[2] == "FLOCK" && f[6] == id {
			n++
		}
	}
	return n
}
