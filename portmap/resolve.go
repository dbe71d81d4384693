package portmap

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dnft/dnft/chains"
)

// EphemeralPorts is the range a host port is allocated from when a spec
// leaves it out: Docker's, which is Linux's default ip_local_port_range.
var EphemeralPorts = PortRange{32768, 60999}

// Reserved reports host ports that something other than a binding holds
// (for example an ingress port), so that allocation skips them. A nil
// Reserved reserves nothing. Explicit host ports are not checked against
// it: the caller refuses those with its own message.
type Reserved func(proto Proto, port uint16) bool

// Resolve turns specs for the container address c on network n into
// bindings, in spec order, checked against the index and each other as
// [Index.CheckPublish] does (and normalised). A spec with a host range as
// long as its container range gives one binding per port; a spec whose
// host port is left out gives one binding per container port, each on the
// lowest free port of [EphemeralPorts]; a host range with one container
// port gives one binding on the lowest free port of the range. A port is
// free when no binding of the index or of an earlier spec of the call
// claims it (same proto and family, and the same host address or either
// on all addresses) and reserved does not hold it. Errors are
// [FieldError]s wrapped with the spec.
//
// Explicit host ports are claimed before any port is allocated, so an
// allocation never takes a port that a later spec of the call names.
func (x *Index) Resolve(d chains.DaemonConfig, n chains.Network, c netip.Addr, specs []Spec, reserved Reserved) ([]Binding, error) {
	return resolve(context.Background(), x, d, n, c, specs, reserved)
}

func resolve(ctx context.Context, src source, d chains.DaemonConfig, n chains.Network, c netip.Addr, specs []Spec, reserved Reserved) ([]Binding, error) {
	if n.Internal {
		return nil, &FieldError{Field: "network", Value: n.Name, Reason: "is internal: ports cannot be published on an internal network"}
	}
	type slot struct {
		spec  int
		b     Binding   // normalised; HostPort 0 until allocated
		alloc PortRange // non-zero: allocate from this range
	}
	var slots []slot
	req := claims{}
	wrap := func(i int, err error) error { return fmt.Errorf("-p %s: %w", specs[i], err) }
	// Explicit host ports first, in order.
	for i, sp := range specs {
		for k := 0; k < sp.ContainerPorts.Len(); k++ {
			b := Binding{Proto: sp.Proto, HostIP: sp.HostIP, HostPort: 1, ContainerIP: c, ContainerPort: sp.ContainerPorts.Start + uint16(k)}
			var alloc PortRange
			switch {
			case sp.HostPorts.IsZero():
				alloc = EphemeralPorts
			case sp.HostPorts.Len() == sp.ContainerPorts.Len():
				b.HostPort = sp.HostPorts.Start + uint16(k)
			default:
				alloc = sp.HostPorts
			}
			nb, err := Normalize(d, n, b)
			if err != nil {
				return nil, wrap(i, err)
			}
			if alloc.IsZero() {
				if err := checkFree(ctx, src, n, nb, req); err != nil {
					return nil, wrap(i, err)
				}
				req.add(nb, len(slots))
			} else {
				nb.HostPort = 0
			}
			slots = append(slots, slot{spec: i, b: nb, alloc: alloc})
		}
	}
	// Then allocations, in order. Each one of a host address and range
	// starts the search after the previous one's port: every port below it
	// was taken, by the state or by this request. So a request for many
	// ports costs as much as one pass over the range.
	type class struct {
		h     hostKey
		alloc PortRange
	}
	from := map[class]uint16{}
	for j := range slots {
		s := &slots[j]
		if s.alloc.IsZero() {
			continue
		}
		k := class{hostKey{s.b.Proto, s.b.HostIP}, s.alloc}
		r := s.alloc
		if f, ok := from[k]; ok {
			r.Start = f
		}
		p, ok := uint16(0), r.Start != 0 && r.Start <= r.End
		var err error
		if ok {
			p, ok, err = src.freePort(ctx, s.b, r, req, reserved)
		}
		if err != nil {
			return nil, wrap(s.spec, err)
		}
		if !ok {
			what := "in " + s.alloc.String()
			if s.alloc == EphemeralPorts && specs[s.spec].HostPorts.IsZero() {
				what = "in the ephemeral range " + s.alloc.String()
			}
			return nil, wrap(s.spec, &FieldError{Field: SpecField, Value: specs[s.spec].String(),
				Reason: fmt.Sprintf("no free %s host port %s on %s", s.b.Proto, what, s.b.HostIP)})
		}
		s.b.HostPort = p
		from[k] = p + 1 // 0 after 65535: nothing left
		req.add(s.b, j)
	}
	out := make([]Binding, len(slots))
	for j, s := range slots {
		out[j] = s.b
	}
	return out, nil
}

