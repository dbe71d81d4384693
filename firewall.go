// Package dnft is an nftables-native firewall backend for container
// runtimes. It keeps the packet semantics of Docker's iptables rules
// (DOCKER, DOCKER-USER, DOCKER-ISOLATION, DOCKER-INGRESS, published ports)
// but programs them as dnft's own nftables tables, sets and maps, one
// atomic netlink batch per operation.
//
// A [Firewall] is bound to one network namespace. All state lives in the
// kernel (in comments of dnft's own set elements), so a new process sees
// and continues what an earlier one programmed:
//
//	fw, err := dnft.Open(ctx, "")            // "" = the caller's namespace
//	defer fw.Close()
//	err = fw.Init(ctx, dnft.DaemonConfig{UserlandProxy: true})
//	err = fw.CreateNetwork(ctx, dnft.NetworkConfig{
//		Name: "bridge", Bridge: "docker0", ICC: true, Masquerade: true,
//		Subnet4: netip.MustParsePrefix("172.17.0.0/16"),
//	})
//
// Be aware: an accept in dnft's tables does not override a drop in another
// table's base chain on the same hook (nftables evaluates every table).
package dnft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// DaemonConfig is the daemon-wide configuration (see [chains.DaemonConfig]).
type DaemonConfig = chains.DaemonConfig

// NetworkConfig describes a bridge network (see [chains.NetworkConfig]).
type NetworkConfig = chains.NetworkConfig

// Network is a network as read back from the kernel.
type Network = chains.Network

// FieldError is the error for bad input: it names the field and value.
type FieldError = chains.FieldError

// ErrNotInitialized is returned by operations before [Firewall.Init].
var ErrNotInitialized = errors.New("dnft is not initialized in this namespace (run init first)")

// ErrIPForwardOff is returned by [Firewall.Init] when IP forwarding is off
// in the namespace and [DaemonConfig.IPForward] does not allow turning it on.
var ErrIPForwardOff = errors.New("IP forwarding is off")

// Firewall programs Docker's firewall semantics into one network namespace.
// Its methods are safe for concurrent use.
//
// It keeps a copy of the state it checks operations against (daemon
// configuration, networks, published bindings), loaded from the kernel
// once and updated by its own commits, so that an operation costs the
// same whatever the number of published ports. That copy is tied to the
// ruleset generation it was loaded or last committed at, and every batch
// carries that generation: the kernel commits it only if nothing else
// (another process, an operator, another Firewall) changed the ruleset
// since, atomically, and otherwise the Firewall loads the state again and
// decides again. An operation that ends without a commit (a refusal, or
// nothing to do) checks the generation before it answers.
//
// Operations of all dnft processes and Firewalls on one namespace are
// serialized by an exclusive lock on a file of [LockDir] keyed by the
// namespace's inode, held from the read of the state an operation checks
// to its commit: two concurrent operations never decide on the same
// state, so none loses the other's update. Every operation is one netlink
// batch, so a process killed at any point leaves the kernel before or
// after it, never in between (sysctls set after a commit aside).
type Firewall struct {
	mu      sync.Mutex
	conn    *nft.Conn
	lastSeq int64
	v       view
	// unchecked is set while an operation relies on fw.v without having
	// checked its generation (a commit checks it; see [Firewall.retry]).
	unchecked bool
	// portOps counts the port operations this Firewall ran (see
	// [Firewall.bindings]).
	portOps int
	ct      *nft.Conntrack // opened on first use
	warn    func(error)
	lk      nsLock
	// prog is the last state programmed by Restore, Check, Repair or
	// Watch, kept so that the next check of the same state (a watch's,
	// at every change) does not build it again.
	prog *programmed
}

