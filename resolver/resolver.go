// Package resolver describes the native nftables equivalent of the NAT
// rules that Docker's embedded DNS server needs in a container's network
// namespace. dockerd's resolver listens on 127.0.0.11 on random UDP and
// TCP ports inside the container's namespace and runs iptables there to
// redirect 127.0.0.11:53 to them (nat chains DOCKER_OUTPUT and
// DOCKER_POSTROUTING); on a host without an iptables binary those rules
// are missing and name resolution on user networks fails. The objects
// here do the same with a `dnft` table of the container's namespace. Like
// the other policy packages it never talks to the kernel itself.
package resolver

import (
	"fmt"
	"net/netip"

	"github.com/dnft/dnft/chains"
	"github.com/dnft/dnft/nft"
)

// The base chains, named after the iptables chains they implement.
const (
	// ChainOutput is nat OUTPUT's DOCKER_OUTPUT: DNAT of queries to
	// Addr:53 to the resolver's real ports.
	ChainOutput = "DOCKER_OUTPUT"
	// ChainPostrouting is nat POSTROUTING's DOCKER_POSTROUTING: SNAT of
	// the resolver's own packets back to port 53.
	ChainPostrouting = "DOCKER_POSTROUTING"
)

// DNSPort is the port that containers query.
const DNSPort = 53

// DefaultAddr returns 127.0.0.11, the address of Docker's embedded DNS
// server in every container on a user-defined network.
func DefaultAddr() netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 11}) }

// Config is where the resolver of one container listens.
type Config struct {
	// Addr is the resolver's address (zero means [DefaultAddr]).
	Addr netip.Addr
	// UDPPort and TCPPort are the ports its sockets are bound to.
	UDPPort, TCPPort uint16
}

// Normalize returns c with the default address filled in.
func (c Config) Normalize() Config {
	if !c.Addr.IsValid() {
		c.Addr = DefaultAddr()
	}
	return c
}

// Validate checks the configuration; errors name the field and value.
func (c Config) Validate() error {
	c = c.Normalize()
	if !c.Addr.Is4() {
		return &chains.FieldError{Field: "resolver address", Value: c.Addr.String(), Reason: "must be an IPv4 address (Docker's embedded DNS is IPv4 only)"}
	}
	for _, p := range []struct {
		field string
		port  uint16
	}{{"udp port", c.UDPPort}, {"tcp port", c.TCPPort}} {
		if p.port == 0 {
			return &chains.FieldError{Field: "resolver " + p.field, Value: "0", Reason: "must be 1-65535"}
		}
	}
	return nil
}

// String renders the configuration as "127.0.0.11 udp 41234 tcp 37811".
func (c Config) String() string {
	c = c.Normalize()
	return fmt.Sprintf("%s udp %d tcp %d", c.Addr, c.UDPPort, c.TCPPort)
}

// Program queues, for a namespace whose `ip dnft` table may or may not
// exist, the replacement of that table by the resolver's: the table is
// created if missing and deleted, then created again with its two base
// chains and four rules, so that the batch commits whole whatever was
// there before. c must be valid.
func Program(tx *nft.Tx, c Config) {
	tx.AddTable(nft.IPv4)
	tx.DeleteTable(nft.IPv4)
	Objects(tx, c)
}

// Objects queues the resolver's table on an empty namespace.
func Objects(tx *nft.Tx, c Config) {
	c = c.Normalize()
	f := nft.IPv4
	host := netip.PrefixFrom(c.Addr, 32)
	tx.AddTable(f)
	tx.AddChain(nft.Chain{Family: f, Name: ChainOutput, Base: &nft.Base{Type: nft.TypeNAT, Hook: nft.HookOutput, Priority: nft.PriorityDstNAT}})
	tx.AddChain(nft.Chain{Family: f, Name: ChainPostrouting, Base: &nft.Base{Type: nft.TypeNAT, Hook: nft.HookPostrouting, Priority: nft.PrioritySrcNAT}})
	for _, p := range []struct {
		proto uint8
		name  string
		port  uint16
	}{{17, "udp", c.UDPPort}, {6, "tcp", c.TCPPort}} {
		// The comments name the ports: a rule is recognizable by what it
		// does even for a reader that compares comments only.
		comment := fmt.Sprintf("DNS %s %s", p.name, netip.AddrPortFrom(c.Addr, p.port))
		tx.AddRule(nft.Rule{Family: f, Chain: ChainOutput, Comment: comment,
			Match:  []nft.Match{nft.Prefix{Dir: nft.Out, Prefix: host}, nft.L4{Proto: p.proto, Dport: DNSPort}},
			Action: nft.DNAT{To: netip.AddrPortFrom(c.Addr, p.port)}})
		tx.AddRule(nft.Rule{Family: f, Chain: ChainPostrouting, Comment: comment,
			Match:  []nft.Match{nft.Prefix{Dir: nft.Out, Prefix: host}, nft.Prefix{Dir: nft.In, Prefix: host}, nft.L4{Proto: p.proto, Sport: p.port}},
			Action: nft.SNAT{Port: DNSPort}})
	}
}
