package main

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/portmap"
)

func newIngressCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "ingress",
		Short: "Manage swarm ingress ports",
		Long: `Manage swarm ingress ports: packets to any local address on the published
port are DNATed to the ingress sandbox on the gateway bridge (Docker's
DOCKER-INGRESS chains). Publications are reference counted as swarm counts
them: the port stays until it was unpublished as often as it was published.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	c.AddCommand(newIngressPublishCmd(a), newIngressUnpublishCmd(a), newIngressLsCmd(a))
	return c
}

func newIngressPublishCmd(a *app) *cobra.Command {
	var (
		pubs           []string
		target, bridge string
	)
	c := &cobra.Command{
		Use:   "publish -p PUB[/PROTO] [-p ...] --target IP [--bridge IFNAME]",
		Short: "Publish ingress ports (or add a reference to them), in one batch",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if len(pubs) > 0 && target == "" {
				return usageErrorf("ingress publish: missing --target")
			}
			if len(pubs) == 0 {
				return usageErrorf("ingress publish: missing -p PUB[/PROTO]")
			}
			ps := make([]dnft.IngressPort, len(pubs))
			for i, pub := range pubs {
				p, err := ingressPortArgs("publish", pub, target, bridge)
				if err != nil {
					return err
				}
				ps[i] = p
			}
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				return fw.PublishIngress(c.Context(), ps[0], ps[1:]...)
			})
			if err != nil {
				return err
			}
			for _, p := range ps {
				fmt.Fprintln(c.OutOrStdout(), ingress.PortProto(p.Port, p.Proto))
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringArrayVarP(&pubs, "publish", "p", nil, "published port and protocol: PUB[/tcp|udp|sctp] (default tcp); repeat for more ports")
	fl.StringVar(&target, "target", "", "the ingress sandbox's address on the gateway bridge")
	fl.StringVar(&bridge, "bridge", ingress.DefaultGateway, "gateway bridge interface")
	return c
}

func newIngressUnpublishCmd(a *app) *cobra.Command {
	var (
		pubs           []string
		target, bridge string
	)
	c := &cobra.Command{
		Use:   "unpublish -p PUB[/PROTO] [--target IP] [--bridge IFNAME]",
		Short: "Remove one reference of an ingress port",
		Long: `Remove one reference of an ingress port, in every address family it is
published in (only the family of --target when given). The last reference
removes the port; the last port removes the DOCKER-INGRESS chains.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if len(pubs) > 1 {
				return usageErrorf("ingress unpublish: one -p at a time")
			}
			pub := ""
			if len(pubs) == 1 {
				pub = pubs[0]
			}
			p, err := ingressPortArgs("unpublish", pub, target, bridge)
			if err != nil {
				return err
			}
			return runIngress(a, c, p, (*dnft.Firewall).UnpublishIngress)
		},
	}
	fl := c.Flags()
	fl.StringArrayVarP(&pubs, "publish", "p", nil, "published port and protocol: PUB[/tcp|udp|sctp] (default tcp)")
	fl.StringVar(&target, "target", "", "only if published to this address (and only in its family)")
	fl.StringVar(&bridge, "bridge", "", "only if published on this gateway bridge")
	return c
}

// ingressPortArgs turns the -p, --target and --bridge flags of publish and
// unpublish into an IngressPort (an empty target stays unset).
func ingressPortArgs(verb, pub, target, bridge string) (dnft.IngressPort, error) {
	if pub == "" {
		return dnft.IngressPort{}, usageErrorf("ingress %s: missing -p PUB[/PROTO]", verb)
	}
	port, proto, err := parsePublish(pub)
	if err != nil {
		return dnft.IngressPort{}, err
	}
	p := dnft.IngressPort{GwBridge: bridge, Proto: proto, Port: port}
	if target != "" {
		if p.Target, err = netip.ParseAddr(target); err != nil {
			return p, &dnft.FieldError{Field: "target", Value: target, Reason: netipReason(err, "ParseAddr", target)}
		}
	}
	return p, nil
}

// runIngress applies one ingress change and prints the port it concerned.
func runIngress(a *app, c *cobra.Command, p dnft.IngressPort, change func(*dnft.Firewall, context.Context, dnft.IngressPort) error) error {
	err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
		return change(fw, c.Context(), p)
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.OutOrStdout(), ingress.PortProto(p.Port, p.Proto))
	return err
}

func newIngressLsCmd(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List ingress ports, oldest first",
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			var ps []dnft.IngressPublished
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				var err error
				ps, err = fw.Ingress(c.Context())
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), ingressJSON(ps))
			}
			return writeIngressTable(c.OutOrStdout(), ps)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

// parsePublish parses PUB[/PROTO]; the protocol defaults to tcp.
func parsePublish(s string) (uint16, portmap.Proto, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	p := portmap.TCP
	if hasProto {
		p = portmap.Proto(strings.ToLower(proto))
		switch p {
		case portmap.TCP, portmap.UDP, portmap.SCTP:
		default:
			return 0, "", &dnft.FieldError{Field: "publish", Value: s, Reason: "the protocol must be tcp, udp or sctp"}
		}
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, "", &dnft.FieldError{Field: "publish", Value: s, Reason: "want PORT[/PROTO] with PORT 1-65535"}
	}
	return uint16(n), p, nil
}
