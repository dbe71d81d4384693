package compat

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Build rebuilds the iptables rules that Docker's classic bridge driver
// would hold for in by replaying CONTRACT.md §2's command sequence: init,
// then every network creation, binding publication and ingress
// publication in Seq order, into an in-memory iptables. Removals are not
// replayed: deleting rules does not change the order of the others. With
// a Kernel, every rule's counter is taken from dnft's counters (see the
// package documentation for the mapping); without, counters are 0.
func Build(in Input, k *Kernel) (*View, error) {
	v := &View{IPv4: NewRuleset(IPv4), IPv6: NewRuleset(IPv6)}
	if !in.Initialized {
		return v, nil
	}
	p := &replayer{in: in, view: v, ingress: map[Family]bool{}, stages: in.Daemon.Layout == chains.LayoutStages}
	if k != nil && k.only != nil {
		// A view of some tables only: the others are not rebuilt.
		p.skip = map[string]bool{}
		for _, t := range TableNames {
			p.skip[t] = !k.only[t]
		}
	}
	if err := p.run(); err != nil {
		return nil, err
	}
	for _, rs := range []*Ruleset{v.IPv4, v.IPv6} {
		// iptables keeps the raw table, empty, once a rule has been there.
		if raw := rs.Table(TableRaw); len(raw.Chain("PREROUTING").Rules)+len(raw.Chain("OUTPUT").Rules) > 0 || in.Daemon.RawTable(nftFamily(rs.Family)) {
			raw.Present = true
		}
		if k != nil {
			ApplyCounters(rs, k)
		}
	}
	return v, nil
}

// replayer runs the command sequence.
type replayer struct {
	in      Input
	view    *View
	nets    []chains.Network // created so far, oldest first
	ingress map[Family]bool  // families whose ingress chains exist
	// front holds rules inserted at the top of a chain, not yet in it.
	front map[chainKey][]*Rule
	// skip names the tables not rebuilt (a view of other tables).
	skip map[string]bool
	// stages is Docker 17.06–27's layout (chains.LayoutStages).
	stages bool
	// once holds, per chain, the rules appended only when not already
	// there (dockerd 20.10 checks with -C before -A).
	once map[chainKey]map[string]bool
	// masq holds the ingress gateways whose masquerade was replayed.
	masq map[gateway]bool
}

// event is one object to replay.
type event struct {
	seq  int64
	kind int // 0 network, 1 binding, 2 ingress chains, 3 gateway, 4 ingress port, 5 moved masquerade from the host (the order of ties)
	idx  int
	part bindingPart // of a binding
	fam  Family      // of a moved masquerade from the host
}

// bindingPart selects rules of a binding: a binding whose filter accept
// or hairpin masquerade sits elsewhere in iptables' chains than where its
// publication put them (portmap.Published.FilterSeq) is replayed in parts.
type bindingPart int

const (
	partOwn     bindingPart = iota // every rule not replayed elsewhere
	partFilter                     // the filter accept alone
	partHairpin                    // the hairpin masquerade alone
)

