package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// maxCommentLen is the kernel's limit on a comment (NFT_USERDATA_MAXLEN is
// 256 bytes including type, length and NUL).
const maxCommentLen = 250

// Tx collects the changes of one operation. Nothing reaches the kernel
// until [Conn.Apply]. The first invalid change is remembered and returned
// by Apply, which then sends nothing.
type Tx struct {
	ops []op
	err error
	enc map[int][]byte // canonical expressions of added rules, by op
}

type opKind uint8

const (
	opAddTable opKind = iota + 1
	opDelTable
	opAddChain
	opFlushChain
	opDelChain
	opAddRule
	opInsertRule
	opDelRule
	opAddSet
	opDelSet
	opFlushSet
	opAddElems
	opDelElems
)

type op struct {
	kind   opKind
	fam    Family
	chain  Chain
	rule   Rule
	handle uint64
	set    Set
	// elems are the elements of opAddElems and opDelElems, encoded once
	// when they are queued (see [encodeElements]).
	elems []ElementState
}

// Len returns the number of queued changes.
func (tx *Tx) Len() int { return len(tx.ops) }

func (tx *Tx) add(o op) {
	if tx.ops == nil {
		tx.ops = make([]op, 0, 8) // a publication has up to 8 changes
	}
	tx.ops = append(tx.ops, o)
}

// AddTable creates dnft's table of the family if it does not exist.
func (tx *Tx) AddTable(f Family) { tx.add(op{kind: opAddTable, fam: f}) }

// DeleteTable deletes dnft's table of the family with everything in it.
func (tx *Tx) DeleteTable(f Family) { tx.add(op{kind: opDelTable, fam: f}) }

// AddChain creates a chain if it does not exist.
func (tx *Tx) AddChain(c Chain) { tx.add(op{kind: opAddChain, fam: c.Family, chain: c}) }

// FlushChain removes every rule of a chain.
func (tx *Tx) FlushChain(f Family, name string) {
	tx.add(op{kind: opFlushChain, fam: f, chain: Chain{Family: f, Name: name}})
}

// DeleteChain removes a chain (flush it first in the same transaction).
func (tx *Tx) DeleteChain(f Family, name string) {
	tx.add(op{kind: opDelChain, fam: f, chain: Chain{Family: f, Name: name}})
}

// AddRule appends a rule to its chain.
func (tx *Tx) AddRule(r Rule) { tx.add(op{kind: opAddRule, fam: r.Family, rule: r}) }

// InsertRule prepends a rule to its chain.
func (tx *Tx) InsertRule(r Rule) { tx.add(op{kind: opInsertRule, fam: r.Family, rule: r}) }

// InsertRuleBefore inserts a rule before the rule with the given handle
// (read it with [Conn.ReadChain]).
func (tx *Tx) InsertRuleBefore(r Rule, handle uint64) {
	tx.add(op{kind: opInsertRule, fam: r.Family, rule: r, handle: handle})
}

// AddRuleAfter adds a rule after the rule with the given handle.
func (tx *Tx) AddRuleAfter(r Rule, handle uint64) {
	tx.add(op{kind: opAddRule, fam: r.Family, rule: r, handle: handle})
}

// DeleteRule deletes the rule with the given handle.
func (tx *Tx) DeleteRule(f Family, chain string, handle uint64) {
	tx.add(op{kind: opDelRule, fam: f, rule: Rule{Family: f, Chain: chain}, handle: handle})
}

// AddSet creates a set or map if it does not exist.
func (tx *Tx) AddSet(s Set) { tx.add(op{kind: opAddSet, fam: s.Family, set: s}) }

// DeleteSet deletes a set or map.
func (tx *Tx) DeleteSet(s Set) { tx.add(op{kind: opDelSet, fam: s.Family, set: s}) }

// FlushSet removes every element of a set.
func (tx *Tx) FlushSet(s Set) { tx.add(op{kind: opFlushSet, fam: s.Family, set: s}) }

