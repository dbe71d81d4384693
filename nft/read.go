package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// RuleState is a rule as read back from the kernel.
type RuleState struct {
	Handle  uint64
	Comment string
	Packets uint64
	Bytes   uint64
	// Xt is true when the rule holds an iptables-compat (xt) expression.
	Xt bool
	// Exprs is the rule's NFTA_RULE_EXPRESSIONS as the kernel dumped it.
	Exprs []byte
}

// ChainState is a chain as read back from the kernel, rules in order.
type ChainState struct {
	Name  string
	Base  *Base
	Rules []RuleState
}

// ElementState is a set or map element as read back from the kernel.
type ElementState struct {
	Key     []byte
	Data    []byte
	Verdict *Verdict
	Comment string
	Packets uint64
	Bytes   uint64
	// IntervalEnd marks the closing element of an interval.
	IntervalEnd bool
}

// SetState is a set or map as read back from the kernel.
type SetState struct {
	Name     string
	Comment  string
	Elements []ElementState
}

// TableState is dnft's table of one family as read back from the kernel.
type TableState struct {
	Family Family
	Chains []ChainState
	Sets   []SetState
}

// Chain returns the named chain, or nil.
func (t *TableState) Chain(name string) *ChainState {
	for i := range t.Chains {
		if t.Chains[i].Name == name {
			return &t.Chains[i]
		}
	}
	return nil
}

// Set returns the named set, or nil.
func (t *TableState) Set(name string) *SetState {
	for i := range t.Sets {
		if t.Sets[i].Name == name {
			return &t.Sets[i]
		}
	}
	return nil
}

// TableExists reports whether dnft's table of the family exists.
func (c *Conn) TableExists(ctx context.Context, f Family) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tables, err := c.nc.ListTablesOfFamily(nftables.TableFamily(f))
	if err != nil {
		return false, c.readErr("list tables", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

func (c *Conn) readErr(what string, err error) error {
	return errors.Join(fmt.Errorf("%s in %s: %w", what, c.nsPath, err), c.redial())
}

// ReadSet reads one set or map with its elements. ok is false when it does
// not exist.
func (c *Conn) ReadSet(ctx context.Context, f Family, name string) (s SetState, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return s, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ls, err := c.nc.GetSetByName(table(f), name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "no such file") {
			return s, false, c.redial()
		}
		return s, false, c.readErr("read set "+name, err)
	}
	s, err = c.readSet(ls)
	return s, err == nil, err
}

func (c *Conn) readSet(ls *nftables.Set) (SetState, error) {
	s := SetState{Name: ls.Name, Comment: ls.Comment}
	elems, err := c.nc.GetSetElements(ls)
	if err != nil {
		return s, c.readErr("read elements of "+ls.Name, err)
	}
	for _, e := range elems {
		es := ElementState{Key: e.Key, Data: e.Val, Comment: e.Comment, IntervalEnd: e.IntervalEnd}
		if e.Counter != nil {
			es.Packets, es.Bytes = e.Counter.Packets, e.Counter.Bytes
		}
		if e.VerdictData != nil {
			es.Verdict = fromLibVerdict(e.VerdictData)
		}
		s.Elements = append(s.Elements, es)
	}
	return s, nil
}

func fromLibVerdict(v *expr.Verdict) *Verdict {
	switch v.Kind {
	case expr.VerdictAccept:
		return &Verdict{Kind: Accept}
	case expr.VerdictDrop:
		return &Verdict{Kind: Drop}
	case expr.VerdictReturn:
		return &Verdict{Kind: Return}
	case expr.VerdictJump:
		return &Verdict{Kind: Jump, Chain: v.Chain}
	case expr.VerdictGoto:
		return &Verdict{Kind: Goto, Chain: v.Chain}
	}
	return nil
}

// ReadChain reads the rules of one chain. ok is false when it does not exist.
func (c *Conn) ReadChain(ctx context.Context, f Family, name string) (cs ChainState, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return cs, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lc, err := c.nc.ListChain(table(f), name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "no such file") {
			return cs, false, c.redial()
		}
		return cs, false, c.readErr("read chain "+name, err)
	}
	cs, err = c.readChain(f, lc)
	return cs, err == nil, err
}

func (c *Conn) readChain(f Family, lc *nftables.Chain) (ChainState, error) {
	cs := ChainState{Name: lc.Name}
	if lc.Hooknum != nil && lc.Priority != nil {
		cs.Base = &Base{Type: ChainType(lc.Type), Hook: Hook(*lc.Hooknum), Priority: int32(*lc.Priority)}
		if lc.Policy != nil && *lc.Policy == nftables.ChainPolicyDrop {
			cs.Base.Policy = PolicyDrop
		}
	}
	rules, err := c.ruleStates(f, lc.Name)
	if err != nil {
		return cs, err
	}
	cs.Rules = rules
	return cs, nil
}

