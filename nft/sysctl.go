package nft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// inNetNS runs fn on a locked OS thread that has entered the connection's
// namespace, and moves the thread back afterwards. If the thread cannot be
// moved back it stays locked, so the Go runtime discards it.
func (c *Conn) inNetNS(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(c.NetNSFd())); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", c.nsPath, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// sysctlPath turns "net.ipv4.ip_forward" into its /proc/sys path.
// A key containing a slash is taken as a path below /proc/sys, so that
// interface names with dots can be named.
func sysctlPath(key string) string {
	if strings.Contains(key, "/") {
		return filepath.Join("/proc/sys", key)
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// Sysctl reads a sysctl of the connection's namespace, e.g.
// "net.ipv4.ip_forward". ok is false when it does not exist.
func (c *Conn) Sysctl(key string) (val string, ok bool, err error) {
	err = c.inNetNS(func() error {
		b, err := os.ReadFile(sysctlPath(key))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		val, ok = strings.TrimSpace(string(b)), true
		return nil
	})
	return val, ok, err
}

// SetSysctl writes a sysctl of the connection's namespace (see [Conn.Sysctl]
// for the key).
func (c *Conn) SetSysctl(key, val string) error {
	p := sysctlPath(key)
	return c.inNetNS(func() error {
		if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, val, err)
		}
		return nil
	})
}

// DialContext opens a connection whose socket is created in the
// connection's namespace (it stays there: the caller's thread does not
// change namespace for the exchange), for example to ask that
// namespace's DNS servers.
func (c *Conn) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := c.inNetNS(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	return conn, err
}
