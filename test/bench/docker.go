package bench

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dnft/dnft/portmap"
)

// Rule is one rule of Docker's iptables layout (CONTRACT.md §2, userland
// proxy on, protected mode), with its translation for the nft baseline.
type Rule struct {
	// Table is "filter", "nat" or "raw"; Chain is the iptables chain.
	Table, Chain string
	// Insert means -I (at the top of the chain) instead of -A.
	Insert bool
	// Spec holds the iptables match and target arguments.
	Spec []string
	// NFT is the rule's statement in nft syntax, for chain [NFTChain]
	// unless NFTIn names another chain.
	NFT, NFTIn string
	// Move marks a FORWARD jump that Docker moves to the top (delete and
	// insert again); the nft baseline keeps its jumps in a base chain of
	// its own and skips it.
	Move bool
}

// Args returns the iptables arguments that apply op ("-A", "-I", "-C" or
// "-D") to the rule.
func (r Rule) Args(op string) []string {
	a := []string{"-t", r.Table, op, r.Chain}
	return append(a, r.Spec...)
}

// NFTChainName returns the nft baseline's chain of the rule.
func (r Rule) NFTChainName() string {
	if r.NFTIn != "" {
		return r.NFTIn
	}
	return NFTChain(r.Table, r.Chain)
}

// AddOp returns "-I" or "-A".
func (r Rule) AddOp() string {
	if r.Insert {
		return "-I"
	}
	return "-A"
}

// Chain is a user-defined iptables chain that init creates.
type Chain struct{ Table, Name string }

// initChains are created by init before [InitRules], in this order.
var initChains = []Chain{{"nat", "DOCKER"}, {"filter", "DOCKER"}, {"filter", "DOCKER-ISOLATION"}, {"filter", "DOCKER-USER"}}

// NFTChain returns the nft baseline's chain for an iptables chain.
func NFTChain(table, chain string) string { return table + "-" + chain }

// nftTable is the nft baseline's table; nftHeader creates it and its
// chains. FORWARD's jumps live in filter-FORWARD-jumps, a base chain
// that runs just before filter-FORWARD, so they never need moving.
const nftTable = "ip docker"

const nftHeader = `add table ip docker
add chain ip docker raw-PREROUTING { type filter hook prerouting priority raw; }
add chain ip docker nat-PREROUTING { type nat hook prerouting priority dstnat; }
add chain ip docker nat-OUTPUT { type nat hook output priority -100; }
add chain ip docker nat-POSTROUTING { type nat hook postrouting priority srcnat; }
add chain ip docker filter-FORWARD-jumps { type filter hook forward priority -1; }
add chain ip docker filter-FORWARD { type filter hook forward priority 0; }
add chain ip docker nat-DOCKER
add chain ip docker filter-DOCKER
add chain ip docker filter-DOCKER-ISOLATION
add chain ip docker filter-DOCKER-USER
`

// InitRules returns the rules of init, after [initChains] exist.
func InitRules() []Rule {
	return []Rule{
		{Table: "nat", Chain: "PREROUTING", Spec: sp("-m addrtype --dst-type LOCAL -j DOCKER"), NFT: "fib daddr type local jump nat-DOCKER"},
		{Table: "nat", Chain: "OUTPUT", Spec: sp("! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"), NFT: "ip daddr != 127.0.0.0/8 fib daddr type local jump nat-DOCKER"},
		{Table: "filter", Chain: "DOCKER-ISOLATION", Spec: sp("-j RETURN"), NFT: "return"},
		{Table: "filter", Chain: "DOCKER-USER", Spec: sp("-j RETURN"), NFT: "return"},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-j DOCKER-ISOLATION"), NFT: "jump filter-DOCKER-ISOLATION", NFTIn: "filter-FORWARD-jumps"},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-j DOCKER-USER"), NFT: "jump filter-DOCKER-USER", NFTIn: "filter-FORWARD-jumps"},
	}
}

// Network k of a run: network 0 is "net0" on bridge br0 with 172.18.0.0/16
// (where every binding is published, and the harness's bridge in the
// data-plane runs); network k>0 is "netK" on bridge "bnK" with
// 10.(k/256).(k%256).0/24.
func networkName(k int) string { return "net" + strconv.Itoa(k) }

func bridgeName(k int) string {
	if k == 0 {
		return "br0"
	}
	return "bn" + strconv.Itoa(k)
}

func subnet(k int) netip.Prefix {
	if k == 0 {
		return netip.MustParsePrefix("172.18.0.0/16")
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k / 256), byte(k % 256), 0}), 24)
}

