package compat

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file reads iptables' and iptables-save's command lines as iptables
// 1.8.9 does (do_parse in iptables/xshared.c, iptables-save's main), and
// runs the read-only commands against a [Ruleset]: -L, -S, -V, -h and
// iptables-save. Error messages and exit codes are iptables': 1 for a
// missing chain, 2 for a parameter problem, 3 for an unknown table.
// Commands that would change the ruleset (-A, -D, -F, ...) are refused
// with exit code 2: the view is read-only.

// ExitError is a failed command: what it writes to standard error and
// its exit code.
type ExitError struct {
	Code   int
	Stderr string
}

// Error returns the message and the exit code.
func (e *ExitError) Error() string {
	return strings.TrimRight(e.Stderr, "\n") + " (exit " + strconv.Itoa(e.Code) + ")"
}

// Command is a parsed iptables or ip6tables command line.
type Command struct {
	// Table is -t (default filter).
	Table string
	// List is -L, ListRules -S; Version is -V, Help -h.
	List, ListRules, Version, Help bool
	// Chain and Rule are the optional arguments of -L and -S.
	Chain string
	Rule  int
	// HasChain is true when a chain was given (it may be "").
	HasChain bool
	// Numeric, Verbose, Exact and LineNumbers are -n, -v, -x and
	// --line-numbers.
	Numeric, Verbose, Exact, LineNumbers bool
	// Inverted -V prints "Not ... ;-)".
	notVersion bool
}

// iptablesOpts are iptables' long options (original_opts).
var iptablesOpts = []longOpt{
	{"append", reqArg, 'A'}, {"delete", reqArg, 'D'}, {"check", reqArg, 'C'}, {"insert", reqArg, 'I'},
	{"replace", reqArg, 'R'}, {"list", optArg, 'L'}, {"list-rules", optArg, 'S'}, {"flush", optArg, 'F'},
	{"zero", optArg, 'Z'}, {"new-chain", reqArg, 'N'}, {"delete-chain", optArg, 'X'},
	{"rename-chain", reqArg, 'E'}, {"policy", reqArg, 'P'}, {"source", reqArg, 's'},
	{"destination", reqArg, 'd'}, {"src", reqArg, 's'}, {"dst", reqArg, 'd'}, {"protocol", reqArg, 'p'},
	{"in-interface", reqArg, 'i'}, {"jump", reqArg, 'j'}, {"table", reqArg, 't'}, {"match", reqArg, 'm'},
	{"numeric", noArg, 'n'}, {"out-interface", reqArg, 'o'}, {"verbose", noArg, 'v'},
	{"wait", optArg, 'w'}, {"wait-interval", optArg, 'W'}, {"exact", noArg, 'x'},
	{"fragments", noArg, 'f'}, {"version", noArg, 'V'}, {"help", optArg, 'h'},
	{"line-numbers", noArg, '0'}, {"modprobe", reqArg, 'M'}, {"set-counters", reqArg, 'c'},
	{"goto", reqArg, 'g'}, {"ipv4", noArg, '4'}, {"ipv6", noArg, '6'},
}

const iptablesOptstring = "-:A:C:D:E:F::I:L::M:N:P:VX::Z::c:d:i:j:o:p:s:t:R:S::W::46bfg:h::m:nvw::x"

// Option bits of set_option, in the order of iptables' optflags (the
// order generic_opt_check reports illegal options in).
const (
	optNumeric = 1 << iota
	optSource
	optDest
	optProto
	optJump
	optVerbose
	optExact
	optInIface
	optOutIface
	optLineNumbers
	optCounters
	optFragment
)

// optChars are the option letters of the bits above.
var optChars = []byte{'n', 's', 'd', 'p', 'j', 'v', 'x', 'i', 'o', '0', 'c', 'f'}

// invertible lists the options that take a '!'.
const invertible = optSource | optDest | optProto | optInIface | optOutIface | optFragment

// Options each command does not allow (generic_opt_check's table).
const (
	illegalWithList      = optSource | optDest | optProto | optJump | optInIface | optOutIface | optCounters | optFragment
	illegalWithListRules = optNumeric | optSource | optDest | optProto | optJump | optExact | optInIface | optOutIface | optLineNumbers | optCounters | optFragment
)

