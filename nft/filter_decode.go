package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ErrNoFilterForm is wrapped by the errors of [DecodeRawRule] for a rule
// that has no form in the vocabulary of filter.go (for example a lookup
// of a named set): it can be kept as a raw rule, not shown as an
// iptables rule.
var ErrNoFilterForm = errors.New("no iptables-like form")

// DecodeRawRule reads a raw rule (canonical or as read back) as matches,
// a counter and an action of filter.go and model.go: the inverse of
// [EncodeUserRule], also for the usual spellings of the same matches that
// nft writes (byte-aligned prefixes without a mask, `ip protocol`,
// ...). The rule's Chain, Family and Comment are kept. It fails with an
// error wrapping [ErrNoFilterForm] for any other shape.
func DecodeRawRule(r RawRule) (Rule, error) {
	exprs, err := rawExprs(r.Family, r.Exprs)
	if err != nil {
		return Rule{}, err
	}
	set := func(name string) (AnonSet, bool) {
		var i int
		if _, err := fmt.Sscanf(name, "__set%d", &i); err != nil || i < 0 || i >= len(r.Sets) || anonName(i) != name {
			return AnonSet{}, false
		}
		return r.Sets[i], true
	}
	out, err := decodeFilter(r.Family, exprs, set)
	if err != nil {
		return Rule{}, err
	}
	out.Chain, out.Comment = r.Chain, r.Comment
	return out, nil
}

// filterDecoder walks a rule's expressions.
type filterDecoder struct {
	fam   Family
	exprs []expr.Any
	i     int
	set   func(string) (AnonSet, bool)
	proto *L4Proto // the last protocol match, which ports and ICMP types follow
}

func noForm(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNoFilterForm, fmt.Sprintf(format, args...))
}

// decodeFilter decodes expressions (the counter's values are ignored).
func decodeFilter(f Family, exprs []expr.Any, set func(string) (AnonSet, bool)) (Rule, error) {
	d := &filterDecoder{fam: f, exprs: exprs, set: set}
	r := Rule{Family: f}
	for d.i < len(d.exprs) {
		e := d.exprs[d.i]
		d.i++
		if r.Action != nil {
			return Rule{}, noForm("expression %d follows the rule's statement", d.i)
		}
		var m Match
		var err error
		switch e := e.(type) {
		case *expr.Counter:
			continue
		case *expr.Verdict:
			r.Action, err = decodeVerdict(e)
		case *expr.Reject:
			if e.Type != unix.NFT_REJECT_ICMP_UNREACH && e.Type != unix.NFT_REJECT_TCP_RST {
				return Rule{}, noForm("reject type %d", e.Type)
			}
			r.Action = Reject{Kind: RejectKind(e.Type), Code: e.Code}
		case *expr.Log:
			r.Action, err = decodeLog(e)
		case *expr.Meta:
			m, err = d.meta(e)
		case *expr.Payload:
			m, err = d.payload(e)
		case *expr.Ct:
			m, err = d.ct(e)
		default:
			return Rule{}, noForm("expression %d (%T)", d.i, e)
		}
		if err != nil {
			return Rule{}, err
		}
		if m != nil {
			if p, ok := m.(L4Proto); ok {
				d.proto = &p
			}
			r.Match = append(r.Match, m)
		}
	}
	return r, nil
}

func decodeVerdict(v *expr.Verdict) (Action, error) {
	switch v.Kind {
	case expr.VerdictAccept:
		return Verdict{Kind: Accept}, nil
	case expr.VerdictDrop:
		return Verdict{Kind: Drop}, nil
	case expr.VerdictReturn:
		return Verdict{Kind: Return}, nil
	case expr.VerdictJump:
		return Verdict{Kind: Jump, Chain: v.Chain}, nil
	case expr.VerdictGoto:
		return Verdict{Kind: Goto, Chain: v.Chain}, nil
	}
	return nil, noForm("verdict %d", v.Kind)
}

