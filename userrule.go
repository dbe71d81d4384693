package dnft

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/nft"
)

// ParseUserRule reads one operator's DOCKER-USER rule of family f written
// as text, into the raw form the state keeps and dnft programs:
//
//   - iptables: the arguments of an iptables rule, as after `iptables -A
//     DOCKER-USER` (a leading "-A DOCKER-USER" is accepted), for
//     example `-i lan0 -p tcp --dport 22 -j DROP`;
//   - otherwise nftText: the rule in nft's syntax, as after `nft add rule
//     ip dnft DOCKER-USER`, for example `iifname "lan0" tcp dport 22 drop`.
//
// Both read the subset that Docker's documentation and common DOCKER-USER
// scripts use (see package compat, user.go, and nft.ParseRuleText); the
// rule is written as native nftables expressions. A rule outside it is an
// error naming the option or word that is not supported. The returned
// rule's NFT is nftText when that was the source.
func ParseUserRule(f nft.Family, iptables, nftText string) (UserRule, error) {
	var nr nft.Rule
	switch {
	case strings.TrimSpace(iptables) != "":
		r, err := parseIPTablesRule(f, iptables)
		if err != nil {
			return UserRule{}, err
		}
		nr = r
	case strings.TrimSpace(nftText) != "":
		r, err := nft.ParseRuleText(f, nftText)
		if err != nil {
			return UserRule{}, fmt.Errorf("nft rule %q: %w", nftText, err)
		}
		nr = r
	default:
		return UserRule{}, errors.New("empty rule")
	}
	nr.Family, nr.Chain = f, chains.DockerUser
	raw, err := nft.EncodeUserRule(nr)
	if err != nil {
		return UserRule{}, err
	}
	out := UserRule{Family: f, Expr: raw.Exprs, Sets: raw.Sets, Comment: raw.Comment}
	if strings.TrimSpace(iptables) == "" {
		out.NFT = nftText
	}
	return out, nil
}

// parseIPTablesRule reads iptables arguments into the native rule.
func parseIPTablesRule(f nft.Family, text string) (nft.Rule, error) {
	cf := compat.IPv4
	if f == nft.IPv6 {
		cf = compat.IPv6
	}
	args, err := compat.SplitArgs(text)
	if err != nil {
		return nft.Rule{}, fmt.Errorf("iptables rule %q: %w", text, err)
	}
	if len(args) >= 2 && (args[0] == "-A" || args[0] == "--append") {
		if args[1] != chains.DockerUser {
			return nft.Rule{}, fmt.Errorf("iptables rule %q: only %s rules are the operator's", text, chains.DockerUser)
		}
		args = args[2:]
	}
	names, err := compat.SystemNames(nil)
	if err != nil {
		return nft.Rule{}, err
	}
	r, err := compat.ParseRuleArgs(cf, args, names)
	if err != nil {
		return nft.Rule{}, fmt.Errorf("iptables rule %q: %w", text, err)
	}
	nr, err := compat.UserRuleNFT(cf, chains.DockerUser, r, names)
	if err != nil {
		return nft.Rule{}, fmt.Errorf("iptables rule %q: %w", text, err)
	}
	return nr, nil
}

// UserRuleIPTables returns a rule's iptables form, as iptables-save writes
// it after "-A DOCKER-USER " (for example `-i lan0 -p tcp -m tcp --dport
// 22 -j DROP`), or false when it has none (it is then kept as its
// expressions).
func UserRuleIPTables(r UserRule) (string, bool) {
	nr, err := nft.DecodeRawRule(nft.RawRule{Family: r.Family, Chain: chains.DockerUser, Exprs: r.Expr, Sets: r.Sets, Comment: r.Comment})
	if err != nil {
		return "", false
	}
	cf := compat.IPv4
	if r.Family == nft.IPv6 {
		cf = compat.IPv6
	}
	ir, err := compat.UserRuleIPT(cf, nr)
	if err != nil {
		return "", false
	}
	// The iptables text must program the very same rule.
	again, err := compat.UserRuleNFT(cf, chains.DockerUser, ir, nil)
	if err != nil {
		return "", false
	}
	back, err := nft.EncodeUserRule(again)
	if err != nil || string(back.Exprs) != string(r.Expr) || !sameSets(back.Sets, r.Sets) {
		return "", false
	}
	return strings.TrimPrefix(ir.Spec(cf, false, nil), " "), true
}

func sameSets(a, b []nft.AnonSet) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.KeyType != y.KeyType || x.KeyLen != y.KeyLen || x.Interval != y.Interval || len(x.Elements) != len(y.Elements) {
			return false
		}
		for j := range x.Elements {
			if string(x.Elements[j].Key) != string(y.Elements[j].Key) || x.Elements[j].End != y.Elements[j].End {
				return false
			}
		}
	}
	return true
}