// NetworkRules returns the rules that creating network k adds, with the
// isolation pairs against networks 0..k-1 and the two jump moves.
func NetworkRules(k int) []Rule {
	B, S := bridgeName(k), subnet(k).String()
	q := strconv.Quote
	rs := []Rule{
		{Table: "nat", Chain: "POSTROUTING", Insert: true, Spec: sp("-s", S, "! -o", B, "-j MASQUERADE"), NFT: fmt.Sprintf("ip saddr %s oifname != %s masquerade", S, q(B))},
		{Table: "nat", Chain: "DOCKER", Insert: true, Spec: sp("-i", B, "-j RETURN"), NFT: fmt.Sprintf("iifname %s return", q(B))},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-i", B, "-o", B, "-j ACCEPT"), NFT: fmt.Sprintf("iifname %s oifname %s accept", q(B), q(B))},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-i", B, "! -o", B, "-j ACCEPT"), NFT: fmt.Sprintf("iifname %s oifname != %s accept", q(B), q(B))},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-o", B, "-j DOCKER"), NFT: fmt.Sprintf("oifname %s jump filter-DOCKER", q(B))},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-o", B, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"), NFT: fmt.Sprintf("oifname %s ct state related,established accept", q(B))},
		{Table: "filter", Chain: "DOCKER", Spec: sp("! -i", B, "-o", B, "-j DROP"), NFT: fmt.Sprintf("iifname != %s oifname %s drop", q(B), q(B))},
		{Table: "raw", Chain: "PREROUTING", Spec: sp("-d", S, "! -i", B, "-m addrtype ! --dst-type LOCAL -j DROP"), NFT: fmt.Sprintf("ip daddr %s iifname != %s fib daddr type != local drop", S, q(B))},
	}
	for o := 0; o < k; o++ {
		O := bridgeName(o)
		rs = append(rs,
			Rule{Table: "filter", Chain: "DOCKER-ISOLATION", Insert: true, Spec: sp("-i", O, "-o", B, "-j DROP"), NFT: fmt.Sprintf("iifname %s oifname %s drop", q(O), q(B))},
			Rule{Table: "filter", Chain: "DOCKER-ISOLATION", Insert: true, Spec: sp("-i", B, "-o", O, "-j DROP"), NFT: fmt.Sprintf("iifname %s oifname %s drop", q(B), q(O))},
		)
	}
	return append(rs,
		Rule{Table: "filter", Chain: "FORWARD", Insert: true, Move: true, Spec: sp("-j DOCKER-ISOLATION")},
		Rule{Table: "filter", Chain: "FORWARD", Insert: true, Move: true, Spec: sp("-j DOCKER-USER")},
	)
}

// stagesSuffix ends the names of the baselines with Docker's
// STAGE-1/2 isolation.
const stagesSuffix = "STAGE-1/2"

// stageChains are the chains of init in Docker's two-stage isolation
// layout (Docker 20.10 to 28): DOCKER-ISOLATION-STAGE-1 and -STAGE-2
// instead of DOCKER-ISOLATION.
var stageChains = []Chain{{"nat", "DOCKER"}, {"filter", "DOCKER"}, {"filter", "DOCKER-ISOLATION-STAGE-1"}, {"filter", "DOCKER-ISOLATION-STAGE-2"}, {"filter", "DOCKER-USER"}}

// StageInitRules are the rules of init in the two-stage layout.
func StageInitRules() []Rule {
	return []Rule{
		{Table: "nat", Chain: "PREROUTING", Spec: sp("-m addrtype --dst-type LOCAL -j DOCKER")},
		{Table: "nat", Chain: "OUTPUT", Spec: sp("! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")},
		{Table: "filter", Chain: "DOCKER-ISOLATION-STAGE-1", Spec: sp("-j RETURN")},
		{Table: "filter", Chain: "DOCKER-ISOLATION-STAGE-2", Spec: sp("-j RETURN")},
		{Table: "filter", Chain: "DOCKER-USER", Spec: sp("-j RETURN")},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-j DOCKER-ISOLATION-STAGE-1")},
		{Table: "filter", Chain: "FORWARD", Insert: true, Spec: sp("-j DOCKER-USER")},
	}
}

