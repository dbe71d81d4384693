package compat

import (
	"context"
	"io"
	"net/netip"
	"strings"
)

// This file looks up the names of addresses as iptables 1.8.9 does
// (FORMAT.md §7.2): getnameinfo() with the hosts services of
// nsswitch.conf in order, and, for an IPv4 address, getnetbyaddr()
// (/etc/networks) only when getnameinfo fails — when the last service it
// asked could not answer (h_errno TRY_AGAIN: a DNS server that cannot be
// reached or fails), not when the name is merely unknown. ip6tables asks
// with NI_NAMEREQD and never falls back.

// LookupStatus is the outcome of one name service's lookup.
type LookupStatus int

// Lookup outcomes, as glibc's NSS and resolver report them.
const (
	// NotFound: the service answered that it knows no name (NXDOMAIN, no
	// PTR record, no hosts line).
	NotFound LookupStatus = iota
	// Found: the service gave a name.
	Found
	// TryAgain: the service could not answer (no server reachable,
	// timeout, SERVFAIL): getnameinfo fails with EAI_AGAIN.
	TryAgain
	// Unavailable: the service is not there (no resolver configured for
	// it); it leaves the outcome of the services before it.
	Unavailable
)

// PTRResolver answers PTR questions the way glibc's DNS service does,
// from the network namespace the view is of.
type PTRResolver interface {
	LookupPTR(ctx context.Context, a netip.Addr) (string, LookupStatus)
}

// nssService is one service of nsswitch.conf's hosts line with its
// "[STATUS=return]" actions.
type nssService struct {
	name string
	// stop says, per status, whether the lookup ends after it.
	stop map[LookupStatus]bool
}

// defaultHosts is glibc's hosts line when nsswitch.conf has none.
var defaultHosts = []nssService{{name: "files"}, {name: "dns"}}

// ReadNSSwitch sets the hosts services from an nsswitch.conf(5) file:
// its "hosts:" line, services in order with their [STATUS=ACTION]
// criteria ("files" and "dns" are asked; other services, such as
// myhostname or mdns4, count as unavailable). A file without a hosts
// line leaves them unset (SystemNames then uses "files dns").
func (n *Names) ReadNSSwitch(r io.Reader) error {
	var line []string
	found := false
	if err := scanLines(r, func(f []string) {
		if f[0] == "hosts:" {
			line, found = f[1:], true
		}
	}); err != nil {
		return err
	}
	if found {
		n.mu.Lock()
		n.hostsSet, n.hostsSvc, n.cache = true, parseHostsLine(line), nil
		n.mu.Unlock()
	}
	return nil
}

// parseHostsLine reads the services and criteria of a hosts line.
func parseHostsLine(words []string) []nssService {
	var out []nssService
	inCrit := false
	for _, w := range words {
		switch {
		case strings.HasPrefix(w, "["):
			inCrit = true
			w = strings.TrimPrefix(w, "[")
			fallthrough
		case inCrit:
			if strings.HasSuffix(w, "]") {
				inCrit = false
				w = strings.TrimSuffix(w, "]")
			}
			if len(out) == 0 || w == "" {
				continue
			}
			st, action, ok := strings.Cut(strings.ToUpper(w), "=")
			if !ok {
				continue
			}
			neg := strings.HasPrefix(st, "!")
			st = strings.TrimPrefix(st, "!")
			stop := action == "RETURN"
			all := map[string]LookupStatus{"SUCCESS": Found, "NOTFOUND": NotFound, "UNAVAIL": Unavailable, "TRYAGAIN": TryAgain}
			svc := &out[len(out)-1]
			if svc.stop == nil {
				svc.stop = map[LookupStatus]bool{Found: true}
			}
			for name, s := range all {
				if (name == st) != neg {
					svc.stop[s] = stop
				}
			}
		default:
			out = append(out, nssService{name: w, stop: map[LookupStatus]bool{Found: true}})
		}
	}
	if len(out) == 0 {
		return defaultHosts
	}
	return out
}

// hostResult is a cached lookup: the name or "" and whether getnameinfo
// failed.
type hostResult struct {
	name   string
	failed bool
}

// lookupHost is getnameinfo's host part through the hosts services:
// the name, or "" with failed when the last service asked could not
// answer.
func (n *Names) lookupHost(a netip.Addr) hostResult {
	if r, ok := n.cache[a]; ok {
		return r
	}
	svcs := n.hostsSvc
	if !n.hostsSet {
		svcs = []nssService{{name: "files", stop: map[LookupStatus]bool{Found: true}}}
	}
	last := NotFound
	for _, s := range svcs {
		var name string
		st := Unavailable
		switch s.name {
		case "files":
			if h, ok := n.hosts[a]; ok {
				name, st = h, Found
			} else {
				st = NotFound
			}
		case "dns":
			if n.DNS != nil {
				name, st = n.DNS.LookupPTR(context.Background(), a)
			}
		}
		if st == Found {
			return n.remember(a, hostResult{name: name})
		}
		if st != Unavailable {
			last = st
		}
		if s.stop[st] {
			break
		}
	}
	return n.remember(a, hostResult{failed: last == TryAgain})
}

func (n *Names) remember(a netip.Addr, r hostResult) hostResult {
	if n.cache == nil {
		n.cache = map[netip.Addr]hostResult{}
	}
	n.cache[a] = r
	return r
}
