package compat

import (
	"fmt"
	"strconv"
	"strings"
)

// This file prints the -L text of matches and targets: what each
// extension's print() function writes in iptables 1.8.9 (FORMAT.md §7.5).
// Every text starts with a space.

// opt is one option of a match or target with its values and whether it
// was inverted ("! --opt v").
type opt struct {
	name string
	vals []string
	inv  bool
}

// splitOpts groups save-form arguments into options. Values are the
// arguments that follow an option up to the next option or "!".
func splitOpts(args []string) []opt {
	var out []opt
	inv := false
	for _, a := range args {
		switch {
		case a == "!":
			inv = true
		case strings.HasPrefix(a, "--") || len(out) == 0:
			out = append(out, opt{name: a, inv: inv})
			inv = false
		default:
			out[len(out)-1].vals = append(out[len(out)-1].vals, a)
		}
	}
	return out
}

func find(opts []opt, names ...string) (opt, bool) {
	for _, o := range opts {
		for _, n := range names {
			if o.name == n {
				return o, true
			}
		}
	}
	return opt{}, false
}

func first(o opt) string {
	if len(o.vals) == 0 {
		return ""
	}
	return o.vals[0]
}

// protoName is xtables_proto_to_name as the port printers use it: the
// built-in name, else the protocols file.
func protoName(p uint8, names *Names) string {
	for _, c := range chainProtos {
		if c.num == p {
			return c.name
		}
	}
	if s, ok := names.Protocol(p); ok {
		return s
	}
	return ""
}

// portText prints a port, or its service name unless numeric.
func portText(v, proto string, numeric bool, names *Names) string {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return v
	}
	if !numeric {
		if s, ok := names.Service(uint16(n), proto); ok {
			return s
		}
	}
	return strconv.FormatUint(n, 10)
}

// portsText is print_ports of libxt_tcp/udp/sctp: " spt:80",
// " dpts:8000:8010", " dpt:!http".
func portsText(label string, o opt, proto string, numeric bool, names *Names) string {
	v := first(o)
	inv := ""
	if o.inv {
		inv = "!"
	}
	lo, hi, isRange := strings.Cut(v, ":")
	if !isRange {
		return fmt.Sprintf(" %s:%s%s", label, inv, portText(lo, proto, numeric, names))
	}
	if lo == "0" && hi == "65535" && !o.inv {
		return ""
	}
	return fmt.Sprintf(" %ss:%s%s:%s", label, inv, portText(lo, proto, numeric, names), portText(hi, proto, numeric, names))
}

