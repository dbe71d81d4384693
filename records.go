package dnft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// recordTruth is what dnft's records in a snapshot of its tables say the
// tables should hold (see [recordsOf]).
type recordTruth struct {
	// state is the state the records describe (without DOCKER-USER's
	// rules); Daemon is nil when dnft is not initialized.
	state State
	// findings are the records that are not valid, that do not agree
	// with their other copy, or that the state as a whole refuses.
	findings []Finding
	// unknown is set, wrapping ErrStateUnknown, when the records do not
	// tell what the tables should hold: a table or every copy of a
	// record is gone, or two valid copies disagree and nothing tells
	// which is right. state is then the best guess.
	unknown error
}

func (rt *recordTruth) find(f nft.Family, object, format string, args ...any) {
	rt.findings = append(rt.findings, Finding{Family: f, Object: object, Problem: fmt.Sprintf(format, args...)})
}

func (rt *recordTruth) unknownf(format string, args ...any) {
	if rt.unknown == nil {
		rt.unknown = fmt.Errorf("%w: %s", ErrStateUnknown, fmt.Sprintf(format, args...))
	}
}

// setOf returns a table's set and whether it exists.
func setOf(t *nft.TableState, name string) (nft.SetState, bool) {
	if t == nil {
		return nft.SetState{}, false
	}
	if s := t.Set(name); s != nil {
		return *s, true
	}
	return nft.SetState{}, false
}

// recordsOf reads the state dnft recorded in a snapshot of its tables,
// validating every record as user input is validated. Every record is
// kept twice, on elements of two different sets:
//
//   - the daemon: the daemon elements of the networks set and the
//     forward-out map;
//   - a network: its networks set element and its forward-out element;
//   - a binding: its DNAT map element and its skip set element;
//   - an ingress publication: its ingress-dnat and ingress-ports elements.
//
// so that any one edit of the kernel (a deleted, flushed, forged or
// changed element or set) leaves one good copy. A copy that is missing
// or not valid is restored from the other. An object with only one copy
// is dnft's when what it implies is there (a network's chains, a
// binding's filter accept or hairpin element, an ingress port counted by
// its gateway), and otherwise a forged record, left out. Two valid
// copies that differ are resolved the same way, and make the state
// unknown when that does not tell.
func recordsOf(have []nft.TableState) recordTruth {
	var rt recordTruth
	v4 := findTable(have, nft.IPv4)
	if v4 == nil {
		if len(have) > 0 {
			rt.unknownf("the ip table %s, which holds the records, is missing (deleted by someone else)", nft.TableName)
		}
		return rt
	}
	a := chains.ReadRecords(setOf(v4, chains.SetNetworks))
	b := chains.ReadRecords(setOf(v4, chains.MapForwardOut))
	for _, r := range []struct {
		what string
		recs chains.Records
	}{{"set " + chains.SetNetworks, a}, {"map " + chains.MapForwardOut, b}} {
		for _, bad := range r.recs.Bad {
			obj := r.what + " element " + strconv.Quote(bad.Key)
			rt.find(nft.IPv4, obj, "invalid record: %v", bad.Err)
		}
	}
	d := rt.daemon(a, b)
	if d == nil {
		return rt
	}
	rt.state.Daemon = d
	for _, f := range d.Families() {
		if findTable(have, f) == nil {
			rt.unknownf("the %s table %s is missing, with the records it held", f, nft.TableName)
		}
	}
	rt.state.Networks = rt.networks(*d, a, b, v4)
	for _, f := range d.Families() {
		rt.state.Ports = append(rt.state.Ports, rt.bindings(*d, f, findTable(have, f))...)
	}
	rt.state.Ports = rt.checkPorts(rt.state.Ports)
	for _, f := range d.Families() {
		rt.positions(f, findTable(have, f))
	}
	for _, f := range d.Families() {
		rt.state.Ingress = append(rt.state.Ingress, rt.ingress(*d, f, findTable(have, f))...)
	}
	sortBySeq(rt.state.Ingress, func(p IngressPublished) int64 { return p.Seq })
	for _, f := range d.Families() {
		rt.ingressHistory(*d, f, findTable(have, f))
	}
	return rt
}

