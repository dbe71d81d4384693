package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// resolve turns a fixed-family address field into the family its value
// has and the plain field; other fields keep the table's family.
func resolve(fam Family, f Field) (Family, Field) {
	switch f {
	case FieldSaddr4:
		return IPv4, FieldSaddr
	case FieldDaddr4:
		return IPv4, FieldDaddr
	case FieldSaddr6:
		return IPv6, FieldSaddr
	case FieldDaddr6:
		return IPv6, FieldDaddr
	}
	return fam, f
}

// fieldLen is the length of a field's value in bytes, before padding.
func fieldLen(fam Family, f Field) uint32 {
	fam, f = resolve(fam, f)
	switch f {
	case FieldIIFName, FieldOIFName:
		return unix.IFNAMSIZ
	case FieldSaddr, FieldDaddr:
		if fam == IPv6 {
			return 16
		}
		return 4
	case FieldL4Proto:
		return 1
	case FieldDport, FieldSport:
		return 2
	}
	return 0
}

// padded rounds a field length up to a 32-bit register boundary.
func padded(n uint32) uint32 { return (n + 3) &^ 3 }

// fieldType is the set datatype of a field.
func fieldType(fam Family, f Field) nftables.SetDatatype {
	fam, f = resolve(fam, f)
	switch f {
	case FieldIIFName, FieldOIFName:
		return nftables.TypeIFName
	case FieldSaddr, FieldDaddr:
		if fam == IPv6 {
			return nftables.TypeIP6Addr
		}
		return nftables.TypeIPAddr
	case FieldL4Proto:
		return nftables.TypeInetProto
	default:
		return nftables.TypeInetService
	}
}

// reg returns the register number for a 32-bit offset into the register
// file, numbered as the kernel dumps it: NFT_REG_1 to NFT_REG_4 on a
// 128-bit boundary, NFT_REG32_xx elsewhere. Rules read back then encode
// exactly as written, which drift checks compare.
func reg(off32 uint32) uint32 {
	if off32%4 == 0 {
		return unix.NFT_REG_1 + off32/4
	}
	return unix.NFT_REG32_00 + off32
}

// loadField loads one field into the register at off32.
func loadField(fam Family, f Field, off32 uint32) []expr.Any {
	r := reg(off32)
	fam, f = resolve(fam, f)
	switch f {
	case FieldIIFName:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: r}}
	case FieldOIFName:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: r}}
	case FieldL4Proto:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r}}
	case FieldSaddr, FieldDaddr:
		off, l := addrOffset(fam, f == FieldSaddr)
		return []expr.Any{&expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
	case FieldDport:
		return []expr.Any{&expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}}
	case FieldSport:
		return []expr.Any{&expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2}}
	}
	return nil
}

// addrOffset is the offset and length of the source or destination address
// in the network header.
func addrOffset(fam Family, src bool) (off, l uint32) {
	if fam == IPv6 {
		if src {
			return 8, 16
		}
		return 24, 16
	}
	if src {
		return 12, 4
	}
	return 16, 4
}

// loadKey loads the concatenation of fields into consecutive registers.
func loadKey(fam Family, fields []Field) []expr.Any {
	var out []expr.Any
	var off uint32
	for _, f := range fields {
		out = append(out, loadField(fam, f, off)...)
		off += padded(fieldLen(fam, f)) / 4
	}
	return out
}

// keyType is the (possibly concatenated) datatype of a key.
func keyType(fam Family, fields []Field) (nftables.SetDatatype, error) {
	if len(fields) == 1 {
		return fieldType(fam, fields[0]), nil
	}
	types := make([]nftables.SetDatatype, len(fields))
	for i, f := range fields {
		types[i] = fieldType(fam, f)
	}
	return nftables.ConcatSetType(types...)
}

// EncodeKey encodes an element key of a set with the given fields as it
// reads back ([ElementState.Key]).
func EncodeKey(fam Family, fields []Field, vals []Value) ([]byte, error) {
	return encodeKey(fam, fields, vals)
}

