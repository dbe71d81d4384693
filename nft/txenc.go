package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// maxElemNest bounds the encoded element list of one NEWSETELEM or
// DELSETELEM message: a netlink attribute's length is 16 bits.
const maxElemNest = 60 << 10

// encodeBatch writes tx, then raw rules appended to their chains, as one
// nfnetlink batch into w: the batch header (carrying the generation check
// when gen is not 0: the kernel then refuses the whole batch with ERESTART
// unless its ruleset generation is gen, atomically with the commit), the
// messages, the batch end. It returns the sequence numbers of the header
// and of the end.
//
// Set elements, the hot path, are encoded here directly; the other
// changes (tables, chains, rules, sets) are built by google/nftables on a
// socket-less connection whose messages are copied into the batch.
func encodeBatch(w *msgWriter, tx *Tx, raw []RawRule, gen uint32) (first, last uint32, err error) {
	w.b = w.b[:0]
	start := w.nfMsg(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	first = w.seq
	if gen != 0 {
		w.attrU32(unix.NFNL_BATCH_GENID, gen)
	}
	w.end(start)

	var lib *libCapture // created on the first change it builds
	queue := func() *nftables.Conn {
		if lib == nil {
			lib = newLibCapture()
		}
		return lib.nc
	}
	drain := func() error {
		if lib == nil {
			return nil
		}
		return lib.drainTo(w)
	}
	setIDs := map[string]uint32{}
	nextID := uint32(1)
	for i, o := range tx.ops {
		var t *nftables.Table
		if o.kind != opAddElems && o.kind != opDelElems {
			t = table(o.fam)
		}
		var err error
		switch o.kind {
		case opAddElems, opDelElems:
			if err = drain(); err == nil {
				err = encodeElems(w, o, setIDs[o.set.Name+"/"+o.fam.String()])
			}
		case opAddTable:
			queue().AddTable(t)
		case opDelTable:
			queue().DelTable(t)
		case opAddChain:
			queue().AddChain(libChain(t, o.chain))
		case opFlushChain:
			queue().FlushChain(&nftables.Chain{Table: t, Name: o.chain.Name})
		case opDelChain:
			queue().DelChain(&nftables.Chain{Table: t, Name: o.chain.Name})
		case opAddRule, opInsertRule:
			var r *nftables.Rule
			r, err = libRule(t, o.rule, setIDs)
			if err == nil {
				r.Position = o.handle
				if o.kind == opAddRule {
					queue().AddRule(r)
				} else {
					queue().InsertRule(r)
				}
			}
		case opDelRule:
			err = queue().DelRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: o.rule.Chain, Table: t}, Handle: o.handle})
		case opAddSet:
			var s *nftables.Set
			s, err = libSet(t, o.set)
			if err == nil {
				s.ID = nextID
				setIDs[o.set.Name+"/"+o.fam.String()] = nextID
				nextID++
				err = queue().AddSet(s, nil)
			}
		case opDelSet:
			queue().DelSet(&nftables.Set{Table: t, Name: o.set.Name})
		case opFlushSet:
			queue().FlushSet(&nftables.Set{Table: t, Name: o.set.Name})
		default:
			err = fmt.Errorf("unknown op %d", o.kind)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("change %d of %d: %w", i+1, len(tx.ops), err)
		}
	}
	if len(raw) > 0 {
		if err := addRawRules(queue(), raw); err != nil {
			return 0, 0, err
		}
	}
	if err := drain(); err != nil {
		return 0, 0, err
	}
	end := w.nfMsg(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	w.end(end)
	return first, w.seq, nil
}