func decodeLog(l *expr.Log) (Action, error) {
	known := uint32(1<<unix.NFTA_LOG_LEVEL | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_FLAGS)
	if l.Key&^known != 0 {
		return nil, noForm("log to a group or with a snaplen")
	}
	out := Log{Prefix: string(l.Data), Level: 4, Flags: uint32(l.Flags)}
	if l.Key&(1<<unix.NFTA_LOG_LEVEL) != 0 {
		if l.Level > 7 {
			return nil, noForm("log level %d", l.Level)
		}
		out.Level = uint8(l.Level)
	}
	return out, nil
}

// next returns the next expression, or nil.
func (d *filterDecoder) next() expr.Any {
	if d.i >= len(d.exprs) {
		return nil
	}
	e := d.exprs[d.i]
	d.i++
	return e
}

// cmp reads the comparison of register reg that must follow a load.
func (d *filterDecoder) cmp(reg uint32) (*expr.Cmp, error) {
	c, ok := d.next().(*expr.Cmp)
	if !ok || c.Register != reg {
		return nil, noForm("a load at expression %d is not followed by a comparison", d.i-1)
	}
	if c.Op != expr.CmpOpEq && c.Op != expr.CmpOpNeq {
		return nil, noForm("comparison %d at expression %d", c.Op, d.i)
	}
	return c, nil
}

// span reads what follows a load of n bytes into reg: one value (eq or
// neq), a range as gte and lte, or a range expression (eq or neq).
func (d *filterDecoder) span(reg uint32, n int) (lo, hi []byte, neg bool, err error) {
	switch e := d.next().(type) {
	case *expr.Cmp:
		if e.Register != reg || len(e.Data) != n {
			break
		}
		switch e.Op {
		case expr.CmpOpEq, expr.CmpOpNeq:
			return e.Data, e.Data, e.Op == expr.CmpOpNeq, nil
		case expr.CmpOpGte:
			hiCmp, ok := d.next().(*expr.Cmp)
			if ok && hiCmp.Register == reg && hiCmp.Op == expr.CmpOpLte && len(hiCmp.Data) == n {
				return e.Data, hiCmp.Data, false, nil
			}
		}
	case *expr.Range:
		if e.Register == reg && len(e.FromData) == n && len(e.ToData) == n && (e.Op == expr.CmpOpEq || e.Op == expr.CmpOpNeq) {
			return e.FromData, e.ToData, e.Op == expr.CmpOpNeq, nil
		}
	}
	return nil, nil, false, noForm("unsupported comparison after the load at expression %d", d.i-1)
}

func (d *filterDecoder) meta(m *expr.Meta) (Match, error) {
	switch m.Key {
	case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
		c, err := d.cmp(m.Register)
		if err != nil {
			return nil, err
		}
		dir := In
		if m.Key == expr.MetaKeyOIFNAME {
			dir = Out
		}
		return decodeIfName(dir, c)
	case expr.MetaKeyL4PROTO:
		c, err := d.cmp(m.Register)
		if err != nil || len(c.Data) != 1 {
			return nil, noForm("l4proto comparison")
		}
		return L4Proto{Num: c.Data[0], Neg: c.Op == expr.CmpOpNeq}, nil
	}
	return nil, noForm("meta key %d", m.Key)
}

func decodeIfName(dir Dir, c *expr.Cmp) (Match, error) {
	b := c.Data
	i := slices.Index(b, 0)
	m := IfName{Dir: dir, Neg: c.Op == expr.CmpOpNeq}
	switch {
	case i < 0: // no NUL: a prefix of the name
		m.Name, m.Wildcard = string(b), true
	case i == 0 || slices.ContainsFunc(b[i:], func(x byte) bool { return x != 0 }):
		return nil, noForm("interface name %q", b)
	default:
		m.Name = string(b[:i])
	}
	if m.Name == "" || len(m.Name) >= unix.IFNAMSIZ || strings.ContainsAny(m.Name, "\x00") {
		return nil, noForm("interface name %q", b)
	}
	return m, nil
}

