package compat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Reader is what compat reads dnft's state through; *nft.Conn implements
// it.
type Reader interface {
	Generation(ctx context.Context) (uint32, error)
	ReadTable(ctx context.Context, f nft.Family) (nft.TableState, bool, error)
	// ReadChainRules reads the operator's rules (DOCKER-USER) one by one
	// in their netlink encoding.
	ReadChainRules(ctx context.Context, f nft.Family, chain string) ([]nft.ChainRule, bool, error)
}

// ruleTexter gives the nft text of a chain's rules (for rules that have
// no iptables form); *nft.Conn implements it with the nft command.
type ruleTexter interface {
	RuleTexts(ctx context.Context, f nft.Family, chain string) ([]string, error)
}

// readAttempts bounds the retries of a read that raced with a commit.
const readAttempts = 5

// ErrUnstable is returned when the ruleset kept changing while it was
// being read.
var ErrUnstable = errors.New("the ruleset changed during every attempt to read it")

// ReadInput reads dnft's tables of both families and decodes the state
// the view is rebuilt from: the daemon configuration and networks (from
// the networks set), and the published bindings (from the DNAT maps). The
// tables are read whole, in several netlink dumps; the ruleset generation
// is compared before and after, and the read is retried when another
// commit came in between, so that the input and the counters are one
// consistent snapshot. Ingress publications are decoded by package
// ingress from the same snapshot.
func ReadInput(ctx context.Context, r Reader) (Input, *Kernel, error) {
	return ReadInputFor(ctx, r)
}

// setReader reads a table without the elements of some sets; *nft.Conn
// implements it.
type setReader interface {
	ReadTableSets(ctx context.Context, f nft.Family, keep func(set string) bool) (nft.TableState, bool, error)
}

// tableSets are the counted sets whose elements the counters of each
// table's rules come from (see doc.go).
var tableSets = map[string][]string{
	TableFilter: {chains.SetPublished, chains.SetIsolationBridges, ingress.SetPorts, ingress.SetReplies},
	TableNAT:    {portmap.MapDNATHost, portmap.MapDNATAny, portmap.SetHairpin, chains.SetNATReturn, ingress.MapDNAT},
	TableRaw:    {portmap.SetLoopbackPorts},
}

// inputSets are the sets the input is decoded from, whatever is shown.
var inputSets = []string{chains.SetNetworks, chains.MapForwardOut, portmap.MapDNATHost, portmap.MapDNATAny, portmap.SetPositions, ingress.MapDNAT, ingress.SetGateways}

// ReadInputFor is ReadInput for a view of some tables only (none: all):
// the elements of sets that only other tables' counters need (thousands
// at scale) are not read, and the Kernel gives counters for those tables
// only; the others show 0.
func ReadInputFor(ctx context.Context, r Reader, tables ...string) (Input, *Kernel, error) {
	var keep func(string) bool
	if len(tables) > 0 {
		want := map[string]bool{}
		for _, s := range inputSets {
			want[s] = true
		}
		for _, t := range tables {
			for _, s := range tableSets[t] {
				want[s] = true
			}
		}
		keep = func(s string) bool { return want[s] || strings.HasPrefix(s, "__set") }
	}
	for range readAttempts {
		g1, err := r.Generation(ctx)
		if err != nil {
			return Input{}, nil, fmt.Errorf("read dnft state: %w", err)
		}
		in, k, err := readOnce(ctx, r, keep)
		if k != nil && len(tables) > 0 {
			k.only = map[string]bool{}
			for _, t := range tables {
				k.only[t] = true
			}
		}
		if err != nil {
			return Input{}, nil, err
		}
		g2, err := r.Generation(ctx)
		if err != nil {
			return Input{}, nil, fmt.Errorf("read dnft state: %w", err)
		}
		if g1 == g2 {
			return in, k, nil
		}
	}
	return Input{}, nil, fmt.Errorf("read dnft state: %w", ErrUnstable)
}

