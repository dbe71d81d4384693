package compat

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// saveOpts are iptables-save's long options.
var saveOpts = []longOpt{
	{"binary", noArg, 'b'}, {"counters", noArg, 'c'}, {"dump", noArg, 'd'}, {"table", reqArg, 't'},
	{"modprobe", reqArg, 'M'}, {"file", reqArg, 'f'}, {"version", noArg, 'V'},
}

// RunSave runs an iptables-save (rs.Family IPv4) or ip6tables-save (IPv6)
// command line (without the program name) against a ruleset and returns
// its exit code. now is written in the header and footer comments.
func RunSave(rs *Ruleset, v Variant, names *Names, now time.Time, args []string, stdout, stderr io.Writer) int {
	prog := rs.Family.Tool() + "-save"
	manual := fmt.Sprintf("Look at manual page `%s.8' for more information.\n", prog)
	g := &getopt{args: args, short: parseOptstring("bcdt:M:f:V"), long: saveOpts, prog: prog}
	opt := SaveOptions{Variant: v, Now: now, Names: names}
	file := ""
	for {
		c, optarg, _, done := g.next()
		if done {
			break
		}
		switch c {
		case 'c':
			opt.Counters = true
		case 't':
			opt.Table = optarg
		case 'f':
			file = optarg
		case 'V':
			fmt.Fprintf(stdout, "%s %s\n", prog, v.ProgramVersion())
			return 0
		case 'b':
			fmt.Fprintln(stderr, "-b/--binary option is not implemented")
		case 'd', 'M':
		case codeMissing:
			if g.errShort != 0 {
				fmt.Fprintf(stderr, "%s: option requires an argument -- '%c'\n%s", prog, g.errShort, manual)
			} else {
				fmt.Fprintf(stderr, "%s: option '%s' requires an argument\n%s", prog, g.errArg, manual)
			}
			return 1
		default:
			switch {
			case g.errShort != 0:
				fmt.Fprintf(stderr, "%s: invalid option -- '%c'\n%s", prog, g.errShort, manual)
			case g.errKind == "noarg":
				name, _, _ := strings.Cut(g.errArg, "=")
				fmt.Fprintf(stderr, "%s: option '%s' doesn't allow an argument\n%s", prog, name, manual)
			case g.errKind == "ambiguous":
				fmt.Fprintf(stderr, "%s: option '%s' is ambiguous\n%s", prog, g.errArg, manual)
			default:
				fmt.Fprintf(stderr, "%s: unrecognized option '%s'\n%s", prog, g.errArg, manual)
			}
			return 1
		}
	}
	if g.optind < len(args) {
		fmt.Fprintf(stderr, "Unknown arguments found on commandline\n")
		return 1
	}
	if opt.Table != "" && rs.Table(opt.Table) == nil {
		if v == Legacy {
			fmt.Fprintf(stderr, "%s %s: Cannot initialize: Table does not exist (do you need to insmod?)\n", prog, v.ProgramVersion())
		} else {
			fmt.Fprintf(stderr, "Table `%s' does not exist\n", opt.Table)
		}
		return 1
	}
	out := stdout
	if file != "" {
		fh, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "Failed to open file, error: %v\n", err)
			return 1
		}
		defer fh.Close()
		out = fh
	}
	if err := rs.Save(out, opt); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	return 0
}
