package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TableName is the name of dnft's table in both families.
const TableName = "dnft"

// socketBuffer is the size forced on the netlink socket's buffers, so that
// the replies to a large batch fit (see perf-baselines: ENOBUFS, EMSGSIZE).
const socketBuffer = 32 << 20

// flushTimeout bounds the wait for the kernel's replies to one batch.
const flushTimeout = 30 * time.Second

// Conn is a lasting nf_tables netlink connection bound to one network
// namespace. The caller's thread never changes namespace: the socket is
// created inside the namespace and stays bound to it. A Conn is safe for
// concurrent use; operations are serialized.
type Conn struct {
	mu     sync.Mutex
	nsPath string
	nsFile *os.File
	nc     *nftables.Conn
	sock   *netlink.Conn
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
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %q: %w", ns, err)
	}
	c := &Conn{nsPath: p, nsFile: f}
	if err := c.redial(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// NetNS returns the path of the namespace the connection is bound to.
func (c *Conn) NetNS() string { return c.nsPath }

// NetNSFd returns the open namespace file descriptor (valid until Close).
func (c *Conn) NetNSFd() int { return int(c.nsFile.Fd()) }

// redial replaces the netlink socket with a fresh one. Called at Open and
// after every error, because google/nftables v0.3.0 keeps stale replies and
// poisoned errors on a socket that saw one.
func (c *Conn) redial() error {
	if c.nc != nil {
		_ = c.nc.CloseLasting()
		c.nc, c.sock = nil, nil
	}
	var sock *netlink.Conn
	nc, err := nftables.New(
		nftables.WithNetNSFd(int(c.nsFile.Fd())),
		nftables.AsLasting(),
		nftables.WithSockOptions(func(s *netlink.Conn) error {
			sock = s
			return forceBuffers(s)
		}),
	)
	if err != nil {
		return fmt.Errorf("dial nf_tables in %s: %w", c.nsPath, err)
	}
	c.nc, c.sock = nc, sock
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

// Close releases the socket and the namespace handle.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.nc != nil {
		errs = append(errs, c.nc.CloseLasting())
		c.nc = nil
	}
	if c.nsFile != nil {
		errs = append(errs, c.nsFile.Close())
		c.nsFile = nil
	}
	return errors.Join(errs...)
}

// Apply sends the transaction as one netlink batch. Either every change
// in it is committed or none is. An empty transaction sends nothing.
func (c *Conn) Apply(ctx context.Context, tx *Tx) error {
	if tx.err != nil {
		return tx.err
	}
	if len(tx.ops) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		return errors.New("nft: connection closed")
	}
	if err := tx.build(c.nc); err != nil {
		// Messages of a half-built batch are queued in the library's
		// Conn: throw the socket away so that nothing of it is sent.
		return errors.Join(fmt.Errorf("build batch: %w", err), c.redial())
	}
	deadline := time.Now().Add(flushTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if c.sock != nil {
		_ = c.sock.SetDeadline(deadline)
	}
	err := c.nc.Flush()
	if c.sock != nil {
		_ = c.sock.SetDeadline(time.Time{})
	}
	if err != nil {
		return errors.Join(classify(err), c.redial())
	}
	return nil
}

// classify wraps kernel errors so that callers can test them with
// [IsNotFound] and [IsExist].
func classify(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &KernelError{Errno: errno, err: err}
	}
	return fmt.Errorf("commit batch: %w", err)
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
