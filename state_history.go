package dnft

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
)

// IngressHistory is what an ingress gateway's records remember of
// publications that are gone: where iptables' view places its masquerade
// and the family's ingress chains (see [ingress.History]). It changes no
// packet; [Firewall.Save] lists it, [Firewall.Restore] writes it back so
// that the iptables view of a restored state is the saved one's, and
// [Firewall.Apply] keeps what the namespace has.
type IngressHistory = ingress.History

// ingressHistoryDoc is an IngressHistory in the state document.
type ingressHistoryDoc struct {
	Family        string `json:"family"`
	Bridge        string `json:"bridge"`
	MasqueradeSeq int64  `json:"masquerade_seq,omitempty"`
	ChainsSeq     int64  `json:"chains_seq,omitempty"`
}

func ingressHistoryToDoc(h IngressHistory) ingressHistoryDoc {
	return ingressHistoryDoc{Family: h.Family.String(), Bridge: h.Bridge, MasqueradeSeq: h.Masquerade, ChainsSeq: h.Chains}
}

func ingressHistoryFromDoc(path string, hd ingressHistoryDoc) (IngressHistory, error) {
	h := IngressHistory{Bridge: hd.Bridge, Masquerade: hd.MasqueradeSeq, Chains: hd.ChainsSeq}
	switch hd.Family {
	case "ip":
		h.Family = nft.IPv4
	case "ip6":
		h.Family = nft.IPv6
	default:
		return h, &FieldError{Field: path + ".family", Value: hd.Family, Reason: "must be ip or ip6"}
	}
	return h, nil
}

// validIngressHistory checks history against the (validated) ingress
// publications: a gateway with ports in its family, sequence numbers no
// newer than the oldest port's they stand for, one chains_seq per family.
func validIngressHistory(d DaemonConfig, ing []IngressPublished, in []IngressHistory) ([]IngressHistory, error) {
	var out []IngressHistory
	chains := map[nft.Family]int64{}
	seen := map[IngressHistory]bool{}
	for i, h := range in {
		path := fmt.Sprintf("ingress_history[%d]", i)
		if !slices.Contains(d.Families(), h.Family) {
			return nil, &FieldError{Field: path + ".family", Value: h.Family.String(), Reason: "IPv6 is not enabled (daemon.ipv6)"}
		}
		key := IngressHistory{Family: h.Family, Bridge: h.Bridge}
		if seen[key] {
			return nil, &FieldError{Field: path + ".bridge", Value: h.Bridge, Reason: "listed twice"}
		}
		seen[key] = true
		var ports []IngressPublished
		for _, p := range ing {
			if p.Family() == h.Family {
				if p.Seq == 0 {
					return nil, &FieldError{Field: path, Reason: "history needs the seq of every ingress port of its family"}
				}
				ports = append(ports, p)
			}
		}
		masq, first := ingress.DefaultHistory(h.Family, h.Bridge, ports)
		switch {
		case masq == 0:
			return nil, &FieldError{Field: path + ".bridge", Value: h.Bridge, Reason: fmt.Sprintf("has no %s ingress port", h.Family)}
		case h.Masquerade < 0 || h.Masquerade > masq:
			return nil, &FieldError{Field: path + ".masquerade_seq", Value: fmt.Sprint(h.Masquerade), Reason: "must be positive and not after the gateway's oldest port"}
		case h.Chains < 0 || h.Chains > first:
			return nil, &FieldError{Field: path + ".chains_seq", Value: fmt.Sprint(h.Chains), Reason: "must be positive and not after the family's oldest ingress port"}
		case h.Chains != 0 && chains[h.Family] != 0 && chains[h.Family] != h.Chains:
			return nil, &FieldError{Field: path + ".chains_seq", Value: fmt.Sprint(h.Chains), Reason: "differs from another gateway's of the family"}
		}
		if h.Chains != 0 {
			chains[h.Family] = h.Chains
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b IngressHistory) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), strings.Compare(a.Bridge, b.Bridge))
	})
	return out, nil
}

// writeIngressHistory queues the history of s on the publications build
// queued (r reads the transaction).
func writeIngressHistory(ctx context.Context, r ingress.Reader, tx *nft.Tx, d DaemonConfig, hs []IngressHistory) error {
	if len(hs) == 0 {
		return nil
	}
	for _, f := range d.Families() {
		if err := ingress.SetHistory(ctx, r, tx, f, hs); err != nil {
			return fmt.Errorf("ingress history: %w", err)
		}
	}
	return nil
}

// carryHistory gives want, a state Apply converges to from cur, the
// history that the namespace keeps through the batch: networks that stay
// keep their sequence numbers and masquerade positions, ingress gateways
// that keep ports keep the date of their masquerade and the family its
// chains' (ingress operations keep records as they are). The yield sets
// of SNAT networks follow it (see [stateOrder]).
func carryHistory(cur State, want *State) {
	for i, w := range want.Networks {
		if c, ok := chains.Find(cur.Networks, w.Name); ok && c.NetworkConfig == w.NetworkConfig {
			want.Networks[i].Seq, want.Networks[i].MasqSeq4, want.Networks[i].MasqSeq6 = c.Seq, c.MasqSeq4, c.MasqSeq6
		}
	}
	dates := gateways(cur.Ingress, cur.IngressHistory)
	var hist []IngressHistory
	for _, g := range gateways(want.Ingress, nil) {
		for _, c := range dates {
			if c.Family == g.Family && c.Name == g.Name {
				h := IngressHistory{Family: g.Family, Bridge: g.Name, Masquerade: c.Seq}
				for _, ch := range cur.IngressHistory {
					if ch.Family == g.Family && ch.Chains != 0 {
						h.Chains = ch.Chains
					}
				}
				hist = append(hist, h)
			}
		}
	}
	want.IngressHistory = hist
}
