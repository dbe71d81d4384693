package chains

import (
	"net/netip"

	"github.com/dnft/dnft/nft"
)

// ifnameSet is a set of interface names.
func ifnameSet(f nft.Family, name string) nft.Set {
	return nft.Set{Family: f, Name: name, Key: []nft.Field{nft.FieldIIFName}}
}

// ifnameVMap is a verdict map keyed by interface name.
func ifnameVMap(f nft.Family, name string) nft.Set {
	return nft.Set{Family: f, Name: name, Key: []nft.Field{nft.FieldIIFName}, Data: nft.DataVerdict}
}

// subnetVMap is a verdict map keyed by a source or destination prefix.
func subnetVMap(f nft.Family, name string, field nft.Field) nft.Set {
	return nft.Set{Family: f, Name: name, Key: []nft.Field{field}, Data: nft.DataVerdict, Interval: true}
}

// IsolationBridgesSet is the set of non-internal bridges that the
// isolation rules drop traffic to; its per-element counters count the
// drops to each bridge (the stages layout's DOCKER-ISOLATION-STAGE-2 -o B
// -j DROP).
func IsolationBridgesSet(f nft.Family) nft.Set {
	s := ifnameSet(f, SetIsolationBridges)
	s.Counter = true
	return s
}

// NATReturnSet is the set of bridges whose packets skip DNAT (nat
// DOCKER -i B -j RETURN); its per-element counters count each bridge's
// RETURN.
func NATReturnSet(f nft.Family) nft.Set {
	s := ifnameSet(f, SetNATReturn)
	s.Counter = true
	return s
}

// NetworksSet is the set that records networks (IPv4 table).
func NetworksSet() nft.Set { return ifnameSet(nft.IPv4, SetNetworks) }

// ForwardOutMap is the map that dispatches by input bridge to the
// FORWARD__B chains; in the IPv4 table its elements also hold the second
// copy of the network and daemon records.
func ForwardOutMap(f nft.Family) nft.Set { return ifnameVMap(f, MapForwardOut) }

// daemonKey is the key of the element of the networks set that records
// the daemon configuration; no interface can be named like it.
const daemonKey = "dnft/daemon"

// daemonElement records the daemon configuration.
func daemonElement(d DaemonConfig) nft.Element {
	return nft.Element{Key: []nft.Value{nft.Ifname(daemonKey)}, Comment: EncodeDaemon(d)}
}

// PublishedSet is the set of published container ports (filter DOCKER).
func PublishedSet(f nft.Family) nft.Set {
	return nft.Set{Family: f, Name: SetPublished, Key: []nft.Field{nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}, Counter: true}
}

func loopback(f nft.Family) netip.Prefix {
	if f == nft.IPv6 {
		return netip.MustParsePrefix("::1/128")
	}
	return netip.MustParsePrefix("127.0.0.0/8")
}

// Families returns the families the daemon programs.
func (d DaemonConfig) Families() []nft.Family {
	if d.IPv6 {
		return []nft.Family{nft.IPv4, nft.IPv6}
	}
	return []nft.Family{nft.IPv4}
}

// SetDaemon queues the replacement of the daemon record (cur's) with
// next's: a change of what the record holds that changes no rule, such
// as the view's layout.
func SetDaemon(tx *nft.Tx, cur, next DaemonConfig) {
	tx.DeleteElements(NetworksSet(), daemonElement(cur))
	tx.AddElements(NetworksSet(), daemonElement(next))
	tx.DeleteElements(ForwardOutMap(nft.IPv4), forwardOutDaemon(cur))
	tx.AddElements(ForwardOutMap(nft.IPv4), forwardOutDaemon(next))
}

// forwardOutDaemon is the second copy of the daemon record, on the IPv4
// forward-out map. No interface has its key's name, so the element never
// matches a packet.
func forwardOutDaemon(d DaemonConfig) nft.Element {
	return nft.Element{Key: []nft.Value{nft.Ifname(daemonKey)}, Verdict: &nft.Verdict{Kind: nft.Return}, Comment: EncodeDaemon(d)}
}