// view is what the Firewall knows of the kernel's state at generation
// gen. It is valid only while the kernel's generation is still gen.
type view struct {
	valid       bool
	gen         uint32
	initialized bool
	d           DaemonConfig
	nets        []Network
	// idx holds the published bindings; nil until an operation needs it.
	idx *portmap.Index
	// ingress records, per family (index 0 IPv4, 1 IPv6), whether the
	// ingress maps exist: 0 not known yet, 1 no, 2 yes.
	ingress [2]uint8
}

// Open binds a Firewall to a network namespace: "" for the calling
// thread's, a name under /run/netns, or a path.
func Open(ctx context.Context, netns string) (*Firewall, error) {
	c, err := nft.Open(ctx, netns)
	if err != nil {
		return nil, err
	}
	path, err := lockPath(c.NetNSFd())
	if err != nil {
		c.Close()
		return nil, err
	}
	fw := &Firewall{conn: c, lk: nsLock{path: path, cookie: c.NetNSCookie()}}
	c.SetCommitHook(fw.lk.record)
	return fw, nil
}

// exclusive takes the namespace lock for a mutating operation: it is
// held from the read of the state the operation checks to its commit
// (see [nsLock]). Call it with fw.mu held.
func (fw *Firewall) exclusive(ctx context.Context) (func(), error) {
	return fw.lk.lock(ctx, true)
}

// Close releases the netlink sockets.
func (fw *Firewall) Close() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var errs []error
	if fw.ct != nil {
		errs = append(errs, fw.ct.Close())
		fw.ct = nil
	}
	errs = append(errs, fw.lk.close())
	return errors.Join(append(errs, fw.conn.Close())...)
}

// SetWarnFunc sets the function that receives errors of work that follows
// a successful commit and does not undo it, such as the conntrack cleanup
// after publishing. By default they are dropped.
func (fw *Firewall) SetWarnFunc(f func(error)) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.warn = f
}

func (fw *Firewall) warnf(err error) {
	if err != nil && fw.warn != nil {
		fw.warn(err)
	}
}

// NetNS returns the namespace path the firewall is bound to.
func (fw *Firewall) NetNS() string { return fw.conn.NetNS() }

// seq returns a strictly increasing sequence number for ordering objects.
func (fw *Firewall) seq() int64 {
	s := time.Now().UnixNano()
	if s <= fw.lastSeq {
		s = fw.lastSeq + 1
	}
	fw.lastSeq = s
	return s
}

// fresh makes fw.v describe the kernel's state for an operation that
// commits through [Firewall.commit] inside [Firewall.retry]: a valid view
// is used as it is (marked unchecked: the commit's batch carries its
// generation, and retry checks it when the operation ends without a
// commit); otherwise the generation, the daemon configuration and the
// networks are read. The generation is read before the state, so a change
// in between makes the commit fail and the operation load again rather
// than go unnoticed.
func (fw *Firewall) fresh(ctx context.Context) error {
	if fw.v.valid {
		fw.unchecked = true
		return nil
	}
	return fw.load(ctx)
}

// load reads the generation, the daemon configuration and the networks
// into a new view (the binding index is read when needed).
func (fw *Firewall) load(ctx context.Context) error {
	fw.v = view{}
	g, err := fw.conn.Generation(ctx)
	if err != nil {
		return err
	}
	d, nets, initialized, err := readState(ctx, fw.conn)
	if err != nil {
		return err
	}
	fw.v = view{valid: true, gen: g, initialized: initialized, d: d, nets: nets}
	return nil
}

// current makes fw.v describe the kernel's current state for an
// operation that only reads: it checks the view's generation first.
func (fw *Firewall) current(ctx context.Context) error {
	if fw.v.valid {
		g, err := fw.conn.Generation(ctx)
		if err != nil {
			fw.v = view{}
			return err
		}
		if g == fw.v.gen {
			return nil
		}
	}
	return fw.load(ctx)
}

