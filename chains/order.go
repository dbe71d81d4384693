package chains

import (
	"cmp"
	"slices"

	"github.com/dnft/dnft/nft"
)

// Source NAT in creation order.
//
// iptables evaluates nat POSTROUTING newest first: every network's
// `-I POSTROUTING -s S ! -o B -j MASQUERADE|SNAT`, every `-I POSTROUTING
// -m addrtype --src-type LOCAL -o B -j MASQUERADE` of the userland proxy
// off, and every ingress gateway's `-I POSTROUTING -m addrtype
// --src-type LOCAL -o G -j MASQUERADE` goes on top. dnft dispatches by
// source subnet first (one verdict map lookup), then by output bridge.
// The two orders differ only for a packet that both a network's rule and
// a local-source masquerade match — a local source address inside the
// network's subnet (its gateway address) leaving through another bridge —
// and only when the network SNATs to a fixed address (com.docker.network.
// host_ipv4/6): a masquerading network's rule and a local-source
// masquerade give the same result. So each SNAT network yields to the
// local-source masquerades created after it: its chain starts with
//
//	oifname @snat-yield-host__B fib saddr type local return     (userland proxy off)
//	oifname @snat-yield-ingress__B fib saddr type local return
//
// and the local-source masquerades come after the dispatch by subnet.
// The sets hold the bridges and gateways whose masquerade is newer than
// the network: one lookup each, whatever the number of networks.

// Gateway is an ingress gateway bridge of one family, with the sequence
// number its masquerade rule dates from: its first ingress publication
// (which iptables leaves in place while the gateway has ports), or the
// place of a byte-identical masquerade of a network on the same bridge
// whose removal deleted the gateway's copy instead.
type Gateway struct {
	Family nft.Family
	Name   string
	Seq    int64
}

// Order is what the yield sets follow: the networks and the ingress
// gateways.
type Order struct {
	Networks []Network
	Gateways []Gateway
}

// Names of the yield sets of a SNAT network's bridge b.
func yieldHostName(b string) string    { return "snat-yield-host__" + b }
func yieldIngressName(b string) string { return "snat-yield-ingress__" + b }

func yieldSet(f nft.Family, name string) nft.Set { return ifnameSet(f, name) }

// snats reports whether network n has a SNAT rule in family f.
func snats(d DaemonConfig, n NetworkConfig, f nft.Family) bool {
	if n.Internal || !n.Masquerade || !n.HostIP(f).IsValid() {
		return false
	}
	return f == nft.IPv4 || d.IPv6 && n.Subnet6.IsValid()
}

// yieldRules are the first rules of a SNAT network's POSTROUTING chain.
func yieldRules(d DaemonConfig, b string) []nft.Rule {
	local := nft.FibLocal{Dir: nft.In}
	ret := nft.Verdict{Kind: nft.Return}
	byOut := func(set string) nft.Lookup { return nft.Lookup{Fields: []nft.Field{nft.FieldOIFName}, Set: set} }
	var rs []nft.Rule
	if !d.UserlandProxy {
		rs = append(rs, nft.Rule{Match: []nft.Match{byOut(yieldHostName(b)), local}, Action: ret, Comment: "NEWER MASQUERADE FROM HOST"})
	}
	return append(rs, nft.Rule{Match: []nft.Match{byOut(yieldIngressName(b)), local}, Action: ret, Comment: "NEWER INGRESS MASQUERADE"})
}

// yieldSets are a SNAT network's sets in family f.
func yieldSets(d DaemonConfig, f nft.Family, b string) []nft.Set {
	var ss []nft.Set
	if !d.UserlandProxy {
		ss = append(ss, yieldSet(f, yieldHostName(b)))
	}
	return append(ss, yieldSet(f, yieldIngressName(b)))
}

// yieldElem is one element of a yield set: owner's name in the set of
// the SNAT network net.
type yieldElem struct {
	f     nft.Family
	net   Network
	set   string
	owner string
}

// yields lists the elements o implies: for every SNAT network, the
// bridges of the networks with a local-source masquerade (userland proxy
// off) and the gateways that are newer than it.
func (o Order) yields(d DaemonConfig) map[yieldElem]bool {
	out := map[yieldElem]bool{}
	for _, i := range o.Networks {
		for _, f := range NetworkFamilies(d, i.NetworkConfig) {
			if !snats(d, i.NetworkConfig, f) {
				continue
			}
			if !d.UserlandProxy {
				for _, x := range o.Networks {
					if x.MasqPos(f) > i.Seq && !x.Internal && hasFamily(d, x, f) {
						out[yieldElem{f, i.identity(), yieldHostName(i.Bridge), x.Bridge}] = true
					}
				}
			}
			for _, g := range o.Gateways {
				if g.Family == f && g.Seq > i.Seq {
					out[yieldElem{f, i.identity(), yieldIngressName(i.Bridge), g.Name}] = true
				}
			}
		}
	}
	return out
}

func hasFamily(d DaemonConfig, n Network, f nft.Family) bool {
	for _, nf := range NetworkFamilies(d, n.NetworkConfig) {
		if nf == f {
			return true
		}
	}
	return false
}

// SyncYields queues the changes of the yield sets from what cur implies
// to what want implies. A network (same configuration and sequence
// number) that is only in want has its sets created empty in the same
// transaction ([CreateNetwork], queued before); one only in cur has them
// deleted with it ([RemoveNetwork]). Callers may leave out of both cur
// and want the gateways (or networks) that do not change.
func SyncYields(tx *nft.Tx, d DaemonConfig, cur, want Order) {
	have, need := cur.yields(d), want.yields(d)
	inCur, inWant := map[Network]bool{}, map[Network]bool{}
	for _, n := range cur.Networks {
		inCur[n.identity()] = true
	}
	for _, n := range want.Networks {
		inWant[n.identity()] = true
	}
	elem := func(e yieldElem) nft.Element { return nft.Element{Key: []nft.Value{nft.Ifname(e.owner)}} }
	for _, e := range sortedYields(have) {
		if !need[e] && inWant[e.net] {
			tx.DeleteElements(yieldSet(e.f, e.set), elem(e))
		}
	}
	for _, e := range sortedYields(need) {
		if !have[e] || !inCur[e.net] {
			tx.AddElements(yieldSet(e.f, e.set), elem(e))
		}
	}
}

// sortedYields orders elements by set and owner, so that transactions
// are the same from one run to the next.
func sortedYields(m map[yieldElem]bool) []yieldElem {
	out := make([]yieldElem, 0, len(m))
	for e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b yieldElem) int {
		return cmp.Or(cmp.Compare(a.f, b.f), cmp.Compare(a.set, b.set), cmp.Compare(a.owner, b.owner))
	})
	return out
}
