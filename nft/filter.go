package nft

import "net/netip"

// This file holds the matches and statements of operators' filter rules
// (DOCKER-USER): what `iptables -A DOCKER-USER ...` lines and their usual
// nft equivalents say, as native nftables expressions. [EncodeUserRule]
// turns a [Rule] built from them into a [RawRule]; [DecodeRawRule] reads
// any rule back into them when it has that shape.

// Conntrack states, as bits of `ct state` (iptables' --ctstate).
const (
	CtStateInvalid     uint32 = 1 << 0
	CtStateEstablished uint32 = 1 << 1
	CtStateRelated     uint32 = 1 << 2
	CtStateNew         uint32 = 1 << 3
	CtStateUntracked   uint32 = 1 << 6
)

// L4Proto matches the transport protocol (meta l4proto); with Neg, any
// other protocol.
type L4Proto struct {
	Num uint8
	Neg bool
}

// PortRange matches the source (In) or destination (Out) transport port
// against Lo..Hi (Lo == Hi: one port). It follows a [L4Proto] match that
// names a protocol with ports.
type PortRange struct {
	Dir    Dir
	Lo, Hi uint16
	Neg    bool
}

// PortSpan is one port or range of a [PortSet].
type PortSpan struct{ Lo, Hi uint16 }

// PortSet matches the source (In) or destination (Out) transport port
// against a list of ports and ranges (an anonymous set, `tcp dport { 80,
// 8000-8010 }`). Spans are kept in the order given.
type PortSet struct {
	Dir   Dir
	Spans []PortSpan
	Neg   bool
}

// AddrRange matches the source (In) or destination (Out) address against
// From..To (iptables' -m iprange).
type AddrRange struct {
	Dir      Dir
	From, To netip.Addr
	Neg      bool
}

// CtState matches when the connection's state is one of the Mask bits
// (CtStateNew, ...); with Neg, when it is none of them.
type CtState struct {
	Mask uint32
	Neg  bool
}

// CtOrigAddr matches the source (In) or destination (Out) address of the
// connection's original direction against a prefix (iptables'
// --ctorigsrc/--ctorigdst).
type CtOrigAddr struct {
	Dir    Dir
	Prefix netip.Prefix
	Neg    bool
}

// CtOrigPort matches the source (In) or destination (Out) port of the
// connection's original direction against Lo..Hi (iptables'
// --ctorigsrcport/--ctorigdstport).
type CtOrigPort struct {
	Dir    Dir
	Lo, Hi uint16
	Neg    bool
}

// ICMPType matches the ICMP (IPv4 table) or ICMPv6 (IPv6 table) type and,
// with HasCode, the code. It follows a [L4Proto] match for icmp or
// ipv6-icmp.
type ICMPType struct {
	Type    uint8
	Code    uint8
	HasCode bool
	Neg     bool
}

func (L4Proto) isMatch()    {}
func (PortRange) isMatch()  {}
func (PortSet) isMatch()    {}
func (AddrRange) isMatch()  {}
func (CtState) isMatch()    {}
func (CtOrigAddr) isMatch() {}
func (CtOrigPort) isMatch() {}
func (ICMPType) isMatch()   {}

// RejectKind is how a rejected packet is answered.
type RejectKind uint8

// Reject kinds (the kernel's NFT_REJECT_*).
const (
	// RejectICMP answers with an ICMP (IPv6: ICMPv6) unreachable of Code.
	RejectICMP RejectKind = 0
	// RejectTCPReset answers with a TCP reset.
	RejectTCPReset RejectKind = 1
)

// Reject refuses the packet with an answer (iptables' -j REJECT).
type Reject struct {
	Kind RejectKind
	// Code is the ICMP or ICMPv6 code (IPv4: 3 port unreachable; IPv6: 4).
	Code uint8
}

// Log logs the packet and goes on with the next rule (iptables' -j LOG).
type Log struct {
	Prefix string
	// Level is the syslog level (0-7); iptables' default is 4 (warning).
	Level uint8
	// Flags are the kernel's NF_LOG_* flags (tcp sequence 1, tcp options
	// 2, ip options 4, uid 8, mac decode 0x20).
	Flags uint32
}

func (Reject) isAction() {}
func (Log) isAction()    {}
