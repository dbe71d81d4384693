package nft

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// RuleTexts returns the rules of one chain of dnft's table as the nft
// command prints them, in order, for people to read (the rules are never
// programmed from this text). It runs `nft -a list chain` and fails when
// the nft command is not installed.
//
// nft reads every set of the table with all its elements before it lists
// a chain (seconds at tens of thousands of published ports), so when the
// chain's rules refer to no set or object of the table, only to chains,
// they are copied into a table of a throwaway namespace and listed there;
// otherwise nft runs inside the connection's namespace.
func (c *Conn) RuleTexts(ctx context.Context, f Family, chain string) ([]string, error) {
	bin, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("list %s chain %s: %w", f, chain, err)
	}
	if texts, ok := c.scratchTexts(ctx, bin, f, chain); ok {
		return texts, nil
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

// scratchTexts lists a copy of the chain's rules in a throwaway
// namespace (see [Conn.RuleTexts]); ok is false when they cannot be
// copied there.
func (c *Conn) scratchTexts(ctx context.Context, bin string, f Family, chain string) (texts []string, ok bool) {
	rules, found, err := c.ReadRawRules(ctx, f, chain)
	if err != nil || !found {
		return nil, false
	}
	var jumps []string
	for i := range rules {
		refs, err := rules[i].References()
		if err != nil || len(refs.Objects) > 0 || slices.ContainsFunc(refs.Sets, func(s string) bool {
			return !strings.HasPrefix(s, "__set") && !strings.HasPrefix(s, "__map")
		}) {
			return nil, false
		}
		for _, j := range refs.Chains {
			if j != chain && !slices.Contains(jumps, j) {
				jumps = append(jumps, j)
			}
		}
		rules[i].Chain, rules[i].Insert, rules[i].Position = chain, false, 0
	}
	tx := &Tx{}
	tx.AddTable(f)
	for _, name := range append([]string{chain}, jumps...) {
		tx.AddChain(Chain{Family: f, Name: name})
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters a namespace of its own and is never given
		// back: it ends with this goroutine, and the namespace with it.
		runtime.LockOSThread()
		out, err := listInScratch(ctx, bin, f, chain, tx, rules)
		done <- result{out, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, false
	}
	texts = parseRuleTexts(string(r.out))
	return texts, len(texts) == len(rules)
}

// listInScratch moves the calling thread (locked) into a new network
// namespace, programs tx and rules there and lists the chain with nft.
func listInScratch(ctx context.Context, bin string, f Family, chain string, tx *Tx, rules []RawRule) ([]byte, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	ns, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ns)
	r, err := dialRaw(ns)
	if err != nil {
		return nil, err
	}
	defer r.close()
	first, last, err := encodeBatch(&r.w, tx, rules, 0)
	if err != nil {
		return nil, err
	}
	if err := r.send(); err != nil {
		return nil, err
	}
	if _, errno, err := r.batchResult(first, last); err != nil {
		return nil, err
	} else if errno != 0 {
		return nil, errno
	}
	return exec.CommandContext(ctx, bin, "-s", "-a", "list", "chain", f.String(), TableName, chain).Output()
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
