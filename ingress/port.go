package ingress

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// DefaultGateway is the gateway bridge of swarm's ingress sandbox.
const DefaultGateway = "docker_gwbridge"

// FieldError is the error for bad input; it names the field and value.
type FieldError = chains.FieldError

// Port is one ingress publication: packets to any local address on Port
// (and Proto) are DNATed to Target:Port, the ingress sandbox on the
// gateway bridge GwBridge.
type Port struct {
	// GwBridge is the gateway bridge; "" means docker_gwbridge.
	GwBridge string
	// Proto is tcp, udp or sctp.
	Proto portmap.Proto
	// Port is the published port; the DNAT target port is the same.
	Port uint16
	// Target is the ingress sandbox's address on the gateway bridge. Its
	// family selects the table (IPv6 needs a daemon with IPv6).
	Target netip.Addr
}

// String formats the publication as "8080/tcp->172.18.0.2 (docker_gwbridge)".
func (p Port) String() string {
	return fmt.Sprintf("%s->%s (%s)", PortProto(p.Port, p.Proto), p.Target, p.GwBridge)
}

// Family returns the family of the target's table.
func (p Port) Family() nft.Family { return family(p.Target) }

// Published is an ingress publication as read back from the kernel. The
// embedded Port shadows its own Port field: the port number is p.Port.Port.
type Published struct {
	Port
	// Refs is the number of times it was published and not unpublished.
	Refs int
	// Seq orders publications by first publication (larger is newer).
	Seq int64
	// Packets and Bytes are the counters of its DNAT map element.
	Packets, Bytes uint64
}

// PortProto formats a port and protocol as "8080/tcp".
func PortProto(port uint16, proto portmap.Proto) string {
	return strconv.Itoa(int(port)) + "/" + string(proto)
}

func family(a netip.Addr) nft.Family {
	if a.Unmap().Is4() {
		return nft.IPv4
	}
	return nft.IPv6
}

func checkProtoPort(proto portmap.Proto, port uint16) error {
	switch proto {
	case portmap.TCP, portmap.UDP, portmap.SCTP:
	default:
		return &FieldError{Field: "proto", Value: string(proto), Reason: "must be tcp, udp or sctp"}
	}
	if port == 0 {
		return &FieldError{Field: "port", Value: "0", Reason: "must be 1-65535"}
	}
	return nil
}

// Normalize checks a publication on its own and returns it in normal form:
// the default gateway filled in and the target unmapped. It refuses a bad
// protocol or port, a gateway name that is not a valid interface name, a
// missing, unspecified, loopback, multicast or zoned target, and an IPv6
// target when the daemon has no IPv6.
func Normalize(d chains.DaemonConfig, p Port) (Port, error) {
	if p.GwBridge == "" {
		p.GwBridge = DefaultGateway
	}
	if err := chains.ValidateIfName("bridge", p.GwBridge); err != nil {
		return p, err
	}
	if err := checkProtoPort(p.Proto, p.Port); err != nil {
		return p, err
	}
	t := p.Target.Unmap()
	switch {
	case !t.IsValid():
		return p, &FieldError{Field: "target", Value: "", Reason: "the ingress sandbox's address is required"}
	case t.Zone() != "":
		return p, &FieldError{Field: "target", Value: t.String(), Reason: "must not have a zone"}
	case t.IsUnspecified() || t.IsLoopback() || t.IsMulticast():
		return p, &FieldError{Field: "target", Value: t.String(), Reason: "must be a unicast address of the ingress sandbox"}
	case t.Is6() && !d.IPv6:
		return p, &FieldError{Field: "target", Value: t.String(), Reason: "IPv6 is not enabled (init --ipv6)"}
	}
	p.Target = t
	return p, nil
}

// NormalizeUnpublish checks the publication to remove. Proto and Port are
// required; GwBridge and Target are optional: when set they must match
// what was published, and a Target limits the removal to its family.
func NormalizeUnpublish(d chains.DaemonConfig, p Port) (Port, error) {
	if err := checkProtoPort(p.Proto, p.Port); err != nil {
		return p, err
	}
	if p.GwBridge != "" {
		if err := chains.ValidateIfName("bridge", p.GwBridge); err != nil {
			return p, err
		}
	}
	if p.Target.IsValid() {
		p.Target = p.Target.Unmap()
		if p.Target.Is6() && !d.IPv6 {
			return p, &FieldError{Field: "target", Value: p.Target.String(), Reason: "IPv6 is not enabled (init --ipv6)"}
		}
	}
	return p, nil
}
