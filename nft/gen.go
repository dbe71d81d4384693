package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
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
	if c.sock == nil {
		return 0, errors.New("nft: connection closed")
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	msgs, err := c.sock.Execute(req)
	if err != nil {
		return 0, errors.Join(fmt.Errorf("get generation: %w", err), c.redial())
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("get generation: no NFTA_GEN_ID in reply")
}

// ApplyGen applies a transaction like [Conn.Apply] and returns the
// generation right after the commit. When wantGen is not zero and the
// current generation differs, nothing is sent and ErrGenerationChanged is
// returned, so a caller whose cached view is stale re-reads first.
//
// The check and the commit are two steps: another process may commit in
// between, so ApplyGen is an optimisation for a single writer, not a lock.
func (c *Conn) ApplyGen(ctx context.Context, tx *Tx, wantGen uint32) (uint32, error) {
	if wantGen != 0 {
		c.mu.Lock()
		g, err := c.generation()
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if g != wantGen {
			return g, ErrGenerationChanged
		}
	}
	if err := c.Apply(ctx, tx); err != nil {
		return 0, err
	}
	return c.Generation(ctx)
}

// ErrGenerationChanged means the ruleset changed since the caller's view.
var ErrGenerationChanged = errors.New("nft: ruleset generation changed")
