// Package reference is the "reference programmer" of dnft's contract
// (CONTRACT.md §2 and §4): it applies dnft's operations (init, network
// create/remove, port publish/unpublish, ingress publish/unpublish) by
// running the exact iptables/ip6tables command sequences that Docker's
// classic bridge driver would run, with real iptables, inside a named
// network namespace. The resulting ruleset is the reference state that
// dnft's behaviour and its iptables view are compared against.
//
// Every command is run as "ip netns exec NAME iptables -w ARGS..." (or
// ip6tables, or the -legacy binaries), in operation order, with the
// argument order of CONTRACT.md §2. Kernel settings that Docker changes
// (route_localnet, bridge-nf-call-iptables) are written inside the
// namespace as Docker would write them. IP forwarding is touched only when
// the daemon configuration's IPForward asks for it: then, as dockerd, a
// family whose forwarding is off gets it turned on and, unless
// IPForwardNoDrop, its FORWARD policy set to DROP.
//
// The Programmer keeps, in memory, the networks, bindings and ingress
// ports it programmed, so that removal runs "-D" with exactly the rule
// specifications that creation used. It does not validate its inputs
// beyond what it needs to stay consistent (tests supply the inputs).
package reference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/portmap"
)

// Variant selects which iptables implementation the Programmer runs.
type Variant int

const (
	// NFT runs iptables-nft and ip6tables-nft (the default; Debian's
	// "iptables" alternative in its default configuration).
	NFT Variant = iota
	// Legacy runs iptables-legacy and ip6tables-legacy.
	Legacy
)

// String returns "nft" or "legacy".
func (v Variant) String() string {
	if v == Legacy {
		return "legacy"
	}
	return "nft"
}

// Family is an address family: which of iptables (IPv4) and ip6tables
// (IPv6) a command is run with.
type Family int

// The two address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Tool returns the family's command name as used in logs: "iptables" or
// "ip6tables".
func (f Family) Tool() string {
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// Option configures New.
type Option func(*options)

type options struct {
	variant Variant
}

// WithVariant selects the iptables implementation (NFT by default).
func WithVariant(v Variant) Option {
	return func(o *options) { o.variant = v }
}

// WithLegacy is shorthand for WithVariant(Legacy).
func WithLegacy() Option { return WithVariant(Legacy) }

// CommandError is returned when an iptables (or sysctl) command fails. It
// carries the command as logged, the namespace and the command's stderr.
type CommandError struct {
	// Command is the command as it appears in Commands(), e.g.
	// "iptables -t nat -A DOCKER ...".
	Command string
	// Netns is the /run/netns name the command ran in.
	Netns string
	// Stderr is what the command wrote to standard error.
	Stderr string
	// Err is the underlying error (usually an *exec.ExitError).
	Err error
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("reference: netns %s: %s: %v", e.Netns, e.Command, e.Err)
	}
	return fmt.Sprintf("reference: netns %s: %s: %v: %s", e.Netns, e.Command, e.Err, msg)
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// rule is one iptables rule as the Programmer added it: enough to delete
// it again with the same specification.
type rule struct {
	fam   Family
	table string // "" (filter, no -t), "nat" or "raw"
	chain string
	op    string // "-A" or "-I"
	spec  []string
}

func (r rule) addArgs() []string { return r.args(r.op) }
func (r rule) delArgs() []string { return r.args("-D") }

func (r rule) args(op string) []string {
	var a []string
	if r.table != "" {
		a = append(a, "-t", r.table)
	}
	a = append(a, op, r.chain)
	return append(a, r.spec...)
}

// isoPair is a DOCKER-ISOLATION DROP rule between two non-internal networks.
type isoPair struct {
	r    rule
	a, b string // the bridges it names
}

type network struct {
	cfg      chains.NetworkConfig
	families []Family // families the network has rules in
	rules    []rule   // rules its creation added (not the isolation pairs), in order
	bindings []*binding
}

type bindingKey struct {
	proto         portmap.Proto
	hostIP        netip.Addr // invalid when "all addresses"
	hostPort      uint16
	containerIP   netip.Addr
	containerPort uint16
}

type binding struct {
	key   bindingKey
	b     portmap.Binding
	rules []rule
}

type ingressKey struct {
	proto portmap.Proto
	port  uint16
}

// ingressPort is one published ingress port of a family, reference
// counted as swarm counts it: the rules exist while refs > 0.
type ingressPort struct {
	gw     string
	target netip.Addr
	refs   int
	rules  []rule
}

// ingressState is the per-family ingress state: it exists from the first
// published ingress port of the family until the last one is removed.
type ingressState struct {
	teardown []undoCmd       // undoes the chain-level setup (jumps, RETURNs, chains)
	gwMasq   map[string]rule // per gateway bridge masquerade rule
	gwRefs   map[string]int  // ports per gateway bridge
	ports    map[ingressKey]*ingressPort
}

// Programmer applies dnft's operations with real iptables commands in one
// network namespace. It is safe for concurrent use; operations are
// serialised.
type Programmer struct {
	netns   string
	d       chains.DaemonConfig
	variant Variant

	mu        sync.Mutex
	cmds      []string
	sysctls   []string
	networks  []*network // creation order
	isolation map[Family][]isoPair
	ingress   map[Family]*ingressState
}

// New binds a Programmer to the network namespace /run/netns/NETNS and
// runs the init sequence of CONTRACT.md §2 for IPv4, and for IPv6 (with
// ip6tables) when d.IPv6 is set. The namespace must not hold Docker's
// chains yet.
func New(ctx context.Context, netns string, d chains.DaemonConfig, opts ...Option) (*Programmer, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if netns == "" || strings.ContainsRune(netns, '/') {
		return nil, fmt.Errorf("reference: bad netns name %q", netns)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", netns)); err != nil {
		return nil, fmt.Errorf("reference: netns %q: %w", netns, err)
	}
	p := &Programmer{
		netns:     netns,
		d:         d,
		variant:   o.variant,
		isolation: map[Family][]isoPair{},
		ingress:   map[Family]*ingressState{},
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fam := range p.families() {
		if err := p.initFamily(ctx, fam); err != nil {
			return nil, err
		}
		if err := p.ipForward(ctx, fam); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Netns returns the name of the namespace the Programmer works in.
func (p *Programmer) Netns() string { return p.netns }

// Variant returns the iptables implementation the Programmer runs.
func (p *Programmer) Variant() Variant { return p.variant }

// Daemon returns the daemon configuration given to New.
func (p *Programmer) Daemon() chains.DaemonConfig { return p.d }

// Commands returns every iptables/ip6tables command run so far that
// changed the ruleset, in order, as "iptables -t nat -A ..." strings
// (family tool name, without -w and without the "ip netns exec" prefix;
// filter-table commands carry no -t, as in CONTRACT.md §2).
func (p *Programmer) Commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cmds...)
}

// Sysctls returns every kernel setting written so far, in order, as
// "/proc/sys/...=1" strings.
func (p *Programmer) Sysctls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sysctls...)
}

