package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// AnonSet is an anonymous set a raw rule looks up (an inline `{ ... }`
// list): the rule's lookup names it "__set<i>", i its index in
// [RawRule.Sets]. It is created with the rule and goes with it.
type AnonSet struct {
	// KeyType is the nft datatype of the key (e.g. 13 for inet_service)
	// and KeyLen its length in bytes.
	KeyType, KeyLen uint32
	// Interval makes elements ranges: a start element, then an End
	// element one past the range's last value.
	Interval bool
	// Elements in canonical order (by key, end elements after starts of
	// the same key).
	Elements []AnonElement
}

// AnonElement is one element of an [AnonSet].
type AnonElement struct {
	Key []byte
	End bool
}

// anonName is the canonical name of a raw rule's i-th anonymous set.
func anonName(i int) string { return fmt.Sprintf("__set%d", i) }

func cmpOp(neg bool) expr.CmpOp {
	if neg {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

// rangeExprs compares register 1 (already loaded) with lo..hi: equality
// for one value, gte and lte for a range, a negated range expression for
// a range that must not match (as nft writes them).
func rangeExprs(lo, hi []byte, neg bool) []expr.Any {
	if string(lo) == string(hi) {
		return []expr.Any{&expr.Cmp{Op: cmpOp(neg), Register: 1, Data: lo}}
	}
	if neg {
		return []expr.Any{&expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: lo, ToData: hi}}
	}
	return []expr.Any{
		&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: lo},
		&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: hi},
	}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// portOffset is the offset of the source (In) or destination port in the
// transport header.
func portOffset(d Dir) uint32 {
	if d == In {
		return 0
	}
	return 2
}

// ctAddrKey is the conntrack key of the original direction's source (In)
// or destination address. The family-specific keys that nft writes
// (ct original ip daddr: NFT_CT_DST_IP) cannot be written through
// google/nftables v0.3.0, which leaves out their direction; the generic
// keys give the same address, of the table's family.
func ctAddrKey(d Dir) expr.CtKey {
	if d == In {
		return expr.CtKeySRC
	}
	return expr.CtKeyDST
}

// maskExprs loads nothing: it masks register 1 to a prefix length, when
// the prefix does not cover the whole address.
func maskExprs(bits, l int) []expr.Any {
	if bits >= l*8 {
		return nil
	}
	mask := make([]byte, l)
	for i := 0; i < bits; i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(l), Mask: mask, Xor: make([]byte, l)}}
}

// encodeFilterMatch encodes the matches of filter.go (a PortSet needs a
// raw rule's anonymous set: see [EncodeUserRule]).
func encodeFilterMatch(fam Family, m Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case L4Proto:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: []byte{m.Num}},
		}, nil
	case PortRange:
		if m.Lo > m.Hi {
			return nil, fmt.Errorf("port range %d-%d is empty", m.Lo, m.Hi)
		}
		out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(m.Dir), Len: 2}}
		return append(out, rangeExprs(be16(m.Lo), be16(m.Hi), m.Neg)...), nil
	case AddrRange:
		from, err := addrBytes(fam, m.From)
		if err != nil {
			return nil, err
		}
		to, err := addrBytes(fam, m.To)
		if err != nil {
			return nil, err
		}
		if m.To.Less(m.From) {
			return nil, fmt.Errorf("address range %s-%s is empty", m.From, m.To)
		}
		off, l := addrOffset(fam, m.Dir == In)
		out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
		return append(out, rangeExprs(from, to, m.Neg)...), nil
	case CtState:
		out := []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeySTATE}}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, m.Mask), Xor: make([]byte, 4)})
		return append(out, &expr.Cmp{Op: cmpOp(!m.Neg), Register: 1, Data: make([]byte, 4)}), nil
	case CtOrigAddr:
		p := m.Prefix.Masked()
		addr, err := addrBytes(fam, p.Addr())
		if err != nil {
			return nil, err
		}
		out := []expr.Any{&expr.Ct{Register: 1, Key: ctAddrKey(m.Dir), Direction: 0}}
		out = append(out, maskExprs(p.Bits(), len(addr))...)
		return append(out, &expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: addr}), nil
	case CtOrigPort:
		if m.Lo > m.Hi {
			return nil, fmt.Errorf("port range %d-%d is empty", m.Lo, m.Hi)
		}
		key := expr.CtKeyPROTODST
		if m.Dir == In {
			key = expr.CtKeyPROTOSRC
		}
		out := []expr.Any{&expr.Ct{Register: 1, Key: key, Direction: 0}}
		return append(out, rangeExprs(be16(m.Lo), be16(m.Hi), m.Neg)...), nil
	case ICMPType:
		data := []byte{m.Type}
		if m.HasCode {
			data = append(data, m.Code)
		}
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: uint32(len(data))},
			&expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: data},
		}, nil
	case PortSet:
		return nil, fmt.Errorf("a port list needs an anonymous set: only operators' rules (EncodeUserRule) can have one")
	}
	return nil, fmt.Errorf("unknown match %T", m)
}

