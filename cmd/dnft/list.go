package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
	"github.com/dnft/dnft/compat"
)

// newListCmd returns `dnft list` (alias ls): a compact summary of the
// networks, published ports and ingress ports, with counters.
func newListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "Summarize networks, published ports and ingress ports, with counters",
		Long: `Summarizes what dnft programmed in the namespace: the networks (oldest
first) with their options, the published ports and the ingress ports.

PACKETS and BYTES of a port are those of its DNAT (what "dnft iptables -t
nat -L -v" shows for its DNAT rule): the nat table sees the first packet of
every connection, so they count connections (UDP: flows).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withConn(c, func(in compat.Input, k *compat.Kernel) error {
				if !in.Initialized {
					return dnft.ErrNotInitialized
				}
				return writeList(c.OutOrStdout(), in, k)
			})
		},
	}
}

// withConn reads dnft's state in the selected namespace and passes it to
// fn.
func (a *app) withConn(c *cobra.Command, fn func(compat.Input, *compat.Kernel) error) error {
	conn, err := openConn(c.Context(), a.netns)
	if err != nil {
		return err
	}
	defer conn.Close()
	in, k, err := compat.ReadInput(c.Context(), conn)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	return fn(in, k)
}

// networkOptions summarizes the options of a network that differ from
// Docker's defaults; "-" when none do.
func networkOptions(n dnft.NetworkConfig) string {
	var o []string
	if n.Internal {
		o = append(o, "internal")
	}
	if !n.ICC {
		o = append(o, "icc=off")
	}
	if !n.Masquerade && !n.Internal {
		o = append(o, "masquerade=off")
	}
	for _, a := range []netip.Addr{n.HostIPv4, n.HostIPv6} {
		if a.IsValid() {
			o = append(o, "snat="+a.String())
		}
	}
	if n.HostBindingIPv4.IsValid() {
		o = append(o, "host-ip="+n.HostBindingIPv4.String())
	}
	if len(o) == 0 {
		return "-"
	}
	return strings.Join(o, ",")
}

func familyOf(a netip.Addr) compat.Family {
	if a.Unmap().Is4() {
		return compat.IPv4
	}
	return compat.IPv6
}

// writeList prints the summary of dnft list: a table of networks, then,
// if any, a table of published ports and one of ingress ports, separated
// by empty lines.
func writeList(w io.Writer, in compat.Input, k *compat.Kernel) error {
	section := func(header string, rows [][]string) error {
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, header)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		return tw.Flush()
	}
	var nets [][]string
	for _, n := range in.Networks {
		nets = append(nets, []string{n.Name, n.Bridge, strings.Join(subnets(n.NetworkConfig), ","), networkOptions(n.NetworkConfig)})
	}
	if err := section("NETWORK\tBRIDGE\tSUBNETS\tOPTIONS", nets); err != nil {
		return err
	}
	if len(in.Bindings) > 0 {
		var rows [][]string
		for _, b := range in.Bindings {
			ctr := k.Value(familyOf(b.ContainerIP), compat.DNATSource(b))
			rows = append(rows, []string{b.Binding.String(), b.Network, fmt.Sprint(ctr.Packets), fmt.Sprint(ctr.Bytes)})
		}
		fmt.Fprintln(w)
		if err := section("PUBLISHED\tNETWORK\tPACKETS\tBYTES", rows); err != nil {
			return err
		}
	}
	if len(in.Ingress) > 0 {
		var rows [][]string
		for _, g := range in.Ingress {
			ctr := k.Value(familyOf(g.Target), g.Counters[compat.IngressDNAT])
			gw := g.GwBridge
			if gw == "" {
				gw = compat.DefaultGateway
			}
			rows = append(rows, []string{fmt.Sprintf("%d/%s->%s", g.Port, g.Proto, g.Target), gw, fmt.Sprint(ctr.Packets), fmt.Sprint(ctr.Bytes)})
		}
		fmt.Fprintln(w)
		if err := section("INGRESS\tGATEWAY\tPACKETS\tBYTES", rows); err != nil {
			return err
		}
	}
	return nil
}
