package dnft

import (
	"testing"

	"github.com/dnft/dnft/nft"
	"github.com/stretchr/testify/require"
)

func TestCompareTables(t *testing.T) {
	ports := nft.Set{Family: nft.IPv4, Name: "ports", Key: []nft.Field{nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}}
	key := []byte{172, 17, 0, 2, 6, 0, 0, 0, 0, 80, 0, 0}
	other := []byte{172, 17, 0, 3, 17, 0, 0, 0, 0, 53, 0, 0}
	jump := func(c string) *nft.Verdict { return &nft.Verdict{Kind: nft.Jump, Chain: c} }
	base := &nft.Base{Type: nft.TypeFilter, Hook: nft.HookForward}
	// Canonical expressions of rules, as the kernel reads them back.
	exprs := func(a nft.Action) []byte {
		b, err := nft.RuleExprs(nft.Rule{Family: nft.IPv4, Chain: "filter-FORWARD", Action: a})
		require.NoError(t, err)
		return b
	}
	jumpUser, vmap := exprs(nft.Verdict{Kind: nft.Jump, Chain: "DOCKER-USER"}), exprs(nft.VMap{Fields: []nft.Field{nft.FieldOIFName}, Map: "fwd"})
	accept := exprs(nft.Verdict{Kind: nft.Accept})
	want := func() nft.TableState {
		return nft.TableState{Family: nft.IPv4,
			Chains: []nft.ChainState{
				{Name: "filter-FORWARD", Base: base, Rules: []nft.RuleState{{Comment: "DOCKER-USER", Exprs: jumpUser}, {Comment: "DOCKER", Exprs: vmap}}},
				{Name: "DOCKER-USER"},
			},
			Sets: []nft.SetState{
				{Name: "ports", Elements: []nft.ElementState{{Key: key, Comment: "n=1"}}},
				{Name: "fwd", Elements: []nft.ElementState{{Key: []byte("br0"), Verdict: jump("DOCKER__br0")}}},
			}}
	}
	specs := map[nft.Family]map[string]nft.Set{nft.IPv4: {"ports": ports}}
	for _, tc := range []struct {
		name string
		have func(*nft.TableState) []nft.TableState
		want []string
	}{
		{"same", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Rules[0].Handle = 3
			t.Chains[1].Rules = []nft.RuleState{{Comment: "the operator's"}} // never drift
			t.Sets[0].Elements[0].Packets = 5
			return []nft.TableState{*t}
		}, nil},
		{"table gone", func(*nft.TableState) []nft.TableState { return nil }, []string{"ip table dnft: missing"}},
		{"foreign table", func(t *nft.TableState) []nft.TableState {
			return []nft.TableState{*t, {Family: nft.IPv6}}
		}, []string{"ip6 table dnft: not part of dnft's state"}},
		{"chain gone", func(t *nft.TableState) []nft.TableState {
			t.Chains = t.Chains[:1]
			return []nft.TableState{*t}
		}, []string{"ip chain DOCKER-USER: missing"}},
		{"extra chain", func(t *nft.TableState) []nft.TableState {
			t.Chains = append(t.Chains, nft.ChainState{Name: "mine"})
			return []nft.TableState{*t}
		}, []string{"ip chain mine: not dnft's"}},
		{"base changed", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Base = &nft.Base{Type: nft.TypeFilter, Hook: nft.HookForward, Priority: 10}
			return []nft.TableState{*t}
		}, []string{"ip chain filter-FORWARD: changed (type filter hook forward priority 10 policy accept, want type filter hook forward priority 0 policy accept)"}},
		{"policy changed", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Base = &nft.Base{Type: nft.TypeFilter, Hook: nft.HookForward, Policy: nft.PolicyDrop}
			return []nft.TableState{*t}
		}, []string{"ip chain filter-FORWARD: changed (type filter hook forward priority 0 policy drop, want type filter hook forward priority 0 policy accept)"}},
		{"rule changed under its comment", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Rules[1] = nft.RuleState{Handle: 7, Comment: "DOCKER", Exprs: accept}
			return []nft.TableState{*t}
		}, []string{`ip chain filter-FORWARD rule "DOCKER" (handle 7): changed: does something else than dnft's rule with this comment`}},
		{"rule dnft cannot read", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Rules[1] = nft.RuleState{Handle: 7, Comment: "DOCKER", Exprs: []byte{1, 2, 3}}
			return []nft.TableState{*t}
		}, []string{`ip chain filter-FORWARD rule "DOCKER" (handle 7): changed: bad expression list: 3 trailing bytes, unlike dnft's rule`}},
		{"same comment, foreign rule", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Rules = append(t.Chains[0].Rules, nft.RuleState{Handle: 8, Comment: "DOCKER", Exprs: vmap})
			return []nft.TableState{*t}
		}, []string{`ip chain filter-FORWARD rule "DOCKER" (handle 8): not dnft's`}},
		{"jump removed", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Rules = t.Chains[0].Rules[1:]
			return []nft.TableState{*t}
		}, []string{`ip chain filter-FORWARD rule "DOCKER-USER": missing`}},
		{"foreign rule", func(t *nft.TableState) []nft.TableState {
			t.Chains[0].Rules = append(t.Chains[0].Rules, nft.RuleState{Handle: 9, Exprs: accept}, nft.RuleState{Handle: 10, Comment: "x", Xt: true})
			return []nft.TableState{*t}
		}, []string{`ip chain filter-FORWARD rule "" (handle 9): not dnft's`, `ip chain filter-FORWARD rule "x" (handle 10): has iptables-compat (xt) expressions: not dnft's`}},
		{"order", func(t *nft.TableState) []nft.TableState {
			r := t.Chains[0].Rules
			r[0], r[1] = r[1], r[0]
			return []nft.TableState{*t}
		}, []string{`ip chain filter-FORWARD: rules out of order (have "DOCKER", "DOCKER-USER", want "DOCKER-USER", "DOCKER")`}},
		{"elements", func(t *nft.TableState) []nft.TableState {
			t.Sets[0].Elements = []nft.ElementState{{Key: other}}
			t.Sets[1].Elements[0].Verdict = jump("elsewhere")
			return []nft.TableState{*t}
		}, []string{
			"ip set ports element 172.17.0.2 . tcp . 80: missing",
			"ip set ports element 172.17.0.3 . udp . 53: not dnft's",
			`ip set fwd element 0x627230: changed (jump elsewhere, want jump DOCKER__br0)`,
		}},
		{"comment", func(t *nft.TableState) []nft.TableState {
			t.Sets[0].Elements[0].Comment = "n=2"
			return []nft.TableState{*t}
		}, []string{`ip set ports element 172.17.0.2 . tcp . 80: changed ("n=2", want "n=1")`}},
		{"set gone", func(t *nft.TableState) []nft.TableState {
			t.Sets = t.Sets[1:]
			return []nft.TableState{*t}
		}, []string{"ip set ports: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := want()
			h := want()
			var got []string
			for _, f := range compareTables([]nft.TableState{w}, tc.have(&h), specs) {
				got = append(got, f.String())
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestCompareManyElements: every element that differs is reported.
func TestCompareManyElements(t *testing.T) {
	var elems []nft.ElementState
	for i := range 25 {
		elems = append(elems, nft.ElementState{Key: []byte{byte(i)}})
	}
	want := []nft.TableState{{Family: nft.IPv4, Sets: []nft.SetState{{Name: "s", Elements: elems}}}}
	have := []nft.TableState{{Family: nft.IPv4, Sets: []nft.SetState{{Name: "s"}}}}
	got := compareTables(want, have, nil)
	require.Len(t, got, 25)
	require.Equal(t, "ip set s element 0x18: missing", got[24].String())
}
