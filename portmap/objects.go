package portmap

import (
	"net/netip"
	"strconv"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// Sets and maps of published ports, one of each per family. Together with
// chains.SetPublished they replace iptables' per-port rules: a packet meets
// the same few rules whatever the number of published ports.
const (
	// MapDNATHost maps daddr . l4proto . dport to addr . port for bindings
	// on a specific host address: `-t nat -A DOCKER -d H/32 -p P --dport
	// HP -j DNAT --to-destination C:CP`. With MapDNATAny it is also the
	// record of the published bindings (element comments).
	MapDNATHost = "dnat-host"
	// MapDNATAny maps l4proto . dport to addr . port for bindings on all
	// addresses (0.0.0.0 or ::).
	MapDNATAny = "dnat-any"
	// SetDNATSkipHost holds iifname . daddr . l4proto . dport of every
	// host-specific binding, with the binding's own bridge: iptables'
	// `! -i B` on the DNAT rule (userland proxy on).
	SetDNATSkipHost = "dnat-skip-host"
	// SetDNATSkipAny is SetDNATSkipHost for bindings on all addresses.
	SetDNATSkipAny = "dnat-skip-any"
	// SetHairpin holds saddr . daddr . l4proto . dport (the container's
	// address twice): `-t nat -A POSTROUTING -s C/32 -d C/32 -p P --dport
	// CP -j MASQUERADE`.
	SetHairpin = "hairpin"
	// SetLoopbackPorts holds daddr . l4proto . dport of bindings on a
	// loopback host address in protected mode: `-t raw -A PREROUTING -d
	// H/32 ! -i lo -p P --dport HP -j DROP`.
	SetLoopbackPorts = "loopback-ports"
)

// Rule comments of the daemon-level port rules.
const (
	commentSkip     = "DNAT NOT FROM OWN BRIDGE"
	commentDNATHost = "DNAT HOST ADDRESS"
	commentDNATAny  = "DNAT ALL ADDRESSES"
	commentHairpin  = "HAIRPIN MASQUERADE"
	commentLoopback = "LOOPBACK PORT DROP"
)

var (
	keyHost    = []nft.Field{nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}
	keyAny     = []nft.Field{nft.FieldL4Proto, nft.FieldDport}
	keySkipH   = []nft.Field{nft.FieldIIFName, nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}
	keySkipA   = []nft.Field{nft.FieldIIFName, nft.FieldL4Proto, nft.FieldDport}
	keyHairpin = []nft.Field{nft.FieldSaddr, nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}
)

// DNATHostMap is the map of host-specific bindings of a family.
func DNATHostMap(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: MapDNATHost, Key: keyHost, Data: nft.DataAddrPort, Counter: true}
}

// DNATAnyMap is the map of all-addresses bindings of a family.
func DNATAnyMap(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: MapDNATAny, Key: keyAny, Data: nft.DataAddrPort, Counter: true}
}

func skipHostSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetDNATSkipHost, Key: keySkipH}
}

func skipAnySet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetDNATSkipAny, Key: keySkipA}
}

func hairpinSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetHairpin, Key: keyHairpin, Counter: true}
}

func loopbackSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetLoopbackPorts, Key: keyHost, Counter: true}
}

var linkLocal6 = netip.MustParsePrefix("fe80::/10")

// Init adds the daemon-level port objects of every family: the sets and
// maps above, and rules in chains that chains.Init created (call it after
// chains.Init, in the same transaction):
//
//	nat-DOCKER, after the nat-return rule:
//	  [proxy on] iifname . ip daddr . meta l4proto . th dport @dnat-skip-host return
//	  [proxy on] iifname . meta l4proto . th dport @dnat-skip-any return
//	  [ip6 saddr != fe80::/10] dnat to ip daddr . meta l4proto . th dport map @dnat-host
//	  [ip6 saddr != fe80::/10] dnat to meta l4proto . th dport map @dnat-any
//	nat-POSTROUTING: ip saddr . ip daddr . meta l4proto . th dport @hairpin masquerade
//	raw-PREROUTING [protected]: iifname != "lo" ip daddr . meta l4proto . th dport @loopback-ports drop
//
// The filter accept of published ports is chains.SetPublished, which the
// per-network DOCKER__B chains already look up.
//
// Ordering between the two DNAT rules does not matter: [CheckPublish]
// refuses a binding on all addresses and one on a specific address for the
// same proto and port, so at most one element of the two maps matches a
// packet, as at most one of iptables' DNAT rules does. For the same reason
// the skip rules may return: no later DNAT rule could have matched.
func Init(tx *nft.Tx, d chains.DaemonConfig) {
	for _, f := range d.Families() {
		initFamily(tx, d, f)
	}
}

