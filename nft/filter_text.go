package nft

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseRuleText parses an operator's rule written in nft's syntax, as
// after `nft add rule ip dnft DOCKER-USER`, into the matches and
// statements of filter.go. It reads the subset those cover:
//
//	iifname|oifname [!=] NAME ("br*" for a prefix)
//	ip|ip6 saddr|daddr [!=] ADDR[/LEN] | ADDR-ADDR
//	meta l4proto | ip protocol | ip6 nexthdr [!=] NAME|NUM
//	tcp|udp|sctp sport|dport [!=] PORT | PORT-PORT | { PORT, PORT-PORT, ... }
//	th sport|dport (after a protocol match)
//	ct state [!=] STATE[,STATE...]
//	ct original [ip|ip6] saddr|daddr [!=] ADDR[/LEN]
//	ct original proto-src|proto-dst [!=] PORT | PORT-PORT
//	icmp type [!=] NAME|NUM [icmp code NUM], icmpv6 type ...
//	counter, accept, drop, return, reject [with tcp reset |
//	with icmp[x|v6] [type] NAME], log [prefix "P"] [level L] [flags F...],
//	comment "C"
//
// Anything else is an error naming the word it could not read.
func ParseRuleText(f Family, text string) (Rule, error) {
	toks, err := tokenize(text)
	if err != nil {
		return Rule{}, err
	}
	p := &textParser{f: f, toks: toks, r: Rule{Family: f}}
	for p.more() {
		if err := p.statement(); err != nil {
			return Rule{}, err
		}
	}
	return p.r, nil
}

// tokenize splits nft text into words: quoted strings (without quotes),
// braces and commas as words of their own.
func tokenize(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quoted string")
			}
			out = append(out, "\x00"+s[i+1:i+1+j]) // \x00 marks a quoted word
			i += j + 2
		case c == '{' || c == '}' || c == ',':
			out = append(out, string(c))
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\"{},", rune(s[j])) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out, nil
}

type textParser struct {
	f     Family
	toks  []string
	i     int
	r     Rule
	proto *L4Proto
}

func (p *textParser) more() bool { return p.i < len(p.toks) }

func (p *textParser) peek() string {
	if !p.more() {
		return ""
	}
	return strings.TrimPrefix(p.toks[p.i], "\x00")
}

func (p *textParser) next() (string, error) {
	if !p.more() {
		return "", fmt.Errorf("rule ends too early")
	}
	t := strings.TrimPrefix(p.toks[p.i], "\x00")
	p.i++
	return t, nil
}

func (p *textParser) expect(words ...string) error {
	for _, w := range words {
		t, err := p.next()
		if err != nil {
			return err
		}
		if t != w {
			return fmt.Errorf("unexpected %q (expected %q)", t, w)
		}
	}
	return nil
}

// neg reads an optional "!=" (or "==").
func (p *textParser) neg() bool {
	switch p.peek() {
	case "!=":
		p.i++
		return true
	case "==":
		p.i++
	}
	return false
}

func (p *textParser) add(m Match) {
	if lp, ok := m.(L4Proto); ok {
		p.proto = &lp
	}
	p.r.Match = append(p.r.Match, m)
}

func (p *textParser) action(a Action) error {
	if p.r.Action != nil {
		return fmt.Errorf("more than one statement")
	}
	p.r.Action = a
	return nil
}

// protoNumbers are the protocol names nft knows without /etc/protocols.
var protoNumbers = map[string]uint8{"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}

func parseProtoWord(s string) (uint8, error) {
	if n, ok := protoNumbers[s]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q", s)
	}
	return uint8(n), nil
}

