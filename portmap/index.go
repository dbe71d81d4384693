package portmap

import (
	"math/bits"
	"net/netip"
	"slices"
)

// claimKey is what a binding claims on the host, its address aside: a
// proto and port of one address family.
type claimKey struct {
	proto Proto
	v6    bool
	port  uint16
}

func claimOf(b Binding) claimKey {
	return claimKey{b.Proto, !b.HostIP.Unmap().Is4(), b.HostPort}
}

// targetKey is a container port of a network: the bindings that forward
// to it share its filter accept and hairpin elements.
type targetKey struct {
	network string
	addr    netip.Addr
	proto   Proto
	port    uint16
}

func targetOf(network string, b Binding) targetKey {
	return targetKey{network, b.ContainerIP, b.Proto, b.ContainerPort}
}

// portBits marks host ports, so that a search for a free port skips
// taken ones 64 at a time.
type portBits [65536 / 64]uint64

func (p *portBits) set(port uint16, on bool) {
	if on {
		p[port/64] |= 1 << (port % 64)
	} else {
		p[port/64] &^= 1 << (port % 64)
	}
}

// nextClear returns the first port >= from that none of sets marks (nil
// sets mark nothing), or false when there is none up to 65535.
func nextClear(from uint16, sets ...*portBits) (uint16, bool) {
	for w := int(from / 64); w < len(portBits{}); w++ {
		var taken uint64
		for _, s := range sets {
			if s != nil {
				taken |= s[w]
			}
		}
		free := ^taken
		if w == int(from/64) {
			free &^= 1<<(from%64) - 1
		}
		if free != 0 {
			return uint16(w*64 + bits.TrailingZeros64(free)), true
		}
	}
	return 0, false
}

// hostKey is a proto on one host address (the unspecified address for
// all addresses).
type hostKey struct {
	proto Proto
	addr  netip.Addr
}

// Index holds published bindings in memory, keyed the ways publishing
// needs them, so that checking and queuing a binding costs the same
// whatever the number of bindings: by network and binding, by the host
// port they claim, and by the container port they forward to. Build it
// once from [ReadBindings] with [NewIndex] and keep it up to date with
// [Index.Add] and [Index.Remove] after each commit. An Index is not safe
// for concurrent use.
type Index struct {
	byNet   map[string]map[Binding]int64
	claims  map[claimKey][]Published
	targets map[targetKey][]Published
	// taken marks the ports some binding of a proto and family claims
	// (claimKey.port is 0), hosts those of a proto and host address.
	taken map[claimKey]*portBits
	hosts map[hostKey]*portBits
	n     int
}

// NewIndex indexes published bindings (normalised, as [ReadBindings]
// returns them). Counters are not kept.
func NewIndex(ps []Published) *Index {
	x := &Index{
		byNet:   map[string]map[Binding]int64{},
		claims:  map[claimKey][]Published{},
		targets: map[targetKey][]Published{},
		taken:   map[claimKey]*portBits{},
		hosts:   map[hostKey]*portBits{},
	}
	for _, p := range ps {
		x.add(p)
	}
	return x
}

// Len returns the number of bindings.
func (x *Index) Len() int { return x.n }

// Add records bindings published on network; binding i has sequence
// number seq+i, as with [Index.Publish].
func (x *Index) Add(network string, bs []Binding, seq int64) {
	for i, b := range bs {
		x.add(Published{Network: network, Binding: b, Seq: seq + int64(i)})
	}
}

func (x *Index) add(p Published) {
	p.Packets, p.Bytes = 0, 0
	m := x.byNet[p.Network]
	if m == nil {
		m = map[Binding]int64{}
		x.byNet[p.Network] = m
	}
	if _, dup := m[p.Binding]; dup {
		return
	}
	m[p.Binding] = p.Seq
	x.n++
	k := claimOf(p.Binding)
	c := p // host port questions do not answer with positions
	c.FilterSeq, c.HairpinSeq = 0, 0
	x.claims[k] = append(x.claims[k], c)
	x.bits(k).set(k.port, true)
	x.hostBits(p.Proto, p.HostIP).set(k.port, true)
	t := targetOf(p.Network, p.Binding)
	x.targets[t] = append(x.targets[t], p)
}

