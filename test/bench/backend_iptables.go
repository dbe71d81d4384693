package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/dnft/dnft/portmap"
	"github.com/dnft/dnft/test/harness"
)

// iptablesBackend programs Docker's layout with real iptables of one
// variant ("nft" or "legacy"): with exec, one iptables process per rule
// with a -C check first (libnetwork's ProgramRule); without, one
// iptables-restore --noflush per operation. Its prefill always uses
// iptables-restore.
type iptablesBackend struct {
	ns      *harness.NS
	variant string
	exec    bool
	// stages isolates networks as Docker 20.10-28 really does, with
	// DOCKER-ISOLATION-STAGE-1 and -STAGE-2 (two rules per network)
	// instead of the contract's pairwise DOCKER-ISOLATION rules.
	stages bool
	// done and total count the execs of the current exec operation.
	done, total int
}

// Progress says how far the last exec operation got ("" without one).
func (p *iptablesBackend) Progress() string {
	if p.total == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d iptables execs done", p.done, p.total)
}

func (p *iptablesBackend) Name() string {
	name := "restore-" + p.variant
	if p.exec {
		name = "iptables-" + p.variant + "+C"
	}
	if p.stages {
		name += " " + stagesSuffix
	}
	return name
}

func (p *iptablesBackend) Init(ctx context.Context) error {
	chains, rules := initChains, InitRules()
	if p.stages {
		chains, rules = stageChains, StageInitRules()
	}
	if !p.exec {
		return p.restore(ctx, initScript(chains, rules))
	}
	for _, c := range chains {
		if err := p.iptables(ctx, "-t", c.Table, "-N", c.Name); err != nil {
			return err
		}
	}
	return p.program(ctx, rules, false)
}

// networkRules are the rules that creating network k adds in p's layout.
func (p *iptablesBackend) networkRules(k int) []Rule {
	if p.stages {
		return StageNetworkRules(k)
	}
	return NetworkRules(k)
}

func (p *iptablesBackend) CreateNetwork(ctx context.Context, k int) error {
	if !p.exec {
		return p.restore(ctx, restoreScript(p.networkRules(k), false))
	}
	return p.program(ctx, p.networkRules(k), false)
}

func (p *iptablesBackend) Publish(ctx context.Context, bs []portmap.Binding) error {
	if !p.exec {
		return p.restore(ctx, restoreScript(bindingRules(bs), false))
	}
	return p.program(ctx, bindingRules(bs), false)
}

func (p *iptablesBackend) Unpublish(ctx context.Context, bs []portmap.Binding) error {
	if !p.exec {
		return p.restore(ctx, restoreScript(bindingRules(bs), true))
	}
	return p.program(ctx, bindingRules(bs), true)
}

func (p *iptablesBackend) PrefillNetworks(ctx context.Context, from, to int) error {
	var rs []Rule
	for k := from; k < to; k++ {
		rs = append(rs, p.networkRules(k)...)
	}
	return p.restore(ctx, restoreScript(rs, false))
}

func (p *iptablesBackend) PrefillBindings(ctx context.Context, bs []portmap.Binding) error {
	return p.restore(ctx, restoreScript(bindingRules(bs), false))
}

func (p *iptablesBackend) Close() error { return nil }

// program applies rules one exec at a time, as Docker does: -C, then -A
// or -I when missing (for del: -C, then -D when present). A moved jump is
// -C, -D and -I.
func (p *iptablesBackend) program(ctx context.Context, rs []Rule, del bool) error {
	p.done, p.total = 0, 2*len(rs)
	for _, r := range rs {
		if r.Move {
			p.total++
		}
	}
	for _, r := range rs {
		exists, err := p.check(ctx, r)
		if err != nil {
			return err
		}
		switch {
		case del && exists:
			err = p.iptables(ctx, r.Args("-D")...)
		case del:
		case r.Move:
			if exists {
				if err = p.iptables(ctx, r.Args("-D")...); err != nil {
					return err
				}
			}
			err = p.iptables(ctx, r.Args("-I")...)
		case !exists:
			err = p.iptables(ctx, r.Args(r.AddOp())...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// check runs iptables -C: exit status 1 means the rule is missing.
func (p *iptablesBackend) check(ctx context.Context, r Rule) (bool, error) {
	_, code, err := runIn(ctx, p.ns, "", "iptables-"+p.variant, append([]string{"-w"}, r.Args("-C")...), 1)
	if err == nil {
		p.done++
	}
	return code == 0, err
}

func (p *iptablesBackend) iptables(ctx context.Context, args ...string) error {
	_, _, err := runIn(ctx, p.ns, "", "iptables-"+p.variant, append([]string{"-w"}, args...))
	if err == nil {
		p.done++
	}
	return err
}

func (p *iptablesBackend) restore(ctx context.Context, script string) error {
	_, _, err := runIn(ctx, p.ns, script, "iptables-"+p.variant+"-restore", []string{"-w", "--noflush"})
	return err
}

func bindingRules(bs []portmap.Binding) []Rule {
	rs := make([]Rule, 0, 3*len(bs))
	for _, b := range bs {
		rs = append(rs, BindingRules(b)...)
	}
	return rs
}

// restoreTables is the order of the tables in a restore script.
var restoreTables = []string{"raw", "nat", "filter"}

// initScript is the restore script of init: the chain declarations (safe
// only here: with --noflush, declaring an existing chain flushes it) and
// the rules.
func initScript(chains []Chain, rs []Rule) string {
	decl := map[string][]string{}
	for _, c := range chains {
		decl[c.Table] = append(decl[c.Table], ":"+c.Name+" - [0:0]")
	}
	return script(rs, false, decl)
}

// restoreScript renders rules as one iptables-restore input: -A/-I lines
// (or -D lines with del), a moved jump as -D and -I, grouped by table.
func restoreScript(rs []Rule, del bool) string { return script(rs, del, nil) }

func script(rs []Rule, del bool, decl map[string][]string) string {
	lines := map[string][]string{}
	for _, r := range rs {
		a := r.Args(r.AddOp())[2:]
		switch {
		case del:
			a = r.Args("-D")[2:]
		case r.Move:
			lines[r.Table] = append(lines[r.Table], strings.Join(r.Args("-D")[2:], " "))
		}
		lines[r.Table] = append(lines[r.Table], strings.Join(a, " "))
	}
	var sb strings.Builder
	for _, t := range restoreTables {
		if len(lines[t]) == 0 && len(decl[t]) == 0 {
			continue
		}
		sb.WriteString("*" + t + "\n")
		for _, l := range decl[t] {
			sb.WriteString(l + "\n")
		}
		for _, l := range lines[t] {
			sb.WriteString(l + "\n")
		}
		sb.WriteString("COMMIT\n")
	}
	return sb.String()
}
