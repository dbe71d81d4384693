package compat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Family is the address family of a view: iptables (IPv4) or ip6tables
// (IPv6).
type Family int

// The two families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Tool returns the family's command name, "iptables" or "ip6tables".
func (f Family) Tool() string {
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// Table names.
const (
	TableFilter   = "filter"
	TableNAT      = "nat"
	TableRaw      = "raw"
	TableMangle   = "mangle"
	TableSecurity = "security"
)

// builtins lists each table's built-in chains in hook order, the order in
// which iptables lists them.
var builtins = map[string][]string{
	TableFilter:   {"INPUT", "FORWARD", "OUTPUT"},
	TableNAT:      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	TableRaw:      {"PREROUTING", "OUTPUT"},
	TableMangle:   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	TableSecurity: {"INPUT", "FORWARD", "OUTPUT"},
}

// TableNames lists the tables iptables knows, in the order iptables-nft
// 1.8.9 saves them (legacy saves the most recently used table first; for
// the tables Docker's rules create, raw, filter and nat, both orders are
// raw, filter, nat).
var TableNames = []string{TableMangle, TableSecurity, TableRaw, TableFilter, TableNAT}

// Counter is a packet and byte count.
type Counter struct {
	Packets, Bytes uint64
}

// Add returns the sum of two counters.
func (c Counter) Add(o Counter) Counter {
	return Counter{c.Packets + o.Packets, c.Bytes + o.Bytes}
}

// Addr is a source or destination match: an address and a mask of the
// same family, the address already masked as the kernel stores it. The
// zero Addr matches every address.
type Addr struct {
	IP   netip.Addr
	Mask netip.Addr
}

// IsZero reports whether a matches every address without being written
// (no -s or -d at all).
func (a Addr) IsZero() bool {
	return !a.IP.IsValid() || (a.IP.IsUnspecified() && a.Mask.IsValid() && a.Mask.IsUnspecified())
}

// Bits returns the prefix length of the mask, or -1 when the mask is not
// a contiguous run of ones.
func (a Addr) Bits() int {
	if !a.Mask.IsValid() {
		return 0
	}
	b := a.Mask.AsSlice()
	n := 0
	for i, x := range b {
		if x == 0xff {
			n += 8
			continue
		}
		ones := 0
		for x&0x80 != 0 {
			ones++
			x <<= 1
		}
		if x != 0 {
			return -1
		}
		n += ones
		for _, y := range b[i+1:] {
			if y != 0 {
				return -1
			}
		}
		return n
	}
	return n
}

// maskOf returns the mask of a prefix length.
func maskOf(bits, total int) netip.Addr {
	b := make([]byte, total/8)
	for i := range b {
		switch {
		case bits >= 8:
			b[i] = 0xff
			bits -= 8
		case bits > 0:
			b[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// ParseAddr parses an address match the way iptables writes it: ADDR,
// ADDR/LEN or ADDR/MASK (IPv4 dotted or IPv6 address form). A bare
// address is a host (/32 or /128). The address is masked.
func ParseAddr(f Family, s string) (Addr, error) {
	total := 32
	if f == IPv6 {
		total = 128
	}
	ip, m, hasMask := strings.Cut(s, "/")
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is4() != (f == IPv4) {
		return Addr{}, fmt.Errorf("host/network `%s' not found", ip)
	}
	mask := maskOf(total, total)
	if hasMask {
		if n, err := parseUint(m, uint64(total)); err == nil {
			mask = maskOf(int(n), total)
		} else if ma, err := netip.ParseAddr(m); err == nil && ma.Zone() == "" && ma.Is4() == (f == IPv4) {
			mask = ma
		} else {
			return Addr{}, fmt.Errorf("invalid mask `%s' specified", m)
		}
	}
	ab, mb := a.AsSlice(), mask.AsSlice()
	for i := range ab {
		ab[i] &= mb[i]
	}
	a, _ = netip.AddrFromSlice(ab)
	return Addr{IP: a, Mask: mask}, nil
}

// Match is one -m match of a rule: its name and its options in the form
// iptables-save writes them (e.g. "tcp", ["--dport", "8088"]; "conntrack",
// ["!", "--ctstate", "NEW"]). String values are kept unquoted.
type Match struct {
	Name string
	Args []string
}

// Rule is one iptables rule. Options follow iptables' own model (struct
// ipt_entry plus matches and a target) so that every listing format can
// be printed from it.
type Rule struct {
	Src, Dst       Addr
	SrcInv, DstInv bool
	// In and Out are interface names ("" for any; a trailing + is a
	// wildcard).
	In, Out       string
	InInv, OutInv bool
	// Proto is the protocol number, 0 for all.
	Proto    uint8
	ProtoInv bool
	// Frag is -f (IPv4 only), FragInv "! -f".
	Frag, FragInv bool
	Matches       []Match
	// Target is the -j or -g target: a standard verdict, a chain name, an
	// extension such as DNAT, or "" for a rule without one.
	Target string
	// TargetArgs are the target's options as iptables-save writes them.
	TargetArgs []string
	// Goto is true for -g.
	Goto bool
	// Counter is the rule's packet and byte count.
	Counter Counter
	// Source, for rules that compat rebuilt from dnft's state, says which
	// of dnft's kernel counters Counter comes from.
	Source *Source
}

// Chain is a built-in chain (Policy set) or a user chain (Policy "").
type Chain struct {
	Name string
	// Policy is ACCEPT or DROP for built-in chains, "" for user chains.
	Policy string
	// PolicyCounter counts the packets the policy decided.
	PolicyCounter Counter
	Rules         []*Rule
}

// Builtin reports whether the chain is a built-in chain.
func (c *Chain) Builtin() bool { return c.Policy != "" }

// Table is one iptables table of one family.
type Table struct {
	Name   string
	Family Family
	// Present is whether the table exists, i.e. whether iptables-save
	// without -t lists it. Listing a table that is not present shows its
	// built-in chains with policy ACCEPT, as iptables does.
	Present bool
	chains  map[string]*Chain
}

// Errors of table operations; the CLI turns them into iptables' messages.
var (
	// ErrNoChain is returned for a chain that does not exist.
	ErrNoChain = errors.New("no chain/target/match by that name")
	// ErrChainExists is returned by NewChain for an existing chain.
	ErrChainExists = errors.New("chain already exists")
	// ErrNoTable is returned for a table iptables does not know.
	ErrNoTable = errors.New("table does not exist")
	// ErrNoRule is returned by Delete when no rule matches.
	ErrNoRule = errors.New("bad rule (does a matching rule exist in that chain?)")
)

// NewTable returns a table with its built-in chains (policy ACCEPT, zero
// counters) and no user chains. name must be a known table.
func NewTable(f Family, name string) *Table {
	t := &Table{Name: name, Family: f, chains: map[string]*Chain{}}
	for _, c := range builtins[name] {
		t.chains[c] = &Chain{Name: c, Policy: "ACCEPT"}
	}
	return t
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name string) *Chain { return t.chains[name] }

// NewChain adds a user chain (-N).
func (t *Table) NewChain(name string) error {
	if _, ok := t.chains[name]; ok {
		return fmt.Errorf("%s -N %s: %w", t.Name, name, ErrChainExists)
	}
	t.chains[name] = &Chain{Name: name}
	return nil
}

// Append adds a rule at the end of a chain (-A).
func (t *Table) Append(chain string, r *Rule) error {
	c := t.chains[chain]
	if c == nil {
		return fmt.Errorf("%s -A %s: %w", t.Name, chain, ErrNoChain)
	}
	c.Rules = append(c.Rules, r)
	return nil
}

// Insert adds a rule at 1-based position pos of a chain (-I CHAIN pos);
// pos 1 is the top.
func (t *Table) Insert(chain string, pos int, r *Rule) error {
	c := t.chains[chain]
	if c == nil {
		return fmt.Errorf("%s -I %s: %w", t.Name, chain, ErrNoChain)
	}
	if pos < 1 || pos > len(c.Rules)+1 {
		return fmt.Errorf("%s -I %s %d: index of insertion too big", t.Name, chain, pos)
	}
	c.Rules = slices.Insert(c.Rules, pos-1, r)
	return nil
}

// Delete removes the first rule of a chain with the same specification as
// r (-D CHAIN rule-spec); counters are not compared.
func (t *Table) Delete(chain string, r *Rule) error {
	c := t.chains[chain]
	if c == nil {
		return fmt.Errorf("%s -D %s: %w", t.Name, chain, ErrNoChain)
	}
	want := r.Spec(t.Family, false, nil)
	for i, o := range c.Rules {
		if o.Spec(t.Family, false, nil) == want {
			c.Rules = slices.Delete(c.Rules, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("%s -D %s%s: %w", t.Name, chain, want, ErrNoRule)
}

// Chains returns the chains in the order iptables lists them: built-in
// chains in hook order, then user chains sorted bytewise by name.
func (t *Table) Chains() []*Chain {
	var out, user []*Chain
	for _, name := range builtins[t.Name] {
		if c := t.chains[name]; c != nil {
			out = append(out, c)
		}
	}
	for _, c := range t.chains {
		if !c.Builtin() {
			user = append(user, c)
		}
	}
	slices.SortFunc(user, func(a, b *Chain) int { return strings.Compare(a.Name, b.Name) })
	return append(out, user...)
}

// References returns the number of rules of the table that jump or go to
// the named chain.
func (t *Table) References(name string) int {
	n := 0
	for _, c := range t.chains {
		for _, r := range c.Rules {
			if r.Target == name {
				n++
			}
		}
	}
	return n
}

// Ruleset is every table of one family.
type Ruleset struct {
	Family Family
	// SaveOrder is the order in which iptables-save without -t lists the
	// present tables; tables it does not name follow in [TableNames]
	// order. (iptables-legacy lists the most recently created table
	// first.)
	SaveOrder []string
	tables    map[string]*Table
}

// NewRuleset returns a ruleset in which every known table exists with
// its built-in chains only, none of them present.
func NewRuleset(f Family) *Ruleset {
	rs := &Ruleset{Family: f, tables: map[string]*Table{}}
	for name := range builtins {
		rs.tables[name] = NewTable(f, name)
	}
	return rs
}

// Table returns the named table, or nil for a table iptables does not
// know.
func (rs *Ruleset) Table(name string) *Table { return rs.tables[name] }