// StageNetworkRules are the rules that creating network k adds in the
// two-stage layout: the same as [NetworkRules] but, instead of two
// DOCKER-ISOLATION rules per pair of networks, two rules per network
// (libnetwork's setINC): traffic from the bridge to another interface goes
// to STAGE-2, which drops what goes to any Docker bridge.
func StageNetworkRules(k int) []Rule {
	B := bridgeName(k)
	var rs []Rule
	for _, r := range NetworkRules(0)[:8] {
		rs = append(rs, renamed(r, bridgeName(0), B, subnet(0).String(), subnet(k).String()))
	}
	return append(rs,
		Rule{Table: "filter", Chain: "DOCKER-ISOLATION-STAGE-1", Insert: true, Spec: sp("-i", B, "! -o", B, "-j DOCKER-ISOLATION-STAGE-2")},
		Rule{Table: "filter", Chain: "DOCKER-ISOLATION-STAGE-2", Insert: true, Spec: sp("-o", B, "-j DROP")},
		Rule{Table: "filter", Chain: "FORWARD", Insert: true, Move: true, Spec: sp("-j DOCKER-ISOLATION-STAGE-1")},
		Rule{Table: "filter", Chain: "FORWARD", Insert: true, Move: true, Spec: sp("-j DOCKER-USER")},
	)
}

// renamed is a network rule of network 0 rewritten for another bridge and
// subnet (the iptables form only).
func renamed(r Rule, b0, b, s0, s string) Rule {
	spec := make([]string, len(r.Spec))
	for i, a := range r.Spec {
		switch a {
		case b0:
			a = b
		case s0:
			a = s
		}
		spec[i] = a
	}
	return Rule{Table: r.Table, Chain: r.Chain, Insert: r.Insert, Spec: spec}
}

// Binding i of a run (i >= 0) is published on network 0: TCP host port
// 10000+i (all addresses) to 172.18.(i/250).(i%250+2), same port; past
// port 65535, UDP ports from 10000 again (up to 65,536-10,000 bindings
// of each protocol: the state workloads reach 65,000).
func binding(i int) portmap.Binding {
	proto, port := portmap.TCP, 10000+i
	if i >= 65536-10000 { // past the TCP ports: UDP, from 10000 again
		proto, port = portmap.UDP, 10000+i-(65536-10000)
	}
	return portmap.Binding{
		Proto:         proto,
		HostPort:      uint16(port),
		ContainerIP:   netip.AddrFrom4([4]byte{172, 18, byte(i / 250 % 256), byte(i%250 + 2)}),
		ContainerPort: uint16(port),
	}
}

func bindings(from, n int) []portmap.Binding {
	bs := make([]portmap.Binding, n)
	for i := range bs {
		bs[i] = binding(from + i)
	}
	return bs
}

// BindingRules returns the three rules of a binding on network 0 (bound to
// all addresses): nat DOCKER DNAT, filter DOCKER accept, hairpin masquerade.
// The nft forms carry a comment naming the binding, to find their handles.
func BindingRules(b portmap.Binding) []Rule {
	B, P := bridgeName(0), string(b.Proto)
	C := b.ContainerIP.String()
	hp, cp := strconv.Itoa(int(b.HostPort)), strconv.Itoa(int(b.ContainerPort))
	to := netip.AddrPortFrom(b.ContainerIP, b.ContainerPort).String()
	c := fmt.Sprintf(" comment %q", bindingComment(b))
	return []Rule{
		{Table: "nat", Chain: "DOCKER", Spec: sp("! -i", B, "-p", P, "-m", P, "--dport", hp, "-j DNAT --to-destination", to),
			NFT: fmt.Sprintf("iifname != %q %s dport %s dnat to %s%s", B, P, hp, to, c)},
		{Table: "filter", Chain: "DOCKER", Insert: true, Spec: sp("-d", C+"/32", "! -i", B, "-o", B, "-p", P, "-m", P, "--dport", cp, "-j ACCEPT"),
			NFT: fmt.Sprintf("ip daddr %s iifname != %q oifname %q %s dport %s accept%s", C, B, B, P, cp, c)},
		{Table: "nat", Chain: "POSTROUTING", Spec: sp("-s", C+"/32", "-d", C+"/32", "-p", P, "-m", P, "--dport", cp, "-j MASQUERADE"),
			NFT: fmt.Sprintf("ip saddr %s ip daddr %s %s dport %s masquerade%s", C, C, P, cp, c)},
	}
}

// sp splits each argument at spaces and joins the pieces: sp("-i", B,
// "-j ACCEPT") is ["-i", B, "-j", "ACCEPT"].
func sp(parts ...string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, strings.Fields(p)...)
	}
	return out
}

// bindingComment names a binding in the nft baseline's rule comments.
func bindingComment(b portmap.Binding) string {
	return fmt.Sprintf("%s:%d", b.Proto, b.HostPort)
}
