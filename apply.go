package dnft

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

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
	want, err := s.validate(ctx)
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
	if next := recorded(d, *want.Daemon); next != d {
		// The view's layout and history change no rule: only the record.
		chains.SetDaemon(tx, d, next)
		d = next
	}
	want = cloneState(want)
	fw.assignSeqs(&want)
	carryHistory(cur, &want)
	created := fw.planNetworks(tx, d, cur, want, &p)
	gone, err := planIngress(ctx, fw, tx, d, cur, want, &p)
	if err != nil {
		return Plan{}, err
	}
	chains.SyncYields(tx, d, stateOrder(cur), stateOrder(want))
	raw, err := fw.planUser(ctx, tx, d, cur, user, want, &p)
	if err != nil {
		return Plan{}, err
	}
	if len(raw) > 0 {
		// As Restore does: the rules may only refer to what the applied
		// state has.
		built, err := fw.program(ctx, want)
		if err != nil {
			return Plan{}, err
		}
		if err := checkUserRefs(built.objs, want.DockerUser, raw); err != nil {
			return Plan{}, err
		}
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
	fw.warnf(fw.localnetOff(gone, d, want.Networks))
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
	portmap.QueuePositions(tx, add)
	return created
}

// planIngress queues the ingress reference changes from cur to want:
// new references first, then the removed ones, then the publications
// whose target or gateway changed (all references removed, then added).
func planIngress(ctx context.Context, fw *Firewall, tx *nft.Tx, d DaemonConfig, cur, want State, p *Plan) ([]ingress.Change, error) {
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
	var gone []ingress.Change
	unpublish := func(q IngressPublished, n int) error {
		for range n {
			ch, err := ingress.Unpublish(ctx, r, tx, d, q.Port)
			if err != nil {
				return fmt.Errorf("ingress %s: %w", q.Port, err)
			}
			gone = append(gone, ch...)
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
				return nil, err
			}
		case c.Port != w.Port:
			moved = append(moved, keyOf(w))
		case w.Refs > c.Refs:
			if err := publish(c, w.Refs-c.Refs); err != nil {
				return nil, err
			}
		}
	}
	for _, c := range cur.Ingress {
		w, ok := wantI[keyOf(c)]
		switch {
		case !ok:
			if err := unpublish(c, c.Refs); err != nil {
				return nil, err
			}
		case c.Port == w.Port && w.Refs < c.Refs:
			if err := unpublish(c, c.Refs-w.Refs); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range moved {
		if err := unpublish(curI[k], curI[k].Refs); err != nil {
			return nil, err
		}
		if err := publish(wantI[k], wantI[k].Refs); err != nil {
			return nil, err
		}
	}
	return gone, nil
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
