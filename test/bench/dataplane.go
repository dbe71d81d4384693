package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/dnft/dnft/test/harness"
)

// maxExchanges bounds every rate loop, whatever its duration.
const maxExchanges = 1_000_000

// Servers are the data plane's minimal servers in a container: TCP
// accepts, writes one byte and closes; UDP answers every datagram with
// itself. They keep no record, so they cost the same in every run.
type Servers struct {
	tcp *net.TCPListener
	udp *net.UDPConn
	wg  sync.WaitGroup
}

// StartServers starts TCP and UDP servers on port inside ns.
func StartServers(ns *harness.NS, port uint16) (*Servers, error) {
	s := &Servers{}
	err := ns.Do(func() error {
		var err error
		if s.tcp, err = net.ListenTCP("tcp4", &net.TCPAddr{Port: int(port)}); err != nil {
			return err
		}
		s.udp, err = net.ListenUDP("udp4", &net.UDPAddr{Port: int(port)})
		return err
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("bench: servers in %s: %w", ns.Name, err)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.tcp.AcceptTCP()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_, _ = c.Write([]byte{'x'})
				_ = c.Close()
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 64)
		for {
			n, from, err := s.udp.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_, _ = s.udp.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	return s, nil
}

// Close stops the servers.
func (s *Servers) Close() {
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	s.wg.Wait()
}

// Rate is the outcome of one rate run.
type Rate struct {
	// OK is the number of completed exchanges, Failed the others.
	OK, Failed int
	// PerSecond is OK divided by the run's length.
	PerSecond float64
}

// TCPRate opens connections from ns to dst one after the other for d
// (at most maxExchanges): connect, read the server's byte, close with
// RST (SO_LINGER 0, so no TIME_WAIT piles up).
func TCPRate(ctx context.Context, ns *harness.NS, dst netip.AddrPort, d time.Duration) (Rate, error) {
	return rate(ctx, ns, d, func(deadline time.Time) error { return tcpExchange(ctx, dst, deadline) })
}

// UDPRate sends requests from ns to dst one after the other for d, each
// from a new socket (a new source port, so a new conntrack flow that is
// NATed like a new connection), and waits for each answer.
func UDPRate(ctx context.Context, ns *harness.NS, dst netip.AddrPort, d time.Duration) (Rate, error) {
	return rate(ctx, ns, d, func(deadline time.Time) error { return udpExchange(dst, deadline) })
}

// Probe checks from ns that one TCP and one UDP exchange with dst work.
func Probe(ctx context.Context, ns *harness.NS, dst netip.AddrPort) error {
	return ns.Do(func() error {
		deadline := time.Now().Add(3 * exchangeTimeout)
		if err := tcpExchange(ctx, dst, deadline); err != nil {
			return fmt.Errorf("tcp to %s from %s: %w", dst, ns.Name, err)
		}
		if err := udpExchange(dst, deadline); err != nil {
			return fmt.Errorf("udp to %s from %s: %w", dst, ns.Name, err)
		}
		return nil
	})
}

func tcpExchange(ctx context.Context, dst netip.AddrPort, deadline time.Time) error {
	c, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "tcp4", dst.String())
	if err != nil {
		return err
	}
	defer func() {
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}()
	_ = c.SetDeadline(deadline)
	_, err = c.Read(make([]byte, 1))
	return err
}

func udpExchange(dst netip.AddrPort, deadline time.Time) error {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 64))
	return err
}

// exchangeTimeout bounds one exchange of a rate run.
const exchangeTimeout = time.Second

// rate runs exchange in ns, sequentially, until d has passed.
func rate(ctx context.Context, ns *harness.NS, d time.Duration, exchange func(deadline time.Time) error) (Rate, error) {
	var r Rate
	var start time.Time
	var elapsed time.Duration
	err := ns.Do(func() error {
		start = time.Now()
		end := start.Add(d)
		for r.OK+r.Failed < maxExchanges && ctx.Err() == nil {
			now := time.Now()
			if !now.Before(end) {
				break
			}
			if err := exchange(now.Add(exchangeTimeout)); err != nil {
				r.Failed++
			} else {
				r.OK++
			}
		}
		elapsed = time.Since(start)
		return ctx.Err()
	})
	if err != nil {
		return r, err
	}
	r.PerSecond = float64(r.OK) / elapsed.Seconds()
	return r, nil
}
