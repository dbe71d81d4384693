package chains

import (
	"net/netip"

	"github.com/dnft/dnft/nft"
)

// CommentStage2 is the comment of the counter-only rule of
// DOCKER-ISOLATION__B that counts the packets from B to another interface.
const CommentStage2 = "STAGE-2"

// CommentDocker is the comment of the counter-only rule of DOCKER__B that
// counts the packets iptables' `-o B -j DOCKER` jumps with (those to B
// that are not part of an established connection).
const CommentDocker = "DOCKER"

// objects are the chains (with their rules) and the set elements that one
// network owns in one family. Creation adds them, removal deletes them:
// both come from the same description, so a removal always matches.
type objects struct {
	sets   []nft.Set
	chains []chainDef
	elems  []elemDef
}

type chainDef struct {
	name  string
	rules []nft.Rule
}

type elemDef struct {
	set  nft.Set
	elem nft.Element
}

// Subnet returns the network's prefix of a family (zero if none).
func (n NetworkConfig) Subnet(f nft.Family) netip.Prefix {
	if f == nft.IPv6 {
		return n.Subnet6
	}
	return n.Subnet4
}

// HostIP returns the network's SNAT address of a family (zero if none).
func (n NetworkConfig) HostIP(f nft.Family) netip.Addr {
	if f == nft.IPv6 {
		return n.HostIPv6
	}
	return n.HostIPv4
}

// NetworkFamilies returns the families a network has rules in.
func NetworkFamilies(d DaemonConfig, n NetworkConfig) []nft.Family {
	fams := []nft.Family{nft.IPv4}
	if d.IPv6 && n.Subnet6.IsValid() {
		fams = append(fams, nft.IPv6)
	}
	return fams
}