func (p *replayer) run() error {
	d := p.in.Daemon
	for _, f := range d.Families() {
		if err := p.init(compatFamily(f)); err != nil {
			return err
		}
	}
	var evs []event
	for i, n := range p.in.Networks {
		evs = append(evs, event{seq: n.Seq, kind: 0, idx: i})
		for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
			if !p.in.Daemon.UserlandProxy && !n.Internal && n.MasqPos(f) != n.Seq {
				evs = append(evs, event{seq: n.MasqPos(f), kind: 5, idx: i, fam: compatFamily(f)})
			}
		}
	}
	for i, b := range p.in.Bindings {
		evs = append(evs, event{seq: b.Seq, kind: 1, idx: i})
		if p.stages {
			continue // dockerd 20.10 appends each rule once: no copies
		}
		if b.FilterSeq != 0 {
			evs = append(evs, event{seq: b.FilterSeq, kind: 1, idx: i, part: partFilter})
		}
		if b.HairpinSeq != 0 {
			evs = append(evs, event{seq: b.HairpinSeq, kind: 1, idx: i, part: partHairpin})
		}
	}
	for i, g := range p.in.Ingress {
		evs = append(evs, event{seq: g.Seq, kind: 4, idx: i})
	}
	fams := []Family{IPv4, IPv6}
	var gws []gateway
	for i, f := range fams {
		if seq, ok := p.in.IngressCreated[f]; ok && seq != 0 {
			evs = append(evs, event{seq: seq, kind: 2, idx: i})
		}
		for name, seq := range p.in.Gateways[f] {
			gws = append(gws, gateway{f, name})
			evs = append(evs, event{seq: seq, kind: 3, idx: len(gws) - 1})
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		return cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.kind, b.kind))
	})
	for _, e := range evs {
		var err error
		switch e.kind {
		case 0:
			err = p.network(p.in.Networks[e.idx])
		case 1:
			err = p.binding(p.in.Bindings[e.idx], e.part)
		case 2:
			err = p.ingressChains(fams[e.idx])
		case 3:
			err = p.gatewayMasquerade(gws[e.idx].f, gws[e.idx].name)
		case 4:
			err = p.ingressPublish(&p.in.Ingress[e.idx])
		case 5:
			err = p.movedHostMasq(p.in.Networks[e.idx], e.fam)
		}
		if err != nil {
			return err
		}
	}
	p.flushAll()
	return nil
}

func compatFamily(f nft.Family) Family {
	if f == nft.IPv6 {
		return IPv6
	}
	return IPv4
}

func familyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// table returns a table of the view; replayed tables are present.
func (p *replayer) table(f Family, name string) *Table {
	t := p.view.Family(f).Table(name)
	if name != TableRaw {
		t.Present = true
	}
	return t
}

// do runs one command: op is -A, -I or -D; spec is in iptables' syntax.
func (p *replayer) do(f Family, table, op, chain, spec string, src *Source) error {
	if p.skip[table] {
		return nil
	}
	r, err := ParseRule(f, spec)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return p.doRule(f, table, op, chain, r, src)
}

// chainKey names a chain of the view.
type chainKey struct {
	f            Family
	table, chain string
}

