package dnft

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// build queues what a valid state with a daemon programs on an empty
// namespace, replaying its history in order: Init, then the networks and
// the ingress publications by sequence number (so that chains and sets
// are created in the order the original operations created them), then
// the bindings. Every Seq must be set. The transaction uses virtual rule
// positions: send it through [nft.Tx.Flatten].
func build(ctx context.Context, s State) (*nft.Tx, error) {
	d := *s.Daemon
	tx := &nft.Tx{}
	chains.Init(tx, d)
	portmap.Init(tx, d)
	chains.InitPolicy(tx, d)
	r := newTxReader(tx, nil)
	nets, ing := s.Networks, s.Ingress
	for len(nets) > 0 || len(ing) > 0 {
		if len(ing) == 0 || len(nets) > 0 && nets[0].Seq <= ing[0].Seq {
			chains.CreateNetwork(tx, d, nets[0])
			nets = nets[1:]
			continue
		}
		p := ing[0]
		ing = ing[1:]
		for range p.Refs {
			if _, err := ingress.Publish(ctx, r, tx, p.Port, p.Seq); err != nil {
				return nil, fmt.Errorf("ingress %s: %w", p.Port, err)
			}
		}
	}
	if err := writeIngressHistory(ctx, r, tx, d, s.IngressHistory); err != nil {
		return nil, err
	}
	chains.SyncYields(tx, d, chains.Order{}, stateOrder(s))
	if err := publishRuns(tx, d, s.Networks, portmap.NewTally(), s.Ports); err != nil {
		return nil, err
	}
	portmap.QueuePositions(tx, s.Ports)
	return tx, nil
}

// publishRuns queues the publication of bindings (sorted by Seq) on the
// publisher's state, one queue per run of consecutive sequence numbers on
// one network (as one Publish wrote them), at most [runChunk] bindings
// long, and adds them to the publisher.
func publishRuns(tx *nft.Tx, d DaemonConfig, nets []Network, x publisher, ps []Published) error {
	for len(ps) > 0 {
		k := 1
		for k < min(len(ps), runChunk) && ps[k].Network == ps[0].Network && ps[k].Seq == ps[k-1].Seq+1 {
			k++
		}
		run := make([]Binding, k)
		for i := range run {
			run[i] = ps[i].Binding
		}
		n, ok := chains.Find(nets, ps[0].Network)
		if !ok {
			return &FieldError{Field: "network", Value: ps[0].Network, Reason: "no such network"}
		}
		x.Publish(tx, d, n, run, ps[0].Seq)
		x.Add(n.Name, run, ps[0].Seq)
		ps = ps[k:]
	}
	return nil
}

// publisher queues publications against the bindings it has been told
// of: a [portmap.Index], or a [portmap.Tally] where nothing is
// unpublished.
type publisher interface {
	Publish(tx *nft.Tx, d DaemonConfig, n Network, bs []Binding, seq int64)
	Add(network string, bs []Binding, seq int64)
}

// runChunk bounds the bindings queued at once by a build: a queue holds
// its elements as values (about 300 bytes each, 5 per binding) until the
// transaction encodes them (about 100), so a whole run of 65,000 bindings
// would hold 94 MB at once. The elements the chunks queue are those of
// the whole run: a container port's shared elements come with its first
// binding, and a later chunk counts the bindings before it through the
// publisher (its count element deleted and added again with the new count).
const runChunk = 2048

// assignSeqs gives the objects of a validated state that have no
// sequence number new ones, in order, and keeps later operations of fw
// after every sequence number of the state.
func (fw *Firewall) assignSeqs(s *State) {
	for _, q := range stateSeqs(*s) {
		fw.lastSeq = max(fw.lastSeq, q)
	}
	for i := range s.Networks {
		if s.Networks[i].Seq == 0 {
			s.Networks[i].Seq = fw.seq()
		}
	}
	for i := range s.Ingress {
		if s.Ingress[i].Seq == 0 {
			s.Ingress[i].Seq = fw.seq()
		}
	}
	for i := range s.Ports {
		if s.Ports[i].Seq == 0 {
			s.Ports[i].Seq = fw.seq()
		}
	}
}

