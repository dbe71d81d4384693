package compat

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file prints `iptables -S` and iptables-save output (FORMAT.md §9).

// Variant is the iptables implementation whose output compat imitates
// where the two differ: iptables-save's header and table order, and the
// error message for a missing chain.
type Variant int

// The variants of iptables 1.8.9.
const (
	// NFT is iptables-nft ("iptables v1.8.9 (nf_tables)").
	NFT Variant = iota
	// Legacy is iptables-legacy ("iptables v1.8.9 (legacy)").
	Legacy
)

// Version is the iptables version compat imitates.
const Version = "1.8.9"

// String returns "nft" or "legacy".
func (v Variant) String() string {
	if v == Legacy {
		return "legacy"
	}
	return "nft"
}

// ProgramVersion is what the variant's -V prints after the program name:
// "v1.8.9 (nf_tables)" or "v1.8.9 (legacy)".
func (v Variant) ProgramVersion() string {
	if v == Legacy {
		return "v" + Version + " (legacy)"
	}
	return "v" + Version + " (nf_tables)"
}

// saveQuote is xtables_save_string: a value as iptables-save writes it,
// double-quoted (with \", \\ and \' escaped) unless it is a non-empty
// run of [A-Za-z0-9_-].
func saveQuote(v string) string {
	plain := v != ""
	for i := 0; i < len(v) && plain; i++ {
		c := v[i]
		plain = c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if plain {
		return v
	}
	r := strings.NewReplacer(`"`, `\"`, `\`, `\\`, `'`, `\'`)
	return `"` + r.Replace(v) + `"`
}

// quotedOpts are the options whose value iptables-save writes with
// xtables_save_string.
var quotedOpts = map[string]bool{"--comment": true, "--log-prefix": true}

func writeArgs(b *strings.Builder, args []string) {
	for i, a := range args {
		b.WriteByte(' ')
		if i > 0 && quotedOpts[args[i-1]] {
			b.WriteString(saveQuote(a))
		} else {
			b.WriteString(a)
		}
	}
}

// saveAddr is print_ip: " [!] -s ADDR/LEN" (always with the length).
func saveAddr(b *strings.Builder, flag string, a Addr, inv bool) {
	if a.IsZero() && !inv {
		return
	}
	if !a.IP.IsValid() {
		return
	}
	if inv {
		b.WriteString(" !")
	}
	b.WriteString(" " + flag + " " + ntop(a.IP))
	if bits := a.Bits(); bits >= 0 {
		b.WriteString("/" + strconv.Itoa(bits))
	} else {
		b.WriteString("/" + ntop(a.Mask))
	}
}

// Spec returns the rule as -S prints it after "-A CHAIN": options in
// iptables' order (-s, -d, -i, -o, -p, -f, matches, counters, target).
// With counters it includes " -c PKTS BYTES" before the target, as -S -v
// does. names gives protocol names (nil: iptables' built-in names).
func (r *Rule) Spec(f Family, counters bool, names *Names) string {
	var b strings.Builder
	saveAddr(&b, "-s", r.Src, r.SrcInv)
	saveAddr(&b, "-d", r.Dst, r.DstInv)
	for _, i := range []struct {
		flag, name string
		inv        bool
	}{{"-i", r.In, r.InInv}, {"-o", r.Out, r.OutInv}} {
		if i.name == "" {
			continue
		}
		if i.inv {
			b.WriteString(" !")
		}
		b.WriteString(" " + i.flag + " " + i.name)
	}
	if r.Proto != 0 {
		if r.ProtoInv {
			b.WriteString(" !")
		}
		b.WriteString(" -p " + saveProto(r.Proto, names))
	}
	if r.Frag && f == IPv4 {
		if r.FragInv {
			b.WriteString(" !")
		}
		b.WriteString(" -f")
	}
	for _, m := range r.Matches {
		b.WriteString(" -m " + m.Name)
		writeArgs(&b, m.Args)
	}
	if counters {
		fmt.Fprintf(&b, " -c %d %d", r.Counter.Packets, r.Counter.Bytes)
	}
	if r.Target != "" {
		if r.Goto {
			b.WriteString(" -g " + r.Target)
		} else {
			b.WriteString(" -j " + r.Target)
		}
		writeArgs(&b, r.TargetArgs)
	}
	return b.String()
}

// saveProto is print_proto: the protocols-file name, else iptables'
// built-in name, else the number.
func saveProto(p uint8, names *Names) string {
	if s, ok := names.Protocol(p); ok {
		return s
	}
	for _, c := range chainProtos {
		if c.num == p {
			return c.name
		}
	}
	return strconv.Itoa(int(p))
}

// ListRules writes the table as `iptables -t TABLE -S [CHAIN [RULE]]`
// prints it; counters is -v. It returns an error wrapping [ErrNoChain]
// (and writes nothing) when chain does not exist.
func (t *Table) ListRules(w io.Writer, chain string, rule int, counters bool, names *Names) error {
	chains := t.Chains()
	if chain != "" {
		c := t.Chain(chain)
		if c == nil {
			return fmt.Errorf("list rules %s %s: %w", t.Name, chain, ErrNoChain)
		}
		chains = []*Chain{c}
	}
	bw := bufio.NewWriter(w)
	if rule > 0 {
		if c := chains[0]; rule <= len(c.Rules) {
			bw.WriteString("-A " + c.Name + c.Rules[rule-1].Spec(t.Family, counters, names) + "\n")
		}
	} else {
		for _, c := range chains {
			if c.Builtin() {
				bw.WriteString("-P " + c.Name + " " + c.Policy)
				if counters {
					fmt.Fprintf(bw, " -c %d %d", c.PolicyCounter.Packets, c.PolicyCounter.Bytes)
				}
				bw.WriteString("\n")
			} else {
				bw.WriteString("-N " + c.Name + "\n")
			}
		}
		for _, c := range chains {
			for _, r := range c.Rules {
				bw.WriteString("-A " + c.Name + r.Spec(t.Family, counters, names) + "\n")
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("list rules %s: %w", t.Name, err)
	}
	return nil
}

// SaveOptions are the flags of iptables-save.
type SaveOptions struct {
	// Table is -t: only this table ("" for every present table).
	Table string
	// Counters is -c.
	Counters bool
	// Variant selects the header and the table order.
	Variant Variant
	// Now is the time written in the header and footer comments.
	Now time.Time
	// Names gives protocol names (nil: iptables' built-in names).
	Names *Names
}

// CTime formats a time as C's ctime(3) does, without the newline.
func CTime(t time.Time) string { return t.Format("Mon Jan _2 15:04:05 2006") }

// Save writes the ruleset as iptables-save (or ip6tables-save) prints it.
// With opt.Table it writes that table even when it is not present (its
// built-in chains), as iptables-nft does; without, every present table in
// the variant's order. It returns an error for an unknown table.
func (rs *Ruleset) Save(w io.Writer, opt SaveOptions) error {
	var tables []*Table
	if opt.Table != "" {
		t := rs.Table(opt.Table)
		if t == nil {
			return fmt.Errorf("save: table %q: %w", opt.Table, ErrNoTable)
		}
		tables = []*Table{t}
	} else {
		order := slices.Clone(rs.SaveOrder)
		for _, name := range TableNames {
			if !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
		for _, name := range order {
			if t := rs.Table(name); t != nil && t.Present {
				tables = append(tables, t)
			}
		}
	}
	prog := rs.Family.Tool() + "-save v" + Version
	if opt.Variant == NFT {
		prog += " (nf_tables)"
	}
	now := CTime(opt.Now)
	bw := bufio.NewWriter(w)
	for _, t := range tables {
		fmt.Fprintf(bw, "# Generated by %s on %s\n*%s\n", prog, now, t.Name)
		for _, c := range t.Chains() {
			pol := c.Policy
			if pol == "" {
				pol = "-"
			}
			fmt.Fprintf(bw, ":%s %s [%d:%d]\n", c.Name, pol, c.PolicyCounter.Packets, c.PolicyCounter.Bytes)
		}
		for _, c := range t.Chains() {
			for _, r := range c.Rules {
				if opt.Counters {
					fmt.Fprintf(bw, "[%d:%d] ", r.Counter.Packets, r.Counter.Bytes)
				}
				bw.WriteString("-A " + c.Name + r.Spec(t.Family, false, opt.Names) + "\n")
			}
		}
		fmt.Fprintf(bw, "COMMIT\n# Completed on %s\n", now)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}
