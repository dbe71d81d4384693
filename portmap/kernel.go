package portmap

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// ElementGetter reads one element of a set or map by key; ok is false
// when the element or the set does not exist. *nft.Conn implements it
// with one NFT_MSG_GETSETELEM request.
type ElementGetter interface {
	GetElement(ctx context.Context, s nft.Set, key []nft.Value) (e nft.ElementState, ok bool, err error)
}

// Kernel is what [KernelBindings] reads through; *nft.Conn implements it.
type Kernel interface {
	ElementGetter
	SetReader
}

// KernelBindings returns the bindings of d's families as the kernel
// holds them, asked element by element: whether a host port is taken is
// the get of its DNAT map element and of its [SetHostPorts] count; how
// many bindings share a container port, the get of its [SetTargets]
// count. Checking and queuing a publication then costs a few requests
// whatever the number of bindings, without listing them: what a process
// that runs one operation needs. The few questions that one element
// cannot answer — every binding of a container port (an unpublication
// without host port), a port allocation that meets more than a few taken
// ports, and the exact binding a refusal names when it is on another host
// address — read all the bindings once.
func KernelBindings(k Kernel, d chains.DaemonConfig) Bindings {
	return Bindings{&kernelSource{k: k, d: d}}
}

// kernelSource is the kernel as a [source].
type kernelSource struct {
	k    Kernel
	d    chains.DaemonConfig
	full *Index // every binding, read on the first question that needs it
}

// allocProbes is how many ports an allocation asks the kernel about, one
// by one, before it reads every binding instead.
const allocProbes = 32

func (s *kernelSource) index(ctx context.Context) (*Index, error) {
	if s.full == nil {
		ps, err := ReadBindings(ctx, s.k, s.d)
		if err != nil {
			return nil, err
		}
		s.full = NewIndex(ps)
	}
	return s.full, nil
}

