package integration_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/test/harness"
	"github.com/dnft/dnft/test/reference"
)

// userCommands is a session of an operator editing DOCKER-USER the way
// Docker's documentation and common scripts do, including mistakes.
var userCommands = []string{
	`-I DOCKER-USER -i lan0 ! -s 192.0.2.0/24 -j DROP`,
	`-I DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
	`-A DOCKER-USER -p tcp --dport 22 -j DROP`,
	`-I DOCKER-USER 2 -p tcp -m multiport --dports 80,443,8000:8010 -s 10.0.0.0/8 -j ACCEPT`,
	`-I DOCKER-USER 3 -m conntrack --ctorigdst 172.18.0.5 --ctorigdstport 80 -p tcp -j ACCEPT`,
	`-I DOCKER-USER -m iprange --src-range 198.51.100.10-198.51.100.20 -j REJECT`,
	`-I DOCKER-USER -o br+ -p udp --sport 53 -j LOG --log-prefix "dns: " --log-level 6`,
	`-I DOCKER-USER -p icmp --icmp-type echo-request -j RETURN`,
	`-I DOCKER-USER -p tcp ! --dport 443 -j REJECT --reject-with tcp-reset -m comment --comment "tls only"`,
	`-C DOCKER-USER -p tcp --dport 22 -j DROP`,
	`-C DOCKER-USER -p tcp --dport 23 -j DROP`,
	`-D DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
	`-D DOCKER-USER -m conntrack --ctstate NEW -j ACCEPT`,
	`-D DOCKER-USER 2`,
	`-D DOCKER-USER 42`,
	`-I DOCKER-USER 42 -j DROP`,
	`-I DOCKER-USER 0 -j DROP`,
	`-t filter -I DOCKER-USER -s 203.0.113.0/24 -j DROP -w`,
	`-A DOCKER-USER -p tcp --dport 22 -j DROP`,
	`-D DOCKER-USER -p tcp --dport 22 -j DROP`,
	`-A NO-SUCH-CHAIN -j DROP`,
	`-t nat -A DOCKER-USER -j ACCEPT`,
	`-F DOCKER-USER`,
	`-A DOCKER-USER -i eth0 -o docker0 -j ACCEPT`,
	`-A DOCKER-USER -j RETURN`,
	`-N DOCKER-USER`,
}

// TestDockerUserCommands: the same DOCKER-USER commands run with real
// iptables on Docker's rules and with `dnft iptables` on dnft's give the
// same exit codes and messages, and after each one DOCKER-USER lists
// byte for byte the same (-S, -L in several forms, iptables-save). Rules
// outside the native subset are refused naming the option, nothing
// written.
func TestDockerUserCommands(t *testing.T) {
	ctx := cvContext(t)
	_, rv := cvVariant(t)
	nsswitch := cvNsswitch(t)
	d := dnft.DaemonConfig{UserlandProxy: true, IPv6: true}
	refNS, dnNS := harness.Scratch(t), harness.Scratch(t)
	ref, err := reference.New(ctx, refNS.Name, d, reference.WithVariant(rv))
	require.NoError(t, err)
	fw := openFirewall(ctx, t, dnNS)
	for _, ns := range []*harness.NS{refNS, dnNS} {
		require.NoError(t, ns.SetSysctl("net.ipv4.ip_forward", "1"))
		require.NoError(t, ns.SetSysctl("net.ipv6.conf.all.forwarding", "1"))
	}
	require.NoError(t, fw.Init(ctx, d))
	net := dnft.NetworkConfig{Name: "a", Bridge: "br-a", Subnet4: pfx("172.18.0.0/16"), ICC: true, Masquerade: true}
	require.NoError(t, fw.CreateNetwork(ctx, net))
	require.NoError(t, ref.CreateNetwork(ctx, net))

	tool := "iptables-" + rv.String()
	real := func(args ...string) cvResult {
		return cvExec(ctx, refNS.Name, cvPinned(nsswitch, append([]string{tool}, args...)...)...)
	}
	mine := func(args ...string) cvResult {
		r := dnftCLI(ctx, t, dnNS, "", append([]string{"iptables"}, args...)...)
		return cvResult(r)
	}
	lists := [][]string{{"-S", "DOCKER-USER"}, {"-L", "DOCKER-USER"}, {"-L", "DOCKER-USER", "-n", "-v"},
		{"-L", "DOCKER-USER", "-v", "-x", "--line-numbers"}, {"-S"}}
	for _, line := range userCommands {
		args, err := compat.SplitArgs(line)
		require.NoError(t, err)
		want, got := real(args...), mine(args...)
		cvCompare(t, line, got, want)
		for _, l := range lists {
			cvCompare(t, line+" then "+strings.Join(l, " "), mine(l...), real(l...))
		}
	}

	// Outside the subset: refused, naming the option, and nothing written.
	before := mine("-S", "DOCKER-USER")
	for _, tc := range []struct{ line, option string }{
		{`-I DOCKER-USER -m mac --mac-source 00:11:22:33:44:55 -j DROP`, "-m mac"},
		{`-I DOCKER-USER -p tcp --syn -j DROP`, "--tcp-flags"},
		{`-I DOCKER-USER -j MARK --set-mark 1`, "-j MARK"},
		{`-A DOCKER-USER -m conntrack --ctstatus ASSURED -j ACCEPT`, "--ctstatus"},
		{`-I DOCKER -j DROP`, "only the rules of DOCKER-USER"},
	} {
		args, err := compat.SplitArgs(tc.line)
		require.NoError(t, err)
		r := mine(args...)
		require.Equal(t, 2, r.code, tc.line)
		require.Contains(t, r.stderr, tc.option, tc.line)
		require.Equal(t, before, mine("-S", "DOCKER-USER"), "%s: nothing written", tc.line)
	}
	// IPv6 goes to ip6 DOCKER-USER.
	r := dnftCLI(ctx, t, dnNS, "", "ip6tables", "-I", "DOCKER-USER", "-s", "fd00::/8", "-p", "tcp", "--dport", "22", "-j", "DROP")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, mustCLI(ctx, t, dnNS, "ip6tables", "-S", "DOCKER-USER"), "-A DOCKER-USER -s fd00::/8 -p tcp -m tcp --dport 22 -j DROP\n")
	require.Contains(t, mustNft(ctx, t, dnNS, "list", "chain", "ip6", "dnft", "DOCKER-USER"), "ip6 saddr fd00::/8 tcp dport 22 counter")
	require.NotContains(t, mustNft(ctx, t, dnNS, "list", "ruleset"), "xt ", "native nftables only")
}

