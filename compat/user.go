package compat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dnft/dnft/nft"
)

// This file translates operators' rules (DOCKER-USER) between iptables'
// syntax ([Rule]) and dnft's native nftables form ([nft.Rule], built
// from package nft's filter matches): [UserRuleNFT] for rules typed as
// iptables commands or restored from a file, [UserRuleIPT] to show what
// the kernel holds in iptables' syntax. The subset is what Docker's
// documentation and common DOCKER-USER scripts use:
//
//	[!] -s/-d ADDR[/MASK]      [!] -i/-o NAME[+]        [!] -p tcp|udp|sctp|icmp|NUM
//	-m tcp|udp|sctp [!] --sport/--dport PORT[:PORT]
//	-m multiport [!] --sports/--dports PORT[:PORT],...
//	-m conntrack [!] --ctstate LIST, [!] --ctorigsrc/--ctorigdst ADDR[/MASK],
//	             [!] --ctorigsrcport/--ctorigdstport PORT[:PORT]
//	-m iprange [!] --src-range/--dst-range A-B
//	-m icmp [!] --icmp-type TYPE[/CODE]   (ip6tables: -m icmp6 --icmpv6-type)
//	-m comment --comment TEXT
//	-j ACCEPT|DROP|RETURN, -j REJECT [--reject-with TYPE],
//	-j LOG [--log-prefix P] [--log-level L] [--log-tcp-sequence ...]
//
// A comment is kept as the nft rule's comment and listed after the other
// matches, wherever it was given (iptables lists it where it was given).

// UnsupportedError is a rule option that has no native form in dnft's
// DOCKER-USER: nothing is written. Option names it as typed ("-m mac",
// "--tcp-flags", "-j MARK").
type UnsupportedError struct {
	Option string
	Reason string
}

// Error names the option and says why.
func (e *UnsupportedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s is not supported in DOCKER-USER rules", e.Option)
	}
	return fmt.Sprintf("%s: %s", e.Option, e.Reason)
}

func unsupported(opt, format string, args ...any) error {
	return &UnsupportedError{Option: opt, Reason: fmt.Sprintf(format, args...)}
}

// portProtos are the protocols whose ports rules can match.
var portProtos = map[uint8]string{6: "tcp", 17: "udp", 132: "sctp"}

// UserRuleNFT translates an iptables rule (as [ParseRuleArgs] reads it)
// into dnft's native form for chain. names resolves service names of
// ports (nil: numbers only). Every option outside the subset is refused
// with an *UnsupportedError.
func UserRuleNFT(f Family, chain string, r *Rule, names *Names) (nft.Rule, error) {
	out := nft.Rule{Family: nftFamily(f), Chain: chain}
	add := func(m nft.Match) { out.Match = append(out.Match, m) }
	if r.Frag {
		return out, unsupported("-f", "fragments are not matched natively")
	}
	if r.Goto {
		return out, unsupported("-g", "only -j ACCEPT, DROP, RETURN, REJECT and LOG are supported")
	}
	for _, x := range []struct {
		dir  nft.Dir
		name string
		inv  bool
		opt  string
	}{{nft.In, r.In, r.InInv, "-i"}, {nft.Out, r.Out, r.OutInv, "-o"}} {
		if x.name == "" {
			continue
		}
		m := nft.IfName{Dir: x.dir, Name: x.name, Neg: x.inv}
		if base, ok := strings.CutSuffix(x.name, "+"); ok {
			if base == "" {
				return out, unsupported(x.opt+" +", "use no %s to match every interface", x.opt)
			}
			m.Name, m.Wildcard = base, true
		}
		add(m)
	}
	for _, x := range []struct {
		dir nft.Dir
		a   Addr
		inv bool
		opt string
	}{{nft.In, r.Src, r.SrcInv, "-s"}, {nft.Out, r.Dst, r.DstInv, "-d"}} {
		if !x.a.IP.IsValid() {
			continue
		}
		bits := x.a.Bits()
		if bits < 0 {
			return out, unsupported(x.opt, "mask %s is not a prefix length", x.a.Mask)
		}
		if bits == 0 && !x.inv {
			continue // 0.0.0.0/0 matches every packet; iptables does not list it
		}
		add(nft.Prefix{Dir: x.dir, Prefix: netip.PrefixFrom(x.a.IP, bits), Neg: x.inv})
	}
	if r.Proto != 0 {
		add(nft.L4Proto{Num: r.Proto, Neg: r.ProtoInv})
	}
	for _, m := range r.Matches {
		ms, err := matchNFT(f, r, m, names)
		if err != nil {
			return out, err
		}
		out.Match = append(out.Match, ms...)
		if m.Name == "comment" {
			out.Comment = commentOf(m)
		}
	}
	a, err := targetNFT(f, r)
	if err != nil {
		return out, err
	}
	out.Action = a
	return out, nil
}

