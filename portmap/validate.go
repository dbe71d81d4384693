package portmap

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/dnft/dnft/chains"
)

// FieldError is the error for a bad binding; it names the field and value.
type FieldError = chains.FieldError

// Normalize checks one binding on its own against the network it is
// published on, and returns it in normal form: addresses unmapped, and a
// valid HostIP. A zero HostIP becomes the network's default binding
// address (com.docker.network.bridge.host_binding_ipv4) for an IPv4
// binding when the network has one, and otherwise the unspecified address
// of the container's family, which means all addresses.
func Normalize(d chains.DaemonConfig, n chains.Network, b Binding) (Binding, error) {
	switch b.Proto {
	case TCP, UDP, SCTP:
	default:
		return b, &FieldError{Field: "proto", Value: string(b.Proto), Reason: "must be tcp, udp or sctp"}
	}
	if b.HostPort == 0 {
		return b, &FieldError{Field: "host-port", Value: "0", Reason: "must be 1-65535"}
	}
	if b.ContainerPort == 0 {
		return b, &FieldError{Field: "container-port", Value: "0", Reason: "must be 1-65535"}
	}
	c := b.ContainerIP.Unmap()
	if !c.IsValid() {
		return b, &FieldError{Field: "container-ip", Value: "", Reason: "a container address is required"}
	}
	if c.Zone() != "" {
		return b, &FieldError{Field: "container-ip", Value: c.String(), Reason: "must not have a zone"}
	}
	var subnet netip.Prefix
	if c.Is4() {
		subnet = n.Subnet4
	} else {
		switch {
		case !d.IPv6:
			return b, &FieldError{Field: "container-ip", Value: c.String(), Reason: "IPv6 is not enabled (init --ipv6)"}
		case !n.Subnet6.IsValid():
			return b, &FieldError{Field: "container-ip", Value: c.String(), Reason: fmt.Sprintf("network %q has no IPv6 subnet", n.Name)}
		}
		subnet = n.Subnet6
	}
	if !subnet.Contains(c) {
		return b, &FieldError{Field: "container-ip", Value: c.String(), Reason: fmt.Sprintf("not in network %q's subnet %s", n.Name, subnet)}
	}
	if c == subnet.Masked().Addr() {
		return b, &FieldError{Field: "container-ip", Value: c.String(), Reason: fmt.Sprintf("is the network address of %s, not a container's", subnet)}
	}
	if c.Is4() && c == lastAddr(subnet) {
		return b, &FieldError{Field: "container-ip", Value: c.String(), Reason: fmt.Sprintf("is the broadcast address of %s, not a container's", subnet)}
	}
	h := b.HostIP.Unmap()
	if !h.IsValid() && c.Is4() && n.HostBindingIPv4.IsValid() {
		h = n.HostBindingIPv4.Unmap()
	}
	if !h.IsValid() {
		if c.Is4() {
			h = netip.IPv4Unspecified()
		} else {
			h = netip.IPv6Unspecified()
		}
	}
	if h.Is4() != c.Is4() {
		return b, &FieldError{Field: "host-ip", Value: h.String(), Reason: fmt.Sprintf("the container address %s is of the other address family", c)}
	}
	if h.Zone() != "" {
		return b, &FieldError{Field: "host-ip", Value: h.String(), Reason: "must not have a zone"}
	}
	if h.IsMulticast() {
		return b, &FieldError{Field: "host-ip", Value: h.String(), Reason: "must not be a multicast address"}
	}
	b.ContainerIP, b.HostIP = c, h
	return b, nil
}

// lastAddr returns the last address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// clash reports whether two normalised bindings claim the same host
// address and port: same proto and port, same family, and the same host
// address or one of them on all addresses.
func clash(a, b Binding) bool {
	return a.Proto == b.Proto && a.HostPort == b.HostPort && a.HostIP.Is4() == b.HostIP.Is4() &&
		(a.HostIP == b.HostIP || a.HostIP.IsUnspecified() || b.HostIP.IsUnspecified())
}

func hostAddr(b Binding) string {
	return netip.AddrPortFrom(b.HostIP, b.HostPort).String() + "/" + string(b.Proto)
}

// CheckPublish validates bindings to publish on network n against the
// bindings already published (existing, from [ReadBindings], all
// networks) and returns them normalised. It refuses an internal network,
// a bad binding ([Normalize]), a host address and port that is already
// taken — the same address, or all addresses against a specific one of
// the same family, in either direction — and the same conflicts within bs.
// It indexes existing first; [Index.CheckPublish] is the same check
// against a kept index.
func CheckPublish(d chains.DaemonConfig, n chains.Network, bs []Binding, existing []Published) ([]Binding, error) {
	return NewIndex(existing).CheckPublish(d, n, bs)
}

// CheckPublish is [CheckPublish] against the bindings of the index. Its
// cost grows with len(bs), not with the number of published bindings.
func (x *Index) CheckPublish(d chains.DaemonConfig, n chains.Network, bs []Binding) ([]Binding, error) {
	return checkPublish(context.Background(), x, d, n, bs)
}

