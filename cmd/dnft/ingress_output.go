package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dnft/dnft"
)

// ingressPortJSON is one element of ingress ls --json. Its keys are stable.
type ingressPortJSON struct {
	Port    uint16 `json:"port"`
	Proto   string `json:"proto"`
	Target  string `json:"target"`
	Bridge  string `json:"bridge"`
	Refs    int    `json:"refs"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func ingressJSON(ps []dnft.IngressPublished) []ingressPortJSON {
	out := make([]ingressPortJSON, 0, len(ps)) // [] rather than null when empty
	for _, p := range ps {
		out = append(out, ingressPortJSON{
			Port: p.Port.Port, Proto: string(p.Proto), Target: p.Target.String(), Bridge: p.GwBridge,
			Refs: p.Refs, Packets: p.Packets, Bytes: p.Bytes,
		})
	}
	return out
}

// writeIngressTable prints the ingress ports as an aligned table.
func writeIngressTable(w io.Writer, ps []dnft.IngressPublished) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "PORT\tTARGET\tBRIDGE\tREFS\tPACKETS")
	for _, p := range ps {
		fmt.Fprintf(tw, "%d/%s\t%s\t%s\t%d\t%d\n", p.Port.Port, p.Proto, p.Target, p.GwBridge, p.Refs, p.Packets)
	}
	return tw.Flush()
}
