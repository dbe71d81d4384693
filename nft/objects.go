package nft

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"slices"
)

// VirtualHandle is set in the handles that [Tx.Objects] gives the rules
// a transaction adds: they are placeholders, not the kernel's handles
// (which are small numbers). Within the same transaction they can be
// given to [Tx.InsertRuleBefore] and [Tx.AddRuleAfter]; such a
// transaction must be sent through [Tx.Flatten].
const VirtualHandle uint64 = 1 << 62

// Objects returns what dnft's tables hold once tx is applied on top of
// base, the tables as [Conn.ReadTable] returned them (none for an empty
// namespace), without sending anything: chains in creation order with
// their rules (handle and comment) in order, and sets in creation order
// with their elements (key, data, verdict, comment; no counters). Rules
// added by tx get handles with [VirtualHandle] set.
//
// It follows the kernel's rules for a batch and fails where the kernel
// would refuse it: deleting or flushing a missing object, a position
// that names no rule, a chain deleted while it holds rules. It does not
// check references (jumps to missing chains, lookups of missing sets).
func (tx *Tx) Objects(base []TableState) ([]TableState, error) {
	return tx.objects(base, false)
}

// TakeObjects is [Tx.Objects] with no base for a transaction that is
// not used again: the simulation takes the elements over change by
// change, so that tx and the tables it leaves never hold them both (at
// 65,000 bindings, 30 MB). tx is empty afterwards.
func (tx *Tx) TakeObjects() ([]TableState, error) {
	defer func() { tx.ops, tx.enc = nil, nil }()
	return tx.objects(nil, true)
}

// objects is [Tx.Objects]; with take, each change's elements are
// dropped from tx once simulated.
func (tx *Tx) objects(base []TableState, take bool) ([]TableState, error) {
	s, err := simulate(base, tx, take)
	if err != nil {
		return nil, err
	}
	out := make([]TableState, 0, len(s.tables))
	for _, t := range s.tables {
		ts := TableState{Family: t.fam}
		for _, c := range t.chains {
			cs := ChainState{Name: c.name, Base: c.base}
			for _, r := range c.rules {
				rs := r.state
				if r.rule != nil {
					rs = RuleState{Handle: r.handle, Comment: r.comment}
					rs.Exprs, err = tx.ruleExprs(r.op)
					if err != nil {
						return nil, err
					}
				}
				cs.Rules = append(cs.Rules, rs)
			}
			ts.Chains = append(ts.Chains, cs)
		}
		for _, st := range t.sets {
			ts.Sets = append(ts.Sets, SetState{Name: st.name, Comment: st.comment, Elements: st.collect(take)})
		}
		out = append(out, ts)
	}
	return out, nil
}

// SetSpecs returns the definitions of the sets and maps tx adds, or adds
// or deletes elements of, by family and name.
func (tx *Tx) SetSpecs() map[Family]map[string]Set {
	out := map[Family]map[string]Set{}
	for _, o := range tx.ops {
		switch o.kind {
		case opAddSet, opAddElems, opDelElems:
			if out[o.fam] == nil {
				out[o.fam] = map[string]Set{}
			}
			out[o.fam][o.set.Name] = o.set
		}
	}
	return out
}

// Flatten returns a transaction that builds, from no dnft tables, what tx
// leaves in them (see [Tx.Objects] with no base), creating every object
// once: tables, then sets, chains, the final elements of each set, and
// the final rules of each chain, appended in order. Creation order of
// chains and of sets is kept, so `nft list` prints the result like the
// original. Rules added at virtual positions land where they belong.
// Elements added and deleted again, and rules rewritten, cost nothing.
func (tx *Tx) Flatten() (*Tx, error) {
	s, err := simulate(nil, tx, false)
	if err != nil {
		return nil, err
	}
	out := &Tx{}
	for _, t := range s.tables {
		out.AddTable(t.fam)
		for _, st := range t.sets {
			out.AddSet(*st.spec)
		}
		for _, c := range t.chains {
			out.AddChain(Chain{Family: t.fam, Name: c.name, Base: c.base})
		}
		for _, st := range t.sets {
			if st.live() > 0 {
				out.add(op{kind: opAddElems, fam: t.fam, set: *st.spec, elems: st.collect(false)})
			}
		}
		for _, c := range t.chains {
			for _, r := range c.rules {
				out.AddRule(*r.rule)
			}
		}
	}
	return out, nil
}

// sim is the state of dnft's tables during a simulation.
type sim struct {
	tables []*simTable
	// adds counts, by family and set, the elements the transaction adds.
	adds map[Family]map[string]int
	// take is set when the sets take the transaction's elements over.
	take bool
}