func (p *textParser) statement() error {
	t, err := p.next()
	if err != nil {
		return err
	}
	switch t {
	case "counter":
		// every rule dnft writes counts; values after it are state
		if p.peek() == "packets" {
			p.i += 4
		}
		return nil
	case "accept", "drop", "return":
		return p.action(Verdict{Kind: map[string]VerdictKind{"accept": Accept, "drop": Drop, "return": Return}[t]})
	case "reject":
		return p.reject()
	case "log":
		return p.log()
	case "comment":
		c, err := p.next()
		if err != nil {
			return err
		}
		p.r.Comment = c
		return nil
	case "iifname", "oifname":
		dir := In
		if t == "oifname" {
			dir = Out
		}
		neg := p.neg()
		name, err := p.next()
		if err != nil {
			return err
		}
		m := IfName{Dir: dir, Name: name, Neg: neg}
		if base, ok := strings.CutSuffix(name, "*"); ok {
			m.Name, m.Wildcard = base, true
		}
		if m.Name == "" || len(m.Name) > 15 {
			return fmt.Errorf("interface name %q: must be 1 to 15 bytes", name)
		}
		p.add(m)
		return nil
	case "meta":
		if err := p.expect("l4proto"); err != nil {
			return err
		}
		return p.protoMatch()
	case "ip", "ip6":
		if (t == "ip") != (p.f == IPv4) {
			return fmt.Errorf("%q in a rule of family %s", t, p.f)
		}
		k, err := p.next()
		if err != nil {
			return err
		}
		switch k {
		case "saddr", "daddr":
			return p.addrMatch(k == "saddr")
		case "protocol", "nexthdr":
			if (k == "protocol") != (t == "ip") {
				return fmt.Errorf("unexpected %q", k)
			}
			return p.protoMatch()
		}
		return fmt.Errorf("unsupported %s %q", t, k)
	case "tcp", "udp", "sctp", "th":
		return p.portMatch(t)
	case "ct":
		return p.ctMatch()
	case "icmp", "icmpv6":
		return p.icmpMatch(t)
	}
	return fmt.Errorf("unsupported %q", t)
}

func (p *textParser) protoMatch() error {
	neg := p.neg()
	w, err := p.next()
	if err != nil {
		return err
	}
	n, err := parseProtoWord(w)
	if err != nil {
		return err
	}
	p.add(L4Proto{Num: n, Neg: neg})
	return nil
}

func (p *textParser) addrMatch(src bool) error {
	dir := Out
	if src {
		dir = In
	}
	neg := p.neg()
	w, err := p.next()
	if err != nil {
		return err
	}
	if a, b, ok := strings.Cut(w, "-"); ok {
		from, err1 := netip.ParseAddr(a)
		to, err2 := netip.ParseAddr(b)
		if err1 != nil || err2 != nil || from.Is4() != (p.f == IPv4) || to.Is4() != (p.f == IPv4) || to.Less(from) {
			return fmt.Errorf("bad address range %q", w)
		}
		p.add(AddrRange{Dir: dir, From: from, To: to, Neg: neg})
		return nil
	}
	pfx, err := p.prefix(w)
	if err != nil {
		return err
	}
	p.add(Prefix{Dir: dir, Prefix: pfx, Neg: neg})
	return nil
}

