package compat

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ListOptions are the flags of `iptables -L` (FORMAT.md §1).
type ListOptions struct {
	// Chain limits the listing to one chain ("" for all).
	Chain string
	// Rule, with Chain, prints only that rule's line (1-based; 0 for all).
	Rule int
	// Numeric is -n: no name lookups, protocols as numbers.
	Numeric bool
	// Verbose is -v: counters and interfaces.
	Verbose bool
	// Exact is -x: counters without K/M/G/T abbreviation.
	Exact bool
	// LineNumbers is --line-numbers.
	LineNumbers bool
}

// FormatNum is xtables_print_num: a counter as iptables -L prints it,
// with its trailing space. table selects the padded column form (rule
// lines) over the bare form (chain headers); exact is -x.
func FormatNum(n uint64, exact, table bool) string {
	if exact {
		if table {
			return fmt.Sprintf("%8d ", n)
		}
		return fmt.Sprintf("%d ", n)
	}
	if n <= 99999 {
		if table {
			return fmt.Sprintf("%5d ", n)
		}
		return fmt.Sprintf("%d ", n)
	}
	for _, suf := range "KMGT" {
		n = (n + 500) / 1000 // wraps around like uint64 arithmetic in C
		if n <= 9999 || suf == 'T' {
			if table {
				return fmt.Sprintf("%4d%c ", n, suf)
			}
			return fmt.Sprintf("%d%c ", n, suf)
		}
	}
	panic("unreachable")
}

