package compat

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/test/harness"
)

// userRuleCases are DOCKER-USER rules as operators type them (iptables
// arguments after "-A DOCKER-USER").
var userRuleCases = []struct {
	fam  Family
	args string
}{
	{IPv4, `-i lan0 -p tcp --dport 22 -j DROP`},
	{IPv4, `! -i br+ -o eth0 -s 10.0.0.0/8 ! -d 1.2.3.4 -p udp --sport 1000:2000 -j ACCEPT`},
	{IPv4, `-p tcp -m multiport --dports 80,443,8000:8010 -j DROP`},
	{IPv4, `-p tcp -m multiport ! --sports 80,443 -j DROP`},
	{IPv4, `-p udp -m multiport --dports domain,1000:2000 -j ACCEPT`},
	{IPv4, `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`},
	{IPv4, `-m conntrack ! --ctstate NEW -j ACCEPT`},
	{IPv4, `-m conntrack --ctstate INVALID,UNTRACKED,NEW -j DROP`},
	{IPv4, `-p tcp -m conntrack --ctorigdst 172.17.0.2 --ctorigdstport 80 -j ACCEPT`},
	{IPv4, `-m conntrack --ctorigdstport 80 --ctstate NEW --ctorigdst 1.2.3.4 --ctorigsrc 5.0.0.0/8 --ctorigsrcport 1:2 -j ACCEPT`},
	{IPv4, `-m conntrack --ctorigdst 172.17.0.0/16 ! --ctorigdstport 80:90 -j ACCEPT`},
	{IPv4, `-m conntrack ! --ctorigdst 1.2.3.0/24 -j DROP`},
	{IPv4, `-m iprange --src-range 1.2.3.4-1.2.3.10 -j DROP`},
	{IPv4, `-m iprange ! --dst-range 1.2.3.4-1.2.3.10 --src-range 5.5.5.5-5.5.5.6 -j DROP`},
	{IPv4, `-p icmp -j REJECT`},
	{IPv4, `-p tcp -j REJECT --reject-with tcp-reset`},
	{IPv4, `-j REJECT --reject-with icmp-net-prohib`},
	{IPv4, `-p udp -m udp --dport 53 -j REJECT --reject-with icmp-host-prohibited`},
	{IPv4, `-j LOG --log-prefix "x: " --log-level warning --log-tcp-sequence`},
	{IPv4, `-j LOG --log-level 7 --log-prefix "a b" --log-uid --log-ip-options --log-tcp-options --log-macdecode`},
	{IPv4, `-p tcp --dport 22 --sport 1024: -m conntrack --ctstate NEW -j LOG --log-level debug`},
	{IPv4, `-p icmp --icmp-type echo-request -j ACCEPT`},
	{IPv4, `-p icmp --icmp-type 3/3 -j ACCEPT`},
	{IPv4, `! -p tcp -j RETURN`},
	{IPv4, `-p tcp -m tcp ! --dport ssh -j DROP`},
	{IPv4, `-p tcp --dport 22 -m comment --comment "ssh from the lan" -j ACCEPT`},
	{IPv4, `-s 192.0.2.0/24`},
	{IPv4, `-i eth+ -d 10.1.0.0/16 -j RETURN`},
	{IPv6, `-s fd00::/8 -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT`},
	{IPv6, `! -s fd00:1::/64 -o br0 -p tcp -m multiport --dports 80,443 -j REJECT --reject-with icmp6-adm-prohibited`},
	{IPv6, `-m conntrack --ctorigdst fd00::5 --ctstate NEW -p tcp -j REJECT --reject-with tcp-reset`},
	{IPv6, `-j REJECT`},
}