// positions reads the history of the bindings of one family (set
// positions, see [portmap.SetPositions]): an element of no binding, or
// one dnft would not have written, is a finding and left out.
func (rt *recordTruth) positions(f nft.Family, t *nft.TableState) {
	s, ok := setOf(t, portmap.SetPositions)
	if !ok || len(s.Elements) == 0 {
		return
	}
	at := make(map[bindingKey]int, len(rt.state.Ports))
	for i, p := range rt.state.Ports {
		if family(p.HostIP) == f {
			at[bindingKey{p.Proto, p.HostIP, p.HostPort}] = i
		}
	}
	for _, e := range s.Elements {
		b, fs, hs, err := portmap.DecodePositions(f, e)
		i, ok := at[bindingKey{b.Proto, b.HostIP, b.HostPort}]
		switch {
		case err != nil:
		case !ok:
			err = fmt.Errorf("no binding publishes %s/%s", netip.AddrPortFrom(b.HostIP, b.HostPort), b.Proto)
		default:
			err = portmap.CheckPositions(rt.state.Ports[i], fs, hs)
		}
		if err != nil {
			rt.find(f, "set "+portmap.SetPositions+" element "+elemHex(e), "invalid record: %v", err)
			continue
		}
		rt.state.Ports[i].FilterSeq, rt.state.Ports[i].HairpinSeq = fs, hs
	}
}

// ingressHistory reads the history of the ingress gateways of one family
// (their records, see [ingress.History]); history that a state document
// would not be allowed to hold is a finding and left out.
func (rt *recordTruth) ingressHistory(d DaemonConfig, f nft.Family, t *nft.TableState) {
	s, ok := setOf(t, ingress.SetGateways)
	if !ok {
		return
	}
	for _, h := range ingress.HistoryOf(f, s, rt.state.Ingress) {
		if _, err := validIngressHistory(d, rt.state.Ingress, append(slices.Clone(rt.state.IngressHistory), h)); err != nil {
			rt.find(f, "set "+ingress.SetGateways+" element "+strconv.Quote(h.Bridge), "invalid record: %v", err)
			continue
		}
		rt.state.IngressHistory = append(rt.state.IngressHistory, h)
	}
}

// daemon resolves the two copies of the daemon record.
func (rt *recordTruth) daemon(a, b chains.Records) *DaemonConfig {
	switch {
	case a.Daemon == nil && b.Daemon == nil:
		rt.unknownf("the daemon record is gone (set %s and map %s hold none)", chains.SetNetworks, chains.MapForwardOut)
		return nil
	case a.Daemon == nil:
		return b.Daemon
	case b.Daemon == nil || *a.Daemon == *b.Daemon:
		return a.Daemon
	}
	rt.find(nft.IPv4, "map "+chains.MapForwardOut+" element "+strconv.Quote(chains.DaemonKey), "its record differs from the networks set's (%s, want %s)",
		chains.EncodeDaemon(*b.Daemon), chains.EncodeDaemon(*a.Daemon))
	rt.unknownf("the two daemon records differ")
	return a.Daemon
}

// networks resolves the two copies of the network records: by bridge, a
// network with one copy is dnft's when its FORWARD__B chain exists.
func (rt *recordTruth) networks(d DaemonConfig, a, b chains.Records, v4 *nft.TableState) []Network {
	var out []Network
	bridges := make([]string, 0, len(a.Nets)+len(b.Nets))
	for br := range a.Nets {
		bridges = append(bridges, br)
	}
	for br := range b.Nets {
		if _, ok := a.Nets[br]; !ok {
			bridges = append(bridges, br)
		}
	}
	slices.Sort(bridges)
	for _, br := range bridges {
		na, okA := a.Nets[br]
		nb, okB := b.Nets[br]
		chain := v4.Chain(chains.ForwardChain(br)) != nil
		switch {
		case okA && okB && na == nb, okA && !okB && chain:
			out = append(out, na)
		case !okA && okB && chain:
			out = append(out, nb)
		case okA && okB:
			rt.find(nft.IPv4, "map "+chains.MapForwardOut+" element "+strconv.Quote(br),
				"its record differs from the networks set's (%s, want %s)", chains.EncodeNetwork(nb), chains.EncodeNetwork(na))
			rt.unknownf("the two records of the network on bridge %q differ", br)
			out = append(out, na)
		}
		// A single copy without the network's chains is a forged record:
		// the comparison reports its element as not dnft's.
	}
	chains.SortNetworks(out)
	// Validate the networks as a whole, oldest first; a network that
	// clashes with an older one is left out.
	var kept []Network
	for _, n := range out {
		if err := chains.CheckNetworks(d, append(kept, n)); err != nil {
			rt.find(nft.IPv4, "set "+chains.SetNetworks+" element "+strconv.Quote(n.Bridge), "invalid record: %v", err)
			continue
		}
		kept = append(kept, n)
	}
	return kept
}

