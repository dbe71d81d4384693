package compat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Names resolves what iptables -L prints as names: host names of
// addresses (getnameinfo, then getnetbyaddr: see names_hosts.go), service
// names of ports (getservbyport) and protocol names (getprotobynumber),
// from the same files and services as glibc: hosts, networks, services,
// protocols, and nsswitch.conf's hosts line with DNS PTR questions
// (resolv.conf's servers, asked from the namespace of the view).
//
// Without a hosts line (LoadNames), lookups are those of "hosts: files",
// as the golden files pin them. A zero or nil Names resolves nothing
// (every lookup prints numerically). Names caches host lookups; it is
// safe for concurrent use.
type Names struct {
	// DNS answers the PTR questions of the "dns" hosts service; nil makes
	// that service unavailable (as with no resolver).
	DNS PTRResolver

	hosts     map[netip.Addr]string
	networks  map[netip.Addr]string
	services  map[servKey]string
	servPorts map[servName]uint16
	protocols map[uint8]string
	protoNums map[string]uint8

	hostsSet bool
	hostsSvc []nssService
	mu       sync.Mutex
	cache    map[netip.Addr]hostResult
}

type servKey struct {
	port  uint16
	proto string
}

type servName struct {
	name, proto string
}

// Default paths of the files that [SystemNames] reads.
const (
	HostsFile      = "/etc/hosts"
	NetworksFile   = "/etc/networks"
	ServicesFile   = "/etc/services"
	ProtocolsFile  = "/etc/protocols"
	NSSwitchFile   = "/etc/nsswitch.conf"
	ResolvConfFile = "/etc/resolv.conf"
)

// SystemNames reads, as iptables does, the files of the caller's mount
// namespace: /etc/hosts, /etc/networks, /etc/services, /etc/protocols,
// the hosts line of /etc/nsswitch.conf and the DNS servers of
// /etc/resolv.conf, which are asked through dial (nil: from the caller's
// network namespace). A missing file resolves nothing; any other read
// error is returned.
func SystemNames(dial DialFunc) (*Names, error) {
	n, err := LoadNames(HostsFile, NetworksFile, ServicesFile, ProtocolsFile)
	if err != nil {
		return nil, err
	}
	if err := readFile(NSSwitchFile, n.ReadNSSwitch); err != nil {
		return nil, err
	}
	if !n.hostsSet {
		n.hostsSet, n.hostsSvc = true, defaultHosts
	}
	var dns *DNS
	if err := readFile(ResolvConfFile, func(r io.Reader) error {
		var err error
		dns, err = ReadResolvConf(r)
		return err
	}); err != nil {
		return nil, err
	}
	if dns == nil {
		dns, _ = ReadResolvConf(strings.NewReader(""))
	}
	dns.Dial = dial
	n.DNS = dns
	return n, nil
}

// readFile parses a file if it exists.
func readFile(path string, parse func(io.Reader) error) error {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	defer fh.Close()
	if err := parse(fh); err != nil {
		return fmt.Errorf("names: read %s: %w", path, err)
	}
	return nil
}

// LoadNames reads a hosts, a networks, a services and a protocols file
// (any path may be "" to skip it). A missing file resolves nothing.
func LoadNames(hosts, networks, services, protocols string) (*Names, error) {
	n := &Names{}
	for _, f := range []struct {
		path  string
		parse func(io.Reader) error
	}{{hosts, n.ReadHosts}, {networks, n.ReadNetworks}, {services, n.ReadServices}, {protocols, n.ReadProtocols}} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("names: %w", err)
		}
		err = f.parse(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("names: read %s: %w", f.path, err)
		}
	}
	return n, nil
}

// fields splits a line of an /etc file into its fields, without the
// comment that starts at '#'.
func fields(line string) []string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	return strings.Fields(line)
}

func scanLines(r io.Reader, fn func(f []string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if f := fields(sc.Text()); len(f) > 0 {
			fn(f)
		}
	}
	return sc.Err()
}

