package dnft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Save reads dnft's complete state from the kernel (see [State]). It
// refuses, rather than save a changed rule, a DOCKER-USER rule that
// google/nftables cannot reproduce exactly (see [nft.RawRuleError]), and
// it fails with ErrStateUnknown when dnft's records are damaged (run
// [Firewall.Check] to see what is wrong).
func (fw *Firewall) Save(ctx context.Context) (State, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.lk.lock(ctx, false)
	if err != nil {
		return State{}, fmt.Errorf("save: %w", err)
	}
	defer unlock()
	s, user, err := fw.record(ctx)
	if err != nil {
		return State{}, fmt.Errorf("save: %w", err)
	}
	if s.Daemon != nil {
		for _, f := range s.Daemon.Families() {
			if !user.exists(f) {
				return State{}, fmt.Errorf("save: %w: %s chain %s is missing (run dnft check and repair)", ErrStateUnknown, f, chains.DockerUser)
			}
		}
	}
	if err := user.bad(); err != nil {
		return State{}, fmt.Errorf("save: refusing to save a changed %s rule: %w", chains.DockerUser, err)
	}
	fw.describeUserRules(ctx, s.DockerUser)
	return s, nil
}

// describeUserRules fills in the nft text of DOCKER-USER rules read from
// the kernel, when the nft command is available (best effort).
func (fw *Firewall) describeUserRules(ctx context.Context, rules []UserRule) {
	for _, f := range nft.Families {
		var mine []int
		for i, r := range rules {
			if r.Family == f {
				mine = append(mine, i)
			}
		}
		if len(mine) == 0 {
			continue
		}
		texts, err := fw.conn.RuleTexts(ctx, f, chains.DockerUser)
		if err != nil || len(texts) != len(mine) {
			continue
		}
		for k, i := range mine {
			rules[i].NFT = texts[k]
		}
	}
}

// userChains is what reading DOCKER-USER found, per family: the key is
// present when the chain exists, and the value is the error of a rule
// that dnft cannot reproduce (an *nft.RawRuleError); that family's rules
// are then missing from the state read.
type userChains map[nft.Family]error

// exists reports whether the family's DOCKER-USER chain exists.
func (u userChains) exists(f nft.Family) bool {
	_, ok := u[f]
	return ok
}

// bad returns the error of the first family (of fams, or of all when
// none are given) whose rules could not all be read.
func (u userChains) bad(fams ...nft.Family) error {
	if len(fams) == 0 {
		fams = nft.Families[:]
	}
	for _, f := range fams {
		if err := u[f]; err != nil {
			return err
		}
	}
	return nil
}

// readUser reads the DOCKER-USER rules of the families. A rule that dnft
// cannot reproduce is not an error here: it is recorded in the
// userChains, and the family's rules are left out.
func (fw *Firewall) readUser(ctx context.Context, fams []nft.Family) ([]UserRule, userChains, error) {
	out := []UserRule{}
	user := userChains{}
	for _, f := range fams {
		rules, ok, err := fw.conn.ReadRawRules(ctx, f, chains.DockerUser)
		var re *nft.RawRuleError
		switch {
		case errors.As(err, &re):
			user[f] = err
		case err != nil:
			return nil, nil, fmt.Errorf("read %s: %w", chains.DockerUser, err)
		case ok:
			user[f] = nil
			for _, r := range rules {
				out = append(out, UserRule{Family: f, Expr: r.Exprs, Sets: r.Sets, Comment: r.Comment})
			}
		}
	}
	return out, user, nil
}

// record reads the state dnft recorded in the kernel: the daemon and
// networks (networks set), the bindings (DNAT maps), the ingress
// publications (ingress-dnat maps) and the DOCKER-USER rules of each
// family whose chain exists (user). It fails with ErrStateUnknown when a
// record is missing or cannot be decoded.
func (fw *Firewall) record(ctx context.Context) (State, userChains, error) {
	return fw.recordWith(ctx, fw.conn, func(f nft.Family) (bool, error) { return fw.conn.TableExists(ctx, f) })
}

// recordFrom is record from a snapshot of dnft's tables (readTables);
// only DOCKER-USER's rules are read from the kernel.
func (fw *Firewall) recordFrom(ctx context.Context, have []nft.TableState) (State, userChains, error) {
	r := snapshotReader(have)
	return fw.recordWith(ctx, r, func(f nft.Family) (bool, error) { return findTable(have, f) != nil, nil })
}