// Remove forgets bindings of network.
func (x *Index) Remove(network string, bs []Binding) {
	for _, b := range bs {
		m := x.byNet[network]
		if _, ok := m[b]; !ok {
			continue
		}
		delete(m, b)
		if len(m) == 0 {
			delete(x.byNet, network)
		}
		x.n--
		k := claimOf(b)
		list := without(x.claims[k], network, b)
		if len(list) == 0 {
			delete(x.claims, k)
		} else {
			x.claims[k] = list
		}
		x.bits(k).set(k.port, len(list) > 0)
		// Another binding on the same address and port is possible only in
		// a state that dnft did not write; keep the marks right anyway.
		x.hostBits(b.Proto, b.HostIP).set(k.port, slices.ContainsFunc(list, func(p Published) bool { return p.HostIP == b.HostIP }))
		t := targetOf(network, b)
		// The bindings of the container port that stay may take the
		// removed one's place in iptables' view.
		if list := removeShared(x.targets[t], []Binding{b}); len(list) == 0 {
			delete(x.targets, t)
		} else {
			x.targets[t] = list
		}
	}
}

// without returns list less the binding b of network (a new slice, so
// that slices handed out earlier stay intact).
func without(list []Published, network string, b Binding) []Published {
	for i, p := range list {
		if p.Network == network && p.Binding == b {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

func (x *Index) hostBits(proto Proto, addr netip.Addr) *portBits {
	k := hostKey{proto, addr}
	p := x.hosts[k]
	if p == nil {
		p = &portBits{}
		x.hosts[k] = p
	}
	return p
}

func (x *Index) bits(k claimKey) *portBits {
	k.port = 0
	p := x.taken[k]
	if p == nil {
		p = &portBits{}
		x.taken[k] = p
	}
	return p
}

// Lookup returns the binding b of network, if published.
func (x *Index) Lookup(network string, b Binding) (Published, bool) {
	seq, ok := x.byNet[network][b]
	return Published{Network: network, Binding: b, Seq: seq}, ok
}

// Network returns the bindings of the named network, oldest first.
func (x *Index) Network(name string) []Published {
	var out []Published
	for b, seq := range x.byNet[name] {
		out = append(out, Published{Network: name, Binding: b, Seq: seq})
	}
	SortPublished(out)
	return out
}

// All returns every binding, oldest first.
func (x *Index) All() []Published {
	out := make([]Published, 0, x.n)
	for name := range x.byNet {
		out = append(out, x.Network(name)...)
	}
	SortPublished(out)
	return out
}

// clashWith returns the first published binding that claims b's host
// address and port (see [clash]).
func (x *Index) clashWith(b Binding) (Published, bool) {
	for _, p := range x.claims[claimOf(b)] {
		if clash(b, p.Binding) {
			return p, true
		}
	}
	return Published{}, false
}

// PortHolder returns the oldest binding that publishes proto and port on
// any host address, in either family, for callers to whom the port is
// taken on every address (an ingress port). Its cost does not grow with
// the number of bindings.
func (x *Index) PortHolder(proto Proto, port uint16) (Published, bool) {
	var out []Published
	for _, v6 := range []bool{false, true} {
		out = append(out, x.claims[claimKey{proto, v6, port}]...)
	}
	if len(out) == 0 {
		return Published{}, false
	}
	SortPublished(out)
	return out[0], true
}

// sameHost returns a published binding with b's proto, host address and
// port, whatever its container.
func (x *Index) sameHost(b Binding) (Published, bool) {
	for _, p := range x.claims[claimOf(b)] {
		if p.HostIP == b.HostIP {
			return p, true
		}
	}
	return Published{}, false
}

// sharing returns how many bindings of network forward to b's
// container port.
func (x *Index) sharing(network string, b Binding) int {
	return len(x.targets[targetOf(network, b)])
}

// targetBindings returns the bindings of network that forward to
// container address c, proto and container port, oldest first.
func (x *Index) targetBindings(network string, c netip.Addr, proto Proto, port uint16) []Published {
	out := append([]Published(nil), x.targets[targetKey{network, c, proto, port}]...)
	SortPublished(out)
	return out
}
