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
	return chains.Order{Networks: s.Networks, Gateways: gateways(s.Ingress)}
}

// gateways lists the ingress gateways of publications, each with the
// sequence number of its oldest publication (of its family).
func gateways(ps []IngressPublished) []chains.Gateway {
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
// unpublication: before lists every publication (see [Firewall.ingressBefore]),
// done those that the unpublication touched, as they were. A gateway
// whose oldest port goes takes the date of its next oldest.
func unpublishYields(tx *nft.Tx, d DaemonConfig, nets []Network, before, done []IngressPublished) {
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
	chains.SyncYields(tx, d, chains.Order{Networks: nets, Gateways: gateways(before)},
		chains.Order{Networks: nets, Gateways: gateways(after)})
}

// ingressBefore lists the ingress publications when a SNAT network
// exists (the yield sets then depend on them), and nil otherwise.
func (fw *Firewall) ingressBefore(ctx context.Context, d DaemonConfig, nets []Network) ([]IngressPublished, error) {
	if !snatNetworks(nets) {
		return nil, nil
	}
	ps, err := ingress.List(ctx, fw.conn, d)
	if ps == nil && err == nil {
		ps = []IngressPublished{}
	}
	return ps, err
}
