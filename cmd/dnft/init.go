package main

import (
	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
)

func newInitCmd(a *app) *cobra.Command {
	var (
		d      dnft.DaemonConfig
		layout string
	)
	c := &cobra.Command{
		Use:   "init",
		Short: "Create dnft's tables with the daemon-wide chains",
		Long: `Create dnft's tables with the daemon-wide chains (Docker's daemon start).

Running init again with the same options changes nothing; different options
are refused while dnft is initialized (run reset first), except --layout,
which only changes how the iptables view is shown. IP forwarding must
be on in the namespace unless --ip-forward lets dnft turn it on. As dockerd
does, when init turns a family's forwarding on it also sets that family's
FORWARD policy to DROP (unless --ip-forward-no-drop); forwarding that was
already on leaves the policy ACCEPT.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			l, err := compat.ParseLayout(layout)
			if err != nil {
				return err
			}
			d.Layout = l
			return a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				return fw.Init(c.Context(), d)
			})
		},
	}
	f := c.Flags()
	f.BoolVar(&d.UserlandProxy, "userland-proxy", true,
		"Docker's --userland-proxy; false is hairpin mode (DNAT of loopback and same-bridge traffic)")
	f.BoolVar(&d.IPv6, "ipv6", false, "also program the ip6 table (Docker's --ip6tables)")
	f.BoolVar(&d.AllowDirectRouting, "allow-direct-routing", false,
		"do not drop packets routed directly to container addresses from outside their bridge")
	f.BoolVar(&d.IPForward, "ip-forward", false,
		"turn IP forwarding on if it is off, instead of failing; the FORWARD policy of a family whose forwarding init turns on becomes DROP")
	f.BoolVar(&d.IPForwardNoDrop, "ip-forward-no-drop", false,
		"with --ip-forward, keep the FORWARD policy ACCEPT when turning forwarding on (dockerd's --ip-forward-no-drop)")
	f.StringVar(&layout, "layout", compat.LayoutClassic,
		`layout of the iptables view: "classic" (CONTRACT.md) or "stages" (Docker 17.06-27's DOCKER-ISOLATION-STAGE-1/2); init again with another layout changes only that`)
	return c
}
