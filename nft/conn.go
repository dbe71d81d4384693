package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/dnft/dnft/internal/blockfile"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TableName is the name of dnft's table in both families.
const TableName = "dnft"

// socketBuffer is the size forced on the netlink socket's buffers, so that
// the replies to a large batch fit (see perf-baselines: ENOBUFS, EMSGSIZE).
const socketBuffer = 32 << 20

// Conn is a lasting nf_tables netlink connection bound to one network
// namespace. The caller's thread never changes namespace: the sockets are
// created inside the namespace and stay bound to it. A Conn is safe for
// concurrent use; operations are serialized.
//
// Everything goes through one netlink socket driven with blocking system
// calls (see rawConn): batches, generation reads, one-element gets and
// listings, which it decodes itself. google/nftables only encodes the
// messages of changes other than set elements (see [encodeBatch]).
type Conn struct {
	mu     sync.Mutex
	nsPath string
	nsFile *os.File
	raw    *rawConn
	// extra are more sockets, dialled by the first listing that reads
	// several large sets at once and kept until Close.
	extra  []*rawConn
	hook   CommitHook
	cookie uint64
}

// NetNSPath resolves a namespace argument: "" is the calling thread's
// namespace, a bare name is /run/netns/NAME, anything with a slash is a path.
func NetNSPath(ns string) string {
	switch {
	case ns == "":
		return "/proc/thread-self/ns/net"
	case strings.ContainsRune(ns, '/'):
		return ns
	}
	return filepath.Join("/run/netns", ns)
}

// Open dials nf_tables inside the network namespace ns (see [NetNSPath]).
func Open(ctx context.Context, ns string) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := NetNSPath(ns)
	f, err := blockfile.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %q: %w", ns, err)
	}
	if err := isNetNS(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open network namespace %q: %w", ns, err)
	}
	raw, err := dialRaw(int(f.Fd()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dial nf_tables in %s: %w", p, err)
	}
	// The namespace's cookie, which the kernel never gives to another
	// namespace while it runs (unlike the inode number of a namespace,
	// reused once it is gone); 0 on kernels without SO_NETNS_COOKIE.
	cookie, _ := unix.GetsockoptUint64(raw.fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	return &Conn{nsPath: p, nsFile: f, raw: raw, cookie: cookie}, nil
}

// NetNSCookie returns the cookie of the connection's namespace: a number
// the kernel gives no other namespace until it restarts; 0 when the
// kernel does not tell it (before Linux 5.14).
func (c *Conn) NetNSCookie() uint64 { return c.cookie }

// ErrNotNetNS means that a path names something else than a network
// namespace.
var ErrNotNetNS = errors.New("not a network namespace")

// isNetNS checks that f is a network namespace: a file of the nsfs file
// system whose namespace type is CLONE_NEWNET.
func isNetNS(f *os.File) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return ErrNotNetNS
	}
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("namespace type: %w", err)
	}
	if t != unix.CLONE_NEWNET {
		return fmt.Errorf("%w (a namespace of another type)", ErrNotNetNS)
	}
	return nil
}

// CommitHook is called right before a batch is sent, with the ID of the
// thread that sends it (the kernel names it as the committer in its
// NFT_MSG_NEWGEN notification, see [Event.PID]) and the ruleset
// generation before the commit. An error cancels the commit.
type CommitHook func(tid int, gen uint32) error

// SetCommitHook sets the function called before every batch this
// connection sends (nil for none).
func (c *Conn) SetCommitHook(h CommitHook) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = h
}

// NetNS returns the path of the namespace the connection is bound to.
func (c *Conn) NetNS() string { return c.nsPath }

// NetNSFd returns the open namespace file descriptor (valid until Close).
func (c *Conn) NetNSFd() int { return int(c.nsFile.Fd()) }

// rawFailed replaces the raw socket after a failure on it, so that no
// half-read reply is left for the next request.
func (c *Conn) rawFailed() error {
	if c.raw == nil || c.nsFile == nil {
		return nil
	}
	_ = c.raw.close()
	raw, err := dialRaw(int(c.nsFile.Fd()))
	if err != nil {
		c.raw = nil
		return fmt.Errorf("dial nf_tables in %s: %w", c.nsPath, err)
	}
	c.raw = raw
	return nil
}