// ruleStates dumps the rules of one chain and reads their handle,
// comment and counter straight from the netlink attributes (c.mu held).
// google/nftables v0.3.0 is not used for this: it fails on a whole chain
// when one rule holds an expression it decodes wrongly (ct original
// tuples, whose direction the kernel dumps as one byte).
func (c *Conn) ruleStates(f Family, chain string) ([]RuleState, error) {
	if c.sock == nil {
		return nil, errors.New("nft: connection closed")
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, TableName)
	ae.String(unix.NFTA_RULE_CHAIN, chain)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.sock.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{byte(f), unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, c.readErr("read rules of "+chain, err)
	}
	var out []RuleState
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		rs, name, err := ruleState(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("read rules of %s: %w", chain, err)
		}
		if name != chain {
			continue // some kernels dump every chain (google/nftables#114)
		}
		out = append(out, rs)
	}
	return out, nil
}

// ruleState reads one NEWRULE message body: the chain's name, the rule's
// handle, comment, counter and whether it holds xt expressions.
func ruleState(b []byte) (RuleState, string, error) {
	var rs RuleState
	var chain string
	attrs, err := parseAttrs(b)
	if err != nil {
		return rs, "", err
	}
	for _, a := range attrs {
		switch a.typ {
		case unix.NFTA_RULE_CHAIN:
			chain = cString(a.data)
		case unix.NFTA_RULE_HANDLE:
			if len(a.data) == 8 {
				rs.Handle = binary.BigEndian.Uint64(a.data)
			}
		case unix.NFTA_RULE_USERDATA:
			rs.Comment, _ = userdata.GetString(a.data, userdata.TypeComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			rs.Exprs = a.data
			els, err := parseAttrs(a.data)
			if err != nil {
				return rs, "", err
			}
			for _, el := range els {
				name, data, err := exprNameData(el.data)
				if err != nil {
					return rs, "", err
				}
				switch name {
				case "counter":
					var ctr expr.Counter
					if expr.Unmarshal(0, data, &ctr) == nil {
						rs.Packets, rs.Bytes = ctr.Packets, ctr.Bytes
					}
				case "match", "target":
					rs.Xt = true
				}
			}
		}
	}
	return rs, chain, nil
}

// ReadTable reads dnft's whole table of a family: chains with rules, sets
// with elements. ok is false when the table does not exist. This is a full
// listing: use it for views and checks, not on the hot path.
func (c *Conn) ReadTable(ctx context.Context, f Family) (ts TableState, ok bool, err error) {
	ts.Family = f
	exists, err := c.TableExists(ctx, f)
	if err != nil || !exists {
		return ts, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	chains, err := c.nc.ListChainsOfTableFamily(nftables.TableFamily(f))
	if err != nil {
		return ts, false, c.readErr("list chains", err)
	}
	for _, lc := range chains {
		if lc.Table == nil || lc.Table.Name != TableName {
			continue
		}
		cs, err := c.readChain(f, lc)
		if err != nil {
			return ts, false, err
		}
		ts.Chains = append(ts.Chains, cs)
	}
	sets, err := c.nc.GetSets(table(f))
	if err != nil {
		return ts, false, c.readErr("list sets", err)
	}
	for _, ls := range sets {
		ss, err := c.readSet(ls)
		if err != nil {
			return ts, false, err
		}
		ts.Sets = append(ts.Sets, ss)
	}
	return ts, true, nil
}

// DecodeKey splits an element key into values for the set's fields.
func DecodeKey(f Family, fields []Field, key []byte) ([]Value, error) {
	var out []Value
	for _, fl := range fields {
		n := int(fieldLen(f, fl))
		if len(fields) > 1 {
			n = int(padded(uint32(n)))
		}
		if len(key) < int(fieldLen(f, fl)) {
			return nil, fmt.Errorf("key too short for %d fields", len(fields))
		}
		b := key[:fieldLen(f, fl)]
		var v Value
		switch fl {
		case FieldIIFName, FieldOIFName:
			v.Name = strings.TrimRight(string(b), "\x00")
		case FieldSaddr, FieldDaddr:
			v.Addr, _ = netip.AddrFromSlice(b)
		case FieldL4Proto:
			v.Proto = b[0]
		default:
			v.Port = binary.BigEndian.Uint16(b)
		}
		out = append(out, v)
		key = key[min(n, len(key)):]
	}
	return out, nil
}

// DecodeTarget decodes the data of a DataAddrPort map element.
func DecodeTarget(f Family, data []byte) (netip.AddrPort, error) {
	v, err := DecodeKey(f, []Field{FieldDaddr, FieldDport}, data)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(v[0].Addr, v[1].Port), nil
}
