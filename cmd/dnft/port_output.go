package main

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"

	"github.com/dnft/dnft"
)

// portJSON is one element of port ls --json. Its keys are stable.
type portJSON struct {
	Network       string `json:"network"`
	Proto         string `json:"proto"`
	HostIP        string `json:"host_ip"`
	HostPort      uint16 `json:"host_port"`
	ContainerIP   string `json:"container_ip"`
	ContainerPort uint16 `json:"container_port"`
	Packets       uint64 `json:"packets"`
	Bytes         uint64 `json:"bytes"`
}

func portsJSON(ps []dnft.Published) []portJSON {
	out := make([]portJSON, 0, len(ps)) // [] rather than null when empty
	for _, p := range ps {
		out = append(out, portJSON{
			Network:       p.Network,
			Proto:         string(p.Proto),
			HostIP:        addrString(p.HostIP),
			HostPort:      p.HostPort,
			ContainerIP:   addrString(p.ContainerIP),
			ContainerPort: p.ContainerPort,
			Packets:       p.Packets,
			Bytes:         p.Bytes,
		})
	}
	return out
}

// writeBindings prints one binding a line, as 0.0.0.0:32768->172.18.0.2:80/tcp
// (buffered: one write for many lines).
func writeBindings(w io.Writer, bs []dnft.Binding) error {
	bw := bufio.NewWriter(w)
	for _, b := range bs {
		fmt.Fprintln(bw, b)
	}
	return bw.Flush()
}

// writePortTable prints the published ports as an aligned table.
func writePortTable(w io.Writer, ps []dnft.Published) error {
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tHOST\tCONTAINER\tPROTO\tPACKETS\tBYTES")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", p.Network,
			netip.AddrPortFrom(p.HostIP, p.HostPort), netip.AddrPortFrom(p.ContainerIP, p.ContainerPort),
			p.Proto, p.Packets, p.Bytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}