func (d *filterDecoder) payload(p *expr.Payload) (Match, error) {
	if p.OperationType != expr.PayloadLoad {
		return nil, noForm("payload write")
	}
	switch p.Base {
	case expr.PayloadBaseNetworkHeader:
		protoOff := uint32(9)
		if d.fam == IPv6 {
			protoOff = 6
		}
		if p.Offset == protoOff && p.Len == 1 {
			c, err := d.cmp(p.DestRegister)
			if err != nil || len(c.Data) != 1 {
				return nil, noForm("protocol comparison")
			}
			return L4Proto{Num: c.Data[0], Neg: c.Op == expr.CmpOpNeq}, nil
		}
		for _, dir := range []Dir{In, Out} {
			off, l := addrOffset(d.fam, dir == In)
			if p.Offset == off && p.Len <= l && p.Len > 0 {
				return d.addr(dir, p, l)
			}
		}
	case expr.PayloadBaseTransportHeader:
		if d.proto != nil && !d.proto.Neg && (d.proto.Num == unix.IPPROTO_ICMP && d.fam == IPv4 || d.proto.Num == unix.IPPROTO_ICMPV6 && d.fam == IPv6) {
			if p.Offset == 0 && (p.Len == 1 || p.Len == 2) {
				c, err := d.cmp(p.DestRegister)
				if err != nil || len(c.Data) != int(p.Len) {
					return nil, noForm("icmp type comparison")
				}
				m := ICMPType{Type: c.Data[0], Neg: c.Op == expr.CmpOpNeq}
				if p.Len == 2 {
					m.Code, m.HasCode = c.Data[1], true
				}
				return m, nil
			}
			break
		}
		if (p.Offset == 0 || p.Offset == 2) && p.Len == 2 {
			dir := Out
			if p.Offset == 0 {
				dir = In
			}
			if l, ok := d.peek().(*expr.Lookup); ok {
				d.i++
				return d.portSet(dir, p.DestRegister, l)
			}
			lo, hi, neg, err := d.span(p.DestRegister, 2)
			if err != nil {
				return nil, err
			}
			return portRange(dir, lo, hi, neg)
		}
	}
	return nil, noForm("payload base %d offset %d length %d", p.Base, p.Offset, p.Len)
}

func (d *filterDecoder) peek() expr.Any {
	if d.i >= len(d.exprs) {
		return nil
	}
	return d.exprs[d.i]
}

func portRange(dir Dir, lo, hi []byte, neg bool) (Match, error) {
	l, h := binary.BigEndian.Uint16(lo), binary.BigEndian.Uint16(hi)
	if l > h {
		return nil, noForm("empty port range")
	}
	return PortRange{Dir: dir, Lo: l, Hi: h, Neg: neg}, nil
}

// addr decodes an address match after a load of p.Len of l bytes.
func (d *filterDecoder) addr(dir Dir, p *expr.Payload, l uint32) (Match, error) {
	n := int(p.Len)
	bitsOf := n * 8
	if bw, ok := d.peek().(*expr.Bitwise); ok {
		d.i++
		b, err := maskBits(bw, p.DestRegister, n)
		if err != nil {
			return nil, err
		}
		bitsOf = b
		c, err := d.cmp(p.DestRegister)
		if err != nil || len(c.Data) != n {
			return nil, noForm("masked address comparison")
		}
		return prefixMatch(dir, c.Data, l, bitsOf, c.Op == expr.CmpOpNeq)
	}
	if n < int(l) {
		c, err := d.cmp(p.DestRegister)
		if err != nil || len(c.Data) != n {
			return nil, noForm("address comparison")
		}
		return prefixMatch(dir, c.Data, l, bitsOf, c.Op == expr.CmpOpNeq)
	}
	lo, hi, neg, err := d.span(p.DestRegister, n)
	if err != nil {
		return nil, err
	}
	if string(lo) == string(hi) {
		return prefixMatch(dir, lo, l, bitsOf, neg)
	}
	from, _ := addrFromBytes(lo)
	to, _ := addrFromBytes(hi)
	if to.Less(from) {
		return nil, noForm("empty address range")
	}
	return AddrRange{Dir: dir, From: from, To: to, Neg: neg}, nil
}

