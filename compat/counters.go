package compat

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/ingress"
	"github.com/dnft/dnft/nft"
	"github.com/dnft/dnft/portmap"
)

// Ref names one of dnft's kernel counters: a rule (by chain and comment)
// or a set element (by set and key).
type Ref struct {
	// Chain and Comment name the rules of nft chain Chain whose comment is
	// Comment (their counters are summed). With Next, it is the rule right
	// after the first of them instead.
	Chain, Comment string
	Next           bool
	// Set and Key name an element: Key is the element's key as [KeyText]
	// writes it, e.g. "172.18.0.5 . 6 . 80".
	Set, Key string
}

// String describes the reference, e.g. "rule DOCKER__br0/RELATED,ESTABLISHED"
// or "element published[172.18.0.5 . 6 . 80]".
func (r Ref) String() string {
	switch {
	case r.Set != "":
		return "element " + r.Set + "[" + r.Key + "]"
	case r.Next:
		return "rule after " + r.Chain + "/" + r.Comment
	}
	return "rule " + r.Chain + "/" + r.Comment
}

// Source says where the counter of a rebuilt rule comes from: the sum of
// Plus minus the sum of Minus (never below zero), scaled by Share if set.
type Source struct {
	Plus, Minus []Ref
	// Share splits the count between two iptables rules that one kernel
	// counter stands for, in the ratio of two other counters (see
	// [Share]).
	Share *Share
	// Shared means that several iptables rules count the packets of the
	// same kernel counter (one nft rule or element stands for all of
	// them): the first of them in chain order gets the count and the
	// others 0, as iptables' first match would.
	Shared bool
}

// String describes the source, e.g. "element published[...]" or
// "rule A/x + rule B/y - rule C/z".
func (s *Source) String() string {
	if s == nil {
		return "none (0)"
	}
	var parts []string
	for _, r := range s.Plus {
		parts = append(parts, r.String())
	}
	out := strings.Join(parts, " + ")
	for _, r := range s.Minus {
		out += " - " + r.String()
	}
	if s.Share != nil {
		var p, r []string
		for _, x := range s.Share.Part {
			p = append(p, x.String())
		}
		for _, x := range s.Share.Rest {
			r = append(r, x.String())
		}
		if s.Share.Complement {
			p, r = r, p
		}
		out = "(" + out + ") × " + strings.Join(p, " + ") + " / (" + strings.Join(append(p, r...), " + ") + ")"
	}
	if s.Shared {
		out += " (shared: first rule only)"
	}
	return out
}

// key identifies the kernel counters a source reads.
func (s *Source) key() string {
	var b strings.Builder
	for i, refs := range [][]Ref{s.Plus, s.Minus} {
		if i > 0 {
			b.WriteString("\x01")
		}
		for _, r := range refs {
			b.WriteString(r.Chain)
			b.WriteByte(0)
			b.WriteString(r.Comment)
			b.WriteByte(0)
			b.WriteString(r.Set)
			b.WriteByte(0)
			b.WriteString(r.Key)
			if r.Next {
				b.WriteString("\x00next")
			}
			b.WriteByte(0)
		}
	}
	return b.String()
}

// Share is the part of a count that goes to one of two iptables rules
// when the kernel counts them together: count × Part / (Part + Rest),
// rounded down, or with Complement the rest of the count (so that the two
// parts always add up to the count). When Part and Rest are both zero the
// whole count is the part.
type Share struct {
	Part, Rest []Ref
	Complement bool
}

// scale returns the share of n given the two ratio counters.
func scale(n, part, rest uint64, complement bool) uint64 {
	v := n
	if part+rest != 0 {
		hi, lo := bits.Mul64(n, part)
		if hi < part+rest {
			v, _ = bits.Div64(hi, lo, part+rest)
		}
	}
	if complement {
		return n - v
	}
	return v
}

// elementFields are the key fields of the counted sets and maps whose
// elements compat reads counters from.
func elementFields(f nft.Family, set string) []nft.Field {
	switch set {
	case chains.SetPublished:
		return chains.PublishedSet(f).Key
	case portmap.MapDNATHost:
		return portmap.DNATHostMap(f).Key
	case portmap.MapDNATAny:
		return portmap.DNATAnyMap(f).Key
	case portmap.SetHairpin:
		return []nft.Field{nft.FieldSaddr, nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}
	case portmap.SetLoopbackPorts:
		return []nft.Field{nft.FieldDaddr, nft.FieldL4Proto, nft.FieldDport}
	case ingress.MapDNAT:
		return ingress.DNATMap(f).Key
	case ingress.SetPorts:
		return ingress.PortsSet(f).Key
	case ingress.SetReplies:
		return ingress.RepliesSet(f).Key
	case chains.SetNATReturn, chains.SetIsolationBridges:
		return []nft.Field{nft.FieldIIFName}
	}
	return nil
}

// KeyText writes element key values as compat's [Ref] keys do: values
// joined by " . ", names and addresses as text, protocols and ports as
// numbers.
func KeyText(fields []nft.Field, vals []nft.Value) string {
	b := make([]byte, 0, 48)
	for i, v := range vals {
		if i > 0 {
			b = append(b, " . "...)
		}
		var fl nft.Field
		if i < len(fields) {
			fl = fields[i]
		}
		switch fl {
		case nft.FieldIIFName, nft.FieldOIFName:
			b = append(b, v.Name...)
		case nft.FieldSaddr, nft.FieldDaddr:
			b = v.Addr.AppendTo(b)
		case nft.FieldL4Proto:
			b = strconv.AppendUint(b, uint64(v.Proto), 10)
		default:
			b = strconv.AppendUint(b, uint64(v.Port), 10)
		}
	}
	return string(b)
}

