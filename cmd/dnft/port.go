package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

const specHelp = `SPEC is Docker's -p syntax:

  [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]

PROTO is tcp (the default), udp or sctp; an IPv6 HOST_IP goes in brackets
([::1]:8080:80). HOST_IP defaults to the network's host binding address
(com.docker.network.bridge.host_binding_ipv4, else all addresses).
HOST_PORT-END:CONTAINER_PORT-END publishes one port per port (the ranges
must be as long); HOST_PORT-END:CONTAINER_PORT takes the first free host
port of the range; without a host port (-p 80, -p 127.0.0.1::80) each
container port gets the lowest free port of 32768-60999.

Bindings are for CONTAINER_IP's address family only: for a dual-stack
container, publish once per address.`

func newPortCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "port",
		Short: "Publish and unpublish container ports",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	c.AddCommand(newPortPublishCmd(a), newPortUnpublishCmd(a), newPortLsCmd(a))
	return c
}

// portArgs are the arguments shared by port publish and unpublish, parsed
// before any namespace is opened.
type portArgs struct {
	network   string
	container netip.Addr
	specs     []dnft.PortSpec
}

func parsePortArgs(c *cobra.Command, args, specs []string) (portArgs, error) {
	if len(specs) == 0 {
		return portArgs{}, usageErrorf("%smissing -p SPEC", cmdPrefix(c))
	}
	pa := portArgs{network: args[0]}
	ctr, err := netip.ParseAddr(args[1])
	if err != nil || ctr.Zone() != "" {
		return pa, &dnft.FieldError{Field: "container-ip", Value: args[1], Reason: "not an IP address"}
	}
	pa.container = ctr
	for _, s := range specs {
		sp, err := dnft.ParsePortSpec(s)
		if err != nil {
			return pa, err
		}
		pa.specs = append(pa.specs, sp)
	}
	return pa, nil
}

// portChange is Firewall.PublishSpecs or Firewall.UnpublishSpecs.
type portChange func(fw *dnft.Firewall, ctx context.Context, network string, container netip.Addr, specs []dnft.PortSpec) ([]dnft.Binding, error)

// newPortChangeCmd builds `port publish` and `port unpublish`: both parse
// NETWORK CONTAINER_IP -p SPEC..., run one batch and print the bindings.
func newPortChangeCmd(a *app, use, short, long string, change portChange) *cobra.Command {
	var specs []string
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long + "\n\n" + specHelp,
		Args:  exactArgs("NETWORK", "CONTAINER_IP"),
		RunE: func(c *cobra.Command, args []string) error {
			pa, err := parsePortArgs(c, args, specs)
			if err != nil {
				return err
			}
			var bs []dnft.Binding
			err = a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				fw.SetWarnFunc(warnTo(c.ErrOrStderr()))
				bs, err = change(fw, c.Context(), pa.network, pa.container, pa.specs)
				return err
			})
			if err != nil {
				return err
			}
			return writeBindings(c.OutOrStdout(), bs)
		},
	}
	c.Flags().StringArrayVarP(&specs, "publish", "p", nil, "port spec (repeatable)")
	return c
}

func newPortPublishCmd(a *app) *cobra.Command {
	return newPortChangeCmd(a, "publish NETWORK CONTAINER_IP -p SPEC [-p SPEC ...]",
		"Publish ports of a container, in one batch",
		`Publish ports of a container on a network, in one batch, and print the
resulting bindings (HOST_IP:HOST_PORT->CONTAINER_IP:PORT/PROTO), one a line.
Nothing is changed if any spec is bad or conflicts with a published port.`,
		(*dnft.Firewall).PublishSpecs)
}

func newPortUnpublishCmd(a *app) *cobra.Command {
	return newPortChangeCmd(a, "unpublish NETWORK CONTAINER_IP -p SPEC [-p SPEC ...]",
		"Unpublish ports of a container, in one batch",
		`Unpublish ports of a container on a network, in one batch, and print the
removed bindings, one a line. A spec with as many host ports as container
ports names exactly those bindings; without a host port it names every
binding of its container ports (on its host address); with a host range
and one container port, the binding whose host port is in the range.
Nothing is changed if a spec names no published binding.`,
		(*dnft.Firewall).UnpublishSpecs)
}

func newPortLsCmd(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List published ports, oldest first, with DNAT counters",
		Long: `List published ports of every network, oldest first, as read back from the
kernel. PACKETS and BYTES count the connections (their first packets) that
the binding's DNAT element forwarded.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			var ps []dnft.Published
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				var err error
				ps, err = fw.Ports(c.Context())
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), portsJSON(ps))
			}
			return writePortTable(c.OutOrStdout(), ps)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

// warnTo prints warnings of a committed operation as "dnft: warning: ...".
func warnTo(w io.Writer) func(error) {
	return func(err error) { fmt.Fprintf(w, "dnft: warning: %v\n", err) }
}