func stateSeqs(s State) []int64 {
	var out []int64
	for _, n := range s.Networks {
		out = append(out, n.Seq)
	}
	for _, p := range s.Ports {
		out = append(out, p.Seq)
	}
	for _, p := range s.Ingress {
		out = append(out, p.Seq)
	}
	return out
}

// programmed is what a state programs on an empty namespace, built once:
// the objects its transaction leaves, and the transaction itself,
// flattened, when a rebuild sends it. The transaction is not kept
// between the two: at 65,000 bindings it holds 90 MB that a check, which
// only compares the objects, never uses, so a rebuild builds it again
// (the same state builds the same transaction).
type programmed struct {
	state State // every Seq set
	objs  []nft.TableState
	specs map[nft.Family]map[string]nft.Set
	flat  *flatTx // shared by the copies of a cached programmed
	// userBad is set when state.DockerUser lacks a rule of the kernel's
	// DOCKER-USER that dnft cannot reproduce: a rebuild would lose it.
	userBad error
}

// flatTx is a programmed's transaction flattened, on first use.
type flatTx struct {
	mu sync.Mutex
	tx *nft.Tx
}

// flattened returns p's transaction, built again, flattened (see
// [nft.Tx.Flatten]); a failure (a cancelled ctx) is not kept.
func (p *programmed) flattened(ctx context.Context) (*nft.Tx, error) {
	p.flat.mu.Lock()
	defer p.flat.mu.Unlock()
	if p.flat.tx != nil {
		return p.flat.tx, nil
	}
	tx, err := build(ctx, p.state)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if tx, err = tx.Flatten(); err != nil {
		return nil, err
	}
	p.flat.tx = tx
	return tx, nil
}