// readState reads the daemon and network records from r (see
// [chains.ReadState]): two sets of a few elements per network.
func readState(ctx context.Context, r ingress.Reader) (chains.DaemonConfig, []chains.Network, bool, error) {
	var sets [2]nft.SetState
	var ok [2]bool
	for i, name := range []string{chains.SetNetworks, chains.MapForwardOut} {
		var err error
		if sets[i], ok[i], err = r.ReadSet(ctx, nft.IPv4, name); err != nil {
			return chains.DaemonConfig{}, nil, false, err
		}
	}
	return chains.ReadState(sets[0], ok[0], sets[1], ok[1])
}

// state returns the daemon configuration and networks (a copy) for an
// operation that commits (see [Firewall.fresh]).
func (fw *Firewall) state(ctx context.Context) (chains.DaemonConfig, []chains.Network, error) {
	if err := fw.fresh(ctx); err != nil {
		return chains.DaemonConfig{}, nil, err
	}
	return fw.viewState()
}

// currentState is [Firewall.state] for an operation that only reads.
func (fw *Firewall) currentState(ctx context.Context) (chains.DaemonConfig, []chains.Network, error) {
	if err := fw.current(ctx); err != nil {
		return chains.DaemonConfig{}, nil, err
	}
	return fw.viewState()
}

func (fw *Firewall) viewState() (chains.DaemonConfig, []chains.Network, error) {
	if !fw.v.initialized {
		return fw.v.d, nil, ErrNotInitialized
	}
	return fw.v.d, slices.Clone(fw.v.nets), nil
}

// index returns the published bindings of fw.v, reading them from the
// kernel if fw.v has none yet. Call it right after [Firewall.state].
func (fw *Firewall) index(ctx context.Context) (*portmap.Index, error) {
	if fw.v.idx == nil {
		ps, err := portmap.ReadBindings(ctx, fw.conn, fw.v.d)
		if err != nil {
			return nil, err
		}
		fw.v.idx = portmap.NewIndex(ps)
	}
	return fw.v.idx, nil
}

// bindings returns the published bindings a port operation on about size
// bindings checks against: the view's index when it has one; for the
// first port operation of this Firewall, when it is small, the kernel
// itself, asked element by element (see [portmap.KernelBindings]), so
// that a process that runs one operation never lists the bindings; from
// the second operation on, or for many bindings at once, the index, read
// once (one listing costs less than a few requests per binding) and then
// kept up to date by the Firewall's own commits, which answers from
// memory.
func (fw *Firewall) bindings(ctx context.Context, size int) (portmap.Bindings, error) {
	if fw.v.idx == nil && fw.portOps == 0 && size <= kernelBindingsMax {
		return portmap.KernelBindings(fw.conn, fw.v.d), nil
	}
	x, err := fw.index(ctx)
	if err != nil {
		return portmap.Bindings{}, err
	}
	return x.Bindings(), nil
}

// kernelBindingsMax is the largest operation that [Firewall.bindings]
// checks against the kernel element by element.
const kernelBindingsMax = 64

// commit applies tx, which was computed from fw.v, in one batch that
// carries fw.v's generation: the kernel commits it only if the ruleset is
// still at that generation (otherwise nft.ErrGenerationChanged, see
// [Firewall.retry]). After the commit, update brings fw.v up to date and
// fw.v takes the generation after its own; with update nil, fw.v is
// dropped and the next operation loads it again. An empty tx sends
// nothing.
func (fw *Firewall) commit(ctx context.Context, tx *nft.Tx, update func(*view)) error {
	if tx.Len() == 0 {
		return nil
	}
	var want uint32
	if fw.v.valid {
		want = fw.v.gen
	}
	g, err := fw.conn.ApplyGen(ctx, tx, want)
	var kerr *nft.KernelError
	if err == nil || errors.As(err, &kerr) {
		// The kernel took the batch, so the generation check passed:
		// the decision was made on current state.
		fw.unchecked = false
	}
	if err != nil {
		fw.v = view{}
		return err
	}
	if want == 0 || update == nil {
		fw.v = view{}
		return nil
	}
	update(&fw.v)
	fw.v.gen = g
	return nil
}

