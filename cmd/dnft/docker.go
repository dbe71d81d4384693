package main

import (
	"errors"
	"io/fs"
	"log"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/docker"
	"github.com/dnft/dnft/nft"
)

func newDockerCmd(a *app) *cobra.Command {
	opt := docker.DefaultOptions()
	var once bool
	c := &cobra.Command{
		Use:   "docker [--host ADDR] [--once] [dockerd's flags]",
		Short: "Follow a dockerd started with --iptables=false and program its firewall",
		Long: `Make a Docker daemon started with --iptables=false (and no iptables binary
on the host) behave like the same daemon with its own iptables rules.

dnft docker reads dockerd's bridge networks and the ports it bound for its
running containers through the Engine API, converges dnft's tables to them
in one batch, then follows dockerd's events (networks created and removed,
containers connected, started with their current address, stopped and
removed) and applies each change as it happens. It reconnects with backoff
when dockerd goes away and converges again; killed and restarted, it picks
up from the kernel. It also repairs drift of dnft's tables as dnft watch
does, and programs the nat rules of Docker's embedded DNS server (127.0.0.11)
in every container on a user-defined network, which dockerd cannot do
without iptables.

Give it dockerd's networking flags: they are not visible through the API.
--once syncs and exits. Logs to stderr; SIGTERM or SIGINT stop it (exit 0).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			logger := log.New(c.ErrOrStderr(), "dnft docker: ", log.LstdFlags|log.Lmicroseconds)
			opt.Logf = logger.Printf
			opt.NetNS = a.netns
			f, err := docker.New(c.Context(), opt)
			if err != nil {
				if a.netns != "" && errors.Is(err, fs.ErrNotExist) {
					return &dnft.FieldError{Field: "netns", Value: a.netns, Reason: "no such network namespace (" + nft.NetNSPath(a.netns) + " does not exist)"}
				}
				return err
			}
			defer f.Close()
			if once {
				return f.Sync(c.Context())
			}
			err = f.Run(c.Context())
			if err == nil {
				logger.Printf("stopped")
			}
			return err
		},
	}
	fl := c.Flags()
	fl.StringVarP(&opt.Host, "host", "H", "", "Engine API address (default: $DOCKER_HOST, else "+docker.DefaultHost+")")
	fl.BoolVar(&once, "once", false, "sync once and exit")
	fl.BoolVar(&opt.UserlandProxy, "userland-proxy", opt.UserlandProxy, "dockerd's --userland-proxy")
	fl.BoolVar(&opt.IPForward, "ip-forward", opt.IPForward, "dockerd's --ip-forward (FORWARD policy drop)")
	fl.BoolVar(&opt.IPForwardNoDrop, "ip-forward-no-drop", opt.IPForwardNoDrop, "dockerd's --ip-forward-no-drop (keep the FORWARD policy accept)")
	fl.BoolVar(&opt.IPMasq, "ip-masq", opt.IPMasq, "dockerd's --ip-masq (masquerade of the default bridge)")
	fl.BoolVar(&opt.IPv6, "ipv6", opt.IPv6, "dockerd's --ipv6 with --ip6tables")
	fl.BoolVar(&opt.AllowDirectRouting, "allow-direct-routing", opt.AllowDirectRouting, "let packets be routed straight to container addresses (Docker 20.10-27 behave so)")
	fl.BoolVar(&opt.DNS, "dns", opt.DNS, "program the embedded-DNS rules in containers on user-defined networks")
	fl.BoolVar(&opt.Watch, "watch", opt.Watch, "repair drift of dnft's tables as dnft watch does")
	fl.DurationVar(&opt.WatchInterval, "watch-interval", 30*time.Second, "period of the drift checks made without notifications")
	return c
}
