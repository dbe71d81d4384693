package nft

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/dnft/dnft/test/harness"
	"github.com/stretchr/testify/require"
)

// testNS creates a throwaway namespace and returns its name.
func testNS(t *testing.T) string {
	t.Helper()
	return harness.Scratch(t).Name
}

func nftList(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func TestApplyAndRead(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()

	pub := Set{Family: IPv4, Name: "pub", Key: []Field{FieldDaddr, FieldL4Proto, FieldDport}, Data: DataAddrPort, Counter: true}
	vm := Set{Family: IPv4, Name: "iso", Key: []Field{FieldIIFName}, Data: DataVerdict}
	sub := Set{Family: IPv4, Name: "subnets", Key: []Field{FieldSaddr}, Data: DataVerdict, Interval: true}
	tx := &Tx{}
	tx.AddTable(IPv4)
	tx.AddChain(Chain{Family: IPv4, Name: "nat-PREROUTING", Base: &Base{Type: TypeNAT, Hook: HookPrerouting, Priority: PriorityDstNAT}})
	tx.AddChain(Chain{Family: IPv4, Name: "filter-FORWARD", Base: &Base{Type: TypeFilter, Hook: HookForward, Priority: PriorityFilter}})
	tx.AddChain(Chain{Family: IPv4, Name: "DOCKER-br0"})
	tx.AddChain(Chain{Family: IPv4, Name: "nat-x"})
	tx.AddSet(pub)
	tx.AddSet(vm)
	tx.AddSet(sub)
	tx.AddRule(Rule{Family: IPv4, Chain: "nat-PREROUTING", Match: []Match{FibLocal{Dir: Out}}, Action: DNATMap{Fields: []Field{FieldDaddr, FieldL4Proto, FieldDport}, Map: "pub"}, Comment: "dnat"})
	tx.AddRule(Rule{Family: IPv4, Chain: "filter-FORWARD", Action: VMap{Fields: []Field{FieldIIFName}, Map: "iso"}})
	tx.AddRule(Rule{Family: IPv4, Chain: "filter-FORWARD", Action: VMap{Fields: []Field{FieldSaddr}, Map: "subnets"}})
	tx.AddRule(Rule{Family: IPv4, Chain: "filter-FORWARD", Match: []Match{CtEstablished{}}, Action: Verdict{Kind: Accept}})
	tx.AddRule(Rule{Family: IPv4, Chain: "DOCKER-br0", Match: []Match{IfName{Dir: In, Name: "br0", Neg: true}, Prefix{Dir: Out, Prefix: netip.MustParsePrefix("172.18.0.0/16")}, L4{Proto: 6, Dport: 80}}, Action: Verdict{Kind: Drop}})
	tx.AddRule(Rule{Family: IPv4, Chain: "nat-x", Match: []Match{Prefix{Dir: In, Prefix: netip.MustParsePrefix("127.0.0.0/8"), Neg: true}}, Action: SNAT{Addr: netip.MustParseAddr("192.0.2.9")}})
	tx.AddElements(pub, Element{Key: []Value{Addr(netip.MustParseAddr("192.0.2.1")), Proto(6), Port(8080)}, Target: netip.MustParseAddrPort("172.18.0.2:80"), Comment: "c1"})
	tx.AddElements(vm, Element{Key: []Value{Ifname("br0")}, Verdict: &Verdict{Kind: Jump, Chain: "DOCKER-br0"}})
	tx.AddElements(sub, Element{Prefix: netip.MustParsePrefix("172.18.0.0/16"), Verdict: &Verdict{Kind: Jump, Chain: "DOCKER-br0"}})
	require.NoError(t, c.Apply(ctx, tx))

	out := nftList(t, ns)
	t.Log(out)
	for _, want := range []string{
		`fib daddr type local counter packets 0 bytes 0 dnat ip to ip daddr . meta l4proto . th dport map @pub comment "dnat"`,
		`counter packets 0 bytes 0 iifname vmap @iso`,
		`ip saddr vmap @subnets`,
		`ct state established,related counter packets 0 bytes 0 accept`,
		`iifname != "br0" ip daddr 172.18.0.0/16 tcp dport 80 counter packets 0 bytes 0 drop`,
		`192.0.2.1 . tcp . 8080 counter packets 0 bytes 0 comment "c1" : 172.18.0.2 . 80`,
		`172.18.0.0/16 : jump DOCKER-br0`,
		`ip saddr != 127.0.0.0/8 counter packets 0 bytes 0 snat to 192.0.2.9`,
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "xt ")

	ts, ok, err := c.ReadTable(ctx, IPv4)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, ts.Chains, 4)
	require.Equal(t, "dnat", ts.Chain("nat-PREROUTING").Rules[0].Comment)
	ps := ts.Set("pub")
	require.Len(t, ps.Elements, 1)
	require.Equal(t, "c1", ps.Elements[0].Comment)
	key, err := DecodeKey(IPv4, pub.Key, ps.Elements[0].Key)
	require.NoError(t, err)
	require.Equal(t, uint16(8080), key[2].Port)
	tgt, err := DecodeTarget(IPv4, ps.Elements[0].Data)
	require.NoError(t, err)
	require.Equal(t, "172.18.0.2:80", tgt.String())

	// A failing batch changes nothing, and the connection keeps working.
	before := nftList(t, ns)
	bad := &Tx{}
	bad.AddChain(Chain{Family: IPv4, Name: "new-chain"})
	bad.AddRule(Rule{Family: IPv4, Chain: "no-such-chain", Action: Verdict{Kind: Accept}})
	err = c.Apply(ctx, bad)
	require.Error(t, err)
	require.Equal(t, before, nftList(t, ns))
	ok2 := &Tx{}
	ok2.DeleteElements(pub, Element{Key: []Value{Addr(netip.MustParseAddr("192.0.2.1")), Proto(6), Port(8080)}})
	require.NoError(t, c.Apply(ctx, ok2))
	require.False(t, strings.Contains(nftList(t, ns), `"c1"`))
}

