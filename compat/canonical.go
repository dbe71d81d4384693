package compat

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// This file writes option values and target options the way
// iptables-save writes them, so that rules written by hand or as
// CONTRACT.md §2 writes them list like rules read back from iptables.

// canonicalValue writes a value the way iptables-save writes it: lists in
// iptables' order, port ranges complete, ICMP types as numbers, marks in
// hex.
func canonicalValue(f Family, ext, opt, v string) string {
	switch opt {
	case "--state", "--ctstate":
		return sortList(v, ctStates)
	case "--src-type", "--dst-type":
		return sortList(v, addrTypes)
	case "--sport", "--dport":
		if ext == "tcp" || ext == "udp" || ext == "sctp" {
			return canonicalPorts(v)
		}
	case "--icmp-type", "--icmpv6-type":
		return canonicalICMP(f, v)
	case "--mark":
		if m, mask, ok := parseMark(v); ok {
			if mask == 0xffffffff {
				return fmt.Sprintf("0x%x", m)
			}
			return fmt.Sprintf("0x%x/0x%x", m, mask)
		}
	}
	return v
}

// canonicalPorts completes open port ranges ("1024:" is 1024:65535) and
// writes a one-port range as the port.
func canonicalPorts(v string) string {
	lo, hi, isRange := strings.Cut(v, ":")
	if !isRange {
		if n, err := parseUint(lo, 65535); err == nil {
			return strconv.FormatUint(n, 10)
		}
		return v
	}
	if lo == "" {
		lo = "0"
	}
	if hi == "" {
		hi = "65535"
	}
	l, err1 := parseUint(lo, 65535)
	h, err2 := parseUint(hi, 65535)
	if err1 != nil || err2 != nil {
		return v
	}
	if l == h {
		return strconv.FormatUint(l, 10)
	}
	return fmt.Sprintf("%d:%d", l, h)
}

// parseMark parses VALUE[/MASK] (decimal or 0x hex); the mask defaults to
// 0xffffffff.
func parseMark(v string) (mark, mask uint32, ok bool) {
	ms, ks, hasMask := strings.Cut(v, "/")
	m, err := strconv.ParseUint(ms, 0, 32)
	if err != nil {
		return 0, 0, false
	}
	k := uint64(0xffffffff)
	if hasMask {
		if k, err = strconv.ParseUint(ks, 0, 32); err != nil {
			return 0, 0, false
		}
	}
	return uint32(m), uint32(k), true
}

// canonicalTarget writes target options the way iptables-save writes
// them: REJECT's default, LOG's level as a number (the default, 4, left
// out) and options in LOG's save order, MARK as --set-xmark.
func canonicalTarget(f Family, r *Rule) {
	switch r.Target {
	case "REJECT":
		if len(r.TargetArgs) == 0 {
			with := "icmp-port-unreachable"
			if f == IPv6 {
				with = "icmp6-port-unreachable"
			}
			r.TargetArgs = []string{"--reject-with", with}
		}
	case "LOG":
		r.TargetArgs = canonicalLog(r.TargetArgs)
	case "MARK":
		r.TargetArgs = canonicalMark(r.TargetArgs)
	}
}

// logLevels maps syslog level names that LOG accepts to numbers.
var logLevels = map[string]int{"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "error": 3, "err": 3,
	"warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7}

var logFlags = []string{"--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid", "--log-macdecode"}

func canonicalLog(args []string) []string {
	var prefix, level string
	flags := map[string]bool{}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--log-prefix":
			if i+1 < len(args) {
				prefix, i = args[i+1], i+1
			}
		case "--log-level":
			if i+1 < len(args) {
				level, i = args[i+1], i+1
			}
		default:
			flags[args[i]] = true
		}
	}
	var out []string
	if prefix != "" {
		out = append(out, "--log-prefix", prefix)
	}
	if n, ok := logLevels[level]; ok {
		level = strconv.Itoa(n)
	}
	if level != "" && level != "4" {
		out = append(out, "--log-level", level)
	}
	for _, fl := range logFlags {
		if flags[fl] {
			out = append(out, fl)
		}
	}
	return out
}

func canonicalMark(args []string) []string {
	if len(args) != 2 {
		return args
	}
	m, k, ok := parseMark(args[1])
	if !ok {
		return args
	}
	switch args[0] {
	case "--set-xmark":
	case "--set-mark":
		k |= m
	case "--and-mark":
		m, k = 0, ^m
	case "--or-mark":
		k = m
	case "--xor-mark":
		k = 0
	default:
		return args
	}
	return []string{"--set-xmark", fmt.Sprintf("0x%x/0x%x", m, k)}
}

// sortList orders a comma-separated list by the order of known; unknown
// items are kept at the end as given.
func sortList(v string, known []string) string {
	items := strings.Split(v, ",")
	var out []string
	for _, k := range known {
		if slices.Contains(items, k) {
			out = append(out, k)
		}
	}
	for _, it := range items {
		if !slices.Contains(known, it) {
			out = append(out, it)
		}
	}
	return strings.Join(out, ",")
}

// ctStates are conntrack states in the order iptables prints them.
var ctStates = []string{"INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"}

// addrTypes are address types in the order iptables prints them.
var addrTypes = []string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
	"BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}