// bindingKey identifies a binding of a family by what it claims on the
// host.
type bindingKey struct {
	proto portmap.Proto
	host  netip.Addr
	port  uint16
}

// bindingCopies are the two records of one binding.
type bindingCopies struct {
	dnat, skip       Published
	hasDNAT, hasSkip bool
}

// bindings resolves the two records of the bindings of one family: the
// DNAT map elements and the skip set elements. A binding with one valid
// record is dnft's when its filter accept or hairpin element is there
// (a forged DNAT element to a container port nobody published is not).
func (rt *recordTruth) bindings(d DaemonConfig, f nft.Family, t *nft.TableState) []Published {
	if t == nil {
		return nil
	}
	nets := rt.state.Networks
	byName := make(map[string]Network, len(nets))
	byBridge := make(map[string]Network, len(nets))
	for _, n := range nets {
		byName[n.Name], byBridge[n.Bridge] = n, n
	}
	valid := func(p Published) error {
		n, ok := byName[p.Network]
		if !ok {
			return fmt.Errorf("network %q has no record", p.Network)
		}
		if n.Internal {
			return fmt.Errorf("network %q is internal", p.Network)
		}
		nb, err := portmap.Normalize(d, n, p.Binding)
		if err != nil {
			return err
		}
		if nb != p.Binding {
			return fmt.Errorf("not in normal form (%s)", nb)
		}
		return nil
	}
	// One entry per binding, in the order first seen, found by key: no
	// allocation per element.
	n := 0
	for _, name := range []string{portmap.MapDNATHost, portmap.MapDNATAny} {
		s, _ := setOf(t, name)
		n += len(s.Elements)
	}
	pos := make(map[bindingKey]int, n)
	all := make([]bindingCopies, 0, n)
	entry := func(b Binding) *bindingCopies {
		k := bindingKey{b.Proto, b.HostIP, b.HostPort}
		j, ok := pos[k]
		if !ok {
			j = len(all)
			pos[k] = j
			all = append(all, bindingCopies{})
		}
		return &all[j]
	}
	for _, m := range []struct {
		name string
		all  bool
	}{{portmap.MapDNATHost, false}, {portmap.MapDNATAny, true}} {
		s, _ := setOf(t, m.name)
		for _, e := range s.Elements {
			p, err := portmap.DecodeDNAT(f, m.all, e)
			if err == nil {
				err = valid(p)
			}
			if err != nil {
				rt.find(f, "map "+m.name+" element "+elemHex(e), "invalid record: %v", err)
				continue
			}
			p.Packets, p.Bytes = 0, 0
			c := entry(p.Binding)
			c.dnat, c.hasDNAT = p, true
		}
	}
	for _, m := range []struct {
		name string
		all  bool
	}{{portmap.SetDNATSkipHost, false}, {portmap.SetDNATSkipAny, true}} {
		s, _ := setOf(t, m.name)
		for _, e := range s.Elements {
			bridge, p, err := portmap.DecodeSkip(f, m.all, e)
			if err == nil {
				n, ok := byBridge[bridge]
				if !ok {
					err = fmt.Errorf("bridge %q is no network's", bridge)
				}
				p.Network = n.Name
			}
			if err == nil {
				err = valid(p)
			}
			if err != nil {
				rt.find(f, "set "+m.name+" element "+elemHex(e), "invalid record: %v", err)
				continue
			}
			c := entry(p.Binding)
			c.skip, c.hasSkip = p, true
		}
	}
	// The shared elements' keys, only for the bindings whose records
	// disagree or are single.
	var shared map[string]bool
	consistent := func(p *Published) bool {
		if shared == nil {
			shared = elementKeys(t, chains.SetPublished, portmap.SetHairpin)
		}
		pub, hp, err := portmap.SharedKeys(p.Binding)
		return err == nil && (shared[chains.SetPublished+"/"+string(pub)] || shared[portmap.SetHairpin+"/"+string(hp)])
	}
	out := make([]Published, 0, len(all))
	for j := range all {
		c := &all[j]
		switch {
		case c.hasDNAT && c.hasSkip && c.dnat == c.skip:
			out = append(out, c.dnat)
		case c.hasDNAT && c.hasSkip:
			cd, cs := consistent(&c.dnat), consistent(&c.skip)
			switch {
			case cd && !cs:
				out = append(out, c.dnat)
			case cs && !cd:
				out = append(out, c.skip)
			default:
				// The best guess is the skip record: an edit that moves
				// packets changes the DNAT element.
				rt.find(f, "binding "+c.skip.Binding.String(), "its two records differ (%s on %s in map %s, %s on %s in set %s)",
					c.dnat.Binding, c.dnat.Network, dnatMap(c.dnat.Binding), c.skip.Binding, c.skip.Network, skipSet(c.skip.Binding))
				rt.unknownf("the two records of binding %s differ", c.skip.Binding)
				out = append(out, c.skip)
			}
		case c.hasDNAT && consistent(&c.dnat):
			out = append(out, c.dnat)
		case c.hasSkip && consistent(&c.skip):
			out = append(out, c.skip)
		}
		// A single record of a container port that nobody published is
		// forged: the comparison reports its element as not dnft's.
	}
	return out
}