// IPTables runs a read-only iptables (IPv4) or ip6tables (IPv6) command in
// the namespace, e.g. IPTables(ctx, IPv4, "-t", "nat", "-S"), and returns
// its standard output. It is meant for reading the reference state (-S,
// -L); it is not recorded in Commands. -w is added.
func (p *Programmer) IPTables(ctx context.Context, fam Family, args ...string) (string, error) {
	return p.exec(ctx, fam.Tool()+" "+strings.Join(args, " "), p.binary(fam, ""), append([]string{"-w"}, args...)...)
}

// Save runs iptables-save (IPv4) or ip6tables-save (IPv6) of the
// Programmer's variant in the namespace with the given arguments (e.g.
// "-t", "filter") and returns its standard output, comment lines included.
func (p *Programmer) Save(ctx context.Context, fam Family, args ...string) (string, error) {
	return p.exec(ctx, fam.Tool()+"-save "+strings.Join(args, " "), p.binary(fam, "-save"), args...)
}

func (p *Programmer) families() []Family {
	if p.d.IPv6 {
		return []Family{IPv4, IPv6}
	}
	return []Family{IPv4}
}

func (p *Programmer) protected() bool { return !p.d.AllowDirectRouting }

func (p *Programmer) binary(fam Family, suffix string) string {
	return fam.Tool() + "-" + p.variant.String() + suffix
}

