package dnft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dnft/dnft/nft"
)

// WatchOptions configure [Firewall.Watch].
type WatchOptions struct {
	// Saved is the last known good state to start from. Nil means the
	// state the kernel holds when the watch starts, which must then be
	// intact (dnft's records present) or empty (not initialized: the
	// watch protects what a later dnft init creates).
	Saved *State
	// Logf receives one line per check that a change triggered and per
	// repair; nil discards them.
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
}

// Watch keeps dnft's tables as they should be until ctx is done, and then
// returns nil. It listens to the namespace's nf_tables notifications;
// when a batch that it did not send itself touched a dnft table (a flush,
// a deleted table, chain or rule, changed elements), it checks for drift
// ([Firewall.Check]) rather than trusting the notification, and repairs
// what it finds ([Firewall.Repair]) in one batch. The commits of other
// dnft operations are checked like any other and show no drift.
//
// The last known good state is kept in memory: opt.Saved or the kernel's
// state at start, replaced by the recorded state after each check without
// drift. When dnft's records are gone (a flushed ruleset, a deleted
// table), the tables are restored from it; otherwise from the records
// themselves, so that the work of other dnft operations is kept. A
// DOCKER-USER emptied together with dnft's own chains (`nft flush
// table`) gets the last known rules back. Tables removed by a process
// named dnft (`dnft reset`) are not restored; removed by anyone else
// (`nft flush ruleset`, a library user's Reset), they are. While it runs,
// it also follows the namespace's links ([Firewall.FollowLinks]).
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
	events, failed := receive(rctx, m)
	// The settings dnft keeps on bridges follow the links (FollowLinks).
	linksDone := make(chan error, 1)
	go func() { linksDone <- fw.FollowLinks(rctx, FollowOptions{Logf: logf}) }()
	defer func() { stopReceiving(); <-linksDone }()

	w := &watcher{fw: fw, logf: logf}
	if opt.Saved != nil {
		s, err := opt.Saved.validate()
		if err != nil {
			return fmt.Errorf("watch: saved state: %w", err)
		}
		w.last = &s
	}
	if err := w.check(ctx, "start", false); err != nil {
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
	var (
		touched bool      // a dnft table changed since the last batch end
		first   time.Time // first pending change, zero if none
		cause   string
		byDNFT  bool // every pending change was made by a dnft command
	)
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
			for _, e := range evs {
				switch {
				case e.Lost:
					touched, cause = true, "lost notifications"
					fallthrough
				case e.Gen != 0:
					if touched && (e.Gen == 0 || e.Gen != w.own) {
						if first.IsZero() {
							first, byDNFT = time.Now(), true
						}
						byDNFT = byDNFT && e.Proc == "dnft"
						if e.Gen != 0 {
							cause = fmt.Sprintf("change by %s[%d] (generation %d)", e.Proc, e.PID, e.Gen)
						}
					}
					touched = false
				case e.Table == nft.TableName && slices.Contains(nft.TableFamilies[:], e.Family):
					touched = true
				}
			}
			if !first.IsZero() {
				settle.Reset(min(opt.Settle, max(0, 10*opt.Settle-time.Since(first))))
			}
		case <-settle.C:
			if first.IsZero() {
				continue
			}
			start := first
			first = time.Time{}
			if err := w.check(ctx, cause, byDNFT); err != nil {
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
			if err := w.check(ctx, "periodic check", false); err != nil && ctx.Err() == nil {
				logf("periodic check failed: %v", err)
			}
		}
	}
}

// receive passes the monitor's notifications on until ctx is done, and
// then closes the monitor.
func receive(ctx context.Context, m *nft.Monitor) (<-chan []nft.Event, <-chan error) {
	events := make(chan []nft.Event, 64)
	failed := make(chan error, 1)
	go func() {
		for {
			evs, err := m.Receive()
			if err != nil {
				failed <- err
				return
			}
			select {
			case events <- evs:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		<-ctx.Done()
		m.Close() // unblocks Receive
	}()
	return events, failed
}

// maxLoggedFindings bounds the findings logged per check.
const maxLoggedFindings = 10

// watcher is the state of a watch between checks.
type watcher struct {
	fw   *Firewall
	logf func(format string, args ...any)
	last *State
	// own is the generation of the watch's last repair: its notifications
	// are not checked again.
	own      uint32
	repaired bool
}

// check checks for drift against the recorded state, or w.last when the
// records are gone, and repairs it, holding the namespace lock
// throughout; without drift the recorded state becomes w.last. When the
// changes were all made by dnft commands (byDNFT) and no dnft table is
// left, that was `dnft reset`: there is nothing to restore.
func (w *watcher) check(ctx context.Context, cause string, byDNFT bool) error {
	fw := w.fw
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	w.repaired = false
	if byDNFT {
		cur, _, err := fw.record(ctx)
		if err == nil && cur.Daemon == nil {
			w.last = &cur
			w.logf("%s: dnft's tables were removed by a dnft command (reset): nothing to restore", cause)
			return nil
		}
	}
	start := time.Now()
	var (
		findings []Finding
		now      State
		gen      uint32
	)
	err = fw.retry(func() error {
		var err error
		findings, now, gen, err = fw.repair(ctx, w.last)
		return err
	})
	if errors.Is(err, ErrStateUnknown) && w.last == nil {
		if cur, _, rerr := fw.record(ctx); rerr == nil && cur.Daemon == nil {
			// Not initialized (yet): there is nothing to keep until a
			// dnft command initializes it.
			w.last = &cur
			w.logf("dnft is not initialized in %s: waiting for dnft init (start with --state FILE to restore a saved state instead)", fw.NetNS())
			return nil
		}
		return fmt.Errorf("%w (start the watch with --state FILE, a state saved with dnft save)", err)
	}
	if err != nil {
		return err
	}
	if len(findings) == 0 {
		w.last = &now
		if cause != "start" && cause != "periodic check" {
			w.logf("%s: no drift", cause)
		}
		return nil
	}
	for i, f := range findings {
		if i == maxLoggedFindings {
			w.logf("%s: drift: %d more finding(s)", cause, len(findings)-i)
			break
		}
		w.logf("%s: drift: %s", cause, f)
	}
	w.own, w.repaired, w.last = gen, true, &now
	w.logf("repaired %d finding(s) in one batch in %s (generation %d)", len(findings), time.Since(start).Round(time.Microsecond), gen)
	return nil
}
