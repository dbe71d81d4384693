package chains

// LinkSettings are the kernel settings dnft keeps on one bridge and its
// ports. Docker's bridge driver sets them when it creates the bridge; a
// runtime that uses dnft may create (and delete and re-create) its bridges
// whenever it likes, so dnft applies them when the bridge exists: at
// network creation, when the link appears (see dnft's FollowLinks), and on
// repair.
type LinkSettings struct {
	// RouteLocalnet is net.ipv4.conf.B.route_localnet=1, which lets the
	// host route packets from 127.0.0.0/8 out of the bridge: with the
	// userland proxy off, a connection to a port published on 127.0.0.1
	// is DNATed to a container and leaves through the bridge before it is
	// masqueraded; swarm ingress does the same through its gateway
	// bridge.
	RouteLocalnet bool
	// NFCallIPTables and NFCallIP6Tables are the bridge's own
	// nf_call_iptables / nf_call_ip6tables options (br_netfilter for this
	// bridge only, whatever the namespace's bridge-nf-call-* sysctls say).
	// With the userland proxy off, a container that reaches another
	// container of its bridge through a published port is DNATed by the
	// host; the reply is bridged straight back, and only br_netfilter
	// passes it to conntrack, which gives it the published address as its
	// source. Nothing else needs br_netfilter: ICC off is enforced by the
	// bridge table (see [SetICCOff4]).
	NFCallIPTables, NFCallIP6Tables bool
	// Hairpin is hairpin mode on every port of the bridge: with
	// br_netfilter, a container's connection to its own published port is
	// DNATed back to it while the frame is being bridged, and leaves
	// through the port it came in by. dockerd sets it on the ports of
	// every bridge when the userland proxy is off.
	Hairpin bool
}

// IsZero reports whether no setting is wanted.
func (s LinkSettings) IsZero() bool { return s == LinkSettings{} }

// Links returns the settings dnft keeps, by bridge name: those of the
// networks (userland proxy off: route_localnet, bridge netfilter and
// hairpin on every bridge, bridge netfilter for IPv6 only on bridges with
// an IPv6 subnet) and those of the gateway bridges of IPv4 ingress ports
// (route_localnet, as Docker sets it). Bridges that need nothing are left
// out.
func Links(d DaemonConfig, nets []Network, ingressGateways4 []string) map[string]LinkSettings {
	out := map[string]LinkSettings{}
	if !d.UserlandProxy {
		for _, n := range nets {
			out[n.Bridge] = LinkSettings{
				RouteLocalnet:   true,
				NFCallIPTables:  true,
				NFCallIP6Tables: d.IPv6 && n.Subnet6.IsValid(),
				Hairpin:         true,
			}
		}
	}
	for _, g := range ingressGateways4 {
		s := out[g]
		s.RouteLocalnet = true
		out[g] = s
	}
	return out
}