// maskBits returns the prefix length of a bitwise mask of n bytes with a
// zero xor.
func maskBits(bw *expr.Bitwise, reg uint32, n int) (int, error) {
	if bw.SourceRegister != reg || bw.DestRegister != reg || int(bw.Len) != n || len(bw.Mask) != n ||
		slices.ContainsFunc(bw.Xor, func(x byte) bool { return x != 0 }) {
		return 0, noForm("bitwise operation")
	}
	total := 0
	for i, x := range bw.Mask {
		ones := bits.LeadingZeros8(^x)
		total += ones
		if ones < 8 {
			if x<<ones != 0 || slices.ContainsFunc(bw.Mask[i+1:], func(y byte) bool { return y != 0 }) {
				return 0, noForm("mask that is not a prefix")
			}
			break
		}
	}
	return total, nil
}

// prefixMatch builds a Prefix from the first bytes of an address of l
// bytes.
func prefixMatch(dir Dir, data []byte, l uint32, bitsOf int, neg bool) (Match, error) {
	full := make([]byte, l)
	copy(full, data)
	a, ok := addrFromBytes(full)
	if !ok {
		return nil, noForm("address")
	}
	p := netip.PrefixFrom(a, bitsOf)
	if p.Masked() != p {
		return nil, noForm("address %s has bits outside its prefix", p)
	}
	return Prefix{Dir: dir, Prefix: p, Neg: neg}, nil
}

// portSet decodes the lookup of an anonymous set of ports.
func (d *filterDecoder) portSet(dir Dir, reg uint32, l *expr.Lookup) (Match, error) {
	if l.SourceRegister != reg || l.IsDestRegSet || d.set == nil {
		return nil, noForm("set lookup")
	}
	s, ok := d.set(l.SetName)
	if !ok || s.KeyLen != 2 {
		return nil, noForm("lookup of set %s", l.SetName)
	}
	spans, err := portSpans(s)
	if err != nil {
		return nil, err
	}
	return PortSet{Dir: dir, Spans: spans, Neg: l.Invert}, nil
}

// portSpans reads the ports and ranges of an anonymous set.
func portSpans(s AnonSet) ([]PortSpan, error) {
	els := slices.Clone(s.Elements)
	sortElements(els)
	var out []PortSpan
	if !s.Interval {
		for _, e := range els {
			if len(e.Key) != 2 || e.End {
				return nil, noForm("set element")
			}
			p := binary.BigEndian.Uint16(e.Key)
			out = append(out, PortSpan{p, p})
		}
		return out, nil
	}
	open := -1
	for _, e := range els {
		if len(e.Key) != 2 {
			return nil, noForm("set element")
		}
		k := int(binary.BigEndian.Uint16(e.Key))
		switch {
		case !e.End:
			if open >= 0 {
				out = append(out, PortSpan{uint16(open), uint16(k - 1)})
			}
			open = k
		case open >= 0:
			out = append(out, PortSpan{uint16(open), uint16(k - 1)})
			open = -1
		}
	}
	if open >= 0 {
		out = append(out, PortSpan{uint16(open), 0xffff})
	}
	if len(out) == 0 {
		return nil, noForm("empty set")
	}
	return out, nil
}

// sortElements puts elements in canonical order: by key, an end element
// before a start element of the same key (a range ends where the next
// starts).
func sortElements(els []AnonElement) {
	slices.SortStableFunc(els, func(a, b AnonElement) int {
		if c := strings.Compare(string(a.Key), string(b.Key)); c != 0 {
			return c
		}
		switch {
		case a.End == b.End:
			return 0
		case a.End:
			return -1
		}
		return 1
	})
}

