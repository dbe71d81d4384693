package nft

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Generation returns the ruleset generation of the namespace. The kernel
// increments it on every committed batch, whoever sends it, so a caller
// that remembers the generation after its own commit can tell cheaply
// whether anything changed since (google/nftables v0.3.0 has no GETGEN).
func (c *Conn) Generation(ctx context.Context) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generation()
}

func (c *Conn) generation() (uint32, error) {
	if c.raw == nil {
		return 0, errors.New("nft: connection closed")
	}
	gen, found, err := c.raw.getU32(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETGEN, unix.NFTA_GEN_ID)
	if err != nil {
		return 0, errors.Join(fmt.Errorf("get generation: %w", err), c.rawFailed())
	}
	if !found {
		return 0, errors.New("get generation: no NFTA_GEN_ID in reply")
	}
	return gen, nil
}

// ApplyGen applies a transaction like [Conn.Apply] and returns the
// generation right after the commit. When wantGen is not zero the batch
// carries it and the kernel commits it only if the ruleset generation is
// still wantGen, atomically: otherwise nothing changes and
// ErrGenerationChanged is returned, so a caller whose cached view is stale
// reads again. The returned generation is then the one after wantGen,
// without another request.
func (c *Conn) ApplyGen(ctx context.Context, tx *Tx, wantGen uint32) (uint32, error) {
	return c.apply(ctx, tx, nil, wantGen)
}

// ErrGenerationChanged means the ruleset changed since the caller's view.
var ErrGenerationChanged = errors.New("nft: ruleset generation changed")