// knownMatches are the match extensions -m accepts (with -L and -S they
// have no effect); others fail as iptables fails for an extension it
// cannot load.
var knownMatches = map[string]bool{
	"addrtype": true, "ah": true, "bpf": true, "cgroup": true, "cluster": true, "comment": true,
	"connbytes": true, "connlabel": true, "connlimit": true, "connmark": true, "conntrack": true,
	"cpu": true, "dccp": true, "devgroup": true, "dscp": true, "ecn": true, "esp": true,
	"hashlimit": true, "helper": true, "icmp": true, "icmp6": true, "iprange": true, "ipvs": true,
	"length": true, "limit": true, "mac": true, "mark": true, "multiport": true, "nfacct": true,
	"osf": true, "owner": true, "physdev": true, "pkttype": true, "policy": true, "quota": true,
	"rateest": true, "realm": true, "recent": true, "rpfilter": true, "sctp": true, "set": true,
	"socket": true, "state": true, "statistic": true, "string": true, "tcp": true, "tcpmss": true,
	"time": true, "tos": true, "ttl": true, "u32": true, "udp": true, "udplite": true,
}

func progName(f Family) string { return f.Tool() }

// paramError is xtables_error(PARAMETER_PROBLEM, ...): the message with
// the program and version, then the "Try" line; exit code 2.
func paramError(f Family, v Variant, format string, args ...any) *ExitError {
	return &ExitError{Code: 2, Stderr: fmt.Sprintf("%s %s: %s\n", progName(f), v.ProgramVersion(), fmt.Sprintf(format, args...)) + tryHelp(f)}
}

func tryHelp(f Family) string {
	p := progName(f)
	return fmt.Sprintf("Try `%s -h' or '%s --help' for more information.\n", p, p)
}

// parseRuleNumber is parse_rulenumber: strtoul with base 0, 1..INT_MAX.
func parseRuleNumber(f Family, v Variant, s string) (int, error) {
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil || n < 1 || n > 1<<31-1 {
		return 0, paramError(f, v, "Invalid rule number `%s'", s)
	}
	return int(n), nil
}