func (fw *Firewall) recordWith(ctx context.Context, r ingress.Reader, exists func(nft.Family) (bool, error)) (s State, user userChains, err error) {
	set, ok, err := r.ReadSet(ctx, nft.IPv4, chains.SetNetworks)
	if err != nil {
		return s, nil, err
	}
	d, nets, initialized, err := chains.ReadState(set, ok)
	if err != nil {
		return s, nil, fmt.Errorf("%w: %w", ErrStateUnknown, err)
	}
	if !initialized {
		for _, f := range nft.TableFamilies {
			ok, err := exists(f)
			if err != nil {
				return s, nil, err
			}
			if ok {
				return s, nil, fmt.Errorf("%w: %s table %s exists but has no %s set", ErrStateUnknown, f, nft.TableName, chains.SetNetworks)
			}
		}
		return State{DockerUser: []UserRule{}}, nil, nil
	}
	for _, f := range d.Families() {
		ok, err := exists(f)
		if err != nil {
			return s, nil, err
		}
		if !ok {
			return s, nil, fmt.Errorf("%w: %s table %s is missing", ErrStateUnknown, f, nft.TableName)
		}
	}
	s.Daemon = &d
	s.Networks = nets
	if s.Ports, err = portmap.ReadBindings(ctx, r, d); err != nil {
		return s, nil, fmt.Errorf("%w: %w", ErrStateUnknown, err)
	}
	for i := range s.Ports {
		s.Ports[i].Packets, s.Ports[i].Bytes = 0, 0
	}
	if s.Ingress, err = ingress.List(ctx, r, d); err != nil {
		return s, nil, fmt.Errorf("%w: %w", ErrStateUnknown, err)
	}
	for i := range s.Ingress {
		s.Ingress[i].Packets, s.Ingress[i].Bytes = 0, 0
	}
	s.DockerUser, user, err = fw.readUser(ctx, d.Families())
	return s, user, err
}

// txReader reads dnft's tables as they will be once tx is applied on top
// of the base tables, for package ingress, whose operations read the
// state they change: several of them can then be queued on one
// transaction. The base is read from the kernel on first use (load), or
// is empty when load is nil.
type txReader struct {
	tx     *nft.Tx
	load   func() ([]nft.TableState, error)
	base   []nft.TableState
	loaded bool
	objs   []nft.TableState
	n      int // tx.Len() when objs was computed; -1 for none
}

func newTxReader(tx *nft.Tx, load func() ([]nft.TableState, error)) *txReader {
	return &txReader{tx: tx, load: load, n: -1}
}

// snapshotReader reads a snapshot of dnft's tables.
func snapshotReader(have []nft.TableState) *txReader {
	return &txReader{tx: &nft.Tx{}, base: have, loaded: true, n: -1}
}

// findTable returns the table of a family, or nil.
func findTable(ts []nft.TableState, f nft.Family) *nft.TableState {
	for i := range ts {
		if ts[i].Family == f {
			return &ts[i]
		}
	}
	return nil
}

func (r *txReader) tables() ([]nft.TableState, error) {
	if !r.loaded && r.load != nil {
		b, err := r.load()
		if err != nil {
			return nil, err
		}
		r.base = b
	}
	r.loaded = true
	if r.tx.Len() == 0 {
		return r.base, nil
	}
	if r.n != r.tx.Len() {
		objs, err := r.tx.Objects(r.base)
		if err != nil {
			return nil, fmt.Errorf("queued changes: %w", err)
		}
		r.objs, r.n = objs, r.tx.Len()
	}
	return r.objs, nil
}

func (r *txReader) table(f nft.Family) (*nft.TableState, error) {
	ts, err := r.tables()
	if err != nil {
		return nil, err
	}
	return findTable(ts, f), nil
}

// ReadSet implements ingress.Reader.
func (r *txReader) ReadSet(_ context.Context, f nft.Family, name string) (nft.SetState, bool, error) {
	t, err := r.table(f)
	if err != nil || t == nil {
		return nft.SetState{}, false, err
	}
	if s := t.Set(name); s != nil {
		return *s, true, nil
	}
	return nft.SetState{}, false, nil
}

// ReadChain implements ingress.Reader.
func (r *txReader) ReadChain(_ context.Context, f nft.Family, name string) (nft.ChainState, bool, error) {
	t, err := r.table(f)
	if err != nil || t == nil {
		return nft.ChainState{}, false, err
	}
	if c := t.Chain(name); c != nil {
		return *c, true, nil
	}
	return nft.ChainState{}, false, nil
}

