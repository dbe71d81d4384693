package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Probe time limits, unless the context sets another ([WithProbeLimit]).
// Each is also cut short by the caller's context.
const (
	// TCPTimeout bounds a TCP probe's connect, and then separately its
	// write and read.
	TCPTimeout = 700 * time.Millisecond
	// UDPTimeout bounds the wait for a UDP probe's reply.
	UDPTimeout = 700 * time.Millisecond
	// PingTimeout bounds the wait for an ICMP echo reply.
	PingTimeout = time.Second
)

// probeLimitKey is the context key of [WithProbeLimit].
type probeLimitKey struct{}

// WithProbeLimit returns a context in which probes ([NS.TCP], [NS.UDP],
// [NS.Ping], [RunMatrix]) wait up to d for an answer instead of
// [TCPTimeout], [UDPTimeout] and [PingTimeout]. Use a long limit for a
// probe that must be answered and cannot be repeated (a packet that must
// be counted exactly once): on a loaded machine its answer may come late,
// which is not a drop.
func WithProbeLimit(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, probeLimitKey{}, d)
}

// probeLimit is the context's probe limit, or def.
func probeLimit(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Value(probeLimitKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return def
}

// Values of [Result.Err] that the probes produce. Other failures carry a
// short error text.
const (
	// Refused: TCP RST (ECONNREFUSED), or for UDP an ICMP port
	// unreachable.
	Refused = "refused"
	// Timeout: no answer within the probe's time limit (a silent drop).
	Timeout = "timeout"
	// Unreachable: no route (ENETUNREACH, EHOSTUNREACH), or an ICMP
	// destination-unreachable other than port-unreachable, including
	// "reject with icmp admin-prohibited".
	Unreachable = "unreachable"
	// Denied: the prober's own namespace dropped a UDP datagram or ICMP
	// echo on output (EPERM from a local firewall rule). TCP ignores that
	// error and retransmits, so a dropped SYN shows as [Timeout].
	Denied = "denied"
	// Canceled: the caller's context was canceled.
	Canceled = "canceled"
)

// Result is the outcome of one probe.
type Result struct {
	// OK is true when the echo came back.
	OK bool
	// Err says why the probe failed: one of [Refused], [Timeout],
	// [Unreachable], [Denied], [Canceled], or another short text. Empty
	// when OK.
	Err string
	// Seen is, for TCP and UDP, the source address the echo server saw
	// (after any NAT on the way). For ICMP it is the source address of the
	// echo reply. Zero when the probe failed.
	Seen netip.Addr
}

// String renders the result as "ok from 203.0.113.1", "ok", or the error
// text, for example "timeout".
func (r Result) String() string {
	switch {
	case r.OK && r.Seen.IsValid():
		return "ok from " + r.Seen.String()
	case r.OK:
		return "ok"
	case r.Err == "":
		return "failed"
	}
	return r.Err
}

// TCP connects from the namespace to dst, writes a line and reads the
// echo server's answer (see [NS.ServeTCP]).
func (n *NS) TCP(ctx context.Context, dst netip.AddrPort) Result {
	return n.TCPFrom(ctx, netip.Addr{}, dst)
}

// TCPFrom is [NS.TCP] from the source address src, one of the
// namespace's own addresses (the zero Addr lets the kernel choose).
func (n *NS) TCPFrom(ctx context.Context, src netip.Addr, dst netip.AddrPort) Result {
	dst = unmapPort(dst)
	var c net.Conn
	d := &net.Dialer{}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	err := n.Do(func() error {
		dctx, cancel := context.WithTimeout(ctx, probeLimit(ctx, TCPTimeout))
		defer cancel()
		var err error
		c, err = d.DialContext(dctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return failure(ctx, err)
	}
	defer c.Close()
	return exchange(ctx, c, probeLimit(ctx, TCPTimeout))
}

// UDP sends one datagram from the namespace to dst and waits for the echo
// server's answer (see [NS.ServeUDP]). The socket is connected, so an
// ICMP port unreachable shows as [Refused].
func (n *NS) UDP(ctx context.Context, dst netip.AddrPort) Result {
	dst = unmapPort(dst)
	var c *net.UDPConn
	err := n.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return failure(ctx, err)
	}
	defer c.Close()
	return exchange(ctx, c, probeLimit(ctx, UDPTimeout))
}

// exchange writes a line to c and parses the echoed address.
func exchange(ctx context.Context, c net.Conn, limit time.Duration) Result {
	if ctx.Err() != nil {
		return failure(ctx, ctx.Err())
	}
	_ = c.SetDeadline(time.Now().Add(limit))
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(c, "dnft-harness\n"); err != nil {
		return failure(ctx, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return failure(ctx, err)
	}
	seen, perr := netip.ParseAddr(strings.TrimSpace(line))
	if perr != nil {
		return Result{Err: fmt.Sprintf("bad reply %q", line)}
	}
	return Result{OK: true, Seen: seen}
}

// failure classifies a probe error.
func failure(ctx context.Context, err error) Result {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Result{Err: Refused}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Result{Err: Unreachable}
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return Result{Err: Denied}
	case errors.Is(err, syscall.ECONNRESET):
		return Result{Err: "reset"}
	case errors.Is(ctx.Err(), context.Canceled):
		return Result{Err: Canceled}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Result{Err: Timeout}
	case errors.Is(err, io.EOF):
		return Result{Err: "closed"}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Result{Err: Timeout}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return Result{Err: errno.Error()}
	}
	return Result{Err: err.Error()}
}

func unmapPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Probe kinds for [Probe.Kind].
const (
	KindTCP  = "tcp"
	KindUDP  = "udp"
	KindICMP = "icmp"
)

// Probe is one entry of a connectivity matrix.
type Probe struct {
	// Name identifies the probe in [RunMatrix]'s result; it must be unique.
	Name string
	// From is the namespace the probe is sent from.
	From *NS
	// Kind is [KindTCP], [KindUDP] or [KindICMP].
	Kind string
	// To is the destination; the port is ignored for ICMP.
	To netip.AddrPort
}

// Run sends the probe.
func (p Probe) Run(ctx context.Context) Result {
	switch p.Kind {
	case KindTCP:
		return p.From.TCP(ctx, p.To)
	case KindUDP:
		return p.From.UDP(ctx, p.To)
	case KindICMP:
		return p.From.Ping(ctx, p.To.Addr())
	}
	return Result{Err: fmt.Sprintf("unknown probe kind %q", p.Kind)}
}

// MatrixParallel is how many probes [RunMatrix] runs at once. It is large
// enough that a matrix of a few dozen probes takes about two probe
// timeouts even when most of them time out.
const MatrixParallel = 64

// RunMatrix runs the probes concurrently, at most [MatrixParallel] at a
// time, and returns their results by [Probe.Name]. A probe that fails is
// sent once more and its second result counts: on a loaded machine a
// first packet can come late (a neighbour lookup, a stalled thread)
// without any firewall decision, while a probe that a firewall blocks
// fails both times. It panics if two probes share a name.
func RunMatrix(ctx context.Context, probes []Probe) map[string]Result {
	names := make(map[string]bool, len(probes))
	for _, p := range probes {
		if names[p.Name] {
			panic("harness: duplicate probe name " + p.Name)
		}
		names[p.Name] = true
	}
	out := runAll(ctx, probes)
	var again []Probe
	for _, p := range probes {
		if !out[p.Name].OK {
			again = append(again, p)
		}
	}
	for name, r := range runAll(ctx, again) {
		out[name] = r
	}
	return out
}

// runAll runs the probes concurrently, at most MatrixParallel at a time.
func runAll(ctx context.Context, probes []Probe) map[string]Result {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, MatrixParallel)
		out = make(map[string]Result, len(probes))
	)
	for _, p := range probes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := p.Run(ctx)
			mu.Lock()
			out[p.Name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// DiffMatrix compares two matrices (for example from the two halves of a
// [NewTwin]) and returns one line per probe whose results differ, sorted by
// name, such as `c1->inet:tcp: ok from 203.0.113.1 != timeout`. A probe
// missing from one side shows as "missing".
func DiffMatrix(a, b map[string]Result) []string {
	var diffs []string
	seen := map[string]bool{}
	for _, m := range []map[string]Result{a, b} {
		for name := range m {
			if seen[name] {
				continue
			}
			seen[name] = true
			ra, oka := a[name]
			rb, okb := b[name]
			if oka && okb && ra == rb {
				continue
			}
			sa, sb := ra.String(), rb.String()
			if !oka {
				sa = "missing"
			}
			if !okb {
				sb = "missing"
			}
			diffs = append(diffs, fmt.Sprintf("%s: %s != %s", name, sa, sb))
		}
	}
	sort.Strings(diffs)
	return diffs
}
