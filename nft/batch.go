package nft

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ApplyWithRaw applies tx followed by raw rules (appended to their chains,
// in order) as ONE netlink batch, and returns the ruleset generation right
// after the commit. When wantGen is not zero and the kernel's generation
// differs, nothing is sent and ErrGenerationChanged is returned (see
// [Conn.ApplyGen]). When there is nothing to send, nothing is sent and the
// current generation is returned.
func (c *Conn) ApplyWithRaw(ctx context.Context, tx *Tx, raw []RawRule, wantGen uint32) (uint32, error) {
	if tx.err != nil {
		return 0, tx.err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		return 0, errors.New("nft: connection closed")
	}
	if wantGen != 0 {
		g, err := c.generation()
		if err != nil {
			return 0, err
		}
		if g != wantGen {
			return g, ErrGenerationChanged
		}
	}
	if len(tx.ops) == 0 && len(raw) == 0 {
		return c.generation()
	}
	err := tx.build(c.nc)
	if err == nil {
		err = addRawRules(c.nc, raw)
	}
	if err != nil {
		return 0, errors.Join(fmt.Errorf("build batch: %w", err), c.redial())
	}
	deadline := time.Now().Add(flushTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if c.sock != nil {
		_ = c.sock.SetDeadline(deadline)
	}
	err = c.nc.Flush()
	if c.sock != nil {
		_ = c.sock.SetDeadline(time.Time{})
	}
	if err != nil {
		return 0, errors.Join(classify(err), c.redial())
	}
	return c.generation()
}