// encodeKey encodes element key values, each padded to 4 bytes.
func encodeKey(fam Family, fields []Field, vals []Value) ([]byte, error) {
	return appendKey(nil, fam, fields, vals)
}

// appendKey is encodeKey appending to dst.
func appendKey(dst []byte, fam Family, fields []Field, vals []Value) ([]byte, error) {
	if len(vals) != len(fields) {
		return nil, fmt.Errorf("key has %d values, set has %d fields", len(vals), len(fields))
	}
	for i, f := range fields {
		start := len(dst)
		var err error
		dst, err = appendValue(dst, fam, f, vals[i])
		if err != nil {
			return nil, err
		}
		if len(fields) > 1 {
			for (len(dst)-start)%4 != 0 {
				dst = append(dst, 0)
			}
		}
	}
	return dst, nil
}

func appendValue(dst []byte, fam Family, f Field, v Value) ([]byte, error) {
	fam, f = resolve(fam, f)
	switch f {
	case FieldIIFName, FieldOIFName:
		if len(v.Name) == 0 || len(v.Name) >= unix.IFNAMSIZ {
			return nil, fmt.Errorf("interface name %q: must be 1 to 15 bytes", v.Name)
		}
		dst = append(dst, v.Name...)
		for range unix.IFNAMSIZ - len(v.Name) {
			dst = append(dst, 0)
		}
		return dst, nil
	case FieldSaddr, FieldDaddr:
		switch a := v.Addr; {
		case fam == IPv4 && a.Is4():
			b := a.As4()
			return append(dst, b[:]...), nil
		case fam == IPv6 && a.Is6() && !a.Is4In6():
			b := a.As16()
			return append(dst, b[:]...), nil
		}
		return nil, fmt.Errorf("address %s is not of family %s", v.Addr, fam)
	case FieldL4Proto:
		return append(dst, v.Proto), nil
	default:
		return binary.BigEndian.AppendUint16(dst, v.Port), nil
	}
}

func ifnameBytes(s string) ([]byte, error) {
	if len(s) == 0 || len(s) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q: must be 1 to 15 bytes", s)
	}
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b, nil
}

func addrBytes(fam Family, a netip.Addr) ([]byte, error) {
	switch {
	case fam == IPv4 && a.Is4():
		b := a.As4()
		return b[:], nil
	case fam == IPv6 && a.Is6() && !a.Is4In6():
		b := a.As16()
		return b[:], nil
	}
	return nil, fmt.Errorf("address %s is not of family %s", a, fam)
}

// encodeMatch turns one match into expressions.
func encodeMatch(fam Family, m Match) ([]expr.Any, error) {
	op := func(neg bool) expr.CmpOp {
		if neg {
			return expr.CmpOpNeq
		}
		return expr.CmpOpEq
	}
	switch m := m.(type) {
	case IfName:
		b, err := ifnameBytes(m.Name)
		if err != nil {
			return nil, err
		}
		if m.Wildcard {
			b = []byte(m.Name)
		}
		key := expr.MetaKeyIIFNAME
		if m.Dir == Out {
			key = expr.MetaKeyOIFNAME
		}
		return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op(m.Neg), Register: 1, Data: b}}, nil
	case Prefix:
		return encodePrefix(fam, m)
	case FibLocal:
		f := &expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: m.Dir == Out, FlagSADDR: m.Dir != Out}
		return []expr.Any{f, &expr.Cmp{Op: op(m.Neg), Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)}}, nil
	case L3Proto:
		var et uint16 = unix.ETH_P_IP
		if m.Family == IPv6 {
			et = unix.ETH_P_IPV6
		}
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, et)},
		}, nil
	case CtEstablished:
		mask := binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
		return []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		}, nil
	case L4:
		out := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{m.Proto}},
		}
		if m.Sport != 0 {
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, m.Sport)})
		}
		if m.Dport != 0 {
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, m.Dport)})
		}
		return out, nil
	case Lookup:
		out := loadKey(fam, m.Fields)
		return append(out, &expr.Lookup{SourceRegister: 1, SetName: m.Set, Invert: m.Neg}), nil
	}
	return encodeFilterMatch(fam, m)
}

