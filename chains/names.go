package chains

// Base chains of dnft's tables. Their names say which iptables table and
// chain they stand for.
const (
	RawPrerouting  = "raw-PREROUTING"
	RawOutput      = "raw-OUTPUT"
	NATPrerouting  = "nat-PREROUTING"
	NATInput       = "nat-INPUT"
	NATOutput      = "nat-OUTPUT"
	NATPostrouting = "nat-POSTROUTING"
	FilterInput    = "filter-INPUT"
	FilterForward  = "filter-FORWARD"
	FilterOutput   = "filter-OUTPUT"
)

// Regular chains shared by all networks.
const (
	// NATDocker is iptables' nat DOCKER chain (DNAT of published ports).
	NATDocker = "nat-DOCKER"
	// DockerUser is DOCKER-USER: the operator's chain, jumped first from
	// forward. dnft creates it once and never flushes or rewrites it.
	DockerUser = "DOCKER-USER"
	// DockerIsolation is DOCKER-ISOLATION: it dispatches to the per-network
	// isolation chains.
	DockerIsolation = "DOCKER-ISOLATION"
)

// Sets and maps shared by all networks.
const (
	// SetNetworks holds one element per network (IPv4 table only), whose
	// comment is the network's record, and the daemon's record on the
	// element keyed "dnft/daemon". It is how a later process learns the
	// state; MapForwardOut keeps a second copy of every record.
	SetNetworks = "networks"
	// SetIsolationBridges holds the bridges of non-internal networks.
	SetIsolationBridges = "isolation-bridges"
	// MapIsolationOut dispatches by input bridge to DOCKER-ISOLATION__B.
	MapIsolationOut = "isolation-out"
	// MapIsolationIn dispatches by output bridge to DOCKER-ISOLATION-IN__B.
	MapIsolationIn = "isolation-in"
	// MapForwardIn dispatches by output bridge to DOCKER__B.
	MapForwardIn = "forward-in"
	// MapForwardOut dispatches by input bridge to FORWARD__B. In the IPv4
	// table, element comments are the network records, and the element
	// keyed "dnft/daemon" (which no packet matches) holds the daemon
	// record: the second copies (see SetNetworks).
	MapForwardOut = "forward-out"
	// SetNATReturn holds bridges whose packets skip DNAT (masquerade on
	// and userland proxy on: iptables' `-t nat -I DOCKER -i B -j RETURN`).
	SetNATReturn = "nat-return"
	// MapPostroutingSrc dispatches by source subnet to nat-POSTROUTING__B.
	MapPostroutingSrc = "postrouting-src"
	// MapPostroutingOut dispatches by output bridge to nat-POSTROUTING-OUT__B.
	MapPostroutingOut = "postrouting-out"
	// MapRawDirect dispatches by destination subnet to raw-PREROUTING__B.
	MapRawDirect = "raw-direct"
	// SetPublished holds container address . proto . port of every
	// published port: iptables' per-port ACCEPT rules in filter DOCKER.
	SetPublished = "published"
)

// Per-network chain names.

// IsolationChain is DOCKER-ISOLATION's part for packets from bridge b.
func IsolationChain(b string) string { return "DOCKER-ISOLATION__" + b }

// IsolationInChain is DOCKER-ISOLATION's part for packets to internal bridge b.
func IsolationInChain(b string) string { return "DOCKER-ISOLATION-IN__" + b }

// DockerChain is filter DOCKER (with FORWARD's conntrack accept) for
// packets going out to bridge b.
func DockerChain(b string) string { return "DOCKER__" + b }

// ForwardChain is FORWARD's part for packets coming from bridge b.
func ForwardChain(b string) string { return "FORWARD__" + b }

// PostroutingChain is nat POSTROUTING's masquerade of b's subnet.
func PostroutingChain(b string) string { return "nat-POSTROUTING__" + b }

// PostroutingOutChain is nat POSTROUTING's masquerade of local sources
// leaving through b (userland proxy off).
func PostroutingOutChain(b string) string { return "nat-POSTROUTING-OUT__" + b }

// RawChain is raw PREROUTING's direct-access drop for b's subnet.
func RawChain(b string) string { return "raw-PREROUTING__" + b }
