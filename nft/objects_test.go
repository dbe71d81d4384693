package nft

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func comments(c *ChainState) []string {
	var out []string
	for _, r := range c.Rules {
		out = append(out, r.Comment)
	}
	return out
}

// sampleTx builds a table the way several operations would, with rules
// placed relative to rules of the same transaction and elements added,
// rewritten and deleted.
func sampleTx(t *testing.T) (*Tx, Set, Set) {
	t.Helper()
	ports := Set{Family: IPv4, Name: "ports", Key: []Field{FieldL4Proto, FieldDport}, Counter: true}
	subnets := Set{Family: IPv4, Name: "subnets", Key: []Field{FieldSaddr}, Data: DataVerdict, Interval: true}
	rule := func(chain, comment string) Rule {
		return Rule{Family: IPv4, Chain: chain, Comment: comment, Action: Verdict{Kind: Accept}}
	}
	tx := &Tx{}
	tx.AddTable(IPv4)
	tx.AddSet(ports)
	tx.AddSet(subnets)
	tx.AddChain(Chain{Family: IPv4, Name: "fwd", Base: &Base{Type: TypeFilter, Hook: HookForward, Priority: PriorityFilter}})
	tx.AddChain(Chain{Family: IPv4, Name: "net1"})
	tx.AddRule(rule("fwd", "first"))
	tx.AddRule(rule("fwd", "anchor"))
	tx.AddRule(rule("fwd", "last"))
	tx.AddRule(rule("net1", "x"))
	tx.AddElements(ports, Element{Key: []Value{Proto(6), Port(80)}, Comment: "n=1"})
	tx.AddElements(ports, Element{Key: []Value{Proto(17), Port(53)}})
	tx.AddElements(subnets, Element{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Verdict: &Verdict{Kind: Jump, Chain: "net1"}})
	return tx, ports, subnets
}

func TestObjectsPositions(t *testing.T) {
	tx, ports, _ := sampleTx(t)
	objs, err := tx.Objects(nil)
	require.NoError(t, err)
	anchor := objs[0].Chain("fwd").Rules[1]
	require.Equal(t, "anchor", anchor.Comment)
	require.NotZero(t, anchor.Handle&VirtualHandle)

	rule := Rule{Family: IPv4, Chain: "fwd", Action: Verdict{Kind: Drop}}
	rule.Comment = "before-anchor"
	tx.InsertRuleBefore(rule, anchor.Handle)
	rule.Comment = "after-anchor"
	tx.AddRuleAfter(rule, anchor.Handle)
	rule.Comment = "head"
	tx.InsertRule(rule)
	// A reference count rewritten: delete and add in the same batch.
	tx.DeleteElements(ports, Element{Key: []Value{Proto(6), Port(80)}})
	tx.AddElements(ports, Element{Key: []Value{Proto(6), Port(80)}, Comment: "n=2"})
	tx.DeleteElements(ports, Element{Key: []Value{Proto(17), Port(53)}})

	objs, err = tx.Objects(nil)
	require.NoError(t, err)
	require.Equal(t, []string{"head", "first", "before-anchor", "anchor", "after-anchor", "last"}, comments(objs[0].Chain("fwd")))
	ps := objs[0].Set("ports")
	require.Len(t, ps.Elements, 1)
	require.Equal(t, "n=2", ps.Elements[0].Comment)
	require.Len(t, objs[0].Set("subnets").Elements, 2, "an interval is a start and an end element")

	// Flatten gives the same objects, each created once, rules appended.
	flat, err := tx.Flatten()
	require.NoError(t, err)
	fobjs, err := flat.Objects(nil)
	require.NoError(t, err)
	for i := range fobjs[0].Chains {
		require.Equal(t, comments(&objs[0].Chains[i]), comments(&fobjs[0].Chains[i]))
	}
	require.Equal(t, objs[0].Sets, fobjs[0].Sets)
	for _, o := range flat.ops {
		require.NotEqual(t, opInsertRule, o.kind)
		require.NotEqual(t, opDelElems, o.kind)
		require.Zero(t, o.handle)
	}

	// The kernel holds what Objects says.
	ctx := context.Background()
	c, err := Open(ctx, testNS(t))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Apply(ctx, flat))
	got, ok, err := c.ReadTable(ctx, IPv4)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, comments(objs[0].Chain("fwd")), comments(got.Chain("fwd")))
	require.Len(t, got.Set("ports").Elements, 1)
	require.Equal(t, "n=2", got.Set("ports").Elements[0].Comment)
	require.Len(t, got.Set("subnets").Elements, 2)
}

// TestObjectsOnBase: a transaction is simulated on top of what the kernel
// holds, with the kernel's handles.
func TestObjectsOnBase(t *testing.T) {
	base := []TableState{{Family: IPv4,
		Chains: []ChainState{{Name: "fwd", Rules: []RuleState{{Handle: 4, Comment: "a"}, {Handle: 7, Comment: "b"}}}},
		Sets:   []SetState{{Name: "s", Elements: []ElementState{{Key: []byte{6, 0, 0, 0, 0, 80, 0, 0}, Packets: 9}}}},
	}}
	s := Set{Family: IPv4, Name: "s", Key: []Field{FieldL4Proto, FieldDport}}
	tx := &Tx{}
	tx.InsertRuleBefore(Rule{Family: IPv4, Chain: "fwd", Comment: "mid", Action: Verdict{Kind: Accept}}, 7)
	tx.DeleteRule(IPv4, "fwd", 4)
	tx.DeleteElements(s, Element{Key: []Value{Proto(6), Port(80)}})
	objs, err := tx.Objects(base)
	require.NoError(t, err)
	require.Equal(t, []string{"mid", "b"}, comments(objs[0].Chain("fwd")))
	require.Empty(t, objs[0].Set("s").Elements)
	require.Equal(t, uint64(9), base[0].Sets[0].Elements[0].Packets, "the base is not changed")
}