func commentOf(m Match) string {
	if len(m.Args) == 2 && m.Args[0] == "--comment" {
		return m.Args[1]
	}
	return ""
}

// optsOf splits a match's options into (inverted, name, values) triples.
func optsOf(m Match) []opt { return splitOpts(m.Args) }

// matchNFT translates one -m match.
func matchNFT(f Family, r *Rule, m Match, names *Names) ([]nft.Match, error) {
	var out []nft.Match
	opts := optsOf(m)
	needPorts := func(opt string) (string, error) {
		p, ok := portProtos[r.Proto]
		if !ok || r.ProtoInv {
			return "", unsupported(opt, "needs -p tcp, -p udp or -p sctp")
		}
		return p, nil
	}
	switch m.Name {
	case "tcp", "udp", "sctp":
		if p, ok := portProtos[r.Proto]; !ok || p != m.Name || r.ProtoInv {
			return nil, unsupported("-m "+m.Name, "needs -p %s", m.Name)
		}
		for _, o := range opts {
			dir := nft.Out
			switch o.name {
			case "--sport":
				dir = nft.In
			case "--dport":
			default:
				return nil, unsupported(o.name, "")
			}
			lo, hi, err := parsePortSpan(o.name, first(o), m.Name, names)
			if err != nil {
				return nil, err
			}
			out = append(out, nft.PortRange{Dir: dir, Lo: lo, Hi: hi, Neg: o.inv})
		}
		// iptables matches sport before dport whatever the order given.
		slices.SortStableFunc(out, func(a, b nft.Match) int {
			return int(a.(nft.PortRange).Dir) - int(b.(nft.PortRange).Dir)
		})
	case "multiport":
		for _, o := range opts {
			dir := nft.Out
			switch o.name {
			case "--sports":
				dir = nft.In
			case "--dports":
			case "--ports":
				return nil, unsupported("--ports", "use --sports or --dports")
			default:
				return nil, unsupported(o.name, "")
			}
			proto, err := needPorts("-m multiport")
			if err != nil {
				return nil, err
			}
			var spans []nft.PortSpan
			for _, p := range strings.Split(first(o), ",") {
				if strings.HasPrefix(p, ":") || strings.HasSuffix(p, ":") {
					return nil, unsupported(o.name, "invalid port/service `' specified")
				}
				lo, hi, err := parsePortSpan(o.name, p, proto, names)
				if err != nil {
					return nil, err
				}
				spans = append(spans, nft.PortSpan{Lo: lo, Hi: hi})
			}
			if len(spans) > 15 {
				return nil, unsupported(o.name, "too many ports specified")
			}
			out = append(out, nft.PortSet{Dir: dir, Spans: spans, Neg: o.inv})
		}
	case "conntrack":
		for _, k := range []string{"--ctstate", "--ctorigsrc", "--ctorigdst", "--ctorigsrcport", "--ctorigdstport"} {
			o, ok := find(opts, k)
			if !ok {
				continue
			}
			mm, err := conntrackNFT(f, k, o)
			if err != nil {
				return nil, err
			}
			out = append(out, mm)
		}
		for _, o := range opts {
			if !slices.Contains([]string{"--ctstate", "--ctorigsrc", "--ctorigdst", "--ctorigsrcport", "--ctorigdstport"}, o.name) {
				return nil, unsupported(o.name, "")
			}
		}
	case "iprange":
		for _, k := range []string{"--src-range", "--dst-range"} {
			o, ok := find(opts, k)
			if !ok {
				continue
			}
			from, to, ok := strings.Cut(first(o), "-")
			a, err1 := netip.ParseAddr(from)
			b, err2 := netip.ParseAddr(to)
			if !ok || err1 != nil || err2 != nil || a.Is4() != (f == IPv4) || b.Is4() != (f == IPv4) || b.Less(a) {
				return nil, unsupported(k, "bad range %q", first(o))
			}
			dir := nft.In
			if k == "--dst-range" {
				dir = nft.Out
			}
			out = append(out, nft.AddrRange{Dir: dir, From: a, To: b, Neg: o.inv})
		}
		for _, o := range opts {
			if o.name != "--src-range" && o.name != "--dst-range" {
				return nil, unsupported(o.name, "")
			}
		}
	case "icmp", "icmp6":
		opt, proto := "--icmp-type", uint8(1)
		if m.Name == "icmp6" {
			opt, proto = "--icmpv6-type", 58
		}
		if (m.Name == "icmp") != (f == IPv4) || r.Proto != proto || r.ProtoInv {
			return nil, unsupported("-m "+m.Name, "needs -p %s", map[uint8]string{1: "icmp", 58: "ipv6-icmp"}[proto])
		}
		for _, o := range opts {
			if o.name != opt {
				return nil, unsupported(o.name, "")
			}
			t, ok := parseICMP(f, first(o))
			switch {
			case !ok:
				return nil, unsupported(opt, "unknown ICMP type %q", first(o))
			case f == IPv4 && t.typ == 0xFF:
				return nil, unsupported(opt+" any", "leave the match out to match every ICMP type")
			case t.cmin != t.cmax && (t.cmin != 0 || t.cmax != 0xFF):
				return nil, unsupported(opt, "code ranges are not supported")
			}
			out = append(out, nft.ICMPType{Type: t.typ, Code: t.cmin, HasCode: t.cmin == t.cmax, Neg: o.inv})
		}
	case "comment":
		if c := commentOf(m); c == "" || len(c) > 128 {
			return nil, unsupported("--comment", "must be 1 to 128 bytes")
		}
	default:
		return nil, unsupported("-m "+m.Name, "supported matches: tcp, udp, sctp, multiport, conntrack, iprange, icmp, comment")
	}
	return out, nil
}