func initFamily(tx *nft.Tx, d chains.DaemonConfig, f nft.Family) {
	rule := func(chain, comment string, a nft.Action, m ...nft.Match) {
		tx.AddRule(nft.Rule{Family: f, Chain: chain, Match: m, Action: a, Comment: comment})
	}
	ret := nft.Verdict{Kind: nft.Return}

	tx.AddSet(DNATHostMap(f))
	tx.AddSet(DNATAnyMap(f))
	tx.AddSet(hairpinSet(f))
	if d.UserlandProxy {
		tx.AddSet(skipHostSet(f))
		tx.AddSet(skipAnySet(f))
		rule(chains.NATDocker, commentSkip, ret, nft.Lookup{Fields: keySkipH, Set: SetDNATSkipHost})
		rule(chains.NATDocker, commentSkip, ret, nft.Lookup{Fields: keySkipA, Set: SetDNATSkipAny})
	}
	var dnatMatch []nft.Match
	if f == nft.IPv6 {
		dnatMatch = []nft.Match{nft.Prefix{Dir: nft.In, Prefix: linkLocal6, Neg: true}}
	}
	rule(chains.NATDocker, commentDNATHost, nft.DNATMap{Fields: keyHost, Map: MapDNATHost}, dnatMatch...)
	rule(chains.NATDocker, commentDNATAny, nft.DNATMap{Fields: keyAny, Map: MapDNATAny}, dnatMatch...)
	rule(chains.NATPostrouting, commentHairpin, nft.Masquerade{}, nft.Lookup{Fields: keyHairpin, Set: SetHairpin})
	if !d.AllowDirectRouting {
		tx.AddSet(loopbackSet(f))
		rule(chains.RawPrerouting, commentLoopback, nft.Verdict{Kind: nft.Drop},
			nft.IfName{Dir: nft.In, Name: "lo", Neg: true}, nft.Lookup{Fields: keyHost, Set: SetLoopbackPorts})
	}
}

// family returns the nft family of an address.
func family(a netip.Addr) nft.Family {
	if a.Unmap().Is4() {
		return nft.IPv4
	}
	return nft.IPv6
}

// isLoopback is iptables' "H in 127.0.0.0/8" (IPv4) or "::1" (IPv6).
func isLoopback(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is4() {
		return a.IsLoopback()
	}
	return a == netip.IPv6Loopback()
}

// elem is one set or map element of a binding. A shared element belongs
// to the binding's container port rather than to the binding: every
// binding of the network that forwards to that port owns it.
type elem struct {
	set    nft.Set
	e      nft.Element
	shared bool
}

// elemID identifies an element by set and key (not by data or comment).
// Keys have at most four fields.
type elemID struct {
	set setID
	n   int
	key [4]nft.Value
}

// setID identifies a set.
type setID struct {
	fam  nft.Family
	name string
}

func (x elem) id() elemID {
	id := elemID{set: setID{x.set.Family, x.set.Name}, n: len(x.e.Key)}
	copy(id.key[:], x.e.Key)
	return id
}