// dnatMap and skipSet name the map and set of a binding's records.
func dnatMap(b Binding) string {
	if b.HostIP.IsUnspecified() {
		return portmap.MapDNATAny
	}
	return portmap.MapDNATHost
}

func skipSet(b Binding) string {
	if b.HostIP.IsUnspecified() {
		return portmap.SetDNATSkipAny
	}
	return portmap.SetDNATSkipHost
}

// checkPorts validates the bindings as a whole, oldest first, as a state
// document's are: one that clashes with an older one is left out.
func (rt *recordTruth) checkPorts(ps []Published) []Published {
	sortBySeq(ps, func(p Published) int64 { return p.Seq })
	// Each binding was checked on its own against its network (see
	// bindings) and is keyed by its host address, proto and port; what is
	// left are the clashes of a binding on all addresses with one on a
	// specific address of the same family, proto and port. One map of
	// claims finds them in O(n).
	type claim struct {
		proto portmap.Proto
		v6    bool
		port  uint16
	}
	type claimed struct {
		all      *Published // the binding on all addresses, if any
		specific *Published // a binding on a specific address, if any
	}
	claims := make(map[claim]*claimed, len(ps))
	out := ps[:0]
	for i := range ps {
		p := ps[i]
		k := claim{p.Proto, p.HostIP.Is6(), p.HostPort}
		c := claims[k]
		if c == nil {
			c = &claimed{}
			claims[k] = c
		}
		var other *Published
		if p.HostIP.IsUnspecified() {
			other = c.specific
		} else {
			other = c.all
		}
		if other != nil {
			rt.find(family(p.ContainerIP), "binding "+p.Binding.String(), "invalid record: overlaps %s, published by network %q", other.Binding, other.Network)
			continue
		}
		kept := p
		if p.HostIP.IsUnspecified() {
			c.all = &kept
		} else if c.specific == nil {
			c.specific = &kept
		}
		out = append(out, p)
	}
	return out
}