// lowestFree returns the lowest port of r on which b (normalised, its
// HostPort ignored) would clash with no binding of the index or of req,
// and that reserved does not hold. Ports that bindings of the index claim
// are skipped 64 at a time.
func (x *Index) lowestFree(b Binding, r PortRange, req claims, reserved Reserved) (uint16, bool) {
	sets := x.takenSets(b, nil)
	if req.x != nil {
		sets = req.x.takenSets(b, sets)
	}
	for p := int(r.Start); p <= int(r.End); p++ {
		next, ok := nextClear(uint16(p), sets...)
		if !ok || int(next) > int(r.End) {
			return 0, false
		}
		p = int(next)
		b.HostPort = next
		if _, taken := x.clashWith(b); taken {
			continue
		}
		if _, _, taken := req.clashWith(b); taken {
			continue
		}
		if reserved != nil && reserved(b.Proto, b.HostPort) {
			continue
		}
		return next, true
	}
	return 0, false
}

// takenSets appends the port sets that mark the ports b's host address
// cannot have: on all addresses, every claimed port of the family; on
// one address, the ports claimed on all addresses or on the same one.
func (x *Index) takenSets(b Binding, sets []*portBits) []*portBits {
	if b.HostIP.IsUnspecified() {
		return append(sets, x.taken[claimKey{proto: b.Proto, v6: !b.HostIP.Is4()}])
	}
	all := netip.IPv4Unspecified()
	if !b.HostIP.Is4() {
		all = netip.IPv6Unspecified()
	}
	return append(sets, x.hosts[hostKey{b.Proto, all}], x.hosts[hostKey{b.Proto, b.HostIP}])
}

// ResolveUnpublish selects the published bindings of container address c
// on network n that specs name, in spec order: with host ports as long as
// the container ports, exactly those bindings; with a host range and one
// container port, the binding of that container port whose host port is
// in the range; with the host port left out, every binding of the
// container port. The host address is the spec's or, when left out, the
// network's default, as for publishing. Each container port must select
// at least one binding. The result is normalised and can go to
// [Index.CheckUnpublish], which also refuses a binding selected twice.
func (x *Index) ResolveUnpublish(d chains.DaemonConfig, n chains.Network, c netip.Addr, specs []Spec) ([]Binding, error) {
	return resolveUnpublish(context.Background(), x, d, n, c, specs)
}

func resolveUnpublish(ctx context.Context, src source, d chains.DaemonConfig, n chains.Network, c netip.Addr, specs []Spec) ([]Binding, error) {
	var out []Binding
	for _, sp := range specs {
		for k := 0; k < sp.ContainerPorts.Len(); k++ {
			b := Binding{Proto: sp.Proto, HostIP: sp.HostIP, HostPort: 1, ContainerIP: c, ContainerPort: sp.ContainerPorts.Start + uint16(k)}
			exact := sp.HostPorts.Len() == sp.ContainerPorts.Len()
			if exact {
				b.HostPort = sp.HostPorts.Start + uint16(k)
			}
			nb, err := Normalize(d, n, b)
			if err != nil {
				return nil, fmt.Errorf("-p %s: %w", sp, err)
			}
			if exact {
				out = append(out, nb)
				continue
			}
			var found []Binding
			ps, err := src.ofTarget(ctx, n.Name, nb.ContainerIP, nb.Proto, nb.ContainerPort)
			if err != nil {
				return nil, fmt.Errorf("-p %s: %w", sp, err)
			}
			for _, p := range ps {
				if p.HostIP == nb.HostIP && (sp.HostPorts.IsZero() || sp.HostPorts.Contains(p.HostPort)) {
					found = append(found, p.Binding)
				}
			}
			if len(found) == 0 {
				host := "any host port"
				if !sp.HostPorts.IsZero() {
					host = "a host port in " + sp.HostPorts.String()
				}
				return nil, fmt.Errorf("-p %s: %w", sp, &FieldError{Field: SpecField, Value: sp.String(),
					Reason: fmt.Sprintf("%s:%d/%s is not published on network %q from %s on %s", nb.ContainerIP, nb.ContainerPort, nb.Proto, n.Name, host, nb.HostIP)})
			}
			out = append(out, found...)
		}
	}
	return out, nil
}
