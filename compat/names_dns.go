package compat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DialFunc opens a connection; [DNS] uses it to reach its servers (so
// that a view of another network namespace asks from that namespace).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// DNS asks PTR questions the way glibc's stub resolver does for
// getnameinfo (FORMAT.md §7.2): each server of resolv.conf in turn, up to
// Attempts rounds, Timeout per try. An answer with a PTR record is Found;
// NXDOMAIN, no PTR record or a refusal is NotFound (getnameinfo then
// prints the address); no server that answers, or only SERVFAIL, is
// TryAgain (getnameinfo fails, and iptables falls back to
// /etc/networks).
type DNS struct {
	Servers  []netip.AddrPort
	Timeout  time.Duration
	Attempts int
	// Dial opens the UDP sockets (nil: in the caller's namespace).
	Dial DialFunc
}

// glibc's resolver defaults (resolv.conf(5)).
const (
	dnsTimeout  = 5 * time.Second
	dnsAttempts = 2
	maxServers  = 3
)

// ReadResolvConf reads resolv.conf(5): up to three nameserver lines
// (127.0.0.1 when there is none, as glibc) and the timeout and attempts
// options.
func ReadResolvConf(r io.Reader) (*DNS, error) {
	d := &DNS{Timeout: dnsTimeout, Attempts: dnsAttempts}
	err := scanLines(r, func(f []string) {
		switch f[0] {
		case "nameserver":
			if len(f) < 2 || len(d.Servers) >= maxServers {
				return
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				return
			}
			d.Servers = append(d.Servers, netip.AddrPortFrom(a, 53))
		case "options":
			for _, o := range f[1:] {
				k, v, _ := strings.Cut(o, ":")
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					continue
				}
				switch k {
				case "timeout":
					d.Timeout = time.Duration(min(n, 30)) * time.Second
				case "attempts":
					d.Attempts = min(n, 5)
				}
			}
		}
	})
	if len(d.Servers) == 0 {
		d.Servers = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 53)}
	}
	return d, err
}

// ptrName is the reverse-lookup name of an address (in-addr.arpa or
// nibbles under ip6.arpa).
func ptrName(a netip.Addr) string {
	var b strings.Builder
	if a.Is4() {
		o := a.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa.", o[3], o[2], o[1], o[0])
		return b.String()
	}
	o := a.As16()
	for i := len(o) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "%x.%x.", o[i]&0xf, o[i]>>4)
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

// errServFail marks a server that answered SERVFAIL.
var errServFail = errors.New("SERVFAIL")

// LookupPTR asks the servers for a's PTR record.
func (d *DNS) LookupPTR(ctx context.Context, a netip.Addr) (string, LookupStatus) {
	name, err := dnsmessage.NewName(ptrName(a.Unmap()))
	if err != nil {
		return "", NotFound
	}
	attempts := max(d.Attempts, 1)
	for range attempts {
		for _, srv := range d.Servers {
			host, st, err := d.ask(ctx, srv, name)
			if err == nil {
				return host, st
			}
			if ctx.Err() != nil {
				return "", TryAgain
			}
		}
	}
	return "", TryAgain
}

// ask sends one query to one server; an error means "try the next".
func (d *DNS) ask(ctx context.Context, srv netip.AddrPort, name dnsmessage.Name) (string, LookupStatus, error) {
	id := uint16(rand.Uint32())
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: name, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET}},
	}
	pkt, err := q.Pack()
	if err != nil {
		return "", NotFound, err
	}
	dial := d.Dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = dnsTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dial(ctx, "udp", srv.String())
	if err != nil {
		return "", TryAgain, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(pkt); err != nil {
		return "", TryAgain, err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return "", TryAgain, err
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil || m.Header.ID != id || !m.Header.Response {
			continue // not the answer to this query
		}
		switch m.Header.RCode {
		case dnsmessage.RCodeSuccess:
			for _, ans := range m.Answers {
				if ptr, ok := ans.Body.(*dnsmessage.PTRResource); ok {
					return strings.TrimSuffix(ptr.PTR.String(), "."), Found, nil
				}
			}
			return "", NotFound, nil
		case dnsmessage.RCodeNameError:
			return "", NotFound, nil
		case dnsmessage.RCodeServerFailure:
			return "", TryAgain, errServFail
		}
		return "", NotFound, nil
	}
}
