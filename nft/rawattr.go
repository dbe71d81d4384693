package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// attr is one netlink attribute: its type without the nesting and
// byte-order flags, and its payload.
type attr struct {
	typ  uint16
	data []byte
}

// parseAttrs splits a buffer into netlink attributes. Unlike
// mdlayher/netlink's decoder it is strict: a length that does not fit is
// an error, so that arbitrary bytes rarely parse.
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) > 0 {
		if len(b) < unix.NLA_HDRLEN {
			return nil, fmt.Errorf("%d trailing bytes", len(b))
		}
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.NLA_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("attribute length %d out of range", l)
		}
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask, data: b[unix.NLA_HDRLEN:l]})
		al := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if al > len(b) {
			al = len(b)
		}
		b = b[al:]
	}
	return out, nil
}

// addedOnEncode are attributes that google/nftables adds on encoding and
// the kernel does not dump, with the values that do not change what the
// kernel programs (nil: any value), keyed by expression name. A set named
// in a rule is found by name before its ID; a TCP reset has no ICMP code.
var addedOnEncode = map[string]map[uint16][]byte{
	"lookup": {unix.NFTA_LOOKUP_SET_ID: nil},
	"dynset": {unix.NFTA_DYNSET_SET_ID: nil},
	"reject": {unix.NFTA_REJECT_ICMP_CODE: {0}},
}

// droppedOnDecode are attributes that the kernel dumps and google/nftables
// v0.3.0 does not keep, with the one value that is the kernel's default
// when the attribute is absent (so leaving it out programs the same).
var droppedOnDecode = map[string]map[uint16][]byte{
	"bitwise": {nftaBitwiseOp: {0, 0, 0, 0}}, // NFT_BITWISE_BOOL (mask and xor)
	"lookup":  {unix.NFTA_LOOKUP_FLAGS: {0, 0, 0, 0}},
}

// nftaBitwiseOp is NFTA_BITWISE_OP (Linux 5.6), which x/sys/unix lacks.
const nftaBitwiseOp = 6

// allowed reports whether an attribute present on one side only is one
// of the harmless differences above.
func allowed(m map[string]map[uint16][]byte, name string, typ uint16, val []byte) bool {
	want, ok := m[name][typ]
	return ok && (want == nil || bytes.Equal(want, val))
}

// ignoredValues are attributes whose values are state, not configuration.
var ignoredValues = map[string]map[uint16]bool{
	"counter": {unix.NFTA_COUNTER_BYTES: true, unix.NFTA_COUNTER_PACKETS: true},
}

// sameExpr compares an expression as the kernel (or a file) encoded it
// with google/nftables' encoding of its decoding. It returns "" when they
// program the same thing, else what differs.
func sameExpr(name string, orig, back []byte) string {
	if bytes.Equal(orig, back) {
		return ""
	}
	_, od, err := exprNameData(orig)
	if err != nil {
		return err.Error()
	}
	bn, bd, err := exprNameData(back)
	if err != nil {
		return err.Error()
	}
	if bn != name {
		return fmt.Sprintf("re-encoded as %q", bn)
	}
	if name == "nat" {
		od = withoutImpliedNATFlag(od)
	}
	if err := sameAttrs(name, od, bd, true); err != nil {
		return err.Error()
	}
	return ""
}