// elements lists every element that one binding owns, in the order they
// are added. b must be normalised ([Normalize]): a valid HostIP, the
// unspecified address meaning all addresses. Only the DNAT map element
// carries the binding's sequence number; the others carry the network
// name only, so that two bindings that share one (the same container port
// published twice shares the filter accept and the hairpin masquerade)
// describe it identically.
func elements(d chains.DaemonConfig, n chains.Network, b Binding, seq int64) []elem {
	f := family(b.ContainerIP)
	p := b.Proto.Number()
	h, c := b.HostIP, b.ContainerIP
	hp, cp := b.HostPort, b.ContainerPort
	owner := record(n.Name, 0, false)
	target := netip.AddrPortFrom(c, cp)
	var out []elem
	add := func(s nft.Set, e nft.Element) { out = append(out, elem{s, e, false}) }
	addShared := func(s nft.Set, e nft.Element) { out = append(out, elem{s, e, true}) }

	if h.IsUnspecified() {
		add(DNATAnyMap(f), nft.Element{Key: []nft.Value{nft.Proto(p), nft.Port(hp)}, Target: target, Comment: record(n.Name, seq, true)})
		if d.UserlandProxy {
			add(skipAnySet(f), nft.Element{Key: []nft.Value{nft.Ifname(n.Bridge), nft.Proto(p), nft.Port(hp)}, Comment: owner})
		}
	} else {
		add(DNATHostMap(f), nft.Element{Key: []nft.Value{nft.Addr(h), nft.Proto(p), nft.Port(hp)}, Target: target, Comment: record(n.Name, seq, true)})
		if d.UserlandProxy {
			add(skipHostSet(f), nft.Element{Key: []nft.Value{nft.Ifname(n.Bridge), nft.Addr(h), nft.Proto(p), nft.Port(hp)}, Comment: owner})
		}
	}
	addShared(chains.PublishedSet(f), nft.Element{Key: []nft.Value{nft.Addr(c), nft.Proto(p), nft.Port(cp)}, Comment: owner})
	addShared(hairpinSet(f), nft.Element{Key: []nft.Value{nft.Addr(c), nft.Addr(c), nft.Proto(p), nft.Port(cp)}, Comment: owner})
	if !h.IsUnspecified() && isLoopback(h) && !d.AllowDirectRouting {
		add(loopbackSet(f), nft.Element{Key: []nft.Value{nft.Addr(h), nft.Proto(p), nft.Port(hp)}, Comment: owner})
	}
	return out
}

// recordVersion prefixes every record dnft keeps in an element comment
// (the same version as chains' network records).
const recordVersion = "dnft1"

// record is the comment of a binding's elements: "dnft1;net=NAME" and, on
// the DNAT map element, ";q=SEQ" (base 36).
func record(network string, seq int64, withSeq bool) string {
	s := recordVersion + ";net=" + network
	if withSeq {
		s += ";q=" + strconv.FormatInt(seq, 36)
	}
	return s
}

// Publish queues the elements of the bindings bs, which must have been
// checked and normalised by [CheckPublish] against existing (what
// [ReadBindings] returned). Binding i gets the sequence number seq+i.
// Elements that existing bindings already own (a container port published
// twice shares the filter accept and hairpin elements) are not added
// again, so that [Unpublish] of the new bindings deletes exactly what this
// added.
func Publish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64, existing []Published) {
	NewIndex(existing).Publish(tx, d, n, bs, seq)
}

// Publish is [Publish] against the bindings of the index (which it does
// not change: call [Index.Add] once the transaction is committed).
func (x *Index) Publish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64) {
	queue(tx, d, n, bs, seq, func(b Binding, e elem) bool {
		return e.shared && x.sharing(n.Name, b) > 0
	}, tx.AddElements)
}

// Unpublish queues the deletion of the elements of the bindings bs, which
// must have been checked and normalised by [CheckUnpublish] against
// existing (what [ReadBindings] returned). Elements that a binding staying
// published still needs are kept.
func Unpublish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, existing []Published) {
	NewIndex(existing).Unpublish(tx, d, n, bs)
}

// Unpublish is [Unpublish] against the bindings of the index (which it
// does not change: call [Index.Remove] once the transaction is
// committed). bs must be published and listed once each.
func (x *Index) Unpublish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding) {
	gone := map[targetKey]int{}
	for _, b := range bs {
		gone[targetOf(n.Name, b)]++
	}
	queue(tx, d, n, bs, 0, func(b Binding, e elem) bool {
		return e.shared && x.sharing(n.Name, b) > gone[targetOf(n.Name, b)]
	}, tx.DeleteElements)
}

// queue collects the elements of bs that skip does not refuse (each once),
// grouped by set in first-seen order, and passes them to do.
func queue(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64, skip func(Binding, elem) bool, do func(nft.Set, ...nft.Element)) {
	var order []setID
	groups := map[setID]*struct {
		set   nft.Set
		elems []nft.Element
	}{}
	seen := map[elemID]bool{}
	for i, b := range bs {
		for _, x := range elements(d, n, b, seq+int64(i)) {
			if skip(b, x) {
				continue
			}
			id := x.id()
			if seen[id] {
				continue
			}
			seen[id] = true
			g := id.set
			if groups[g] == nil {
				groups[g] = &struct {
					set   nft.Set
					elems []nft.Element
				}{set: x.set}
				order = append(order, g)
			}
			groups[g].elems = append(groups[g].elems, x.e)
		}
	}
	for _, g := range order {
		do(groups[g].set, groups[g].elems...)
	}
}