// TestUserRuleRoundTrip: every rule of the subset, typed as iptables
// arguments, translated to native nftables, encoded, decoded and
// translated back, lists (-S, -L, -L -n -v) exactly as real iptables
// lists the same rule.
func TestUserRuleRoundTrip(t *testing.T) {
	ns := harness.Scratch(t)
	ctx := context.Background()
	names, err := SystemNames(nil)
	require.NoError(t, err)
	for _, fam := range []Family{IPv4, IPv6} {
		_, err := ns.Run(ctx, fam.Tool()+"-legacy", "-N", "DOCKER-USER")
		require.NoError(t, err)
	}
	got := map[Family]*Table{IPv4: NewTable(IPv4, TableFilter), IPv6: NewTable(IPv6, TableFilter)}
	for _, tb := range got {
		require.NoError(t, tb.NewChain("DOCKER-USER"))
	}
	for _, tc := range userRuleCases {
		args, err := SplitArgs(tc.args)
		require.NoError(t, err)
		out, err := ns.Run(ctx, append([]string{tc.fam.Tool() + "-legacy", "-A", "DOCKER-USER"}, args...)...)
		require.NoError(t, err, "%s: %s", tc.args, out)
		r, err := ParseRuleArgs(tc.fam, args, names)
		require.NoError(t, err, tc.args)
		nr, err := UserRuleNFT(tc.fam, "DOCKER-USER", r, names)
		require.NoError(t, err, tc.args)
		raw, err := nft.EncodeUserRule(nr)
		require.NoError(t, err, tc.args)
		back, err := nft.DecodeRawRule(raw)
		require.NoError(t, err, tc.args)
		ipt, err := UserRuleIPT(tc.fam, back)
		require.NoError(t, err, tc.args)
		require.NoError(t, got[tc.fam].Append("DOCKER-USER", ipt))
	}
	for _, fam := range []Family{IPv4, IPv6} {
		for _, cmd := range [][]string{{"-S", "DOCKER-USER"}, {"-L", "DOCKER-USER"}, {"-L", "DOCKER-USER", "-n", "-v"}, {"-L", "DOCKER-USER", "-v", "-x", "--line-numbers"}} {
			want, err := ns.Run(ctx, append([]string{fam.Tool() + "-legacy"}, cmd...)...)
			require.NoError(t, err)
			rs := NewRuleset(fam)
			rs.tables[TableFilter] = got[fam]
			var stdout, stderr bytes.Buffer
			require.Zero(t, Run(rs, Legacy, names, cmd, &stdout, &stderr), stderr.String())
			require.Equal(t, want, stdout.String(), "%s %s", fam.Tool(), strings.Join(cmd, " "))
		}
	}
}

// TestUserRuleUnsupported: options outside the subset are refused with
// an error that names them.
func TestUserRuleUnsupported(t *testing.T) {
	for _, tc := range []struct{ args, option string }{
		{`-m mac --mac-source 00:11:22:33:44:55 -j DROP`, "-m mac"},
		{`-p tcp --tcp-flags SYN,ACK SYN -j DROP`, "--tcp-flags"},
		{`-p tcp --syn -j DROP`, "--tcp-flags"},
		{`-j MARK --set-mark 1`, "-j MARK"},
		{`-j DOCKER`, "-j DOCKER"},
		{`-g DOCKER`, "-g"},
		{`-m conntrack --ctstate SNAT -j ACCEPT`, "--ctstate SNAT"},
		{`-m conntrack --ctstatus ASSURED -j ACCEPT`, "--ctstatus"},
		{`-p tcp -m multiport --ports 80 -j DROP`, "--ports"},
		{`-m multiport --dports 80 -j DROP`, "-m multiport"},
		{`-p tcp --dport nosuchservice -j DROP`, "--dport"},
		{`-p udp -m multiport --dports 53,1000: -j DROP`, "--dports"},
		{`-s 1.2.3.4/255.0.255.0 -j DROP`, "-s"},
		{`-f -j DROP`, "-f"},
		{`-p tcp -j REJECT --reject-with icmp-foo`, "--reject-with icmp-foo"},
		{`-j REJECT --reject-with tcp-reset`, "--reject-with tcp-reset"},
		{`-p icmp --icmp-type any -j DROP`, "--icmp-type any"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			args, err := SplitArgs(tc.args)
			require.NoError(t, err)
			r, err := ParseRuleArgs(IPv4, args, nil)
			require.NoError(t, err)
			_, err = UserRuleNFT(IPv4, "DOCKER-USER", r, nil)
			var ue *UnsupportedError
			require.True(t, errors.As(err, &ue), "%v", err)
			require.Equal(t, tc.option, ue.Option)
		})
	}
}
