package ingress

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Reader reads sets and chains of dnft's tables; *nft.Conn implements it.
type Reader interface {
	ReadSet(ctx context.Context, f nft.Family, name string) (nft.SetState, bool, error)
	ReadChain(ctx context.Context, f nft.Family, name string) (nft.ChainState, bool, error)
}

// DecodeDNAT decodes one ingress-dnat element of a family: the
// publication's first record.
func DecodeDNAT(f nft.Family, e nft.ElementState) (Published, error) { return decode(f, e) }

// DecodePorts decodes one ingress-ports element of a family: the
// publication's second record (see [DNATMap] and [PortsSet]).
func DecodePorts(f nft.Family, e nft.ElementState) (Published, error) {
	v, err := nft.DecodeKey(f, keyPort, e.Key)
	if err != nil {
		return Published{}, fmt.Errorf("%s set %s: %w", f, SetPorts, err)
	}
	p := Port{Proto: protoOf(v[0].Proto), Port: v[1].Port}
	r, t, err := parseSecond(e.Comment)
	if err != nil {
		return Published{}, fmt.Errorf("%s set %s: element %s: %w", f, SetPorts, PortProto(p.Port, p.Proto), err)
	}
	p.GwBridge, p.Target = r.gw, t
	return Published{Port: p, Refs: r.refs, Seq: r.seq}, nil
}

// DecodeGateway decodes one ingress-gateways element of a family: the
// gateway bridge and its record.
func DecodeGateway(f nft.Family, e nft.ElementState) (string, Gateway, error) {
	v, err := nft.DecodeKey(f, keyGateway, e.Key)
	if err != nil {
		return "", Gateway{}, fmt.Errorf("%s set %s: %w", f, SetGateways, err)
	}
	g, err := parseGatewayRecord(e.Comment)
	if err != nil {
		return "", Gateway{}, fmt.Errorf("%s set %s: element %q: %w", f, SetGateways, v[0].Name, err)
	}
	return v[0].Name, g, nil
}

// decode turns one ingress-dnat element into a publication.
func decode(f nft.Family, e nft.ElementState) (Published, error) {
	v, err := nft.DecodeKey(f, keyPort, e.Key)
	if err != nil {
		return Published{}, fmt.Errorf("%s map %s: %w", f, MapDNAT, err)
	}
	to, err := nft.DecodeTarget(f, e.Data)
	if err != nil {
		return Published{}, fmt.Errorf("%s map %s: %w", f, MapDNAT, err)
	}
	p := Port{Proto: protoOf(v[0].Proto), Port: v[1].Port, Target: to.Addr()}
	r, err := parsePortRecord(e.Comment)
	if err != nil {
		return Published{}, fmt.Errorf("%s map %s: element %s: %w", f, MapDNAT, PortProto(p.Port, p.Proto), err)
	}
	p.GwBridge = r.gw
	return Published{Port: p, Refs: r.refs, Seq: r.seq, Packets: e.Packets, Bytes: e.Bytes}, nil
}

func protoOf(n uint8) portmap.Proto {
	for _, p := range []portmap.Proto{portmap.TCP, portmap.UDP, portmap.SCTP} {
		if p.Number() == n {
			return p
		}
	}
	return portmap.Proto(fmt.Sprint(n))
}

