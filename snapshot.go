package dnft

import (
	"context"
	"errors"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// userChains is what reading DOCKER-USER found, per family: the key is
// present when the chain exists, and the value is the error of a rule
// that dnft cannot reproduce (an *nft.RawRuleError); that family's rules
// are then missing from the state read.
type userChains map[nft.Family]error

// exists reports whether the family's DOCKER-USER chain exists.
func (u userChains) exists(f nft.Family) bool {
	_, ok := u[f]
	return ok
}

// bad returns the error of the first family (of fams, or of all when
// none are given) whose rules could not all be read.
func (u userChains) bad(fams ...nft.Family) error {
	if len(fams) == 0 {
		fams = nft.Families[:]
	}
	for _, f := range fams {
		if err := u[f]; err != nil {
			return err
		}
	}
	return nil
}

// readUser reads the DOCKER-USER rules of the families. A rule that dnft
// cannot reproduce is not an error here: it is recorded in the
// userChains, and the family's rules are left out.
func (fw *Firewall) readUser(ctx context.Context, fams []nft.Family) ([]UserRule, userChains, error) {
	out := []UserRule{}
	user := userChains{}
	for _, f := range fams {
		rules, ok, err := fw.conn.ReadRawRules(ctx, f, chains.DockerUser)
		var re *nft.RawRuleError
		switch {
		case errors.As(err, &re):
			user[f] = err
		case err != nil:
			return nil, nil, fmt.Errorf("read %s: %w", chains.DockerUser, err)
		case ok:
			user[f] = nil
			for _, r := range rules {
				out = append(out, UserRule{Family: f, Expr: r.Exprs, Sets: r.Sets, Comment: r.Comment})
			}
		}
	}
	return out, user, nil
}

// record reads the state dnft recorded in the kernel (see [recordsOf])
// from one snapshot of its tables, with the DOCKER-USER rules of each
// family whose chain exists (user). It fails with ErrStateUnknown when a
// record is missing, damaged or contradicted: dnft check tells which.
func (fw *Firewall) record(ctx context.Context) (State, userChains, error) {
	have, err := fw.readTables(ctx)
	if err != nil {
		return State{}, nil, err
	}
	return fw.recordFrom(ctx, have)
}

// recordFrom is record from a snapshot of dnft's tables; DOCKER-USER's
// rules are read from the kernel.
func (fw *Firewall) recordFrom(ctx context.Context, have []nft.TableState) (State, userChains, error) {
	rt := recordsOf(have)
	switch {
	case rt.unknown != nil:
		return State{}, nil, rt.unknown
	case len(rt.findings) > 0:
		return State{}, nil, fmt.Errorf("%w: %s (run dnft check)", ErrStateUnknown, rt.findings[0])
	}
	s := rt.state
	if s.Daemon == nil {
		s.DockerUser = []UserRule{}
		return s, nil, nil
	}
	var user userChains
	var err error
	s.DockerUser, user, err = fw.readUser(ctx, s.Daemon.Families())
	return s, user, err
}

// txReader reads dnft's tables as they will be once tx is applied on top
// of the base tables, for package ingress, whose operations read the
// state they change: several of them can then be queued on one
// transaction. The base is read from the kernel on first use (load), or
// is empty when load is nil.
type txReader struct {
	tx     *nft.Tx
	load   func() ([]nft.TableState, error)
	base   []nft.TableState
	loaded bool
	objs   []nft.TableState
	n      int // tx.Len() when objs was computed; -1 for none
}

func newTxReader(tx *nft.Tx, load func() ([]nft.TableState, error)) *txReader {
	return &txReader{tx: tx, load: load, n: -1}
}

// findTable returns the table of a family, or nil.
func findTable(ts []nft.TableState, f nft.Family) *nft.TableState {
	for i := range ts {
		if ts[i].Family == f {
			return &ts[i]
		}
	}
	return nil
}

func (r *txReader) tables() ([]nft.TableState, error) {
	if !r.loaded && r.load != nil {
		b, err := r.load()
		if err != nil {
			return nil, err
		}
		r.base = b
	}
	r.loaded = true
	if r.tx.Len() == 0 {
		return r.base, nil
	}
	if r.n != r.tx.Len() {
		objs, err := r.tx.Objects(r.base)
		if err != nil {
			return nil, fmt.Errorf("queued changes: %w", err)
		}
		r.objs, r.n = objs, r.tx.Len()
	}
	return r.objs, nil
}

func (r *txReader) table(f nft.Family) (*nft.TableState, error) {
	ts, err := r.tables()
	if err != nil {
		return nil, err
	}
	return findTable(ts, f), nil
}

// ReadSet implements ingress.Reader.
func (r *txReader) ReadSet(_ context.Context, f nft.Family, name string) (nft.SetState, bool, error) {
	t, err := r.table(f)
	if err != nil || t == nil {
		return nft.SetState{}, false, err
	}
	if s := t.Set(name); s != nil {
		return *s, true, nil
	}
	return nft.SetState{}, false, nil
}

// ReadChain implements ingress.Reader.
func (r *txReader) ReadChain(_ context.Context, f nft.Family, name string) (nft.ChainState, bool, error) {
	t, err := r.table(f)
	if err != nil || t == nil {
		return nft.ChainState{}, false, err
	}
	if c := t.Chain(name); c != nil {
		return *c, true, nil
	}
	return nft.ChainState{}, false, nil
}

// readTables reads dnft's tables of every family that has one, as one
// consistent snapshot (see [Firewall.readSnapshot]).
func (fw *Firewall) readTables(ctx context.Context) ([]nft.TableState, error) {
	have, _, err := fw.readSnapshot(ctx)
	return have, err
}

// snapshotAttempts bounds the reads of a snapshot that raced with
// commits.
const snapshotAttempts = 5

// readSnapshot reads dnft's tables of every family that has one, and the
// generation they are at. The tables are read in several dumps: the
// generation is read before and after, and the read repeated when a
// commit came in between, so that the snapshot is one state of the
// kernel even without the namespace lock.
func (fw *Firewall) readSnapshot(ctx context.Context) ([]nft.TableState, uint32, error) {
	for range snapshotAttempts {
		g, err := fw.conn.Generation(ctx)
		if err != nil {
			return nil, 0, err
		}
		var out []nft.TableState
		for _, f := range nft.TableFamilies {
			t, ok, err := fw.conn.ReadTable(ctx, f)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, t)
			}
		}
		g2, err := fw.conn.Generation(ctx)
		if err != nil {
			return nil, 0, err
		}
		if g2 == g {
			return out, g, nil
		}
	}
	return nil, 0, fmt.Errorf("read dnft's tables: the ruleset changed during each of %d attempts", snapshotAttempts)
}