func TestLargeBatchChunked(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	s := Set{Family: IPv4, Name: "big", Key: []Field{FieldDaddr, FieldL4Proto, FieldDport}, Counter: true}
	tx := &Tx{}
	tx.AddTable(IPv4)
	tx.AddSet(s)
	var elems []Element
	for i := 0; i < 12000; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		elems = append(elems, Element{Key: []Value{Addr(a), Proto(17), Port(uint16(1000 + i%5000))}, Comment: "x"})
	}
	tx.AddElements(s, elems...)
	require.NoError(t, c.Apply(ctx, tx))
	got, ok, err := c.ReadSet(ctx, IPv4, "big")
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, got.Elements, 12000)
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"172.18.0.0/16", "172.19.0.0"},
		{"10.0.0.0/8", "11.0.0.0"},
		{"192.0.2.7/32", "192.0.2.8"},
		{"fd00::/64", "fd00:0:0:1::"},
	} {
		got, ok := prefixEnd(netip.MustParsePrefix(tc.in))
		require.True(t, ok)
		require.Equal(t, tc.want, got.String(), tc.in)
	}
	_, ok := prefixEnd(netip.MustParsePrefix("255.0.0.0/8"))
	require.False(t, ok)
}

func TestRulePositions(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	tx := &Tx{}
	tx.AddTable(IPv4)
	tx.AddChain(Chain{Family: IPv4, Name: "c"})
	tx.AddRule(Rule{Family: IPv4, Chain: "c", Action: Verdict{Kind: Accept}, Comment: "first"})
	tx.AddRule(Rule{Family: IPv4, Chain: "c", Action: Verdict{Kind: Accept}, Comment: "last"})
	require.NoError(t, c.Apply(ctx, tx))
	cs, ok, err := c.ReadChain(ctx, IPv4, "c")
	require.NoError(t, err)
	require.True(t, ok)
	tx = &Tx{}
	tx.InsertRuleBefore(Rule{Family: IPv4, Chain: "c", Action: Verdict{Kind: Drop}, Comment: "before-last"}, cs.Rules[1].Handle)
	tx.AddRuleAfter(Rule{Family: IPv4, Chain: "c", Action: Verdict{Kind: Drop}, Comment: "after-first"}, cs.Rules[0].Handle)
	require.NoError(t, c.Apply(ctx, tx))
	cs, _, err = c.ReadChain(ctx, IPv4, "c")
	require.NoError(t, err)
	var got []string
	for _, r := range cs.Rules {
		got = append(got, r.Comment)
	}
	require.Equal(t, []string{"first", "after-first", "before-last", "last"}, got)
}

func TestGeneration(t *testing.T) {
	ns := testNS(t)
	ctx := context.Background()
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	g0, err := c.Generation(ctx)
	require.NoError(t, err)
	tx := &Tx{}
	tx.AddTable(IPv4)
	g1, err := c.ApplyGen(ctx, tx, g0)
	require.NoError(t, err)
	require.Equal(t, g0+1, g1)
	// Someone else commits: the cached generation is stale.
	nftList(t, ns)
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "add", "table", "ip", "other").CombinedOutput()
	require.NoError(t, err, string(out))
	_, err = c.ApplyGen(ctx, &Tx{}, g1)
	require.ErrorIs(t, err, ErrGenerationChanged)
}

// TestRuleTextsScratch: the rules of a chain listed from a copy in a
// throwaway namespace read exactly as nft lists them in place (jumps,
// anonymous sets, comments, several families of match), and a chain whose
// rules look up a named set of the table is listed in place.
func TestRuleTextsScratch(t *testing.T) {
	ctx := context.Background()
	ns := testNS(t)
	script := `add table ip dnft
add chain ip dnft DOCKER-USER
add chain ip dnft OTHER
add set ip dnft big { type ipv4_addr; }
add element ip dnft big { 10.0.0.1, 10.0.0.2 }
add rule ip dnft DOCKER-USER iifname "eth0" tcp dport { 80, 443 } counter accept comment "web"
add rule ip dnft DOCKER-USER ip saddr 192.0.2.0/24 ct state established,related jump OTHER
add rule ip dnft DOCKER-USER meta l4proto udp udp dport 53-60 drop
add rule ip dnft DOCKER-USER counter return
`
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	inPlace := func() []string {
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-s", "-a", "list", "chain", "ip", "dnft", "DOCKER-USER").Output()
		require.NoError(t, err)
		return parseRuleTexts(string(out))
	}
	texts, ok := c.scratchTexts(ctx, "nft", IPv4, "DOCKER-USER")
	require.True(t, ok)
	require.Len(t, texts, 4)
	require.Equal(t, inPlace(), texts)

	nftRun(t, ns, "add", "rule", "ip", "dnft", "DOCKER-USER", "ip", "saddr", "@big", "drop")
	_, ok = c.scratchTexts(ctx, "nft", IPv4, "DOCKER-USER")
	require.False(t, ok, "a named set is not copied")
	texts, err = c.RuleTexts(ctx, IPv4, "DOCKER-USER")
	require.NoError(t, err)
	require.Equal(t, inPlace(), texts)
	require.Len(t, texts, 5)
}
