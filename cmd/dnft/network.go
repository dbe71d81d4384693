package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newNetworkCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "network",
		Short: "Manage bridge networks",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(newNetworkCreateCmd(a), newNetworkRmCmd(a), newNetworkLsCmd(a))
	return c
}

func newNetworkCreateCmd(a *app) *cobra.Command {
	var f createFlags
	c := &cobra.Command{
		Use:   "create NAME --bridge IFNAME --subnet CIDR [--subnet CIDR6] [flags]",
		Short: "Program a bridge network",
		Long: `Program a bridge network's firewall rules in one batch.

The bridge interface need not exist yet; an existing interface of that name
must be a bridge (not lo, not an uplink or a veth). A subnet that overlaps an
address of another interface is accepted with a warning. One IPv4 subnet is
required; an
IPv6 subnet may be added when dnft was initialized with --ipv6.

Network options (-o KEY=VALUE), as for docker network create:
` + optionsHelp(),
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := f.config(args[0])
			if err != nil {
				return err
			}
			err = a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				fw.SetWarnFunc(warnTo(c.ErrOrStderr()))
				return fw.CreateNetwork(c.Context(), cfg)
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), cfg.Name)
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.bridge, "bridge", "", "bridge interface name (at most 15 bytes)")
	fl.StringSliceVar(&f.subnets, "subnet", nil, "subnet in CIDR form: one IPv4 and optionally one IPv6")
	fl.BoolVar(&f.internal, "internal", false, "restrict external access to the network")
	fl.StringArrayVarP(&f.opts, "opt", "o", nil, "network option KEY=VALUE (repeatable)")
	return c
}

func newNetworkRmCmd(a *app) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a network's rules",
		Long: `Remove a network's rules in one batch. A network that still has published
ports is refused unless --force is given, which unpublishes them in the same
batch.`,
		Args: exactArgs("NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				return fw.RemoveNetwork(c.Context(), args[0], force)
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), args[0])
			return err
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "also unpublish the network's published ports")
	return c
}

func newNetworkLsCmd(a *app) *cobra.Command {
	var asJSON, quiet bool
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks, oldest first",
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if asJSON && quiet {
				return usageErrorf("network ls: --json and --quiet cannot be used together")
			}
			var nets []dnft.Network
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				var err error
				nets, err = fw.Networks(c.Context())
				return err
			})
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			switch {
			case asJSON:
				return writeJSON(w, networksJSON(nets))
			case quiet:
				return writeNames(w, nets)
			}
			return writeNetworkTable(w, nets)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only network names")
	return c
}

// optionsHelp lists the -o keys with their values and defaults.
func optionsHelp() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, o := range [][3]string{
		{optEnableICC, "BOOL", "default true"},
		{optEnableMasq, "BOOL", "default true"},
		{optHostBindingIPv4, "IPv4", "host IP for published ports; default 0.0.0.0"},
		{optHostIPv4, "IPv4", "SNAT to this address instead of MASQUERADE"},
		{optHostIPv6, "IPv6", "SNAT to this address instead of MASQUERADE"},
	} {
		fmt.Fprintf(tw, "  %s=%s\t%s\n", o[0], o[1], o[2])
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}
