package compat

import "strings"

// This file is a small GNU getopt_long, enough to read iptables' and
// iptables-save's command lines exactly as they do: clustered short
// options, optional arguments ("L::" takes "-LCHAIN" but not "-L CHAIN"),
// "--long=value", unique prefixes of long options, and (with inOrder, the
// "-" at the start of iptables' optstring) non-options returned in place.

// Argument kinds of an option.
const (
	noArg = iota
	reqArg
	optArg
)

type longOpt struct {
	name   string
	hasArg int
	val    rune
}

// Codes returned by getopt.next besides option characters.
const (
	codeNonOpt  = 1   // a non-option argument (optarg is it)
	codeMissing = ':' // an option without its required argument
	codeUnknown = '?' // an unknown or ambiguous option
)

type getopt struct {
	args     []string
	optind   int
	nextchar string
	short    map[rune]int
	long     []longOpt
	inOrder  bool
	// prog is argv[0], which error messages name when the C code's
	// argv[optind-1] falls before the first argument.
	prog string
	// errArg is the option as written, for error messages (the element
	// argv[optind-1] of the C code, or the short option character).
	errArg   string
	errShort rune
	errKind  string // "ambiguous", "noarg" for long option errors
}

// parseOptstring turns a getopt optstring into the short option table.
func parseOptstring(s string) map[rune]int {
	m := map[rune]int{}
	s = strings.TrimLeft(s, "-+:")
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		kind := noArg
		if i+1 < len(s) && s[i+1] == ':' {
			kind = reqArg
			i++
			if i+1 < len(s) && s[i+1] == ':' {
				kind = optArg
				i++
			}
		}
		m[c] = kind
	}
	return m
}

// next returns the next option code and its argument; done is true when
// the arguments are exhausted (or "--" ended them).
func (g *getopt) next() (code rune, optarg string, hasArg bool, done bool) {
	g.errArg, g.errShort, g.errKind = "", 0, ""
	if g.nextchar == "" {
		if g.optind >= len(g.args) {
			return 0, "", false, true
		}
		a := g.args[g.optind]
		if a == "--" {
			g.optind++
			return 0, "", false, true
		}
		if a == "-" || !strings.HasPrefix(a, "-") {
			if !g.inOrder {
				return 0, "", false, true
			}
			g.optind++
			return codeNonOpt, a, true, false
		}
		if strings.HasPrefix(a, "--") {
			g.optind++
			return g.longOpt(a)
		}
		g.nextchar = a[1:]
		g.optind++
	}
	c := rune(g.nextchar[0])
	g.nextchar = g.nextchar[1:]
	// GNU getopt moves optind past a cluster only once its last
	// character is consumed.
	switch {
	case g.nextchar == "":
		g.errArg = g.args[g.optind-1]
	case g.optind >= 2:
		g.errArg = g.args[g.optind-2]
	default:
		g.errArg = g.prog
	}
	kind, ok := g.short[c]
	if !ok {
		g.errShort = c
		return codeUnknown, "", false, false
	}
	switch kind {
	case reqArg:
		if g.nextchar != "" {
			v := g.nextchar
			g.nextchar = ""
			return c, v, true, false
		}
		if g.optind >= len(g.args) {
			g.errShort = c
			return codeMissing, "", false, false
		}
		v := g.args[g.optind]
		g.optind++
		return c, v, true, false
	case optArg:
		if g.nextchar != "" {
			v := g.nextchar
			g.nextchar = ""
			return c, v, true, false
		}
		return c, "", false, false
	}
	return c, "", false, false
}

func (g *getopt) longOpt(a string) (rune, string, bool, bool) {
	g.errArg = a
	name, val, hasVal := strings.Cut(a[2:], "=")
	var match *longOpt
	ambiguous := false
	for i := range g.long {
		o := &g.long[i]
		if o.name == name {
			match, ambiguous = o, false
			break
		}
		if strings.HasPrefix(o.name, name) {
			if match == nil {
				match = o
			} else if match.hasArg != o.hasArg || match.val != o.val {
				ambiguous = true
			}
		}
	}
	switch {
	case match == nil:
		return codeUnknown, "", false, false
	case ambiguous:
		g.errKind = "ambiguous"
		return codeUnknown, "", false, false
	}
	g.errArg = "--" + match.name
	switch match.hasArg {
	case noArg:
		if hasVal {
			g.errKind = "noarg"
			g.errArg = a
			return codeUnknown, "", false, false
		}
		return match.val, "", false, false
	case reqArg:
		if hasVal {
			return match.val, val, true, false
		}
		if g.optind >= len(g.args) {
			return codeMissing, "", false, false
		}
		v := g.args[g.optind]
		g.optind++
		return match.val, v, true, false
	}
	if hasVal {
		return match.val, val, true, false
	}
	return match.val, "", false, false
}

// hasArg is xs_has_arg: the next argument exists and starts with neither
// '-' nor '!'.
func (g *getopt) hasArg() bool {
	return g.optind < len(g.args) && (g.args[g.optind] == "" || (g.args[g.optind][0] != '-' && g.args[g.optind][0] != '!'))
}
