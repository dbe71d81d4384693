package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps its bind mounts.
const netnsDir = "/run/netns"

// NS is one named network namespace of a [Topology].
type NS struct {
	// Name is the namespace's name under /run/netns, as `ip netns list`
	// shows it.
	Name string
	// Addr4 is the namespace's IPv4 address on its eth0 ([PeerIf]); it is
	// the zero Addr for Host.
	Addr4 netip.Addr
	// Addr6 is the namespace's IPv6 address on its eth0; it is the zero
	// Addr for Host and when IPv6 is not configured.
	Addr6 netip.Addr

	mu       sync.Mutex
	hits     []Hit
	servers  []*server
	loopRule bool // AddRoute has moved the local-table rule
}

// Hit records one connection or datagram that an echo server in the
// namespace received.
type Hit struct {
	// Proto is "tcp" or "udp".
	Proto string
	// Port is the server's port.
	Port uint16
	// From is the peer's address and port as the server saw them
	// (IPv4-mapped addresses are unmapped).
	From netip.AddrPort
	// To is the local address the packet was sent to, when known (always
	// for UDP, for TCP the local end of the connection).
	To netip.Addr
}

// Path returns the namespace's bind-mount path, /run/netns/NAME.
func (n *NS) Path() string { return filepath.Join(netnsDir, n.Name) }

// String returns the namespace's name.
func (n *NS) String() string { return n.Name }

// Run runs `ip netns exec NAME args...` and returns its combined output.
// The error, if any, includes the command and its output.
func (n *NS) Run(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("harness: Run needs a command")
	}
	return n.RunStdin(ctx, "", args...)
}

// RunStdin is [NS.Run] with stdin fed to the command, for example
// RunStdin(ctx, ruleset, "nft", "-f", "-").
func (n *NS) RunStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("harness: RunStdin needs a command")
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ip runs `ip -n NAME args...`.
func (n *NS) ip(ctx context.Context, args ...string) error {
	return runIP(ctx, append([]string{"-n", n.Name}, args...), "")
}

// Do runs fn on a locked OS thread that has entered the namespace, then
// moves the thread back to its original namespace. The thread is unlocked
// only if that restore worked; otherwise it stays locked and Go discards it
// when the goroutine ends, so it never returns to the thread pool in the
// wrong namespace. The restore also happens if fn panics.
//
// Only the calling goroutine runs in the namespace: goroutines that fn
// starts do not. Sockets created by fn stay in the namespace after Do
// returns.
func (n *NS) Do(fn func() error) (err error) {
	runtime.LockOSThread()
	unlock := true
	defer func() {
		if unlock {
			runtime.UnlockOSThread()
		}
	}()

	tid := syscall.Gettid()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("harness: get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(n.Path())
	if err != nil {
		return fmt.Errorf("harness: open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("harness: enter netns %s: %w", n.Name, err)
	}
	defer func() {
		if got := syscall.Gettid(); got != tid {
			// Cannot happen with a locked thread; never unlock if it does.
			unlock = false
			err = errors.Join(err, fmt.Errorf("harness: thread changed from %d to %d inside netns %s", tid, got, n.Name))
			return
		}
		if rerr := netns.Set(orig); rerr != nil {
			unlock = false
			err = errors.Join(err, fmt.Errorf("harness: restore netns after %s: %w", n.Name, rerr))
		}
	}()
	return fn()
}

// SetSysctl writes value to a sysctl of the namespace. key is either
// dotted ("net.ipv4.ip_forward") or a path below /proc/sys
// ("net/ipv4/conf/br-x.y/route_localnet", needed when an interface name
// contains a dot). Only net.* sysctls are per namespace.
func (n *NS) SetSysctl(key, value string) error {
	path := key
	if !strings.Contains(key, "/") {
		path = strings.ReplaceAll(key, ".", "/")
	}
	path = filepath.Join("/proc/sys", path)
	return n.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("harness: %s: set %s=%s: %w", n.Name, key, value, err)
		}
		return nil
	})
}