// AddElements adds elements to a set or map (existing equal keys are left
// alone, as `nft add element` does).
func (tx *Tx) AddElements(s Set, elems ...Element) {
	tx.addElems(opAddElems, s, elems)
}

// DeleteElements removes elements by key.
func (tx *Tx) DeleteElements(s Set, elems ...Element) {
	tx.addElems(opDelElems, s, elems)
}

// addElems queues a change of elements, encoded now: a transaction holds
// their keys and data as the kernel takes them, not the values they were
// built from (a third of the memory at tens of thousands of elements). An
// element that cannot be encoded is the transaction's error.
func (tx *Tx) addElems(kind opKind, s Set, elems []Element) {
	if len(elems) == 0 {
		return
	}
	enc, err := encodeElements(s, elems)
	if err != nil {
		if tx.err == nil {
			tx.err = fmt.Errorf("change %d: set %s: %w", len(tx.ops)+1, s.Name, err)
		}
		return
	}
	tx.add(op{kind: kind, fam: s.Family, set: s, elems: enc})
}

// Append appends the changes of another transaction.
func (tx *Tx) Append(o *Tx) {
	if tx.err == nil {
		tx.err = o.err
	}
	tx.ops = append(tx.ops, o.ops...)
}

func table(f Family) *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamily(f)}
}

func libChain(t *nftables.Table, c Chain) *nftables.Chain {
	lc := &nftables.Chain{Table: t, Name: c.Name}
	if c.Base != nil {
		hook := nftables.ChainHook(c.Base.Hook)
		prio := nftables.ChainPriority(c.Base.Priority)
		pol := nftables.ChainPolicyAccept
		if c.Base.Policy == PolicyDrop {
			pol = nftables.ChainPolicyDrop
		}
		lc.Hooknum, lc.Priority, lc.Type, lc.Policy = &hook, &prio, nftables.ChainType(c.Base.Type), &pol
	}
	return lc
}

func libRule(t *nftables.Table, r Rule, setIDs map[string]uint32) (*nftables.Rule, error) {
	exprs, err := encodeRule(r)
	if err != nil {
		return nil, err
	}
	for _, e := range exprs {
		if l, ok := e.(*expr.Lookup); ok {
			l.SetID = setIDs[l.SetName+"/"+r.Family.String()]
		}
	}
	lr := &nftables.Rule{Table: t, Chain: &nftables.Chain{Name: r.Chain, Table: t}, Exprs: exprs}
	if r.Comment != "" {
		if len(r.Comment) > maxCommentLen {
			return nil, fmt.Errorf("comment of %d bytes exceeds %d", len(r.Comment), maxCommentLen)
		}
		lr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
	}
	return lr, nil
}

func libSet(t *nftables.Table, s Set) (*nftables.Set, error) {
	kt, err := keyType(s.Family, s.Key)
	if err != nil {
		return nil, fmt.Errorf("set %s: %w", s.Name, err)
	}
	ls := &nftables.Set{
		Table: t, Name: s.Name, KeyType: kt, Concatenation: len(s.Key) > 1,
		Interval: s.Interval, Counter: s.Counter, Comment: s.Comment,
	}
	if len(s.Key) == 1 && (s.Key[0] == FieldIIFName || s.Key[0] == FieldOIFName) {
		// nft treats interface names as host-endian strings.
		ls.KeyByteOrder = binaryutil.NativeEndian
	}
	switch s.Data {
	case DataVerdict:
		ls.IsMap, ls.DataType = true, nftables.TypeVerdict
	case DataAddrPort:
		ls.IsMap = true
		ls.DataType, err = keyType(s.Family, []Field{FieldDaddr, FieldDport})
		if err != nil {
			return nil, err
		}
	}
	return ls, nil
}

// MaxElementComment is the longest comment of a set element, in bytes,
// as nft allows it (NFTNL_UDATA_COMMENT_MAXLEN).
const MaxElementComment = 128