// conntrackNFT translates one conntrack option.
func conntrackNFT(f Family, k string, o opt) (nft.Match, error) {
	v := first(o)
	switch k {
	case "--ctstate":
		var mask uint32
		for _, s := range strings.Split(v, ",") {
			bit, ok := map[string]uint32{"INVALID": nft.CtStateInvalid, "NEW": nft.CtStateNew, "RELATED": nft.CtStateRelated,
				"ESTABLISHED": nft.CtStateEstablished, "UNTRACKED": nft.CtStateUntracked}[s]
			if !ok {
				return nil, unsupported("--ctstate "+s, "supported states: INVALID, NEW, RELATED, ESTABLISHED, UNTRACKED")
			}
			mask |= bit
		}
		return nft.CtState{Mask: mask, Neg: o.inv}, nil
	case "--ctorigsrc", "--ctorigdst":
		a, err := ParseAddr(f, v)
		if err != nil {
			return nil, unsupported(k, "%v", err)
		}
		bits := a.Bits()
		if bits < 0 {
			return nil, unsupported(k, "mask %s is not a prefix length", a.Mask)
		}
		dir := nft.In
		if k == "--ctorigdst" {
			dir = nft.Out
		}
		return nft.CtOrigAddr{Dir: dir, Prefix: netip.PrefixFrom(a.IP, bits), Neg: o.inv}, nil
	}
	lo, hi, err := parsePortSpan(k, v, "", nil)
	if err != nil {
		return nil, err
	}
	dir := nft.In
	if k == "--ctorigdstport" {
		dir = nft.Out
	}
	return nft.CtOrigPort{Dir: dir, Lo: lo, Hi: hi, Neg: o.inv}, nil
}

// parsePortSpan parses PORT or PORT:PORT (open ends allowed), ports as
// numbers or service names of proto.
func parsePortSpan(opt, v, proto string, names *Names) (uint16, uint16, error) {
	port := func(s string, def uint16) (uint16, error) {
		if s == "" {
			return def, nil
		}
		if n, err := parseUint(s, 65535); err == nil {
			return uint16(n), nil
		}
		if n, ok := names.ServicePort(s, proto); ok && proto != "" {
			return n, nil
		}
		return 0, unsupported(opt, "invalid port/service `%s' specified", s)
	}
	a, b, isRange := strings.Cut(v, ":")
	lo, err := port(a, 0)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		if a == "" {
			return 0, 0, unsupported(opt, "invalid port/service `' specified")
		}
		return lo, lo, nil
	}
	hi, err := port(b, 65535)
	if err != nil {
		return 0, 0, err
	}
	if lo > hi {
		lo, hi = hi, lo // iptables swaps an inverted range
	}
	return lo, hi, nil
}