func (p *textParser) prefix(w string) (netip.Prefix, error) {
	if !strings.Contains(w, "/") {
		a, err := netip.ParseAddr(w)
		if err != nil || a.Is4() != (p.f == IPv4) || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad address %q", w)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(w)
	if err != nil || pfx.Addr().Is4() != (p.f == IPv4) || pfx.Masked() != pfx {
		return netip.Prefix{}, fmt.Errorf("bad prefix %q", w)
	}
	return pfx, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

func parseSpan(s string) (PortSpan, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := parsePort(a)
	if err != nil {
		return PortSpan{}, err
	}
	hi := lo
	if isRange {
		if hi, err = parsePort(b); err != nil {
			return PortSpan{}, err
		}
	}
	if lo > hi {
		return PortSpan{}, fmt.Errorf("empty port range %q", s)
	}
	return PortSpan{lo, hi}, nil
}

func (p *textParser) portMatch(proto string) error {
	k, err := p.next()
	if err != nil {
		return err
	}
	dir := Out
	switch k {
	case "sport":
		dir = In
	case "dport":
	default:
		return fmt.Errorf("unsupported %s %q", proto, k)
	}
	if proto == "th" {
		if p.proto == nil || p.proto.Neg {
			return fmt.Errorf("th %s needs a protocol match before it", k)
		}
	} else if p.proto == nil || p.proto.Neg || p.proto.Num != protoNumbers[proto] {
		p.add(L4Proto{Num: protoNumbers[proto]})
	}
	neg := p.neg()
	if p.peek() == "{" {
		p.i++
		var spans []PortSpan
		for {
			w, err := p.next()
			if err != nil {
				return err
			}
			if w == "}" {
				break
			}
			if w == "," {
				continue
			}
			sp, err := parseSpan(w)
			if err != nil {
				return err
			}
			spans = append(spans, sp)
		}
		if len(spans) == 0 {
			return fmt.Errorf("empty port list")
		}
		p.add(PortSet{Dir: dir, Spans: spans, Neg: neg})
		return nil
	}
	w, err := p.next()
	if err != nil {
		return err
	}
	sp, err := parseSpan(w)
	if err != nil {
		return err
	}
	p.add(PortRange{Dir: dir, Lo: sp.Lo, Hi: sp.Hi, Neg: neg})
	return nil
}

var ctStateBits = map[string]uint32{"invalid": CtStateInvalid, "established": CtStateEstablished,
	"related": CtStateRelated, "new": CtStateNew, "untracked": CtStateUntracked}

func (p *textParser) ctMatch() error {
	k, err := p.next()
	if err != nil {
		return err
	}
	switch k {
	case "state":
		neg := p.neg()
		w, err := p.next()
		if err != nil {
			return err
		}
		var mask uint32
		for {
			bit, ok := ctStateBits[w]
			if !ok {
				return fmt.Errorf("unknown ct state %q", w)
			}
			mask |= bit
			if p.peek() != "," {
				break
			}
			p.i++
			if w, err = p.next(); err != nil {
				return err
			}
		}
		p.add(CtState{Mask: mask, Neg: neg})
		return nil
	case "original":
		w, err := p.next()
		if err != nil {
			return err
		}
		if w == "ip" || w == "ip6" {
			if (w == "ip") != (p.f == IPv4) {
				return fmt.Errorf("ct original %s in a rule of family %s", w, p.f)
			}
			if w, err = p.next(); err != nil {
				return err
			}
		}
		switch w {
		case "saddr", "daddr":
			dir := Out
			if w == "saddr" {
				dir = In
			}
			neg := p.neg()
			a, err := p.next()
			if err != nil {
				return err
			}
			pfx, err := p.prefix(a)
			if err != nil {
				return err
			}
			p.add(CtOrigAddr{Dir: dir, Prefix: pfx, Neg: neg})
			return nil
		case "proto-src", "proto-dst":
			dir := Out
			if w == "proto-src" {
				dir = In
			}
			neg := p.neg()
			a, err := p.next()
			if err != nil {
				return err
			}
			sp, err := parseSpan(a)
			if err != nil {
				return err
			}
			p.add(CtOrigPort{Dir: dir, Lo: sp.Lo, Hi: sp.Hi, Neg: neg})
			return nil
		}
		return fmt.Errorf("unsupported ct original %q", w)
	}
	return fmt.Errorf("unsupported ct %q", k)
}

// icmpNames are the ICMP and ICMPv6 type names nft knows.
var icmpNames = map[string]map[string]uint8{
	"icmp": {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
		"router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
		"timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
		"address-mask-request": 17, "address-mask-reply": 18},
	"icmpv6": {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
		"echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
		"mld-listener-done": 132, "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
		"nd-neighbor-advert": 136, "nd-redirect": 137},
}

func (p *textParser) icmpMatch(kind string) error {
	if (kind == "icmp") != (p.f == IPv4) {
		return fmt.Errorf("%s in a rule of family %s", kind, p.f)
	}
	if err := p.expect("type"); err != nil {
		return err
	}
	num := uint8(1)
	if kind == "icmpv6" {
		num = 58
	}
	if p.proto == nil || p.proto.Num != num || p.proto.Neg {
		p.add(L4Proto{Num: num})
	}
	neg := p.neg()
	w, err := p.next()
	if err != nil {
		return err
	}
	t, ok := icmpNames[kind][w]
	if !ok {
		n, err := strconv.ParseUint(w, 10, 8)
		if err != nil {
			return fmt.Errorf("unknown %s type %q", kind, w)
		}
		t = uint8(n)
	}
	m := ICMPType{Type: t, Neg: neg}
	if p.peek() == kind && p.i+1 < len(p.toks) && p.toks[p.i+1] == "code" {
		p.i += 2
		if p.neg() != neg {
			return fmt.Errorf("%s type and code must be negated together", kind)
		}
		w, err := p.next()
		if err != nil {
			return err
		}
		c, err := strconv.ParseUint(w, 10, 8)
		if err != nil {
			return fmt.Errorf("bad %s code %q", kind, w)
		}
		m.Code, m.HasCode = uint8(c), true
	}
	p.add(m)
	return nil
}

// rejectCodes are the reject codes nft names, per family.
var rejectCodes = map[Family]map[string]uint8{
	IPv4: {"net-unreachable": 0, "host-unreachable": 1, "prot-unreachable": 2, "port-unreachable": 3,
		"net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13},
	IPv6: {"no-route": 0, "admin-prohibited": 1, "addr-unreachable": 3, "port-unreachable": 4,
		"policy-fail": 5, "reject-route": 6},
}

func (p *textParser) reject() error {
	def := Reject{Kind: RejectICMP, Code: 3}
	if p.f == IPv6 {
		def.Code = 4
	}
	if p.peek() != "with" {
		return p.action(def)
	}
	p.i++
	w, err := p.next()
	if err != nil {
		return err
	}
	switch w {
	case "tcp":
		if err := p.expect("reset"); err != nil {
			return err
		}
		return p.action(Reject{Kind: RejectTCPReset})
	case "icmp", "icmpv6", "icmpx":
		if (w == "icmp") != (p.f == IPv4) && w != "icmpx" {
			return fmt.Errorf("reject with %s in a rule of family %s", w, p.f)
		}
		if w == "icmpx" {
			return fmt.Errorf("reject with icmpx is not supported")
		}
		if p.peek() == "type" {
			p.i++
		}
		name, err := p.next()
		if err != nil {
			return err
		}
		c, ok := rejectCodes[p.f][name]
		if !ok {
			return fmt.Errorf("unknown reject type %q", name)
		}
		return p.action(Reject{Kind: RejectICMP, Code: c})
	}
	return fmt.Errorf("unsupported reject with %q", w)
}

var logLevelNumbers = map[string]uint8{"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}

var logFlagNumbers = map[string]uint32{"sequence": 1, "options": 2, "uid": 8, "ether": 0x20}

func (p *textParser) log() error {
	l := Log{Level: 4}
	for p.more() {
		switch p.peek() {
		case "prefix":
			p.i++
			w, err := p.next()
			if err != nil {
				return err
			}
			l.Prefix = w
		case "level":
			p.i++
			w, err := p.next()
			if err != nil {
				return err
			}
			n, ok := logLevelNumbers[w]
			if !ok {
				return fmt.Errorf("unknown log level %q", w)
			}
			l.Level = n
		case "flags":
			p.i++
			w, err := p.next()
			if err != nil {
				return err
			}
			switch w {
			case "all":
				l.Flags |= 0x2f
			case "tcp":
				for {
					f, err := p.next()
					if err != nil {
						return err
					}
					if f != "sequence" && f != "options" {
						return fmt.Errorf("unknown log flag tcp %q", f)
					}
					l.Flags |= logFlagNumbers[f]
					if p.peek() != "," {
						break
					}
					p.i++
				}
			case "ip":
				if err := p.expect("options"); err != nil {
					return err
				}
				l.Flags |= 4
			case "skuid":
				l.Flags |= 8
			case "ether":
				l.Flags |= 0x20
			default:
				return fmt.Errorf("unknown log flag %q", w)
			}
		default:
			return p.action(l)
		}
	}
	return p.action(l)
}