func readOnce(ctx context.Context, r Reader, keep func(string) bool) (Input, *Kernel, error) {
	k := &Kernel{Tables: map[Family]nft.TableState{}}
	for _, f := range nft.Families {
		var ts nft.TableState
		var ok bool
		var err error
		if sr, can := r.(setReader); can && keep != nil {
			ts, ok, err = sr.ReadTableSets(ctx, f, keep)
		} else {
			ts, ok, err = r.ReadTable(ctx, f)
		}
		if err != nil {
			return Input{}, nil, fmt.Errorf("read dnft state: %w", err)
		}
		if ok {
			k.Tables[compatFamily(f)] = ts
		}
	}
	var in Input
	v4, ok := k.Tables[IPv4]
	if !ok {
		return in, k, nil
	}
	var sets [2]nft.SetState
	var have [2]bool
	for i, name := range []string{chains.SetNetworks, chains.MapForwardOut} {
		if s := v4.Set(name); s != nil {
			sets[i], have[i] = *s, true
		}
	}
	d, nets, initialized, err := chains.ReadState(sets[0], have[0], sets[1], have[1])
	if err != nil {
		return in, nil, fmt.Errorf("read dnft state: %w", err)
	}
	in.Initialized, in.Daemon, in.Networks = initialized, d, nets
	if !initialized {
		return in, k, nil
	}
	for _, f := range d.Families() {
		ts, ok := k.Tables[compatFamily(f)]
		if !ok {
			return in, nil, fmt.Errorf("read dnft state: dnft's %s table is missing although the daemon has %s on (reset and init again)", f, f)
		}
		host, all := ts.Set(portmap.MapDNATHost), ts.Set(portmap.MapDNATAny)
		if host == nil || all == nil {
			return in, nil, fmt.Errorf("read dnft state: %s maps %s and %s are missing: dnft's table was initialized without port publishing or changed by someone else (reset and init again)",
				f, portmap.MapDNATHost, portmap.MapDNATAny)
		}
		ps, err := portmap.DecodeBindings(f, *host, *all)
		if err != nil {
			return in, nil, fmt.Errorf("read dnft state: %w", err)
		}
		if pos := ts.Set(portmap.SetPositions); pos != nil {
			// History only places rules: an element dnft did not write
			// (dnft check reports it) is left out.
			_ = portmap.ApplyPositions(f, *pos, ps)
		}
		in.Bindings = append(in.Bindings, ps...)
	}
	portmap.SortPublished(in.Bindings)
	if err := readUser(ctx, r, d, &in); err != nil {
		return in, nil, err
	}
	ips, err := ingress.List(ctx, snapshot{k}, d)
	if err != nil {
		return in, nil, fmt.Errorf("read dnft state: %w", err)
	}
	for _, f := range d.Families() {
		gws, err := ingress.Gateways(ctx, snapshot{k}, f)
		if err != nil {
			return in, nil, fmt.Errorf("read dnft state: %w", err)
		}
		for name, g := range gws {
			if g.Ingress != 0 {
				if in.IngressCreated == nil {
					in.IngressCreated = map[Family]int64{}
				}
				in.IngressCreated[compatFamily(f)] = g.Ingress
			}
			if g.Created == 0 {
				continue
			}
			if in.Gateways == nil {
				in.Gateways = map[Family]map[string]int64{}
			}
			if in.Gateways[compatFamily(f)] == nil {
				in.Gateways[compatFamily(f)] = map[string]int64{}
			}
			in.Gateways[compatFamily(f)][name] = g.Created
		}
	}
	for _, p := range ips {
		in.Ingress = append(in.Ingress, Ingress{Proto: p.Proto, Port: p.Port.Port, Target: p.Target,
			GwBridge: p.GwBridge, Seq: p.Seq, Counters: IngressSources(p.Proto, p.Port.Port)})
	}
	return in, k, nil
}

// readUser reads the rules of DOCKER-USER of the daemon's families into
// in.User, with the nft text of those that have no iptables form.
func readUser(ctx context.Context, r Reader, d chains.DaemonConfig, in *Input) error {
	for _, f := range d.Families() {
		rules, ok, err := r.ReadChainRules(ctx, f, chains.DockerUser)
		if err != nil {
			return fmt.Errorf("read dnft state: %w", err)
		}
		if !ok {
			continue
		}
		cf := compatFamily(f)
		u := UserChainRules{Rules: userRules(cf, rules)}
		if rt, ok := r.(ruleTexter); ok && slices.ContainsFunc(u.Rules, func(r *Rule) bool { return r == nil }) {
			texts, err := rt.RuleTexts(ctx, f, chains.DockerUser)
			if err == nil && len(texts) == len(rules) {
				u.Texts = texts
			}
		}
		for i, x := range u.Rules {
			if x == nil {
				u.Rules[i] = nftOnlyRule(rules[i], u.Texts, i)
			}
		}
		if in.User == nil {
			in.User = map[Family]UserChainRules{}
		}
		in.User[cf] = u
	}
	return nil
}

// snapshot serves reads of sets and chains from tables already read.
type snapshot struct{ k *Kernel }

