package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "dnft",
		Short: "nftables-native firewall backend with Docker's iptables semantics",
		Long: `dnft programs the packet semantics of Docker's iptables rules (DOCKER,
DOCKER-USER, DOCKER-ISOLATION, published ports) as its own nftables tables,
one atomic batch per operation. All state lives in the kernel.

Exit status: 0 success, 1 failure, 2 bad input (nothing was changed).`,
		Version:       versionString(),
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
	root.PersistentFlags().StringVar(&a.netns, "netns", "",
		"network namespace: a name under /run/netns or a path (default: the current one)")
	root.AddCommand(
		newInitCmd(a),
		newNetworkCmd(a),
		newStatusCmd(a),
		newResetCmd(a),
		newVersionCmd(),
		newDemoCmd(a),
		newPortCmd(a),
		newIngressCmd(a),
		newIPTablesCmd(a),
		newIP6TablesCmd(a),
		newIPTablesSaveCmd(a),
		newIP6TablesSaveCmd(a),
		newListCmd(a),
		newStateSaveCmd(a),
		newRestoreCmd(a),
		newApplyCmd(a),
		newCheckCmd(a),
		newRepairCmd(a),
		newWatchCmd(a),
		newDockerCmd(a),
	)
	return root
}

// withFirewall opens the firewall of the selected namespace, calls fn and
// closes it.
func (a *app) withFirewall(ctx context.Context, fn func(*dnft.Firewall) error) error {
	fw, err := dnft.Open(ctx, a.netns)
	if err != nil {
		if a.netns != "" && errors.Is(err, fs.ErrNotExist) {
			return &dnft.FieldError{Field: "netns", Value: a.netns,
				Reason: fmt.Sprintf("no such network namespace (%s does not exist)", nft.NetNSPath(a.netns))}
		}
		return err
	}
	defer fw.Close()
	return fn(fw)
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