// retry runs op, which reads the view (through [Firewall.state]) and
// commits, again when the ruleset changed under it: when the commit's
// generation check failed, or when op ended without a commit (an error,
// or nothing to do) after using a view whose generation it did not check
// and that generation is no longer the kernel's. At most three runs.
//
// The generation check is one request answered at once, so it does not
// take the operation's context.
func (fw *Firewall) retry(op func() error) error {
	for i := 0; ; i++ {
		fw.unchecked = false
		err := op()
		if fw.unchecked {
			fw.unchecked = false
			stale := !fw.v.valid
			if !stale {
				g, gerr := fw.conn.Generation(context.Background())
				if gerr != nil {
					fw.v = view{}
					return errors.Join(err, gerr)
				}
				stale = g != fw.v.gen
			}
			if stale {
				fw.v = view{}
				if i < 2 {
					continue
				}
				if err == nil {
					err = nft.ErrGenerationChanged
				}
			}
		}
		if i < 2 && errors.Is(err, nft.ErrGenerationChanged) {
			continue
		}
		return err
	}
}

// Daemon returns the configuration Init was given. ok is false before Init.
func (fw *Firewall) Daemon(ctx context.Context) (d DaemonConfig, ok bool, err error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	d, _, err = fw.currentState(ctx)
	if errors.Is(err, ErrNotInitialized) {
		return d, false, nil
	}
	return d, err == nil, err
}

// Networks lists the networks, oldest first.
func (fw *Firewall) Networks(ctx context.Context) ([]Network, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	_, nets, err := fw.currentState(ctx)
	return nets, err
}

// Init creates dnft's tables with the daemon-level chains. Calling it again
// with the same configuration changes nothing; a different configuration
// is refused while dnft is initialized (use Reset first). IP forwarding
// must be on in the namespace unless d.IPForward asks Init to turn it on;
// when Init does turn a family's forwarding on, that family's forward
// chain drops what no rule accepts (iptables' -P FORWARD DROP, as dockerd
// does) unless d.IPForwardNoDrop is set. The decision is recorded with
// the configuration ([DaemonConfig.ForwardDrop4]); forwarding that was
// already on never changes the policy.
func (fw *Firewall) Init(ctx context.Context, d DaemonConfig) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer unlock()
	var turnOn []string
	err = fw.retry(func() error {
		var err error
		turnOn, err = fw.initialize(ctx, d)
		return err
	})
	if err != nil {
		return err
	}
	for _, k := range turnOn {
		if err := fw.conn.SetSysctl(k, "1"); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	return nil
}

