package harness

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSweep: a namespace whose owner process is gone is removed, one
// whose owner runs (this process) is kept.
func TestSweep(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx := context.Background()
	dead, err := NewNS(ctx, "sweep-dead")
	require.NoError(t, err)
	t.Cleanup(func() { _ = dead.Remove() })
	live, err := NewNS(ctx, "sweep-live")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, live.Remove()) })
	record, err := os.ReadFile(ownerPath(live.Name))
	require.NoError(t, err)
	require.True(t, ownerAlive(string(record)), "this process owns %s: %q", live.Name, record)

	// The same pid with another start time: a reused pid, owner gone.
	require.NoError(t, os.WriteFile(ownerPath(dead.Name), []byte(fmt.Sprintf("%d 0\n", os.Getpid())), 0o644))
	removed, err := Sweep(ctx, time.Hour)
	require.NoError(t, err)
	assert.Contains(t, removed, dead.Name)
	assert.NotContains(t, removed, live.Name)
	_, err = os.Stat(dead.Path())
	assert.ErrorIs(t, err, os.ErrNotExist, "swept namespace still mounted")
	_, err = os.Stat(ownerPath(dead.Name))
	assert.ErrorIs(t, err, os.ErrNotExist, "owner record of a swept namespace")
	_, err = os.Stat(live.Path())
	assert.NoError(t, err, "a live owner's namespace was removed")
}
