package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// GetElement reads the element of set s with the given key, with one
// NFT_MSG_GETSETELEM request for that key: its cost does not depend on the
// size of the set (google/nftables v0.3.0 can only dump a whole set). ok
// is false when the element or the set does not exist. Interval sets are
// not supported.
func (c *Conn) GetElement(ctx context.Context, s Set, key []Value) (e ElementState, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return e, false, err
	}
	if s.Interval {
		return e, false, fmt.Errorf("get element of %s: interval sets are not supported", s.Name)
	}
	kb, err := encodeKey(s.Family, s.Key, key)
	if err != nil {
		return e, false, fmt.Errorf("get element of %s: %w", s.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return e, false, errors.New("nft: connection closed")
	}
	c.raw.getReq(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSETELEM, 0, uint8(s.Family), func(w *msgWriter) {
		w.attrStr(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		w.attrStr(unix.NFTA_SET_ELEM_LIST_SET, s.Name)
		list := w.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		item := w.nest(1)
		k := w.nest(unix.NFTA_SET_ELEM_KEY)
		w.attr(unix.NFTA_DATA_VALUE, kb)
		w.endNest(k)
		w.endNest(item)
		w.endNest(list)
	})
	err = c.raw.request(false, func(m nlMsg) error {
		if len(m.data) < 4 || ok {
			return nil
		}
		var derr error
		e, ok, derr = decodeElemList(m.data[4:])
		if ok {
			// The reply lives in the socket's buffer: keep copies.
			e.Key, e.Data = clone(e.Key), clone(e.Data)
		}
		return derr
	})
	if err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOENT) {
			return ElementState{}, false, nil
		}
		return ElementState{}, false, errors.Join(fmt.Errorf("get element of %s in %s: %w", s.Name, c.nsPath, err), c.rawFailed())
	}
	if !ok {
		return e, false, fmt.Errorf("get element of %s: no element in the reply", s.Name)
	}
	return e, true, nil
}

// clone copies b (nil stays nil).
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// decodeElemList decodes the first element of a NEWSETELEM message.
func decodeElemList(b []byte) (e ElementState, ok bool, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return e, false, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(nd *netlink.AttributeDecoder) error {
			if !nd.Next() {
				return nil
			}
			nd.Nested(func(ed *netlink.AttributeDecoder) error {
				e, err = decodeElem(ed)
				ok = err == nil
				return err
			})
			return nil
		})
	}
	if err == nil {
		err = ad.Err()
	}
	return e, ok, err
}

func decodeElem(ad *netlink.AttributeDecoder) (ElementState, error) {
	var e ElementState
	// value returns an NFTA_DATA_VALUE, or the attributes of an
	// NFTA_DATA_VERDICT (see [ElementVerdict]).
	value := func(nd *netlink.AttributeDecoder) ([]byte, error) {
		var out []byte
		for nd.Next() {
			if nd.Type() == unix.NFTA_DATA_VALUE || nd.Type() == unix.NFTA_DATA_VERDICT {
				out = nd.Bytes()
			}
		}
		return out, nd.Err()
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			ad.Nested(func(nd *netlink.AttributeDecoder) (err error) { e.Key, err = value(nd); return err })
		case unix.NFTA_SET_ELEM_FLAGS:
			e.IntervalEnd = ad.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_DATA:
			ad.Nested(func(nd *netlink.AttributeDecoder) (err error) { e.Data, err = value(nd); return err })
		case unix.NFTA_SET_ELEM_USERDATA:
			e.Comment, _ = userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
		case unix.NFTA_SET_ELEM_EXPR:
			ad.Nested(func(nd *netlink.AttributeDecoder) error { return decodeCounter(nd, &e) })
		case nftaSetElemExpressions:
			ad.Nested(func(ld *netlink.AttributeDecoder) error {
				for ld.Next() {
					ld.Nested(func(nd *netlink.AttributeDecoder) error { return decodeCounter(nd, &e) })
				}
				return nil
			})
		}
	}
	return e, ad.Err()
}

// decodeCounter reads a counter expression's packets and bytes.
func decodeCounter(ad *netlink.AttributeDecoder, e *ElementState) error {
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if name != "counter" || data == nil {
		return ad.Err()
	}
	cd, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return err
	}
	cd.ByteOrder = binary.BigEndian
	for cd.Next() {
		switch cd.Type() {
		case unix.NFTA_COUNTER_PACKETS:
			e.Packets = cd.Uint64()
		case unix.NFTA_COUNTER_BYTES:
			e.Bytes = cd.Uint64()
		}
	}
	return cd.Err()
}

// nftaSetElemExpressions is NFTA_SET_ELEM_EXPRESSIONS (Linux 5.12), which
// x/sys/unix does not define.
const nftaSetElemExpressions = 11

// HasSet reports whether the set or map exists in dnft's table of the
// family, with one NFT_MSG_GETSET request for it.
func (c *Conn) HasSet(ctx context.Context, f Family, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		return false, errors.New("nft: connection closed")
	}
	c.raw.getReq(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSET, 0, uint8(f), func(w *msgWriter) {
		w.attrStr(unix.NFTA_SET_TABLE, TableName)
		w.attrStr(unix.NFTA_SET_NAME, name)
	})
	err := c.raw.request(false, func(nlMsg) error { return nil })
	if err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOENT) {
			return false, nil
		}
		return false, errors.Join(fmt.Errorf("get set %s in %s: %w", name, c.nsPath, err), c.rawFailed())
	}
	return true, nil
}
