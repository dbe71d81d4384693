package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateDir holds the lock that serialises `ip netns add/del` across test
// processes and one owner file per namespace the harness created.
const stateDir = "/run/dnft-harness"

// lockTimeout bounds the wait for the cross-process namespace lock.
const lockTimeout = time.Minute

// NewNS creates an empty network namespace (only lo, up) named
// [NamePrefix] + 6 random hex digits + "-" + role, for example
// "dnft-3fa9c1-bench". role takes letters, digits, '_', '.' and '-'. The
// caller removes it with [NS.Remove]; tests use [Scratch], which does that
// at cleanup.
//
// Every namespace the harness creates is recorded as owned by the calling
// process, so that [Sweep] can remove it if the process dies without
// cleaning up (a test binary killed by its -timeout, for example).
func NewNS(ctx context.Context, role string) (*NS, error) {
	if !containerName.MatchString(role) {
		return nil, fmt.Errorf("harness: namespace role %q: need 1-64 of [A-Za-z0-9_.-]", role)
	}
	prefix, err := randomPrefix()
	if err != nil {
		return nil, err
	}
	ns := &NS{Name: prefix + role}
	if err := addNetns(ctx, ns.Name); err != nil {
		return nil, err
	}
	if err := ns.ip(ctx, "link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(err, ns.Remove())
	}
	return ns, nil
}

// Remove stops the namespace's echo servers and deletes the namespace. Use
// it for namespaces from [NewNS]; those of a [Topology] and of [Scratch]
// are removed by their test's cleanup.
func (n *NS) Remove() error {
	n.closeServers()
	return delNetns(n.Name)
}

// randomPrefix returns NamePrefix followed by 6 random hex digits and "-".
func randomPrefix() (string, error) {
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("harness: random name: %w", err)
	}
	return NamePrefix + hex.EncodeToString(rnd[:]) + "-", nil
}

// addNetns creates the named namespace under the cross-process lock and
// records this process as its owner.
func addNetns(ctx context.Context, name string) error {
	return withNetnsLock(ctx, func() error {
		owner := ownerPath(name)
		if err := os.WriteFile(owner, []byte(selfOwner()), 0o644); err != nil {
			return fmt.Errorf("harness: record owner of %s: %w", name, err)
		}
		if err := runIP(ctx, []string{"netns", "add", name}, ""); err != nil {
			_ = os.Remove(owner)
			return err
		}
		return nil
	})
}

// delNetns deletes the named namespace and its owner record.
func delNetns(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	return withNetnsLock(ctx, func() error {
		if err := runIP(ctx, []string{"netns", "del", name}, ""); err != nil {
			return err
		}
		if err := os.Remove(ownerPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("harness: remove owner record of %s: %w", name, err)
		}
		return nil
	})
}

// withNetnsLock runs fn while holding an exclusive flock on
// /run/dnft-harness/netns.lock. The first `ip netns add` on a machine
// turns /run/netns into a shared bind mount, and two processes (or two
// goroutines: each call opens the file anew, so flock serialises them too)
// doing that at once stack two mounts; the lock also keeps [Sweep] from
// judging a namespace whose owner record is being written.
func withNetnsLock(ctx context.Context, fn func() error) error {
	if err := os.MkdirAll(filepath.Join(stateDir, "owners"), 0o755); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "netns.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("harness: open namespace lock: %w", err)
	}
	defer f.Close() // releases the lock
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("harness: lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: wait for %s: %w", f.Name(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fn()
}

func ownerPath(name string) string { return filepath.Join(stateDir, "owners", name) }

// selfOwner identifies this process: its pid and its start time in clock
// ticks since boot, so that a reused pid is not taken for the owner.
func selfOwner() string {
	pid := os.Getpid()
	return fmt.Sprintf("%d %s\n", pid, startTime(pid))
}

// startTime returns field 22 of /proc/PID/stat, or "" if the process does
// not exist.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may contain spaces; it ends at the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	const startField = 22 - 3 // fields 1 and 2 are cut off; field 3 is fields[0]
	if len(fields) <= startField {
		return ""
	}
	return fields[startField]
}

// ownerAlive reports whether the process an owner record names still runs.
func ownerAlive(record string) bool {
	f := strings.Fields(record)
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false
	}
	return startTime(pid) == f[1]
}

// Sweep removes namespaces that test processes left behind: every
// namespace whose name starts with [NamePrefix] and whose owner process
// (recorded by the harness when it created it) has exited, and every such
// namespace without an owner record (created by something else, such as
// `dnft demo`) that is older than unownedAge. Namespaces of running test
// processes are left alone, so it is safe while other tests run. It
// returns the names it removed.
func Sweep(ctx context.Context, unownedAge time.Duration) ([]string, error) {
	var removed []string
	err := withNetnsLock(ctx, func() error {
		entries, err := os.ReadDir(netnsDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("harness: %w", err)
		}
		var errs []error
		for _, e := range entries {
			name := e.Name()
			if !strings.HasPrefix(name, NamePrefix) || !sweepable(name, unownedAge) {
				continue
			}
			if err := runIP(ctx, []string{"netns", "del", name}, ""); err != nil {
				errs = append(errs, err)
				continue
			}
			_ = os.Remove(ownerPath(name))
			removed = append(removed, name)
		}
		// Owner records of namespaces that are gone.
		owners, _ := os.ReadDir(filepath.Join(stateDir, "owners"))
		for _, o := range owners {
			if _, err := os.Stat(filepath.Join(netnsDir, o.Name())); errors.Is(err, os.ErrNotExist) {
				_ = os.Remove(ownerPath(o.Name()))
			}
		}
		return errors.Join(errs...)
	})
	return removed, err
}

// sweepable decides whether Sweep removes the namespace name.
func sweepable(name string, unownedAge time.Duration) bool {
	record, err := os.ReadFile(ownerPath(name))
	if err == nil {
		return !ownerAlive(string(record))
	}
	// The bind-mounted nsfs inode's mtime is the namespace's creation time.
	st, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil && time.Since(st.ModTime()) > unownedAge
}
