package dnft

import (
	"context"
	"slices"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
)

// stateOrder is what decides the yield sets of a state's SNAT networks
// (see [chains.SyncYields]): its networks and ingress gateways.
func stateOrder(s State) chains.Order {
	return chains.Order{Networks: s.Networks, Gateways: gateways(s.Ingress, s.IngressHistory)}
}

// gateways lists the ingress gateways of publications, each with the
// date of its masquerade: from its history, or else the sequence number
// of its oldest publication (of its family).
func gateways(ps []IngressPublished, hist []IngressHistory) []chains.Gateway {
	var out []chains.Gateway
	index := map[chains.Gateway]int{}
	for _, p := range ps {
		k := chains.Gateway{Family: p.Family(), Name: gatewayName(p.GwBridge)}
		if i, ok := index[k]; ok {
			out[i].Seq = min(out[i].Seq, p.Seq)
			continue
		}
		index[k] = len(out)
		k.Seq = p.Seq
		out = append(out, k)
	}
	for _, h := range hist {
		if i, ok := index[chains.Gateway{Family: h.Family, Name: h.Bridge}]; ok && h.Masquerade != 0 {
			out[i].Seq = h.Masquerade
		}
	}
	return out
}

// snatNetworks reports whether a network SNATs to a fixed address: only
// then do ingress gateways matter to the yield sets.
func snatNetworks(nets []Network) bool {
	for _, n := range nets {
		if n.Masquerade && !n.Internal && (n.HostIPv4.IsValid() || n.HostIPv6.IsValid()) {
			return true
		}
	}
	return false
}

// newGatewayYields queues the yield set changes of a new ingress gateway
// (its first publication, seq, in family f).
func newGatewayYields(tx *nft.Tx, d DaemonConfig, nets []Network, f nft.Family, gw string, seq int64) {
	if !snatNetworks(nets) {
		return
	}
	g := chains.Gateway{Family: f, Name: gatewayName(gw), Seq: seq}
	chains.SyncYields(tx, d, chains.Order{Networks: nets}, chains.Order{Networks: nets, Gateways: []chains.Gateway{g}})
}

// unpublishYields queues the yield set changes of an ingress
// unpublication: before lists every publication and hist their history
// (see [Firewall.ingressBefore]), done those that the unpublication
// touched, as they were; nets are the networks before and after (their
// masquerades from the host may move, see [gatewayGoneTwins]). A gateway
// that keeps ports keeps its date: iptables leaves its masquerade where
// it is.
func unpublishYields(tx *nft.Tx, d DaemonConfig, nets, netsAfter []Network, before []IngressPublished, hist []IngressHistory, done []IngressPublished) {
	if before == nil {
		return
	}
	gone := func(p IngressPublished) bool {
		for _, q := range done {
			if q.Refs == 1 && q.Family() == p.Family() && q.Proto == p.Proto && q.Port.Port == p.Port.Port {
				return true
			}
		}
		return false
	}
	after := slices.DeleteFunc(slices.Clone(before), gone)
	cur := gateways(before, hist)
	want := slices.DeleteFunc(slices.Clone(cur), func(g chains.Gateway) bool {
		return !slices.ContainsFunc(after, func(p IngressPublished) bool {
			return p.Family() == g.Family && gatewayName(p.GwBridge) == g.Name
		})
	})
	chains.SyncYields(tx, d, chains.Order{Networks: nets, Gateways: cur}, chains.Order{Networks: netsAfter, Gateways: want})
}

// ingressBefore lists the ingress publications and their history when a
// SNAT network exists (the yield sets then depend on them), and nil
// otherwise.
func (fw *Firewall) ingressBefore(ctx context.Context, d DaemonConfig, nets []Network) ([]IngressPublished, []IngressHistory, error) {
	if !snatNetworks(nets) {
		return nil, nil, nil
	}
	ps, err := ingress.List(ctx, fw.conn, d)
	if err != nil {
		return nil, nil, err
	}
	if ps == nil {
		ps = []IngressPublished{}
	}
	hist, err := ingress.ReadHistory(ctx, fw.conn, d, ps)
	return ps, hist, err
}