func networkObjects(d DaemonConfig, n Network, f nft.Family) objects {
	var o objects
	b := n.Bridge
	s := n.Subnet(f)
	chain := func(name string, rules ...nft.Rule) {
		for i := range rules {
			rules[i].Family, rules[i].Chain = f, name
		}
		o.chains = append(o.chains, chainDef{name: name, rules: rules})
	}
	elem := func(set nft.Set, e nft.Element) { o.elems = append(o.elems, elemDef{set, e}) }
	jumpTo := func(c string) *nft.Verdict { return &nft.Verdict{Kind: nft.Jump, Chain: c} }
	byIf := func(m string, c string) {
		elem(ifnameVMap(f, m), nft.Element{Key: []nft.Value{nft.Ifname(b)}, Verdict: jumpTo(c)})
	}
	bySubnet := func(m string, field nft.Field, c string) {
		elem(subnetVMap(f, m, field), nft.Element{Prefix: s, Verdict: jumpTo(c)})
	}
	accept, drop := nft.Verdict{Kind: nft.Accept}, nft.Verdict{Kind: nft.Drop}
	notFromB := nft.IfName{Dir: nft.In, Name: b, Neg: true}
	toB, notToB := nft.IfName{Dir: nft.Out, Name: b}, nft.IfName{Dir: nft.Out, Name: b, Neg: true}
	icc := drop
	if n.ICC {
		icc = accept
	} else {
		// -i B -o B -j DROP for bridged frames (the bridge table).
		elem(iccOffSet(f), nft.Element{Prefix: s})
	}

	// The network's record, kept twice in the IPv4 table (see
	// [ReadState]): in the networks set and on its forward-out element.
	var record string
	if f == nft.IPv4 {
		record = EncodeNetwork(n)
		elem(NetworksSet(), nft.Element{Key: []nft.Value{nft.Ifname(b)}, Comment: record})
	}
	forwardOut := func() {
		elem(ForwardOutMap(f), nft.Element{Key: []nft.Value{nft.Ifname(b)}, Verdict: jumpTo(ForwardChain(b)), Comment: record})
	}
	if n.Internal {
		// -I DOCKER-ISOLATION ! -d S -i B -j DROP ; ! -s S -o B -j DROP
		chain(IsolationChain(b), nft.Rule{Match: []nft.Match{nft.Prefix{Dir: nft.Out, Prefix: s, Neg: true}}, Action: drop, Comment: "INTERNAL NETWORK EGRESS"})
		byIf(MapIsolationOut, IsolationChain(b))
		chain(IsolationInChain(b), nft.Rule{Match: []nft.Match{nft.Prefix{Dir: nft.In, Prefix: s, Neg: true}}, Action: drop, Comment: "INTERNAL NETWORK INGRESS"})
		byIf(MapIsolationIn, IsolationInChain(b))
		// -I/-A FORWARD -i B -o B -j ACCEPT|DROP
		chain(ForwardChain(b), nft.Rule{Match: []nft.Match{toB}, Action: icc, Comment: "ICC"})
		forwardOut()
		return o
	}

	// Isolation from every other non-internal network, both ways. The
	// counter-only rule counts what leaves B for another interface (the
	// stages layout's DOCKER-ISOLATION-STAGE-1 -i B ! -o B jump).
	chain(IsolationChain(b),
		nft.Rule{Match: []nft.Match{notToB}, Comment: CommentStage2},
		nft.Rule{
			Match:  []nft.Match{notToB, nft.Lookup{Fields: []nft.Field{nft.FieldOIFName}, Set: SetIsolationBridges}},
			Action: drop, Comment: "ISOLATION",
		})
	elem(IsolationBridgesSet(f), nft.Element{Key: []nft.Value{nft.Ifname(b)}})
	byIf(MapIsolationOut, IsolationChain(b))

	// -o B: conntrack accept, then filter DOCKER (published ports, and in
	// protected mode the drop of everything else from outside).
	docker := []nft.Rule{
		{Match: []nft.Match{nft.CtEstablished{}}, Action: accept, Comment: "RELATED,ESTABLISHED"},
		// counts what reaches iptables' -o B -j DOCKER
		{Comment: CommentDocker},
		{Match: []nft.Match{notFromB, nft.Lookup{Fields: []nft.Field{nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}, Set: SetPublished}}, Action: accept, Comment: "PUBLISHED"},
	}
	if !d.AllowDirectRouting {
		docker = append(docker, nft.Rule{Match: []nft.Match{notFromB}, Action: drop, Comment: "UNPUBLISHED PORT DROP"})
	}
	chain(DockerChain(b), docker...)
	byIf(MapForwardIn, DockerChain(b))

	// -i B: outgoing accept, then ICC.
	chain(ForwardChain(b),
		nft.Rule{Match: []nft.Match{notToB}, Action: accept, Comment: "OUTGOING"},
		nft.Rule{Action: icc, Comment: "ICC"})
	forwardOut()

	if n.Masquerade {
		var rules []nft.Rule
		var nat nft.Action = nft.Masquerade{}
		comment := "MASQUERADE"
		if a := n.HostIP(f); a.IsValid() {
			// Yield to newer masquerades of local sources (order.go).
			o.sets = append(o.sets, yieldSets(d, f, b)...)
			rules = yieldRules(d, b)
			nat, comment = nft.SNAT{Addr: a}, "SNAT"
		}
		rules = append(rules, nft.Rule{Match: []nft.Match{notToB}, Action: nat, Comment: comment})
		chain(PostroutingChain(b), rules...)
		bySubnet(MapPostroutingSrc, nft.FieldSaddr, PostroutingChain(b))
		if d.UserlandProxy {
			elem(NATReturnSet(f), nft.Element{Key: []nft.Value{nft.Ifname(b)}})
		}
	}
	if !d.UserlandProxy {
		chain(PostroutingOutChain(b), nft.Rule{Match: []nft.Match{nft.FibLocal{Dir: nft.In}}, Action: nft.Masquerade{}, Comment: "MASQUERADE FROM HOST"})
		byIf(MapPostroutingOut, PostroutingOutChain(b))
	}
	if !d.AllowDirectRouting {
		chain(RawChain(b), nft.Rule{Match: []nft.Match{notFromB, nft.FibLocal{Dir: nft.Out, Neg: true}}, Action: drop, Comment: "DROP DIRECT ACCESS"})
		bySubnet(MapRawDirect, nft.FieldDaddr, RawChain(b))
	}
	return o
}

// CreateNetwork adds a network's objects in every family it has. The
// caller has validated it against the existing networks ([CheckNew]).
func CreateNetwork(tx *nft.Tx, d DaemonConfig, n Network) {
	for _, f := range NetworkFamilies(d, n.NetworkConfig) {
		o := networkObjects(d, n, f)
		for _, s := range o.sets {
			tx.AddSet(s)
		}
		for _, c := range o.chains {
			tx.AddChain(nft.Chain{Family: f, Name: c.name})
			for _, r := range c.rules {
				tx.AddRule(r)
			}
		}
		for _, e := range o.elems {
			tx.AddElements(e.set, e.elem)
		}
	}
}

// RemoveNetwork deletes exactly what [CreateNetwork] added.
func RemoveNetwork(tx *nft.Tx, d DaemonConfig, n Network) {
	for _, f := range NetworkFamilies(d, n.NetworkConfig) {
		o := networkObjects(d, n, f)
		for _, e := range o.elems {
			tx.DeleteElements(e.set, e.elem)
		}
		for _, c := range o.chains {
			tx.FlushChain(f, c.name)
			tx.DeleteChain(f, c.name)
		}
		for _, s := range o.sets {
			tx.DeleteSet(s)
		}
	}
}
