package portmap

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of ports; a single port has Start ==
// End. The zero PortRange means "not given".
type PortRange struct {
	Start, End uint16
}

// IsZero reports whether the range was not given.
func (r PortRange) IsZero() bool { return r == PortRange{} }

// Len returns the number of ports in the range (0 for the zero range).
func (r PortRange) Len() int {
	if r.IsZero() {
		return 0
	}
	return int(r.End) - int(r.Start) + 1
}

// Contains reports whether p lies in the range.
func (r PortRange) Contains(p uint16) bool { return !r.IsZero() && r.Start <= p && p <= r.End }

// String returns "80" or "8000-8010".
func (r PortRange) String() string {
	if r.Start == r.End {
		return strconv.Itoa(int(r.Start))
	}
	return strconv.Itoa(int(r.Start)) + "-" + strconv.Itoa(int(r.End))
}

// Spec is one parsed `-p` option in Docker's syntax:
//
//	[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]
//
// HostIP is zero when the spec gives none (the network's default binding
// address then applies). HostPorts is zero when the host port is left out
// (`-p 80`, `-p 127.0.0.1::80`): each container port then gets a free port
// of [EphemeralPorts]. A host range as long as the container range maps
// port to port; a host range with a single container port means "the
// first free host port of the range". See [ParseSpec].
type Spec struct {
	HostIP         netip.Addr
	HostPorts      PortRange
	ContainerPorts PortRange
	Proto          Proto
}

// SpecField is the [FieldError] field of errors about a `-p` spec.
const SpecField = "port spec"

// ParseSpec parses a `-p` spec as Docker does (github.com/docker/go-connections
// nat.ParsePortSpec): an IPv6 host address in brackets (`[::1]:8080:80`,
// Docker also takes it bare), proto tcp (the default), udp or sctp in any
// case. Unlike Docker it refuses port 0 (Docker would allocate a port)
// instead of reading it as "any". Errors are [FieldError]s of field
// [SpecField] whose value is s and whose reason names the bad part.
func ParseSpec(s string) (Spec, error) {
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, &FieldError{Field: SpecField, Value: s, Reason: fmt.Sprintf(format, args...)}
	}
	if s == "" {
		return bad("empty")
	}
	parts := strings.Split(s, ":")
	n := len(parts)
	var rawIP, rawHost string
	rawCtr := parts[n-1]
	switch {
	case n == 2:
		rawHost = parts[0]
	case n >= 3:
		rawIP, rawHost = strings.Join(parts[:n-2], ":"), parts[n-2]
	}
	rawCtr, rawProto, hasProto := strings.Cut(rawCtr, "/")

	var sp Spec
	sp.Proto = TCP
	if hasProto && rawProto != "" {
		switch p := Proto(strings.ToLower(rawProto)); p {
		case TCP, UDP, SCTP:
			sp.Proto = p
		default:
			return bad("unknown proto %q (want tcp, udp or sctp)", rawProto)
		}
	}
	if rawIP != "" {
		a, err := parseHostIP(rawIP)
		if err != nil {
			return bad("host IP %q: %v", rawIP, err)
		}
		sp.HostIP = a
	}
	if rawHost != "" {
		r, err := parseRange(rawHost)
		if err != nil {
			return bad("host port %q: %v", rawHost, err)
		}
		sp.HostPorts = r
	}
	if rawCtr == "" {
		return bad("no container port")
	}
	r, err := parseRange(rawCtr)
	if err != nil {
		return bad("container port %q: %v", rawCtr, err)
	}
	sp.ContainerPorts = r
	if h, c := sp.HostPorts.Len(), sp.ContainerPorts.Len(); h > 0 && h != c && c != 1 {
		return bad("host ports %s (%d) and container ports %s (%d): range lengths differ", sp.HostPorts, h, sp.ContainerPorts, c)
	}
	return sp, nil
}

// parseHostIP parses a host address, bare or in brackets, without zone.
func parseHostIP(s string) (netip.Addr, error) {
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") || len(s) < 2 {
			return netip.Addr{}, fmt.Errorf("unbalanced brackets")
		}
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address")
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("must not have a zone")
	}
	return a, nil
}

// parseRange parses "P" or "P1-P2" with 1 <= P1 <= P2 <= 65535.
func parseRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePort(hi)
	if err != nil {
		return PortRange{}, err
	}
	if b < a {
		return PortRange{}, fmt.Errorf("bad range: %d is before %d", b, a)
	}
	return PortRange{a, b}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("bad range: missing port")
	}
	v, err := strconv.ParseUint(s, 10, 32)
	switch {
	case err != nil && strings.Trim(s, "0123456789") == "":
		return 0, fmt.Errorf("port %s is greater than 65535", s)
	case err != nil:
		return 0, fmt.Errorf("not a port number")
	case v == 0:
		return 0, fmt.Errorf("port 0 is not allowed (ports are 1-65535)")
	case v > 65535:
		return 0, fmt.Errorf("port %d is greater than 65535", v)
	}
	return uint16(v), nil
}

// String returns the spec in canonical form, with the proto always
// given and an IPv6 host address in brackets: "127.0.0.1::80/tcp",
// "[::1]:8080-8081:80-81/udp". ParseSpec(s.String()) returns s.
func (s Spec) String() string {
	var b strings.Builder
	if s.HostIP.IsValid() {
		if s.HostIP.Is4() {
			b.WriteString(s.HostIP.String())
		} else {
			b.WriteString("[" + s.HostIP.String() + "]")
		}
		b.WriteString(":")
	}
	if !s.HostPorts.IsZero() {
		b.WriteString(s.HostPorts.String() + ":")
	} else if s.HostIP.IsValid() {
		b.WriteString(":")
	}
	b.WriteString(s.ContainerPorts.String() + "/" + string(s.Proto))
	return b.String()
}