func checkPublish(ctx context.Context, src source, d chains.DaemonConfig, n chains.Network, bs []Binding) ([]Binding, error) {
	if n.Internal {
		return nil, &FieldError{Field: "network", Value: n.Name, Reason: "is internal: ports cannot be published on an internal network"}
	}
	out := make([]Binding, 0, len(bs))
	req := claims{}
	for _, b := range bs {
		nb, err := Normalize(d, n, b)
		if err != nil {
			return nil, err
		}
		if err := checkFree(ctx, src, n, nb, req); err != nil {
			return nil, err
		}
		req.add(nb, len(out))
		out = append(out, nb)
	}
	return out, nil
}

// checkFree refuses a normalised binding whose host address and port a
// published binding or an earlier binding of the same request (req)
// claims.
func checkFree(ctx context.Context, src source, n chains.Network, nb Binding, req claims) error {
	p, ok, err := src.clash(ctx, nb)
	if err != nil {
		return err
	}
	if ok {
		reason := fmt.Sprintf("%s is already published by network %q (%s)", hostAddr(p.Binding), p.Network, p.Binding)
		if p.Network == n.Name && p.Binding == nb {
			reason = fmt.Sprintf("already published on network %q", n.Name)
		} else if p.HostIP != nb.HostIP {
			reason = fmt.Sprintf("overlaps %s, already published by network %q (%s)", hostAddr(p.Binding), p.Network, p.Binding)
		}
		return &FieldError{Field: "binding", Value: nb.String(), Reason: reason}
	}
	if i, o, ok := req.clashWith(nb); ok {
		return &FieldError{Field: "binding", Value: nb.String(), Reason: fmt.Sprintf("conflicts with binding %d of the same request (%s)", i+1, o)}
	}
	return nil
}

// claims are the host ports claimed by the bindings of one request, with
// each binding's position in it: a list for a few bindings, and from
// claimsIndexed on an index of their own (position as sequence number),
// so that allocations skip them 64 ports at a time too. The zero value
// holds none.
type claims struct {
	few []claimed
	x   *Index
}

type claimed struct {
	b Binding
	i int
}

// claimsIndexed is the request size from which claims are indexed.
const claimsIndexed = 16

func (c *claims) add(b Binding, i int) {
	if c.x == nil && len(c.few) < claimsIndexed {
		c.few = append(c.few, claimed{b, i})
		return
	}
	if c.x == nil {
		c.x = NewIndex(nil)
		for _, o := range c.few {
			c.x.add(Published{Binding: o.b, Seq: int64(o.i)})
		}
		c.few = nil
	}
	c.x.add(Published{Binding: b, Seq: int64(i)})
}

func (c claims) clashWith(b Binding) (int, Binding, bool) {
	if c.x != nil {
		p, ok := c.x.clashWith(b)
		return int(p.Seq), p.Binding, ok
	}
	for _, o := range c.few {
		if clash(b, o.b) {
			return o.i, o.b, true
		}
	}
	return 0, Binding{}, false
}

// CheckUnpublish validates bindings to unpublish from network n and returns
// them normalised: each must be published on n, exactly (same host
// address and port, same container address and port), and listed once.
func CheckUnpublish(d chains.DaemonConfig, n chains.Network, bs []Binding, existing []Published) ([]Binding, error) {
	return NewIndex(existing).CheckUnpublish(d, n, bs)
}

// CheckUnpublish is [CheckUnpublish] against the bindings of the index.
func (x *Index) CheckUnpublish(d chains.DaemonConfig, n chains.Network, bs []Binding) ([]Binding, error) {
	return checkUnpublish(context.Background(), x, d, n, bs)
}

func checkUnpublish(ctx context.Context, src source, d chains.DaemonConfig, n chains.Network, bs []Binding) ([]Binding, error) {
	out := make([]Binding, 0, len(bs))
	seen := map[Binding]int{}
	for _, b := range bs {
		nb, err := Normalize(d, n, b)
		if err != nil {
			return nil, err
		}
		// The binding is published when the DNAT element of its host
		// address and port is the network's and forwards to its container.
		near, ok, err := src.get(ctx, nb)
		if err != nil {
			return nil, err
		}
		if !ok || near.Network != n.Name || near.Binding != nb {
			reason := fmt.Sprintf("not published on network %q", n.Name)
			if ok {
				reason += fmt.Sprintf(" (%s is published by network %q as %s)", hostAddr(near.Binding), near.Network, near.Binding)
			}
			return nil, &FieldError{Field: "binding", Value: nb.String(), Reason: reason}
		}
		if i, dup := seen[nb]; dup {
			return nil, &FieldError{Field: "binding", Value: nb.String(), Reason: "listed twice (also binding " + strconv.Itoa(i+1) + " of the same request)"}
		}
		seen[nb] = len(out)
		out = append(out, nb)
	}
	return out, nil
}