// doRule runs one command with a rule already built. Rules inserted at
// the top (-I) are kept aside, newest last, and put in front of the
// chain in one step before any other command on it and at the end of
// the replay: thousands of bindings each insert at the top of filter
// DOCKER, which would otherwise move the whole chain every time.
func (p *replayer) doRule(f Family, table, op, chain string, r *Rule, src *Source) error {
	if p.skip[table] {
		return nil
	}
	r.Source = src
	k := chainKey{f, table, chain}
	if op == "-I" {
		if p.table(f, table).Chain(chain) == nil {
			return fmt.Errorf("replay: %s -I %s: %w", table, chain, ErrNoChain)
		}
		if p.front == nil {
			p.front = map[chainKey][]*Rule{}
		}
		p.front[k] = append(p.front[k], r)
		return nil
	}
	p.flushFront(k)
	t := p.table(f, table)
	var err error
	switch op {
	case "-A":
		err = t.Append(chain, r)
	case "-D":
		err = t.Delete(chain, r)
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// flushFront puts the rules inserted at the top of a chain in front of
// it, newest first.
func (p *replayer) flushFront(k chainKey) {
	ins := p.front[k]
	if len(ins) == 0 {
		return
	}
	delete(p.front, k)
	c := p.view.Family(k.f).Table(k.table).Chain(k.chain)
	out := make([]*Rule, 0, len(ins)+len(c.Rules))
	for i := len(ins) - 1; i >= 0; i-- {
		out = append(out, ins[i])
	}
	c.Rules = append(out, c.Rules...)
}

// flushAll puts every chain's pending inserts in place.
func (p *replayer) flushAll() {
	for k := range p.front {
		p.flushFront(k)
	}
}

func (p *replayer) newChain(f Family, table, chain string) error {
	if p.skip[table] {
		return nil
	}
	if err := p.table(f, table).NewChain(chain); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// Helpers for counter sources.
func ruleSrc(chain, comment string) *Source {
	return &Source{Plus: []Ref{{Chain: chain, Comment: comment}}}
}

func nextSrc(chain, comment string) *Source {
	return &Source{Plus: []Ref{{Chain: chain, Comment: comment, Next: true}}}
}

func sharedRule(chain, comment string) *Source {
	return &Source{Plus: []Ref{{Chain: chain, Comment: comment}}, Shared: true}
}

func elemSrc(set, key string) *Source {
	return &Source{Plus: []Ref{{Set: set, Key: key}}, Shared: true}
}

// Comments of the nft rules that chains.Init and chains.CreateNetwork
// write (the counters' kernel sources).
const (
	cDocker            = "DOCKER"
	cDockerUser        = "DOCKER-USER"
	cDockerIsolation   = "DOCKER-ISOLATION"
	cReturn            = "RETURN"
	cRelated           = "RELATED,ESTABLISHED"
	cPublished         = "PUBLISHED"
	cUnpublishedDrop   = "UNPUBLISHED PORT DROP"
	cOutgoing          = "OUTGOING"
	cICC               = "ICC"
	cIsolation         = "ISOLATION"
	cInternalEgress    = "INTERNAL NETWORK EGRESS"
	cInternalIngress   = "INTERNAL NETWORK INGRESS"
	cMasquerade        = "MASQUERADE"
	cSNAT              = "SNAT"
	cMasqueradeFromHst = "MASQUERADE FROM HOST"
	cDirectDrop        = "DROP DIRECT ACCESS"
)

func loopbackNet(f Family) string {
	if f == IPv6 {
		return "::1/128"
	}
	return "127.0.0.0/8"
}

// init is CONTRACT.md §2's init sequence.
func (p *replayer) init(f Family) error {
	output := "-m addrtype --dst-type LOCAL -j DOCKER"
	if p.in.Daemon.UserlandProxy {
		output = "! -d " + loopbackNet(f) + " " + output
	}
	steps := []func() error{
		func() error { return p.newChain(f, TableNAT, "DOCKER") },
		func() error {
			return p.do(f, TableNAT, "-A", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER", ruleSrc(chains.NATPrerouting, cDocker))
		},
		func() error { return p.do(f, TableNAT, "-A", "OUTPUT", output, ruleSrc(chains.NATOutput, cDocker)) },
		func() error { return p.newChain(f, TableFilter, "DOCKER") },
		func() error { return p.isolationChains(f) },
		func() error { return p.newChain(f, TableFilter, "DOCKER-USER") },
		func() error { return p.userRules(f) },
		func() error {
			return p.do(f, TableFilter, "-I", "FORWARD", "-j "+p.isolation(), p.jumpSrc(f, p.isolation()))
		},
		func() error {
			return p.do(f, TableFilter, "-I", "FORWARD", "-j DOCKER-USER", p.jumpSrc(f, "DOCKER-USER"))
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	if p.forwardDrop(f) {
		// -P FORWARD DROP: init turned forwarding on (CONTRACT.md §2).
		p.table(f, TableFilter).Chain("FORWARD").Policy = "DROP"
	}
	return nil
}

// isolation is the chain FORWARD jumps to for isolation: DOCKER-ISOLATION,
// or DOCKER-ISOLATION-STAGE-1 in the stages layout.
func (p *replayer) isolation() string {
	if p.stages {
		return stage1
	}
	return "DOCKER-ISOLATION"
}

// Chains of the stages layout.
const (
	stage1 = "DOCKER-ISOLATION-STAGE-1"
	stage2 = "DOCKER-ISOLATION-STAGE-2"
)

// isolationChains creates the isolation chains with their RETURNs: init's
// DOCKER-ISOLATION (CONTRACT.md §2), or dockerd 20.10's two stages.
func (p *replayer) isolationChains(f Family) error {
	ret := ruleSrc(chains.DockerIsolation, chains.CommentReturn)
	if !p.stages {
		if err := p.newChain(f, TableFilter, "DOCKER-ISOLATION"); err != nil {
			return err
		}
		return p.do(f, TableFilter, "-A", "DOCKER-ISOLATION", "-j RETURN", ret)
	}
	for _, c := range []string{stage1, stage2} {
		if err := p.newChain(f, TableFilter, c); err != nil {
			return err
		}
	}
	if err := p.do(f, TableFilter, "-A", stage1, "-j RETURN", ret); err != nil {
		return err
	}
	return p.do(f, TableFilter, "-A", stage2, "-j RETURN", p.stage2Return(f))
}

// stage2Return is the counter source of DOCKER-ISOLATION-STAGE-2's
// RETURN: what the stage-1 jumps sent there less what stage 2 dropped.
func (p *replayer) stage2Return(f Family) *Source {
	s := &Source{}
	for _, n := range p.in.Networks {
		if n.Internal || !p.has(n, f) {
			continue
		}
		s.Plus = append(s.Plus, Ref{Chain: chains.IsolationChain(n.Bridge), Comment: chains.CommentStage2})
		s.Minus = append(s.Minus, Ref{Chain: chains.IsolationChain(n.Bridge), Comment: cIsolation})
	}
	return s
}

// forwardDrop reports whether init set the family's FORWARD policy to DROP.
func (p *replayer) forwardDrop(f Family) bool {
	if f == IPv6 {
		return p.in.Daemon.ForwardDrop6
	}
	return p.in.Daemon.ForwardDrop4
}

// userRules fills DOCKER-USER with the operator's rules as the kernel
// holds them (Docker's -A DOCKER-USER -j RETURN and whatever was changed
// since); without them, with Docker's RETURN.
func (p *replayer) userRules(f Family) error {
	if p.skip[TableFilter] {
		return nil
	}
	u, ok := p.in.User[f]
	if !ok {
		return p.do(f, TableFilter, "-A", "DOCKER-USER", "-j RETURN", nil)
	}
	t := p.table(f, TableFilter)
	for _, r := range u.Rules {
		c := *r
		if err := t.Append("DOCKER-USER", &c); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}

// jumpSrc is the counter source of a FORWARD jump.
func (p *replayer) jumpSrc(f Family, chain string) *Source {
	switch chain {
	case "DOCKER-INGRESS":
		if p.ingress[f] {
			return IngressSources("", 0)[IngressForwardJump]
		}
		return nil
	case "DOCKER-USER":
		return ruleSrc(chains.FilterForward, cDockerUser)
	}
	return ruleSrc(chains.FilterForward, cDockerIsolation) // DOCKER-ISOLATION or STAGE-1
}

// moveJump deletes the FORWARD jump to chain and inserts it at the top.
func (p *replayer) moveJump(f Family, chain string) error {
	if err := p.do(f, TableFilter, "-D", "FORWARD", "-j "+chain, nil); err != nil {
		return err
	}
	return p.do(f, TableFilter, "-I", "FORWARD", "-j "+chain, p.jumpSrc(f, chain))
}

// moveJumps moves DOCKER-ISOLATION, DOCKER-INGRESS (when ingress exists)
// and DOCKER-USER to the top of FORWARD, in that order.
func (p *replayer) moveJumps(f Family) error {
	for _, c := range []string{p.isolation(), "DOCKER-INGRESS", "DOCKER-USER"} {
		if c == "DOCKER-INGRESS" && !p.ingress[f] {
			continue
		}
		if err := p.moveJump(f, c); err != nil {
			return err
		}
	}
	return nil
}

// has reports whether network n has rules in family f.
func (p *replayer) has(n chains.Network, f Family) bool {
	for _, nf := range chains.NetworkFamilies(p.in.Daemon, n.NetworkConfig) {
		if compatFamily(nf) == f {
			return true
		}
	}
	return false
}

// cmd is one replayed command.
type cmd struct {
	table, op, chain, spec string
	src                    *Source
}

func (p *replayer) runCmds(f Family, cmds []cmd) error {
	for _, c := range cmds {
		if err := p.do(f, c.table, c.op, c.chain, c.spec, c.src); err != nil {
			return err
		}
	}
	return nil
}

// network is CONTRACT.md §2's network create, for each of its families.
func (p *replayer) network(n chains.Network) error {
	d := p.in.Daemon
	for _, nf := range chains.NetworkFamilies(d, n.NetworkConfig) {
		f := compatFamily(nf)
		B, S := n.Bridge, n.Subnet(nf).Masked().String()
		var cmds []cmd
		icc := cmd{TableFilter, "-A", "FORWARD", "-i " + B + " -o " + B + " -j DROP", ruleSrc(chains.ForwardChain(B), cICC)}
		if n.ICC {
			icc.op, icc.spec = "-I", "-i "+B+" -o "+B+" -j ACCEPT"
		}
		if n.Internal {
			cmds = []cmd{
				{TableFilter, "-I", p.isolation(), "! -d " + S + " -i " + B + " -j DROP", ruleSrc(chains.IsolationChain(B), cInternalEgress)},
				{TableFilter, "-I", p.isolation(), "! -s " + S + " -o " + B + " -j DROP", ruleSrc(chains.IsolationInChain(B), cInternalIngress)},
				icc,
			}
		} else {
			if n.Masquerade {
				target, comment := "-j MASQUERADE", cMasquerade
				if a := n.HostIP(nf); a.IsValid() {
					target, comment = "-j SNAT --to-source "+a.Unmap().String(), cSNAT
				}
				cmds = append(cmds, cmd{TableNAT, "-I", "POSTROUTING", "-s " + S + " ! -o " + B + " " + target, ruleSrc(chains.PostroutingChain(B), comment)})
				if d.UserlandProxy {
					cmds = append(cmds, cmd{TableNAT, "-I", "DOCKER", "-i " + B + " -j RETURN", elemSrc(chains.SetNATReturn, B)})
				}
			}
			if !d.UserlandProxy && n.MasqPos(nf) == n.Seq {
				cmds = append(cmds, hostMasq(B))
			}
			dockerJump := ruleSrc(chains.DockerChain(B), chains.CommentDocker)
			cmds = append(cmds, icc,
				cmd{TableFilter, "-I", "FORWARD", "-i " + B + " ! -o " + B + " -j ACCEPT", ruleSrc(chains.ForwardChain(B), cOutgoing)},
				cmd{TableFilter, "-I", "FORWARD", "-o " + B + " -j DOCKER", dockerJump},
				cmd{TableFilter, "-I", "FORWARD", "-o " + B + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", ruleSrc(chains.DockerChain(B), cRelated)},
			)
			if !d.AllowDirectRouting {
				cmds = append(cmds,
					cmd{TableFilter, "-A", "DOCKER", "! -i " + B + " -o " + B + " -j DROP", ruleSrc(chains.DockerChain(B), cUnpublishedDrop)},
					cmd{TableRaw, "-A", "PREROUTING", "-d " + S + " ! -i " + B + " -m addrtype ! --dst-type LOCAL -j DROP", ruleSrc(chains.RawChain(B), cDirectDrop)},
				)
			}
			if p.stages {
				cmds = append(cmds,
					cmd{TableFilter, "-I", stage1, "-i " + B + " ! -o " + B + " -j " + stage2, ruleSrc(chains.IsolationChain(B), chains.CommentStage2)},
					cmd{TableFilter, "-I", stage2, "-o " + B + " -j DROP", elemSrc(chains.SetIsolationBridges, B)},
				)
			}
			for _, o := range p.nets {
				if p.stages || o.Internal || !p.has(o, f) {
					continue
				}
				O := o.Bridge
				cmds = append(cmds,
					cmd{TableFilter, "-I", "DOCKER-ISOLATION", "-i " + O + " -o " + B + " -j DROP", sharedRule(chains.IsolationChain(O), cIsolation)},
					cmd{TableFilter, "-I", "DOCKER-ISOLATION", "-i " + B + " -o " + O + " -j DROP", sharedRule(chains.IsolationChain(B), cIsolation)},
				)
			}
		}
		if err := p.runCmds(f, cmds); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		if err := p.moveJumps(f); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	p.nets = append(p.nets, n)
	return nil
}

// hostMasq is a network's masquerade from the host (userland proxy off).
func hostMasq(bridge string) cmd {
	return cmd{TableNAT, "-I", "POSTROUTING", "-m addrtype --src-type LOCAL -o " + bridge + " -j MASQUERADE",
		ruleSrc(chains.PostroutingOutChain(bridge), cMasqueradeFromHst)}
}

// movedHostMasq is the masquerade from the host of network n in family f
// where it sits since an ingress gateway's byte-identical copy was
// deleted in its stead (chains.Network.MasqSeq4).
func (p *replayer) movedHostMasq(n chains.Network, f Family) error {
	if err := p.runCmds(f, []cmd{hostMasq(n.Bridge)}); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

func hostSpec(a netip.Addr) string {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func isLoopback(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is4() {
		return a.IsLoopback()
	}
	return a == netip.IPv6Loopback()
}

// binding is CONTRACT.md §2's port publish for one binding.
func (p *replayer) binding(b portmap.Published, part bindingPart) error {
	var n *chains.Network
	for i := range p.nets {
		if p.nets[i].Name == b.Network {
			n = &p.nets[i]
		}
	}
	if n == nil {
		return fmt.Errorf("replay: binding %s: no network %q was created before it", b.Binding, b.Network)
	}
	f := familyOf(b.ContainerIP)
	rs := bindingRules(p.in.Daemon, n.Bridge, b, p.skip)
	if !p.stages {
		rs = slices.DeleteFunc(rs, func(r builtRule) bool {
			filter := r.table == TableFilter && r.chain == "DOCKER"
			hairpin := r.table == TableNAT && r.chain == "POSTROUTING"
			switch part {
			case partFilter:
				return !filter
			case partHairpin:
				return !hairpin
			}
			return filter && b.FilterSeq != 0 || hairpin && b.HairpinSeq != 0
		})
	}
	if p.stages {
		// dockerd 20.10 (portmapper Forward): every rule appended, after a
		// -C check, so identical rules are there once; SCTP ports also
		// get mangle's checksum fix.
		if b.Proto == portmap.SCTP && !p.skip[TableMangle] {
			rs = append(rs, builtRule{TableMangle, "-A", "POSTROUTING", &Rule{Proto: b.Proto.Number(),
				Matches: []Match{{Name: "sctp", Args: []string{"--sport", strconv.Itoa(int(b.ContainerPort))}}},
				Target:  "CHECKSUM", TargetArgs: []string{"--checksum-fill"}}, nil})
		}
		for _, r := range rs {
			if r.table == TableRaw {
				continue // dnft's protected mode, not dockerd 20.10's: below
			}
			if err := p.appendOnce(f, r.table, r.chain, r.rule, r.src); err != nil {
				return fmt.Errorf("binding %s: %w", b.Binding, err)
			}
		}
		rs = slices.DeleteFunc(rs, func(r builtRule) bool { return r.table != TableRaw })
	}
	for _, r := range rs {
		if err := p.doRule(f, r.table, r.op, r.chain, r.rule, r.src); err != nil {
			return fmt.Errorf("binding %s: %w", b.Binding, err)
		}
	}
	return nil
}

// appendOnce appends a rule unless the chain already has one with the
// same specification (iptables -C before -A).
func (p *replayer) appendOnce(f Family, table, chain string, r *Rule, src *Source) error {
	if p.skip[table] {
		return nil
	}
	k := chainKey{f, table, chain}
	spec := r.Spec(f, false, nil)
	if p.once == nil {
		p.once = map[chainKey]map[string]bool{}
	}
	if p.once[k] == nil {
		p.once[k] = map[string]bool{}
	}
	if p.once[k][spec] {
		return nil
	}
	p.once[k][spec] = true
	return p.doRule(f, table, "-A", chain, r, src)
}

// builtRule is one command of a binding with its rule already built.
type builtRule struct {
	table, op, chain string
	rule             *Rule
	src              *Source
}

// hostAddrOf is an address match of one host (/32 or /128).
func hostAddrOf(a netip.Addr) Addr {
	bits := a.BitLen()
	return Addr{IP: a, Mask: maskOf(bits, bits)}
}

// linkLocal6 is ! -s fe80::/10 of IPv6 DNAT rules.
var linkLocal6 = Addr{IP: netip.MustParseAddr("fe80::"), Mask: maskOf(10, 128)}

// bindingRules are CONTRACT.md §2's port publish commands for one
// binding, built directly (as ParseRule would read them) because there
// are thousands: nat DOCKER DNAT, filter DOCKER accept, hairpin
// masquerade and, for a loopback host address in protected mode, the raw
// drop.
func bindingRules(d chains.DaemonConfig, bridge string, b portmap.Published, skip map[string]bool) []builtRule {
	if skip[TableFilter] && skip[TableNAT] && skip[TableRaw] {
		return nil
	}
	if !skip[TableNAT] || !skip[TableRaw] {
		return allBindingRules(d, bridge, b)
	}
	// filter only: its one rule.
	C, P, num := b.ContainerIP.Unmap(), string(b.Proto), b.Proto.Number()
	return []builtRule{{TableFilter, "-I", "DOCKER", &Rule{Dst: hostAddrOf(C), In: bridge, InInv: true, Out: bridge, Proto: num,
		Matches: []Match{{Name: P, Args: []string{"--dport", strconv.Itoa(int(b.ContainerPort))}}}, Target: "ACCEPT"},
		elemSrc(chains.SetPublished, key(C, num, b.ContainerPort))}}
}

// allBindingRules is bindingRules for every table.
func allBindingRules(d chains.DaemonConfig, bridge string, b portmap.Published) []builtRule {
	f := familyOf(b.ContainerIP)
	P := string(b.Proto)
	C, H := b.ContainerIP.Unmap(), b.HostIP.Unmap()
	num := b.Proto.Number()
	hp, cp := strconv.Itoa(int(b.HostPort)), strconv.Itoa(int(b.ContainerPort))
	dnat := &Rule{Proto: num, Matches: []Match{{Name: P, Args: []string{"--dport", hp}}},
		Target: "DNAT", TargetArgs: []string{"--to-destination", netip.AddrPortFrom(C, b.ContainerPort).String()}}
	if f == IPv6 {
		dnat.Src, dnat.SrcInv = linkLocal6, true
	}
	specific := H.IsValid() && !H.IsUnspecified()
	if specific {
		dnat.Dst = hostAddrOf(H)
	}
	if d.UserlandProxy {
		dnat.In, dnat.InInv = bridge, true
	}
	out := []builtRule{
		{TableNAT, "-A", "DOCKER", dnat, DNATSource(b)},
		{TableFilter, "-I", "DOCKER", &Rule{Dst: hostAddrOf(C), In: bridge, InInv: true, Out: bridge, Proto: num,
			Matches: []Match{{Name: P, Args: []string{"--dport", cp}}}, Target: "ACCEPT"},
			elemSrc(chains.SetPublished, key(C, num, b.ContainerPort))},
		{TableNAT, "-A", "POSTROUTING", &Rule{Src: hostAddrOf(C), Dst: hostAddrOf(C), Proto: num,
			Matches: []Match{{Name: P, Args: []string{"--dport", cp}}}, Target: "MASQUERADE"},
			elemSrc(portmap.SetHairpin, key(C, C, num, b.ContainerPort))},
	}
	if specific && isLoopback(H) && !d.AllowDirectRouting {
		out = append(out, builtRule{TableRaw, "-A", "PREROUTING", &Rule{Dst: hostAddrOf(H), In: "lo", InInv: true, Proto: num,
			Matches: []Match{{Name: P, Args: []string{"--dport", hp}}}, Target: "DROP"},
			elemSrc(portmap.SetLoopbackPorts, key(H, num, b.HostPort))})
	}
	return out
}

// DNATSource is where the counter of a binding's DNAT rule comes from:
// its element of the dnat-host or dnat-any map.
func DNATSource(b portmap.Published) *Source {
	num, H := b.Proto.Number(), b.HostIP.Unmap()
	if H.IsValid() && !H.IsUnspecified() {
		return elemSrc(portmap.MapDNATHost, key(H, num, b.HostPort))
	}
	return elemSrc(portmap.MapDNATAny, key(num, b.HostPort))
}

// gateway names an ingress gateway bridge of a family.
type gateway struct {
	f    Family
	name string
}

// gatewayMasquerade is the masquerade that an ingress gateway's first
// publication adds (`-t nat -I POSTROUTING -m addrtype --src-type LOCAL -o
// G -j MASQUERADE`), replayed at that publication's place.
func (p *replayer) gatewayMasquerade(f Family, gw string) error {
	if p.masq[gateway{f, gw}] {
		return nil
	}
	if p.masq == nil {
		p.masq = map[gateway]bool{}
	}
	p.masq[gateway{f, gw}] = true
	return p.do(f, TableNAT, "-I", "POSTROUTING", "-m addrtype --src-type LOCAL -o "+gw+" -j MASQUERADE",
		sharedRule(chains.NATPostrouting, cIngressMasq))
}

// ingressChains creates a family's ingress chains and jumps, as the
// family's first ingress publication does (once; they stay until the last
// port goes).
func (p *replayer) ingressChains(f Family) error {
	if p.ingress[f] {
		return nil
	}
	shared := IngressSources("", 0) // the rules all ports share
	src := func(r IngressRule) *Source { return shared[r] }
	if err := p.newChain(f, TableNAT, "DOCKER-INGRESS"); err != nil {
		return err
	}
	if err := p.do(f, TableNAT, "-A", "DOCKER-INGRESS", "-j RETURN", src(IngressNATReturn)); err != nil {
		return err
	}
	if err := p.newChain(f, TableFilter, "DOCKER-INGRESS"); err != nil {
		return err
	}
	p.ingress[f] = true
	if err := p.runCmds(f, []cmd{
		{TableFilter, "-A", "DOCKER-INGRESS", "-j RETURN", src(IngressFilterReturn)},
		{TableNAT, "-I", "OUTPUT", "-m addrtype --dst-type LOCAL -j DOCKER-INGRESS", src(IngressOutputJump)},
		{TableNAT, "-I", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER-INGRESS", src(IngressPreroutingJump)},
		{TableFilter, "-I", "FORWARD", "-j DOCKER-INGRESS", src(IngressForwardJump)},
	}); err != nil {
		return err
	}
	return p.moveJump(f, "DOCKER-USER")
}

// ingressPublish is CONTRACT.md §2's ingress publish.
func (p *replayer) ingressPublish(g *Ingress) error {
	f := familyOf(g.Target)
	if f == IPv6 && !p.in.Daemon.IPv6 {
		return fmt.Errorf("replay: ingress %d/%s: IPv6 target %s but the daemon has no IPv6", g.Port, g.Proto, g.Target)
	}
	gw := g.GwBridge
	if gw == "" {
		gw = DefaultGateway
	}
	src := func(r IngressRule) *Source { return g.Counters[r] }
	if err := p.ingressChains(f); err != nil {
		return err
	}
	if err := p.gatewayMasquerade(f, gw); err != nil {
		return err
	}
	P, T := string(g.Proto), g.Target.Unmap()
	dnat := ""
	if f == IPv6 {
		dnat = "! -s fe80::/10 "
	}
	dnat += fmt.Sprintf("-p %s --dport %d -j DNAT --to-destination %s", P, g.Port, netip.AddrPortFrom(T, g.Port))
	cmds := []cmd{
		{TableNAT, "-I", "DOCKER-INGRESS", dnat, src(IngressDNAT)},
		{TableFilter, "-I", "DOCKER-INGRESS", fmt.Sprintf("-m state -p %s --sport %d --state ESTABLISHED,RELATED -j ACCEPT", P, g.Port), src(IngressEstablished)},
		{TableFilter, "-I", "DOCKER-INGRESS", fmt.Sprintf("-p %s --dport %d -j ACCEPT", P, g.Port), src(IngressAccept)},
	}
	if err := p.runCmds(f, cmds); err != nil {
		return fmt.Errorf("ingress %d/%s: %w", g.Port, g.Proto, err)
	}
	return nil
}
