package nft

import (
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// Family is an nftables address family. dnft uses one table per IP family.
type Family uint8

// The families dnft programs. Bridge is the family of the table whose
// hooks see frames that a bridge forwards from one of its ports to another,
// whether or not br_netfilter passes them to the IPv4 and IPv6 hooks.
const (
	IPv4   Family = unix.NFPROTO_IPV4
	IPv6   Family = unix.NFPROTO_IPV6
	Bridge Family = unix.NFPROTO_BRIDGE
)

// String returns the nft keyword of the family ("ip", "ip6" or "bridge").
func (f Family) String() string {
	switch f {
	case IPv6:
		return "ip6"
	case Bridge:
		return "bridge"
	}
	return "ip"
}

// Families lists the IP families, IPv4 then IPv6.
var Families = [2]Family{IPv4, IPv6}

// TableFamilies lists every family dnft has a table in: IPv4, IPv6 and
// Bridge. Whatever handles dnft's tables as a whole (reset, check,
// repair, restore) goes through all of them.
var TableFamilies = [3]Family{IPv4, IPv6, Bridge}

// ChainType is the type of a base chain.
type ChainType string

// Base chain types.
const (
	TypeFilter ChainType = "filter"
	TypeNAT    ChainType = "nat"
)

// Hook is a netfilter hook.
type Hook uint8

// The hooks dnft attaches base chains to.
const (
	HookPrerouting  Hook = unix.NF_INET_PRE_ROUTING
	HookInput       Hook = unix.NF_INET_LOCAL_IN
	HookForward     Hook = unix.NF_INET_FORWARD
	HookOutput      Hook = unix.NF_INET_LOCAL_OUT
	HookPostrouting Hook = unix.NF_INET_POST_ROUTING
)

// Priorities that mirror iptables' tables, and the bridge family's filter
// priority (nft's "filter" in a bridge table).
// String returns the nft keyword of the hook.
func (h Hook) String() string {
	switch h {
	case HookPrerouting:
		return "prerouting"
	case HookInput:
		return "input"
	case HookForward:
		return "forward"
	case HookOutput:
		return "output"
	case HookPostrouting:
		return "postrouting"
	}
	return "hook" + strconv.Itoa(int(h))
}

// Priorities that mirror iptables' tables.
const (
	PriorityRaw          int32 = -300
	PriorityDstNAT       int32 = -100
	PriorityFilter       int32 = 0
	PrioritySrcNAT       int32 = 100
	PriorityBridgeFilter int32 = -200
)

// Policy is what a base chain does with a packet that no rule decided.
type Policy uint8

// Base chain policies. The zero value is accept.
const (
	PolicyAccept Policy = iota
	PolicyDrop
)

// String returns the nft keyword of the policy ("accept" or "drop").
func (p Policy) String() string {
	if p == PolicyDrop {
		return "drop"
	}
	return "accept"
}

// Base makes a chain a base chain attached to a hook.
type Base struct {
	Type     ChainType
	Hook     Hook
	Priority int32
	// Policy is accept unless set: only the forward chain drops by
	// policy, when Init turned forwarding on (iptables' -P FORWARD DROP).
	Policy Policy
}

// Chain is a chain of a dnft table.
type Chain struct {
	Family Family
	Name   string
	// Base is nil for a regular chain.
	Base *Base
}

// Field is one part of a lookup key or an element key.
type Field uint8

// Key fields. Addresses take the family of the table.
const (
	FieldIIFName Field = iota + 1 // meta iifname (16 bytes)
	FieldOIFName                  // meta oifname (16 bytes)
	FieldSaddr                    // ip/ip6 saddr
	FieldDaddr                    // ip/ip6 daddr
	FieldL4Proto                  // meta l4proto
	FieldDport                    // th dport (tcp, udp and sctp alike)
	FieldSport                    // th sport
	// Address fields of a fixed family, whatever the table's: for the
	// bridge table, whose family says nothing about addresses. Match
	// [L3Proto] first, so that only packets of that family are read.
	FieldSaddr4 // ip saddr
	FieldDaddr4 // ip daddr
	FieldSaddr6 // ip6 saddr
	FieldDaddr6 // ip6 daddr
)

// DataKind is what a map stores per element.
type DataKind uint8

// Map data kinds.
const (
	DataNone     DataKind = iota // a plain set
	DataVerdict                  // a verdict map
	DataAddrPort                 // address . port (a DNAT target)
)

// Set is a named set or map in a dnft table.
type Set struct {
	Family Family
	Name   string
	Key    []Field
	Data   DataKind
	// Interval makes the key a prefix (single-field address keys only).
	Interval bool
	// Counter keeps a packet/byte counter on every element.
	Counter bool
	// Comment is stored with the set and read back.
	Comment string
}

// Value is one field of an element key.
type Value struct {
	Name  string     // FieldIIFName, FieldOIFName
	Addr  netip.Addr // FieldSaddr, FieldDaddr
	Proto uint8      // FieldL4Proto
	Port  uint16     // FieldDport, FieldSport
}

// Ifname, Addr, Proto and Port build key values.
func Ifname(s string) Value { return Value{Name: s} }

// Addr is a key value holding an address.
func Addr(a netip.Addr) Value { return Value{Addr: a} }

// Proto is a key value holding an IP protocol number.
func Proto(p uint8) Value { return Value{Proto: p} }

// Port is a key value holding a transport port.
func Port(p uint16) Value { return Value{Port: p} }

// Element is one element of a set or map.
type Element struct {
	Key []Value
	// Prefix is the key of an interval set instead of Key.
	Prefix netip.Prefix
	// Verdict is the data of a verdict map element.
	Verdict *Verdict
	// Target is the data of a DataAddrPort map element.
	Target netip.AddrPort
	// Comment is stored with the element (at most 128 bytes) and read back.
	Comment string
}

// VerdictKind is a verdict.
type VerdictKind uint8

// Verdict kinds.
const (
	Accept VerdictKind = iota + 1
	Drop
	Return
	Jump
	Goto
)

// Verdict is a verdict, with the target chain for Jump and Goto.
type Verdict struct {
	Kind  VerdictKind
	Chain string
}

// Match is one condition of a rule. Only this package's types implement it.
type Match interface{ isMatch() }

// Dir says which side of a packet a match looks at.
type Dir uint8

// Directions.
const (
	In  Dir = iota + 1 // input interface / source address
	Out                // output interface / destination address
)

// IfName matches the input (In) or output (Out) interface name; with
// Wildcard, every name that starts with Name (iptables' "docker+",
// nft's "docker*").
type IfName struct {
	Dir      Dir
	Name     string
	Neg      bool
	Wildcard bool
}

// Prefix matches the source (In) or destination (Out) address against a
// prefix of the table's family.
type Prefix struct {
	Dir    Dir
	Prefix netip.Prefix
	Neg    bool
}

// FibLocal matches when the source (In) or destination (Out) address is a
// local address of the namespace (iptables' -m addrtype --src/dst-type LOCAL).
type FibLocal struct {
	Dir Dir
	Neg bool
}

// CtEstablished matches conntrack state established or related.
type CtEstablished struct{}

// L3Proto matches packets of a network-layer family (meta protocol ip or
// ip6): in the bridge table, it guards matches on [FieldSaddr4] and the
// like, which read the network header.
type L3Proto struct{ Family Family }

// L4 matches a transport protocol and, when Dport or Sport is not zero, a
// destination or source port.
type L4 struct {
	Proto uint8
	Dport uint16
	Sport uint16
}

// Lookup matches when the key built from Fields is (or with Neg, is not)
// in the named set.
type Lookup struct {
	Fields []Field
	Set    string
	Neg    bool
}

func (IfName) isMatch()        {}
func (Prefix) isMatch()        {}
func (FibLocal) isMatch()      {}
func (CtEstablished) isMatch() {}
func (L3Proto) isMatch()       {}
func (L4) isMatch()            {}
func (Lookup) isMatch()        {}

// Action is what a rule does when all its matches hold. Only this package's
// types implement it.
type Action interface{ isAction() }

// VMap dispatches through a verdict map keyed by Fields.
type VMap struct {
	Fields []Field
	Map    string
}

// Masquerade is the masquerade statement.
type Masquerade struct{}

// SNAT rewrites the source address to Addr and, when Port is not zero,
// the source port to Port. A zero Addr rewrites the port only (nft's
// `snat to :PORT`, iptables' `--to-source :PORT`).
type SNAT struct {
	Addr netip.Addr
	Port uint16
}

// DNAT rewrites the destination to a fixed address and port.
type DNAT struct{ To netip.AddrPort }

// DNATMap rewrites the destination to the address . port found in a
// DataAddrPort map under the key built from Fields; no element, no change.
type DNATMap struct {
	Fields []Field
	Map    string
}

func (Verdict) isAction()    {}
func (VMap) isAction()       {}
func (Masquerade) isAction() {}
func (SNAT) isAction()       {}
func (DNAT) isAction()       {}
func (DNATMap) isAction()    {}

// Rule is one rule. Every rule dnft writes carries a counter, and its
// comment identifies it so that it can be found and deleted later.
type Rule struct {
	Family  Family
	Chain   string
	Match   []Match
	Action  Action
	Comment string
}