// initialize checks and commits Init's batch, and returns the forwarding
// sysctls to turn on.
func (fw *Firewall) initialize(ctx context.Context, d DaemonConfig) ([]string, error) {
	if err := chains.ValidLayout(d.Layout); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	cur, _, err := fw.state(ctx)
	switch {
	case err == nil:
		if err := sameDaemon(cur, d); err != nil {
			return nil, err
		}
		if cur.Layout != d.Layout {
			// The layout of the view changes no rule: record the new one.
			return nil, fw.setLayout(ctx, cur, d.Layout)
		}
		return nil, nil
	case !errors.Is(err, ErrNotInitialized):
		return nil, fmt.Errorf("init: %w", err)
	}
	// As dockerd: forwarding that Init turns on makes the family's
	// FORWARD policy DROP (unless no-drop); forwarding that was already
	// on leaves the policy alone.
	d.ForwardDrop4, d.ForwardDrop6 = false, false
	var turnOn []string
	for _, f := range d.Families() {
		k := forwardingSysctl(f)
		v, _, err := fw.conn.Sysctl(k)
		if err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if v == "1" {
			continue
		}
		if !d.IPForward {
			return nil, fmt.Errorf("init: %w: %s is %s in namespace %s, so containers could not reach or be reached from outside; turn it on or pass --ip-forward to let dnft do it", ErrIPForwardOff, k, v, fw.conn.NetNS())
		}
		turnOn = append(turnOn, k)
		if !d.IPForwardNoDrop {
			if f == nft.IPv6 {
				d.ForwardDrop6 = true
			} else {
				d.ForwardDrop4 = true
			}
		}
	}
	if !d.UserlandProxy {
		// Hairpin mode needs bridge netfilter: fail now, not later.
		if err := fw.requireBridgeNetfilter(ctx); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	tx := &nft.Tx{}
	chains.Init(tx, d)
	chains.InitUser(tx, d)
	portmap.Init(tx, d)
	chains.InitPolicy(tx, d)
	if err := fw.commit(ctx, tx, nil); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return turnOn, nil
}

// SetLayout records the iptables layout that views of the namespace show
// by default ([DaemonConfig.Layout]: "" classic, chains.LayoutStages), in
// one batch that changes no rule.
func (fw *Firewall) SetLayout(ctx context.Context, layout string) error {
	if err := chains.ValidLayout(layout); err != nil {
		return fmt.Errorf("set layout: %w", err)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("set layout: %w", err)
	}
	defer unlock()
	return fw.retry(func() error {
		d, _, err := fw.state(ctx)
		if err != nil {
			return fmt.Errorf("set layout: %w", err)
		}
		if d.Layout == layout {
			return nil
		}
		return fw.setLayout(ctx, d, layout)
	})
}

// setLayout commits the daemon record of cur with another layout.
func (fw *Firewall) setLayout(ctx context.Context, cur DaemonConfig, layout string) error {
	next := cur
	next.Layout = layout
	tx := &nft.Tx{}
	chains.SetDaemon(tx, cur, next)
	if err := fw.commit(ctx, tx, func(v *view) { v.d = next }); err != nil {
		return fmt.Errorf("set layout: %w", err)
	}
	return nil
}

// forwardingSysctl is the sysctl that turns forwarding of a family on.
func forwardingSysctl(f nft.Family) string {
	if f == nft.IPv6 {
		return "net.ipv6.conf.all.forwarding"
	}
	return "net.ipv4.ip_forward"
}

func sameDaemon(cur, want DaemonConfig) error {
	diff := func(field string, a, b bool) error {
		if a != b {
			return &FieldError{Field: field, Value: fmt.Sprint(b), Reason: fmt.Sprintf("dnft is already initialized with %s=%v; run reset first", field, a)}
		}
		return nil
	}
	return errors.Join(
		diff("userland-proxy", cur.UserlandProxy, want.UserlandProxy),
		diff("ipv6", cur.IPv6, want.IPv6),
		diff("allow-direct-routing", cur.AllowDirectRouting, want.AllowDirectRouting),
	)
}

// Reset removes everything dnft owns in the namespace (both tables,
// including DOCKER-USER). Nothing else is touched.
func (fw *Firewall) Reset(ctx context.Context) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	unlock, err := fw.exclusive(ctx)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	defer unlock()
	tx := &nft.Tx{}
	for _, f := range nft.TableFamilies {
		ok, err := fw.conn.TableExists(ctx, f)
		if err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		if ok {
			tx.DeleteTable(f)
		}
	}
	// No generation check: Reset must work whatever the state.
	fw.v = view{}
	if tx.Len() == 0 {
		g, err := fw.conn.Generation(ctx)
		if err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		return fw.lk.recordReset(g)
	}
	fw.lk.next = commitReset
	defer func() { fw.lk.next = commitChange }()
	if err := fw.conn.Apply(ctx, tx); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// nextGen is the generation after one commit (the kernel skips 0).
func nextGen(g uint32) uint32 {
	if g++; g == 0 {
		g++
	}
	return g
}