// program builds what a validated state programs; objects without a
// sequence number get one. The last result is kept and used again for
// the same state.
func (fw *Firewall) program(ctx context.Context, s State) (*programmed, error) {
	if c := fw.prog; c != nil && sameState(c.state, s) {
		p := *c
		p.state.DockerUser, p.userBad = s.DockerUser, nil
		return &p, nil
	}
	s = cloneState(s)
	fw.assignSeqs(&s)
	p := &programmed{state: s}
	if s.Daemon == nil {
		return p, nil
	}
	tx, err := build(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	p.specs, p.flat = tx.SetSpecs(), &flatTx{}
	if p.objs, err = tx.TakeObjects(); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	keep := *p
	fw.prog = &keep
	return p, nil
}

// rebuild sends ONE batch that deletes dnft's tables of the families
// fams and creates everything p programs, with DOCKER-USER's rules (p's,
// or the kernel's when p has none), provided the generation is still g0.
func (fw *Firewall) rebuild(ctx context.Context, p *programmed, fams []nft.Family, g0 uint32) (changes int, gen uint32, err error) {
	raw, err := fw.userRules(ctx, p.state)
	if err != nil {
		return 0, 0, err
	}
	tx := &nft.Tx{}
	for _, f := range fams {
		tx.DeleteTable(f)
	}
	if p.state.Daemon != nil {
		if err := checkUserRefs(p.objs, p.state.DockerUser, raw); err != nil {
			return 0, 0, err
		}
		flat, err := p.flattened(ctx)
		if err != nil {
			return 0, 0, err
		}
		tx.Append(flat)
	}
	fw.v = view{}
	if p.state.Daemon == nil {
		fw.lk.next = commitReset // a state without daemon: no tables
		defer func() { fw.lk.next = commitChange }()
	}
	gen, err = fw.conn.ApplyWithRaw(ctx, tx, raw, g0)
	if err != nil {
		return 0, 0, err
	}
	fw.settle(p.state, p.state.Networks, p.state.Ingress)
	return tx.Len() + len(raw), gen, nil
}

// families lists the families of tables.
func families(ts []nft.TableState) []nft.Family {
	var out []nft.Family
	for _, t := range ts {
		out = append(out, t.Family)
	}
	return out
}

// allUser reports whether every family of a recorded state had its
// DOCKER-USER chain.
func allUser(s State, user userChains) bool {
	if s.Daemon == nil {
		return true
	}
	for _, f := range s.Daemon.Families() {
		if !user.exists(f) {
			return false
		}
	}
	return true
}

// userRules returns the DOCKER-USER rules to program with want: its own,
// or, when it has none (nil), those the kernel holds now for want's
// families (Docker's RETURN for a family without DOCKER-USER yet).
func (fw *Firewall) userRules(ctx context.Context, want State) ([]nft.RawRule, error) {
	if want.Daemon == nil {
		return nil, nil
	}
	var out []nft.RawRule
	if want.DockerUser != nil {
		for _, r := range want.DockerUser {
			out = append(out, nft.RawRule{Family: r.Family, Chain: chains.DockerUser, Exprs: r.Expr, Sets: r.Sets, Comment: r.Comment})
		}
		return out, nil
	}
	for _, f := range want.Daemon.Families() {
		rules, ok, err := fw.conn.ReadRawRules(ctx, f, chains.DockerUser)
		if err != nil {
			return nil, fmt.Errorf("keep %s rules: %w", chains.DockerUser, err)
		}
		if !ok {
			// A new DOCKER-USER holds Docker's RETURN, as after init.
			r, err := nft.EncodeUserRule(chains.UserReturn(f))
			if err != nil {
				return nil, err
			}
			rules = []nft.RawRule{r}
		}
		out = append(out, rules...)
	}
	return out, nil
}

// checkUserRefs refuses DOCKER-USER rules that refer to chains, sets or
// objects that the built tables will not have, and jumps that loop back
// to DOCKER-USER or go to a base chain (the kernel would refuse the
// batch).
func checkUserRefs(objs []nft.TableState, rules []UserRule, raw []nft.RawRule) error {
	for i, r := range raw {
		refs, err := r.References()
		if err != nil {
			return err
		}
		t := findTable(objs, r.Family)
		what := fmt.Sprintf("%s rule %d of %s", chains.DockerUser, i+1, r.Family)
		if rules != nil {
			what = fmt.Sprintf("docker_user[%d]", i)
		}
		bad := func(reason string) error { return &FieldError{Field: what, Value: r.Comment, Reason: reason} }
		switch {
		case t == nil:
			return bad("its family has no dnft table")
		case len(refs.Objects) > 0:
			return bad(fmt.Sprintf("refers to the named object %s, which dnft does not save", refs.Objects[0]))
		}
		for _, c := range refs.Chains {
			ch := t.Chain(c)
			switch {
			case c == chains.DockerUser:
				return bad(fmt.Sprintf("jumps to %s itself: a loop", c))
			case ch == nil:
				return bad(fmt.Sprintf("jumps to chain %s, which is not one of dnft's", c))
			case ch.Base != nil:
				return bad(fmt.Sprintf("jumps to the base chain %s", c))
			}
		}
		for _, s := range refs.Sets {
			if t.Set(s) == nil {
				return bad(fmt.Sprintf("uses set %s, which is not one of dnft's", s))
			}
		}
	}
	return nil
}

// settle applies the kernel settings of networks and ingress gateways
// that a batch created (as CreateNetwork and PublishIngress do), and
// warns when IP forwarding is off. Failures go to the warn function.
func (fw *Firewall) settle(s State, nets []Network, ing []IngressPublished) {
	if s.Daemon == nil {
		return
	}
	if v, _, err := fw.conn.Sysctl("net.ipv4.ip_forward"); err == nil && v != "1" && len(nets) > 0 {
		fw.warnf(fmt.Errorf("%w in namespace %s: containers cannot reach or be reached from outside", ErrIPForwardOff, fw.conn.NetNS()))
	}
	sub := s
	sub.Networks, sub.Ingress = nets, ing
	if _, err := fw.applyLinks(context.Background(), stateLinks(sub)); err != nil {
		fw.warnf(fmt.Errorf("bridge settings: %w", err))
	}
}

func cloneState(s State) State {
	out := s
	if s.Daemon != nil {
		d := *s.Daemon
		out.Daemon = &d
	}
	out.Networks = slices.Clone(s.Networks)
	out.Ports = slices.Clone(s.Ports)
	out.Ingress = slices.Clone(s.Ingress)
	out.IngressHistory = slices.Clone(s.IngressHistory)
	if s.DockerUser != nil {
		out.DockerUser = slices.Clone(s.DockerUser)
	}
	return out
}

// sameState reports whether the recorded state cur is want. A zero Seq
// in want matches any; a nil want.DockerUser matches any rules.
func sameState(cur, want State) bool {
	if (cur.Daemon == nil) != (want.Daemon == nil) {
		return false
	}
	if cur.Daemon != nil && (!sameDaemonConfig(*cur.Daemon, *want.Daemon) || cur.Daemon.Layout != want.Daemon.Layout ||
		cur.Daemon.RawTable4 != want.Daemon.RawTable4 || cur.Daemon.RawTable6 != want.Daemon.RawTable6) {
		return false
	}
	// History (where iptables' view places rules) is compared too: a
	// state restored is the saved one, view included.
	seqOK := func(c, w int64) bool { return w == 0 || c == w }
	if !slices.EqualFunc(cur.Networks, want.Networks, func(c, w Network) bool {
		return c.NetworkConfig == w.NetworkConfig && seqOK(c.Seq, w.Seq) && c.MasqSeq4 == w.MasqSeq4 && c.MasqSeq6 == w.MasqSeq6
	}) {
		return false
	}
	if !slices.EqualFunc(cur.Ports, want.Ports, func(c, w Published) bool {
		return c.Network == w.Network && c.Binding == w.Binding && seqOK(c.Seq, w.Seq) &&
			c.FilterSeq == w.FilterSeq && c.HairpinSeq == w.HairpinSeq
	}) {
		return false
	}
	if !slices.Equal(cur.IngressHistory, want.IngressHistory) {
		return false
	}
	if !slices.EqualFunc(cur.Ingress, want.Ingress, func(c, w IngressPublished) bool {
		return c.Port == w.Port && c.Refs == w.Refs && seqOK(c.Seq, w.Seq)
	}) {
		return false
	}
	return want.DockerUser == nil || sameUserRules(cur.DockerUser, want.DockerUser)
}

// recorded is the daemon record cur becomes with want: what it holds
// beyond rules, the view's layout and whether iptables' raw table has
// been used (never forgotten).
func recorded(cur, want DaemonConfig) DaemonConfig {
	next := cur
	next.Layout = want.Layout
	next.RawTable4 = cur.RawTable4 || want.RawTable4
	next.RawTable6 = cur.RawTable6 || want.RawTable6
	return next
}

func sameDaemonConfig(a, b DaemonConfig) bool {
	return a.UserlandProxy == b.UserlandProxy && a.IPv6 == b.IPv6 && a.AllowDirectRouting == b.AllowDirectRouting &&
		a.ForwardDrop4 == b.ForwardDrop4 && a.ForwardDrop6 == b.ForwardDrop6
}

func sameUserRules(a, b []UserRule) bool {
	return slices.EqualFunc(a, b, func(x, y UserRule) bool {
		return x.Family == y.Family && x.Comment == y.Comment && string(x.Expr) == string(y.Expr) && sameSets(x.Sets, y.Sets)
	})
}
