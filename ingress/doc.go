// Package ingress describes Docker swarm's ingress publishing (CONTRACT.md
// §2 "ingress": the nat and filter DOCKER-INGRESS chains, the jumps that
// run them before DOCKER, and the gateway bridge masquerade) as nftables
// chains, maps and sets for package nft to program.
//
// Per family, while at least one ingress port is published, dnft's table
// holds:
//
//	map ingress-dnat      { meta l4proto . th dport : addr . port }   DNAT targets, reference counts
//	set ingress-ports     { meta l4proto . th dport }                 filter accepts
//	set ingress-gateways  { oifname }                                  gateway bridges, port counts
//	chain nat-DOCKER-INGRESS  dnat ip to meta l4proto . th dport map @ingress-dnat
//	chain DOCKER-INGRESS      meta l4proto . th dport @ingress-ports accept
//	                          ct state established,related meta l4proto . th sport @ingress-ports accept
//	nat-PREROUTING, nat-OUTPUT: fib daddr type local jump nat-DOCKER-INGRESS, before the DOCKER jump
//	filter-FORWARD:             jump DOCKER-INGRESS, after DOCKER-USER, before DOCKER-ISOLATION
//	nat-POSTROUTING (first):    fib saddr type local oifname @ingress-gateways masquerade
//
// The first publication of a family creates all of it and the removal of
// the last one deletes all of it, each in the same batch as the element
// changes. A packet meets the same rules whatever the number of ports.
//
// Publications are reference counted as swarm does: publishing the same
// port, protocol, target and gateway again only increments the count kept
// in the comment of its ingress-dnat element ("dnft1;gw=G;n=COUNT;q=SEQ"),
// and only the unpublication that brings it to zero removes the port. The
// comment of an ingress-gateways element ("dnft1;n=COUNT") counts the
// ports on that gateway, so the last port of a family is known without
// listing the others. All state is in the kernel.
//
// The package never applies anything: it reads through a [Reader] (an
// *nft.Conn) and queues changes on an *nft.Tx.
package ingress
