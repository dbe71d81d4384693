package nft

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMonitor: a batch's notifications name the tables it touched and end
// with its generation and the process that sent it; Close unblocks a
// pending Receive.
func TestMonitor(t *testing.T) {
	ctx := context.Background()
	ns := testNS(t)
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	m, err := c.Monitor()
	require.NoError(t, err)

	tx := &Tx{}
	tx.AddTable(IPv4)
	tx.AddChain(Chain{Family: IPv4, Name: "c"})
	gen, err := c.ApplyWithRaw(ctx, tx, nil, 0)
	require.NoError(t, err)
	nftRun(t, ns, "add table ip other")

	type batch struct {
		tables []string
		gen    Event
	}
	var batches []batch
	var cur batch
	// Receive has no timeout of its own: closing the monitor ends a wait
	// for notifications that never come.
	deadline := time.AfterFunc(time.Minute, func() { m.Close() })
	for len(batches) < 2 {
		evs, err := m.Receive()
		require.NoError(t, err, "notifications so far: %+v", batches)
		for _, e := range evs {
			if e.Gen != 0 {
				cur.gen = e
				batches = append(batches, cur)
				cur = batch{}
			} else if e.Table != "" {
				cur.tables = append(cur.tables, e.Family.String()+" "+e.Table)
			}
		}
	}
	require.Equal(t, []string{"ip dnft", "ip dnft"}, batches[0].tables)
	require.Equal(t, gen, batches[0].gen.Gen)
	comm := filepath.Base(os.Args[0])
	require.Equal(t, comm[:min(len(comm), 15)], batches[0].gen.Proc)
	require.NotZero(t, batches[0].gen.PID)
	require.Equal(t, []string{"ip other"}, batches[1].tables)
	require.Equal(t, gen+1, batches[1].gen.Gen)
	require.Equal(t, "nft", batches[1].gen.Proc)
	require.True(t, deadline.Stop(), "the monitor was closed by the deadline")

	done := make(chan error, 1)
	go func() { _, err := m.Receive(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, m.Close())
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Receive did not return after Close")
	}
}