func encodePrefix(fam Family, m Prefix) ([]expr.Any, error) {
	p := m.Prefix.Masked()
	addr, err := addrBytes(fam, p.Addr())
	if err != nil {
		return nil, err
	}
	off, l := addrOffset(fam, m.Dir == In)
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
	if p.Bits() < int(l)*8 {
		mask := make([]byte, l)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: mask, Xor: make([]byte, l)})
	}
	op := expr.CmpOpEq
	if m.Neg {
		op = expr.CmpOpNeq
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: addr}), nil
}

func verdictExpr(v Verdict) (*expr.Verdict, error) {
	switch v.Kind {
	case Accept:
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case Drop:
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case Return:
		return &expr.Verdict{Kind: expr.VerdictReturn}, nil
	case Jump:
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain}, nil
	case Goto:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}, nil
	}
	return nil, fmt.Errorf("unknown verdict %d", v.Kind)
}

// encodeAction turns a rule's action into expressions.
func encodeAction(fam Family, a Action) ([]expr.Any, error) {
	nfproto := uint32(fam)
	switch a := a.(type) {
	case Verdict:
		v, err := verdictExpr(a)
		if err != nil {
			return nil, err
		}
		return []expr.Any{v}, nil
	case VMap:
		out := loadKey(fam, a.Fields)
		return append(out, &expr.Lookup{SourceRegister: 1, SetName: a.Map, DestRegister: 0, IsDestRegSet: true}), nil
	case Masquerade:
		return []expr.Any{&expr.Masq{}}, nil
	case SNAT:
		var out []expr.Any
		nat := &expr.NAT{Type: expr.NATTypeSourceNAT, Family: nfproto}
		if a.Addr.IsValid() {
			b, err := addrBytes(fam, a.Addr)
			if err != nil {
				return nil, err
			}
			out = append(out, &expr.Immediate{Register: 1, Data: b})
			// The maxima and flags the kernel fills in itself, so that
			// the rule reads back as written.
			nat.RegAddrMin, nat.RegAddrMax = 1, 1
		}
		if a.Port != 0 {
			out = append(out, &expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, a.Port)})
			nat.RegProtoMin, nat.RegProtoMax, nat.Specified = 2, 2, true
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("snat needs an address or a port")
		}
		return append(out, nat), nil
	case DNAT:
		b, err := addrBytes(fam, a.To.Addr())
		if err != nil {
			return nil, err
		}
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: b},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, a.To.Port())},
			dnatExpr(nfproto, 1, 2),
		}, nil
	case DNATMap:
		out := loadKey(fam, a.Fields)
		addrRegs := padded(fieldLen(fam, FieldDaddr)) / 4
		out = append(out,
			&expr.Lookup{SourceRegister: 1, SetName: a.Map, DestRegister: 1, IsDestRegSet: true},
			dnatExpr(nfproto, 1, reg(addrRegs)))
		return out, nil
	}
	return encodeFilterAction(fam, a)
}

// dnatExpr is a DNAT to the address in register addr and the port in
// register port, with the maxima and flags the kernel fills in itself
// (so that the rule reads back as written).
func dnatExpr(nfproto, addr, port uint32) *expr.NAT {
	return &expr.NAT{Type: expr.NATTypeDestNAT, Family: nfproto, RegAddrMin: addr, RegAddrMax: addr,
		RegProtoMin: port, RegProtoMax: port, Specified: true}
}

// encodeRule turns a rule into expressions: matches, a counter, the action.
func encodeRule(r Rule) ([]expr.Any, error) {
	var out []expr.Any
	for _, m := range r.Match {
		e, err := encodeMatch(r.Family, m)
		if err != nil {
			return nil, fmt.Errorf("rule %q in chain %s: %w", r.Comment, r.Chain, err)
		}
		out = append(out, e...)
	}
	out = append(out, &expr.Counter{})
	if r.Action != nil {
		e, err := encodeAction(r.Family, r.Action)
		if err != nil {
			return nil, fmt.Errorf("rule %q in chain %s: %w", r.Comment, r.Chain, err)
		}
		out = append(out, e...)
	}
	return out, nil
}
