package compat

import (
	"fmt"
	"strconv"
	"strings"
)

// icmpType is one entry of libxtables' ICMP type tables: a name for a
// type with a range of codes.
type icmpType struct {
	name       string
	typ        uint8
	cmin, cmax uint8
}

// icmpTypes is iptables' table of IPv4 ICMP type names, in lookup order
// (aliases after the name iptables prints).
var icmpTypes = []icmpType{
	{"any", 0xFF, 0, 0xFF},
	{"echo-reply", 0, 0, 0xFF},
	{"pong", 0, 0, 0xFF},
	{"destination-unreachable", 3, 0, 0xFF},
	{"network-unreachable", 3, 0, 0},
	{"host-unreachable", 3, 1, 1},
	{"protocol-unreachable", 3, 2, 2},
	{"port-unreachable", 3, 3, 3},
	{"fragmentation-needed", 3, 4, 4},
	{"source-route-failed", 3, 5, 5},
	{"network-unknown", 3, 6, 6},
	{"host-unknown", 3, 7, 7},
	{"network-prohibited", 3, 9, 9},
	{"host-prohibited", 3, 10, 10},
	{"TOS-network-unreachable", 3, 11, 11},
	{"TOS-host-unreachable", 3, 12, 12},
	{"communication-prohibited", 3, 13, 13},
	{"host-precedence-violation", 3, 14, 14},
	{"precedence-cutoff", 3, 15, 15},
	{"source-quench", 4, 0, 0xFF},
	{"redirect", 5, 0, 0xFF},
	{"network-redirect", 5, 0, 0},
	{"host-redirect", 5, 1, 1},
	{"TOS-network-redirect", 5, 2, 2},
	{"TOS-host-redirect", 5, 3, 3},
	{"echo-request", 8, 0, 0xFF},
	{"ping", 8, 0, 0xFF},
	{"router-advertisement", 9, 0, 0xFF},
	{"router-solicitation", 10, 0, 0xFF},
	{"time-exceeded", 11, 0, 0xFF},
	{"ttl-exceeded", 11, 0, 0xFF},
	{"ttl-zero-during-transit", 11, 0, 0},
	{"ttl-zero-during-reassembly", 11, 1, 1},
	{"parameter-problem", 12, 0, 0xFF},
	{"ip-header-bad", 12, 0, 0},
	{"required-option-missing", 12, 1, 1},
	{"timestamp-request", 13, 0, 0xFF},
	{"timestamp-reply", 14, 0, 0xFF},
	{"address-mask-request", 17, 0, 0xFF},
	{"address-mask-reply", 18, 0, 0xFF},
}

// icmp6Types is ip6tables' table of ICMPv6 type names.
var icmp6Types = []icmpType{
	{"destination-unreachable", 1, 0, 0xFF},
	{"no-route", 1, 0, 0},
	{"communication-prohibited", 1, 1, 1},
	{"beyond-scope", 1, 2, 2},
	{"address-unreachable", 1, 3, 3},
	{"port-unreachable", 1, 4, 4},
	{"failed-policy", 1, 5, 5},
	{"reject-route", 1, 6, 6},
	{"packet-too-big", 2, 0, 0xFF},
	{"time-exceeded", 3, 0, 0xFF},
	{"ttl-exceeded", 3, 0, 0xFF},
	{"ttl-zero-during-transit", 3, 0, 0},
	{"ttl-zero-during-reassembly", 3, 1, 1},
	{"parameter-problem", 4, 0, 0xFF},
	{"bad-header", 4, 0, 0},
	{"unknown-header-type", 4, 1, 1},
	{"unknown-option", 4, 2, 2},
	{"echo-request", 128, 0, 0xFF},
	{"ping", 128, 0, 0xFF},
	{"echo-reply", 129, 0, 0xFF},
	{"pong", 129, 0, 0xFF},
	{"router-solicitation", 133, 0, 0xFF},
	{"router-advertisement", 134, 0, 0xFF},
	{"neighbour-solicitation", 135, 0, 0xFF},
	{"neighbor-solicitation", 135, 0, 0xFF},
	{"neighbour-advertisement", 136, 0, 0xFF},
	{"neighbor-advertisement", 136, 0, 0xFF},
	{"redirect", 137, 0, 0xFF},
}

func icmpTable(f Family) []icmpType {
	if f == IPv6 {
		return icmp6Types
	}
	return icmpTypes
}

// parseICMP parses an ICMP type as iptables-save writes it ("8", "3/3",
// "any") or as a user writes it (a name).
func parseICMP(f Family, v string) (icmpType, bool) {
	for _, t := range icmpTable(f) {
		if t.name == v {
			return t, true
		}
	}
	ts, cs, hasCode := strings.Cut(v, "/")
	t, err := strconv.ParseUint(ts, 10, 8)
	if err != nil {
		return icmpType{}, false
	}
	it := icmpType{typ: uint8(t), cmin: 0, cmax: 0xFF}
	if hasCode {
		c, err := strconv.ParseUint(cs, 10, 8)
		if err != nil {
			return icmpType{}, false
		}
		it.cmin, it.cmax = uint8(c), uint8(c)
	}
	return it, true
}

// canonicalICMP writes an ICMP type as iptables-save does.
func canonicalICMP(f Family, v string) string {
	t, ok := parseICMP(f, v)
	if !ok {
		return v
	}
	if f == IPv4 && t.typ == 0xFF {
		return "any"
	}
	if t.cmin != 0 || t.cmax != 0xFF {
		return fmt.Sprintf("%d/%d", t.typ, t.cmin)
	}
	return strconv.Itoa(int(t.typ))
}

// icmpText is print_icmptype / print_icmpv6type: the name when one
// matches and not numeric, else "type N" with the codes.
func icmpText(f Family, v string, inv, numeric bool) string {
	t, ok := parseICMP(f, v)
	if !ok {
		return " " + v
	}
	if !numeric {
		for _, n := range icmpTable(f) {
			if n.typ == t.typ && n.cmin == t.cmin && n.cmax == t.cmax {
				if inv {
					return " !" + n.name
				}
				return " " + n.name
			}
		}
	}
	var b strings.Builder
	if inv {
		b.WriteString(" !")
	}
	fmt.Fprintf(&b, "type %d", t.typ)
	if t.cmin == t.cmax {
		fmt.Fprintf(&b, " code %d", t.cmin)
	} else if t.cmin != 0 || t.cmax != 0xFF {
		fmt.Fprintf(&b, " codes %d-%d", t.cmin, t.cmax)
	}
	return b.String()
}
