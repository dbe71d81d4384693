package ingress

import (
	"context"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Change is what a queued publication does once its batch is applied.
type Change struct {
	// Published is the publication with its new reference count.
	Published
	// NewGateway is true when the port is the first one on its gateway
	// bridge in its family (the caller sets route_localnet on it).
	NewGateway bool
	// GatewayGone is true when an unpublication removes the last port of
	// its gateway bridge in its family (the caller turns route_localnet
	// off again).
	GatewayGone bool
	// MasqueradeSeq is, with GatewayGone, where the gateway's masquerade
	// sat (see [Gateway]; 0 when not recorded).
	MasqueradeSeq int64
}

// Publish queues one publication of p, which must come from [Normalize].
// A new port gets the sequence number seq; the first port of its family
// also creates the family's ingress objects. Publishing the same port,
// protocol, target and gateway again only rewrites its ingress-dnat
// element with the reference count incremented (delete and add in the
// same batch). A port of the family held by another target or gateway is
// refused with a FieldError and nothing is queued.
//
// It reads the port's ingress-dnat element (see [ElementGetter]), and for
// a new port the gateways set and, for the first port of the family, the
// base chains' rules.
func Publish(ctx context.Context, r Reader, tx *nft.Tx, p Port, seq int64) (Change, error) {
	f := p.Family()
	held, err := lookup(ctx, r, f, p.Proto, p.Port)
	if err != nil {
		return Change{}, fmt.Errorf("read %s ingress ports: %w", f, err)
	}
	if held != nil {
		if held.Target != p.Target || held.GwBridge != p.GwBridge {
			return Change{}, &FieldError{Field: "port", Value: PortProto(p.Port, p.Proto),
				Reason: fmt.Sprintf("is already an ingress port to %s on %s (%d reference(s)); unpublish it first", held.Target, held.GwBridge, held.Refs)}
		}
		out := *held
		out.Refs++
		rewrite(tx, f, out)
		return Change{Published: out}, nil
	}
	gws, active, err := readGateways(ctx, r, f)
	if err != nil {
		return Change{}, fmt.Errorf("read %s ingress gateways: %w", f, err)
	}
	if !active {
		h, err := readHooks(ctx, r, f)
		if err != nil {
			return Change{}, fmt.Errorf("read %s base chains: %w", f, err)
		}
		setup(tx, f, h)
	}
	out := Published{Port: p, Refs: 1, Seq: seq}
	tx.AddElements(DNATMap(f), dnatElem(p, record(out)))
	tx.AddElements(PortsSet(f), portsElem(p, record(out)))
	tx.AddElements(RepliesSet(f), portsElem(p, portRecord{}))
	have := gws[p.GwBridge]
	next := Gateway{Ports: have.Ports + 1, Created: have.Created, Ingress: have.Ingress}
	if have.Ports == 0 {
		next.Created = seq // this publication creates the gateway's masquerade
		next.Ingress = seq // and the family's chains, unless another gateway has them
		for _, g := range gws {
			if g.Ports > 0 {
				next.Ingress = g.Ingress
				break
			}
		}
	}
	setGateway(tx, f, p.GwBridge, have, next)
	return Change{Published: out, NewGateway: have.Ports == 0}, nil
}

// Unpublish queues one unpublication of proto/port (p from
// [NormalizeUnpublish]) in every family of d where it is published, or
// only in the family of p.Target when that is set. A count above one is
// decremented; the last reference deletes the port's elements, and the
// last port of a family deletes all of the family's ingress objects (its
// rules in the base chains by handle). It returns the publications as they
// were before, each with GatewayGone set when it was the last port of its
// gateway. A port that is not published, or published to another target
// or gateway than p names, is refused with a FieldError.
func Unpublish(ctx context.Context, r Reader, tx *nft.Tx, d chains.DaemonConfig, p Port) ([]Change, error) {
	fams := d.Families()
	if p.Target.IsValid() {
		fams = []nft.Family{p.Family()}
	}
	var done []Change
	for _, f := range fams {
		held, err := lookup(ctx, r, f, p.Proto, p.Port)
		if err != nil {
			return nil, fmt.Errorf("read %s ingress ports: %w", f, err)
		}
		if held == nil {
			continue
		}
		if err := matches(*held, p); err != nil {
			return nil, err
		}
		if held.Refs > 1 {
			next := *held
			next.Refs--
			rewrite(tx, f, next)
			done = append(done, Change{Published: *held})
			continue
		}
		gone, err := remove(ctx, r, tx, f, held.Port)
		if err != nil {
			return nil, err
		}
		done = append(done, Change{Published: *held, GatewayGone: gone.Ports > 0, MasqueradeSeq: gone.Created})
	}
	if len(done) == 0 {
		return nil, &FieldError{Field: "port", Value: PortProto(p.Port, p.Proto), Reason: "is not published as an ingress port"}
	}
	return done, nil
}

// matches checks that a held publication is the one p names.
func matches(held Published, p Port) error {
	name := PortProto(p.Port, p.Proto)
	switch {
	case p.Target.IsValid() && held.Target != p.Target:
		return &FieldError{Field: "target", Value: p.Target.String(),
			Reason: fmt.Sprintf("ingress port %s is published to %s", name, held.Target)}
	case p.GwBridge != "" && held.GwBridge != p.GwBridge:
		return &FieldError{Field: "bridge", Value: p.GwBridge,
			Reason: fmt.Sprintf("ingress port %s is published on %s", name, held.GwBridge)}
	}
	return nil
}

// remove queues the removal of the last reference of a port of family f:
// its elements, or, if it is the family's last port, everything. gone is
// the gateway's record when it was the gateway's last port (no ports
// otherwise).
func remove(ctx context.Context, r Reader, tx *nft.Tx, f nft.Family, p Port) (gone Gateway, err error) {
	gws, active, err := readGateways(ctx, r, f)
	if err != nil {
		return Gateway{}, fmt.Errorf("read %s ingress gateways: %w", f, err)
	}
	if !active {
		return Gateway{}, fmt.Errorf("%s set %s is missing while map %s has elements: %w", f, SetGateways, MapDNAT, errChanged)
	}
	g := gws[p.GwBridge]
	if g.Ports <= 1 {
		gone = g
	}
	total := 0
	for _, g := range gws {
		total += g.Ports
	}
	if total <= 1 {
		h, err := readHooks(ctx, r, f)
		if err != nil {
			return Gateway{}, fmt.Errorf("read %s base chains: %w", f, err)
		}
		teardown(tx, f, h)
		return g, nil
	}
	tx.DeleteElements(DNATMap(f), dnatElem(p, portRecord{}))
	tx.DeleteElements(PortsSet(f), portsElem(p, portRecord{}))
	tx.DeleteElements(RepliesSet(f), portsElem(p, portRecord{}))
	setGateway(tx, f, p.GwBridge, g, Gateway{Ports: g.Ports - 1, Created: g.Created, Ingress: g.Ingress})
	return gone, nil
}

func record(p Published) portRecord { return portRecord{gw: p.GwBridge, refs: p.Refs, seq: p.Seq} }

// rewrite replaces a port's ingress-dnat and ingress-ports elements with
// ones carrying p's count, in the same batch.
func rewrite(tx *nft.Tx, f nft.Family, p Published) {
	tx.DeleteElements(DNATMap(f), dnatElem(p.Port, portRecord{}))
	tx.AddElements(DNATMap(f), dnatElem(p.Port, record(p)))
	tx.DeleteElements(PortsSet(f), portsElem(p.Port, portRecord{}))
	tx.AddElements(PortsSet(f), portsElem(p.Port, record(p)))
}

// setGateway replaces gw's ingress-gateways element (from old to next;
// no ports means no element).
func setGateway(tx *nft.Tx, f nft.Family, gw string, old, next Gateway) {
	if old.Ports > 0 {
		tx.DeleteElements(GatewaysSet(f), gatewayElem(gw, Gateway{}))
	}
	if next.Ports > 0 {
		tx.AddElements(GatewaysSet(f), gatewayElem(gw, next))
	}
}

// CheckPort refuses an ingress publication whose port and protocol a
// container binding already publishes, on any host address and in either
// family: the ingress port is taken on every local address. existing comes
// from portmap.ReadBindings.
func CheckPort(p Port, existing []portmap.Published) error {
	for _, b := range existing {
		if b.Proto == p.Proto && b.HostPort == p.Port {
			return &FieldError{Field: "port", Value: PortProto(p.Port, p.Proto),
				Reason: fmt.Sprintf("is already published by network %q (%s)", b.Network, b.Binding)}
		}
	}
	return nil
}

// CheckBindings refuses container bindings (normalised, from
// portmap.CheckPublish) whose host port and protocol an ingress port of
// any family holds, whatever their host address. It gets one element per
// binding and family when r is an [ElementGetter], else it lists the
// ingress-dnat maps of d's families.
func CheckBindings(ctx context.Context, r Reader, d chains.DaemonConfig, bs []portmap.Binding) error {
	if len(bs) == 0 {
		return nil
	}
	held := func(b portmap.Binding) (*Published, error) { return Held(ctx, r, d, b.Proto, b.HostPort) }
	if _, ok := r.(ElementGetter); !ok {
		all, err := listed(ctx, r, d)
		if err != nil {
			return err
		}
		held = func(b portmap.Binding) (*Published, error) { return all[protoPort{b.Proto, b.HostPort}], nil }
	}
	for _, b := range bs {
		p, err := held(b)
		if err != nil {
			return fmt.Errorf("read ingress ports: %w", err)
		}
		if p != nil {
			return &FieldError{Field: "binding", Value: b.String(),
				Reason: fmt.Sprintf("host port %s is held by ingress port %s", PortProto(b.HostPort, b.Proto), p.Port.String())}
		}
	}
	return nil
}

// Held returns the ingress publication that holds proto/port in one of
// d's families (IPv4 first), or nil: a host port allocator must skip such
// ports. Its cost is one element get per family with an [ElementGetter],
// else a listing of the ingress-dnat maps.
func Held(ctx context.Context, r Reader, d chains.DaemonConfig, proto portmap.Proto, port uint16) (*Published, error) {
	for _, f := range d.Families() {
		p, err := lookup(ctx, r, f, proto, port)
		if err != nil || p != nil {
			return p, err
		}
	}
	return nil, nil
}

type protoPort struct {
	proto portmap.Proto
	port  uint16
}

// listed reads every ingress publication of d's families by proto/port.
func listed(ctx context.Context, r Reader, d chains.DaemonConfig) (map[protoPort]*Published, error) {
	all := map[protoPort]*Published{}
	for _, f := range d.Families() {
		ps, err := readFamily(ctx, r, f)
		if err != nil {
			return nil, fmt.Errorf("read %s ingress ports: %w", f, err)
		}
		for i := range ps {
			all[protoPort{ps[i].Proto, ps[i].Port.Port}] = &ps[i]
		}
	}
	return all, nil
}