type simTable struct {
	fam    Family
	chains []*simChain
	sets   []*simSet
	adds   map[string]int // the sim's adds of the family
	take   bool           // the sim's take
}

type simChain struct {
	name  string
	base  *Base
	rules []simRule
}

type simRule struct {
	handle  uint64
	comment string
	state   RuleState // a rule of the base state
	rule    *Rule     // nil for a rule of the base state
	op      int       // the index of the op that added rule
}

// simSet is a set during a simulation. Its elements are kept in the
// order they were added; a deleted element is marked dead, and index
// finds the live element of a key, so that every change costs the same
// whatever the size of the set. The elements are held in segments: the
// set's own, appended to; in a simulation that takes the transaction's
// elements over (see [Tx.TakeObjects]), the arrays of the changes that
// added them, as they are, so that they are never copied before the
// result is (at 65,000 bindings, 30 MB less at the peak).
type simSet struct {
	name, comment string
	spec          *Set // nil for a set of the base state
	// segs hold the elements in order; starts[k] is the position of
	// segs[k][0] (segments are never empty), n the number of elements,
	// dead ones included. own is true when the last segment is the
	// set's, to append to; room is the capacity of the next one.
	segs   [][]ElementState
	starts []int
	n      int
	own    bool
	room   int
	// dead marks deleted elements, skipped by every reader; nil until
	// the first deletion.
	dead  []bool
	ndead int
	// index holds the position of every live element under the hash of
	// its key (see [simSet.hash]), but for an element whose hash another
	// live element held when it was added: clash holds it, by ID (see
	// [elemID]). 12 bytes per element, no string for each.
	index    map[uint64]int32
	clash    map[string]int32
	seed     maphash.Seed
	reserved bool
}

// live returns the number of elements that are not dead.
func (st *simSet) live() int { return st.n - st.ndead }

// isDead reports whether element j was deleted.
func (st *simSet) isDead(j int) bool { return st.dead != nil && st.dead[j] }

// at returns element j.
func (st *simSet) at(j int) ElementState {
	k, found := slices.BinarySearch(st.starts, j)
	if !found {
		k--
	}
	return st.segs[k][j-st.starts[k]]
}

// collect returns the live elements in order: the only segment as it
// is when nothing is dead, else a copy; with release, each segment is
// dropped once copied.
func (st *simSet) collect(release bool) []ElementState {
	if len(st.segs) == 1 && st.ndead == 0 {
		return st.segs[0]
	}
	out := make([]ElementState, 0, st.live())
	for k, seg := range st.segs {
		for i, e := range seg {
			if !st.isDead(st.starts[k] + i) {
				out = append(out, e)
			}
		}
		if release {
			st.segs[k] = nil
		}
	}
	return out
}

// segment appends a segment of elements, all marked live.
func (st *simSet) segment(es []ElementState, own bool) {
	st.segs = append(st.segs, es)
	st.starts = append(st.starts, st.n)
	st.n += len(es)
	st.own = own
	if st.dead != nil {
		st.dead = append(st.dead, make([]bool, len(es))...)
	}
}

// hash hashes an element's key and interval end flag.
func (st *simSet) hash(e ElementState) uint64 {
	h := maphash.Bytes(st.seed, e.Key)
	if e.IntervalEnd {
		h = ^h
	}
	return h
}

// sameID reports whether two elements have the same key and interval
// end flag.
func sameID(a, b ElementState) bool {
	return a.IntervalEnd == b.IntervalEnd && bytes.Equal(a.Key, b.Key)
}

// find returns the position of the live element with e's key.
func (st *simSet) find(e ElementState) (int, bool) {
	st.reserve(0)
	if j, ok := st.index[st.hash(e)]; ok && sameID(st.at(int(j)), e) {
		return int(j), true
	}
	j, ok := st.clash[elemID(e)]
	return int(j), ok
}

// put indexes the live element j.
func (st *simSet) put(j int) {
	e := st.at(j)
	h := st.hash(e)
	if _, taken := st.index[h]; !taken {
		st.index[h] = int32(j)
		return
	}
	if st.clash == nil {
		st.clash = map[string]int32{}
	}
	st.clash[elemID(e)] = int32(j)
}

// reserve makes room for n more elements (one allocation of the set's
// next segment and of its index, not the doubling of many appends) and
// builds the index.
func (st *simSet) reserve(n int) {
	st.room = max(st.room, n)
	if st.index == nil {
		st.seed = maphash.MakeSeed()
		st.index = make(map[uint64]int32, st.n+n)
		for j := range st.n {
			if !st.isDead(j) {
				st.put(j)
			}
		}
	}
}