// ParseCommand reads an iptables (IPv4) or ip6tables (IPv6) command line
// (without the program name). Errors are *ExitError. Warnings iptables
// prints while parsing (deprecated options) are returned in warn.
func ParseCommand(f Family, v Variant, args []string) (cmd *Command, warn string, err error) {
	cmd = &Command{Table: TableFilter}
	g := &getopt{args: args, short: parseOptstring(iptablesOptstring), long: iptablesOpts, inOrder: true, prog: progName(f)}
	var options int
	var addrs []string // -s and -d values, checked after the loop (post_parse)
	invert := false
	wait, waitInterval := false, false
	setOption := func(bit int) error {
		i := 0
		for 1<<i != bit {
			i++
		}
		if options&bit != 0 {
			return paramError(f, v, "multiple -%c flags not allowed", optChars[i])
		}
		options |= bit
		if invert && bit&invertible == 0 {
			return paramError(f, v, "cannot have ! before -%c", optChars[i])
		}
		return nil
	}
	addCommand := func(c rune) error {
		if invert {
			return paramError(f, v, "unexpected '!' flag")
		}
		switch {
		case c == 'Z':
			// -Z may go with -L and -S (and is refused as a change)
		case cmd.List:
			return paramError(f, v, "Cannot use -%c with -L", c)
		case cmd.ListRules:
			return paramError(f, v, "Cannot use -%c with -S", c)
		}
		return nil
	}
	for {
		c, optarg, hasOptarg, done := g.next()
		if done {
			break
		}
		switch c {
		case 'L', 'S':
			if err := addCommand(c); err != nil {
				return nil, warn, err
			}
			cmd.List, cmd.ListRules = cmd.List || c == 'L', cmd.ListRules || c == 'S'
			switch {
			case hasOptarg:
				cmd.Chain, cmd.HasChain = optarg, true
			case g.hasArg():
				cmd.Chain, cmd.HasChain = g.args[g.optind], true
				g.optind++
			}
			if g.hasArg() {
				n, err := parseRuleNumber(f, v, g.args[g.optind])
				if err != nil {
					return nil, warn, err
				}
				g.optind++
				cmd.Rule = n
			}
		case 'A', 'C', 'D', 'R', 'I', 'F', 'Z', 'N', 'X', 'E', 'P':
			if err := addCommand(c); err != nil {
				return nil, warn, err
			}
			return nil, warn, &ExitError{Code: 2, Stderr: fmt.Sprintf("%s %s: -%c: dnft's iptables view is read-only; change the rules with dnft's commands\n", progName(f), v.ProgramVersion(), c)}
		case 'h':
			cmd.Help = true
			return cmd, warn, nil
		case 'V':
			cmd.Version, cmd.notVersion = true, invert
			return cmd, warn, nil
		case 'p':
			if err := setOption(optProto); err != nil {
				return nil, warn, err
			}
			n, err := parseProto(strings.ToLower(optarg), nil)
			if err != nil {
				return nil, warn, paramError(f, v, "%s", err.Error())
			}
			if n == 0 && invert {
				return nil, warn, paramError(f, v, "rule would never match protocol")
			}
		case 's', 'd':
			if err := setOption(map[rune]int{'s': optSource, 'd': optDest}[c]); err != nil {
				return nil, warn, err
			}
			addrs = append(addrs, optarg)
		case 'j', 'g', 'i', 'o', 'f', 'n', 'x', '0', 'v':
			bit := map[rune]int{'j': optJump, 'g': optJump, 'i': optInIface,
				'o': optOutIface, 'f': optFragment, 'n': optNumeric, 'x': optExact, '0': optLineNumbers, 'v': optVerbose}[c]
			if c == 'v' && cmd.Verbose {
				break // -v -v raises verbosity; it is set once
			}
			if (c == 'i' || c == 'o') && optarg == "" {
				return nil, warn, paramError(f, v, "Empty interface is likely to be undesired")
			}
			if c == 'f' && f == IPv6 {
				return nil, warn, paramError(f, v, "`-f' is not supported in IPv6, use -m frag instead")
			}
			if err := setOption(bit); err != nil {
				return nil, warn, err
			}
			switch c {
			case 'n':
				cmd.Numeric = true
			case 'x':
				cmd.Exact = true
			case '0':
				cmd.LineNumbers = true
			case 'v':
				cmd.Verbose = true
			}
		case 'm':
			if invert {
				return nil, warn, paramError(f, v, "unexpected ! flag before --match")
			}
			if !knownMatches[optarg] {
				return nil, warn, paramError(f, v, "Couldn't load match `%s':No such file or directory\n", optarg)
			}
		case 't':
			if invert {
				return nil, warn, paramError(f, v, "unexpected ! flag before --table")
			}
			cmd.Table = optarg
		case 'c':
			if err := setOption(optCounters); err != nil {
				return nil, warn, err
			}
			pk, by, ok := strings.Cut(optarg, ",")
			if !ok && g.hasArg() {
				by, ok = g.args[g.optind], true
				g.optind++
			}
			if !ok {
				return nil, warn, paramError(f, v, "-c requires packet and byte counter")
			}
			if _, err := strconv.ParseUint(pk, 10, 64); err != nil {
				return nil, warn, paramError(f, v, "-c packet counter not numeric")
			}
			if _, err := strconv.ParseUint(by, 10, 64); err != nil {
				return nil, warn, paramError(f, v, "-c byte counter not numeric")
			}
		case 'w':
			wait = true
			arg, has := optarg, hasOptarg
			if !has && g.hasArg() {
				arg, has = g.args[g.optind], true
				g.optind++
			}
			if has {
				if _, err := strconv.ParseInt(strings.TrimSpace(arg), 0, 32); err != nil {
					return nil, warn, paramError(f, v, "wait seconds not numeric")
				}
			}
		case 'W':
			arg, has := optarg, hasOptarg
			if !has && g.hasArg() {
				arg, has = g.args[g.optind], true
				g.optind++
			}
			if !has {
				return nil, warn, paramError(f, v, "wait interval value required")
			}
			usec, err := strconv.ParseUint(arg, 10, 32)
			if err != nil {
				return nil, warn, paramError(f, v, "wait interval not numeric")
			}
			if usec > 999999 {
				return nil, warn, paramError(f, v, "too long usec wait %d > 999999 usec", usec)
			}
			warn += "Ignoring deprecated --wait-interval option.\n"
			waitInterval = true
		case 'M':
			// --modprobe: ignored
		case 'b':
			// in the optstring, but handled by no case of do_parse
			return nil, warn, paramError(f, v, "Unknown arg \"(null)\"")
		case '4', '6':
			if (c == '4') != (f == IPv4) {
				return nil, warn, &ExitError{Code: 2, Stderr: tryHelp(f)}
			}
		case codeNonOpt:
			if optarg == "!" {
				if invert {
					return nil, warn, paramError(f, v, "multiple consecutive ! not allowed")
				}
				invert = true
				continue
			}
			return nil, warn, &ExitError{Code: 2, Stderr: fmt.Sprintf("Bad argument `%s'\n", optarg) + tryHelp(f)}
		case codeMissing:
			return nil, warn, paramError(f, v, "option \"%s\" requires an argument", g.errArg)
		default:
			return nil, warn, paramError(f, v, "unknown option \"%s\"", g.errArg)
		}
		invert = false
	}
	if !wait && waitInterval {
		return nil, warn, paramError(f, v, "--wait-interval only makes sense with --wait\n")
	}
	if g.optind < len(args) {
		return nil, warn, paramError(f, v, "unknown arguments found on commandline")
	}
	if !cmd.List && !cmd.ListRules {
		return nil, warn, paramError(f, v, "no command specified")
	}
	if invert {
		return nil, warn, paramError(f, v, "nothing appropriate following !")
	}
	for _, a := range addrs {
		if _, err := ParseAddr(f, a); err != nil {
			return nil, warn, paramError(f, v, "%s", err.Error())
		}
	}
	illegal := illegalWithList
	if cmd.ListRules {
		illegal = illegalWithListRules
	}
	for i, ch := range optChars {
		if options&illegal&(1<<i) != 0 {
			return nil, warn, paramError(f, v, "Illegal option `-%c' with this command", ch)
		}
	}
	if len(cmd.Chain) >= 29 {
		return nil, warn, paramError(f, v, "chain name `%s' too long (must be under 29 chars)", cmd.Chain)
	}
	return cmd, warn, nil
}