// key builds the key text of an element from address, protocol and port
// parts.
func key(parts ...any) string {
	b := make([]byte, 0, 48)
	for i, p := range parts {
		if i > 0 {
			b = append(b, " . "...)
		}
		switch p := p.(type) {
		case netip.Addr:
			b = p.Unmap().AppendTo(b)
		case uint8:
			b = strconv.AppendUint(b, uint64(p), 10)
		case uint16:
			b = strconv.AppendUint(b, uint64(p), 10)
		case string:
			b = append(b, p...)
		default:
			b = fmt.Append(b, p)
		}
	}
	return string(b)
}

// Kernel is dnft's tables as read back from the kernel (one per family
// that exists), the source of the view's counters. It indexes the tables
// on first use and is not safe for concurrent use.
type Kernel struct {
	Tables map[Family]nft.TableState

	// only, when set, are the tables whose counters were read.
	only map[string]bool

	index map[Family]*kernelIndex
}

type kernelIndex struct {
	rules map[string][]nft.RuleState
	elems map[string]map[string]Counter
}

func nftFamily(f Family) nft.Family {
	if f == IPv6 {
		return nft.IPv6
	}
	return nft.IPv4
}

func (k *Kernel) indexOf(f Family) *kernelIndex {
	if k.index == nil {
		k.index = map[Family]*kernelIndex{}
	}
	if ix := k.index[f]; ix != nil {
		return ix
	}
	ix := &kernelIndex{rules: map[string][]nft.RuleState{}, elems: map[string]map[string]Counter{}}
	ts := k.Tables[f]
	for _, c := range ts.Chains {
		ix.rules[c.Name] = c.Rules
	}
	for _, s := range ts.Sets {
		fields := elementFields(nftFamily(f), s.Name)
		if fields == nil {
			continue
		}
		m := map[string]Counter{}
		for _, e := range s.Elements {
			vals, err := nft.DecodeKey(nftFamily(f), fields, e.Key)
			if err != nil {
				continue
			}
			kt := KeyText(fields, vals)
			m[kt] = m[kt].Add(Counter{e.Packets, e.Bytes})
		}
		ix.elems[s.Name] = m
	}
	k.index[f] = ix
	return ix
}

// Counter returns the value of one kernel counter (zero when it does not
// exist).
func (k *Kernel) Counter(f Family, r Ref) Counter {
	if k == nil {
		return Counter{}
	}
	ix := k.indexOf(f)
	if r.Set != "" {
		return ix.elems[r.Set][r.Key]
	}
	var c Counter
	rules := ix.rules[r.Chain]
	for i, rs := range rules {
		if rs.Comment != r.Comment {
			continue
		}
		if r.Next {
			if i+1 < len(rules) {
				return Counter{rules[i+1].Packets, rules[i+1].Bytes}
			}
			return Counter{}
		}
		c = c.Add(Counter{rs.Packets, rs.Bytes})
	}
	return c
}

// Value computes a source's counter (not taking Shared into account).
func (k *Kernel) Value(f Family, s *Source) Counter {
	if s == nil {
		return Counter{}
	}
	var plus, minus Counter
	for _, r := range s.Plus {
		plus = plus.Add(k.Counter(f, r))
	}
	for _, r := range s.Minus {
		minus = minus.Add(k.Counter(f, r))
	}
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	c := Counter{sub(plus.Packets, minus.Packets), sub(plus.Bytes, minus.Bytes)}
	if sh := s.Share; sh != nil {
		var part, rest Counter
		for _, r := range sh.Part {
			part = part.Add(k.Counter(f, r))
		}
		for _, r := range sh.Rest {
			rest = rest.Add(k.Counter(f, r))
		}
		c = Counter{scale(c.Packets, part.Packets, rest.Packets, sh.Complement), scale(c.Bytes, part.Bytes, rest.Bytes, sh.Complement)}
	}
	return c
}

// policyChains maps each built-in chain of the view to dnft's base chain,
// whose last rule (chains.CommentPolicy) counts what its policy decides.
var policyChains = map[string]map[string]string{
	TableFilter: {"INPUT": chains.FilterInput, "FORWARD": chains.FilterForward, "OUTPUT": chains.FilterOutput},
	TableNAT:    {"PREROUTING": chains.NATPrerouting, "INPUT": chains.NATInput, "OUTPUT": chains.NATOutput, "POSTROUTING": chains.NATPostrouting},
	TableRaw:    {"PREROUTING": chains.RawPrerouting, "OUTPUT": chains.RawOutput},
}

// ApplyCounters sets the counter of every rule of the ruleset that has a
// Source from the kernel's counters, and the policy counters of the
// built-in chains. Rules are visited table by table in listing order, so
// that of several rules sharing a Source the first in its chain gets the
// count.
func ApplyCounters(rs *Ruleset, k *Kernel) {
	for _, name := range TableNames {
		if k != nil && k.only != nil && !k.only[name] {
			continue
		}
		t := rs.Table(name)
		for chain, nftChain := range policyChains[name] {
			if c := t.Chain(chain); c != nil {
				c.PolicyCounter = k.Counter(rs.Family, Ref{Chain: nftChain, Comment: chains.CommentPolicy})
			}
		}
		seen := map[string]bool{}
		for _, c := range t.Chains() {
			for _, r := range c.Rules {
				if r.Source == nil {
					continue
				}
				if r.Source.Shared {
					id := c.Name + "\x00" + r.Source.key()
					if seen[id] {
						r.Counter = Counter{}
						continue
					}
					seen[id] = true
				}
				r.Counter = k.Value(rs.Family, r.Source)
			}
		}
	}
}
