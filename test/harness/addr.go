package harness

import "net/netip"

// Fixed addressing shared by every [Topology]. These are variables only
// because Go has no netip constants; never assign to them.
var (
	// LANHostAddr4 is the Host's IPv4 address on its LAN link ([HostLANIf]).
	LANHostAddr4 = netip.MustParseAddr("192.0.2.1")
	// LANHostAddr6 is the Host's IPv6 address on its LAN link ([HostLANIf]).
	LANHostAddr6 = netip.MustParseAddr("2001:db8:1::1")
	// LANAddr4 is the LAN namespace's IPv4 address on its eth0.
	LANAddr4 = netip.MustParseAddr("192.0.2.2")
	// LANAddr6 is the LAN namespace's IPv6 address on its eth0.
	LANAddr6 = netip.MustParseAddr("2001:db8:1::2")
	// LANPrefix4 is the IPv4 subnet of the Host–LAN link.
	LANPrefix4 = netip.MustParsePrefix("192.0.2.0/24")
	// LANPrefix6 is the IPv6 subnet of the Host–LAN link.
	LANPrefix6 = netip.MustParsePrefix("2001:db8:1::/64")

	// WANHostAddr4 is the Host's IPv4 address on its Internet link
	// ([HostWANIf]); masqueraded traffic leaves with this source.
	WANHostAddr4 = netip.MustParseAddr("203.0.113.1")
	// WANHostAddr6 is the Host's IPv6 address on its Internet link ([HostWANIf]).
	WANHostAddr6 = netip.MustParseAddr("2001:db8:2::1")
	// InternetAddr4 is the Internet namespace's IPv4 address on its eth0.
	InternetAddr4 = netip.MustParseAddr("203.0.113.2")
	// InternetAddr6 is the Internet namespace's IPv6 address on its eth0.
	InternetAddr6 = netip.MustParseAddr("2001:db8:2::2")
	// WANPrefix4 is the IPv4 subnet of the Host–Internet link.
	WANPrefix4 = netip.MustParsePrefix("203.0.113.0/24")
	// WANPrefix6 is the IPv6 subnet of the Host–Internet link.
	WANPrefix6 = netip.MustParsePrefix("2001:db8:2::/64")
)

// Interface names and ports used by every [Topology].
const (
	// HostLANIf is the Host's veth towards the LAN namespace.
	HostLANIf = "lan0"
	// HostWANIf is the Host's veth towards the Internet namespace.
	HostWANIf = "wan0"
	// PeerIf is the interface name inside LAN, Internet and every container.
	PeerIf = "eth0"
	// EchoPort is the port of the TCP and UDP echo servers that LAN and
	// Internet run from the start.
	EchoPort uint16 = 80
)