// encodeElems writes the NEWSETELEM or DELSETELEM messages of one change,
// splitting the list where an attribute would overflow. id is the set's
// batch ID when the same batch creates it.
func encodeElems(w *msgWriter, o op, id uint32) error {
	typ := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_CREATE)
	if o.kind == opDelElems {
		typ = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM
		flags = unix.NLM_F_REQUEST
	}
	msg, list, n := -1, 0, 0
	open := func() {
		msg = w.nfMsg(typ, flags, uint8(o.fam), 0)
		w.attrStr(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		w.attrStr(unix.NFTA_SET_ELEM_LIST_SET, o.set.Name)
		if id != 0 {
			w.attrU32(unix.NFTA_SET_ELEM_LIST_SET_ID, id)
		}
		list = w.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		n = 0
	}
	closeMsg := func() {
		w.endNest(list)
		w.end(msg)
	}
	for _, e := range o.elems {
		if msg < 0 {
			open()
		} else if len(w.b)-list > maxElemNest {
			closeMsg()
			open()
		}
		n++
		if err := encodeElem(w, uint16(n), e); err != nil {
			return fmt.Errorf("set %s: %w", o.set.Name, err)
		}
	}
	if msg >= 0 {
		closeMsg()
	}
	return nil
}

// targetFields are the fields of a DataAddrPort map's data.
var targetFields = []Field{FieldDaddr, FieldDport}

// encodeElem writes one element of an element list.
func encodeElem(w *msgWriter, n uint16, e ElementState) error {
	var vd *expr.Verdict
	if e.Verdict != nil {
		var err error
		if vd, err = verdictExpr(*e.Verdict); err != nil {
			return err
		}
	}
	item := w.nest(n)
	if e.IntervalEnd {
		w.attrU32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	k := w.nest(unix.NFTA_SET_ELEM_KEY)
	w.attr(unix.NFTA_DATA_VALUE, e.Key)
	w.endNest(k)
	switch {
	case vd != nil:
		d := w.nest(unix.NFTA_SET_ELEM_DATA)
		v := w.nest(unix.NFTA_DATA_VERDICT)
		w.attrU32(unix.NFTA_VERDICT_CODE, uint32(vd.Kind))
		if vd.Chain != "" {
			w.attrStr(unix.NFTA_VERDICT_CHAIN, vd.Chain)
		}
		w.endNest(v)
		w.endNest(d)
	case len(e.Data) > 0:
		d := w.nest(unix.NFTA_SET_ELEM_DATA)
		w.attr(unix.NFTA_DATA_VALUE, e.Data)
		w.endNest(d)
	}
	if e.Comment != "" {
		w.attr(unix.NFTA_SET_ELEM_USERDATA, userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, e.Comment))
	}
	w.endNest(item)
	return nil
}

// libCapture collects the messages google/nftables builds, on a
// connection without a socket: its Flush hands the batch to a test dial
// function that keeps the messages and acknowledges each.
type libCapture struct {
	nc   *nftables.Conn
	msgs []netlink.Message
}

func newLibCapture() *libCapture {
	lc := &libCapture{}
	ack := netlink.Message{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4+unix.NLMSG_HDRLEN)}
	lc.nc, _ = nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			return []netlink.Message{ack}, nil // Flush waits for one ack per message
		}
		if len(req) >= 2 {
			lc.msgs = append(lc.msgs, req[1:len(req)-1]...) // less the batch begin and end
		}
		return nil, nil
	}))
	return lc
}

// drainTo writes the messages queued so far into w, without NLM_F_ACK:
// only failures are answered (see [rawConn.batchResult]).
func (lc *libCapture) drainTo(w *msgWriter) error {
	if err := lc.nc.Flush(); err != nil {
		return err
	}
	for _, m := range lc.msgs {
		if len(m.Data) < 4 {
			return fmt.Errorf("google/nftables built a message without nfgenmsg (type %#x)", m.Header.Type)
		}
		start := w.nfMsg(uint16(m.Header.Type), uint16(m.Header.Flags&^netlink.Acknowledge), m.Data[0], 0)
		// nfMsg wrote a fresh nfgenmsg: replace it with the message's own.
		copy(w.b[start+unix.NLMSG_HDRLEN:], m.Data[:4])
		w.b = append(w.b, m.Data[4:]...)
		w.end(start)
	}
	lc.msgs = lc.msgs[:0]
	return nil
}
