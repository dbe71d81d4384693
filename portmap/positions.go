package portmap

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dnft/dnft/nft"
)

// SetPositions records where iptables' view of a binding's filter accept
// and hairpin masquerade sit when it is not where the binding's own
// publication put them (history, see [Published.FilterSeq]). Its key is
// the binding's host address . l4proto . host port (the unspecified
// address for a binding on all addresses), its comment
// "dnft1;f=SEQ;h=SEQ" (base 36, each optional). No rule looks it up;
// most of the time it is empty.
const SetPositions = "positions"

// PositionsSet is the family's [SetPositions].
func PositionsSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetPositions, Key: keyHost, Comment: "iptables positions of moved rules"}
}

// Moved reports whether the binding's rules sit elsewhere in iptables'
// view than its own Seq.
func (p Published) Moved() bool { return p.FilterSeq != 0 || p.HairpinSeq != 0 }

// FilterPos is where iptables' view places the binding's filter accept:
// FilterSeq, or Seq.
func (p Published) FilterPos() int64 { return cmpOr(p.FilterSeq, p.Seq) }

// HairpinPos is where iptables' view places the binding's hairpin
// masquerade: HairpinSeq, or Seq.
func (p Published) HairpinPos() int64 { return cmpOr(p.HairpinSeq, p.Seq) }

func cmpOr(a, b int64) int64 {
	if a != 0 {
		return a
	}
	return b
}

// positionsElem is a binding's element of SetPositions (the key alone
// when it has not moved).
func positionsElem(p Published) nft.Element {
	e := nft.Element{Key: []nft.Value{nft.Addr(p.HostIP), nft.Proto(p.Proto.Number()), nft.Port(p.HostPort)}}
	if p.Moved() {
		e.Comment = positionsRecord(p.FilterSeq, p.HairpinSeq)
	}
	return e
}

func positionsRecord(f, h int64) string {
	var b strings.Builder
	b.WriteString(recordVersion)
	if f != 0 {
		b.WriteString(";f=" + strconv.FormatInt(f, 36))
	}
	if h != 0 {
		b.WriteString(";h=" + strconv.FormatInt(h, 36))
	}
	return b.String()
}

// parsePositions parses [positionsRecord]'s output.
func parsePositions(s string) (f, h int64, err error) {
	parts := strings.Split(s, ";")
	if parts[0] != recordVersion || len(parts) < 2 || len(parts) > 3 {
		return 0, 0, fmt.Errorf("bad positions record %q", s)
	}
	for _, part := range parts[1:] {
		k, v, _ := strings.Cut(part, "=")
		n, err := strconv.ParseInt(v, 36, 64)
		if err != nil || n <= 0 {
			return 0, 0, fmt.Errorf("bad positions record %q", s)
		}
		switch {
		case k == "f" && f == 0:
			f = n
		case k == "h" && h == 0:
			h = n
		default:
			return 0, 0, fmt.Errorf("bad positions record %q", s)
		}
	}
	return f, h, nil
}

// DecodePositions decodes one element of a family's SetPositions: the
// binding it belongs to (proto, host address and port; the rest unset)
// and its positions.
func DecodePositions(f nft.Family, e nft.ElementState) (b Binding, filter, hairpin int64, err error) {
	v, err := nft.DecodeKey(f, keyHost, e.Key)
	if err != nil {
		return b, 0, 0, fmt.Errorf("%s set %s: %w", f, SetPositions, err)
	}
	b = Binding{Proto: protoOf(v[1].Proto), HostIP: v[0].Addr, HostPort: v[2].Port}
	if filter, hairpin, err = parsePositions(e.Comment); err != nil {
		return b, 0, 0, fmt.Errorf("%s set %s: element %s: %w", f, SetPositions, hostAddr(b), err)
	}
	return b, filter, hairpin, nil
}

// CheckPositions checks positions decoded for the binding p: the filter
// accept only moves up (to an older place), the hairpin only down.
func CheckPositions(p Published, filter, hairpin int64) error {
	switch {
	case filter != 0 && filter >= p.Seq:
		return fmt.Errorf("filter accept position %d is not older than binding %s (%d)", filter, p.Binding, p.Seq)
	case hairpin != 0 && hairpin <= p.Seq:
		return fmt.Errorf("hairpin position %d is not newer than binding %s (%d)", hairpin, p.Binding, p.Seq)
	}
	return nil
}

