package compat

import (
	"fmt"

	"github.com/dnft/dnft/nft"
)

// NFTOnlyPrefix starts the comment that stands for a DOCKER-USER rule
// without an iptables form (a named set, a limit, ...): the view lists
// it, with its counter, as a rule with no target whose only match is
// that comment, followed by the rule as nft lists it.
const NFTOnlyPrefix = "nft-only: "

// userRules translates the operator's rules of one family into iptables
// rules with their counters; a rule that has no iptables form is nil.
func userRules(f Family, rules []nft.ChainRule) []*Rule {
	out := make([]*Rule, len(rules))
	for i, cr := range rules {
		if cr.Err != nil {
			continue
		}
		nr, err := nft.DecodeRawRule(cr.RawRule)
		if err != nil {
			continue
		}
		r, err := UserRuleIPT(f, nr)
		if err != nil {
			continue
		}
		r.Counter = Counter{cr.Packets, cr.Bytes}
		out[i] = r
	}
	return out
}

// nftOnlyRule is the marked stand-in for rule i, which has no iptables
// form: its nft text when known, else its handle.
func nftOnlyRule(cr nft.ChainRule, texts []string, i int) *Rule {
	text := fmt.Sprintf("rule handle %d", cr.Handle)
	if i < len(texts) {
		text = texts[i]
	}
	return &Rule{
		Matches: []Match{{Name: "comment", Args: []string{"--comment", NFTOnlyPrefix + text}}},
		Counter: Counter{cr.Packets, cr.Bytes},
	}
}
