package compat

import (
	"fmt"
	"strings"
)

// This file reads the iptables command lines that change rules: -A, -I,
// -D, -C and -F, which dnft carries out on the operator's chain,
// DOCKER-USER (see [Edit]); the other changing commands are refused.

// UserChain is the one chain whose rules the operator changes with
// iptables commands.
const UserChain = "DOCKER-USER"

// Edit is a parsed iptables command that changes (or, -C, checks) the
// rules of a chain.
type Edit struct {
	// Op is 'A', 'I', 'D', 'C' or 'F'.
	Op rune
	// Table is -t (default filter), Chain the command's chain ("" for -F
	// without one).
	Table, Chain string
	// Num is the rule number of -I (0: the top) and of -D by number.
	Num int
	// Rule is the rule of -A, -I, -C and -D by specification.
	Rule *Rule
	// Verbose is -v: iptables then prints the rule it adds or deletes.
	Verbose bool
}

// editCommands are the command options, short and long.
var editCommands = map[string]rune{
	"-A": 'A', "--append": 'A', "-I": 'I', "--insert": 'I', "-D": 'D', "--delete": 'D',
	"-C": 'C', "--check": 'C', "-F": 'F', "--flush": 'F',
	"-N": 'N', "--new-chain": 'N', "-X": 'X', "--delete-chain": 'X', "-P": 'P', "--policy": 'P',
	"-E": 'E', "--rename-chain": 'E', "-R": 'R', "--replace": 'R', "-Z": 'Z', "--zero": 'Z',
}

// isNonOpt reports whether an argument is a value rather than an option
// (iptables' test for optional arguments: not starting with - or !).
func isNonOpt(a string) bool { return a != "" && a[0] != '-' && a[0] != '!' }

// ParseEdit reads an iptables command line that changes rules. ok is
// false when the line has no such command (a listing, -V, -h: see
// [ParseCommand]). Errors are *ExitError with iptables' messages and exit
// codes. The rule is read as iptables reads it; whether dnft can program
// it is for [UserRuleNFT] to say.
func ParseEdit(f Family, v Variant, args []string, names *Names) (e *Edit, ok bool, err error) {
	e = &Edit{Table: TableFilter}
	var rest []string
	seen := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if op, isCmd := editCommands[a]; isCmd {
			if seen {
				return nil, true, paramError(f, v, "Cannot use -%c with -%c", op, e.Op)
			}
			seen, e.Op = true, op
			switch op {
			case 'A', 'I', 'D', 'C', 'N', 'X', 'P', 'E', 'R':
				if i+1 >= len(args) && op != 'X' {
					return nil, true, paramError(f, v, "option \"%s\" requires an argument", a)
				}
				if i+1 < len(args) {
					e.Chain = args[i+1]
					i++
				}
			case 'F', 'Z':
				if i+1 < len(args) && isNonOpt(args[i+1]) {
					e.Chain = args[i+1]
					i++
				}
			}
			if (op == 'I' || op == 'D') && i+1 < len(args) && isNonOpt(args[i+1]) {
				n, err := parseRuleNumber(f, v, args[i+1])
				if err != nil {
					return nil, true, err
				}
				e.Num = n
				i++
			}
			continue
		}
		switch {
		case a == "-t" || a == "--table":
			if i+1 >= len(args) {
				return nil, seen, paramError(f, v, "option \"%s\" requires an argument", a)
			}
			e.Table = args[i+1]
			i++
		case strings.HasPrefix(a, "--table="):
			e.Table = strings.TrimPrefix(a, "--table=")
		case a == "-w" || a == "--wait":
			if i+1 < len(args) && isNonOpt(args[i+1]) {
				i++
			}
		case a == "-W" || a == "--wait-interval":
			if i+1 < len(args) {
				i++
			}
		case a == "-v" || a == "--verbose":
			e.Verbose = true
		case a == "-4" || a == "-6":
			if (a == "-4") != (f == IPv4) {
				return nil, true, &ExitError{Code: 2, Stderr: tryHelp(f)}
			}
		default:
			rest = append(rest, a)
		}
	}
	if !seen {
		return nil, false, nil
	}
	switch e.Op {
	case 'N':
		if e.Chain == UserChain {
			return nil, true, &ExitError{Code: 1, Stderr: progName(f) + ": Chain already exists.\n"}
		}
		fallthrough
	case 'X', 'P', 'E', 'R', 'Z':
		return nil, true, &ExitError{Code: 2, Stderr: fmt.Sprintf("%s %s: -%c: only the rules of %s can be changed with iptables commands (-A, -I, -D, -C, -F); the rest is dnft's, changed with dnft's commands\n",
			progName(f), v.ProgramVersion(), e.Op, UserChain)}
	}
	if e.Op == 'D' && e.Num != 0 || e.Op == 'F' {
		if len(rest) > 0 {
			return nil, true, paramError(f, v, "Illegal option `%s' with this command", rest[0])
		}
		return e, true, nil
	}
	r, err := ParseRuleArgs(f, rest, names)
	if err != nil {
		return nil, true, paramError(f, v, "%s", err.Error())
	}
	e.Rule = r
	return e, true, nil
}
