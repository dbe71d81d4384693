package dnft

import (
	"github.com/dnft/dnft/nft"
)

// packedSet is the elements of a set as read from the kernel, held for
// the comparison with what dnft wrote (see [compareSets]): keys and data
// in one string, element after element, comments and verdicts once each
// run of equal ones, and no counters. At 65,000 bindings this is 24
// bytes an element where an [nft.ElementState] takes 96, plus its
// slices: check's kernel snapshot holds 15 MB instead of 38.
type packedSet struct {
	bytes    string
	elems    []packedElem
	comments []string
	verdicts []*nft.Verdict
}

// packedElem is one element of a packedSet: its key is
// bytes[start:key], its data bytes[key:data]; comment and verdict index
// the set's comments and verdicts.
type packedElem struct {
	start, key, data uint32
	comment, verdict uint32
	end              bool
}

// packTables packs the elements of every set of ts, by family and set
// name. With drop, each set's elements are dropped from ts once packed,
// so that the two are never held whole at once.
func packTables(ts []nft.TableState, drop bool) map[nft.Family]map[string]*packedSet {
	out := make(map[nft.Family]map[string]*packedSet, len(ts))
	for i := range ts {
		sets := make(map[string]*packedSet, len(ts[i].Sets))
		for j := range ts[i].Sets {
			s := &ts[i].Sets[j]
			sets[s.Name] = packSet(s.Elements)
			if drop {
				s.Elements = nil
			}
		}
		out[ts[i].Family] = sets
	}
	return out
}

// packSet packs the elements es.
func packSet(es []nft.ElementState) *packedSet {
	n := 0
	for _, e := range es {
		n += len(e.Key) + len(e.Data)
	}
	buf := make([]byte, 0, n)
	p := &packedSet{elems: make([]packedElem, len(es)), comments: []string{""}, verdicts: []*nft.Verdict{nil}}
	for i, e := range es {
		pe := &p.elems[i]
		pe.start = uint32(len(buf))
		buf = append(buf, e.Key...)
		pe.key = uint32(len(buf))
		buf = append(buf, e.Data...)
		pe.data, pe.end = uint32(len(buf)), e.IntervalEnd
		if last := p.comments[len(p.comments)-1]; e.Comment != last {
			p.comments = append(p.comments, e.Comment)
		}
		pe.comment = uint32(len(p.comments) - 1)
		if v, last := nft.ElementVerdict(e), p.verdicts[len(p.verdicts)-1]; !sameVerdict(v, last) {
			p.verdicts = append(p.verdicts, v)
		}
		pe.verdict = uint32(len(p.verdicts) - 1)
	}
	p.bytes = string(buf)
	return p
}

// sameVerdict reports whether a and b are both nil or equal verdicts.
func sameVerdict(a, b *nft.Verdict) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// len returns the number of elements of p (0 for nil).
func (p *packedSet) len() int {
	if p == nil {
		return 0
	}
	return len(p.elems)
}

// keyOf returns the key of element i, as a part of p's string (no copy).
func (p *packedSet) keyOf(i int) string {
	e := p.elems[i]
	return p.bytes[e.start:e.key]
}

// same reports whether element i of p holds what w does (the value
// [compareElements] compares once keys match): the verdict of a verdict
// map, else the data, and the comment.
func (p *packedSet) same(i int, w nft.ElementState) bool {
	e := p.elems[i]
	va, vb := nft.ElementVerdict(w), p.verdicts[e.verdict]
	if w.Comment != p.comments[e.comment] || (va == nil) != (vb == nil) {
		return false
	}
	if va != nil {
		return *va == *vb
	}
	return string(w.Data) == p.bytes[e.key:e.data]
}

// element returns element i of p as an [nft.ElementState] (without
// counters), to report it.
func (p *packedSet) element(i int) nft.ElementState {
	e := p.elems[i]
	out := nft.ElementState{
		Key:         []byte(p.bytes[e.start:e.key]),
		Verdict:     p.verdicts[e.verdict],
		Comment:     p.comments[e.comment],
		IntervalEnd: e.end,
	}
	if e.data > e.key {
		out.Data = []byte(p.bytes[e.key:e.data])
	}
	return out
}