// TestDockerUserNFTRules: rules added with nft are listed in iptables
// syntax when they have one (as real iptables lists the same rules typed
// as iptables commands), and marked, with their counters, when they do
// not: never dropped.
func TestDockerUserNFTRules(t *testing.T) {
	ctx := cvContext(t)
	_, rv := cvVariant(t)
	ns, refNS := harness.Scratch(t), harness.Scratch(t)
	fw := openFirewall(ctx, t, ns)
	require.NoError(t, ns.SetSysctl("net.ipv4.ip_forward", "1"))
	require.NoError(t, fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true}))
	mustNft(ctx, t, ns, "add set ip dnft blocked { type ipv4_addr; }")
	tool := "iptables-" + rv.String()
	for _, c := range []string{"-N DOCKER-USER", "-A DOCKER-USER -j RETURN"} {
		require.Zero(t, cvExec(ctx, refNS.Name, append([]string{tool}, strings.Fields(c)...)...).code)
	}
	for _, r := range []struct{ nft, iptables string }{
		{`iifname "lan0" tcp dport 22 counter drop`, "-I DOCKER-USER -i lan0 -p tcp --dport 22 -j DROP"},
		{`ip saddr @blocked counter drop`, ""},
		{`tcp dport { 80, 443 } ct state new counter accept`, "-I DOCKER-USER -p tcp -m multiport --dports 80,443 -m conntrack --ctstate NEW -j ACCEPT"},
		{`ip saddr 10.0.0.0/8 ip daddr != 172.16.0.0/12 counter return`, "-I DOCKER-USER -s 10.0.0.0/8 ! -d 172.16.0.0/12 -j RETURN"},
		{`limit rate 10/second counter accept`, ""},
	} {
		mustNft(ctx, t, ns, "insert rule ip dnft DOCKER-USER "+r.nft)
		if r.iptables != "" {
			res := cvExec(ctx, refNS.Name, append([]string{tool}, strings.Fields(r.iptables)...)...)
			require.Zero(t, res.code, res.stderr)
		}
	}
	got := mustCLI(ctx, t, ns, "iptables", "-S", "DOCKER-USER")
	var rest []string
	var marked []string
	for _, l := range strings.SplitAfter(got, "\n") {
		if strings.Contains(l, compat.NFTOnlyPrefix) {
			marked = append(marked, l)
		} else {
			rest = append(rest, l)
		}
	}
	want := cvExec(ctx, refNS.Name, tool, "-S", "DOCKER-USER")
	require.Equal(t, want.stdout, strings.Join(rest, ""))
	require.Equal(t, []string{
		`-A DOCKER-USER -m comment --comment "nft-only: limit rate 10/second counter accept"` + "\n",
		`-A DOCKER-USER -m comment --comment "nft-only: ip saddr @blocked counter drop"` + "\n",
	}, marked)
}
