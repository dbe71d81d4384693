package dnft

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"golang.org/x/sys/unix"
)

// WatchOptions configure [Firewall.Watch].
type WatchOptions struct {
	// Saved is the last known good state to start from. Nil means the
	// state the kernel holds when the watch starts, as its records tell
	// it (see [Firewall.Repair]), or nothing when dnft is not
	// initialized: the watch then protects what a later dnft init
	// creates.
	Saved *State
	// Logf receives one line per change noticed, check and repair; nil
	// discards them.
	Logf func(format string, args ...any)
	// Settle is how long the watch waits for a burst of notifications to
	// end before it checks (default 20 ms); it never waits more than ten
	// times that after the first one.
	Settle time.Duration
	// Interval is the period of checks made without notifications, which
	// catch notifications the kernel dropped (default 30 s).
	Interval time.Duration
	// Ready, when set, is called once the watch listens to notifications
	// and its first check is done.
	Ready func()
	// NoLinks leaves the links to the caller, who runs
	// [Firewall.FollowLinks] itself (dnft docker does, for the life of
	// the process rather than of each watch).
	NoLinks bool
}

// Watch keeps dnft's tables as they should be until ctx is done, and then
// returns nil. It listens to the namespace's nf_tables notifications.
//
// Its truth is the last known good state — opt.Saved, or the records at
// start — kept as a copy of dnft's records that only dnft's own commits
// change: the commit journal (the namespace's lock file, see
// journal.go) says which batches dnft sent, and the watch applies their
// notifications, element by element, to its copy. It never reads the
// tables for them and never takes the namespace lock for them, so a dnft
// operation costs the same with or without a watch. A `dnft reset` is a
// commit of dnft like any other: the watch learns that dnft is no longer
// initialized, and restores nothing.
//
// A batch that dnft did not send and that touched a dnft table (a flush,
// a deleted table, chain, rule or element, a forged element, a changed
// rule or policy) is checked against the truth, without the lock, once
// the burst of changes settles; drift is repaired in one batch with the
// lock held, toward the truth, as [Firewall.Repair] does with a saved
// state: what a user published is never lost, what no record owns is
// removed. DOCKER-USER's rules are the operator's: the watch keeps the
// last ones it saw, for when the chain is flushed or deleted. While it
// runs, it also follows the namespace's links ([Firewall.FollowLinks]).
func (fw *Firewall) Watch(ctx context.Context, opt WatchOptions) error {
	if opt.Settle <= 0 {
		opt.Settle = 20 * time.Millisecond
	}
	if opt.Interval <= 0 {
		opt.Interval = 30 * time.Second
	}
	logf := opt.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	m, err := fw.conn.Monitor()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	rctx, stopReceiving := context.WithCancel(ctx)
	defer stopReceiving() // closes the monitor
	events, failed := pump(rctx, m, nil)
	// The settings dnft keeps on bridges follow the links (FollowLinks).
	linksDone := make(chan error, 1)
	follow := fw.FollowLinks
	if opt.NoLinks {
		follow = func(ctx context.Context, _ FollowOptions) error { <-ctx.Done(); return nil }
	}
	go func() { linksDone <- follow(rctx, FollowOptions{Logf: logf}) }()
	defer func() { stopReceiving(); <-linksDone }()

	w := &watcher{fw: fw, logf: logf, events: events}
	if err := w.start(ctx, opt.Saved); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.check(ctx, "start"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch: %w", err)
	}
	if opt.Ready != nil {
		opt.Ready()
	}

	ticker := time.NewTicker(opt.Interval)
	defer ticker.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	var first time.Time // first change not checked yet, zero if none
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		case err := <-linksDone:
			linksDone <- err // for the deferred wait
			if ctx.Err() != nil || err == nil {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		case evs := <-events:
			w.process(ctx, evs)
			if w.userStale {
				fw.mu.Lock()
				w.refreshUser(ctx)
				fw.mu.Unlock()
			}
			if w.cause != "" {
				if first.IsZero() {
					first = time.Now()
				}
				settle.Reset(min(opt.Settle, max(0, 10*opt.Settle-time.Since(first))))
			}
		case <-settle.C:
			if w.cause == "" {
				continue
			}
			start, cause := first, w.cause
			first, w.cause = time.Time{}, ""
			if err := w.check(ctx, cause); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				logf("check after %s failed: %v", cause, err)
				continue
			}
			if w.repaired {
				logf("restored %s after the change was noticed", time.Since(start).Round(time.Millisecond))
			}
		case <-ticker.C:
			if err := w.check(ctx, "periodic check"); err != nil && ctx.Err() == nil {
				logf("periodic check failed: %v", err)
			}
		}
	}
}

