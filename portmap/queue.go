package portmap

import (
	"context"
	"errors"
	"fmt"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// Publish queues the elements of the bindings bs, which must have been
// checked and normalised by [CheckPublish] against existing (what
// [ReadBindings] returned). Binding i gets the sequence number seq+i.
// The filter accept and hairpin elements of a container port are added by
// its first binding only, and the counts of [SetTargets] and
// [SetHostPorts] are updated (their elements deleted and added again in
// the same batch), so that [Unpublish] of the new bindings deletes
// exactly what this added.
func Publish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64, existing []Published) {
	NewIndex(existing).Publish(tx, d, n, bs, seq)
}

// Publish is [Publish] against the bindings of the index (which it does
// not change: call [Index.Add] once the transaction is committed).
func (x *Index) Publish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64) {
	_ = queuePublish(context.Background(), x, tx, d, n, bs, seq) // an index never fails
}

// Unpublish queues the deletion of the elements of the bindings bs, which
// must have been checked and normalised by [CheckUnpublish] against
// existing (what [ReadBindings] returned). Elements that a binding staying
// published still needs are kept, and the counts updated.
func Unpublish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, existing []Published) {
	NewIndex(existing).Unpublish(tx, d, n, bs)
}

// Unpublish is [Unpublish] against the bindings of the index (which it
// does not change: call [Index.Remove] once the transaction is
// committed). bs must be published and listed once each.
func (x *Index) Unpublish(tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding) {
	_ = queueUnpublish(context.Background(), x, tx, d, n, bs)
}

// counter tells how many bindings already share a container port
// (refs) and a host port (hostRefs), as [source] does.
type counter interface {
	refs(ctx context.Context, network string, b Binding) (int, error)
	hostRefs(ctx context.Context, b Binding) (int, error)
}

// queuePublish queues the publication of bs (see [Publish]); src tells
// how many bindings already share each container port and host port.
func queuePublish(ctx context.Context, src counter, tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding, seq int64) error {
	var (
		q   elemQueue
		buf [3]elem
	)
	q.sizeFor(len(bs))
	for i, b := range bs {
		for _, e := range ownElements(d, n, b, seq+int64(i), buf[:0]) {
			q.add(e.set, e.e)
		}
	}
	for _, t := range countTargets(bs) {
		k, err := src.refs(ctx, n.Name, t.b)
		if err != nil {
			return err
		}
		f := family(t.b.ContainerIP)
		if k == 0 {
			for _, e := range sharedElements(n, t.b, buf[:0]) {
				q.add(e.set, e.e)
			}
		} else {
			q.del(TargetsSet(f), targetElem(n.Name, t.b, 0))
		}
		q.add(TargetsSet(f), targetElem(n.Name, t.b, k+t.n))
	}
	for _, h := range countHostPorts(bs) {
		k, err := src.hostRefs(ctx, h.b)
		if err != nil {
			return err
		}
		f := family(h.b.HostIP)
		if k > 0 {
			q.del(HostPortsSet(f), hostPortElem(h.b, 0))
		}
		q.add(HostPortsSet(f), hostPortElem(h.b, k+h.n))
	}
	q.queue(tx)
	return nil
}

// queueUnpublish queues the removal of bs (see [Unpublish]).
func queueUnpublish(ctx context.Context, src source, tx *nft.Tx, d chains.DaemonConfig, n chains.Network, bs []Binding) error {
	var (
		q   elemQueue
		buf [3]elem
	)
	q.sizeFor(len(bs))
	for _, b := range bs {
		for _, e := range ownElements(d, n, b, 0, buf[:0]) {
			q.del(e.set, e.e)
		}
	}
	for _, t := range countTargets(bs) {
		k, err := src.refs(ctx, n.Name, t.b)
		if err != nil {
			return err
		}
		f := family(t.b.ContainerIP)
		if k >= t.n {
			members, err := src.members(ctx, n.Name, t.b, k)
			if err != nil {
				return err
			}
			queueMoves(&q, members, sameTarget(bs, t.b))
		}
		switch {
		case k < t.n:
			return fmt.Errorf("set %s counts %d binding(s) of %s, fewer than the %d to unpublish: %w", SetTargets, k, t.b, t.n, errCounts)
		case k == t.n:
			for _, e := range sharedElements(n, t.b, buf[:0]) {
				q.del(e.set, e.e)
			}
			q.del(TargetsSet(f), targetElem(n.Name, t.b, 0))
		default:
			q.del(TargetsSet(f), targetElem(n.Name, t.b, 0))
			q.add(TargetsSet(f), targetElem(n.Name, t.b, k-t.n))
		}
	}
	for _, h := range countHostPorts(bs) {
		k, err := src.hostRefs(ctx, h.b)
		if err != nil {
			return err
		}
		f := family(h.b.HostIP)
		if k < h.n {
			return fmt.Errorf("set %s counts %d binding(s) on %s/%s, fewer than the %d to unpublish: %w", SetHostPorts, k, PortProto(h.b), f, h.n, errCounts)
		}
		q.del(HostPortsSet(f), hostPortElem(h.b, 0))
		if k > h.n {
			q.add(HostPortsSet(f), hostPortElem(h.b, k-h.n))
		}
	}
	q.queue(tx)
	return nil
}

