package reference

import (
	"net/netip"

	"github.com/dnft/dnft/portmap"
)

// Bind is the binding hostIP:hostPort/proto -> ctrIP:ctrPort, for tests
// that program the same bindings into dnft and the reference. An empty
// hostIP means all addresses (the zero HostIP, as Docker's default). It
// panics on a malformed address.
func Bind(proto portmap.Proto, hostIP string, hostPort uint16, ctrIP string, ctrPort uint16) portmap.Binding {
	b := portmap.Binding{Proto: proto, HostPort: hostPort, ContainerIP: netip.MustParseAddr(ctrIP), ContainerPort: ctrPort}
	if hostIP != "" {
		b.HostIP = netip.MustParseAddr(hostIP)
	}
	return b
}
