package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
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

In a namespace where dnft is not initialized (never, or since dnft
reset) it lists nothing, as save saves a state without daemon, check
finds no drift and the iptables view shows empty built-in chains; when
dnft's tables were deleted behind its back, all of them fail (exit 1).

PACKETS and BYTES of a port are those of its DNAT (what "dnft iptables -t
nat -L -v" shows for its DNAT rule): the nat table sees the first packet of
every connection, so they count connections (UDP: flows).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withConn(c, func(in compat.Input, k *compat.Kernel) error {
				if !in.Initialized {
					fmt.Fprintln(c.ErrOrStderr(), "dnft: dnft is not initialized in this namespace: nothing to list")
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
	if len(k.Tables) == 0 {
		// No dnft table: not initialized, or deleted behind dnft's back.
		if err := dnft.Uninitialized(conn); err != nil {
			return fmt.Errorf("list: %w (run dnft check)", err)
		}
	}
	return fn(in, k)
}

// printable returns a name read back from the kernel as it can be
// printed: as it is when it has only printable ASCII and no space, else
// quoted with Go escapes, so that a record can never send control
// sequences to a terminal or break a column.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
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
		nets = append(nets, []string{printable(n.Name), printable(n.Bridge), strings.Join(subnets(n.NetworkConfig), ","), networkOptions(n.NetworkConfig)})
	}
	if err := section("NETWORK\tBRIDGE\tSUBNETS\tOPTIONS", nets); err != nil {
		return err
	}
	if len(in.Bindings) > 0 {
		var rows [][]string
		for _, b := range in.Bindings {
			ctr := k.Value(familyOf(b.ContainerIP), compat.DNATSource(b))
			rows = append(rows, []string{b.Binding.String(), printable(b.Network), fmt.Sprint(ctr.Packets), fmt.Sprint(ctr.Bytes)})
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
			rows = append(rows, []string{fmt.Sprintf("%d/%s->%s", g.Port, g.Proto, g.Target), printable(gw), fmt.Sprint(ctr.Packets), fmt.Sprint(ctr.Bytes)})
		}
		fmt.Fprintln(w)
		if err := section("INGRESS\tGATEWAY\tPACKETS\tBYTES", rows); err != nil {
			return err
		}
	}
	return nil
}
