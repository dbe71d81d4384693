package ingress

import (
	"context"
	"fmt"
	"slices"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// History is what the records of an ingress gateway bridge remember
// beyond its ports (see [Gateway]): where iptables' view places its
// masquerade and the family's chains and jumps, when that is not where
// the oldest port now published would have put them. It changes no
// packet.
type History struct {
	Family nft.Family
	// Bridge is the gateway bridge.
	Bridge string
	// Masquerade is the Seq of the publication whose `-I POSTROUTING`
	// the gateway's masquerade is (0: the oldest port's on the bridge).
	Masquerade int64
	// Chains is the Seq of the publication that created the family's
	// DOCKER-INGRESS chains and jumps (0: the family's oldest port's).
	// Every gateway of the family has the same.
	Chains int64
}

// ReadHistory returns the history of the gateways of d's families that
// differs from what ps (every ingress publication, as [List] returns
// them) implies: see [History].
func ReadHistory(ctx context.Context, r Reader, d chains.DaemonConfig, ps []Published) ([]History, error) {
	var out []History
	for _, f := range d.Families() {
		gws, err := Gateways(ctx, r, f)
		if err != nil {
			return nil, fmt.Errorf("read %s ingress gateways: %w", f, err)
		}
		out = append(out, historyOf(f, gws, ps)...)
	}
	return out, nil
}

// HistoryOf is [ReadHistory] of family f from its ingress-gateways set.
// Elements that do not decode are left out.
func HistoryOf(f nft.Family, s nft.SetState, ps []Published) []History {
	gws := map[string]Gateway{}
	for _, e := range s.Elements {
		if name, g, err := DecodeGateway(f, e); err == nil {
			gws[name] = g
		}
	}
	return historyOf(f, gws, ps)
}

func historyOf(f nft.Family, gws map[string]Gateway, ps []Published) []History {
	var out []History
	for _, name := range sortedNames(gws) {
		g := gws[name]
		masq, chains := DefaultHistory(f, name, ps)
		h := History{Family: f, Bridge: name}
		if g.Created != 0 && g.Created != masq {
			h.Masquerade = g.Created
		}
		if g.Ingress != 0 && g.Ingress != chains {
			h.Chains = g.Ingress
		}
		if h.Masquerade != 0 || h.Chains != 0 {
			out = append(out, h)
		}
	}
	return out
}

func sortedNames(gws map[string]Gateway) []string {
	out := make([]string, 0, len(gws))
	for name := range gws {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// DefaultHistory is what a gateway without history has: the Seq of the
// oldest of ps on the bridge in family f, and of the oldest of ps in f.
func DefaultHistory(f nft.Family, bridge string, ps []Published) (masq, chains int64) {
	for _, p := range ps {
		if p.Family() != f {
			continue
		}
		if chains == 0 || p.Seq < chains {
			chains = p.Seq
		}
		if p.GwBridge == bridge && (masq == 0 || p.Seq < masq) {
			masq = p.Seq
		}
	}
	return masq, chains
}

// SetHistory queues the rewrite of the records of family f's gateways
// with hs (those of f; zero fields keep what the record has), on a
// table whose publications are queued or made.
func SetHistory(ctx context.Context, r Reader, tx *nft.Tx, f nft.Family, hs []History) error {
	gws, _, err := readGateways(ctx, r, f)
	if err != nil {
		return fmt.Errorf("read %s ingress gateways: %w", f, err)
	}
	next := map[string]Gateway{}
	for name, g := range gws {
		next[name] = g
	}
	for _, h := range hs {
		if h.Family != f {
			continue
		}
		g, ok := next[h.Bridge]
		if !ok || g.Ports == 0 {
			return &FieldError{Field: "bridge", Value: h.Bridge, Reason: fmt.Sprintf("has no %s ingress port", f)}
		}
		if h.Masquerade != 0 {
			g.Created = h.Masquerade
			next[h.Bridge] = g
		}
		if h.Chains != 0 {
			for name, o := range next {
				o.Ingress = h.Chains
				next[name] = o
			}
		}
	}
	for _, name := range sortedNames(next) {
		if next[name] != gws[name] {
			setGateway(tx, f, name, gws[name], next[name])
		}
	}
	return nil
}
