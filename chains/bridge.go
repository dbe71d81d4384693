package chains

import "github.com/dnft/dnft/nft"

// The bridge table enforces what Docker's iptables rules can only enforce
// when br_netfilter passes bridged frames to the IP hooks
// (bridge-nf-call-iptables): iptables' `-A FORWARD -i B -o B -j DROP` of a
// network with ICC off. Its forward hook sees every frame a bridge passes
// from one port to another, so ICC off holds whether or not br_netfilter
// exists or is on. Traffic that the host routes (to and from the bridge's
// own address, DNAT to a container) never reaches it: the IP table's
// FORWARD__B "ICC" rule handles that, as iptables' rule does.
//
// This kernel's bridge family may lack the bridge meta expressions (meta
// ibrname), so the rule identifies a network's traffic by its subnet
// instead of its bridge: an IPv4 (IPv6) frame whose source and
// destination are both in the subnet of a network with ICC off. Subnets
// of networks never overlap, and a bridge only forwards between its own
// ports, so this is the network's port-to-port traffic. ARP and other
// non-IP frames pass, as they do with br_netfilter.
const (
	// SetICCOff4 holds the IPv4 subnets of the networks with ICC off.
	SetICCOff4 = "icc-off-v4"
	// SetICCOff6 holds their IPv6 subnets (IPv6 daemons only).
	SetICCOff6 = "icc-off-v6"
)

// iccOffSet is the bridge table's set of ICC-off subnets of family f.
func iccOffSet(f nft.Family) nft.Set {
	if f == nft.IPv6 {
		return nft.Set{Family: nft.Bridge, Name: SetICCOff6, Key: []nft.Field{nft.FieldSaddr6}, Interval: true}
	}
	return nft.Set{Family: nft.Bridge, Name: SetICCOff4, Key: []nft.Field{nft.FieldSaddr4}, Interval: true}
}

// initBridge adds the bridge table: its forward base chain drops, per IP
// family the daemon has, frames between two addresses of one ICC-off
// subnet (one rule: two lookups in one set).
func initBridge(tx *nft.Tx, d DaemonConfig) {
	tx.AddTable(nft.Bridge)
	for _, f := range d.Families() {
		tx.AddSet(iccOffSet(f))
	}
	tx.AddChain(nft.Chain{Family: nft.Bridge, Name: FilterForward,
		Base: &nft.Base{Type: nft.TypeFilter, Hook: nft.HookForward, Priority: nft.PriorityBridgeFilter}})
	for _, f := range d.Families() {
		s := iccOffSet(f)
		src, dst := nft.FieldSaddr4, nft.FieldDaddr4
		if f == nft.IPv6 {
			src, dst = nft.FieldSaddr6, nft.FieldDaddr6
		}
		tx.AddRule(nft.Rule{Family: nft.Bridge, Chain: FilterForward, Comment: "ICC", Action: nft.Verdict{Kind: nft.Drop},
			Match: []nft.Match{nft.L3Proto{Family: f},
				nft.Lookup{Fields: []nft.Field{src}, Set: s.Name}, nft.Lookup{Fields: []nft.Field{dst}, Set: s.Name}}})
	}
}
