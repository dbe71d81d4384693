package dnft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dnft/dnft/internal/blockfile"
	"golang.org/x/sys/unix"
)

// LockDir is the directory of the namespace lock files. Each network
// namespace has one, named after the namespace's device and inode
// numbers, so that every path to the same namespace (/run/netns/NAME,
// /proc/PID/ns/net) finds the same lock. It also holds the commit
// journal (see journal.go), which tells a watch the commits of dnft.
var LockDir = "/run/dnft"

// nsLock serializes the operations of every dnft process and every
// Firewall on one namespace with an flock(2) on the namespace's lock
// file: each mutating operation holds it exclusively from reading the
// state it checks to the commit, so two operations never decide on the
// same stale state, and readers that must see one consistent state hold
// it shared. The lock is released when the process dies.
type nsLock struct {
	path string
	f    *os.File // opened on first use
	// next is the kind of the next commit, for the journal (see
	// [nsLock.record]); reset after each.
	next uint32
	// cookie is the namespace's cookie (see [nft.Conn.NetNSCookie]);
	// journal the open file's commit journal mapped in memory, once its
	// header was made l's (see [nsLock.mapJournal]).
	cookie  uint64
	journal []byte
}

// lockPath returns the lock file of the namespace open as fd.
func lockPath(fd int) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("stat network namespace: %w", err)
	}
	return filepath.Join(LockDir, fmt.Sprintf("netns-%d-%d.lock", st.Dev, st.Ino)), nil
}

// open opens (and creates) the lock file: the directory 0700, the file
// 0600. Creating a lock file, which happens once per namespace, also
// removes the lock files of namespaces that are gone (see [pruneLocks]).
func (l *nsLock) open() error {
	if l.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("namespace lock: %w", err)
	}
	f, err := blockfile.Open(l.path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err == nil {
		pruneLocks(filepath.Dir(l.path), l.path)
	} else if errors.Is(err, os.ErrExist) {
		f, err = blockfile.Open(l.path, unix.O_RDWR|unix.O_CREAT, 0o600)
	}
	if err != nil {
		return fmt.Errorf("namespace lock: %w", err)
	}
	l.f = f
	return nil
}

// current reports whether the open lock file is still the one at its
// path: a lock file removed by [pruneLocks] while this one waited must
// be opened again, or two processes would lock different files. Lock
// files are only ever removed (never renamed), so a file still linked is
// the one at its path: one fstat, without a walk of the path.
func (l *nsLock) current() bool {
	var st unix.Stat_t
	return unix.Fstat(int(l.f.Fd()), &st) == nil && st.Nlink > 0
}

// lock takes the lock, exclusive or shared, waiting as long as ctx
// allows. The returned function releases it.
func (l *nsLock) lock(ctx context.Context, exclusive bool) (func(), error) {
	for range 5 {
		unlock, err := l.lockOnce(ctx, exclusive)
		if err != nil || l.current() {
			return unlock, err
		}
		// The file was removed as stale while we waited for it.
		unlock()
		_ = l.close()
	}
	return nil, fmt.Errorf("namespace lock %s: the lock file keeps being replaced", l.path)
}

// lockOnce takes the lock of the lock file open now.
func (l *nsLock) lockOnce(ctx context.Context, exclusive bool) (func(), error) {
	if err := l.open(); err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	fd := int(l.f.Fd())
	unlock := func() { _ = unix.Flock(fd, unix.LOCK_UN) }
	err := flockRetry(fd, how|unix.LOCK_NB)
	if err == nil {
		return unlock, nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("namespace lock %s: %w", l.path, err)
	}
	// Wait in a goroutine, so that ctx can give up; a lock obtained after
	// that is released at once.
	// The goroutine locks through a duplicate of the descriptor (the same
	// open file, so the same lock), which stays valid even if the lock
	// file is closed meanwhile.
	dfd, err := unix.Dup(fd)
	if err != nil {
		return nil, fmt.Errorf("namespace lock %s: %w", l.path, err)
	}
	done := make(chan error, 1)
	go func() { done <- flockRetry(dfd, how) }()
	select {
	case err := <-done:
		_ = unix.Close(dfd)
		if err != nil {
			return nil, fmt.Errorf("namespace lock %s: %w", l.path, err)
		}
		return unlock, nil
	case <-ctx.Done():
		go func() {
			if <-done == nil {
				_ = unix.Flock(dfd, unix.LOCK_UN)
			}
			_ = unix.Close(dfd)
		}()
		return nil, fmt.Errorf("wait for namespace lock %s (another dnft operation is running): %w", l.path, ctx.Err())
	}
}

// flockRetry is flock(2) restarted after signals.
func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// close releases the lock file (and with it any lock held).
func (l *nsLock) close() error {
	if l.f == nil {
		return nil
	}
	err := errors.Join(l.unmapJournal(), l.f.Close())
	l.f = nil
	return err
}