// ingress resolves the two records of the ingress publications of one
// family: the ingress-dnat and the ingress-ports elements. A publication
// with one valid record is dnft's when its gateway counts more ports
// than have both records.
func (rt *recordTruth) ingress(d DaemonConfig, f nft.Family, t *nft.TableState) []IngressPublished {
	if t == nil {
		return nil
	}
	type hostPort struct {
		proto portmap.Proto
		port  uint16
	}
	taken := make(map[hostPort]Published, len(rt.state.Ports))
	for _, p := range rt.state.Ports {
		if _, ok := taken[hostPort{p.Proto, p.HostPort}]; !ok {
			taken[hostPort{p.Proto, p.HostPort}] = p
		}
	}
	valid := func(p IngressPublished) error {
		np, err := ingress.Normalize(d, p.Port)
		switch {
		case err != nil:
			return err
		case np != p.Port || np.Family() != f:
			return fmt.Errorf("not in normal form (%s)", np)
		}
		if b, ok := taken[hostPort{p.Proto, p.Port.Port}]; ok {
			return ingress.CheckPort(p.Port, []Published{b})
		}
		return nil
	}
	type key struct {
		proto portmap.Proto
		port  uint16
	}
	type pair struct{ dnat, ports *IngressPublished }
	copies := map[key]*pair{}
	var order []key
	entry := func(p IngressPublished) *pair {
		k := key{p.Proto, p.Port.Port}
		c := copies[k]
		if c == nil {
			c = &pair{}
			copies[k] = c
			order = append(order, k)
		}
		return c
	}
	for _, m := range []struct {
		name   string
		decode func(nft.Family, nft.ElementState) (IngressPublished, error)
		into   func(*pair, *IngressPublished)
	}{
		{ingress.MapDNAT, ingress.DecodeDNAT, func(c *pair, p *IngressPublished) { c.dnat = p }},
		{ingress.SetPorts, ingress.DecodePorts, func(c *pair, p *IngressPublished) { c.ports = p }},
	} {
		s, _ := setOf(t, m.name)
		for _, e := range s.Elements {
			p, err := m.decode(f, e)
			if err == nil {
				err = valid(p)
			}
			if err != nil {
				rt.find(f, "set "+m.name+" element "+elemHex(e), "invalid record: %v", err)
				continue
			}
			p.Packets, p.Bytes = 0, 0
			m.into(entry(p), &p)
		}
	}
	counts := map[string]int{}
	gws, _ := setOf(t, ingress.SetGateways)
	for _, e := range gws.Elements {
		if gw, g, err := ingress.DecodeGateway(f, e); err == nil {
			counts[gw] = g.Ports
		}
	}
	var out, single []IngressPublished
	agreed := map[string]int{}
	for _, k := range order {
		c := copies[k]
		switch {
		case c.dnat != nil && c.ports != nil && *c.dnat == *c.ports:
			out = append(out, *c.dnat)
			agreed[c.dnat.GwBridge]++
		case c.dnat != nil && c.ports != nil:
			// The best guess is the ingress-ports record, as for bindings.
			rt.find(f, "ingress "+ingress.PortProto(k.port, k.proto), "its two records differ (%s in map %s, %s in set %s)",
				c.dnat.Port, ingress.MapDNAT, c.ports.Port, ingress.SetPorts)
			rt.unknownf("the two records of ingress port %s differ", ingress.PortProto(k.port, k.proto))
			out = append(out, *c.ports)
			agreed[c.ports.GwBridge]++
		case c.dnat != nil:
			single = append(single, *c.dnat)
		default:
			single = append(single, *c.ports)
		}
	}
	for _, p := range single {
		// The gateway counts every port published on it: if the ports
		// with both records already make that count, this one is
		// forged (the comparison reports its element as not dnft's).
		if counts[p.GwBridge] > agreed[p.GwBridge] {
			out = append(out, p)
		}
	}
	return out
}

// elementKeys returns the keys of the elements of a table's sets.
func elementKeys(t *nft.TableState, sets ...string) map[string]bool {
	out := map[string]bool{}
	for _, name := range sets {
		s, _ := setOf(t, name)
		for _, e := range s.Elements {
			out[name+"/"+string(e.Key)] = true
		}
	}
	return out
}

// elemHex names an element by its key, for findings.
func elemHex(e nft.ElementState) string { return fmt.Sprintf("0x%x", e.Key) }

// family returns the nft family of an address.
func family(a netip.Addr) nft.Family {
	if a.Unmap().Is4() {
		return nft.IPv4
	}
	return nft.IPv6
}