// encodeFilterAction encodes the statements of filter.go.
func encodeFilterAction(_ Family, a Action) ([]expr.Any, error) {
	switch a := a.(type) {
	case Reject:
		return []expr.Any{&expr.Reject{Type: uint32(a.Kind), Code: a.Code}}, nil
	case Log:
		if a.Level > 7 {
			return nil, fmt.Errorf("log level %d: must be 0 to 7", a.Level)
		}
		l := &expr.Log{Level: expr.LogLevel(a.Level), Key: 1 << unix.NFTA_LOG_LEVEL}
		if a.Prefix != "" {
			if len(a.Prefix) > 127 {
				return nil, fmt.Errorf("log prefix of %d bytes: at most 127", len(a.Prefix))
			}
			l.Data, l.Key = []byte(a.Prefix), l.Key|1<<unix.NFTA_LOG_PREFIX
		}
		if a.Flags != 0 {
			l.Flags, l.Key = expr.LogFlags(a.Flags), l.Key|1<<unix.NFTA_LOG_FLAGS
		}
		return []expr.Any{l}, nil
	}
	return nil, fmt.Errorf("unknown action %T", a)
}

// portSetExprs encodes a PortSet as a lookup of a new anonymous set,
// which it appends to sets.
func portSetExprs(m PortSet, sets *[]AnonSet) ([]expr.Any, error) {
	if len(m.Spans) == 0 {
		return nil, fmt.Errorf("empty port list")
	}
	s := AnonSet{KeyType: nftables.TypeInetService.GetNFTMagic(), KeyLen: 2}
	for _, sp := range m.Spans {
		if sp.Lo > sp.Hi {
			return nil, fmt.Errorf("port range %d-%d is empty", sp.Lo, sp.Hi)
		}
		if sp.Lo != sp.Hi {
			s.Interval = true
		}
	}
	s.Elements = portElements(m.Spans, s.Interval)
	*sets = append(*sets, s)
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOffset(m.Dir), Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: anonName(len(*sets) - 1), Invert: m.Neg},
	}, nil
}

// portElements turns port spans into set elements: single ports as they
// are, or (interval) merged ranges as start and end elements, with the
// leading end element at 0 that nft writes when the first range does not
// start at 0.
func portElements(spans []PortSpan, interval bool) []AnonElement {
	var out []AnonElement
	if !interval {
		seen := map[uint16]bool{}
		for _, sp := range spans {
			if !seen[sp.Lo] {
				seen[sp.Lo] = true
				out = append(out, AnonElement{Key: be16(sp.Lo)})
			}
		}
		sortElements(out)
		return out
	}
	for _, r := range mergeSpans(spans) {
		if len(out) == 0 && r.Lo > 0 {
			out = append(out, AnonElement{Key: be16(0), End: true})
		}
		out = append(out, AnonElement{Key: be16(r.Lo)})
		if r.Hi < 0xffff {
			out = append(out, AnonElement{Key: be16(r.Hi + 1), End: true})
		}
	}
	return out
}

// mergeSpans sorts spans and merges those that overlap or touch.
func mergeSpans(spans []PortSpan) []PortSpan {
	s := append([]PortSpan(nil), spans...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Lo < s[j-1].Lo; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	var out []PortSpan
	for _, sp := range s {
		if n := len(out); n > 0 && uint32(sp.Lo) <= uint32(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, sp.Hi)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// EncodeUserRule encodes an operator's rule (r.Family, r.Chain, matches,
// a counter, the action, r.Comment) as a [RawRule] in canonical form,
// with the anonymous sets its port lists need.
func EncodeUserRule(r Rule) (RawRule, error) {
	var exprs []expr.Any
	var sets []AnonSet
	for _, m := range r.Match {
		var e []expr.Any
		var err error
		if ps, ok := m.(PortSet); ok {
			e, err = portSetExprs(ps, &sets)
		} else {
			e, err = encodeMatch(r.Family, m)
		}
		if err != nil {
			return RawRule{}, fmt.Errorf("rule in chain %s: %w", r.Chain, err)
		}
		exprs = append(exprs, e...)
	}
	exprs = append(exprs, &expr.Counter{})
	if r.Action != nil {
		e, err := encodeAction(r.Family, r.Action)
		if err != nil {
			return RawRule{}, fmt.Errorf("rule in chain %s: %w", r.Chain, err)
		}
		exprs = append(exprs, e...)
	}
	b, err := encodeExprs(r.Family, exprs)
	if err != nil {
		return RawRule{}, err
	}
	if len(r.Comment) > maxCommentLen {
		return RawRule{}, fmt.Errorf("comment of %d bytes exceeds %d", len(r.Comment), maxCommentLen)
	}
	return RawRule{Family: r.Family, Chain: r.Chain, Exprs: b, Comment: r.Comment, Sets: sets}, nil
}

// addrFromBytes is the address of a family in b (4 or 16 bytes).
func addrFromBytes(b []byte) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(b)
	return a, ok && (len(b) == 4 || len(b) == 16)
}
