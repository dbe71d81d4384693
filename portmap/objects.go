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
	// Its element comments are the second record of the bindings
	// ([SkipRecord]).
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
	// SetTargets counts, per container address . l4proto . port, the
	// bindings that forward to it (comment "dnft1;net=NAME;n=COUNT"). No
	// rule looks it up: it lets one publication learn with one element get
	// whether the filter accept and hairpin elements it shares with other
	// bindings exist, and whether unpublishing it must remove them.
	SetTargets = "targets"
	// SetHostPorts counts, per l4proto . port, the bindings of the family
	// on a specific host address (comment "dnft1;n=COUNT"), with which a
	// binding on all addresses clashes. No rule looks it up either.
	SetHostPorts = "host-ports"
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
	keyTarget  = []nft.Field{nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}
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

// TargetsSet is the set that counts the bindings of each container port
// (see [SetTargets]).
func TargetsSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetTargets, Key: keyTarget, Comment: "bindings per container port"}
}

// HostPortsSet is the set that counts the bindings on specific host
// addresses of each port (see [SetHostPorts]).
func HostPortsSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetHostPorts, Key: keyAny, Comment: "bindings on a host address per port"}
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
// The skip sets exist whatever the userland proxy: their elements are
// also the second record of each binding (see [SkipRecord]), which
// [DecodeSkip] reads back; with the proxy off no rule looks them up.
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
	tx.AddSet(TargetsSet(f))
	tx.AddSet(HostPortsSet(f))
	tx.AddSet(skipHostSet(f))
	tx.AddSet(skipAnySet(f))
	tx.AddSet(PositionsSet(f))
	if d.UserlandProxy {
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

// elements lists every element that one binding owns, in the order they
// are added: its own (see [ownElements]) and its container port's,
// shared with the other bindings that forward to it (see
// [sharedElements]).
func elements(d chains.DaemonConfig, n chains.Network, b Binding, seq int64) []elem {
	return sharedElements(n, b, ownElements(d, n, b, seq, nil))
}

// ownElements appends the elements that belong to binding b alone to
// out: its DNAT map element, its skip element (its second record; the
// skip rule looks it up with the userland proxy on) and its loopback drop (a loopback host address in protected mode). b must be
// normalised ([Normalize]): a valid HostIP, the unspecified address
// meaning all addresses. Only the DNAT map element carries the binding's
// sequence number.
func ownElements(d chains.DaemonConfig, n chains.Network, b Binding, seq int64, out []elem) []elem {
	f := family(b.ContainerIP)
	p := b.Proto.Number()
	h, hp := b.HostIP, b.HostPort
	target := netip.AddrPortFrom(b.ContainerIP, b.ContainerPort)
	owner := record(n.Name, 0, false)
	// The DNAT element and the skip element each record the whole
	// binding, whatever the userland proxy: one survives an edit of the
	// other (see [DecodeDNAT] and [DecodeSkip]).
	second := SkipRecord(seq, target)
	if h.IsUnspecified() {
		out = append(out, elem{DNATAnyMap(f), nft.Element{Key: []nft.Value{nft.Proto(p), nft.Port(hp)}, Target: target, Comment: record(n.Name, seq, true)}, false})
		out = append(out, elem{skipAnySet(f), nft.Element{Key: []nft.Value{nft.Ifname(n.Bridge), nft.Proto(p), nft.Port(hp)}, Comment: second}, false})
		return out
	}
	out = append(out, elem{DNATHostMap(f), nft.Element{Key: []nft.Value{nft.Addr(h), nft.Proto(p), nft.Port(hp)}, Target: target, Comment: record(n.Name, seq, true)}, false})
	out = append(out, elem{skipHostSet(f), nft.Element{Key: []nft.Value{nft.Ifname(n.Bridge), nft.Addr(h), nft.Proto(p), nft.Port(hp)}, Comment: second}, false})
	if isLoopback(h) && !d.AllowDirectRouting {
		out = append(out, elem{loopbackSet(f), nft.Element{Key: []nft.Value{nft.Addr(h), nft.Proto(p), nft.Port(hp)}, Comment: owner}, false})
	}
	return out
}

// sharedElements appends the elements of b's container port to out: the
// filter accept and the hairpin masquerade. They carry the network name
// only, so that every binding that shares them describes them
// identically.
func sharedElements(n chains.Network, b Binding, out []elem) []elem {
	f := family(b.ContainerIP)
	p := b.Proto.Number()
	c, cp := b.ContainerIP, b.ContainerPort
	owner := record(n.Name, 0, false)
	return append(out,
		elem{chains.PublishedSet(f), nft.Element{Key: []nft.Value{nft.Addr(c), nft.Proto(p), nft.Port(cp)}, Comment: owner}, true},
		elem{hairpinSet(f), nft.Element{Key: []nft.Value{nft.Addr(c), nft.Addr(c), nft.Proto(p), nft.Port(cp)}, Comment: owner}, true})
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

// targetElem is the element of SetTargets of a binding's container port,
// counting n bindings of network (n 0: the key alone, for a deletion).
func targetElem(network string, b Binding, n int) nft.Element {
	e := nft.Element{Key: []nft.Value{nft.Addr(b.ContainerIP), nft.Proto(b.Proto.Number()), nft.Port(b.ContainerPort)}}
	if n > 0 {
		e.Comment = recordVersion + ";net=" + network + ";n=" + strconv.Itoa(n)
	}
	return e
}

// hostPortElem is the element of SetHostPorts of a binding's proto and
// host port, counting n bindings (n 0: the key alone).
func hostPortElem(b Binding, n int) nft.Element {
	e := nft.Element{Key: []nft.Value{nft.Proto(b.Proto.Number()), nft.Port(b.HostPort)}}
	if n > 0 {
		e.Comment = recordVersion + ";n=" + strconv.Itoa(n)
	}
	return e
}

// SkipRecord is the comment of a binding's skip element, its second
// record: "dnft1;q=SEQ;to=ADDR:PORT" (SEQ in base 36). The element's key
// holds the rest: the bridge (the network), host address, proto and host
// port.
func SkipRecord(seq int64, target netip.AddrPort) string {
	return recordVersion + ";q=" + strconv.FormatInt(seq, 36) + ";to=" + target.String()
}
