package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/nft"
)

// runEdit carries out an iptables command that changes DOCKER-USER (-A,
// -I, -D, -C, -F) in the namespace, as iptables would, and returns its
// exit code after writing iptables' diagnostics to stderr. Commands on
// other chains are refused (exit 2); a rule outside what dnft programs
// natively is refused naming the option (exit 2), and nothing is written.
func (a *app) runEdit(ctx context.Context, netns string, f compat.Family, v compat.Variant, names *compat.Names, e *compat.Edit, stderr io.Writer) (int, error) {
	prog := f.Tool()
	fail := func(code int, format string, args ...any) (int, error) {
		fmt.Fprintf(stderr, format, args...)
		return code, nil
	}
	if e.Table != compat.TableFilter || e.Chain != compat.UserChain {
		return a.editOtherChain(ctx, netns, f, v, e, stderr)
	}
	nf := nft.IPv4
	if f == compat.IPv6 {
		nf = nft.IPv6
	}
	edit := dnft.UserEdit{Family: nf, Pos: e.Num}
	switch e.Op {
	case 'A':
		edit.Op = dnft.UserAppend
	case 'I':
		edit.Op = dnft.UserInsert
	case 'D':
		edit.Op = dnft.UserDelete
	case 'C':
		edit.Op = dnft.UserCheck
	case 'F':
		edit.Op = dnft.UserFlush
	}
	if e.Rule != nil {
		r, err := compat.UserRuleNFT(f, compat.UserChain, e.Rule, names)
		var ue *compat.UnsupportedError
		if errors.As(err, &ue) {
			return fail(2, "%s %s: %v; nothing was changed\nTry `%s -h' or '%s --help' for more information.\n", prog, v.ProgramVersion(), err, prog, prog)
		}
		if err != nil {
			return 0, err
		}
		edit.Rule = r
	}
	err := a.withFirewallIn(ctx, netns, func(fw *dnft.Firewall) error { return fw.EditUser(ctx, edit) })
	switch {
	case errors.Is(err, dnft.ErrNoUserRule):
		return fail(1, "%s: Bad rule (does a matching rule exist in that chain?).\n", prog)
	case errors.Is(err, dnft.ErrUserIndex) && e.Op == 'I':
		return fail(1, "%s: Index of insertion too big.\n", prog)
	case errors.Is(err, dnft.ErrUserIndex):
		return fail(1, "%s: Index of deletion too big.\n", prog)
	}
	return 0, err
}

// editOtherChain answers a changing command on a chain other than
// DOCKER-USER: iptables' error for a chain the view does not have, else
// dnft's refusal.
func (a *app) editOtherChain(ctx context.Context, netns string, f compat.Family, v compat.Variant, e *compat.Edit, stderr io.Writer) (int, error) {
	prog := f.Tool()
	view, _, done, err := readView(ctx, netns, compat.ReadOptions{})
	if err != nil {
		return 0, err
	}
	defer done()
	t := view.Family(f).Table(e.Table)
	if t == nil {
		ee := compat.TableError(f, v, e.Table)
		fmt.Fprint(stderr, ee.Stderr)
		return ee.Code, nil
	}
	if e.Chain != "" && t.Chain(e.Chain) == nil {
		fmt.Fprintf(stderr, "%s: No chain/target/match by that name.\n", prog)
		return 1, nil
	}
	what := "chain " + e.Chain
	if e.Chain == "" {
		what = "every chain of table " + e.Table
	}
	fmt.Fprintf(stderr, "%s %s: -%c on %s: only the rules of %s (table filter) can be changed with iptables commands; the rest is dnft's, changed with dnft's commands\n",
		prog, v.ProgramVersion(), e.Op, what, compat.UserChain)
	return 2, nil
}

// withFirewallIn is withFirewall for a namespace given to the command.
func (a *app) withFirewallIn(ctx context.Context, netns string, fn func(*dnft.Firewall) error) error {
	saved := a.netns
	a.netns = netns
	defer func() { a.netns = saved }()
	return a.withFirewall(ctx, fn)
}