// UserReturn is the rule Docker puts in DOCKER-USER when it creates the
// chain (`-A DOCKER-USER -j RETURN`): a counted return. It is the
// operator's from then on, like every rule of DOCKER-USER, so rules
// appended after it (iptables -A, nft add rule) are never reached, as
// with Docker; insert them (iptables -I, nft insert rule).
func UserReturn(f nft.Family) nft.Rule {
	return nft.Rule{Family: f, Chain: DockerUser, Action: nft.Verdict{Kind: nft.Return}}
}

// InitUser adds [UserReturn] to the DOCKER-USER chain of every family:
// what a newly created DOCKER-USER holds.
func InitUser(tx *nft.Tx, d DaemonConfig) {
	for _, f := range d.Families() {
		tx.AddRule(UserReturn(f))
	}
}

// CommentReturn is the comment of the counted returns that end
// DOCKER-ISOLATION (and ingress's DOCKER-INGRESS chains): iptables'
// `-j RETURN` at their end.
const CommentReturn = "RETURN"

// CommentPolicy is the comment of the counter-only rule that ends every
// base chain: it counts what the chain's policy decides (iptables' policy
// counters).
const CommentPolicy = "POLICY"

// InitPolicy adds, in every family, the base chains iptables has and
// dnft needs no rule in (filter INPUT and OUTPUT, nat INPUT, raw OUTPUT),
// and a counter-only rule (CommentPolicy) at the end of every base chain,
// so that the view shows iptables' policy counters. Call it after every
// other Init: the rule must stay last (rules added to base chains later
// are inserted before it).
func InitPolicy(tx *nft.Tx, d DaemonConfig) {
	for _, f := range d.Families() {
		for _, b := range []struct {
			name string
			t    nft.ChainType
			h    nft.Hook
			prio int32
		}{
			{FilterInput, nft.TypeFilter, nft.HookInput, nft.PriorityFilter},
			{FilterOutput, nft.TypeFilter, nft.HookOutput, nft.PriorityFilter},
			{NATInput, nft.TypeNAT, nft.HookInput, nft.PrioritySrcNAT},
			{RawOutput, nft.TypeFilter, nft.HookOutput, nft.PriorityRaw},
		} {
			tx.AddChain(nft.Chain{Family: f, Name: b.name, Base: &nft.Base{Type: b.t, Hook: b.h, Priority: b.prio}})
		}
		for _, c := range PolicyChains {
			tx.AddRule(nft.Rule{Family: f, Chain: c, Comment: CommentPolicy})
		}
	}
}

// PolicyChains are dnft's base chains, each ending in the policy counter.
var PolicyChains = []string{RawPrerouting, RawOutput, NATPrerouting, NATInput, NATOutput, NATPostrouting,
	FilterInput, FilterForward, FilterOutput}

// Init adds the daemon-level objects of every family: the table, base
// chains mirroring iptables' hooks and priorities, DOCKER-USER,
// DOCKER-ISOLATION, nat DOCKER and the dispatch maps that per-network
// objects hang off; and the bridge table (see [SetICCOff4]).
// Published-port objects are added by package portmap.
func Init(tx *nft.Tx, d DaemonConfig) {
	for _, f := range d.Families() {
		initFamily(tx, d, f)
	}
	initBridge(tx, d)
}

