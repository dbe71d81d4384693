// Command dnft-docker makes a dockerd started with --iptables=false behave
// like the same daemon with its own iptables rules: it follows dockerd
// through the Engine API and programs its firewall with dnft (see
// package docker). `dnft docker` runs it.
//
//	dnft-docker [--netns NAME|PATH] [--host ADDR] [--once] [dockerd's flags]
//
// It is a binary of its own so that dnft's other commands do not load the
// Docker Engine API client, which is half of what they would do before
// their first system call. Exit codes as dnft's: 0 success, 1 failure,
// 2 bad input.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/docker"
	"github.com/dnft/dnft/nft"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the process exit code.
// Errors are printed to stderr, once, as "dnft docker: <message>", with
// the usage after a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args == nil {
		args = []string{} // nil would make cobra fall back to os.Args
	}
	c := newDockerCmd()
	c.SetArgs(args)
	c.SetOut(stdout)
	c.SetErr(stderr)
	err := c.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "dnft docker: %v\n", err)
	var (
		ue usageError
		fe *dnft.FieldError
	)
	switch {
	case errors.As(err, &ue):
		fmt.Fprint(stderr, c.UsageString())
		return 2
	case errors.As(err, &fe):
		return 2
	}
	return 1
}

// usageError is a command-line usage error: bad flag or extra argument.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newDockerCmd() *cobra.Command {
	var netns string
	opt := docker.DefaultOptions()
	var once bool
	c := &cobra.Command{
		Use:   "dnft-docker [--netns NAME|PATH] [--host ADDR] [--once] [dockerd's flags]",
		Short: "Follow a dockerd started with --iptables=false and program its firewall",
		Long: `Make a Docker daemon started with --iptables=false (and no iptables binary
on the host) behave like the same daemon with its own iptables rules.

dnft docker reads dockerd's bridge networks and the ports it bound for its
running containers through the Engine API, converges dnft's tables to them
in one batch, then follows dockerd's events (networks created and removed,
containers connected, started with their current address, stopped and
removed) and applies each change as it happens. It reconnects with backoff
when dockerd goes away and converges again; killed and restarted, it picks
up from the kernel. It keeps the settings dnft owns on bridges and their
ports (with --userland-proxy=false) when a bridge or a port appears, also a
bridge deleted and created again; it repairs drift of dnft's tables as dnft
watch does, and programs the nat rules of Docker's embedded DNS server (127.0.0.11)
in every container on a user-defined network, which dockerd cannot do
without iptables.

Give it dockerd's networking flags: they are not visible through the API.
--once syncs and exits. Logs to stderr; SIGTERM or SIGINT stop it (exit 0).

It is what dnft docker runs: a binary of its own, so that dnft's other
commands do not load the Docker Engine API client.

Exit status: 0 success, 1 failure, 2 bad input (nothing was changed).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q", args[0])}
			}
			return nil
		},
		SilenceErrors: true, // run prints errors once
		SilenceUsage:  true, // and usage only for usage errors
		RunE: func(c *cobra.Command, _ []string) error {
			logger := log.New(c.ErrOrStderr(), "dnft docker: ", log.LstdFlags|log.Lmicroseconds)
			opt.Logf = logger.Printf
			opt.NetNS = netns
			f, err := docker.New(c.Context(), opt)
			if err != nil {
				if netns != "" && errors.Is(err, fs.ErrNotExist) {
					return &dnft.FieldError{Field: "netns", Value: netns, Reason: "no such network namespace (" + nft.NetNSPath(netns) + " does not exist)"}
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
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	fl := c.Flags()
	fl.StringVar(&netns, "netns", "", "network namespace: a name under /run/netns or a path (default: the current one)")
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