// exec runs BIN ARGS inside the namespace and returns stdout.
func (p *Programmer) exec(ctx context.Context, logged, bin string, args ...string) (string, error) {
	argv := append([]string{"netns", "exec", p.netns, bin}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CommandError{Command: logged, Netns: p.netns, Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// run runs one ruleset-changing command and records it.
func (p *Programmer) run(ctx context.Context, fam Family, args ...string) error {
	logged := fam.Tool() + " " + strings.Join(args, " ")
	if _, err := p.exec(ctx, logged, p.binary(fam, ""), append([]string{"-w"}, args...)...); err != nil {
		return err
	}
	p.cmds = append(p.cmds, logged)
	return nil
}

// tx records what an operation did so that a failure part-way can be
// undone (best effort), leaving the reference state as it was.
type tx struct {
	p     *Programmer
	added []rule
	undo  []undoCmd
}

type undoCmd struct {
	fam  Family
	args []string
}

// add adds a rule and remembers how to delete it.
func (t *tx) add(ctx context.Context, r rule) error {
	if err := t.p.run(ctx, r.fam, r.addArgs()...); err != nil {
		return err
	}
	t.added = append(t.added, r)
	t.undo = append(t.undo, undoCmd{r.fam, r.delArgs()})
	return nil
}

// do runs a command that is not a rule (e.g. -N) and remembers its undo.
func (t *tx) do(ctx context.Context, fam Family, args, undo []string) error {
	if err := t.p.run(ctx, fam, args...); err != nil {
		return err
	}
	t.undo = append(t.undo, undoCmd{fam, undo})
	return nil
}

func (t *tx) rollback(ctx context.Context) {
	t.p.runUndo(ctx, t.undo, true)
	t.added, t.undo = nil, nil
}

// runUndo runs undo commands in reverse order. With bestEffort it goes on
// after errors and returns nil; otherwise it stops at the first error.
func (p *Programmer) runUndo(ctx context.Context, us []undoCmd, bestEffort bool) error {
	for i := len(us) - 1; i >= 0; i-- {
		if err := p.run(ctx, us[i].fam, us[i].args...); err != nil && !bestEffort {
			return err
		}
	}
	return nil
}

// deleteRules deletes rules in reverse order, stopping at the first error.
func (p *Programmer) deleteRules(ctx context.Context, rs []rule) error {
	for i := len(rs) - 1; i >= 0; i-- {
		if err := p.run(ctx, rs[i].fam, rs[i].delArgs()...); err != nil {
			return err
		}
	}
	return nil
}

// --- address helpers -----------------------------------------------------

func famOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// host formats an address as a single-host prefix: a/32 or a/128.
func host(a netip.Addr) string {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func loopbackNet(fam Family) string {
	if fam == IPv6 {
		return "::1/128"
	}
	return "127.0.0.0/8"
}

func isLoopback(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is4() {
		return netip.MustParsePrefix("127.0.0.0/8").Contains(a)
	}
	return a == netip.IPv6Loopback()
}

// dnatTo formats a DNAT destination: "C:P" or "[C]:P".
func dnatTo(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a.Unmap(), port).String()
}

func port(p uint16) string { return strconv.Itoa(int(p)) }

// --- init ----------------------------------------------------------------

func (p *Programmer) initFamily(ctx context.Context, fam Family) error {
	output := []string{"-t", "nat", "-A", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"}
	if p.d.UserlandProxy {
		output = []string{"-t", "nat", "-A", "OUTPUT", "!", "-d", loopbackNet(fam), "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"}
	}
	seq := [][]string{
		{"-t", "nat", "-N", "DOCKER"},
		{"-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
		output,
		{"-N", "DOCKER"},
		{"-N", "DOCKER-ISOLATION"},
		{"-A", "DOCKER-ISOLATION", "-j", "RETURN"},
		{"-N", "DOCKER-USER"},
		{"-A", "DOCKER-USER", "-j", "RETURN"},
		{"-I", "FORWARD", "-j", "DOCKER-ISOLATION"},
		{"-I", "FORWARD", "-j", "DOCKER-USER"},
	}
	for _, args := range seq {
		if err := p.run(ctx, fam, args...); err != nil {
			return err
		}
	}
	return nil
}

// --- kernel settings -------------------------------------------------------

// forwardingPath is the sysctl that turns a family's forwarding on.
func forwardingPath(fam Family) string {
	if fam == IPv6 {
		return "/proc/sys/net/ipv6/conf/all/forwarding"
	}
	return "/proc/sys/net/ipv4/ip_forward"
}

// ipForward is dockerd's setupIPForwarding for one family: with
// IPForward, forwarding that is off is turned on and, unless
// IPForwardNoDrop, the FORWARD policy becomes DROP; forwarding that is
// already on is left alone, and so is the policy.
func (p *Programmer) ipForward(ctx context.Context, fam Family) error {
	if !p.d.IPForward {
		return nil
	}
	path := forwardingPath(fam)
	v, err := p.exec(ctx, "cat "+path, "cat", path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(v) == "1" {
		return nil
	}
	if err := p.writeSysctl(ctx, path, false); err != nil {
		return err
	}
	if p.d.IPForwardNoDrop {
		return nil
	}
	return p.run(ctx, fam, "-P", "FORWARD", "DROP")
}

// writeSysctl writes "1" to a /proc/sys path from inside the namespace.
// With ifExists, a missing file is not an error (nothing is written).
func (p *Programmer) writeSysctl(ctx context.Context, path string, ifExists bool) error {
	script := `[ -e "$1" ] || exit 3; echo 1 > "$1"`
	logged := "sysctl " + path + "=1"
	_, err := p.exec(ctx, logged, "sh", "-c", script, "sh", path)
	var ee *exec.ExitError
	var ce *CommandError
	if errors.As(err, &ce) && errors.As(ce.Err, &ee) && ee.ExitCode() == 3 {
		if ifExists {
			return nil
		}
		ce.Stderr = path + " does not exist in the namespace"
		return ce
	}
	if err != nil {
		return err
	}
	p.sysctls = append(p.sysctls, path+"=1")
	return nil
}

func routeLocalnetPath(bridge string) string {
	return "/proc/sys/net/ipv4/conf/" + bridge + "/route_localnet"
}

// bridgeNetfilter turns on bridge-nf-call-iptables (and -ip6tables when
// v6) in the namespace, as Docker's setupBridgeNetFiltering does. Unlike
// Docker it never loads br_netfilter: a module is machine-wide state that
// the other side of a twin depends on, so the machine must have it before
// the tests start (.ci/run loads it); without it this fails, naming the
// missing sysctl.
func (p *Programmer) bridgeNetfilter(ctx context.Context, v6 bool) error {
	const v4path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	const v6path = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
	if err := p.writeSysctl(ctx, v4path, false); err != nil {
		return fmt.Errorf("bridge netfilter (load br_netfilter before the tests): %w", err)
	}
	if v6 {
		return p.writeSysctl(ctx, v6path, false)
	}
	return nil
}

// --- networks --------------------------------------------------------------

func (p *Programmer) findNetwork(name string) (int, *network) {
	for i, n := range p.networks {
		if n.cfg.Name == name {
			return i, n
		}
	}
	return -1, nil
}

func (p *Programmer) netFamilies(n chains.NetworkConfig) []Family {
	if p.d.IPv6 && n.Subnet6.IsValid() {
		return []Family{IPv4, IPv6}
	}
	return []Family{IPv4}
}

func (n *network) has(fam Family) bool {
	for _, f := range n.families {
		if f == fam {
			return true
		}
	}
	return false
}

func subnet(n chains.NetworkConfig, fam Family) string {
	if fam == IPv6 {
		return n.Subnet6.Masked().String()
	}
	return n.Subnet4.Masked().String()
}

// CreateNetwork programs a bridge network with the sequences of CONTRACT.md
// §2 ("network create, not internal" or "network create, internal"), IPv4
// first, then IPv6 when the daemon has IPv6 and the network has Subnet6.
// Isolation pairs are added with every existing non-internal network of the
// same family, oldest first; then the DOCKER-ISOLATION, DOCKER-INGRESS (if
// ingress exists in that family) and DOCKER-USER jumps are moved to the top
// of FORWARD, in that order. When the userland proxy is off it sets
// route_localnet=1 on the bridge (if the bridge exists in the namespace);
// when the proxy is off or ICC is off it sets bridge-nf-call-iptables=1
// (and bridge-nf-call-ip6tables=1 for an IPv6 network).
func (p *Programmer) CreateNetwork(ctx context.Context, n chains.NetworkConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n.Name == "" || n.Bridge == "" || !n.Subnet4.IsValid() {
		return fmt.Errorf("reference: network needs a name, a bridge and an IPv4 subnet: %+v", n)
	}
	if _, o := p.findNetwork(n.Name); o != nil {
		return fmt.Errorf("reference: network %q already exists", n.Name)
	}
	for _, o := range p.networks {
		if o.cfg.Bridge == n.Bridge {
			return fmt.Errorf("reference: bridge %q is already used by network %q", n.Bridge, o.cfg.Name)
		}
	}
	nw := &network{cfg: n, families: p.netFamilies(n)}

	if !p.d.UserlandProxy {
		if err := p.writeSysctl(ctx, routeLocalnetPath(n.Bridge), true); err != nil {
			return err
		}
	}

	t := &tx{p: p}
	var pairs []isoPair
	for _, fam := range nw.families {
		var err error
		var famPairs []isoPair
		if n.Internal {
			err = p.internalRules(ctx, t, nw, fam)
		} else {
			famPairs, err = p.nonInternalRules(ctx, t, nw, fam)
			pairs = append(pairs, famPairs...)
		}
		if err == nil {
			err = p.moveJumps(ctx, fam)
		}
		if err != nil {
			t.rollback(ctx)
			return err
		}
	}
	// The network rules are everything tx added except the pairs, which
	// are kept globally (later networks add pairs naming this bridge too).
	nw.rules = filterOut(t.added, pairs)
	for _, pr := range pairs {
		p.isolation[pr.r.fam] = append(p.isolation[pr.r.fam], pr)
	}
	p.networks = append(p.networks, nw)

	if !p.d.UserlandProxy || !n.ICC {
		if err := p.bridgeNetfilter(ctx, nw.has(IPv6)); err != nil {
			return err
		}
	}
	return nil
}

func filterOut(rs []rule, pairs []isoPair) []rule {
	var out []rule
next:
	for _, r := range rs {
		for _, pr := range pairs {
			if sameRule(r, pr.r) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

func sameRule(a, b rule) bool {
	return a.fam == b.fam && a.table == b.table && a.chain == b.chain && a.op == b.op &&
		strings.Join(a.spec, "\x00") == strings.Join(b.spec, "\x00")
}

func (p *Programmer) nonInternalRules(ctx context.Context, t *tx, nw *network, fam Family) ([]isoPair, error) {
	n := nw.cfg
	B, S := n.Bridge, subnet(n, fam)
	var rs []rule
	if n.Masquerade {
		snat := n.HostIPv4
		if fam == IPv6 {
			snat = n.HostIPv6
		}
		target := []string{"-j", "MASQUERADE"}
		if snat.IsValid() {
			target = []string{"-j", "SNAT", "--to-source", snat.Unmap().String()}
		}
		rs = append(rs, rule{fam, "nat", "POSTROUTING", "-I", append([]string{"-s", S, "!", "-o", B}, target...)})
		if p.d.UserlandProxy {
			rs = append(rs, rule{fam, "nat", "DOCKER", "-I", []string{"-i", B, "-j", "RETURN"}})
		}
	}
	if !p.d.UserlandProxy {
		rs = append(rs, rule{fam, "nat", "POSTROUTING", "-I", []string{"-m", "addrtype", "--src-type", "LOCAL", "-o", B, "-j", "MASQUERADE"}})
	}
	rs = append(rs, iccRule(fam, B, n.ICC),
		rule{fam, "", "FORWARD", "-I", []string{"-i", B, "!", "-o", B, "-j", "ACCEPT"}},
		rule{fam, "", "FORWARD", "-I", []string{"-o", B, "-j", "DOCKER"}},
		rule{fam, "", "FORWARD", "-I", []string{"-o", B, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
	)
	if p.protected() {
		rs = append(rs,
			rule{fam, "", "DOCKER", "-A", []string{"!", "-i", B, "-o", B, "-j", "DROP"}},
			rule{fam, "raw", "PREROUTING", "-A", []string{"-d", S, "!", "-i", B, "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "DROP"}},
		)
	}
	for _, r := range rs {
		if err := t.add(ctx, r); err != nil {
			return nil, err
		}
	}
	var pairs []isoPair
	for _, o := range p.networks {
		if o.cfg.Internal || !o.has(fam) {
			continue
		}
		O := o.cfg.Bridge
		for _, pr := range []isoPair{
			{rule{fam, "", "DOCKER-ISOLATION", "-I", []string{"-i", O, "-o", B, "-j", "DROP"}}, O, B},
			{rule{fam, "", "DOCKER-ISOLATION", "-I", []string{"-i", B, "-o", O, "-j", "DROP"}}, B, O},
		} {
			if err := t.add(ctx, pr.r); err != nil {
				return nil, err
			}
			pairs = append(pairs, pr)
		}
	}
	return pairs, nil
}

func iccRule(fam Family, B string, icc bool) rule {
	if icc {
		return rule{fam, "", "FORWARD", "-I", []string{"-i", B, "-o", B, "-j", "ACCEPT"}}
	}
	return rule{fam, "", "FORWARD", "-A", []string{"-i", B, "-o", B, "-j", "DROP"}}
}

func (p *Programmer) internalRules(ctx context.Context, t *tx, nw *network, fam Family) error {
	B, S := nw.cfg.Bridge, subnet(nw.cfg, fam)
	for _, r := range []rule{
		{fam, "", "DOCKER-ISOLATION", "-I", []string{"!", "-d", S, "-i", B, "-j", "DROP"}},
		{fam, "", "DOCKER-ISOLATION", "-I", []string{"!", "-s", S, "-o", B, "-j", "DROP"}},
		iccRule(fam, B, nw.cfg.ICC),
	} {
		if err := t.add(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// moveJump deletes the FORWARD jump to chain and inserts it at the top.
func (p *Programmer) moveJump(ctx context.Context, fam Family, chain string) error {
	if err := p.run(ctx, fam, "-D", "FORWARD", "-j", chain); err != nil {
		return err
	}
	return p.run(ctx, fam, "-I", "FORWARD", "-j", chain)
}

// moveJumps moves DOCKER-ISOLATION, DOCKER-INGRESS (if ingress exists in
// fam) and DOCKER-USER to the top of FORWARD, in that order.
func (p *Programmer) moveJumps(ctx context.Context, fam Family) error {
	chainsToMove := []string{"DOCKER-ISOLATION"}
	if p.ingress[fam] != nil {
		chainsToMove = append(chainsToMove, "DOCKER-INGRESS")
	}
	chainsToMove = append(chainsToMove, "DOCKER-USER")
	for _, c := range chainsToMove {
		if err := p.moveJump(ctx, fam, c); err != nil {
			return err
		}
	}
	return nil
}

// RemoveNetwork deletes a network's rules: every rule its creation added
// (with -D and the same specification, in reverse order) and every
// DOCKER-ISOLATION rule that names its bridge, including the pairs added
// when later networks were created. A network that still has published
// ports is not removed (error) unless force is set, in which case its
// ports are unpublished first (most recent first). Kernel settings are
// left as they are, as Docker leaves them.
func (p *Programmer) RemoveNetwork(ctx context.Context, name string, force bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, nw := p.findNetwork(name)
	if nw == nil {
		return fmt.Errorf("reference: no network %q", name)
	}
	if len(nw.bindings) > 0 {
		if !force {
			return fmt.Errorf("reference: network %q still has %d published port(s) (first: %s); unpublish them or force", name, len(nw.bindings), nw.bindings[0].b)
		}
		for len(nw.bindings) > 0 {
			last := len(nw.bindings) - 1
			if err := p.deleteRules(ctx, nw.bindings[last].rules); err != nil {
				return err
			}
			nw.bindings = nw.bindings[:last]
		}
	}
	for _, fam := range nw.families {
		var keep []isoPair
		var del []rule
		for _, pr := range p.isolation[fam] {
			if pr.a == nw.cfg.Bridge || pr.b == nw.cfg.Bridge {
				del = append(del, pr.r)
			} else {
				keep = append(keep, pr)
			}
		}
		// Delete the newest pairs first (reverse of creation).
		for j := len(del) - 1; j >= 0; j-- {
			if err := p.run(ctx, fam, del[j].delArgs()...); err != nil {
				return err
			}
		}
		p.isolation[fam] = keep
	}
	if err := p.deleteRules(ctx, nw.rules); err != nil {
		return err
	}
	p.networks = append(p.networks[:i], p.networks[i+1:]...)
	return nil
}

// --- port publishing -------------------------------------------------------

// key normalises a binding: the family comes from ContainerIP; a zero
// HostIP means the network's HostBindingIPv4 for IPv4 (if set), else all
// addresses; 0.0.0.0 and :: mean all addresses (invalid hostIP in the key).
func (p *Programmer) key(nw *network, b portmap.Binding) (bindingKey, error) {
	if !b.ContainerIP.IsValid() {
		return bindingKey{}, fmt.Errorf("reference: binding %s has no container address", b)
	}
	c := b.ContainerIP.Unmap()
	fam := famOf(c)
	h := b.HostIP.Unmap()
	if !h.IsValid() && fam == IPv4 && nw.cfg.HostBindingIPv4.IsValid() {
		h = nw.cfg.HostBindingIPv4.Unmap()
	}
	if h.IsValid() && famOf(h) != fam {
		return bindingKey{}, fmt.Errorf("reference: binding %s mixes address families", b)
	}
	if h.IsValid() && h.IsUnspecified() {
		h = netip.Addr{}
	}
	switch b.Proto {
	case portmap.TCP, portmap.UDP, portmap.SCTP:
	default:
		return bindingKey{}, fmt.Errorf("reference: binding %s: unknown protocol %q", b, b.Proto)
	}
	return bindingKey{b.Proto, h, b.HostPort, c, b.ContainerPort}, nil
}

func (p *Programmer) bindingRules(nw *network, k bindingKey) []rule {
	fam := famOf(k.containerIP)
	B, P := nw.cfg.Bridge, string(k.proto)
	var dnat []string
	if fam == IPv6 {
		dnat = append(dnat, "!", "-s", "fe80::/10")
	}
	if k.hostIP.IsValid() {
		dnat = append(dnat, "-d", host(k.hostIP))
	}
	if p.d.UserlandProxy {
		dnat = append(dnat, "!", "-i", B)
	}
	dnat = append(dnat, "-p", P, "-m", P, "--dport", port(k.hostPort), "-j", "DNAT", "--to-destination", dnatTo(k.containerIP, k.containerPort))
	C := host(k.containerIP)
	rs := []rule{
		{fam, "nat", "DOCKER", "-A", dnat},
		{fam, "", "DOCKER", "-I", []string{"-d", C, "!", "-i", B, "-o", B, "-p", P, "-m", P, "--dport", port(k.containerPort), "-j", "ACCEPT"}},
		{fam, "nat", "POSTROUTING", "-A", []string{"-s", C, "-d", C, "-p", P, "-m", P, "--dport", port(k.containerPort), "-j", "MASQUERADE"}},
	}
	if k.hostIP.IsValid() && isLoopback(k.hostIP) && p.protected() {
		rs = append(rs, rule{fam, "raw", "PREROUTING", "-A", []string{"-d", host(k.hostIP), "!", "-i", "lo", "-p", P, "-m", P, "--dport", port(k.hostPort), "-j", "DROP"}})
	}
	return rs
}

// Publish programs the port publish sequence of CONTRACT.md §2 for each
// binding, in order: nat DOCKER DNAT (-A), filter DOCKER ACCEPT (-I), nat
// POSTROUTING hairpin MASQUERADE (-A) and, for a loopback host address in
// protected mode, the raw PREROUTING DROP (-A). IPv6 bindings (ContainerIP
// is IPv6) go to ip6tables and need an IPv6 network. A binding whose
// normalised form is already published on the network is an error. If a
// binding fails part-way, its rules are removed again and the bindings
// before it stay published.
func (p *Programmer) Publish(ctx context.Context, networkName string, bs []portmap.Binding) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, nw := p.findNetwork(networkName)
	if nw == nil {
		return fmt.Errorf("reference: no network %q", networkName)
	}
	if nw.cfg.Internal {
		return fmt.Errorf("reference: network %q is internal: Docker programs no port mappings for internal networks", networkName)
	}
	for _, b := range bs {
		k, err := p.key(nw, b)
		if err != nil {
			return err
		}
		if fam := famOf(k.containerIP); !nw.has(fam) {
			return fmt.Errorf("reference: binding %s: network %q has no %s rules", b, networkName, fam)
		}
		for _, o := range nw.bindings {
			if o.key == k {
				return fmt.Errorf("reference: binding %s is already published on network %q", b, networkName)
			}
		}
		t := &tx{p: p}
		for _, r := range p.bindingRules(nw, k) {
			if err := t.add(ctx, r); err != nil {
				t.rollback(ctx)
				return err
			}
		}
		nw.bindings = append(nw.bindings, &binding{key: k, b: b, rules: t.added})
	}
	return nil
}

// Unpublish deletes, for each binding, exactly the rules Publish added for
// it (-D, reverse order). Bindings are matched in normalised form (a zero
// HostIP matches the network's default binding address). A binding that
// is not published is an error; the bindings before it are unpublished.
func (p *Programmer) Unpublish(ctx context.Context, networkName string, bs []portmap.Binding) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, nw := p.findNetwork(networkName)
	if nw == nil {
		return fmt.Errorf("reference: no network %q", networkName)
	}
	for _, b := range bs {
		k, err := p.key(nw, b)
		if err != nil {
			return err
		}
		idx := -1
		for i, o := range nw.bindings {
			if o.key == k {
				idx = i
				break
			}
		}
		if idx < 0 {
			return fmt.Errorf("reference: binding %s is not published on network %q", b, networkName)
		}
		if err := p.deleteRules(ctx, nw.bindings[idx].rules); err != nil {
			return err
		}
		nw.bindings = append(nw.bindings[:idx], nw.bindings[idx+1:]...)
	}
	return nil
}

// --- ingress ---------------------------------------------------------------

const defaultGateway = "docker_gwbridge"

// PublishIngress publishes a swarm ingress port. The family is the
// target's (an IPv6 target needs a daemon with IPv6); an empty gwBridge
// means docker_gwbridge. The first publication of the family creates the
// nat and filter DOCKER-INGRESS chains with their RETURN rules, the nat
// OUTPUT and PREROUTING jumps and the FORWARD jump, then moves the
// DOCKER-USER jump back to the top; the first port on a gateway bridge
// adds its "-m addrtype --src-type LOCAL -o G -j MASQUERADE" rule and, for
// IPv4, sets route_localnet=1 on G (if G exists in the namespace). Then
// the per-port nat DNAT and the two filter ACCEPT rules are inserted. In
// ip6tables the DNAT rule gets "! -s fe80::/10" like every IPv6 DNAT rule.
// Publishing a proto/port that is already published in the family to the
// same target on the same gateway bridge only increments its reference
// count (no command runs), as swarm's ingress does for services sharing a
// port; to another target or gateway bridge it is an error. A failure
// part-way undoes what the call did.
func (p *Programmer) PublishIngress(ctx context.Context, gwBridge string, proto portmap.Proto, pub uint16, target netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gwBridge == "" {
		gwBridge = defaultGateway
	}
	if !target.IsValid() {
		return fmt.Errorf("reference: ingress %d/%s: no target address", pub, proto)
	}
	target = target.Unmap()
	fam := famOf(target)
	if fam == IPv6 && !p.d.IPv6 {
		return fmt.Errorf("reference: ingress %d/%s: IPv6 target %s but the daemon has no IPv6", pub, proto, target)
	}
	k := ingressKey{proto, pub}
	st := p.ingress[fam]
	if st != nil && st.ports[k] != nil {
		ip := st.ports[k]
		if ip.target != target || ip.gw != gwBridge {
			return fmt.Errorf("reference: ingress %d/%s is already published to %s on %s (%s)", pub, proto, ip.target, ip.gw, fam)
		}
		ip.refs++
		return nil
	}

	t := &tx{p: p}
	newState := st == nil
	if newState {
		st = &ingressState{gwMasq: map[string]rule{}, gwRefs: map[string]int{}, ports: map[ingressKey]*ingressPort{}}
		err := t.do(ctx, fam, []string{"-t", "nat", "-N", "DOCKER-INGRESS"}, []string{"-t", "nat", "-X", "DOCKER-INGRESS"})
		if err == nil {
			err = t.add(ctx, rule{fam, "nat", "DOCKER-INGRESS", "-A", []string{"-j", "RETURN"}})
		}
		if err == nil {
			err = t.do(ctx, fam, []string{"-N", "DOCKER-INGRESS"}, []string{"-X", "DOCKER-INGRESS"})
		}
		for _, r := range []rule{
			{fam, "", "DOCKER-INGRESS", "-A", []string{"-j", "RETURN"}},
			{fam, "nat", "OUTPUT", "-I", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER-INGRESS"}},
			{fam, "nat", "PREROUTING", "-I", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER-INGRESS"}},
			{fam, "", "FORWARD", "-I", []string{"-j", "DOCKER-INGRESS"}},
		} {
			if err == nil {
				err = t.add(ctx, r)
			}
		}
		if err == nil {
			err = p.moveJump(ctx, fam, "DOCKER-USER")
		}
		if err != nil {
			t.rollback(ctx)
			return err
		}
		st.teardown = append([]undoCmd(nil), t.undo...)
	}

	var masq *rule
	if st.gwRefs[gwBridge] == 0 {
		masq = &rule{fam, "nat", "POSTROUTING", "-I", []string{"-m", "addrtype", "--src-type", "LOCAL", "-o", gwBridge, "-j", "MASQUERADE"}}
		if err := t.add(ctx, *masq); err != nil {
			t.rollback(ctx)
			return err
		}
	}
	var dnat []string
	if fam == IPv6 {
		dnat = append(dnat, "!", "-s", "fe80::/10")
	}
	P := string(proto)
	dnat = append(dnat, "-p", P, "--dport", port(pub), "-j", "DNAT", "--to-destination", dnatTo(target, pub))
	first := len(t.added)
	for _, r := range []rule{
		{fam, "nat", "DOCKER-INGRESS", "-I", dnat},
		{fam, "", "DOCKER-INGRESS", "-I", []string{"-m", "state", "-p", P, "--sport", port(pub), "--state", "ESTABLISHED,RELATED", "-j", "ACCEPT"}},
		{fam, "", "DOCKER-INGRESS", "-I", []string{"-p", P, "--dport", port(pub), "-j", "ACCEPT"}},
	} {
		if err := t.add(ctx, r); err != nil {
			t.rollback(ctx)
			return err
		}
	}

	// Commit.
	p.ingress[fam] = st
	if masq != nil {
		st.gwMasq[gwBridge] = *masq
	}
	st.gwRefs[gwBridge]++
	st.ports[k] = &ingressPort{gw: gwBridge, target: target, refs: 1, rules: append([]rule(nil), t.added[first:]...)}
	if masq != nil && fam == IPv4 {
		return p.writeSysctl(ctx, routeLocalnetPath(gwBridge), true)
	}
	return nil
}

// teardownIngress removes the family's gateway masquerade rules, then its
// jumps, RETURN rules and DOCKER-INGRESS chains (all ports must be gone).
func (p *Programmer) teardownIngress(ctx context.Context, fam Family) error {
	st := p.ingress[fam]
	gws := make([]string, 0, len(st.gwMasq))
	for gw := range st.gwMasq {
		gws = append(gws, gw)
	}
	sort.Strings(gws)
	for _, gw := range gws {
		if err := p.run(ctx, fam, st.gwMasq[gw].delArgs()...); err != nil {
			return err
		}
		delete(st.gwMasq, gw)
		delete(st.gwRefs, gw)
	}
	if err := p.runUndo(ctx, st.teardown, false); err != nil {
		return err
	}
	p.ingress[fam] = nil
	return nil
}

// UnpublishIngress removes one reference of proto/port in each family it
// is published in (IPv4, then IPv6). An empty gwBridge means
// docker_gwbridge; it must be the bridge the port was published on. Only
// the last reference deletes the per-port rules (-D); no command runs for
// the others. The last port on a gateway bridge removes that bridge's
// masquerade rule;
// the last port of a family also removes the FORWARD, nat PREROUTING and
// nat OUTPUT jumps, the RETURN rules and both DOCKER-INGRESS chains (the
// reverse of their creation). route_localnet is left as it is.
func (p *Programmer) UnpublishIngress(ctx context.Context, gwBridge string, proto portmap.Proto, pub uint16) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gwBridge == "" {
		gwBridge = defaultGateway
	}
	k := ingressKey{proto, pub}
	found := false
	for _, fam := range []Family{IPv4, IPv6} {
		st := p.ingress[fam]
		if st == nil || st.ports[k] == nil {
			continue
		}
		ip := st.ports[k]
		if ip.gw != gwBridge {
			return fmt.Errorf("reference: ingress %d/%s is published on %q, not %q", pub, proto, ip.gw, gwBridge)
		}
		found = true
		if ip.refs > 1 {
			ip.refs--
			continue
		}
		if err := p.deleteRules(ctx, ip.rules); err != nil {
			return err
		}
		delete(st.ports, k)
		st.gwRefs[ip.gw]--
		if len(st.ports) == 0 {
			if err := p.teardownIngress(ctx, fam); err != nil {
				return err
			}
			continue
		}
		if st.gwRefs[ip.gw] == 0 {
			if err := p.run(ctx, fam, st.gwMasq[ip.gw].delArgs()...); err != nil {
				return err
			}
			delete(st.gwMasq, ip.gw)
			delete(st.gwRefs, ip.gw)
		}
	}
	if !found {
		return fmt.Errorf("reference: ingress %d/%s is not published", pub, proto)
	}
	return nil
}
