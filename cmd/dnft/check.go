package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

// errDrift is check's failure when it found drift: the findings are on
// stdout.
var errDrift = errors.New("drift found")

func newCheckCmd(a *app) *cobra.Command {
	var state string
	c := &cobra.Command{
		Use:   "check [--state FILE]",
		Short: "Compare dnft's tables with what they should hold",
		Long: `Compare dnft's tables in the kernel with what dnft's own records say they
should hold, and print each difference on a line: a missing table, chain,
rule (rules are compared by chain, comment and order) or set element, a
chain, rule or element that is not dnft's, a changed element. DOCKER-USER's
rules are the operator's and never drift; its chain and jump are dnft's.

When dnft's records are gone (a flushed ruleset, a deleted table), the
state saved in --state FILE is what the tables should hold; without it the
state is unknown, which is reported as drift.

Exit status: 0 no drift, 1 drift (or a failure), 2 bad input.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			saved, err := readStateFlag(c.InOrStdin(), state)
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			var findings []dnft.Finding
			err = a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				findings, err = fw.Check(c.Context(), saved)
				return err
			})
			if err != nil {
				return err
			}
			for _, f := range findings {
				fmt.Fprintln(c.OutOrStdout(), f)
			}
			if len(findings) > 0 {
				return fmt.Errorf("check: %w (%d finding(s))", errDrift, len(findings))
			}
			return nil
		},
	}
	c.Flags().StringVar(&state, "state", "", "a state saved with dnft save, used when dnft's records are gone")
	return c
}
