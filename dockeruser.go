package dnft

import (
	"context"
	"errors"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// UserOp is a change to DOCKER-USER, as iptables' commands make them.
type UserOp int

// The changes [Firewall.EditUser] makes.
const (
	// UserAppend adds the rule at the end (iptables -A).
	UserAppend UserOp = iota + 1
	// UserInsert adds the rule at 1-based position Pos, 1 (the top) when
	// Pos is 0 (iptables -I).
	UserInsert
	// UserDelete removes the rule at position Pos, or when Pos is 0 the
	// first rule equal to Rule (iptables -D).
	UserDelete
	// UserCheck changes nothing: it fails with ErrNoUserRule unless a
	// rule equal to Rule exists (iptables -C).
	UserCheck
	// UserFlush removes every rule (iptables -F).
	UserFlush
)

// UserEdit is one change to the DOCKER-USER chain of one family.
type UserEdit struct {
	Op     UserOp
	Family nft.Family
	Pos    int
	// Rule is the rule to add, or to find (Family and Chain are set by
	// EditUser).
	Rule nft.Rule
}

// Errors of EditUser; the CLI prints iptables' messages for them.
var (
	// ErrNoUserRule means no rule of DOCKER-USER equals the one given.
	ErrNoUserRule = errors.New("bad rule (does a matching rule exist in that chain?)")
	// ErrUserIndex means a position beyond the end of DOCKER-USER.
	ErrUserIndex = errors.New("index too big")
)

// EditUser makes one change to the operator's DOCKER-USER chain of a
// family, in one batch, as the iptables command would: rules are added
// as native nftables expressions (see [nft.EncodeUserRule]); a rule
// "equals" another when both encode to the same expressions, anonymous
// sets and comment (rules written with nft in another spelling of the
// same matches compare equal). The chain's other rules and their
// counters are untouched; nothing else is changed.
func (fw *Firewall) EditUser(ctx context.Context, e UserEdit) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", chains.DockerUser, err)
	}
	defer unlock()
	err = fw.retry(func() error { return fw.editUser(ctx, e) })
	if err != nil {
		return fmt.Errorf("%s: %w", chains.DockerUser, err)
	}
	return nil
}

func (fw *Firewall) editUser(ctx context.Context, e UserEdit) error {
	g, err := fw.conn.Generation(ctx)
	if err != nil {
		return err
	}
	rules, ok, err := fw.conn.ReadChainRules(ctx, e.Family, chains.DockerUser)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w (no %s chain %s)", ErrNotInitialized, e.Family, chains.DockerUser)
	}
	var want nft.RawRule
	if e.Op != UserFlush && (e.Op != UserDelete || e.Pos == 0) {
		r := e.Rule
		r.Family, r.Chain = e.Family, chains.DockerUser
		if want, err = nft.EncodeUserRule(r); err != nil {
			return &FieldError{Field: "rule", Reason: err.Error()}
		}
	}
	find := func() (int, error) {
		for i, cr := range rules {
			if sameUserRaw(cr, want) {
				return i, nil
			}
		}
		return 0, ErrNoUserRule
	}
	tx := &nft.Tx{}
	var raw []nft.RawRule
	switch e.Op {
	case UserAppend:
		raw = append(raw, want)
	case UserInsert:
		pos := max(e.Pos, 1)
		switch {
		case pos > len(rules)+1:
			return ErrUserIndex
		case pos <= len(rules):
			want.Insert, want.Position = true, rules[pos-1].Handle
		}
		raw = append(raw, want)
	case UserDelete:
		i := e.Pos - 1
		if e.Pos == 0 {
			if i, err = find(); err != nil {
				return err
			}
		} else if e.Pos > len(rules) {
			return ErrUserIndex
		}
		tx.DeleteRule(e.Family, chains.DockerUser, rules[i].Handle)
	case UserCheck:
		_, err := find()
		return err
	case UserFlush:
		if len(rules) == 0 {
			return nil
		}
		tx.FlushChain(e.Family, chains.DockerUser)
	default:
		return fmt.Errorf("unknown change %d", e.Op)
	}
	gen, err := fw.conn.ApplyWithRaw(ctx, tx, raw, g)
	if err != nil {
		return err
	}
	// DOCKER-USER is not part of what fw.v describes: keep it valid when
	// nothing else came in between.
	if fw.v.valid && fw.v.gen == g && gen == nextGen(g) {
		fw.v.gen = gen
	}
	return nil
}

// sameUserRaw reports whether a rule read back is want: the same
// expressions in dnft's encoding, sets and comment.
func sameUserRaw(cr nft.ChainRule, want nft.RawRule) bool {
	if cr.Err != nil || cr.Comment != want.Comment {
		return false
	}
	r, err := nft.DecodeRawRule(cr.RawRule)
	if err != nil {
		return string(cr.Exprs) == string(want.Exprs) && sameSets(cr.Sets, want.Sets)
	}
	back, err := nft.EncodeUserRule(r)
	return err == nil && string(back.Exprs) == string(want.Exprs) && sameSets(back.Sets, want.Sets)
}
