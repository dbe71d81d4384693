package dnft

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/nft"
)

// Restore makes dnft's tables hold exactly the state s, in ONE batch,
// whatever the namespace holds (nothing, the same state, another one, a
// damaged one): the batch deletes dnft's tables and creates everything of
// s again, reusing its sequence numbers, so that a saved state comes back
// byte for byte as `nft list ruleset` prints it (counters aside). Restoring
// what the namespace already holds, without drift, sends nothing.
//
// s is validated first (see [State.Validate]); nothing is sent if it is
// bad. DOCKER-USER gets s.DockerUser, or keeps its rules when that is
// nil. Objects of s without a sequence number get new ones. Nothing
// outside dnft's tables is touched. After the commit the kernel settings
// of the networks are applied as by CreateNetwork (failures go to the
// warn function); IP forwarding is not turned on.
func (fw *Firewall) Restore(ctx context.Context, s State) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	want, err := s.validate(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	err = fw.retry(func() error {
		_, _, err := fw.restore(ctx, want, true)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// restore is Restore of a validated state with the lock held. When
// ifChanged is set and the kernel already holds want without drift,
// nothing is sent. It returns the number of changes it sent in its batch
// (0 for none) and the generation the batch produced.
func (fw *Firewall) restore(ctx context.Context, want State, ifChanged bool) (changes int, gen uint32, err error) {
	g0, err := fw.conn.Generation(ctx)
	if err != nil {
		return 0, 0, err
	}
	if ifChanged {
		cur, user, err := fw.record(ctx)
		if err == nil && allUser(cur, user) && (want.DockerUser == nil || user.bad() == nil) && sameState(cur, want) {
			have, err := fw.readTables(ctx)
			if err != nil {
				return 0, 0, err
			}
			p, err := fw.program(ctx, want)
			if err != nil {
				return 0, 0, err
			}
			if len(compareTables(p.objs, have, p.specs)) == 0 {
				return 0, 0, nil
			}
			return fw.rebuild(ctx, p, families(have), g0)
		}
	}
	p, err := fw.program(ctx, want)
	if err != nil {
		return 0, 0, err
	}
	var fams []nft.Family
	for _, f := range nft.TableFamilies {
		ok, err := fw.conn.TableExists(ctx, f)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			fams = append(fams, f)
		}
	}
	return fw.rebuild(ctx, p, fams, g0)
}