// Sysctl reads a sysctl of the namespace; key is as for [NS.SetSysctl].
func (n *NS) Sysctl(key string) (string, error) {
	path := key
	if !strings.Contains(key, "/") {
		path = strings.ReplaceAll(key, ".", "/")
	}
	var v []byte
	err := n.Do(func() error {
		var err error
		v, err = os.ReadFile(filepath.Join("/proc/sys", path))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("harness: %s: read %s: %w", n.Name, key, err)
	}
	return strings.TrimSpace(string(v)), nil
}

// setSysctls writes several sysctls in one namespace switch. Keys are
// paths below /proc/sys. Keys listed in optional may be missing from the
// kernel.
func (n *NS) setSysctls(kv [][2]string, optional map[string]bool) error {
	return n.Do(func() error {
		for _, e := range kv {
			err := os.WriteFile(filepath.Join("/proc/sys", e[0]), []byte(e[1]), 0o644)
			if err != nil && !(optional[e[0]] && errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("harness: %s: set %s=%s: %w", n.Name, e[0], e[1], err)
			}
		}
		return nil
	})
}

// loopback4 is 127.0.0.0/8.
var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// AddRoute adds (or replaces) a route to dst via the gateway via, for
// example a container subnet via [LANHostAddr4] in the LAN namespace.
//
// If dst overlaps 127.0.0.0/8 the route would normally lose to the
// namespace's own loopback route in the local table, so AddRoute also adds
// a policy rule that looks dst up in the main table before the local table,
// and sets route_localnet=1 on eth0 so replies from 127.0.0.0/8 addresses
// are accepted. That lets the LAN namespace send packets for 127.0.0.1 to
// the Host, as an attacker on the host's network could.
func (n *NS) AddRoute(ctx context.Context, dst netip.Prefix, via netip.Addr) error {
	dst = dst.Masked()
	if dst.Addr().Is4() && dst.Overlaps(loopback4) {
		if err := n.prioritizeMain(ctx, dst); err != nil {
			return err
		}
	}
	return n.ip(ctx, "route", "replace", dst.String(), "via", via.String())
}

// prioritizeMain moves the local-table rule from priority 0 to 100 (once)
// and adds a rule at 50 that sends dst to the main table.
func (n *NS) prioritizeMain(ctx context.Context, dst netip.Prefix) error {
	n.mu.Lock()
	moved := n.loopRule
	n.loopRule = true
	n.mu.Unlock()
	if !moved {
		if err := n.ip(ctx, "-4", "rule", "add", "pref", "100", "lookup", "local"); err != nil {
			return err
		}
		if err := n.ip(ctx, "-4", "rule", "del", "pref", "0", "lookup", "local"); err != nil {
			return err
		}
	}
	if err := n.ip(ctx, "-4", "rule", "add", "pref", "50", "to", dst.String(), "lookup", "main"); err != nil {
		return err
	}
	return n.SetSysctl("net/ipv4/conf/"+PeerIf+"/route_localnet", "1")
}

// Hits returns what the namespace's echo servers have received so far,
// oldest first.
func (n *NS) Hits() []Hit {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Hit(nil), n.hits...)
}

// ClearHits forgets the recorded [Hit]s.
func (n *NS) ClearHits() {
	n.mu.Lock()
	n.hits = nil
	n.mu.Unlock()
}

// SawFrom reports whether an echo server in the namespace received proto
// ("tcp" or "udp") traffic on port from src. A hit is recorded by the
// server's goroutine, which may run after the probe that caused it has
// returned, so SawFrom waits for it: it returns true as soon as the hit is
// there, false only after [HitWait]. Use it to prove that traffic
// arrived, not that it did not.
func (n *NS) SawFrom(proto string, port uint16, src netip.Addr) bool {
	deadline := time.Now().Add(HitWait)
	for {
		for _, h := range n.Hits() {
			if h.Proto == proto && h.Port == port && h.From.Addr() == src.Unmap() {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HitWait is how long [NS.SawFrom] waits for a hit: generous, because it
// only matters on a loaded machine and a hit that is there ends the wait.
const HitWait = 10 * time.Second

func (n *NS) record(h Hit) {
	n.mu.Lock()
	n.hits = append(n.hits, h)
	n.mu.Unlock()
}

// runIP runs `ip args...`, feeding stdin when it is not empty.
func runIP(ctx context.Context, args []string, stdin string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if stdin != "" {
			msg += "\nbatch:\n" + stdin
		}
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return nil
}