// TableError is iptables' error for a table it does not know (exit 3).
func TableError(f Family, v Variant, table string) *ExitError { return tableError(f, v, table) }

// tableError is the error for a table iptables does not know.
func tableError(f Family, v Variant, table string) *ExitError {
	if v == Legacy {
		return &ExitError{Code: 3, Stderr: fmt.Sprintf("%s %s: can't initialize %s table `%s': Table does not exist (do you need to insmod?)\nPerhaps %s or your kernel needs to be upgraded.\n",
			progName(f), v.ProgramVersion(), progName(f), table, progName(f))}
	}
	return &ExitError{Code: 3, Stderr: fmt.Sprintf("%s %s: table '%s' does not exist\nPerhaps %s or your kernel needs to be upgraded.\n",
		progName(f), v.ProgramVersion(), table, progName(f))}
}

// chainError is the error for a chain that does not exist.
func chainError(f Family, v Variant, table, chain string) *ExitError {
	if v == Legacy {
		return &ExitError{Code: 1, Stderr: progName(f) + ": No chain/target/match by that name.\n"}
	}
	return &ExitError{Code: 1, Stderr: fmt.Sprintf("%s %s: chain `%s' in table `%s' is incompatible, use 'nft' tool.\n",
		progName(f), v.ProgramVersion(), chain, table)}
}

// helpText is printed for -h. It is not iptables' help text: it lists
// what this read-only view supports.
func helpText(f Family, v Variant) string {
	p := progName(f)
	return fmt.Sprintf(`%[1]s %[2]s (dnft's read-only view)

Usage: %[1]s [-t table] -L [chain [rulenum]] [options...]
       %[1]s [-t table] -S [chain [rulenum]] [-v]
       %[1]s -V
       %[1]s -h

Commands:
  --list    -L [chain [rulenum]]  List the rules in a chain or all chains
  --list-rules -S [chain [rulenum]]
                                  Print the rules in a chain or all chains
Options:
  --table   -t table              table to show (default: filter)
  --numeric -n                    numeric output of addresses and ports
  --verbose -v                    verbose mode (counters and interfaces)
  --exact   -x                    expand numbers (display exact values)
  --line-numbers                  print line numbers when listing
`, p, v.ProgramVersion())
}

// Run runs an iptables (rs.Family IPv4) or ip6tables (IPv6) command line
// (without the program name) against a ruleset and returns its exit code.
// Only reading commands are supported.
func Run(rs *Ruleset, v Variant, names *Names, args []string, stdout, stderr io.Writer) int {
	f := rs.Family
	cmd, warn, err := ParseCommand(f, v, args)
	io.WriteString(stderr, warn)
	if err != nil {
		return writeExit(stderr, err)
	}
	switch {
	case cmd.Version && cmd.notVersion:
		fmt.Fprintf(stdout, "Not %s ;-)\n", strings.TrimPrefix(v.ProgramVersion(), "v"))
		return 0
	case cmd.Version:
		fmt.Fprintf(stdout, "%s %s\n", progName(f), v.ProgramVersion())
		return 0
	case cmd.Help:
		io.WriteString(stdout, helpText(f, v))
		return 0
	}
	t := rs.Table(cmd.Table)
	if t == nil {
		return writeExit(stderr, tableError(f, v, cmd.Table))
	}
	if cmd.HasChain && t.Chain(cmd.Chain) == nil {
		return writeExit(stderr, chainError(f, v, cmd.Table, cmd.Chain))
	}
	if cmd.List {
		err = t.List(stdout, ListOptions{Chain: cmd.Chain, Rule: cmd.Rule, Numeric: cmd.Numeric,
			Verbose: cmd.Verbose, Exact: cmd.Exact, LineNumbers: cmd.LineNumbers}, names)
	} else {
		err = t.ListRules(stdout, cmd.Chain, cmd.Rule, cmd.Verbose, names)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", progName(f), v.ProgramVersion(), err)
		return 1
	}
	return 0
}

func writeExit(w io.Writer, err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		io.WriteString(w, ee.Stderr)
		return ee.Code
	}
	fmt.Fprintln(w, err)
	return 1
}
