package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
	"github.com/dnft/dnft/nft"
)

// iptablesExit is the outcome of an emulated iptables command that has
// already written its output and diagnostics: only its exit code is left
// to report (see exitStatus).
type iptablesExit struct{ code int }

// Error says which exit status the command had.
func (e *iptablesExit) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitStatus is the process exit code; errors.go uses it instead of its
// own mapping and prints nothing for the error.
func (e *iptablesExit) exitStatus() int { return e.code }

// variantEnv overrides the iptables variant the view imitates.
const variantEnv = "DNFT_IPTABLES_VARIANT"

// systemVariant returns the iptables variant whose messages and
// iptables-save header the view imitates: $DNFT_IPTABLES_VARIANT ("nft"
// or "legacy") if set, else the one the system's "iptables" command runs
// (the target of its alternatives symlink), else nft.
func systemVariant() compat.Variant {
	switch os.Getenv(variantEnv) {
	case "legacy":
		return compat.Legacy
	case "nft":
		return compat.NFT
	}
	if p, err := exec.LookPath("iptables"); err == nil {
		if target, err := filepath.EvalSymlinks(p); err == nil && strings.Contains(filepath.Base(target), "legacy") {
			return compat.Legacy
		}
	}
	return compat.NFT
}

// splitNetns takes --netns VALUE and --netns=VALUE out of the arguments of
// a command that parses its own arguments (iptables has no such option).
func splitNetns(args []string) (netns string, rest []string, err error) {
	netns, rest, err = splitFlag(args, "netns")
	if err == nil && netns == "" && len(rest) < len(args) {
		return "", nil, usageErr(errEmptyNetns)
	}
	return netns, rest, err
}

// splitFlag takes --NAME VALUE and --NAME=VALUE out of arguments that
// iptables reads (dnft's own options of the iptables commands).
func splitFlag(args []string, name string) (value string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--"+name:
			if i+1 >= len(args) {
				return "", nil, usageErrorf("flag needs an argument: --%s", name)
			}
			value = args[i+1]
			i++
		case strings.HasPrefix(a, "--"+name+"="):
			value = strings.TrimPrefix(a, "--"+name+"=")
		default:
			rest = append(rest, a)
		}
	}
	return value, rest, nil
}

// openConn opens an nftables connection in a namespace ("" for the
// current one); a namespace that does not exist is bad input.
func openConn(ctx context.Context, netns string) (*nft.Conn, error) {
	conn, err := nft.Open(ctx, netns)
	if err != nil {
		return nil, netnsError(netns, err)
	}
	return conn, nil
}

// tablesGone fails, as check, save and list do, when dnft's tables are
// gone although dnft left them (see [dnft.Uninitialized]), or when its ip
// table, which holds its records, is gone while another is left.
func tablesGone(ctx context.Context, conn *nft.Conn) error {
	if ok, err := conn.TableExists(ctx, nft.IPv4); err != nil || ok {
		return err
	}
	for _, f := range nft.TableFamilies {
		ok, err := conn.TableExists(ctx, f)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: the ip table %s was deleted by someone else (run dnft check)", dnft.ErrStateUnknown, nft.TableName)
		}
	}
	if err := dnft.Uninitialized(conn); err != nil {
		return fmt.Errorf("%w (run dnft check)", err)
	}
	return nil
}

// readView reads dnft's iptables view of a namespace and the names
// iptables would print (DNS questions are asked from that namespace);
// call done when the view has been printed.
func readView(ctx context.Context, netns string, opt compat.ReadOptions) (v *compat.View, names *compat.Names, done func(), err error) {
	conn, err := openConn(ctx, netns)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err = compat.ReadWith(ctx, conn, opt)
	if err == nil {
		names, err = compat.SystemNames(conn.DialContext)
	}
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	if err := tablesGone(ctx, conn); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return v, names, func() { conn.Close() }, nil
}

// runView reads the view and runs fn, which writes the command's output
// and returns its exit code. tables says which tables the command shows
// (nil: all), so that only their counters are read.
func (a *app) runView(c *cobra.Command, args []string, tables func(args []string) []string, fn func(v *compat.View, names *compat.Names, args []string, stdout, stderr io.Writer) int) error {
	netns, rest, err := splitNetns(args)
	if err != nil {
		return err
	}
	if netns == "" {
		netns = a.netns
	}
	layout, rest, err := splitFlag(rest, "layout")
	if err != nil {
		return err
	}
	if _, err := compat.ParseLayout(layout); err != nil {
		return err
	}
	v, names, done, err := readView(c.Context(), netns, compat.ReadOptions{Tables: tables(rest), Layout: layout})
	if err != nil {
		return err
	}
	defer done()
	if code := fn(v, names, rest, c.OutOrStdout(), c.ErrOrStderr()); code != 0 {
		return &iptablesExit{code}
	}
	return nil
}

