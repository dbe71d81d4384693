package compat

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseRuleset parses the output of iptables-save (with or without -c) or
// of iptables -S (with or without -v) into a new ruleset; see
// [Ruleset.Parse].
func ParseRuleset(f Family, table, text string, names *Names) (*Ruleset, error) {
	rs := NewRuleset(f)
	if err := rs.Parse(table, text, names); err != nil {
		return nil, err
	}
	return rs, nil
}

// Parse adds the chains and rules of iptables-save output (with or
// without -c) or of iptables -S output (with or without -v) to the
// ruleset. Lines of -S output go to table (iptables-save output names its
// tables). Every table the text lists is marked present, and the order of
// iptables-save's tables is kept as SaveOrder. names resolves
// protocol names from the protocols file (nil: iptables' built-in names).
func (rs *Ruleset) Parse(table, text string, names *Names) error {
	cur := rs.Table(table)
	if cur == nil {
		return fmt.Errorf("parse ruleset: unknown table %q", table)
	}
	for n, line := range strings.Split(text, "\n") {
		if err := parseLine(rs, &cur, names, strings.TrimSpace(line)); err != nil {
			return fmt.Errorf("parse ruleset: line %d %q: %w", n+1, line, err)
		}
	}
	return nil
}

func parseLine(rs *Ruleset, cur **Table, names *Names, line string) error {
	switch {
	case line == "" || line[0] == '#' || line == "COMMIT":
		return nil
	case line[0] == '*':
		t := rs.Table(line[1:])
		if t == nil {
			return fmt.Errorf("unknown table %q", line[1:])
		}
		t.Present, *cur = true, t
		if !slices.Contains(rs.SaveOrder, t.Name) {
			rs.SaveOrder = append(rs.SaveOrder, t.Name)
		}
		return nil
	case line[0] == ':':
		name, rest, _ := strings.Cut(line[1:], " ")
		pol, ctr, _ := strings.Cut(rest, " ")
		c, err := parseBracketCounter(ctr)
		if err != nil {
			return err
		}
		return declareChain(*cur, name, pol, c)
	}
	var ctr *Counter
	if line[0] == '[' {
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return errors.New("need ]")
		}
		c, err := parseBracketCounter(line[:end+1])
		if err != nil {
			return err
		}
		ctr, line = &c, strings.TrimSpace(line[end+1:])
	}
	args, err := SplitArgs(line)
	if err != nil {
		return err
	}
	t := *cur
	t.Present = true
	if len(args) < 2 {
		return errors.New("need a command and a chain")
	}
	switch args[0] {
	case "-P":
		if len(args) < 3 {
			return errors.New("-P needs a chain and a policy")
		}
		var c Counter
		if len(args) == 6 && args[3] == "-c" {
			p, err1 := strconv.ParseUint(args[4], 10, 64)
			b, err2 := strconv.ParseUint(args[5], 10, 64)
			if err1 != nil || err2 != nil {
				return errors.New("bad policy counters")
			}
			c = Counter{p, b}
		}
		return declareChain(t, args[1], args[2], c)
	case "-N":
		return declareChain(t, args[1], "-", Counter{})
	case "-A":
		r, err := ParseRuleArgs(rs.Family, args[2:], names)
		if err != nil {
			return err
		}
		if ctr != nil {
			r.Counter = *ctr
		}
		return t.Append(args[1], r)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// declareChain records a chain line: a policy for a built-in chain, or
// "-" for a user chain (created unless it exists).
func declareChain(t *Table, name, policy string, c Counter) error {
	if policy == "-" {
		if t.Chain(name) != nil {
			return nil
		}
		return t.NewChain(name)
	}
	ch := t.Chain(name)
	if ch == nil || !ch.Builtin() {
		return fmt.Errorf("%s is not a built-in chain of %s", name, t.Name)
	}
	if policy != "ACCEPT" && policy != "DROP" {
		return fmt.Errorf("bad policy %q", policy)
	}
	ch.Policy, ch.PolicyCounter = policy, c
	return nil
}

// parseBracketCounter parses "[PKTS:BYTES]"; "" is a zero counter.
func parseBracketCounter(s string) (Counter, error) {
	if s == "" {
		return Counter{}, nil
	}
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return Counter{}, fmt.Errorf("bad counter %q", s)
	}
	p, b, ok := strings.Cut(s[1:len(s)-1], ":")
	pn, err1 := strconv.ParseUint(p, 10, 64)
	bn, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Counter{}, fmt.Errorf("bad counter %q", s)
	}
	return Counter{pn, bn}, nil
}