// errCounts marks counts in dnft's bookkeeping sets that do not match
// the bindings: the tables were changed behind dnft's back.
var errCounts = errors.New("dnft's bookkeeping disagrees with its records (run dnft check, and dnft repair)")

// PortProto formats a binding's host port and proto: "8080/tcp".
func PortProto(b Binding) string { return fmt.Sprintf("%d/%s", b.HostPort, b.Proto) }

// counted is a binding standing for n bindings of a request that share
// its container port (countTargets) or host port (countHostPorts).
type counted struct {
	b Binding
	n int
}

// countTargets groups bindings by container port, in first-seen order.
func countTargets(bs []Binding) []counted {
	return countBy(bs, func(b Binding) (targetKey, bool) { return targetOf("", b), true })
}

// sameTarget returns the bindings of bs that forward to b's container
// port, in order.
func sameTarget(bs []Binding, b Binding) []Binding {
	var out []Binding
	for _, o := range bs {
		if o.ContainerIP == b.ContainerIP && o.Proto == b.Proto && o.ContainerPort == b.ContainerPort {
			out = append(out, o)
		}
	}
	return out
}

// countHostPorts groups the bindings on a specific host address by
// family, proto and host port, in first-seen order.
func countHostPorts(bs []Binding) []counted {
	return countBy(bs, func(b Binding) (claimKey, bool) { return claimOf(b), !b.HostIP.IsUnspecified() })
}

// countBy groups the bindings that key selects by their key, in
// first-seen order: a linear search for the one binding of a publication,
// a map for a batch.
func countBy[K comparable](bs []Binding, key func(Binding) (K, bool)) []counted {
	var out []counted
	var pos map[K]int
	if len(bs) > 8 {
		pos = make(map[K]int, len(bs))
	}
next:
	for _, b := range bs {
		k, ok := key(b)
		if !ok {
			continue
		}
		if pos != nil {
			if i, seen := pos[k]; seen {
				out[i].n++
				continue
			}
			pos[k] = len(out)
		} else {
			for i := range out {
				if ok, _ := key(out[i].b); ok == k {
					out[i].n++
					continue next
				}
			}
		}
		out = append(out, counted{b, 1})
	}
	return out
}

// elemQueue collects element additions and deletions grouped by set in
// first-seen order; [elemQueue.queue] sends every deletion before any
// addition, so that an element deleted and added again (a new count)
// ends up added.
type elemQueue struct {
	dels, adds []elemGroup
	// space backs dels and adds for a publication of one binding.
	space [8]elemGroup
	// hint is the room a group gets when it starts, for a large request
	// (its number of bindings: a set gets at most one element of each),
	// so that its elements are one allocation and not many doublings.
	hint int
}

type elemGroup struct {
	set   nft.Set
	elems []nft.Element
}

func (q *elemQueue) add(s nft.Set, e nft.Element) {
	if q.adds == nil {
		q.adds = q.space[4:4]
	}
	q.adds = appendElem(q.adds, s, e, q.hint)
}

func (q *elemQueue) del(s nft.Set, e nft.Element) {
	if q.dels == nil {
		q.dels = q.space[:0:4]
	}
	q.dels = appendElem(q.dels, s, e, q.hint)
}

func appendElem(gs []elemGroup, s nft.Set, e nft.Element, hint int) []elemGroup {
	for i := range gs {
		if gs[i].set.Name == s.Name && gs[i].set.Family == s.Family {
			gs[i].elems = append(gs[i].elems, e)
			return gs
		}
	}
	return append(gs, elemGroup{set: s, elems: append(make([]nft.Element, 0, max(hint, 1)), e)})
}

// largeRequest is the number of bindings from which a request's groups
// start with room for all of them.
const largeRequest = 64

// sizeFor sets the hint of a queue for a request of n bindings.
func (q *elemQueue) sizeFor(n int) {
	if n >= largeRequest {
		q.hint = n
	}
}

func (q *elemQueue) queue(tx *nft.Tx) {
	for _, g := range q.dels {
		tx.DeleteElements(g.set, g.elems...)
	}
	for _, g := range q.adds {
		tx.AddElements(g.set, g.elems...)
	}
}