// maxLoggedFindings bounds the findings logged per check.
const maxLoggedFindings = 10

// drainTimeout bounds the wait for the notifications of a generation
// that the kernel already committed.
const drainTimeout = 5 * time.Second

// watcher is the state of a watch between checks.
type watcher struct {
	fw     *Firewall
	logf   func(format string, args ...any)
	events <-chan []nft.Event
	// truth is the copy of dnft's records; user the last DOCKER-USER
	// rules seen (nil: none yet).
	truth *mirror
	user  []UserRule
	// gen is the generation of the last batch processed; pending are the
	// notifications of the batch in progress.
	gen     uint32
	pending []nft.Event
	// cause describes the foreign change not checked yet ("" for none);
	// lost is set when the kernel dropped notifications, so that the
	// truth may miss commits of dnft.
	cause string
	lost  bool
	// userStale is set when a commit of dnft changed DOCKER-USER.
	userStale bool
	// repaired says whether the last check repaired.
	repaired bool
}

// start loads the truth: saved, or the records of the tables now.
func (w *watcher) start(ctx context.Context, saved *State) error {
	fw := w.fw
	fw.mu.Lock()
	defer fw.mu.Unlock()
	have, gen, err := fw.readSnapshot(ctx)
	if err != nil {
		return err
	}
	w.gen = gen
	var want State
	if saved != nil {
		if want, err = saved.validate(ctx); err != nil {
			return fmt.Errorf("saved state: %w", err)
		}
		w.user = want.DockerUser
	} else {
		rt := recordsOf(have)
		if rt.unknown != nil {
			return fmt.Errorf("%w (start the watch with --state FILE, a state saved with dnft save)", rt.unknown)
		}
		if len(rt.findings) == 0 {
			w.truth = newMirror(have)
			if !w.truth.initialized() {
				w.logf("dnft is not initialized in %s: waiting for dnft init (start with --state FILE to restore a saved state instead)", fw.NetNS())
			}
			return nil
		}
		want = rt.state
	}
	p, err := fw.program(ctx, want)
	if err != nil {
		return err
	}
	w.truth = newMirror(p.objs)
	return nil
}

// process handles notifications. A batch ends with the notification of
// its generation: when the commit journal says that dnft sent it, its
// changes are applied to the truth; otherwise, if it touched a dnft
// table, it is a change to check (w.cause).
func (w *watcher) process(ctx context.Context, evs []nft.Event) {
	for _, e := range evs {
		switch {
		case e.Lost:
			w.pending, w.lost, w.cause = nil, true, "lost notifications"
		case e.Gen != 0:
			w.endBatch(ctx, e)
		default:
			w.pending = append(w.pending, e)
		}
	}
}

// endBatch handles the end of a batch (e, its generation).
func (w *watcher) endBatch(ctx context.Context, e nft.Event) {
	batch := w.pending
	w.pending = nil
	if int32(e.Gen-w.gen) <= 0 {
		return // already in the truth (committed before the watch started)
	}
	w.gen = e.Gen
	touched, user := false, false
	for _, b := range batch {
		if b.Table == nft.TableName && slices.Contains(nft.TableFamilies[:], b.Family) {
			touched = true
			user = user || b.Chain == chains.DockerUser || b.Type == unix.NFT_MSG_DELTABLE
		}
	}
	if !touched {
		return
	}
	j, err := readJournal(w.fw.lk.path, w.fw.lk.cookie)
	if err != nil {
		w.logf("%v: generation %d is checked as a change of someone else", err, e.Gen)
	}
	who := fmt.Sprintf("%s[%d] (generation %d)", e.Proc, e.PID, e.Gen)
	if !j.committed(e.PID, e.Gen) {
		w.cause = "change by " + who
		return
	}
	was := w.truth.initialized()
	for _, b := range batch {
		w.truth.apply(b)
	}
	switch {
	case was && !w.truth.initialized():
		w.logf("change by %s: dnft's own (reset): nothing to restore", who)
	default:
		w.logf("change by %s: dnft's own", who)
	}
	w.userStale = w.userStale || user
}

