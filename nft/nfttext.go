package nft

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// RuleTexts returns the rules of one chain of dnft's table as the nft
// command prints them, in order, for people to read (the rules are never
// programmed from this text). It runs `nft -a list chain` inside the
// connection's namespace and fails when the nft command is not installed.
func (c *Conn) RuleTexts(ctx context.Context, f Family, chain string) ([]string, error) {
	bin, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("list %s chain %s: %w", f, chain, err)
	}
	var out []byte
	err = c.inNetNS(func() error {
		var err error
		out, err = exec.CommandContext(ctx, bin, "-s", "-a", "list", "chain", f.String(), TableName, chain).Output()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nft list %s chain %s: %w", f, chain, err)
	}
	return parseRuleTexts(string(out)), nil
}

// parseRuleTexts picks the rules out of `nft -a list chain` output: the
// lines that end in a handle, less the table and chain lines.
func parseRuleTexts(out string) []string {
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		i := strings.LastIndex(line, " # handle ")
		if i < 0 || strings.HasPrefix(line, "table ") || strings.HasPrefix(line, "chain ") {
			continue
		}
		rules = append(rules, line[:i])
	}
	return rules
}