// readFamily reads every publication of one family (none when the family
// has no ingress objects).
func readFamily(ctx context.Context, r Reader, f nft.Family) ([]Published, error) {
	s, ok, err := r.ReadSet(ctx, f, MapDNAT)
	if err != nil || !ok {
		return nil, err
	}
	var ps []Published
	for _, e := range s.Elements {
		p, err := decode(f, e)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// ElementGetter reads one element of a set or map by key; ok is false
// when the element or the set does not exist. A [Reader] that implements
// it (a single NFT_MSG_GETSETELEM request) makes [Publish], [Unpublish]
// and [CheckBindings] independent of the number of ingress ports;
// otherwise they list the ingress-dnat map.
type ElementGetter interface {
	GetElement(ctx context.Context, s nft.Set, key []nft.Value) (e nft.ElementState, ok bool, err error)
}

// lookup finds the publication of proto/port in one family: one element
// get when r is an [ElementGetter], else a listing of the whole
// ingress-dnat map (O(ingress ports)).
func lookup(ctx context.Context, r Reader, f nft.Family, proto portmap.Proto, port uint16) (*Published, error) {
	if g, ok := r.(ElementGetter); ok {
		e, ok, err := g.GetElement(ctx, DNATMap(f), portKey(proto, port))
		if err != nil || !ok {
			return nil, err
		}
		p, err := decode(f, e)
		return &p, err
	}
	s, ok, err := r.ReadSet(ctx, f, MapDNAT)
	if err != nil || !ok {
		return nil, err
	}
	for _, e := range s.Elements {
		v, err := nft.DecodeKey(f, keyPort, e.Key)
		if err != nil {
			return nil, fmt.Errorf("%s map %s: %w", f, MapDNAT, err)
		}
		if v[0].Proto != proto.Number() || v[1].Port != port {
			continue
		}
		p, err := decode(f, e)
		if err != nil {
			return nil, err
		}
		return &p, nil
	}
	return nil, nil
}

// Gateways returns the records of a family's ingress gateway bridges by
// name (nil when the family has no ingress objects).
func Gateways(ctx context.Context, r Reader, f nft.Family) (map[string]Gateway, error) {
	gws, _, err := readGateways(ctx, r, f)
	return gws, err
}

// readGateways reads the records of every gateway bridge of a family (a
// handful of elements). active is false when the family has no ingress
// objects.
func readGateways(ctx context.Context, r Reader, f nft.Family) (gws map[string]Gateway, active bool, err error) {
	s, ok, err := r.ReadSet(ctx, f, SetGateways)
	if err != nil || !ok {
		return nil, false, err
	}
	gws = map[string]Gateway{}
	for _, e := range s.Elements {
		v, err := nft.DecodeKey(f, keyGateway, e.Key)
		if err != nil {
			return nil, true, fmt.Errorf("%s set %s: %w", f, SetGateways, err)
		}
		n, err := parseGatewayRecord(e.Comment)
		if err != nil {
			return nil, true, fmt.Errorf("%s set %s: element %s: %w", f, SetGateways, v[0].Name, err)
		}
		gws[v[0].Name] = n
	}
	return gws, true, nil
}

// readHooks reads the four base chains ingress hooks into (a few rules
// each, whatever the number of ports or networks).
func readHooks(ctx context.Context, r Reader, f nft.Family) (hooks, error) {
	var h hooks
	for _, c := range []struct {
		chain  string
		anchor string
		into   *uint64
	}{
		{chains.NATPrerouting, anchorDocker, &h.prerouting},
		{chains.NATOutput, anchorDocker, &h.output},
		{chains.FilterForward, anchorIsolation, &h.forward},
		{chains.NATPostrouting, chains.CommentPolicy, &h.postrouting}, // optional
	} {
		cs, ok, err := r.ReadChain(ctx, f, c.chain)
		if err != nil {
			return h, err
		}
		if !ok {
			return h, fmt.Errorf("%s chain %s is missing: %w", f, c.chain, errChanged)
		}
		for _, rs := range cs.Rules {
			switch {
			case c.into != nil && rs.Comment == c.anchor && *c.into == 0:
				*c.into = rs.Handle
			case rs.Comment == commentJump || (c.chain == chains.NATPostrouting && rs.Comment == commentMasq):
				h.own = append(h.own, ruleRef{c.chain, rs.Handle})
			}
		}
		if c.into != nil && *c.into == 0 && c.chain != chains.NATPostrouting {
			return h, fmt.Errorf("%s chain %s has no %q rule: %w", f, c.chain, c.anchor, errChanged)
		}
	}
	return h, nil
}

var errChanged = errors.New("dnft's table was changed by someone else (reset and init again)")

// List reads every ingress publication of the daemon's families, oldest
// first. It reads the whole ingress-dnat maps.
func List(ctx context.Context, r Reader, d chains.DaemonConfig) ([]Published, error) {
	var out []Published
	for _, f := range d.Families() {
		ps, err := readFamily(ctx, r, f)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	sortPublished(out)
	return out, nil
}

func sortPublished(ps []Published) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Seq != ps[j].Seq {
			return ps[i].Seq < ps[j].Seq
		}
		return ps[i].String() < ps[j].String()
	})
}