// ReadHosts adds the entries of a hosts(5) file. As with glibc, the first
// line that lists an address wins and its first name is the address's
// name; IPv4 and IPv6 entries are separate (an IPv6 lookup never matches
// an IPv4 line). Entries already known are kept.
func (n *Names) ReadHosts(r io.Reader) error {
	n.mu.Lock()
	n.cache = nil
	n.mu.Unlock()
	if n.hosts == nil {
		n.hosts = map[netip.Addr]string{}
	}
	return scanLines(r, func(f []string) {
		if len(f) < 2 {
			return
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a.Zone() != "" {
			return
		}
		if _, ok := n.hosts[a]; !ok {
			n.hosts[a] = f[1]
		}
	})
}

// ReadNetworks adds the entries of a networks(5) file: "name number
// aliases...", the number in inet_network's dotted form with missing
// trailing parts (127 is 0.0.0.127, as getnetbyaddr compares it). The
// first entry for a number wins.
func (n *Names) ReadNetworks(r io.Reader) error {
	if n.networks == nil {
		n.networks = map[netip.Addr]string{}
	}
	return scanLines(r, func(f []string) {
		if len(f) < 2 {
			return
		}
		a, ok := inetNetwork(f[1])
		if !ok {
			return
		}
		if _, dup := n.networks[a]; !dup {
			n.networks[a] = f[0]
		}
	})
}

// inetNetwork is inet_network(3) for dotted decimal: up to four parts,
// the last ones being the least significant ("127" is 0.0.0.127).
func inetNetwork(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint32
	for _, p := range parts {
		x, err := strconv.ParseUint(p, 0, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		v = v<<8 | uint32(x)
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// ReadServices adds the entries of a services(5) file: "name port/proto
// aliases...". The first entry for a port and protocol wins.
func (n *Names) ReadServices(r io.Reader) error {
	if n.services == nil {
		n.services, n.servPorts = map[servKey]string{}, map[servName]uint16{}
	}
	return scanLines(r, func(f []string) {
		if len(f) < 2 {
			return
		}
		p, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			return
		}
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return
		}
		k := servKey{uint16(port), proto}
		if _, ok := n.services[k]; !ok {
			n.services[k] = f[0]
		}
		for _, name := range append([]string{f[0]}, f[2:]...) {
			if _, ok := n.servPorts[servName{name, proto}]; !ok {
				n.servPorts[servName{name, proto}] = uint16(port)
			}
		}
	})
}

// ReadProtocols adds the entries of a protocols(5) file: "name number
// aliases...". The first entry for a number wins.
func (n *Names) ReadProtocols(r io.Reader) error {
	if n.protocols == nil {
		n.protocols, n.protoNums = map[uint8]string{}, map[string]uint8{}
	}
	return scanLines(r, func(f []string) {
		if len(f) < 2 {
			return
		}
		num, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil {
			return
		}
		if _, ok := n.protocols[uint8(num)]; !ok {
			n.protocols[uint8(num)] = f[0]
		}
		for _, name := range append([]string{f[0]}, f[2:]...) {
			if _, ok := n.protoNums[name]; !ok {
				n.protoNums[name] = uint8(num)
			}
		}
	})
}

// Host returns the name iptables prints for an address: getnameinfo's
// answer through the hosts services (files, dns), and for IPv4, when
// that lookup failed (a DNS server could not answer), the networks
// file's name (iptables' fallback to getnetbyaddr). IPv6 asks with
// NI_NAMEREQD and has no fallback. false means numeric.
func (n *Names) Host(a netip.Addr) (string, bool) {
	if n == nil {
		return "", false
	}
	n.mu.Lock()
	r := n.lookupHost(a)
	n.mu.Unlock()
	if r.name != "" {
		return r.name, true
	}
	if r.failed && a.Is4() {
		s, ok := n.networks[a]
		return s, ok
	}
	return "", false
}

// Service returns the service name of a port for a protocol ("tcp",
// "udp", "sctp", ...).
func (n *Names) Service(port uint16, proto string) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.services[servKey{port, proto}]
	return s, ok
}

// ServicePort returns the port of a service name or alias for a protocol
// (getservbyname): the first entry of the services file that has it.
func (n *Names) ServicePort(name, proto string) (uint16, bool) {
	if n == nil {
		return 0, false
	}
	p, ok := n.servPorts[servName{name, proto}]
	return p, ok
}

// Protocol returns the name that getprotobynumber gives a protocol.
func (n *Names) Protocol(num uint8) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.protocols[num]
	return s, ok
}

// ProtocolNumber returns the number of a protocol name or alias from the
// protocols file (getprotobyname).
func (n *Names) ProtocolNumber(name string) (uint8, bool) {
	if n == nil {
		return 0, false
	}
	num, ok := n.protoNums[name]
	return num, ok
}