// forceBuffers raises both socket buffers beyond the sysctl limits.
func forceBuffers(s *netlink.Conn) error {
	rc, err := s.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, socketBuffer); e != nil {
				serr = fmt.Errorf("setsockopt %d: %w", opt, e)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Close releases the sockets and the namespace handle.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.raw != nil {
		errs = append(errs, c.raw.close())
		c.raw = nil
	}
	for _, r := range c.extra {
		errs = append(errs, r.close())
	}
	c.extra = nil
	if c.nsFile != nil {
		errs = append(errs, c.nsFile.Close())
		c.nsFile = nil
	}
	return errors.Join(errs...)
}

// Apply sends the transaction as one netlink batch. Either every change
// in it is committed or none is. An empty transaction sends nothing.
func (c *Conn) Apply(ctx context.Context, tx *Tx) error {
	if len(tx.ops) == 0 && tx.err == nil {
		return nil
	}
	_, err := c.apply(ctx, tx, nil, 0)
	return err
}

// apply sends tx and raw as one batch, with the generation check when
// wantGen is not 0, and returns the generation after the commit: with
// the check it is the one after wantGen (the kernel counts one per
// commit, and none can come between the check and the commit), without
// it it is read after the commit. Nothing to send sends nothing (the
// check is still made) and returns the current generation.
func (c *Conn) apply(ctx context.Context, tx *Tx, raw []RawRule, wantGen uint32) (uint32, error) {
	if tx.err != nil {
		return 0, tx.err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return 0, errors.New("nft: connection closed")
	}
	if len(tx.ops) == 0 && len(raw) == 0 {
		g, err := c.generation()
		if err == nil && wantGen != 0 && g != wantGen {
			return g, ErrGenerationChanged
		}
		return g, err
	}
	// The commit hook gets the generation before the commit: the
	// checked one, or the current one (read before the batch is encoded
	// into the socket's buffer).
	gen := wantGen
	if c.hook != nil && gen == 0 {
		var err error
		if gen, err = c.generation(); err != nil {
			return 0, err
		}
	}
	first, last, err := encodeBatch(&c.raw.w, tx, raw, wantGen)
	if err != nil {
		return 0, fmt.Errorf("build batch: %w", err)
	}
	if err := c.sendBatch(gen); err != nil {
		return 0, err
	}
	failed, errno, err := c.raw.batchResult(first, last)
	if err != nil {
		// The batch may or may not be committed: nobody may trust a view.
		return 0, errors.Join(fmt.Errorf("commit batch in %s: read the kernel's answer: %w", c.nsPath, err), c.rawFailed())
	}
	switch {
	case errno == unix.ERESTART && failed == first && wantGen != 0:
		return 0, ErrGenerationChanged
	case errno != 0:
		return 0, &KernelError{Errno: errno, err: errno}
	case wantGen != 0:
		return nextGen(wantGen), nil
	}
	return c.generation()
}

// sendBatch sends the encoded batch from one locked thread, the one the
// commit hook names (the kernel reports it as the committer); the answer
// may be read on any thread.
func (c *Conn) sendBatch(gen uint32) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if c.hook != nil {
		if err := c.hook(unix.Gettid(), gen); err != nil {
			return fmt.Errorf("before commit: %w", err)
		}
	}
	if err := c.raw.send(); err != nil {
		return errors.Join(fmt.Errorf("commit batch in %s: %w", c.nsPath, err), c.rawFailed())
	}
	return nil
}

// nextGen is the generation after one commit (the kernel skips 0).
func nextGen(g uint32) uint32 {
	if g++; g == 0 {
		g++
	}
	return g
}

// KernelError is an error the kernel returned for a batch.
type KernelError struct {
	Errno syscall.Errno
	err   error
}

func (e *KernelError) Error() string { return "commit batch: " + e.err.Error() }
func (e *KernelError) Unwrap() error { return e.err }

// IsNotFound reports whether err means that an object did not exist.
func IsNotFound(err error) bool {
	var k *KernelError
	return errors.As(err, &k) && k.Errno == unix.ENOENT
}

// IsExist reports whether err means that an object already existed.
func IsExist(err error) bool {
	var k *KernelError
	return errors.As(err, &k) && k.Errno == unix.EEXIST
}
