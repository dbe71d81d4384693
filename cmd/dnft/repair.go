package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newRepairCmd(a *app) *cobra.Command {
	var state string
	c := &cobra.Command{
		Use:   "repair [--state FILE]",
		Short: "Make dnft's tables hold what dnft check compares them with, in one batch",
		Long: `Repair the drift dnft check reports, in ONE batch: dnft's tables are deleted
and created again from the truth, with the DOCKER-USER rules the kernel
holds (or the saved ones, where that chain is gone or was flushed with
dnft's own). Rule and element counters start from zero. Prints what was
wrong; sends nothing when nothing was.

The truth is --state FILE when given, else dnft's records: a binding,
network or ingress port whose record survives in any of its elements is
restored, never deleted, and an element that no record owns is removed,
never completed. When the records cannot tell (a deleted table, two copies
of a record that contradict each other), repair refuses and changes
nothing: pass --state FILE.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			saved, err := readStateFlag(c.Context(), c.InOrStdin(), state)
			if err != nil {
				return fmt.Errorf("repair: %w", err)
			}
			var findings []dnft.Finding
			err = a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				fw.SetWarnFunc(warnTo(c.ErrOrStderr()))
				findings, err = fw.Repair(c.Context(), saved)
				return err
			})
			if err != nil {
				return err
			}
			if len(findings) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "no drift")
				return nil
			}
			for _, f := range findings {
				fmt.Fprintf(c.OutOrStdout(), "repaired: %s\n", f)
			}
			return nil
		},
	}
	c.Flags().StringVar(&state, "state", "", "a state saved with dnft save: the truth to repair toward")
	return c
}
