package compat

import (
	"net/netip"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/portmap"
)

// Input is dnft's state as read back from the kernel, from which compat
// rebuilds the iptables view.
type Input struct {
	// Initialized is false before dnft's init: the view then shows empty
	// tables, as iptables does in a fresh namespace.
	Initialized bool
	Daemon      chains.DaemonConfig
	// Networks, Bindings and Ingress may come in any order; they are
	// replayed in Seq order.
	Networks []chains.Network
	Bindings []portmap.Published
	Ingress  []Ingress
	// User holds, per family, the rules of DOCKER-USER as read from the
	// kernel. A family without an entry shows Docker's `-j RETURN`.
	User map[Family]UserChainRules
	// Gateways holds, per family and ingress gateway bridge, the Seq of
	// the publication that created the gateway's masquerade: iptables
	// keeps the rule where that first publication put it until the last
	// port on the gateway goes (0 or absent: at its oldest port).
	Gateways map[Family]map[string]int64
	// IngressCreated holds, per family, the Seq of the publication that
	// created the ingress chains and jumps, which stay where it put them
	// until the family's last port goes (0 or absent: at the oldest port).
	IngressCreated map[Family]int64
}

// UserChainRules are the rules of a family's DOCKER-USER in iptables'
// form, counters included.
type UserChainRules struct {
	Rules []*Rule
	// Texts are the rules as nft lists them, when a rule has no
	// iptables form (nil otherwise).
	Texts []string
}

// Ingress is one swarm ingress publication (CONTRACT.md §1, "ingress
// publish"), for the code that programs ingress to fill in.
type Ingress struct {
	Proto portmap.Proto
	// Port is the published port.
	Port uint16
	// Target is the ingress sandbox address; its family selects iptables
	// or ip6tables.
	Target netip.Addr
	// GwBridge is the gateway bridge ("" means docker_gwbridge).
	GwBridge string
	// Seq orders the publication among networks and bindings.
	Seq int64
	// Counters says where the counters of the publication's rules come
	// from; a rule without an entry counts 0. The family-wide rules
	// (jumps, RETURNs) take the entries of the family's oldest
	// publication, the gateway masquerade those of the oldest publication
	// on that gateway.
	Counters map[IngressRule]*Source
}

// IngressRule names a rule of CONTRACT.md §2's ingress sequence.
type IngressRule int

// The rules of the ingress sequence.
const (
	// IngressDNAT is the port's nat DOCKER-INGRESS DNAT rule.
	IngressDNAT IngressRule = iota
	// IngressAccept is the port's filter DOCKER-INGRESS --dport ACCEPT.
	IngressAccept
	// IngressEstablished is the port's filter DOCKER-INGRESS --sport
	// RELATED,ESTABLISHED ACCEPT.
	IngressEstablished
	// IngressGatewayMasquerade is the gateway's nat POSTROUTING
	// --src-type LOCAL -o G MASQUERADE.
	IngressGatewayMasquerade
	// IngressForwardJump is filter FORWARD -j DOCKER-INGRESS.
	IngressForwardJump
	// IngressFilterReturn is filter DOCKER-INGRESS -j RETURN.
	IngressFilterReturn
	// IngressPreroutingJump is nat PREROUTING -j DOCKER-INGRESS.
	IngressPreroutingJump
	// IngressOutputJump is nat OUTPUT -j DOCKER-INGRESS.
	IngressOutputJump
	// IngressNATReturn is nat DOCKER-INGRESS -j RETURN.
	IngressNATReturn
)

// DefaultGateway is the gateway bridge of ingress publications that name
// none.
const DefaultGateway = "docker_gwbridge"

// View is the iptables view of a namespace: one ruleset per family.
type View struct {
	IPv4, IPv6 *Ruleset
}

// Family returns the ruleset of a family.
func (v *View) Family(f Family) *Ruleset {
	if f == IPv6 {
		return v.IPv6
	}
	return v.IPv4
}
