package nft

import (
	"fmt"
	"slices"
)

// encodeElements encodes elements of set s as the kernel takes them (and
// [Tx.Objects] gives them back): an interval element becomes a start
// element and, unless its prefix reaches the end of the address space,
// an end element. Keys and data of all the elements share one buffer.
func encodeElements(s Set, elems []Element) ([]ElementState, error) {
	n := len(elems)
	if s.Interval {
		n *= 2
	}
	out := make([]ElementState, 0, n)
	// ends[i] is where element i's key, then data, end in buf.
	type span struct{ key, data int }
	ends := make([]span, 0, n)
	var buf []byte
	for _, e := range elems {
		if len(e.Comment) > MaxElementComment {
			return nil, fmt.Errorf("element comment of %d bytes exceeds %d", len(e.Comment), MaxElementComment)
		}
		es := ElementState{Comment: e.Comment}
		var end []byte
		var err error
		if s.Interval {
			fam, _ := resolve(s.Family, s.Key[0])
			p := e.Prefix.Masked()
			start, err := addrBytes(fam, p.Addr())
			if err != nil {
				return nil, err
			}
			buf = append(buf, start...)
			if a, ok := prefixEnd(p); ok {
				end, _ = addrBytes(fam, a)
			}
		} else if buf, err = appendKey(buf, s.Family, s.Key, e.Key); err != nil {
			return nil, err
		}
		k := len(buf)
		if buf, es.Verdict, err = appendData(buf, s, e); err != nil {
			return nil, err
		}
		out = append(out, es)
		ends = append(ends, span{k, len(buf)})
		if end != nil {
			buf = append(buf, end...)
			out = append(out, ElementState{IntervalEnd: true})
			ends = append(ends, span{len(buf), len(buf)})
		}
		if len(buf) > 0 && cap(buf) == len(buf) && len(ends) < n {
			// Room for the rest, at this element's size.
			per := len(buf) / len(ends)
			buf = slices.Grow(buf, per*(n-len(ends)))
		}
	}
	from := 0
	for i, sp := range ends {
		out[i].Key = buf[from:sp.key:sp.key]
		if sp.data > sp.key {
			out[i].Data = buf[sp.key:sp.data:sp.data]
		}
		from = sp.data
	}
	return out, nil
}

// appendData appends the data of element e of s to dst: a DataAddrPort
// map's target; a verdict map's verdict is returned instead, as
// [Tx.Objects] gives it.
func appendData(dst []byte, s Set, e Element) ([]byte, *Verdict, error) {
	switch s.Data {
	case DataVerdict:
		if e.Verdict == nil {
			return nil, nil, fmt.Errorf("verdict map %s: element without verdict", s.Name)
		}
		if _, err := verdictExpr(*e.Verdict); err != nil {
			return nil, nil, err
		}
		v := Verdict{Kind: e.Verdict.Kind}
		if v.Kind == Jump || v.Kind == Goto {
			v.Chain = e.Verdict.Chain
		}
		return dst, &v, nil
	case DataAddrPort:
		if e.Target.IsValid() {
			var err error
			dst, err = appendKey(dst, s.Family, targetFields, []Value{Addr(e.Target.Addr()), Port(e.Target.Port())})
			return dst, nil, err
		}
	}
	return dst, nil, nil
}