// List writes the table as `iptables -t TABLE -L` with opt prints it. It
// returns an error wrapping [ErrNoChain] (and writes nothing) when
// opt.Chain does not exist.
func (t *Table) List(w io.Writer, opt ListOptions, names *Names) error {
	chains := t.Chains()
	if opt.Chain != "" {
		c := t.Chain(opt.Chain)
		if c == nil {
			return fmt.Errorf("list %s %s: %w", t.Name, opt.Chain, ErrNoChain)
		}
		chains = []*Chain{c}
	}
	bw := bufio.NewWriter(w)
	for i, c := range chains {
		if opt.Chain != "" && opt.Rule > 0 {
			if opt.Rule <= len(c.Rules) {
				bw.WriteString(t.ruleLine(opt.Rule, c.Rules[opt.Rule-1], opt, names))
			}
			break
		}
		if i > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString(t.header(c, opt))
		for n, r := range c.Rules {
			bw.WriteString(t.ruleLine(n+1, r, opt, names))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("list %s: %w", t.Name, err)
	}
	return nil
}

// header is print_header: the chain line and the column titles.
func (t *Table) header(c *Chain, opt ListOptions) string {
	var b strings.Builder
	b.WriteString("Chain " + c.Name)
	if c.Builtin() {
		b.WriteString(" (policy " + c.Policy)
		if opt.Verbose {
			b.WriteString(" " + FormatNum(c.PolicyCounter.Packets, opt.Exact, false) + "packets, " +
				FormatNum(c.PolicyCounter.Bytes, opt.Exact, false) + "bytes")
		}
		b.WriteString(")\n")
	} else {
		fmt.Fprintf(&b, " (%d references)\n", t.References(c.Name))
	}
	if opt.LineNumbers {
		fmt.Fprintf(&b, "%-4s ", "num")
	}
	if opt.Verbose {
		if opt.Exact {
			fmt.Fprintf(&b, "%8s %10s ", "pkts", "bytes")
		} else {
			fmt.Fprintf(&b, "%5s %5s ", "pkts", "bytes")
		}
	}
	fmt.Fprintf(&b, "%-9s ", "target")
	b.WriteString(" prot opt")
	if opt.Verbose {
		fmt.Fprintf(&b, " %-6s %-6s ", "in", "out")
	}
	fmt.Fprintf(&b, " %-19s  %-19s \n", "source", "destination")
	return b.String()
}

// ruleLine is print_firewall: one rule line of -L.
func (t *Table) ruleLine(num int, r *Rule, opt ListOptions, names *Names) string {
	var b strings.Builder
	b.Grow(160)
	if opt.LineNumbers {
		pad(&b, strconv.Itoa(num), 4)
	}
	if opt.Verbose {
		b.WriteString(FormatNum(r.Counter.Packets, opt.Exact, true))
		b.WriteString(FormatNum(r.Counter.Bytes, opt.Exact, true))
	}
	pad(&b, r.Target, 9)
	b.WriteByte(bang(r.ProtoInv, ' '))
	if opt.Numeric {
		pad(&b, strconv.Itoa(int(r.Proto)), 4)
	} else {
		pad(&b, listProto(r.Proto, names), 4)
	}
	switch {
	case t.Family == IPv6:
		b.WriteString("-- ")
	default:
		b.WriteByte(bang(r.FragInv, '-'))
		if r.Frag {
			b.WriteByte('f')
		} else {
			b.WriteByte('-')
		}
		b.WriteByte(' ')
	}
	if opt.Verbose {
		anyName := "any"
		if opt.Numeric {
			anyName = "*"
		}
		iface := func(name string, inv bool) {
			if name == "" {
				name = anyName
			}
			if inv {
				b.WriteByte('!')
				pad(&b, name, 5)
				return
			}
			pad(&b, name, 6)
		}
		b.WriteByte(' ')
		iface(r.In, r.InInv)
		iface(r.Out, r.OutInv)
	}
	b.WriteByte(bang(r.SrcInv, ' '))
	pad(&b, addrText(t.Family, r.Src, opt.Numeric, names), 19)
	b.WriteByte(bang(r.DstInv, ' '))
	pad(&b, addrText(t.Family, r.Dst, opt.Numeric, names), 19)
	if r.Goto {
		b.WriteString("[goto] ")
	}
	for _, m := range r.Matches {
		b.WriteString(matchText(t.Family, r, m, opt.Numeric, names))
	}
	b.WriteString(targetText(t.Family, r, opt.Numeric))
	b.WriteByte('\n')
	return b.String()
}

// pad writes s left-aligned in width columns and a space: printf's
// "%-<width>s " (a longer s is not cut).
func pad(b *strings.Builder, s string, width int) {
	b.WriteString(s)
	for i := len(s); i < width; i++ {
		b.WriteByte(' ')
	}
	b.WriteByte(' ')
}

func bang(inv bool, otherwise byte) byte {
	if inv {
		return '!'
	}
	return otherwise
}

// listProto is proto_to_name for the prot column without -n.
func listProto(p uint8, names *Names) string {
	for _, c := range chainProtos {
		if c.num == p {
			return c.name
		}
	}
	if s, ok := names.Protocol(p); ok {
		return s
	}
	return strconv.Itoa(int(p))
}

// addrText is ipv4_addr_to_string / ipv6_addr_to_string.
func addrText(f Family, a Addr, numeric bool, names *Names) string {
	if !a.IP.IsValid() {
		if f == IPv6 {
			a = Addr{IP: netip.IPv6Unspecified(), Mask: netip.IPv6Unspecified()}
		} else {
			a = Addr{IP: netip.IPv4Unspecified(), Mask: netip.IPv4Unspecified()}
		}
	}
	if !numeric {
		if f == IPv4 && a.Bits() == 0 {
			return "anywhere"
		}
		if f == IPv6 && a.IP.IsUnspecified() {
			return "anywhere"
		}
	}
	return hostText(a.IP, numeric, names) + maskText(a)
}

// hostText is an address as getnameinfo prints it: its name from the
// hosts file, else numeric.
func hostText(ip netip.Addr, numeric bool, names *Names) string {
	if !numeric {
		if s, ok := names.Host(ip); ok {
			return s
		}
	}
	return ntop(ip)
}

// maskText is xtables_ipmask_to_numeric / xtables_ip6mask_to_numeric:
// nothing for a host mask, /N for a prefix, /MASK otherwise.
func maskText(a Addr) string {
	total := a.IP.BitLen()
	switch bits := a.Bits(); {
	case bits == total:
		return ""
	case bits < 0:
		return "/" + ntop(a.Mask)
	default:
		return "/" + strconv.Itoa(bits)
	}
}

// ntop is inet_ntop as glibc writes addresses. For IPv6 it differs from
// netip's RFC 5952 form only for IPv4-compatible addresses (::a.b.c.d).
func ntop(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	b := ip.As16()
	var w [8]uint16
	for i := range w {
		w[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	// the longest run of zero words (first one on ties), at least 2 long
	best, bestLen := -1, 0
	for i := 0; i < 8; {
		if w[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && w[j] == 0 {
			j++
		}
		if j-i > bestLen {
			best, bestLen = i, j-i
		}
		i = j
	}
	if bestLen < 2 {
		best = -1
	}
	var s strings.Builder
	for i := 0; i < 8; i++ {
		if best >= 0 && i >= best && i < best+bestLen {
			if i == best {
				s.WriteByte(':')
			}
			continue
		}
		if i != 0 {
			s.WriteByte(':')
		}
		if i == 6 && best == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff)) {
			fmt.Fprintf(&s, "%d.%d.%d.%d", b[12], b[13], b[14], b[15])
			break
		}
		fmt.Fprintf(&s, "%x", w[i])
	}
	if best >= 0 && best+bestLen == 8 {
		s.WriteByte(':')
	}
	return s.String()
}
