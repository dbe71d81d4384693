package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/nft"
)

// app holds the global flags shared by all commands.
type app struct {
	// netns is --netns: "" for the current namespace, a name under
	// /run/netns or a path.
	netns string
}

// command is one of dnft's top-level commands, by the names and aliases
// that run it.
type command struct {
	names []string
	build func(*app) *cobra.Command
}

// commands lists dnft's top-level commands in the order help shows them.
func commands() []command {
	return []command{
		{[]string{"init"}, newInitCmd},
		{[]string{"network"}, newNetworkCmd},
		{[]string{"status"}, newStatusCmd},
		{[]string{"reset"}, newResetCmd},
		{[]string{"version"}, func(*app) *cobra.Command { return newVersionCmd() }},
		{[]string{"demo"}, newDemoCmd},
		{[]string{"port"}, newPortCmd},
		{[]string{"ingress"}, newIngressCmd},
		{[]string{"iptables"}, newIPTablesCmd},
		{[]string{"ip6tables"}, newIP6TablesCmd},
		{[]string{"iptables-save"}, newIPTablesSaveCmd},
		{[]string{"ip6tables-save"}, newIP6TablesSaveCmd},
		{[]string{"list", "ls"}, newListCmd},
		{[]string{"save"}, newStateSaveCmd},
		{[]string{"restore"}, newRestoreCmd},
		{[]string{"apply"}, newApplyCmd},
		{[]string{"check"}, newCheckCmd},
		{[]string{"repair"}, newRepairCmd},
		{[]string{"watch"}, newWatchCmd},
		{[]string{"docker"}, newDockerCmd},
	}
}

// commandName returns the command that args run: the first argument that
// is not the root's --netns flag or its value. It returns "" when a flag
// comes first (--help, --version, a bad flag) or there is no argument:
// then the whole command tree is needed.
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--netns":
			i++
		case strings.HasPrefix(a, "--netns="):
		case strings.HasPrefix(a, "-"):
			return ""
		default:
			return a
		}
	}
	return ""
}

// newRootCmd builds the root command with the top-level command named
// only, or, when only names none of them (the help, a typo that deserves
// suggestions, no command at all), with all of them. A command line runs
// one command, and building the others' flags, help texts and
// subcommands would be most of the work a quick command does before its
// first system call.
func newRootCmd(a *app, only string) *cobra.Command {
	root := &cobra.Command{
		Use:   "dnft",
		Short: "nftables-native firewall backend with Docker's iptables semantics",
		Long: `dnft programs the packet semantics of Docker's iptables rules (DOCKER,
DOCKER-USER, DOCKER-ISOLATION, published ports) as its own nftables tables,
one atomic batch per operation. All state lives in the kernel.

Exit status: 0 success, 1 failure, 2 bad input (nothing was changed).`,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		SilenceErrors: true, // run prints errors once
		SilenceUsage:  true, // and usage only for usage errors
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print dnft's version") // no -v shorthand
	// Commands with subcommands are runnable only to report unknown
	// subcommands as usage errors; do not show them as "dnft [flags]".
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageErr(err)
	})
	root.PersistentFlags().Var((*netnsFlag)(&a.netns), "netns",
		"network namespace: a name under /run/netns or a path (default: the current one)")
	for _, c := range commands() {
		if slices.Contains(c.names, only) {
			root.AddCommand(c.build(a))
			// `dnft completion` is not the command named: do not build it.
			root.CompletionOptions.DisableDefaultCmd = true
			return root
		}
	}
	root.Version = versionString() // --version is a root flag: only here
	for _, c := range commands() {
		root.AddCommand(c.build(a))
	}
	return root
}

// withFirewall opens the firewall of the selected namespace, calls fn and
// closes it.
func (a *app) withFirewall(ctx context.Context, fn func(*dnft.Firewall) error) error {
	fw, err := dnft.Open(ctx, a.netns)
	if err != nil {
		return netnsError(a.netns, err)
	}
	defer fw.Close()
	return fn(fw)
}

// errEmptyNetns refuses --netns "", which would otherwise mean the
// caller's own namespace.
var errEmptyNetns = errors.New(`invalid argument "" for "--netns" flag: an empty name (leave --netns out for the current namespace)`)

// netnsFlag is the --netns flag: a string that may not be empty.
type netnsFlag string

func (f *netnsFlag) String() string { return string(*f) }
func (f *netnsFlag) Type() string   { return "string" }

// Set refuses an empty name.
func (f *netnsFlag) Set(v string) error {
	if v == "" {
		return errors.New("an empty name (leave --netns out for the current namespace)")
	}
	*f = netnsFlag(v)
	return nil
}

// netnsError turns the failure to open the namespace netns into bad
// input where it is one: no such namespace, or a file that is no network
// namespace.
func netnsError(netns string, err error) error {
	switch {
	case netns != "" && errors.Is(err, fs.ErrNotExist):
		return &dnft.FieldError{Field: "netns", Value: netns,
			Reason: fmt.Sprintf("no such network namespace (%s does not exist)", nft.NetNSPath(netns))}
	case errors.Is(err, nft.ErrNotNetNS):
		return &dnft.FieldError{Field: "netns", Value: netns,
			Reason: fmt.Sprintf("%s is not a network namespace", nft.NetNSPath(netns))}
	}
	return err
}

// groupRunE runs for a command that only groups subcommands: it is reached
// with no subcommand or an unknown one, both usage errors.
func groupRunE(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageErrorf("%smissing command", cmdPrefix(c))
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageErrorf("%s", msg)
}

// cmdPrefix returns "network create: " for dnft network create, and ""
// for the root command, to start error messages with.
func cmdPrefix(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") + ": "
}

// exactArgs accepts exactly the named positional arguments; anything else
// is a usage error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageErrorf("%smissing %s", cmdPrefix(c), strings.Join(names[len(args):], " "))
		case len(args) > len(names):
			return usageErrorf("%sunexpected argument %q", cmdPrefix(c), args[len(names)])
		}
		return nil
	}
}