func initFamily(tx *nft.Tx, d DaemonConfig, f nft.Family) {
	base := func(name string, t nft.ChainType, h nft.Hook, prio int32) {
		b := &nft.Base{Type: t, Hook: h, Priority: prio}
		if h == nft.HookForward && d.ForwardDrop(f) {
			b.Policy = nft.PolicyDrop // -P FORWARD DROP
		}
		tx.AddChain(nft.Chain{Family: f, Name: name, Base: b})
	}
	regular := func(name string) { tx.AddChain(nft.Chain{Family: f, Name: name}) }
	rule := func(chain, comment string, a nft.Action, m ...nft.Match) {
		tx.AddRule(nft.Rule{Family: f, Chain: chain, Match: m, Action: a, Comment: comment})
	}
	jump := func(c string) nft.Verdict { return nft.Verdict{Kind: nft.Jump, Chain: c} }
	vmap := func(field nft.Field, m string) nft.VMap { return nft.VMap{Fields: []nft.Field{field}, Map: m} }

	tx.AddTable(f)
	if f == nft.IPv4 {
		tx.AddSet(NetworksSet())
		tx.AddElements(NetworksSet(), daemonElement(d))
	}
	tx.AddSet(PublishedSet(f))
	tx.AddSet(IsolationBridgesSet(f))
	tx.AddSet(NATReturnSet(f))
	for _, m := range []string{MapIsolationOut, MapIsolationIn, MapForwardIn, MapForwardOut, MapPostroutingOut} {
		tx.AddSet(ifnameVMap(f, m))
	}
	if f == nft.IPv4 {
		// The second copy of the daemon record.
		tx.AddElements(ForwardOutMap(f), forwardOutDaemon(d))
	}
	tx.AddSet(subnetVMap(f, MapPostroutingSrc, nft.FieldSaddr))
	tx.AddSet(subnetVMap(f, MapRawDirect, nft.FieldDaddr))

	base(RawPrerouting, nft.TypeFilter, nft.HookPrerouting, nft.PriorityRaw)
	base(NATPrerouting, nft.TypeNAT, nft.HookPrerouting, nft.PriorityDstNAT)
	base(NATOutput, nft.TypeNAT, nft.HookOutput, nft.PriorityDstNAT)
	base(NATPostrouting, nft.TypeNAT, nft.HookPostrouting, nft.PrioritySrcNAT)
	base(FilterForward, nft.TypeFilter, nft.HookForward, nft.PriorityFilter)
	regular(NATDocker)
	regular(DockerUser)
	regular(DockerIsolation)

	// raw PREROUTING: direct access to a container subnet (protected mode).
	rule(RawPrerouting, "DOCKER DIRECT ACCESS", vmap(nft.FieldDaddr, MapRawDirect))
	// nat PREROUTING / OUTPUT: -m addrtype --dst-type LOCAL -j DOCKER.
	local := nft.FibLocal{Dir: nft.Out}
	rule(NATPrerouting, "DOCKER", jump(NATDocker), local)
	if d.UserlandProxy {
		rule(NATOutput, "DOCKER", jump(NATDocker), nft.Prefix{Dir: nft.Out, Prefix: loopback(f), Neg: true}, local)
	} else {
		rule(NATOutput, "DOCKER", jump(NATDocker), local)
	}
	// nat DOCKER: -i B -j RETURN for masquerading networks (proxy on).
	rule(NATDocker, "RETURN", nft.Verdict{Kind: nft.Return}, nft.Lookup{Fields: []nft.Field{nft.FieldIIFName}, Set: SetNATReturn})
	// nat POSTROUTING: per-network masquerade and hairpin.
	rule(NATPostrouting, "MASQUERADE", vmap(nft.FieldSaddr, MapPostroutingSrc))
	rule(NATPostrouting, "MASQUERADE FROM HOST", vmap(nft.FieldOIFName, MapPostroutingOut))
	// filter FORWARD: DOCKER-USER first, then isolation, then the
	// per-network rules keyed by output and by input bridge.
	rule(FilterForward, "DOCKER-USER", jump(DockerUser))
	rule(FilterForward, "DOCKER-ISOLATION", jump(DockerIsolation))
	rule(FilterForward, "DOCKER", vmap(nft.FieldOIFName, MapForwardIn))
	rule(FilterForward, "FORWARD", vmap(nft.FieldIIFName, MapForwardOut))
	rule(DockerIsolation, "DOCKER-ISOLATION", vmap(nft.FieldIIFName, MapIsolationOut))
	rule(DockerIsolation, "DOCKER-ISOLATION", vmap(nft.FieldOIFName, MapIsolationIn))
	// -A DOCKER-ISOLATION -j RETURN, counted on its own.
	rule(DockerIsolation, CommentReturn, nft.Verdict{Kind: nft.Return})
}
