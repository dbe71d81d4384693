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
and created again from dnft's records (or from --state FILE when the records
are gone), with the DOCKER-USER rules the kernel holds (or the saved ones,
where that chain is gone). Rule and element counters start from zero.
Prints what was wrong; sends nothing when nothing was.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			saved, err := readStateFlag(c.InOrStdin(), state)
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
	c.Flags().StringVar(&state, "state", "", "a state saved with dnft save, used when dnft's records are gone")
	return c
}
