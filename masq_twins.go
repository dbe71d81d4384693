package dnft

import (
	"context"
	"fmt"
	"slices"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
)

// Twin masquerades. With the userland proxy off, a network's masquerade
// from the host (`-I POSTROUTING -m addrtype --src-type LOCAL -o B -j
// MASQUERADE`) and the masquerade of an ingress gateway on the same
// bridge are the same iptables rule, byte for byte. iptables' -D of
// either deletes the first copy that matches, the newer: when that is
// not the removed object's own, the survivor takes its place. dnft
// records the moves (the gateway's record, chains.Network.MasqSeq4/6),
// for the iptables view and for the order of SNAT (chains.Order).

// hasHostMasq reports whether network n has a masquerade from the host
// in family f.
func hasHostMasq(d DaemonConfig, n Network, f nft.Family) bool {
	return !d.UserlandProxy && !n.Internal && slices.Contains(chains.NetworkFamilies(d, n.NetworkConfig), f)
}

// networkGoneTwins queues what removing network n does to the ingress
// gateways on its bridge: where n's masquerade from the host was the
// older copy, the gateway's masquerade takes its place. It returns the
// gateways whose date changes, before and after (for chains.SyncYields).
func networkGoneTwins(ctx context.Context, r ingress.Reader, tx *nft.Tx, d DaemonConfig, n Network) (cur, want []chains.Gateway, err error) {
	for _, f := range d.Families() {
		if !hasHostMasq(d, n, f) {
			continue
		}
		gws, err := ingress.Gateways(ctx, r, f)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s ingress gateways: %w", f, err)
		}
		g, ok := gws[n.Bridge]
		pos := n.MasqPos(f)
		if !ok || g.Ports == 0 || g.Created == 0 || g.Created <= pos {
			continue
		}
		if err := ingress.SetHistory(ctx, r, tx, f, []IngressHistory{{Family: f, Bridge: n.Bridge, Masquerade: pos}}); err != nil {
			return nil, nil, err
		}
		cur = append(cur, chains.Gateway{Family: f, Name: n.Bridge, Seq: g.Created})
		want = append(want, chains.Gateway{Family: f, Name: n.Bridge, Seq: pos})
	}
	return cur, want, nil
}

// goneGateways returns the ingress gateways (with the date of their
// masquerade) whose last port an unpublication removes.
func goneGateways(done []ingress.Change) []chains.Gateway {
	var out []chains.Gateway
	for _, c := range done {
		if c.GatewayGone && c.MasqueradeSeq != 0 {
			out = append(out, chains.Gateway{Family: c.Family(), Name: gatewayName(c.GwBridge), Seq: c.MasqueradeSeq})
		}
	}
	return out
}

// gatewayGoneTwins queues what removing the gateways gone does to the
// networks on their bridges: where the gateway's masquerade was the
// older copy, the network's masquerade from the host takes its place. It
// returns the networks with their new records.
func gatewayGoneTwins(tx *nft.Tx, d DaemonConfig, nets []Network, gone []chains.Gateway) []Network {
	out := slices.Clone(nets)
	for _, g := range gone {
		for i, n := range out {
			if n.Bridge != g.Name || !hasHostMasq(d, n, g.Family) || n.MasqPos(g.Family) <= g.Seq {
				continue
			}
			next := n.WithMasqPos(g.Family, g.Seq)
			if !chains.RecordFits(next) {
				continue // no room for the history: the view keeps n's place
			}
			chains.RewriteNetwork(tx, n, next)
			out[i] = next
		}
	}
	return out
}
