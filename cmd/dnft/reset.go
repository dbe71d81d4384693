package main

import (
	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newResetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "reset",
		Short: "Remove everything dnft owns in the namespace",
		Long: `Remove everything dnft owns in the namespace: both of its tables, including
DOCKER-USER and all networks. Nothing else is touched. Resetting a namespace
where dnft is not initialized succeeds and changes nothing.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				return fw.Reset(c.Context())
			})
		},
	}
}