func (d *filterDecoder) ct(c *expr.Ct) (Match, error) {
	if c.SourceRegister {
		return nil, noForm("ct write")
	}
	switch c.Key {
	case expr.CtKeySTATE:
		return d.ctState(c.Register)
	case unix.NFT_CT_SRC_IP, unix.NFT_CT_DST_IP, unix.NFT_CT_SRC_IP6, unix.NFT_CT_DST_IP6, expr.CtKeySRC, expr.CtKeyDST:
		if c.Direction != 0 {
			return nil, noForm("ct reply address")
		}
		dir := Out
		if c.Key == unix.NFT_CT_SRC_IP || c.Key == unix.NFT_CT_SRC_IP6 || c.Key == expr.CtKeySRC {
			dir = In
		}
		if (c.Key == unix.NFT_CT_SRC_IP || c.Key == unix.NFT_CT_DST_IP) && d.fam != IPv4 ||
			(c.Key == unix.NFT_CT_SRC_IP6 || c.Key == unix.NFT_CT_DST_IP6) && d.fam != IPv6 {
			return nil, noForm("ct address of the other family")
		}
		l := 4
		if d.fam == IPv6 {
			l = 16
		}
		bitsOf := -1
		if bw, ok := d.peek().(*expr.Bitwise); ok {
			d.i++
			b, err := maskBits(bw, c.Register, l)
			if err != nil {
				return nil, err
			}
			bitsOf = b
		}
		cm, err := d.cmp(c.Register)
		if err != nil || len(cm.Data) > l || len(cm.Data) == 0 {
			return nil, noForm("ct address comparison")
		}
		if bitsOf < 0 {
			bitsOf = len(cm.Data) * 8
		} else if len(cm.Data) != l {
			return nil, noForm("ct address comparison")
		}
		m, err := prefixMatch(dir, cm.Data, uint32(l), bitsOf, cm.Op == expr.CmpOpNeq)
		if err != nil {
			return nil, err
		}
		p := m.(Prefix)
		return CtOrigAddr(p), nil
	case expr.CtKeyPROTOSRC, expr.CtKeyPROTODST:
		if c.Direction != 0 {
			return nil, noForm("ct reply port")
		}
		dir := Out
		if c.Key == expr.CtKeyPROTOSRC {
			dir = In
		}
		lo, hi, neg, err := d.span(c.Register, 2)
		if err != nil {
			return nil, err
		}
		m, err := portRange(dir, lo, hi, neg)
		if err != nil {
			return nil, err
		}
		p := m.(PortRange)
		return CtOrigPort(p), nil
	}
	return nil, noForm("ct key %d", c.Key)
}

// ctState decodes `ct state & MASK != 0` (and == 0, negated), and `ct
// state X` / `ct state != X` for one state.
func (d *filterDecoder) ctState(reg uint32) (Match, error) {
	const all = CtStateInvalid | CtStateEstablished | CtStateRelated | CtStateNew | CtStateUntracked
	if bw, ok := d.peek().(*expr.Bitwise); ok {
		d.i++
		if bw.SourceRegister != reg || bw.DestRegister != reg || bw.Len != 4 || len(bw.Mask) != 4 ||
			slices.ContainsFunc(bw.Xor, func(x byte) bool { return x != 0 }) {
			return nil, noForm("ct state mask")
		}
		mask := binary.NativeEndian.Uint32(bw.Mask)
		c, err := d.cmp(reg)
		if err != nil || len(c.Data) != 4 || binary.NativeEndian.Uint32(c.Data) != 0 || mask == 0 || mask&^all != 0 {
			return nil, noForm("ct state comparison")
		}
		return CtState{Mask: mask, Neg: c.Op == expr.CmpOpEq}, nil
	}
	c, err := d.cmp(reg)
	if err != nil || len(c.Data) != 4 {
		return nil, noForm("ct state comparison")
	}
	v := binary.NativeEndian.Uint32(c.Data)
	if bits.OnesCount32(v) != 1 || v&^all != 0 {
		return nil, noForm("ct state value %#x", v)
	}
	return CtState{Mask: v, Neg: c.Op == expr.CmpOpNeq}, nil
}