// readTables reads dnft's tables of every family that has one.
func (fw *Firewall) readTables(ctx context.Context) ([]nft.TableState, error) {
	var out []nft.TableState
	for _, f := range nft.TableFamilies {
		t, ok, err := fw.conn.ReadTable(ctx, f)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, t)
		}
	}
	return out, nil
}

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
	chains.SyncYields(tx, d, chains.Order{}, stateOrder(s))
	x := portmap.NewIndex(nil)
	if err := publishRuns(tx, d, s.Networks, x, s.Ports); err != nil {
		return nil, err
	}
	return tx, nil
}

// publishRuns queues the publication of bindings (sorted by Seq) on the
// index's state, one queue per run of consecutive sequence numbers on
// one network (as one Publish wrote them), and adds them to the index.
func publishRuns(tx *nft.Tx, d DaemonConfig, nets []Network, x *portmap.Index, ps []Published) error {
	for len(ps) > 0 {
		k := 1
		for k < len(ps) && ps[k].Network == ps[0].Network && ps[k].Seq == ps[k-1].Seq+1 {
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

// Restore makes dnft's tables hold exactly the state s, in ONE batch,
// whatever the namespace holds (nothing, the same state, another one, a
// damaged one): the batch deletes dnft's tables and creates everything of
// s again, reusing its sequence numbers, so that a saved state comes back
// byte for byte as `nft list ruleset` prints it (counters aside). Restoring
// what the namespace already holds, without drift, sends nothing.
//
// s is validated first (see [State.Validate]); nothing is sent if it is
// bad. DOCKER-USER gets s.DockerUser, or keeps its rules when that is
// nil. Objects of s without a sequence number get new ones. Nothing
// outside dnft's tables is touched. After the commit the kernel settings
// of the networks are applied as by CreateNetwork (failures go to the
// warn function); IP forwarding is not turned on.
func (fw *Firewall) Restore(ctx context.Context, s State) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	want, err := s.validate()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	err = fw.retry(func() error {
		_, _, err := fw.restore(ctx, want, true)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// restore is Restore of a validated state with the lock held. When
// ifChanged is set and the kernel already holds want without drift,
// nothing is sent. It returns the number of changes it sent in its batch
// (0 for none) and the generation the batch produced.
func (fw *Firewall) restore(ctx context.Context, want State, ifChanged bool) (changes int, gen uint32, err error) {
	g0, err := fw.conn.Generation(ctx)
	if err != nil {
		return 0, 0, err
	}
	if ifChanged {
		cur, user, err := fw.record(ctx)
		if err == nil && allUser(cur, user) && (want.DockerUser == nil || user.bad() == nil) && sameState(cur, want) {
			have, err := fw.readTables(ctx)
			if err != nil {
				return 0, 0, err
			}
			p, err := fw.program(ctx, want)
			if err != nil {
				return 0, 0, err
			}
			if len(compareTables(p.objs, have, p.specs)) == 0 {
				return 0, 0, nil
			}
			return fw.rebuild(ctx, p, families(have), g0)
		}
	}
	p, err := fw.program(ctx, want)
	if err != nil {
		return 0, 0, err
	}
	var fams []nft.Family
	for _, f := range nft.TableFamilies {
		ok, err := fw.conn.TableExists(ctx, f)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			fams = append(fams, f)
		}
	}
	return fw.rebuild(ctx, p, fams, g0)
}

// programmed is what a state programs on an empty namespace, built once:
// the transaction (with virtual rule positions: flatten it before
// sending) and the objects it leaves.
type programmed struct {
	state State // every Seq set
	tx    *nft.Tx
	objs  []nft.TableState
	specs map[nft.Family]map[string]nft.Set
	flat  *flatTx // shared by the copies of a cached programmed
	// userBad is set when state.DockerUser lacks a rule of the kernel's
	// DOCKER-USER that dnft cannot reproduce: a rebuild would lose it.
	userBad error
}

// flatTx is a programmed's transaction flattened, on first use.
type flatTx struct {
	once sync.Once
	tx   *nft.Tx
	err  error
}

// flattened returns p's transaction flattened (see [nft.Tx.Flatten]).
func (p *programmed) flattened() (*nft.Tx, error) {
	p.flat.once.Do(func() { p.flat.tx, p.flat.err = p.tx.Flatten() })
	return p.flat.tx, p.flat.err
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
	if p.objs, err = tx.Objects(nil); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	p.tx, p.specs, p.flat = tx, tx.SetSpecs(), &flatTx{}
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
	if p.tx != nil {
		if err := checkUserRefs(p.objs, p.state.DockerUser, raw); err != nil {
			return 0, 0, err
		}
		flat, err := p.flattened()
		if err != nil {
			return 0, 0, err
		}
		tx.Append(flat)
	}
	fw.v = view{}
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
// objects that the built tables will not have.
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
			if t.Chain(c) == nil {
				return bad(fmt.Sprintf("jumps to chain %s, which is not one of dnft's", c))
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
	if cur.Daemon != nil && !sameDaemonConfig(*cur.Daemon, *want.Daemon) {
		return false
	}
	seqOK := func(c, w int64) bool { return w == 0 || c == w }
	if !slices.EqualFunc(cur.Networks, want.Networks, func(c, w Network) bool {
		return c.NetworkConfig == w.NetworkConfig && seqOK(c.Seq, w.Seq)
	}) {
		return false
	}
	if !slices.EqualFunc(cur.Ports, want.Ports, func(c, w Published) bool {
		return c.Network == w.Network && c.Binding == w.Binding && seqOK(c.Seq, w.Seq)
	}) {
		return false
	}
	if !slices.EqualFunc(cur.Ingress, want.Ingress, func(c, w IngressPublished) bool {
		return c.Port == w.Port && c.Refs == w.Refs && seqOK(c.Seq, w.Seq)
	}) {
		return false
	}
	return want.DockerUser == nil || sameUserRules(cur.DockerUser, want.DockerUser)
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

// Plan is what [Firewall.Apply] changed.
type Plan struct {
	// Rebuilt is set when the tables were created again from the state
	// as a whole (dnft was not initialized, or the daemon configuration
	// changed), or deleted (a state without daemon).
	Rebuilt bool
	// NetworksCreated, NetworksRemoved and NetworksRecreated name the
	// networks added, removed, and removed and created again because
	// their configuration changed.
	NetworksCreated, NetworksRemoved, NetworksRecreated []string
	// PortsPublished and PortsUnpublished count bindings.
	PortsPublished, PortsUnpublished int
	// IngressPublished and IngressUnpublished count ingress references.
	IngressPublished, IngressUnpublished int
	// DockerUser lists the families whose DOCKER-USER rules were replaced.
	DockerUser []nft.Family
	// Changes is the number of changes in the batch; 0 means nothing was
	// sent.
	Changes int
}

// String summarizes the plan, one line per kind of change.
func (p Plan) String() string {
	if p.Changes == 0 {
		return "nothing to change\n"
	}
	var b strings.Builder
	if p.Rebuilt {
		b.WriteString("rebuilt dnft's tables from the state\n")
	}
	for _, l := range []struct {
		what  string
		names []string
	}{{"created network", p.NetworksCreated}, {"removed network", p.NetworksRemoved}, {"re-created network", p.NetworksRecreated}} {
		for _, n := range l.names {
			fmt.Fprintf(&b, "%s %s\n", l.what, n)
		}
	}
	for _, l := range []struct {
		what string
		n    int
	}{{"published %d binding(s)\n", p.PortsPublished}, {"unpublished %d binding(s)\n", p.PortsUnpublished},
		{"published %d ingress reference(s)\n", p.IngressPublished}, {"unpublished %d ingress reference(s)\n", p.IngressUnpublished}} {
		if l.n > 0 {
			fmt.Fprintf(&b, l.what, l.n)
		}
	}
	for _, f := range p.DockerUser {
		fmt.Fprintf(&b, "replaced the %s rules of %s\n", chains.DockerUser, f)
	}
	fmt.Fprintf(&b, "%d change(s) in one batch\n", p.Changes)
	return b.String()
}

// Apply makes the namespace hold the declared state s with the smallest
// batch, in ONE batch: it adds and removes only the difference — networks
// (a network whose configuration changed is removed and created again in
// the same batch, with its bindings), bindings, ingress references, and
// DOCKER-USER's rules of a family when s.DockerUser (non-nil) differs
// from them. What stays keeps its sequence number and its counters.
// When dnft is not initialized or the daemon configuration differs, the
// tables are rebuilt as by [Firewall.Restore]; a state without daemon
// removes dnft's tables. Applying the state the namespace holds sends
// nothing.
//
// s is validated first; nothing is sent if it is bad. Apply does not
// repair drift (see [Firewall.Repair]); it refuses to work on damaged
// records (ErrStateUnknown).
func (fw *Firewall) Apply(ctx context.Context, s State) (Plan, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	want, err := s.validate()
	if err != nil {
		return Plan{}, fmt.Errorf("apply: %w", err)
	}
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("apply: %w", err)
	}
	defer unlock()
	var p Plan
	err = fw.retry(func() error {
		var err error
		p, err = fw.apply(ctx, want)
		return err
	})
	if err != nil {
		return Plan{}, fmt.Errorf("apply: %w", err)
	}
	return p, nil
}

func (fw *Firewall) apply(ctx context.Context, want State) (Plan, error) {
	g0, err := fw.conn.Generation(ctx)
	if err != nil {
		return Plan{}, err
	}
	cur, user, err := fw.record(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("%w (run dnft check, and dnft repair with a saved state)", err)
	}
	if cur.Daemon == nil && want.Daemon == nil {
		return Plan{}, nil
	}
	if cur.Daemon == nil || want.Daemon == nil || !sameDaemonConfig(*cur.Daemon, *want.Daemon) {
		n, _, err := fw.restore(ctx, want, false)
		if err != nil || n == 0 {
			return Plan{}, err
		}
		return Plan{Rebuilt: true, Changes: n}, nil
	}
	d := *cur.Daemon
	tx := &nft.Tx{}
	var p Plan
	if d.Layout != want.Daemon.Layout {
		// The view's layout changes no rule: only the record.
		next := d
		next.Layout = want.Daemon.Layout
		chains.SetDaemon(tx, d, next)
		d = next
	}
	want = cloneState(want)
	fw.assignSeqs(&want)
	created := fw.planNetworks(tx, d, cur, want, &p)
	if err := planIngress(ctx, fw, tx, d, cur, want, &p); err != nil {
		return Plan{}, err
	}
	chains.SyncYields(tx, d, stateOrder(cur), stateOrder(want))
	raw, err := fw.planUser(ctx, tx, d, cur, user, want, &p)
	if err != nil {
		return Plan{}, err
	}
	p.Changes = tx.Len() + len(raw)
	if p.Changes == 0 {
		return p, nil
	}
	fw.v = view{}
	if _, err := fw.conn.ApplyWithRaw(ctx, tx, raw, g0); err != nil {
		return Plan{}, err
	}
	fw.settle(want, created, want.Ingress)
	return p, nil
}

// planNetworks queues the network and binding changes from cur to want
// and returns the networks it creates.
func (fw *Firewall) planNetworks(tx *nft.Tx, d DaemonConfig, cur, want State, p *Plan) []Network {
	changed := map[string]bool{} // removed or re-created: their bindings go
	var removed, created []Network
	for _, c := range cur.Networks {
		w, ok := chains.Find(want.Networks, c.Name)
		switch {
		case !ok:
			removed = append(removed, c)
			changed[c.Name] = true
			p.NetworksRemoved = append(p.NetworksRemoved, c.Name)
		case w.NetworkConfig != c.NetworkConfig:
			removed = append(removed, c)
			created = append(created, w)
			changed[c.Name] = true
			p.NetworksRecreated = append(p.NetworksRecreated, c.Name)
		}
	}
	for _, w := range want.Networks {
		if _, ok := chains.Find(cur.Networks, w.Name); !ok {
			created = append(created, w)
			p.NetworksCreated = append(p.NetworksCreated, w.Name)
		}
	}
	type key struct {
		network string
		b       Binding
	}
	wantPorts := map[key]bool{}
	for _, w := range want.Ports {
		wantPorts[key{w.Network, w.Binding}] = true
	}
	curPorts := map[key]bool{}
	gone := map[string][]Binding{}
	for _, c := range cur.Ports {
		curPorts[key{c.Network, c.Binding}] = true
		if changed[c.Network] || !wantPorts[key{c.Network, c.Binding}] {
			gone[c.Network] = append(gone[c.Network], c.Binding)
			p.PortsUnpublished++
		}
	}
	var add []Published
	for _, w := range want.Ports {
		if changed[w.Network] || !curPorts[key{w.Network, w.Binding}] {
			add = append(add, w)
			p.PortsPublished++
		}
	}
	x := portmap.NewIndex(cur.Ports)
	for _, c := range cur.Networks {
		if bs := gone[c.Name]; len(bs) > 0 {
			x.Unpublish(tx, d, c, bs)
			x.Remove(c.Name, bs)
		}
	}
	for _, n := range removed {
		chains.RemoveNetwork(tx, d, n)
	}
	sortBySeq(created, func(n Network) int64 { return n.Seq })
	for _, n := range created {
		chains.CreateNetwork(tx, d, n)
	}
	_ = publishRuns(tx, d, want.Networks, x, add) // every network of add is in want (validated)
	return created
}

// planIngress queues the ingress reference changes from cur to want:
// new references first, then the removed ones, then the publications
// whose target or gateway changed (all references removed, then added).
func planIngress(ctx context.Context, fw *Firewall, tx *nft.Tx, d DaemonConfig, cur, want State, p *Plan) error {
	type key struct {
		f     nft.Family
		proto portmap.Proto
		port  uint16
	}
	keyOf := func(q IngressPublished) key { return key{q.Family(), q.Proto, q.Port.Port} }
	curI := map[key]IngressPublished{}
	for _, c := range cur.Ingress {
		curI[keyOf(c)] = c
	}
	wantI := map[key]IngressPublished{}
	for _, w := range want.Ingress {
		wantI[keyOf(w)] = w
	}
	r := newTxReader(tx, func() ([]nft.TableState, error) { return fw.readTables(ctx) })
	publish := func(q IngressPublished, n int) error {
		for range n {
			if _, err := ingress.Publish(ctx, r, tx, q.Port, q.Seq); err != nil {
				return fmt.Errorf("ingress %s: %w", q.Port, err)
			}
			p.IngressPublished++
		}
		return nil
	}
	unpublish := func(q IngressPublished, n int) error {
		for range n {
			if _, err := ingress.Unpublish(ctx, r, tx, d, q.Port); err != nil {
				return fmt.Errorf("ingress %s: %w", q.Port, err)
			}
			p.IngressUnpublished++
		}
		return nil
	}
	var moved []key
	for _, w := range want.Ingress {
		c, ok := curI[keyOf(w)]
		switch {
		case !ok:
			if err := publish(w, w.Refs); err != nil {
				return err
			}
		case c.Port != w.Port:
			moved = append(moved, keyOf(w))
		case w.Refs > c.Refs:
			if err := publish(c, w.Refs-c.Refs); err != nil {
				return err
			}
		}
	}
	for _, c := range cur.Ingress {
		w, ok := wantI[keyOf(c)]
		switch {
		case !ok:
			if err := unpublish(c, c.Refs); err != nil {
				return err
			}
		case c.Port == w.Port && w.Refs < c.Refs:
			if err := unpublish(c, c.Refs-w.Refs); err != nil {
				return err
			}
		}
	}
	for _, k := range moved {
		if err := unpublish(curI[k], curI[k].Refs); err != nil {
			return err
		}
		if err := publish(wantI[k], wantI[k].Refs); err != nil {
			return err
		}
	}
	return nil
}

// planUser queues the replacement of DOCKER-USER's rules in the families
// where want's differ from the kernel's, and returns the rules to add.
func (fw *Firewall) planUser(ctx context.Context, tx *nft.Tx, d DaemonConfig, cur State, user userChains, want State, p *Plan) ([]nft.RawRule, error) {
	if want.DockerUser == nil {
		return nil, nil
	}
	var raw []nft.RawRule
	for _, f := range d.Families() {
		of := func(rules []UserRule) []UserRule {
			return slices.DeleteFunc(slices.Clone(rules), func(r UserRule) bool { return r.Family != f })
		}
		wr := of(want.DockerUser)
		if !user.exists(f) {
			return nil, fmt.Errorf("%w: %s chain %s is missing (run dnft repair)", ErrStateUnknown, f, chains.DockerUser)
		}
		if user[f] == nil && sameUserRules(of(cur.DockerUser), wr) {
			continue
		}
		have, _, err := fw.conn.ReadChain(ctx, f, chains.DockerUser)
		if err != nil {
			return nil, err
		}
		for _, r := range have.Rules {
			tx.DeleteRule(f, chains.DockerUser, r.Handle)
		}
		for _, r := range wr {
			raw = append(raw, nft.RawRule{Family: f, Chain: chains.DockerUser, Exprs: r.Expr, Sets: r.Sets, Comment: r.Comment})
		}
		p.DockerUser = append(p.DockerUser, f)
	}
	return raw, nil
}
