package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newApplyCmd(a *app) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the namespace match a declared state with the smallest batch",
		Long: `Make the namespace hold the state declared in FILE (the format of dnft save;
- reads stdin) in ONE batch that adds and removes only the difference:
networks (one whose configuration changed is removed and created again),
published ports, ingress references and, when the document lists them,
DOCKER-USER's rules. What stays keeps its counters. A different init
configuration rebuilds dnft's tables. Prints what changed.

In a declared state, seq may be left out; icc, masquerade and
userland_proxy default to true, proto to tcp, refs to 1; without a
docker_user list DOCKER-USER is left as it is.

A bad document is refused (exit 2) with a message naming the field, and
nothing is changed.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("%smissing -f FILE", cmdPrefix(c))
			}
			s, err := readStateFile(c.Context(), c.InOrStdin(), file)
			if err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			var p dnft.Plan
			err = a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				fw.SetWarnFunc(warnTo(c.ErrOrStderr()))
				p, err = fw.Apply(c.Context(), s)
				return err
			})
			if err != nil {
				return err
			}
			_, err = io.WriteString(c.OutOrStdout(), p.String())
			return err
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "the declared state (- for stdin)")
	return c
}
