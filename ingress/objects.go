package ingress

import (
	"net/netip"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Chains, sets and maps of ingress publishing, one of each per family.
const (
	// NATChain is iptables' nat DOCKER-INGRESS chain (the DNAT).
	NATChain = "nat-DOCKER-INGRESS"
	// FilterChain is iptables' filter DOCKER-INGRESS chain (the accepts).
	FilterChain = "DOCKER-INGRESS"
	// MapDNAT maps l4proto . dport to the ingress sandbox's addr . port;
	// element comments hold the reference counts.
	MapDNAT = "ingress-dnat"
	// SetPorts holds l4proto . port of every ingress port (filter
	// accepts); element comments are the second record of each
	// publication.
	SetPorts = "ingress-ports"
	// SetReplies holds the same keys for the accept of established
	// replies by source port, so that each accept has its own counters.
	SetReplies = "ingress-replies"
	// SetGateways holds the gateway bridges whose local-source traffic is
	// masqueraded; element comments count their ports.
	SetGateways = "ingress-gateways"
)

// Rule comments. The jump comment is the chain name, as for the other
// jumps of the base chains; dnft finds its rules by them.
const (
	commentJump = "DOCKER-INGRESS"
	commentMasq = "INGRESS MASQUERADE"
	commentDNAT = "INGRESS DNAT"
	commentPort = "INGRESS PORT"
	commentEst  = "INGRESS RELATED,ESTABLISHED"
	// anchorDocker and anchorIsolation are the comments of the rules of
	// chains.Init that the jumps are inserted before.
	anchorDocker    = "DOCKER"
	anchorIsolation = "DOCKER-ISOLATION"
)

var (
	keyPort    = []nft.Field{nft.FieldL4Proto, nft.FieldDport}
	keyReply   = []nft.Field{nft.FieldL4Proto, nft.FieldSport}
	keyGateway = []nft.Field{nft.FieldOIFName}
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// DNATMap is the map of ingress DNAT targets of a family.
func DNATMap(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: MapDNAT, Key: keyPort, Data: nft.DataAddrPort, Counter: true}
}

// PortsSet is the set of ingress ports of a family.
func PortsSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetPorts, Key: keyPort, Counter: true}
}

// RepliesSet is the set of ingress ports of a family that replies are
// accepted from.
func RepliesSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetReplies, Key: keyPort, Counter: true}
}

// GatewaysSet is the set of gateway bridges of a family.
func GatewaysSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetGateways, Key: keyGateway}
}

func portKey(proto portmap.Proto, port uint16) []nft.Value {
	return []nft.Value{nft.Proto(proto.Number()), nft.Port(port)}
}

// dnatElem is p's ingress-dnat element; a zero record gives the key only
// (for deletion).
func dnatElem(p Port, r portRecord) nft.Element {
	e := nft.Element{Key: portKey(p.Proto, p.Port)}
	if r.refs > 0 {
		e.Target = netip.AddrPortFrom(p.Target, p.Port)
		e.Comment = r.String()
	}
	return e
}

// portsElem is p's ingress-ports element, whose comment is the second
// record of the publication ([portRecord.second]); a zero record gives
// the key only (for deletion).
func portsElem(p Port, r portRecord) nft.Element {
	e := nft.Element{Key: portKey(p.Proto, p.Port)}
	if r.refs > 0 {
		e.Comment = r.second(p.Target)
	}
	return e
}

// gatewayElem is gw's ingress-gateways element; no ports gives the key
// only.
func gatewayElem(gw string, g Gateway) nft.Element {
	e := nft.Element{Key: []nft.Value{nft.Ifname(gw)}}
	if g.Ports > 0 {
		e.Comment = gatewayRecord(g)
	}
	return e
}

// ruleRef is a rule of a base chain found by its comment.
type ruleRef struct {
	chain  string
	handle uint64
}

// hooks are the rules of the base chains that ingress needs: the anchors
// its jumps go before, and its own rules there (when they exist).
type hooks struct {
	prerouting, output, forward uint64 // anchor handles
	postrouting                 uint64 // nat-POSTROUTING's policy counter, 0 if none
	own                         []ruleRef
}

// setup queues the creation of a family's ingress objects.
func setup(tx *nft.Tx, f nft.Family, h hooks) {
	rule := func(chain, comment string, a nft.Action, m ...nft.Match) nft.Rule {
		return nft.Rule{Family: f, Chain: chain, Match: m, Action: a, Comment: comment}
	}
	accept := nft.Verdict{Kind: nft.Accept}
	local := nft.FibLocal{Dir: nft.Out}

	tx.AddSet(DNATMap(f))
	tx.AddSet(PortsSet(f))
	tx.AddSet(RepliesSet(f))
	tx.AddSet(GatewaysSet(f))
	tx.AddChain(nft.Chain{Family: f, Name: NATChain})
	tx.AddChain(nft.Chain{Family: f, Name: FilterChain})

	var dnatMatch []nft.Match
	if f == nft.IPv6 {
		dnatMatch = []nft.Match{nft.Prefix{Dir: nft.In, Prefix: linkLocal6, Neg: true}}
	}
	tx.AddRule(rule(NATChain, commentDNAT, nft.DNATMap{Fields: keyPort, Map: MapDNAT}, dnatMatch...))
	tx.AddRule(rule(NATChain, chains.CommentReturn, nft.Verdict{Kind: nft.Return}))
	// iptables inserts, per port, the established accept and then the
	// port accept above it; both accept, so their order does not matter.
	tx.AddRule(rule(FilterChain, commentPort, accept, nft.Lookup{Fields: keyPort, Set: SetPorts}))
	tx.AddRule(rule(FilterChain, commentEst, accept, nft.CtEstablished{}, nft.Lookup{Fields: keyReply, Set: SetReplies}))
	tx.AddRule(rule(FilterChain, chains.CommentReturn, nft.Verdict{Kind: nft.Return}))

	natJump := nft.Verdict{Kind: nft.Jump, Chain: NATChain}
	tx.InsertRuleBefore(rule(chains.NATPrerouting, commentJump, natJump, local), h.prerouting)
	tx.InsertRuleBefore(rule(chains.NATOutput, commentJump, natJump, local), h.output)
	tx.InsertRuleBefore(rule(chains.FilterForward, commentJump, nft.Verdict{Kind: nft.Jump, Chain: FilterChain}), h.forward)
	// After the dispatch by source subnet, whose SNAT networks yield to
	// the newer gateways themselves (chains.SyncYields): iptables' -I
	// order without a rule per gateway and network. Before the policy
	// counter, which stays last.
	masq := rule(chains.NATPostrouting, commentMasq, nft.Masquerade{},
		nft.FibLocal{Dir: nft.In}, nft.Lookup{Fields: keyGateway, Set: SetGateways})
	if h.postrouting != 0 {
		tx.InsertRuleBefore(masq, h.postrouting)
	} else {
		tx.AddRule(masq)
	}
}

// teardown queues the deletion of a family's ingress objects: its rules in
// the base chains by handle, its chains, then its sets with their elements.
func teardown(tx *nft.Tx, f nft.Family, h hooks) {
	for _, r := range h.own {
		tx.DeleteRule(f, r.chain, r.handle)
	}
	for _, c := range []string{NATChain, FilterChain} {
		tx.FlushChain(f, c)
		tx.DeleteChain(f, c)
	}
	for _, s := range []nft.Set{DNATMap(f), PortsSet(f), RepliesSet(f), GatewaysSet(f)} {
		tx.DeleteSet(s)
	}
}
