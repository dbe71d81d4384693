package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// demoTimeout bounds each probe's connect and its read of the reply.
const demoTimeout = time.Second

// inNetns runs fn in a new goroutine on a locked OS thread that has
// entered the namespace at path, and waits for it. The thread is switched
// back and unlocked afterwards; if switching back fails it stays locked, so
// Go discards it when the goroutine ends instead of reusing a thread in
// the wrong namespace. Sockets created by fn keep the namespace.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- lockedInNetns(path, fn) }()
	return <-errc
}

func lockedInNetns(path string, fn func() error) (err error) {
	runtime.LockOSThread()
	unlock := true
	defer func() {
		if unlock {
			runtime.UnlockOSThread()
		}
	}()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	defer func() {
		if rerr := netns.Set(orig); rerr != nil {
			unlock = false
			err = errors.Join(err, fmt.Errorf("leave network namespace %s: %w", path, rerr))
		}
	}()
	return fn()
}

// writeSysctls writes sysctls (paths below /proc/sys) inside a namespace.
func writeSysctls(path string, kv [][2]string) error {
	return inNetns(path, func() error {
		for _, e := range kv {
			if err := os.WriteFile("/proc/sys/"+e[0], []byte(e[1]), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", e[0], e[1], err)
			}
		}
		return nil
	})
}

// echoServer is a TCP server in a namespace that answers every connection
// with the source address it saw, one line, and closes it.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func serveEcho(nsPath string, addr netip.AddrPort) (*echoServer, error) {
	s := &echoServer{}
	err := inNetns(nsPath, func() error {
		var err error
		s.ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server on %s: %w", addr, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(demoTimeout))
				from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
				fmt.Fprintf(c, "%s\n", from)
			}()
		}
	}()
	return s, nil
}

// Close stops the server and waits until none of its sockets is open, so
// that they no longer pin the namespace.
func (s *echoServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// Probe outcomes.
const (
	outcomeOK          = "ok"
	outcomeBlocked     = "blocked" // no answer: dropped, as Docker's rules do
	outcomeRefused     = "refused"
	outcomeUnreachable = "unreachable"
	outcomeError       = "error"
)

// probeResult is what one TCP connection attempt found.
type probeResult struct {
	outcome string
	saw     netip.Addr // the source address the echo server saw (ok only)
	err     error      // the cause for anything but ok and blocked
}

// probeTCP connects from the namespace at nsPath to dst and reads the echo
// server's line.
func probeTCP(ctx context.Context, nsPath string, dst netip.AddrPort) probeResult {
	var conn net.Conn
	err := inNetns(nsPath, func() error {
		d := net.Dialer{Timeout: demoTimeout}
		var err error
		conn, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return classify(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(demoTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return classify(fmt.Errorf("read reply: %w", err))
	}
	saw, err := netip.ParseAddr(strings.TrimSpace(line))
	if err != nil {
		return probeResult{outcome: outcomeError, err: fmt.Errorf("bad reply %q", line)}
	}
	return probeResult{outcome: outcomeOK, saw: saw}
}

func classify(err error) probeResult {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return probeResult{outcome: outcomeError, err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return probeResult{outcome: outcomeBlocked}
	case errors.Is(err, syscall.ECONNREFUSED):
		return probeResult{outcome: outcomeRefused, err: err}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return probeResult{outcome: outcomeUnreachable, err: err}
	}
	return probeResult{outcome: outcomeError, err: err}
}