// add appends e as a live element, unless one with its key is.
func (st *simSet) add(e ElementState) {
	if _, ok := st.find(e); ok {
		return
	}
	if last := len(st.segs) - 1; st.own && last >= 0 {
		st.segs[last] = append(st.segs[last], e)
		st.n++
		if st.dead != nil {
			st.dead = append(st.dead, false)
		}
	} else {
		st.segment(append(make([]ElementState, 0, max(st.room, 1)), e), true)
	}
	st.room = 0
	st.put(st.n - 1)
}

// adopt appends the elements of an addition as a segment, taking es
// over: an element whose key is there already (or earlier in es) is
// marked dead, as `add element` leaves the existing one alone.
func (st *simSet) adopt(es []ElementState) {
	st.reserve(0)
	from := st.n
	st.segment(es[:len(es):len(es)], false)
	for i, e := range es {
		if _, ok := st.find(e); ok {
			st.markDead(from + i)
			continue
		}
		st.put(from + i)
	}
}

// indexed reports whether index holds element j under h.
func (st *simSet) indexed(h uint64, j int) bool {
	i, ok := st.index[h]
	return ok && int(i) == j
}

// removeAt marks the element j dead and forgets its key; false if it is
// dead already.
func (st *simSet) removeAt(j int) bool {
	if st.isDead(j) {
		return false
	}
	e := st.at(j)
	if h := st.hash(e); st.indexed(h, j) {
		delete(st.index, h)
	} else {
		delete(st.clash, elemID(e))
	}
	st.markDead(j)
	return true
}

// markDead marks the element j dead.
func (st *simSet) markDead(j int) {
	if st.dead == nil {
		st.dead = make([]bool, st.n)
	}
	st.dead[j] = true
	st.ndead++
}

// flush removes every element.
func (st *simSet) flush() {
	*st = simSet{name: st.name, comment: st.comment, spec: st.spec}
}

// elemID identifies an element by key (and interval end flag).
func elemID(e ElementState) string {
	if e.IntervalEnd {
		return "end/" + string(e.Key)
	}
	return string(e.Key)
}

// simulate applies tx to base; with take, each change's elements are
// dropped from tx once applied.
func simulate(base []TableState, tx *Tx, take bool) (*sim, error) {
	if tx.err != nil {
		return nil, tx.err
	}
	s := &sim{adds: map[Family]map[string]int{}, take: take}
	for _, o := range tx.ops {
		if o.kind == opAddElems {
			if s.adds[o.fam] == nil {
				s.adds[o.fam] = map[string]int{}
			}
			s.adds[o.fam][o.set.Name] += len(o.elems)
		}
	}
	for _, ts := range base {
		t := &simTable{fam: ts.Family, adds: s.adds[ts.Family], take: take}
		for _, cs := range ts.Chains {
			c := &simChain{name: cs.Name, base: cs.Base}
			for _, r := range cs.Rules {
				r.Packets, r.Bytes = 0, 0
				c.rules = append(c.rules, simRule{handle: r.Handle, comment: r.Comment, state: r})
			}
			t.chains = append(t.chains, c)
		}
		for _, ss := range ts.Sets {
			st := &simSet{name: ss.Name, comment: ss.Comment}
			if len(ss.Elements) > 0 {
				elems := make([]ElementState, len(ss.Elements))
				for j, e := range ss.Elements {
					e.Packets, e.Bytes = 0, 0
					elems[j] = e
				}
				st.segment(elems, true)
			}
			t.sets = append(t.sets, st)
		}
		s.tables = append(s.tables, t)
	}
	for i, o := range tx.ops {
		if err := s.apply(i, o); err != nil {
			return nil, fmt.Errorf("change %d of %d: %w", i+1, len(tx.ops), err)
		}
		if take {
			tx.ops[i].elems = nil
		}
	}
	return s, nil
}

func (s *sim) table(f Family) (*simTable, int) {
	for i, t := range s.tables {
		if t.fam == f {
			return t, i
		}
	}
	return nil, -1
}

func (t *simTable) chain(name string) (*simChain, int) {
	for i, c := range t.chains {
		if c.name == name {
			return c, i
		}
	}
	return nil, -1
}

func (t *simTable) set(name string) (*simSet, int) {
	for i, st := range t.sets {
		if st.name == name {
			return st, i
		}
	}
	return nil, -1
}

