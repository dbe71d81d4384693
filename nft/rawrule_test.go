package nft

import (
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

func nftRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	require.NoError(t, err, "nft %v: %s", args, out)
	return string(out)
}

// TestRawRules: operator rules round-trip exactly through ReadRawRules and
// ApplyWithRaw, or are refused with the reason when google/nftables would
// change them.
func TestRawRules(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		rule    string
		refused string // "" when the rule must round-trip
	}{
		{rule: `ip saddr 172.17.0.2 ip daddr 203.0.113.2 counter drop comment "no web"`},
		{rule: `iifname "eth0" tcp dport 22 accept`},
		{rule: `ct state established,related accept`},
		{rule: `limit rate 10/second accept`},
		{rule: `meta mark set 0x00000001`},
		{rule: `reject with icmp host-prohibited`},
		{rule: `ip saddr 10.0.0.0/8 ip daddr != 192.168.0.0/16 reject with tcp reset`},
		{rule: `jump DOCKER-ISOLATION`},
		{rule: `quota over 10 mbytes drop`},
		{rule: `udp dport 53 notrack`},
		{rule: `fib daddr type local drop`},
		{rule: `ip dscp cs1 accept`},
		{rule: `log prefix "dropped " drop`},
		{rule: `ct mark set 0x00000001`, refused: `decodes expression "ct" lossily`},
		{rule: `tcp dport { 80, 443 } accept`},
		{rule: `udp sport != { 53, 1000-2000 } counter drop`},
		{rule: `socket transparent 1 accept`, refused: `kind "socket" is not supported`},
		{rule: `rt mtu 1500 accept`, refused: `kind "rt" is not supported`},
		{rule: `tcp flags syn / syn,ack tcp option maxseg size set 1400`, refused: `"exthdr" lossily`},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			src, dst := testNS(t), testNS(t)
			for _, ns := range []string{src, dst} {
				nftRun(t, ns, "add table ip dnft; add chain ip dnft DOCKER-USER; add chain ip dnft DOCKER-ISOLATION")
			}
			nftRun(t, src, "add rule ip dnft DOCKER-USER "+tc.rule)
			c, err := Open(ctx, src)
			require.NoError(t, err)
			defer c.Close()
			rules, ok, err := c.ReadRawRules(ctx, IPv4, "DOCKER-USER")
			if tc.refused != "" {
				var re *RawRuleError
				require.True(t, errors.As(err, &re), "want a RawRuleError, got %v", err)
				require.Contains(t, err.Error(), tc.refused)
				require.NotZero(t, re.Handle)
				return
			}
			require.NoError(t, err)
			require.True(t, ok)
			require.Len(t, rules, 1)
			canon, err := CanonicalRule(rules[0])
			require.NoError(t, err)
			require.Equal(t, rules[0].Exprs, canon.Exprs, "canonical form is stable")
			require.Equal(t, rules[0].Sets, canon.Sets, "canonical sets are stable")

			d, err := Open(ctx, dst)
			require.NoError(t, err)
			defer d.Close()
			_, err = d.ApplyWithRaw(ctx, &Tx{}, rules, 0)
			require.NoError(t, err)
			list := func(ns string) string { return nftRun(t, ns, "-s", "list", "chain", "ip", "dnft", "DOCKER-USER") }
			require.Equal(t, list(src), list(dst))
			texts, err := c.RuleTexts(ctx, IPv4, "DOCKER-USER")
			require.NoError(t, err)
			require.Len(t, texts, 1)
		})
	}
}

// TestReadRawRulesMissing: a missing chain or table is ok=false, not an
// empty chain.
func TestReadRawRulesMissing(t *testing.T) {
	ctx := context.Background()
	ns := testNS(t)
	c, err := Open(ctx, ns)
	require.NoError(t, err)
	defer c.Close()
	_, ok, err := c.ReadRawRules(ctx, IPv4, "DOCKER-USER")
	require.NoError(t, err)
	require.False(t, ok, "no table")
	nftRun(t, ns, "add table ip dnft")
	_, ok, err = c.ReadRawRules(ctx, IPv4, "DOCKER-USER")
	require.NoError(t, err)
	require.False(t, ok, "no chain")
	nftRun(t, ns, "add chain ip dnft DOCKER-USER")
	rules, ok, err := c.ReadRawRules(ctx, IPv4, "DOCKER-USER")
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, rules)
}

// TestCanonicalExprsBad: garbage is refused, never a panic.
func TestCanonicalExprsBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", []byte{1, 2, 3}},
		{"bad length", []byte{0xff, 0, 1, 0}},
		{"no name", []byte{8, 0, 1, 0x80, 4, 0, 2, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CanonicalExprs(IPv4, tc.in)
			var re *RawRuleError
			require.True(t, errors.As(err, &re), "%v", err)
		})
	}
}

// FuzzCanonicalExprs: any payload is refused or canonicalized; a
// canonical payload is its own canonical form.
func FuzzCanonicalExprs(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x34\x00\x01\x80\x0c\x00\x01\x00payload\x00\x24\x00\x02\x80\x08\x00\x01\x00\x00\x00\x00\x01\x08\x00\x02\x00\x00\x00\x00\x01\x08\x00\x03\x00\x00\x00\x00\x0c\x08\x00\x04\x00\x00\x00\x00\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := CanonicalExprs(IPv4, b)
		if err != nil {
			return
		}
		again, err := CanonicalExprs(IPv4, c)
		if err != nil {
			t.Fatalf("canonical form refused: %v", err)
		}
		if string(again) != string(c) {
			t.Fatalf("canonical form not stable")
		}
	})
}
