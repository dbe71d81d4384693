package dnft

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft/nft"
)

// TestUserRuleText: a state document may give DOCKER-USER rules as
// iptables arguments or as nft text; both give the same native rule, and
// the document written back holds the iptables form.
func TestUserRuleText(t *testing.T) {
	doc := func(rules string) []byte {
		return []byte(`{"version":1,"daemon":{"ipv6":true},"networks":[],"ports":[],"ingress":[],"docker_user":[` + rules + `]}`)
	}
	for _, tc := range []struct {
		iptables, nft string
		fam           string
	}{
		{`-i lan0 -p tcp --dport 22 -j DROP`, `iifname \"lan0\" tcp dport 22 drop`, "ip"},
		{`-A DOCKER-USER -s 10.0.0.0/8 -p tcp -m multiport --dports 80,443 -j ACCEPT`, `ip saddr 10.0.0.0/8 tcp dport { 80, 443 } counter accept`, "ip"},
		{`-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`, `ct state established,related return`, "ip"},
		{`-m iprange --src-range 192.0.2.1-192.0.2.9 -j REJECT`, `ip saddr 192.0.2.1-192.0.2.9 reject`, "ip"},
		{`-s fd00::/8 -j REJECT --reject-with icmp6-adm-prohibited`, `ip6 saddr fd00::/8 reject with icmpv6 admin-prohibited`, "ip6"},
		{`-j LOG --log-prefix "dropped: "`, `log prefix \"dropped: \"`, "ip"},
	} {
		t.Run(tc.iptables, func(t *testing.T) {
			a, err := ParseState(doc(`{"family":"` + tc.fam + `","iptables":` + quote(tc.iptables) + `}`))
			require.NoError(t, err)
			b, err := ParseState(doc(`{"family":"` + tc.fam + `","nft":"` + tc.nft + `"}`))
			require.NoError(t, err)
			require.Len(t, a.DockerUser, 1)
			require.Len(t, b.DockerUser, 1)
			require.Equal(t, a.DockerUser[0].Expr, b.DockerUser[0].Expr)
			require.True(t, sameSets(a.DockerUser[0].Sets, b.DockerUser[0].Sets))
			out, err := b.Encode()
			require.NoError(t, err)
			text, ok := UserRuleIPTables(a.DockerUser[0])
			require.True(t, ok)
			require.Contains(t, string(out), `"iptables": `+quote(text))
			again, err := ParseState(out)
			require.NoError(t, err)
			require.Equal(t, a.DockerUser[0].Expr, again.DockerUser[0].Expr)
		})
	}
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// TestUserRuleTextErrors: a rule outside the subset is refused with the
// field and the option named.
func TestUserRuleTextErrors(t *testing.T) {
	for _, tc := range []struct{ rule, field, reason string }{
		{`{"family":"ip","iptables":"-m mac --mac-source 00:11:22:33:44:55 -j DROP"}`, "docker_user[0].iptables", "-m mac"},
		{`{"family":"ip","iptables":"-p tcp --tcp-flags SYN SYN -j DROP"}`, "docker_user[0].iptables", "--tcp-flags"},
		{`{"family":"ip","iptables":"-A FORWARD -j DROP"}`, "docker_user[0].iptables", "only DOCKER-USER"},
		{`{"family":"ip","nft":"iifname \"lan0\" tcp dport 22 drop"}`, "", ""},
		{`{"family":"ip","nft":"ip saddr @blocked drop"}`, "docker_user[0].nft", "bad address"},
		{`{"family":"ip","nft":"meta mark 1 drop"}`, "docker_user[0].nft", `unexpected "mark"`},
		{`{"family":"ip6","nft":"ip saddr 1.2.3.4 drop"}`, "docker_user[0].nft", `"ip" in a rule of family ip6`},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			_, err := ParseState([]byte(`{"version":1,"daemon":{"ipv6":true},"docker_user":[` + tc.rule + `]}`))
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "%v", err)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, fe.Reason, tc.reason)
		})
	}
}

// TestUserRuleReturn: Docker's RETURN has an iptables form.
func TestUserRuleReturn(t *testing.T) {
	r, err := ParseUserRule(nft.IPv4, "-j RETURN", "")
	require.NoError(t, err)
	text, ok := UserRuleIPTables(r)
	require.True(t, ok)
	require.Equal(t, "-j RETURN", text)
}