// refreshUser reads the DOCKER-USER rules after a commit of dnft changed
// them. Call it with fw.mu held.
func (w *watcher) refreshUser(ctx context.Context) {
	w.userStale = false
	if !w.truth.initialized() {
		return
	}
	rt := recordsOf(w.truth.snapshot())
	if rt.state.Daemon == nil {
		return
	}
	rules, user, err := w.fw.readUser(ctx, rt.state.Daemon.Families())
	if err == nil && user.bad() == nil {
		w.user = rules
	}
}

// drainTo processes notifications until the batch of generation gen is
// processed: the truth then holds every commit of dnft up to gen.
func (w *watcher) drainTo(ctx context.Context, gen uint32) error {
	timeout := time.NewTimer(drainTimeout)
	defer timeout.Stop()
	for int32(gen-w.gen) > 0 && !w.lost {
		select {
		case evs := <-w.events:
			w.process(ctx, evs)
		case <-timeout.C:
			return fmt.Errorf("the notifications of generation %d did not arrive", gen)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// want is the state the truth describes, with the DOCKER-USER rules last
// seen.
func (w *watcher) want() (State, error) {
	rt := recordsOf(w.truth.snapshot())
	if rt.unknown != nil {
		return State{}, rt.unknown
	}
	s := rt.state
	if s.Daemon == nil {
		s.DockerUser = []UserRule{}
		return s, nil
	}
	s.DockerUser = w.user
	return s, nil
}

// check compares dnft's tables with the truth, without the namespace
// lock, and repairs drift toward it with the lock held.
func (w *watcher) check(ctx context.Context, cause string) error {
	fw := w.fw
	fw.mu.Lock()
	defer fw.mu.Unlock()
	w.repaired = false
	if w.lost {
		if err := w.resync(ctx); err != nil {
			return err
		}
	}
	if w.userStale {
		w.refreshUser(ctx)
	}
	want, err := w.want()
	if err != nil {
		return err
	}
	in, err := fw.inspect(ctx, &want)
	if err != nil {
		return err
	}
	if len(in.findings) == 0 {
		w.seen(in.p.state)
		if cause != "start" && cause != "periodic check" {
			w.logf("%s: no drift", cause)
		}
		return nil
	}
	// Repair with the lock held, toward the truth as it is once every
	// commit of dnft up to now is in it.
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	start := time.Now()
	var (
		findings []Finding
		now      State
		gen      uint32
	)
	err = fw.retry(func() error {
		g, err := fw.conn.Generation(ctx)
		if err != nil {
			return err
		}
		if err := w.drainTo(ctx, g); err != nil {
			return err
		}
		if w.lost {
			if err := w.resync(ctx); err != nil {
				return err
			}
		}
		if want, err = w.want(); err != nil {
			return err
		}
		findings, now, gen, err = fw.repair(ctx, &want)
		return err
	})
	if err != nil {
		return err
	}
	w.seen(now)
	if len(findings) == 0 {
		return nil
	}
	for i, f := range findings {
		if i == maxLoggedFindings {
			w.logf("%s: drift: %d more finding(s)", cause, len(findings)-i)
			break
		}
		w.logf("%s: drift: %s", cause, f)
	}
	w.repaired = true
	w.logf("repaired %d finding(s) in one batch in %s (generation %d)", len(findings), time.Since(start).Round(time.Microsecond), gen)
	return nil
}

// seen keeps the DOCKER-USER rules of a state that the tables hold.
func (w *watcher) seen(s State) {
	if s.Daemon != nil && s.DockerUser != nil {
		w.user = s.DockerUser
	}
}

// resync makes the truth again after the kernel dropped notifications:
// the records of the tables, when they are intact; otherwise the truth
// stays as it was (it may then miss commits of dnft since). Call it with
// fw.mu held.
func (w *watcher) resync(ctx context.Context) error {
	have, gen, err := w.fw.readSnapshot(ctx)
	if err != nil {
		return err
	}
	w.lost, w.pending, w.gen = false, nil, gen
	if rt := recordsOf(have); rt.unknown == nil && len(rt.findings) == 0 {
		w.truth = newMirror(have)
		return nil
	}
	w.logf("notifications were lost and dnft's records are damaged: repairing toward the last known state")
	return nil
}
