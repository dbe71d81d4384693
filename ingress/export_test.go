package ingress

import (
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
	"net/netip"
)

// Prefill queues, as one batch, n more TCP ports first, first+1, ... to
// target on the default gateway, for benchmarks. The family's ingress
// objects must exist with exactly have ports on the default gateway.
func Prefill(tx *nft.Tx, target netip.Addr, first uint16, n, have int) {
	f := family(target)
	var dnat, ports []nft.Element
	for i := range n {
		p := Port{GwBridge: DefaultGateway, Proto: portmap.TCP, Port: first + uint16(i), Target: target}
		r := portRecord{gw: p.GwBridge, refs: 1, seq: int64(i + 1)}
		dnat = append(dnat, dnatElem(p, r))
		ports = append(ports, portsElem(p, r))
	}
	// Chunks of 500: package nft splits element lists by count (1000),
	// but 1000 commented elements exceed the 64 KiB netlink attribute
	// limit and google/nftables truncates them silently.
	for i := 0; i < n; i += 500 {
		j := min(i+500, n)
		tx.AddElements(DNATMap(f), dnat[i:j]...)
		tx.AddElements(PortsSet(f), ports[i:j]...)
		tx.AddElements(RepliesSet(f), ports[i:j]...)
	}
	setGateway(tx, f, DefaultGateway, Gateway{Ports: have, Created: 1, Ingress: 1}, Gateway{Ports: have + n, Created: 1, Ingress: 1})
}