// sameAttrs compares two attribute lists regardless of order (repeated
// types are compared in order) and of flags. top selects the per-kind
// tolerances, which apply to the expression's own attributes only.
func sameAttrs(name string, a, b []byte, top bool) error {
	if bytes.Equal(a, b) {
		return nil
	}
	aa, err := parseAttrs(a)
	if err != nil {
		return err
	}
	ba, err := parseAttrs(b)
	if err != nil {
		return err
	}
	group := func(l []attr) (map[uint16][][]byte, []uint16) {
		m := map[uint16][][]byte{}
		var order []uint16
		for _, x := range l {
			if _, ok := m[x.typ]; !ok {
				order = append(order, x.typ)
			}
			m[x.typ] = append(m[x.typ], x.data)
		}
		return m, order
	}
	am, aorder := group(aa)
	bm, border := group(ba)
	for _, t := range aorder {
		av, bv := am[t], bm[t]
		if top && len(av) == 1 && len(bv) == 0 && allowed(droppedOnDecode, name, t, av[0]) {
			continue
		}
		if len(av) != len(bv) {
			return fmt.Errorf("attribute %d appears %d time(s), %d after decoding", t, len(av), len(bv))
		}
		if top && ignoredValues[name][t] {
			continue
		}
		for i := range av {
			if bytes.Equal(av[i], bv[i]) {
				continue
			}
			_, e1 := parseAttrs(av[i])
			_, e2 := parseAttrs(bv[i])
			if e1 != nil || e2 != nil {
				return fmt.Errorf("attribute %d: %x became %x", t, av[i], bv[i])
			}
			if err := sameAttrs(name, av[i], bv[i], false); err != nil {
				return fmt.Errorf("attribute %d: %w", t, err)
			}
		}
	}
	for _, t := range border {
		if _, ok := am[t]; !ok && !(top && len(bm[t]) == 1 && allowed(addedOnEncode, name, t, bm[t][0])) {
			return fmt.Errorf("attribute %d appears only after decoding", t)
		}
	}
	return nil
}

// withoutImpliedNATFlag drops NF_NAT_RANGE_MAP_IPS from the flags of a
// nat expression that has an address register: the kernel sets that flag
// itself for such an expression (nft_nat_init) and dumps it, while
// google/nftables v0.3.0 has no field for it, so its encoding lacks the
// flag and programs the same.
func withoutImpliedNATFlag(data []byte) []byte {
	attrs, err := parseAttrs(data)
	if err != nil {
		return data
	}
	hasAddr := slices.ContainsFunc(attrs, func(a attr) bool { return a.typ == unix.NFTA_NAT_REG_ADDR_MIN })
	var out []byte
	for _, a := range attrs {
		if a.typ == unix.NFTA_NAT_FLAGS && hasAddr && len(a.data) == 4 {
			flags := binary.BigEndian.Uint32(a.data) &^ unix.NF_NAT_RANGE_MAP_IPS
			if flags == 0 {
				continue
			}
			a.data = binary.BigEndian.AppendUint32(nil, flags)
		}
		out = appendAttr(out, a.typ, a.data)
	}
	return out
}

// nlaTypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from a type.
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

// widenCtDirection rewrites the one-byte NFTA_CT_DIRECTION the kernel
// dumps (NLA_U8) as the four big-endian bytes google/nftables v0.3.0
// reads and writes. The kernel reads the first byte of what it is given,
// so the two mean the same only for direction 0 (original); a reply
// direction is refused.
func widenCtDirection(data []byte) ([]byte, error) {
	attrs, err := parseAttrs(data)
	if err != nil {
		return nil, err
	}
	changed := false
	for i, a := range attrs {
		if a.typ != unix.NFTA_CT_DIRECTION || len(a.data) != 1 {
			continue
		}
		if a.data[0] != 0 {
			return nil, fmt.Errorf("ct reply direction: google/nftables v0.3.0 would write it as the original direction")
		}
		attrs[i].data, changed = make([]byte, 4), true
	}
	if !changed {
		return data, nil
	}
	var out []byte
	for _, a := range attrs {
		out = appendAttr(out, a.typ, a.data)
	}
	return out, nil
}

// exprBytes encodes an expression from its name and data payload.
func exprBytes(name string, data []byte) ([]byte, error) {
	out := appendAttr(nil, unix.NFTA_EXPR_NAME, append([]byte(name), 0))
	return appendAttr(out, unix.NLA_F_NESTED|unix.NFTA_EXPR_DATA, data), nil
}

// appendAttr appends one netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := unix.NLA_HDRLEN + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}