// ApplyPositions sets FilterSeq and HairpinSeq of the bindings of family
// f in ps from the elements of its SetPositions. An element of no
// binding, or positions that dnft would not have written, are an error
// (the set is changed behind dnft's back): the first is returned, after
// the valid elements are applied.
func ApplyPositions(f nft.Family, s nft.SetState, ps []Published) error {
	if len(s.Elements) == 0 {
		return nil
	}
	type hostKey struct {
		h     netip.Addr
		proto Proto
		port  uint16
	}
	at := map[hostKey]int{}
	for i, p := range ps {
		if family(p.HostIP) == f {
			at[hostKey{p.HostIP, p.Proto, p.HostPort}] = i
		}
	}
	var first error
	for _, e := range s.Elements {
		b, fs, hs, err := DecodePositions(f, e)
		i, ok := at[hostKey{b.HostIP, b.Proto, b.HostPort}]
		switch {
		case err != nil:
		case !ok:
			err = fmt.Errorf("%s set %s: element %s is no binding's", f, SetPositions, hostAddr(b))
		default:
			if err = CheckPositions(ps[i], fs, hs); err != nil {
				err = fmt.Errorf("%s set %s: %w", f, SetPositions, err)
			}
		}
		if err != nil {
			if first == nil {
				first = fmt.Errorf("%w: %w", err, errCounts)
			}
			continue
		}
		ps[i].FilterSeq, ps[i].HairpinSeq = fs, hs
	}
	return first
}

// QueuePositions queues the SetPositions elements of the bindings of ps
// that have moved (a state being programmed from scratch).
func QueuePositions(tx *nft.Tx, ps []Published) {
	for _, p := range ps {
		if p.Moved() {
			tx.AddElements(PositionsSet(family(p.HostIP)), positionsElem(p))
		}
	}
}

// removeShared returns members (the bindings of one container port)
// after the removal of gone, one after the other, as iptables' -D of
// each binding's rules would leave them. Their filter accepts (`-I
// DOCKER`) and hairpin masquerades (`-A POSTROUTING`) are byte-identical
// rules, and -D deletes the first that matches: the topmost filter accept
// (the most recently inserted) and the topmost hairpin (the oldest), not
// necessarily the removed binding's own. The binding whose copy went
// takes the removed binding's place in iptables' view.
func removeShared(members []Published, gone []Binding) []Published {
	out := append([]Published(nil), members...)
	for _, b := range gone {
		i := -1
		for j := range out {
			if out[j].Binding == b {
				i = j
			}
		}
		if i < 0 {
			continue
		}
		top, first := i, i
		for j := range out {
			if out[j].FilterPos() > out[top].FilterPos() {
				top = j
			}
			if out[j].HairpinPos() < out[first].HairpinPos() {
				first = j
			}
		}
		if top != i {
			out[top].FilterSeq = out[i].FilterPos()
		}
		if first != i {
			out[first].HairpinSeq = out[i].HairpinPos()
		}
		out = append(out[:i], out[i+1:]...)
	}
	for j := range out {
		if out[j].FilterSeq == out[j].Seq {
			out[j].FilterSeq = 0
		}
		if out[j].HairpinSeq == out[j].Seq {
			out[j].HairpinSeq = 0
		}
	}
	return out
}

// queueMoves queues the SetPositions changes of unpublishing gone from
// the bindings of one container port, members as they are now.
func queueMoves(q *elemQueue, members []Published, gone []Binding) {
	after := removeShared(members, gone)
	for _, m := range members {
		keep := -1
		for j := range after {
			if after[j].Binding == m.Binding {
				keep = j
			}
		}
		switch {
		case keep < 0:
			if m.Moved() {
				q.del(PositionsSet(family(m.HostIP)), positionsElem(Published{Binding: m.Binding}))
			}
		case after[keep].FilterSeq != m.FilterSeq || after[keep].HairpinSeq != m.HairpinSeq:
			if m.Moved() {
				q.del(PositionsSet(family(m.HostIP)), positionsElem(Published{Binding: m.Binding}))
			}
			if after[keep].Moved() {
				q.add(PositionsSet(family(m.HostIP)), positionsElem(after[keep]))
			}
		}
	}
}

// members returns the bindings of network that forward to b's container
// port, with their positions; k is their number (from refs).
func (s *kernelSource) members(ctx context.Context, network string, b Binding, k int) ([]Published, error) {
	if k > 1 {
		return s.ofTarget(ctx, network, b.ContainerIP, b.Proto, b.ContainerPort)
	}
	// One binding: the one being removed. Only its positions element
	// matters, one get.
	p := Published{Network: network, Binding: b}
	f := family(b.HostIP)
	e, ok, err := s.k.GetElement(ctx, PositionsSet(f), positionsElem(p).Key)
	if err != nil || !ok {
		return []Published{p}, err
	}
	if p.FilterSeq, p.HairpinSeq, err = parsePositions(e.Comment); err != nil {
		return nil, fmt.Errorf("%s set %s: %w: %w", f, SetPositions, err, errCounts)
	}
	return []Published{p}, nil
}
