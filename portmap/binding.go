// Package portmap describes Docker's published ports (DNAT, filter accept,
// hairpin masquerade and loopback protection) as nftables set and map
// elements for package nft to program.
//
// It also parses Docker's `-p` specs ([ParseSpec]), keeps the published
// bindings in memory ([Index]) so that checking and queuing a publication
// costs the same whatever the number of bindings, and allocates host ports
// the way Docker does ([Index.Resolve]).
package portmap

import (
	"fmt"
	"net/netip"
)

// Proto is a transport protocol that ports can be published for.
type Proto string

// The protocols Docker publishes ports for.
const (
	TCP  Proto = "tcp"
	UDP  Proto = "udp"
	SCTP Proto = "sctp"
)

// Number returns the IANA protocol number.
func (p Proto) Number() uint8 {
	switch p {
	case TCP:
		return 6
	case UDP:
		return 17
	case SCTP:
		return 132
	}
	return 0
}

// Binding is one published port: HostIP:HostPort/Proto forwarded to
// ContainerIP:ContainerPort. A zero HostIP means "all addresses" of the
// container's family (0.0.0.0 or ::).
type Binding struct {
	Proto         Proto
	HostIP        netip.Addr
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

// String formats the binding in Docker's -p notation with the container
// address: "0.0.0.0:8080->172.18.0.2:80/tcp".
func (b Binding) String() string {
	h := "0.0.0.0"
	if b.HostIP.IsValid() {
		h = b.HostIP.String()
	} else if b.ContainerIP.Is6() {
		h = "::"
	}
	return fmt.Sprintf("%s->%s/%s", netip.AddrPortFrom(mustAddr(h), b.HostPort), netip.AddrPortFrom(b.ContainerIP, b.ContainerPort), b.Proto)
}

func mustAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}
