package nft

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUserRuleKernel: operators' rules built from filter.go's matches are
// programmed as native nftables (nft lists them as an operator would
// write them, with no xt expression), read back, and decoded to the same
// rule; rules written with the nft command decode to the same matches.
func TestUserRuleKernel(t *testing.T) {
	ctx := context.Background()
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	drop, accept := Verdict{Kind: Drop}, Verdict{Kind: Accept}
	for _, tc := range []struct {
		name string
		fam  Family
		rule Rule
		nft  string // as `nft list` prints it, without the counter
		same []string
	}{
		{name: "iface tcp dport", rule: Rule{Match: []Match{IfName{Dir: In, Name: "lan0"}, L4Proto{Num: 6}, PortRange{Dir: Out, Lo: 22, Hi: 22}}, Action: drop},
			nft: `iifname "lan0" tcp dport 22 drop`, same: []string{`iifname "lan0" tcp dport 22 counter drop`, `iifname lan0 meta l4proto tcp th dport 22 counter drop`}},
		{name: "wildcard and prefixes", rule: Rule{Match: []Match{IfName{Dir: In, Name: "br", Neg: true, Wildcard: true}, IfName{Dir: Out, Name: "eth0"},
			Prefix{Dir: In, Prefix: pfx("10.0.0.0/8")}, Prefix{Dir: Out, Prefix: pfx("1.2.3.4/32"), Neg: true}, L4Proto{Num: 17}, PortRange{Dir: In, Lo: 1000, Hi: 2000}}, Action: accept},
			nft:  `iifname != "br*" oifname "eth0" ip saddr 10.0.0.0/8 ip daddr != 1.2.3.4 udp sport 1000-2000 accept`,
			same: []string{`iifname != "br*" oifname "eth0" ip saddr 10.0.0.0/8 ip daddr != 1.2.3.4 udp sport 1000-2000 counter accept`}},
		{name: "odd prefix", rule: Rule{Match: []Match{Prefix{Dir: In, Prefix: pfx("10.128.0.0/9")}}, Action: drop},
			nft: `ip saddr 10.128.0.0/9 drop`, same: []string{`ip saddr 10.128.0.0/9 counter drop`}},
		{name: "port list", rule: Rule{Match: []Match{L4Proto{Num: 6}, PortSet{Dir: Out, Spans: []PortSpan{{80, 80}, {443, 443}, {8000, 8010}}}}, Action: drop},
			nft: `tcp dport { 80, 443, 8000-8010 } drop`, same: []string{`tcp dport { 8000-8010, 443, 80 } counter drop`}},
		{name: "negated port list", rule: Rule{Match: []Match{L4Proto{Num: 6}, PortSet{Dir: In, Spans: []PortSpan{{80, 80}, {443, 443}}, Neg: true}}, Action: drop},
			nft: `tcp sport != { 80, 443 } drop`, same: []string{`tcp sport != { 443, 80 } counter drop`}},
		{name: "negated port range", rule: Rule{Match: []Match{L4Proto{Num: 6}, PortRange{Dir: Out, Lo: 22, Hi: 22, Neg: true}}, Action: drop},
			nft: `tcp dport != 22 drop`},
		{name: "ctstate", rule: Rule{Match: []Match{CtState{Mask: CtStateEstablished | CtStateRelated}}, Action: accept},
			nft: `ct state established,related accept`, same: []string{`ct state established,related counter accept`}},
		{name: "not ctstate", rule: Rule{Match: []Match{CtState{Mask: CtStateNew, Neg: true}}, Action: accept},
			nft: `ct state ! new accept`},
		{name: "ct state != new", rule: Rule{Match: []Match{CtState{Mask: CtStateNew, Neg: true}}, Action: accept},
			nft: `ct state ! new accept`, same: []string{`ct state != new counter accept`}},
		{name: "ctorig", rule: Rule{Match: []Match{L4Proto{Num: 6}, CtOrigAddr{Dir: Out, Prefix: pfx("172.17.0.2/32")}, CtOrigPort{Dir: Out, Lo: 80, Hi: 80}}, Action: accept},
			nft: `meta l4proto tcp ct original ip daddr 172.17.0.2 ct original proto-dst 80 accept`},
		{name: "ctorig prefix and range", rule: Rule{Match: []Match{CtOrigAddr{Dir: Out, Prefix: pfx("172.17.0.0/16")}, CtOrigPort{Dir: Out, Lo: 80, Hi: 90, Neg: true}}, Action: accept},
			nft: `ct original ip daddr 172.17.0.0/16 ct original proto-dst != 0x50 [invalid type]-0x5a [invalid type] accept`},
		{name: "iprange", rule: Rule{Match: []Match{AddrRange{Dir: In, From: addr("1.2.3.4"), To: addr("1.2.3.10")}, AddrRange{Dir: Out, From: addr("5.5.5.5"), To: addr("5.5.5.6"), Neg: true}}, Action: drop},
			nft: `ip saddr 1.2.3.4-1.2.3.10 ip daddr != 5.5.5.5-5.5.5.6 drop`, same: []string{`ip saddr 1.2.3.4-1.2.3.10 ip daddr != 5.5.5.5-5.5.5.6 counter drop`}},
		{name: "reject", rule: Rule{Match: []Match{L4Proto{Num: 1}}, Action: Reject{Kind: RejectICMP, Code: 3}},
			nft: `meta l4proto icmp reject`, same: []string{`meta l4proto icmp counter reject`}},
		{name: "tcp reset", rule: Rule{Match: []Match{L4Proto{Num: 6}}, Action: Reject{Kind: RejectTCPReset}},
			nft: `meta l4proto tcp reject with tcp reset`, same: []string{`meta l4proto tcp counter reject with tcp reset`}},
		{name: "log", rule: Rule{Action: Log{Prefix: "x: ", Level: 4, Flags: 1}},
			nft: `log prefix "x: " flags tcp sequence`, same: []string{`counter log prefix "x: " level warn flags tcp sequence`}},
		{name: "icmp type", rule: Rule{Match: []Match{L4Proto{Num: 1}, ICMPType{Type: 8}}, Action: accept},
			nft: `icmp type echo-request accept`, same: []string{`icmp type echo-request counter accept`}},
		{name: "not tcp return", rule: Rule{Match: []Match{L4Proto{Num: 6, Neg: true}}, Action: Verdict{Kind: Return}},
			nft: `meta l4proto != tcp return`, same: []string{`ip protocol != tcp counter return`}},
		{name: "no target", rule: Rule{Match: []Match{Prefix{Dir: In, Prefix: pfx("192.0.2.0/24")}}},
			nft: `ip saddr 192.0.2.0/24 counter`},
		{name: "ipv6", fam: IPv6, rule: Rule{Match: []Match{Prefix{Dir: In, Prefix: pfx("fd00::/8")}, L4Proto{Num: 58}, ICMPType{Type: 128}, CtOrigAddr{Dir: Out, Prefix: pfx("fd00:1::5/128")}}, Action: Reject{Kind: RejectICMP, Code: 1}},
			nft: `ip6 saddr fd00::/8 icmpv6 type echo-request ct original ip6 daddr fd00:1::5 reject with icmpv6 admin-prohibited`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fam := tc.fam
			if fam == 0 {
				fam = IPv4
			}
			ns := testNS(t)
			nftRun(t, ns, "add table "+fam.String()+" dnft; add chain "+fam.String()+" dnft DOCKER-USER")
			c, err := Open(ctx, ns)
			require.NoError(t, err)
			defer c.Close()
			r := tc.rule
			r.Family, r.Chain = fam, "DOCKER-USER"
			raw, err := EncodeUserRule(r)
			require.NoError(t, err)
			_, err = c.ApplyWithRaw(ctx, &Tx{}, []RawRule{raw}, 0)
			require.NoError(t, err)
			for _, s := range tc.same {
				nftRun(t, ns, "add rule "+fam.String()+" dnft DOCKER-USER "+s)
				parsed, err := ParseRuleText(fam, s)
				require.NoError(t, err, s)
				parsed.Chain = r.Chain
				enc, err := EncodeUserRule(parsed)
				require.NoError(t, err, s)
				require.Equal(t, raw.Exprs, enc.Exprs, "ParseRuleText(%q)", s)
				require.Equal(t, raw.Sets, enc.Sets, "ParseRuleText(%q)", s)
			}
			texts, err := c.RuleTexts(ctx, fam, "DOCKER-USER")
			require.NoError(t, err)
			require.Equal(t, tc.nft, strings.Replace(texts[0], "counter ", "", 1))
			read, ok, err := c.ReadChainRules(ctx, fam, "DOCKER-USER")
			require.NoError(t, err)
			require.True(t, ok)
			require.Len(t, read, 1+len(tc.same))
			for i, cr := range read {
				require.NoError(t, cr.Err)
				got, err := DecodeRawRule(cr.RawRule)
				require.NoError(t, err, "rule %d: %s", i, texts[i])
				require.Equal(t, r, got, "rule %d: %s", i, texts[i])
			}
			require.Equal(t, raw.Exprs, read[0].Exprs, "read back in canonical form")
			require.Equal(t, raw.Sets, read[0].Sets)
		})
	}
}

// TestDecodeNoForm: rules that have no iptables-like form are reported
// as such, not decoded into something else.
func TestDecodeNoForm(t *testing.T) {
	ctx := context.Background()
	ns := testNS(t)
	nftRun(t, ns, "add table ip dnft; add chain ip dnft DOCKER-USER; add set ip dnft blocked { type ipv4_addr; }")
	for _, r := range []string{
		`ip saddr @blocked drop`,
		`ip saddr { 1.2.3.4, 5.6.7.8 } drop`,
		`limit rate 10/second accept`,
		`meta mark 0x00000001 accept`,
		`log prefix "x " drop`,
		`ct state { new, established } accept`,
		`tcp flags syn accept`,
	} {
		nftRun(t, ns, "add rule ip dnft DOCKER-USER "+r)
	}
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	read, _, err := c.ReadChainRules(ctx, IPv4, "DOCKER-USER")
	require.NoError(t, err)
	require.Len(t, read, 7)
	for i, cr := range read {
		if cr.Err != nil {
			continue
		}
		_, err := DecodeRawRule(cr.RawRule)
		require.ErrorIs(t, err, ErrNoFilterForm, "rule %d", i)
	}
}
