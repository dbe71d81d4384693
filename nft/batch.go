package nft

import "context"

// ApplyWithRaw applies tx followed by raw rules (appended to their chains,
// in order) as ONE netlink batch, and returns the ruleset generation right
// after the commit. When wantGen is not zero and the kernel's generation
// differs, nothing is committed and ErrGenerationChanged is returned (see
// [Conn.ApplyGen]). When there is nothing to send, nothing is sent and the
// current generation is returned.
func (c *Conn) ApplyWithRaw(ctx context.Context, tx *Tx, raw []RawRule, wantGen uint32) (uint32, error) {
	return c.apply(ctx, tx, raw, wantGen)
}