// rejectTypes are REJECT's --reject-with values per family, in the
// order REJECT looks them up, with the kind and code they send; the
// first name of each is what iptables-save writes.
var rejectTypes = map[Family][]struct {
	names []string
	kind  nft.RejectKind
	code  uint8
}{
	IPv4: {
		{[]string{"icmp-net-unreachable", "net-unreach"}, nft.RejectICMP, 0},
		{[]string{"icmp-host-unreachable", "host-unreach"}, nft.RejectICMP, 1},
		{[]string{"icmp-proto-unreachable", "proto-unreach"}, nft.RejectICMP, 2},
		{[]string{"icmp-port-unreachable", "port-unreach"}, nft.RejectICMP, 3},
		{[]string{"icmp-net-prohibited", "net-prohib"}, nft.RejectICMP, 9},
		{[]string{"icmp-host-prohibited", "host-prohib"}, nft.RejectICMP, 10},
		{[]string{"tcp-reset", "tcp-rst"}, nft.RejectTCPReset, 0},
		{[]string{"icmp-admin-prohibited", "admin-prohib"}, nft.RejectICMP, 13},
	},
	IPv6: {
		{[]string{"icmp6-no-route", "no-route"}, nft.RejectICMP, 0},
		{[]string{"icmp6-adm-prohibited", "adm-prohibited"}, nft.RejectICMP, 1},
		{[]string{"icmp6-addr-unreachable", "addr-unreach"}, nft.RejectICMP, 3},
		{[]string{"icmp6-port-unreachable", "port-unreach"}, nft.RejectICMP, 4},
		{[]string{"tcp-reset", "tcp-rst"}, nft.RejectTCPReset, 0},
		{[]string{"icmp6-policy-fail", "policy-fail"}, nft.RejectICMP, 5},
		{[]string{"icmp6-reject-route", "reject-route"}, nft.RejectICMP, 6},
	},
}

// targetNFT translates the rule's target.
func targetNFT(f Family, r *Rule) (nft.Action, error) {
	opts := splitOpts(r.TargetArgs)
	switch r.Target {
	case "":
		return nil, nil
	case "ACCEPT":
		return nft.Verdict{Kind: nft.Accept}, nil
	case "DROP":
		return nft.Verdict{Kind: nft.Drop}, nil
	case "RETURN":
		return nft.Verdict{Kind: nft.Return}, nil
	case "REJECT":
		with := "icmp-port-unreachable"
		if f == IPv6 {
			with = "icmp6-port-unreachable"
		}
		for _, o := range opts {
			if o.name != "--reject-with" {
				return nil, unsupported(o.name, "")
			}
			with = first(o)
		}
		for _, t := range rejectTypes[f] {
			// REJECT takes any case-insensitive prefix of a name or alias.
			if slices.ContainsFunc(t.names, func(n string) bool {
				return len(with) <= len(n) && strings.EqualFold(n[:len(with)], with)
			}) {
				if t.kind == nft.RejectTCPReset && (r.Proto != 6 || r.ProtoInv) {
					return nil, unsupported("--reject-with tcp-reset", "needs -p tcp")
				}
				return nft.Reject{Kind: t.kind, Code: t.code}, nil
			}
		}
		return nil, unsupported("--reject-with "+with, "unknown reject type")
	case "LOG":
		l := nft.Log{Level: 4}
		for _, o := range opts {
			switch o.name {
			case "--log-prefix":
				if len(first(o)) > 29 {
					return nil, unsupported("--log-prefix", "maximum prefix length 29 for --log-prefix")
				}
				l.Prefix = first(o)
			case "--log-level":
				n, err := strconv.Atoi(first(o))
				if err != nil || n < 0 || n > 7 {
					return nil, unsupported("--log-level", "log level `%s' unknown", first(o))
				}
				l.Level = uint8(n)
			default:
				bit := slices.IndexFunc(logFlagBits, func(b struct {
					opt, label string
					bit        int
				}) bool {
					return b.opt == o.name
				})
				if bit < 0 {
					return nil, unsupported(o.name, "")
				}
				l.Flags |= uint32(logFlagBits[bit].bit)
			}
		}
		return l, nil
	}
	return nil, unsupported("-j "+r.Target, "supported targets: ACCEPT, DROP, RETURN, REJECT, LOG")
}