func (s *sim) apply(i int, o op) error {
	t, ti := s.table(o.fam)
	if o.kind == opAddTable {
		if t == nil {
			s.tables = append(s.tables, &simTable{fam: o.fam, adds: s.adds[o.fam], take: s.take})
		}
		return nil
	}
	if t == nil {
		return fmt.Errorf("%s table %s does not exist", o.fam, TableName)
	}
	switch o.kind {
	case opDelTable:
		s.tables = slices.Delete(s.tables, ti, ti+1)
	case opAddChain:
		if c, _ := t.chain(o.chain.Name); c == nil {
			t.chains = append(t.chains, &simChain{name: o.chain.Name, base: o.chain.Base})
		} else if c.base != nil && o.chain.Base != nil {
			c.base = o.chain.Base // adding a base chain again sets its policy
		}
	case opFlushChain, opDelChain:
		c, ci := t.chain(o.chain.Name)
		if c == nil {
			return fmt.Errorf("%s chain %s does not exist", o.fam, o.chain.Name)
		}
		if o.kind == opFlushChain {
			c.rules = nil
		} else if len(c.rules) > 0 {
			return fmt.Errorf("%s chain %s is deleted with %d rule(s) in it", o.fam, c.name, len(c.rules))
		} else {
			t.chains = slices.Delete(t.chains, ci, ci+1)
		}
	case opAddRule, opInsertRule, opDelRule:
		return t.applyRule(i, o)
	case opAddSet:
		if st, _ := t.set(o.set.Name); st == nil {
			spec := o.set
			t.sets = append(t.sets, &simSet{name: spec.Name, comment: spec.Comment, spec: &spec})
		}
	case opDelSet, opFlushSet:
		st, si := t.set(o.set.Name)
		if st == nil {
			return fmt.Errorf("%s set %s does not exist", o.fam, o.set.Name)
		}
		if o.kind == opFlushSet {
			st.flush()
		} else {
			t.sets = slices.Delete(t.sets, si, si+1)
		}
	case opAddElems, opDelElems:
		return t.applyElems(o)
	default:
		return fmt.Errorf("unknown op %d", o.kind)
	}
	return nil
}

func (t *simTable) applyRule(i int, o op) error {
	c, _ := t.chain(o.rule.Chain)
	if c == nil {
		return fmt.Errorf("%s chain %s does not exist", o.fam, o.rule.Chain)
	}
	pos := -1
	if o.handle != 0 {
		for j, r := range c.rules {
			if r.handle == o.handle {
				pos = j
			}
		}
		if pos < 0 {
			return fmt.Errorf("%s chain %s has no rule with handle %d", o.fam, c.name, o.handle)
		}
	}
	if o.kind == opDelRule {
		c.rules = slices.Delete(c.rules, pos, pos+1)
		return nil
	}
	r := o.rule
	nr := simRule{handle: VirtualHandle | uint64(i+1), comment: r.Comment, rule: &r, op: i}
	switch {
	case o.kind == opAddRule && pos < 0:
		pos = len(c.rules)
	case o.kind == opAddRule:
		pos++
	case pos < 0: // insert at the head
		pos = 0
	}
	c.rules = slices.Insert(c.rules, pos, nr)
	return nil
}

func (t *simTable) applyElems(o op) error {
	st, _ := t.set(o.set.Name)
	if st == nil {
		return fmt.Errorf("%s set %s does not exist", o.fam, o.set.Name)
	}
	// A batch refuses to delete an element it does not hold, and all of
	// a message's deletions see the set as it was before the message.
	var gone []int
	if o.kind != opDelElems && !st.reserved {
		// Room for every element the transaction adds to the set.
		st.reserve(t.adds[o.set.Name])
		st.reserved = true
	}
	if o.kind == opAddElems && t.take {
		st.adopt(o.elems)
		return nil
	}
	for _, es := range o.elems {
		if o.kind == opDelElems {
			j, ok := st.find(es)
			if !ok {
				return fmt.Errorf("%s set %s has no element %x", o.fam, o.set.Name, es.Key)
			}
			gone = append(gone, j)
			continue
		}
		st.add(es) // `add element` leaves an existing key alone
	}
	for _, j := range gone {
		if !st.removeAt(j) {
			return fmt.Errorf("%s set %s: element %x deleted twice", o.fam, o.set.Name, elemID(st.at(j)))
		}
	}
	return nil
}

// ruleExprs returns the canonical expressions of the rule that op i
// adds, encoded once per transaction.
func (tx *Tx) ruleExprs(i int) ([]byte, error) {
	if b, ok := tx.enc[i]; ok {
		return b, nil
	}
	b, err := RuleExprs(tx.ops[i].rule)
	if err != nil {
		return nil, fmt.Errorf("change %d of %d: %w", i+1, len(tx.ops), err)
	}
	if tx.enc == nil {
		tx.enc = map[int][]byte{}
	}
	tx.enc[i] = b
	return b, nil
}
