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
		Long: `Compare dnft's tables in the kernel with what they should hold, and print
every difference on a line: a missing or foreign table, chain, rule or set
element; a base chain whose type, hook, priority or policy changed; a rule
that does something else than dnft's (rules are compared by their
expressions, then comment and order); an element whose value (data,
verdict, record) changed; a record that is not valid, or contradicts its
other copy. DOCKER-USER's rules are the operator's and never drift; its
chain and jump are dnft's.

What the tables should hold is --state FILE when given (a state saved with
dnft save), else what dnft's records say: every record is kept twice, so
that one edit leaves a good copy. When the records cannot tell (a deleted
table, two copies that contradict each other), the state is unknown,
which is reported as drift.

Exit status: 0 no drift, 1 drift (or a failure), 2 bad input (a bad
--state FILE; never a damaged kernel).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			limitWholeTablesMemory()
			saved, err := readStateFlag(c.Context(), c.InOrStdin(), state)
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
	c.Flags().StringVar(&state, "state", "", "a state saved with dnft save: what the tables should hold")
	return c
}