// errNoIPT is returned by UserRuleIPT for a native rule with no iptables
// form.
var errNoIPT = errors.New("no iptables form")

// UserRuleIPT translates a native rule back into iptables' form, as
// iptables-save would write the rule [UserRuleNFT] made it from (ports
// and addresses numeric, options in iptables' order). It fails for
// rules that have no iptables form (matches outside the subset, two
// protocol matches, ports without a protocol, ...).
func UserRuleIPT(f Family, nr nft.Rule) (*Rule, error) {
	var args []string
	var exts []string // extension matches, in order
	type group struct {
		name string
		opts map[string][]string
	}
	var cur *group
	flush := func() {
		if cur == nil {
			return
		}
		exts = append(exts, "-m", cur.name)
		order := map[string][]string{
			"tcp": {"--sport", "--dport"}, "udp": {"--sport", "--dport"}, "sctp": {"--sport", "--dport"},
			"conntrack": {"--ctstate", "--ctorigsrc", "--ctorigdst", "--ctorigsrcport", "--ctorigdstport"},
			"iprange":   {"--src-range", "--dst-range"},
		}[cur.name]
		for _, k := range order {
			exts = append(exts, cur.opts[k]...)
		}
		cur = nil
	}
	into := func(name, opt string, neg bool, vals ...string) error {
		if cur != nil && (cur.name != name || cur.opts[opt] != nil) {
			flush()
		}
		if cur == nil {
			cur = &group{name: name, opts: map[string][]string{}}
		}
		var o []string
		if neg {
			o = append(o, "!")
		}
		cur.opts[opt] = append(append(o, opt), vals...)
		return nil
	}
	single := func(m []string) {
		flush()
		exts = append(exts, m...)
	}
	bang := func(neg bool) []string {
		if neg {
			return []string{"!"}
		}
		return nil
	}
	var (
		seen  = map[string]bool{}
		proto *nft.L4Proto
	)
	once := func(k string) error {
		if seen[k] {
			return fmt.Errorf("%w: two %s matches", errNoIPT, k)
		}
		seen[k] = true
		return nil
	}
	portProto := func() (string, error) {
		if proto == nil || proto.Neg {
			return "", fmt.Errorf("%w: ports without a protocol", errNoIPT)
		}
		p, ok := portProtos[proto.Num]
		if !ok {
			return "", fmt.Errorf("%w: ports of protocol %d", errNoIPT, proto.Num)
		}
		return p, nil
	}
	span := func(lo, hi uint16) string {
		if lo == hi {
			return strconv.Itoa(int(lo))
		}
		return fmt.Sprintf("%d:%d", lo, hi)
	}
	for _, m := range nr.Match {
		switch m := m.(type) {
		case nft.IfName:
			opt := map[nft.Dir]string{nft.In: "-i", nft.Out: "-o"}[m.Dir]
			if err := once(opt); err != nil {
				return nil, err
			}
			name := m.Name
			if m.Wildcard {
				name += "+"
			}
			args = append(append(args, bang(m.Neg)...), opt, name)
		case nft.Prefix:
			opt := map[nft.Dir]string{nft.In: "-s", nft.Out: "-d"}[m.Dir]
			if err := once(opt); err != nil {
				return nil, err
			}
			args = append(append(args, bang(m.Neg)...), opt, m.Prefix.String())
		case nft.L4Proto:
			if err := once("-p"); err != nil {
				return nil, err
			}
			proto = &m
			args = append(append(args, bang(m.Neg)...), "-p", strconv.Itoa(int(m.Num)))
		case nft.PortRange:
			p, err := portProto()
			if err != nil {
				return nil, err
			}
			opt := map[nft.Dir]string{nft.In: "--sport", nft.Out: "--dport"}[m.Dir]
			_ = into(p, opt, m.Neg, span(m.Lo, m.Hi))
		case nft.PortSet:
			if _, err := portProto(); err != nil {
				return nil, err
			}
			if len(m.Spans) > 15 {
				return nil, fmt.Errorf("%w: more than 15 ports", errNoIPT)
			}
			var ps []string
			for _, s := range m.Spans {
				ps = append(ps, span(s.Lo, s.Hi))
			}
			opt := map[nft.Dir]string{nft.In: "--sports", nft.Out: "--dports"}[m.Dir]
			single(append(append([]string{"-m", "multiport"}, bang(m.Neg)...), opt, strings.Join(ps, ",")))
		case nft.CtState:
			var states []string
			for _, s := range []struct {
				bit  uint32
				name string
			}{{nft.CtStateInvalid, "INVALID"}, {nft.CtStateNew, "NEW"}, {nft.CtStateRelated, "RELATED"},
				{nft.CtStateEstablished, "ESTABLISHED"}, {nft.CtStateUntracked, "UNTRACKED"}} {
				if m.Mask&s.bit != 0 {
					states = append(states, s.name)
				}
			}
			_ = into("conntrack", "--ctstate", m.Neg, strings.Join(states, ","))
		case nft.CtOrigAddr:
			opt := map[nft.Dir]string{nft.In: "--ctorigsrc", nft.Out: "--ctorigdst"}[m.Dir]
			v := m.Prefix.String()
			if m.Prefix.IsSingleIP() {
				v = m.Prefix.Addr().String() // conntrack_save leaves out a full mask
			}
			_ = into("conntrack", opt, m.Neg, v)
		case nft.CtOrigPort:
			opt := map[nft.Dir]string{nft.In: "--ctorigsrcport", nft.Out: "--ctorigdstport"}[m.Dir]
			_ = into("conntrack", opt, m.Neg, span(m.Lo, m.Hi))
		case nft.AddrRange:
			opt := map[nft.Dir]string{nft.In: "--src-range", nft.Out: "--dst-range"}[m.Dir]
			_ = into("iprange", opt, m.Neg, m.From.String()+"-"+m.To.String())
		case nft.ICMPType:
			want := map[Family]uint8{IPv4: 1, IPv6: 58}[f]
			if proto == nil || proto.Neg || proto.Num != want {
				return nil, fmt.Errorf("%w: an ICMP type without -p icmp", errNoIPT)
			}
			v := strconv.Itoa(int(m.Type))
			if m.HasCode {
				v += "/" + strconv.Itoa(int(m.Code))
			}
			name, opt := "icmp", "--icmp-type"
			if f == IPv6 {
				name, opt = "icmp6", "--icmpv6-type"
			}
			single(append(append([]string{"-m", name}, bang(m.Neg)...), opt, v))
		default:
			return nil, fmt.Errorf("%w: match %T", errNoIPT, m)
		}
	}
	flush()
	if nr.Comment != "" {
		exts = append(exts, "-m", "comment", "--comment", nr.Comment)
	}
	args = append(args, exts...)
	switch a := nr.Action.(type) {
	case nil:
	case nft.Verdict:
		switch a.Kind {
		case nft.Accept:
			args = append(args, "-j", "ACCEPT")
		case nft.Drop:
			args = append(args, "-j", "DROP")
		case nft.Return:
			args = append(args, "-j", "RETURN")
		default:
			return nil, fmt.Errorf("%w: jump to %s", errNoIPT, a.Chain)
		}
	case nft.Reject:
		found := false
		for _, t := range rejectTypes[f] {
			if t.kind == a.Kind && (t.code == a.Code || a.Kind == nft.RejectTCPReset) {
				args, found = append(args, "-j", "REJECT", "--reject-with", t.names[0]), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: reject code %d", errNoIPT, a.Code)
		}
	case nft.Log:
		args = append(args, "-j", "LOG")
		if a.Prefix != "" {
			args = append(args, "--log-prefix", a.Prefix)
		}
		if a.Level != 4 {
			args = append(args, "--log-level", strconv.Itoa(int(a.Level)))
		}
		rest := a.Flags
		for _, fb := range logFlagBits {
			if a.Flags&uint32(fb.bit) != 0 {
				args = append(args, fb.opt)
				rest &^= uint32(fb.bit)
			}
		}
		if rest != 0 {
			return nil, fmt.Errorf("%w: log flags %#x", errNoIPT, rest)
		}
	default:
		return nil, fmt.Errorf("%w: statement %T", errNoIPT, a)
	}
	r, err := ParseRuleArgs(f, args, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoIPT, err)
	}
	return r, nil
}