// TestObjectsErrors: what the kernel would refuse, Objects refuses.
func TestObjectsErrors(t *testing.T) {
	s := Set{Family: IPv4, Name: "s", Key: []Field{FieldDport}}
	for _, tc := range []struct {
		name string
		tx   func(tx *Tx)
		want string
	}{
		{"no table", func(tx *Tx) { tx.AddChain(Chain{Family: IPv4, Name: "c"}) }, "table dnft does not exist"},
		{"delete missing chain", func(tx *Tx) { tx.AddTable(IPv4); tx.DeleteChain(IPv4, "c") }, "chain c does not exist"},
		{"delete busy chain", func(tx *Tx) {
			tx.AddTable(IPv4)
			tx.AddChain(Chain{Family: IPv4, Name: "c"})
			tx.AddRule(Rule{Family: IPv4, Chain: "c", Action: Verdict{Kind: Accept}})
			tx.DeleteChain(IPv4, "c")
		}, "deleted with 1 rule"},
		{"bad position", func(tx *Tx) {
			tx.AddTable(IPv4)
			tx.AddChain(Chain{Family: IPv4, Name: "c"})
			tx.InsertRuleBefore(Rule{Family: IPv4, Chain: "c", Action: Verdict{Kind: Accept}}, 99)
		}, "no rule with handle 99"},
		{"delete missing element", func(tx *Tx) {
			tx.AddTable(IPv4)
			tx.AddSet(s)
			tx.DeleteElements(s, Element{Key: []Value{Port(1)}})
		}, "has no element"},
		{"missing set", func(tx *Tx) { tx.AddTable(IPv4); tx.FlushSet(s) }, "set s does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := &Tx{}
			tc.tx(tx)
			_, err := tx.Objects(nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestSimSetClash forces two keys onto one hash: the second is found
// through clash, both are removed, and neither answers for the other.
func TestSimSetClash(t *testing.T) {
	st := &simSet{}
	st.reserve(0)
	a := ElementState{Key: []byte{1, 2, 3, 4}}
	b := ElementState{Key: []byte{5, 6, 7, 8}}
	end := ElementState{Key: a.Key, IntervalEnd: true}
	st.add(a)
	st.index[st.hash(b)] = 0 // b's hash now names a
	st.add(b)
	st.add(b) // already there: no second copy
	st.add(end)
	if st.n != 3 || len(st.clash) != 1 {
		t.Fatalf("elems %d, clash %d: want 3 and 1", st.n, len(st.clash))
	}
	for want, e := range []ElementState{a, b, end} {
		if j, ok := st.find(e); !ok || j != want {
			t.Errorf("find %x (end %v) = %d, %v; want %d", e.Key, e.IntervalEnd, j, ok, want)
		}
	}
	if !st.removeAt(1) || st.removeAt(1) {
		t.Fatal("removing b: want true, then false")
	}
	if _, ok := st.find(b); ok {
		t.Error("b found after its removal")
	}
	if j, ok := st.find(a); !ok || j != 0 {
		t.Errorf("a after b's removal: %d, %v", j, ok)
	}
	st.add(b)
	if j, ok := st.find(b); !ok || j != 3 || st.live() != 3 {
		t.Errorf("b added again: %d, %v, %d live", j, ok, st.live())
	}
}

// TestTakeObjects checks that a simulation taking the elements over
// (segments adopted as they are, duplicates marked dead) gives what
// Objects gives, and leaves the transaction empty.
func TestTakeObjects(t *testing.T) {
	build := func() *Tx {
		tx, s, _ := sampleTx(t)
		tx.AddElements(s, Element{Key: []Value{Proto(6), Port(1)}, Comment: "a"}, Element{Key: []Value{Proto(6), Port(2)}, Comment: "b"})
		// 2 again (the first copy stays), 3 twice in one change.
		tx.AddElements(s, Element{Key: []Value{Proto(6), Port(2)}, Comment: "b2"}, Element{Key: []Value{Proto(6), Port(3)}, Comment: "c"},
			Element{Key: []Value{Proto(6), Port(3)}, Comment: "c2"})
		tx.DeleteElements(s, Element{Key: []Value{Proto(6), Port(1)}})
		tx.AddElements(s, Element{Key: []Value{Proto(6), Port(1)}, Comment: "a2"})
		return tx
	}
	want, err := build().Objects(nil)
	require.NoError(t, err)
	tx := build()
	got, err := tx.TakeObjects()
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Zero(t, tx.Len())
	var comments []string
	for _, e := range got[0].Set("ports").Elements {
		comments = append(comments, e.Comment)
	}
	require.Equal(t, []string{"n=1", "", "b", "c", "a2"}, comments)
}
