package compat

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// This file parses rules written in iptables' own syntax — what `iptables
// -S`, `iptables-save` and the commands of CONTRACT.md §2 contain — into
// [Rule]s. Options of the extensions Docker's rules use (and a few more)
// are known, so that implicit protocol matches (`-p tcp --dport 80`) are
// loaded as iptables loads them and option aliases are written the way
// iptables-save writes them. Options of unknown extensions are kept as
// given.

// matchOpts lists, per match, its options and how many values each takes.
var matchOpts = map[string]map[string]int{
	"tcp":       {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1, "--tcp-flags": 2, "--syn": 0, "--tcp-option": 1},
	"udp":       {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1},
	"sctp":      {"--sport": 1, "--source-port": 1, "--dport": 1, "--destination-port": 1, "--chunk-types": 2},
	"multiport": {"--sports": 1, "--source-ports": 1, "--dports": 1, "--destination-ports": 1, "--ports": 1},
	"addrtype":  {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
	"conntrack": {
		"--ctstate": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1, "--ctreplsrc": 1, "--ctrepldst": 1,
		"--ctorigsrcport": 1, "--ctorigdstport": 1, "--ctreplsrcport": 1, "--ctrepldstport": 1,
		"--ctstatus": 1, "--ctexpire": 1, "--ctdir": 1,
	},
	"state":   {"--state": 1},
	"iprange": {"--src-range": 1, "--dst-range": 1},
	"comment": {"--comment": 1},
	"mark":    {"--mark": 1},
	"icmp":    {"--icmp-type": 1},
	"icmp6":   {"--icmpv6-type": 1},
}

// targetOpts lists, per target extension, its options and their values.
var targetOpts = map[string]map[string]int{
	"DNAT":       {"--to-destination": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
	"SNAT":       {"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0},
	"MASQUERADE": {"--to-ports": 1, "--random": 0, "--random-fully": 0},
	"REDIRECT":   {"--to-ports": 1, "--random": 0},
	"REJECT":     {"--reject-with": 1},
	"LOG": {"--log-level": 1, "--log-prefix": 1, "--log-tcp-sequence": 0, "--log-tcp-options": 0,
		"--log-ip-options": 0, "--log-uid": 0, "--log-macdecode": 0},
	"MARK": {"--set-xmark": 1, "--set-mark": 1, "--and-mark": 1, "--or-mark": 1, "--xor-mark": 1},
}

// optAlias maps option spellings to the one iptables-save writes.
var optAlias = map[string]string{
	"--source-port": "--sport", "--destination-port": "--dport",
	"--source-ports": "--sports", "--destination-ports": "--dports",
}

// chainProtos is libxtables' xtables_chain_protos: the protocol names
// iptables knows without /etc/protocols, in its lookup order.
var chainProtos = []struct {
	name string
	num  uint8
}{
	{"tcp", 6}, {"sctp", 132}, {"udp", 17}, {"udplite", 136}, {"icmp", 1},
	{"ipv6-icmp", 58}, {"esp", 50}, {"ah", 51}, {"mobility-header", 135}, {"all", 0},
}

// Standard verdicts (targets that are neither chains nor extensions).
var standardTargets = []string{"ACCEPT", "DROP", "RETURN", "QUEUE"}

// SplitArgs splits a line the way iptables-restore does: on blanks, with
// double-quoted strings (backslash escapes \" and \\) kept together.
func SplitArgs(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quoted, have := false, false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\' || line[i+1] == '\''):
			cur.WriteByte(line[i+1])
			i++
		case c == '"':
			quoted = !quoted
			have = true
		case !quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			if in || have {
				out = append(out, cur.String())
				cur.Reset()
			}
			in, have = false, false
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quoted string")
	}
	if in || have {
		out = append(out, cur.String())
	}
	return out, nil
}

// ParseRule parses a rule specification (what follows "-A CHAIN") given
// as one string, e.g. `-d 172.18.0.5/32 ! -i br0 -o br0 -p tcp -m tcp
// --dport 80 -j ACCEPT`. "-c PKTS BYTES" sets the counter.
func ParseRule(f Family, spec string) (*Rule, error) {
	args, err := SplitArgs(spec)
	if err != nil {
		return nil, fmt.Errorf("parse rule %q: %w", spec, err)
	}
	r, err := ParseRuleArgs(f, args, nil)
	if err != nil {
		return nil, fmt.Errorf("parse rule %q: %w", spec, err)
	}
	return r, nil
}

// MustParseRule is ParseRule for rules known to be valid; it panics
// otherwise.
func MustParseRule(f Family, spec string) *Rule {
	r, err := ParseRule(f, spec)
	if err != nil {
		panic(err)
	}
	return r
}

// ruleParser holds the state of one ParseRuleArgs call.
type ruleParser struct {
	f     Family
	names *Names
	r     *Rule
	args  []string
	i     int
	inv   bool
	// cur is the index of the extension options go to: a match (>= 0),
	// the target (-2), or none (-1).
	cur int
}

// ParseRuleArgs parses a rule specification given as arguments. names
// resolves protocol names that iptables does not know itself (nil: only
// the built-in names and numbers).
func ParseRuleArgs(f Family, args []string, names *Names) (*Rule, error) {
	p := &ruleParser{f: f, names: names, r: &Rule{}, args: args, cur: -1}
	for p.i < len(args) {
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	if p.inv {
		return nil, errors.New("nothing appropriate follows \"!\"")
	}
	canonicalTarget(f, p.r)
	return p.r, nil
}

func (p *ruleParser) value(opt string) (string, error) {
	if p.i >= len(p.args) {
		return "", fmt.Errorf("option %q requires an argument", opt)
	}
	v := p.args[p.i]
	p.i++
	return v, nil
}

func (p *ruleParser) next() error {
	a := p.args[p.i]
	p.i++
	if a == "!" {
		if p.inv {
			return errors.New("multiple consecutive ! not allowed")
		}
		p.inv = true
		return nil
	}
	inv := p.inv
	p.inv = false
	r := p.r
	switch a {
	case "-s", "--source", "--src", "-d", "--destination", "--dst":
		v, err := p.value(a)
		if err != nil {
			return err
		}
		ad, err := ParseAddr(p.f, v)
		if err != nil {
			return err
		}
		if a == "-s" || a == "--source" || a == "--src" {
			r.Src, r.SrcInv = ad, inv
		} else {
			r.Dst, r.DstInv = ad, inv
		}
	case "-i", "--in-interface", "-o", "--out-interface":
		v, err := p.value(a)
		if err != nil {
			return err
		}
		if v == "" {
			return errors.New("empty interface is likely to be undesired")
		}
		if len(v) > 15 {
			return fmt.Errorf("interface name `%s' must be shorter than 16 characters", v)
		}
		if a == "-i" || a == "--in-interface" {
			r.In, r.InInv = v, inv
		} else {
			r.Out, r.OutInv = v, inv
		}
	case "-p", "--protocol":
		v, err := p.value(a)
		if err != nil {
			return err
		}
		n, err := parseProto(strings.ToLower(v), p.names)
		if err != nil {
			return err
		}
		if n == 0 && inv {
			return errors.New("rule would never match protocol")
		}
		r.Proto, r.ProtoInv = n, inv
	case "-f", "--fragment":
		if p.f == IPv6 {
			return errors.New("`-f' is not supported in IPv6, use -m frag instead")
		}
		r.Frag, r.FragInv = true, inv
	case "-m", "--match":
		v, err := p.value(a)
		if err != nil {
			return err
		}
		if inv {
			return errors.New("unexpected ! flag before --match")
		}
		r.Matches = append(r.Matches, Match{Name: v})
		p.cur = len(r.Matches) - 1
	case "-j", "--jump", "-g", "--goto":
		v, err := p.value(a)
		if err != nil {
			return err
		}
		if r.Target != "" || r.Goto {
			return errors.New("multiple -j flags not allowed")
		}
		r.Target, r.Goto = v, a == "-g" || a == "--goto"
		p.cur = -2
	case "-c", "--set-counters":
		v, err := p.value(a)
		if err != nil {
			return err
		}
		pk, by, ok := strings.Cut(v, ",")
		if !ok {
			if by, err = p.value(a); err != nil {
				return err
			}
		}
		pn, err1 := strconv.ParseUint(pk, 10, 64)
		bn, err2 := strconv.ParseUint(by, 10, 64)
		if err1 != nil || err2 != nil {
			return errors.New("-c packet and byte counters must be numeric")
		}
		r.Counter = Counter{pn, bn}
	default:
		if strings.HasPrefix(a, "--") {
			return p.extOption(a, inv)
		}
		return fmt.Errorf("unknown argument %q", a)
	}
	return nil
}

// extOption files an extension option under the target or a match, as
// iptables' command_default does: the target, the match it follows, the
// other matches in order, then the protocol's implicit match. Options of extensions that
// compat does not know go to the unknown extension they follow.
func (p *ruleParser) extOption(opt string, inv bool) error {
	r := p.r
	if n, ok := targetOpts[r.Target][opt]; ok && p.cur == -2 {
		return p.addOpt(&r.TargetArgs, r.Target, opt, n, false, inv)
	}
	if p.cur >= 0 {
		m := &r.Matches[p.cur]
		if n, ok := matchOpts[m.Name][opt]; ok {
			return p.addOpt(&m.Args, m.Name, opt, n, false, inv)
		}
	}
	for i := range r.Matches {
		if n, ok := matchOpts[r.Matches[i].Name][opt]; ok {
			return p.addOpt(&r.Matches[i].Args, r.Matches[i].Name, opt, n, false, inv)
		}
	}
	if name := implicitMatch(p.f, r.Proto); name != "" && !r.hasMatch(name) {
		if n, ok := matchOpts[name][opt]; ok {
			r.Matches = append(r.Matches, Match{Name: name})
			if p.cur != -2 {
				p.cur = len(r.Matches) - 1
			}
			return p.addOpt(&r.Matches[len(r.Matches)-1].Args, name, opt, n, false, inv)
		}
	}
	switch {
	case p.cur >= 0 && matchOpts[r.Matches[p.cur].Name] == nil:
		return p.addOpt(&r.Matches[p.cur].Args, r.Matches[p.cur].Name, opt, 0, true, inv)
	case p.cur == -2 && targetOpts[r.Target] == nil && !slices.Contains(standardTargets, r.Target):
		return p.addOpt(&r.TargetArgs, r.Target, opt, 0, true, inv)
	}
	return fmt.Errorf("unknown option %q", opt)
}

func (r *Rule) hasMatch(name string) bool {
	return slices.ContainsFunc(r.Matches, func(m Match) bool { return m.Name == name })
}

// implicitMatch is the match iptables loads for a protocol's options.
func implicitMatch(f Family, proto uint8) string {
	switch proto {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 1:
		if f == IPv4 {
			return "icmp"
		}
	case 58:
		if f == IPv6 {
			return "icmp6"
		}
	}
	return ""
}

// addOpt appends an option with its n values to args. With greedy (an
// unknown extension) it takes every following value that is not an
// option. Aliases are written as iptables-save writes them.
func (p *ruleParser) addOpt(args *[]string, ext, opt string, n int, greedy, inv bool) error {
	if inv {
		*args = append(*args, "!")
	}
	if al, ok := optAlias[opt]; ok {
		opt = al
	}
	if opt == "--syn" {
		*args = append(*args, "--tcp-flags", "FIN,SYN,RST,ACK", "SYN")
		return nil
	}
	*args = append(*args, opt)
	if greedy {
		for p.i < len(p.args) && !strings.HasPrefix(p.args[p.i], "-") && p.args[p.i] != "!" {
			*args = append(*args, p.args[p.i])
			p.i++
		}
		return nil
	}
	for range n {
		v, err := p.value(opt)
		if err != nil {
			return err
		}
		*args = append(*args, canonicalValue(p.f, ext, opt, v))
	}
	return nil
}

// parseProto is xtables_parse_protocol: a number, "all", a name from the
// protocols file or one of iptables' built-in names.
func parseProto(s string, names *Names) (uint8, error) {
	if n, err := parseUint(s, 255); err == nil {
		return uint8(n), nil
	}
	if s == "all" {
		return 0, nil
	}
	if n, ok := names.ProtocolNumber(s); ok {
		return n, nil
	}
	if s == "icmpv6" {
		return 58, nil
	}
	for _, c := range chainProtos {
		if c.name == s {
			return c.num, nil
		}
	}
	return 0, fmt.Errorf("unknown protocol \"%s\" specified", s)
}

// parseUint parses a decimal number no larger than max.
func parseUint(s string, max uint64) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return n, nil
}