// tcpFlags are the TCP flag names in the order print_tcpf tries them.
var tcpFlags = []struct {
	name string
	bit  uint8
}{{"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08}, {"ACK", 0x10}, {"URG", 0x20}, {"ALL", 0x3F}, {"NONE", 0}}

func parseTCPFlags(s string) uint8 {
	var b uint8
	for _, name := range strings.Split(s, ",") {
		for _, f := range tcpFlags {
			if f.name == name {
				b |= f.bit
			}
		}
	}
	return b
}

func tcpFlagText(b uint8) string {
	var parts []string
	for b != 0 {
		for _, f := range tcpFlags {
			if b&f.bit != 0 {
				parts = append(parts, f.name)
				b &^= f.bit
				break
			}
		}
	}
	if len(parts) == 0 {
		return "NONE"
	}
	return strings.Join(parts, ",")
}

// matchText returns the -L text of one match of rule r.
func matchText(f Family, r *Rule, m Match, numeric bool, names *Names) string {
	opts := splitOpts(m.Args)
	switch m.Name {
	case "tcp", "udp", "sctp":
		s := " " + m.Name
		if o, ok := find(opts, "--sport"); ok {
			s += portsText("spt", o, m.Name, numeric, names)
		}
		if o, ok := find(opts, "--dport"); ok {
			s += portsText("dpt", o, m.Name, numeric, names)
		}
		if o, ok := find(opts, "--tcp-option"); ok {
			inv := ""
			if o.inv {
				inv = "!"
			}
			s += fmt.Sprintf(" option=%s%s", inv, first(o))
		}
		if o, ok := find(opts, "--tcp-flags"); ok && len(o.vals) == 2 {
			inv := ""
			if o.inv {
				inv = "!"
			}
			mask, cmp := parseTCPFlags(o.vals[0]), parseTCPFlags(o.vals[1])
			if numeric {
				s += fmt.Sprintf(" flags:%s0x%02X/0x%02X", inv, mask, cmp)
			} else {
				s += fmt.Sprintf(" flags:%s%s/%s", inv, tcpFlagText(mask), tcpFlagText(cmp))
			}
		}
		return s
	case "multiport":
		return multiportText(r, opts, numeric, names)
	case "addrtype":
		s := " ADDRTYPE match"
		for _, k := range []struct{ opt, label string }{{"--src-type", "src-type"}, {"--dst-type", "dst-type"}} {
			if o, ok := find(opts, k.opt); ok {
				inv := ""
				if o.inv {
					inv = "!"
				}
				s += fmt.Sprintf(" %s %s%s", k.label, inv, sortList(first(o), addrTypes))
			}
		}
		if _, ok := find(opts, "--limit-iface-in"); ok {
			s += " limit-in"
		}
		if _, ok := find(opts, "--limit-iface-out"); ok {
			s += " limit-out"
		}
		return s
	case "conntrack", "state":
		return conntrackText(f, opts, numeric, names)
	case "iprange":
		var s string
		for _, k := range []struct{ opt, label string }{{"--src-range", " source IP range"}, {"--dst-range", " destination IP range"}} {
			if o, ok := find(opts, k.opt); ok {
				s += k.label
				if o.inv {
					s += " !"
				}
				s += " " + first(o)
			}
		}
		return s
	case "comment":
		return " /* " + first(opts0(opts)) + " */"
	case "mark":
		o := opts0(opts)
		s := " mark match"
		if o.inv {
			s += " !"
		}
		if mk, mask, ok := parseMark(first(o)); ok {
			if mask == 0xffffffff {
				return s + fmt.Sprintf(" 0x%x", mk)
			}
			return s + fmt.Sprintf(" 0x%x/0x%x", mk, mask)
		}
		return s + " " + first(o)
	case "icmp":
		o := opts0(opts)
		return " icmp" + icmpText(IPv4, first(o), o.inv, numeric)
	case "icmp6":
		o := opts0(opts)
		return " ipv6-icmp" + icmpText(IPv6, first(o), o.inv, numeric)
	}
	s := " " + m.Name
	if len(m.Args) > 0 {
		s += " " + strings.Join(m.Args, " ")
	}
	return s
}

func opts0(opts []opt) opt {
	if len(opts) == 0 {
		return opt{}
	}
	return opts[0]
}

// multiportText is __multiport_print_v1.
func multiportText(r *Rule, opts []opt, numeric bool, names *Names) string {
	o := opts0(opts)
	s := " multiport "
	switch o.name {
	case "--sports":
		s += "sports "
	case "--dports":
		s += "dports "
	case "--ports":
		s += "ports "
	default:
		s += "ERROR "
	}
	if o.inv {
		s += " !"
	}
	proto := protoName(r.Proto, names)
	for i, p := range strings.Split(first(o), ",") {
		if i > 0 {
			s += ","
		}
		lo, hi, isRange := strings.Cut(p, ":")
		s += portText(lo, proto, numeric, names)
		if isRange {
			s += ":" + portText(hi, proto, numeric, names)
		}
	}
	return s
}

// conntrackOrder is the order in which conntrack_dump prints options,
// with the label it prints.
var conntrackOrder = []struct{ opt, label string }{
	{"--ctstate", "ctstate"}, {"--state", "state"}, {"--ctproto", "ctproto"},
	{"--ctorigsrc", "ctorigsrc"}, {"--ctorigdst", "ctorigdst"}, {"--ctreplsrc", "ctreplsrc"}, {"--ctrepldst", "ctrepldst"},
	{"--ctorigsrcport", "ctorigsrcport"}, {"--ctorigdstport", "ctorigdstport"},
	{"--ctreplsrcport", "ctreplsrcport"}, {"--ctrepldstport", "ctrepldstport"},
	{"--ctstatus", "ctstatus"}, {"--ctexpire", "ctexpire"}, {"--ctdir", "ctdir"},
}

// conntrackText is conntrack_dump (also for -m state).
func conntrackText(f Family, opts []opt, numeric bool, names *Names) string {
	var s strings.Builder
	for _, k := range conntrackOrder {
		o, ok := find(opts, k.opt)
		if !ok {
			continue
		}
		if o.inv {
			s.WriteString(" !")
		}
		v := first(o)
		switch k.opt {
		case "--ctstate", "--state":
			s.WriteString(" " + k.label + " " + sortList(v, ctStates))
		case "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst":
			s.WriteString(" " + k.label + ctAddrText(f, v, numeric, names))
		default:
			s.WriteString(" " + k.label + " " + v)
		}
	}
	return s.String()
}

// ctAddrText is conntrack_dump_addr.
func ctAddrText(f Family, v string, numeric bool, names *Names) string {
	a, err := ParseAddr(f, v)
	if err != nil {
		return " " + v
	}
	if !numeric && a.IP.IsUnspecified() {
		return " anywhere"
	}
	return " " + hostText(a.IP, numeric, names) + maskText(a)
}

// logLevelNames are the names LOG prints for syslog levels.
var logLevelNames = []string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}

// logFlagBits are LOG's flag bits, in the order LOG prints them.
var logFlagBits = []struct {
	opt, label string
	bit        int
}{
	{"--log-tcp-sequence", "tcp-sequence", 0x01}, {"--log-tcp-options", "tcp-options", 0x02},
	{"--log-ip-options", "ip-options", 0x04}, {"--log-uid", "uid", 0x08}, {"--log-macdecode", "macdecode", 0x20},
}

// targetText returns the -L text of a rule's target.
func targetText(f Family, r *Rule, numeric bool) string {
	opts := splitOpts(r.TargetArgs)
	switch r.Target {
	case "DNAT", "SNAT":
		var s string
		if o, ok := find(opts, "--to-destination", "--to-source"); ok {
			s = " to:" + first(o)
		}
		for _, k := range []string{"--random", "--random-fully", "--persistent"} {
			if _, ok := find(opts, k); ok {
				s += " " + k[2:]
			}
		}
		return s
	case "MASQUERADE", "REDIRECT":
		var s string
		if o, ok := find(opts, "--to-ports"); ok {
			if r.Target == "MASQUERADE" {
				s = " masq ports: " + first(o)
			} else {
				s = " redir ports " + first(o)
			}
		}
		for _, k := range []string{"--random", "--random-fully"} {
			if _, ok := find(opts, k); ok {
				s += " " + k[2:]
			}
		}
		return s
	case "REJECT":
		if o, ok := find(opts, "--reject-with"); ok {
			return " reject-with " + first(o)
		}
		return ""
	case "LOG":
		return logText(opts, numeric)
	case "CHECKSUM":
		if _, ok := find(opts, "--checksum-fill"); ok {
			return " CHECKSUM fill"
		}
		return " CHECKSUM"
	case "MARK":
		o, _ := find(opts, "--set-xmark")
		m, k, ok := parseMark(first(o))
		switch {
		case !ok:
			return ""
		case m == 0:
			return fmt.Sprintf(" MARK and 0x%x", ^k)
		case m == k:
			return fmt.Sprintf(" MARK or 0x%x", m)
		case k == 0:
			return fmt.Sprintf(" MARK xor 0x%x", m)
		case k == 0xffffffff:
			return fmt.Sprintf(" MARK set 0x%x", m)
		}
		return fmt.Sprintf(" MARK xset 0x%x/0x%x", m, k)
	}
	return ""
}

// logText is LOG_print.
func logText(opts []opt, numeric bool) string {
	level := 4
	if o, ok := find(opts, "--log-level"); ok {
		if n, err := strconv.Atoi(first(o)); err == nil {
			level = n
		}
	}
	flags := 0
	for _, fb := range logFlagBits {
		if _, ok := find(opts, fb.opt); ok {
			flags |= fb.bit
		}
	}
	s := " LOG"
	if numeric {
		s += fmt.Sprintf(" flags %d level %d", flags, level)
	} else {
		if level >= 0 && level < len(logLevelNames) {
			s += " level " + logLevelNames[level]
		} else {
			s += fmt.Sprintf(" UNKNOWN level %d", level)
		}
		for _, fb := range logFlagBits {
			if flags&fb.bit != 0 {
				s += " " + fb.label
			}
		}
	}
	if o, ok := find(opts, "--log-prefix"); ok && first(o) != "" {
		s += ` prefix "` + first(o) + `"`
	}
	return s
}