const iptablesLong = `Shows what dnft programmed as %[1]s would list it if Docker's classic
bridge driver had programmed it with %[1]s: the same chains, rules, order,
counters and formats, byte for byte (iptables %[2]s). The rules are rebuilt
from dnft's state as read back from the kernel; counters come from dnft's
rule and element counters (see package compat).

Arguments are read as %[1]s reads them (order matters: "-L -n DOCKER" is
a bad argument, "-L DOCKER -n" is not), with its messages and exit codes:
1 for a missing chain, 2 for a bad argument, 3 for an unknown table.

The layout is the one recorded at init (dnft init --layout; dnft docker
records the followed daemon's); --layout classic|stages shows another:
classic is CONTRACT.md's (one DOCKER-ISOLATION chain), stages Docker
17.06-27's (DOCKER-ISOLATION-STAGE-1/2, per-port rules appended once, as
dockerd 20.10 writes them).

DOCKER-USER is the operator's: -A, -I, -D (by rule or number), -C and -F
change it as %[1]s would, one atomic batch each, written as native
nftables (no xt). Rules may use [!] -s/-d, [!] -i/-o (NAME+ too), [!] -p,
-m tcp|udp|sctp --sport/--dport, -m multiport --sports/--dports,
-m conntrack --ctstate/--ctorigsrc/--ctorigdst/--ctorigsrcport/--ctorigdstport,
-m iprange --src-range/--dst-range, -m icmp --icmp-type (ip6tables: -m icmp6
--icmpv6-type), -m comment, and -j ACCEPT|DROP|RETURN|REJECT [--reject-with]|
LOG [--log-prefix --log-level --log-*]. Anything else is refused naming the
option (exit 2) and nothing is written. Every other chain is dnft's.

Names of addresses are looked up as iptables does: the hosts line of
/etc/nsswitch.conf (files: /etc/hosts; dns: a PTR question to the servers
of /etc/resolv.conf, asked from the namespace shown), and /etc/networks
for an IPv4 address whose lookup failed (a DNS server that cannot be
reached: 127.0.0.0/8 shows as loopback/8). Service names come from
/etc/services. Messages and the
iptables-save header follow the system's iptables variant (nft or legacy;
set %[3]s to choose).`

// newIPTablesCmd returns `dnft iptables`.
func newIPTablesCmd(a *app) *cobra.Command { return newViewCmd(a, compat.IPv4) }

// newIP6TablesCmd returns `dnft ip6tables`.
func newIP6TablesCmd(a *app) *cobra.Command { return newViewCmd(a, compat.IPv6) }

// newIPTablesSaveCmd returns `dnft iptables-save`.
func newIPTablesSaveCmd(a *app) *cobra.Command { return newSaveCmd(a, compat.IPv4) }

// newIP6TablesSaveCmd returns `dnft ip6tables-save`.
func newIP6TablesSaveCmd(a *app) *cobra.Command { return newSaveCmd(a, compat.IPv6) }

// newViewCmd returns `dnft iptables` (IPv4) or `dnft ip6tables`.
func newViewCmd(a *app, f compat.Family) *cobra.Command {
	tool := f.Tool()
	return &cobra.Command{
		Use:                tool + " [--layout classic|stages] [-t TABLE] (-L [CHAIN [RULE]] [-n] [-v] [-x] [--line-numbers] | -S [CHAIN [RULE]] [-v] | -A|-I|-D|-C|-F DOCKER-USER ...)",
		Short:              "Show dnft's rules as " + tool + " -L / -S would list them",
		Long:               fmt.Sprintf(iptablesLong, tool, compat.Version, variantEnv),
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			// The view of thousands of bindings allocates a lot and lives
			// for one command: collect garbage less often.
			debug.SetGCPercent(400)
			variant := systemVariant()
			if done, err := a.maybeEdit(c, f, variant, args); done || err != nil {
				return err
			}
			shown := func(args []string) []string {
				if cmd, _, err := compat.ParseCommand(f, variant, args); err == nil && (cmd.List || cmd.ListRules) {
					return []string{cmd.Table}
				}
				return nil
			}
			return a.runView(c, args, shown, func(v *compat.View, names *compat.Names, args []string, stdout, stderr io.Writer) int {
				return compat.Run(v.Family(f), variant, names, args, stdout, stderr)
			})
		},
	}
}

// maybeEdit carries out the command when it changes rules (-A, -I, -D,
// -C, -F, ...): done is true then, and the error carries the exit code.
func (a *app) maybeEdit(c *cobra.Command, f compat.Family, v compat.Variant, args []string) (done bool, err error) {
	netns, rest, err := splitNetns(args)
	if err != nil {
		return true, err
	}
	if netns == "" {
		netns = a.netns
	}
	if _, rest, err = splitFlag(rest, "layout"); err != nil {
		return true, err
	}
	names, err := compat.SystemNames(nil)
	if err != nil {
		return true, err
	}
	e, ok, err := compat.ParseEdit(f, v, rest, names)
	if !ok {
		return false, nil
	}
	var ee *compat.ExitError
	if errors.As(err, &ee) {
		io.WriteString(c.ErrOrStderr(), ee.Stderr)
		return true, &iptablesExit{ee.Code}
	}
	if err != nil {
		return true, err
	}
	code, err := a.runEdit(c.Context(), netns, f, v, names, e, c.ErrOrStderr())
	if err != nil {
		return true, err
	}
	if code != 0 {
		return true, &iptablesExit{code}
	}
	return true, nil
}

// newSaveCmd returns `dnft iptables-save` or `dnft ip6tables-save`.
func newSaveCmd(a *app, f compat.Family) *cobra.Command {
	tool := f.Tool() + "-save"
	return &cobra.Command{
		Use:                tool + " [--layout classic|stages] [-t TABLE] [-c]",
		Short:              "Show dnft's rules as " + tool + " would print them",
		Long:               fmt.Sprintf(iptablesLong, tool, compat.Version, variantEnv),
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			variant := systemVariant()
			all := func([]string) []string { return nil }
			return a.runView(c, args, all, func(v *compat.View, names *compat.Names, args []string, stdout, stderr io.Writer) int {
				return compat.RunSave(v.Family(f), variant, names, time.Now(), args, stdout, stderr)
			})
		},
	}
}
