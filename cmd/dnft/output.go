package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/dnft/dnft"
)

// networkJSON is one element of network ls --json. Its keys are stable;
// absent addresses are "".
type networkJSON struct {
	Name            string   `json:"name"`
	Bridge          string   `json:"bridge"`
	Subnets         []string `json:"subnets"`
	Internal        bool     `json:"internal"`
	ICC             bool     `json:"icc"`
	Masquerade      bool     `json:"masquerade"`
	HostIPv4        string   `json:"host_ipv4"`
	HostIPv6        string   `json:"host_ipv6"`
	HostBindingIPv4 string   `json:"host_binding_ipv4"`
}

// daemonJSON is the daemon configuration in dnft status --json.
type daemonJSON struct {
	UserlandProxy      bool `json:"userland_proxy"`
	IPv6               bool `json:"ipv6"`
	AllowDirectRouting bool `json:"allow_direct_routing"`
}

func networksJSON(nets []dnft.Network) []networkJSON {
	out := make([]networkJSON, 0, len(nets)) // [] rather than null when empty
	for _, n := range nets {
		out = append(out, networkJSON{
			Name:            n.Name,
			Bridge:          n.Bridge,
			Subnets:         subnets(n.NetworkConfig),
			Internal:        n.Internal,
			ICC:             n.ICC,
			Masquerade:      n.Masquerade,
			HostIPv4:        addrString(n.HostIPv4),
			HostIPv6:        addrString(n.HostIPv6),
			HostBindingIPv4: addrString(n.HostBindingIPv4),
		})
	}
	return out
}

func subnets(n dnft.NetworkConfig) []string {
	s := []string{}
	for _, p := range []netip.Prefix{n.Subnet4, n.Subnet6} {
		if p.IsValid() {
			s = append(s, p.String())
		}
	}
	return s
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeNetworkTable prints the networks as an aligned table.
func writeNetworkTable(w io.Writer, nets []dnft.Network) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBRIDGE\tSUBNETS\tINTERNAL\tICC\tMASQ\tHOST-IP/SNAT")
	for _, n := range nets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%t\t%s\n", n.Name, n.Bridge,
			strings.Join(subnets(n.NetworkConfig), ","), n.Internal, n.ICC, n.Masquerade, hostSNAT(n.NetworkConfig))
	}
	return tw.Flush()
}

// hostSNAT summarizes the published ports' default host address and the
// SNAT addresses; "-" means Docker's defaults (0.0.0.0, MASQUERADE).
func hostSNAT(n dnft.NetworkConfig) string {
	var parts []string
	if n.HostBindingIPv4.IsValid() {
		parts = append(parts, "host-ip="+n.HostBindingIPv4.String())
	}
	var snat []string
	for _, a := range []netip.Addr{n.HostIPv4, n.HostIPv6} {
		if a.IsValid() {
			snat = append(snat, a.String())
		}
	}
	if len(snat) > 0 {
		parts = append(parts, "snat="+strings.Join(snat, ","))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// writeNames prints one network name a line.
func writeNames(w io.Writer, nets []dnft.Network) error {
	for _, n := range nets {
		if _, err := fmt.Fprintln(w, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// writeStatus prints dnft status as aligned key: value lines.
func writeStatus(w io.Writer, st status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "netns:\t%s\n", st.NetNS)
	fmt.Fprintf(tw, "initialized:\t%t\n", st.Initialized)
	if d := st.Daemon; d != nil {
		fmt.Fprintf(tw, "userland-proxy:\t%t\n", d.UserlandProxy)
		fmt.Fprintf(tw, "ipv6:\t%t\n", d.IPv6)
		fmt.Fprintf(tw, "allow-direct-routing:\t%t\n", d.AllowDirectRouting)
		fmt.Fprintf(tw, "networks:\t%d\n", st.Networks)
	}
	return tw.Flush()
}
