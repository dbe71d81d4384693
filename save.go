package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// Save reads dnft's complete state from the kernel (see [State]),
// validated as [Firewall.Restore] validates a state, so that what it
// returns restores. Without dnft's tables it returns the state without
// daemon when dnft is not initialized, and fails with ErrTablesGone when
// someone else deleted them (see [Uninitialized]). It
// refuses, rather than save a changed rule, a DOCKER-USER rule that
// google/nftables cannot reproduce exactly (see [nft.RawRuleError]), and
// it fails with ErrStateUnknown when dnft's records are damaged (run
// [Firewall.Check] to see what is wrong).
func (fw *Firewall) Save(ctx context.Context) (State, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.lk.lock(ctx, false)
	if err != nil {
		return State{}, fmt.Errorf("save: %w", err)
	}
	defer unlock()
	s, user, err := fw.record(ctx)
	if err != nil {
		return State{}, fmt.Errorf("save: %w", err)
	}
	if s.Daemon == nil {
		// No dnft table: not initialized, or deleted by someone else.
		if err := uninitialized(fw.lk.path, fw.lk.cookie); err != nil {
			return State{}, fmt.Errorf("save: %w (run dnft check)", err)
		}
		return s, nil
	}
	for _, f := range s.Daemon.Families() {
		if !user.exists(f) {
			return State{}, fmt.Errorf("save: %w: %s chain %s is missing (run dnft check and repair)", ErrStateUnknown, f, chains.DockerUser)
		}
	}
	if err := user.bad(); err != nil {
		return State{}, fmt.Errorf("save: refusing to save a changed %s rule: %w", chains.DockerUser, err)
	}
	// What the kernel holds is validated like a state file: a saved
	// state is one that restore takes.
	if _, err := s.validate(ctx); err != nil {
		return State{}, fmt.Errorf("save: %w: the state read back is not valid (%v): run dnft check", ErrStateUnknown, err)
	}
	fw.describeUserRules(ctx, s.DockerUser)
	return s, nil
}

// describeUserRules fills in the nft text of DOCKER-USER rules read from
// the kernel, when the nft command is available (best effort).
func (fw *Firewall) describeUserRules(ctx context.Context, rules []UserRule) {
	for _, f := range nft.Families {
		var mine []int
		for i, r := range rules {
			if r.Family == f {
				mine = append(mine, i)
			}
		}
		if len(mine) == 0 {
			continue
		}
		texts, err := fw.conn.RuleTexts(ctx, f, chains.DockerUser)
		if err != nil || len(texts) != len(mine) {
			continue
		}
		for k, i := range mine {
			rules[i].NFT = texts[k]
		}
	}
}