func unspecified(f nft.Family) netip.Addr {
	if f == nft.IPv6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

func (s *kernelSource) get(ctx context.Context, b Binding) (Published, bool, error) {
	f := family(b.HostIP)
	set, fields, key := DNATAnyMap(f), keyAny, []nft.Value{nft.Proto(b.Proto.Number()), nft.Port(b.HostPort)}
	if !b.HostIP.IsUnspecified() {
		set, fields, key = DNATHostMap(f), keyHost, append([]nft.Value{nft.Addr(b.HostIP)}, key...)
	}
	e, ok, err := s.k.GetElement(ctx, set, key)
	if err != nil || !ok {
		return Published{}, false, err
	}
	p, err := decodeBinding(f, fields, e)
	if err != nil {
		return Published{}, false, fmt.Errorf("%s map %s: %w", f, set.Name, err)
	}
	if p.Proto != b.Proto || p.HostPort != b.HostPort || p.HostIP != b.HostIP {
		return Published{}, false, fmt.Errorf("%s map %s: asked for %s, the kernel answered with %s", f, set.Name, hostAddr(b), p.Binding)
	}
	return p, true, nil
}

func (s *kernelSource) clash(ctx context.Context, b Binding) (Published, bool, error) {
	if p, ok, err := s.get(ctx, b); err != nil || ok {
		return p, ok, err
	}
	if !b.HostIP.IsUnspecified() {
		// A binding on all addresses of the family takes this one too.
		all := b
		all.HostIP = unspecified(family(b.HostIP))
		return s.get(ctx, all)
	}
	n, err := s.hostRefs(ctx, b)
	if err != nil || n == 0 {
		return Published{}, false, err
	}
	// Bindings on specific addresses take the port: name one (a refusal,
	// so the cost of reading them all does not matter).
	x, err := s.index(ctx)
	if err != nil {
		return Published{}, false, err
	}
	if p, ok := x.clashWith(b); ok {
		return p, true, nil
	}
	return Published{}, false, fmt.Errorf("set %s counts %d binding(s) on %s, the DNAT maps have none: %w", SetHostPorts, n, PortProto(b), errCounts)
}

// taken reports whether a binding claims b's host address and port,
// without naming it.
func (s *kernelSource) taken(ctx context.Context, b Binding) (bool, error) {
	if _, ok, err := s.get(ctx, b); err != nil || ok {
		return ok, err
	}
	if !b.HostIP.IsUnspecified() {
		all := b
		all.HostIP = unspecified(family(b.HostIP))
		_, ok, err := s.get(ctx, all)
		return ok, err
	}
	n, err := s.hostRefs(ctx, b)
	return n > 0, err
}

func (s *kernelSource) refs(ctx context.Context, network string, b Binding) (int, error) {
	f := family(b.ContainerIP)
	e, ok, err := s.k.GetElement(ctx, TargetsSet(f), targetElem("", b, 0).Key)
	if err != nil || !ok {
		return 0, err
	}
	owner, n, err := parseCount(e.Comment, true)
	if err != nil {
		return 0, fmt.Errorf("%s set %s: %w", f, SetTargets, err)
	}
	if owner != network {
		return 0, fmt.Errorf("%s set %s: %s:%d/%s is counted for network %q, not %q: %w", f, SetTargets, b.ContainerIP, b.ContainerPort, b.Proto, owner, network, errCounts)
	}
	return n, nil
}

func (s *kernelSource) hostRefs(ctx context.Context, b Binding) (int, error) {
	f := family(b.HostIP)
	e, ok, err := s.k.GetElement(ctx, HostPortsSet(f), hostPortElem(b, 0).Key)
	if err != nil || !ok {
		return 0, err
	}
	_, n, err := parseCount(e.Comment, false)
	if err != nil {
		return 0, fmt.Errorf("%s set %s: %w", f, SetHostPorts, err)
	}
	return n, nil
}

func (s *kernelSource) ofTarget(ctx context.Context, network string, c netip.Addr, proto Proto, port uint16) ([]Published, error) {
	x, err := s.index(ctx)
	if err != nil {
		return nil, err
	}
	return x.targetBindings(network, c, proto, port), nil
}

// freePort asks for ports one by one from the start of r and reads every
// binding once allocProbes of them were taken (see [Index.lowestFree]).
func (s *kernelSource) freePort(ctx context.Context, b Binding, r PortRange, req claims, reserved Reserved) (uint16, bool, error) {
	if s.full != nil {
		p, ok := s.full.lowestFree(b, r, req, reserved)
		return p, ok, nil
	}
	for p, probes := int(r.Start), 0; p <= int(r.End); p++ {
		if probes == allocProbes {
			x, err := s.index(ctx)
			if err != nil {
				return 0, false, err
			}
			free, ok := x.lowestFree(b, PortRange{uint16(p), r.End}, req, reserved)
			return free, ok, nil
		}
		b.HostPort = uint16(p)
		if _, _, taken := req.clashWith(b); taken {
			continue
		}
		probes++
		taken, err := s.taken(ctx, b)
		if err != nil {
			return 0, false, err
		}
		if taken || (reserved != nil && reserved(b.Proto, b.HostPort)) {
			continue
		}
		return b.HostPort, true, nil
	}
	return 0, false, nil
}

func (s *kernelSource) portHolder(ctx context.Context, d chains.DaemonConfig, proto Proto, port uint16) (Published, bool, error) {
	for _, f := range d.Families() {
		taken, err := s.taken(ctx, Binding{Proto: proto, HostIP: unspecified(f), HostPort: port})
		if err != nil {
			return Published{}, false, err
		}
		if taken {
			// A refusal: name the oldest holder as the index would.
			x, err := s.index(ctx)
			if err != nil {
				return Published{}, false, err
			}
			p, ok := x.PortHolder(proto, port)
			return p, ok, nil
		}
	}
	return Published{}, false, nil
}