// ReadSet returns a set of the snapshot.
func (s snapshot) ReadSet(_ context.Context, f nft.Family, name string) (nft.SetState, bool, error) {
	ts, ok := s.k.Tables[compatFamily(f)]
	if !ok {
		return nft.SetState{}, false, nil
	}
	if set := ts.Set(name); set != nil {
		return *set, true, nil
	}
	return nft.SetState{}, false, nil
}

// ReadChain returns a chain of the snapshot.
func (s snapshot) ReadChain(_ context.Context, f nft.Family, name string) (nft.ChainState, bool, error) {
	ts, ok := s.k.Tables[compatFamily(f)]
	if !ok {
		return nft.ChainState{}, false, nil
	}
	if c := ts.Chain(name); c != nil {
		return *c, true, nil
	}
	return nft.ChainState{}, false, nil
}

// Comments of the rules package ingress writes.
const (
	cIngressJump = "DOCKER-INGRESS"
	cIngressMasq = "INGRESS MASQUERADE"
)

// IngressSources returns the counter sources of the rules of an ingress
// publication in dnft's ingress layout (package ingress): the DNAT from
// its ingress-dnat element; the port accept from its ingress-ports
// element and the accept of established replies from its ingress-replies
// element; the jumps from their rules; the RETURNs from the counted
// returns that end the ingress chains; the gateway masquerade from the
// one rule that masquerades for every gateway.
func IngressSources(proto portmap.Proto, port uint16) map[IngressRule]*Source {
	k := key(proto.Number(), port)
	return map[IngressRule]*Source{
		IngressDNAT:              elemSrc(ingress.MapDNAT, k),
		IngressAccept:            elemSrc(ingress.SetPorts, k),
		IngressEstablished:       elemSrc(ingress.SetReplies, k),
		IngressGatewayMasquerade: sharedRule(chains.NATPostrouting, cIngressMasq),
		IngressForwardJump:       ruleSrc(chains.FilterForward, cIngressJump),
		IngressFilterReturn:      ruleSrc(ingress.FilterChain, chains.CommentReturn),
		IngressPreroutingJump:    ruleSrc(chains.NATPrerouting, cIngressJump),
		IngressOutputJump:        ruleSrc(chains.NATOutput, cIngressJump),
		IngressNATReturn:         ruleSrc(ingress.NATChain, chains.CommentReturn),
	}
}

// Read reads dnft's state in the namespace behind r and builds the
// iptables view, counters included, in the layout recorded with the
// daemon. With tables, only those tables get their counters (see
// [ReadInputFor]).
func Read(ctx context.Context, r Reader, tables ...string) (*View, error) {
	return ReadWith(ctx, r, ReadOptions{Tables: tables})
}

// ReadOptions select what [ReadWith] builds.
type ReadOptions struct {
	// Tables are the tables shown (none: all); see [ReadInputFor].
	Tables []string
	// Layout overrides the layout recorded with the daemon
	// (chains.DaemonConfig.Layout): LayoutClassic or LayoutStages; ""
	// keeps the recorded one.
	Layout string
}

// The layouts of the view (see [ParseLayout]).
const (
	// LayoutClassic is CONTRACT.md's layout: one DOCKER-ISOLATION chain.
	LayoutClassic = "classic"
	// LayoutStages is Docker 17.06–27's: DOCKER-ISOLATION-STAGE-1/2 and
	// the rule order dockerd 20.10 writes (per-port rules appended once).
	LayoutStages = chains.LayoutStages
)

// ParseLayout reads a layout name ("classic" or "stages") and returns
// the value recorded with the daemon ("" for classic).
func ParseLayout(s string) (string, error) {
	switch s {
	case LayoutClassic, "":
		return "", nil
	case LayoutStages:
		return chains.LayoutStages, nil
	}
	return "", &chains.FieldError{Field: "layout", Value: s, Reason: `must be "classic" or "stages" (Docker 17.06-27)`}
}

// ReadWith is [Read] with options.
func ReadWith(ctx context.Context, r Reader, opt ReadOptions) (*View, error) {
	in, k, err := ReadInputFor(ctx, r, opt.Tables...)
	if err != nil {
		return nil, err
	}
	if opt.Layout != "" {
		l, err := ParseLayout(opt.Layout)
		if err != nil {
			return nil, err
		}
		in.Daemon.Layout = l
	}
	v, err := Build(in, k)
	if err != nil {
		return nil, fmt.Errorf("build iptables view: %w", err)
	}
	return v, nil
}
