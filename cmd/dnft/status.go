package main

import (
	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

// status is what dnft status reports.
type status struct {
	NetNS       string      `json:"netns"`
	Initialized bool        `json:"initialized"`
	Daemon      *daemonJSON `json:"daemon"` // null before init
	Networks    int         `json:"networks"`
}

func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether dnft is initialized and its daemon options",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			var st status
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				st.NetNS = fw.NetNS()
				d, ok, err := fw.Daemon(c.Context())
				if err != nil || !ok {
					return err
				}
				st.Initialized = true
				st.Daemon = &daemonJSON{UserlandProxy: d.UserlandProxy, IPv6: d.IPv6, AllowDirectRouting: d.AllowDirectRouting}
				nets, err := fw.Networks(c.Context())
				st.Networks = len(nets)
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), st)
			}
			return writeStatus(c.OutOrStdout(), st)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON object")
	return c
}
