// Package harness builds Docker-like network topologies out of Linux network
// namespaces and sends real packets through them, so firewall tests (dnft's
// own and those of container runtimes that use dnft) can check what the
// kernel actually forwards, drops, NATs or rejects.
//
// A [Topology] is a set of named namespaces (visible in `ip netns list`
// under /run/netns) that share a random prefix such as "dnft-3fa9c1-":
//
//	 LAN  eth0 192.0.2.2/24                 Internet  eth0 203.0.113.2/24
//	       │                                                │
//	      veth                                             veth
//	       │                                                │
//	Host  lan0 192.0.2.1/24 ──── (forwarding on) ──── wan0 203.0.113.1/24
//	       │
//	      bridge BridgeSpec.Name with BridgeSpec.Gateway4, e.g. 172.18.0.1/16
//	       ├── port v<hash> (hairpin on) ── veth ── container eth0 (Addr4, default route via gateway)
//	       └── port v<hash> (hairpin on) ── veth ── container eth0 ...
//
// The Host namespace plays the Docker host: the firewall under test is
// programmed there (for example with [NS.Do] or [NS.Run]). The LAN
// namespace is a neighbour on the host's local network: it has no default
// route, so it reaches only the host's own addresses until a test calls
// [NS.AddRoute]. The Internet namespace has no route back to any container
// subnet, so a container's traffic gets a reply from it only when the Host
// masquerades it. LAN and Internet run TCP and UDP echo servers on
// [EchoPort]. The fixed addresses are the package-level variables
// [LANHostAddr4], [LANAddr4], [WANHostAddr4], [InternetAddr4] and their
// IPv6 counterparts.
//
// Echo servers ([NS.ServeTCP], [NS.ServeUDP]) answer with the source address
// they saw, so a probe ([NS.TCP], [NS.UDP], [NS.Ping], [RunMatrix]) can tell
// whether traffic was NATed. Every packet a server receives is also recorded
// ([NS.Hits]), which shows one-way traffic whose reply was lost.
//
// Usage:
//
//	func TestICC(t *testing.T) {
//		harness.RequireRoot(t)
//		ctx := context.Background()
//		topo := harness.New(t, harness.Spec{
//			Bridges: []harness.BridgeSpec{{Name: "br0", Gateway4: netip.MustParsePrefix("172.18.0.1/16")}},
//			Containers: []harness.ContainerSpec{
//				{Name: "a", Bridge: "br0", Addr4: netip.MustParseAddr("172.18.0.2")},
//				{Name: "b", Bridge: "br0", Addr4: netip.MustParseAddr("172.18.0.3"), TCPPorts: []uint16{80}},
//			},
//		})
//		// ... program the firewall in topo.Host ...
//		r := topo.Containers["a"].TCP(ctx, netip.AddrPortFrom(topo.Containers["b"].Addr4, 80))
//		if !r.OK { t.Fatal(r) }
//	}
//
// Be aware:
//   - Everything needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). [RequireRoot]
//     skips a test otherwise, and fails it when the CI environment variable
//     is set.
//   - The harness never changes the namespace it is started in. All
//     namespaces are removed by the cleanup that [New] (or [Scratch])
//     registers, also when the test fails; a process that is killed (a
//     test binary past its -timeout, SIGKILL) leaves them behind, and
//     [Sweep] (`go run ./test/harness/sweep`) removes those whose process
//     is gone. Creations and removals from any number of processes are
//     serialised by an flock on /run/dnft-harness/netns.lock, which also
//     holds the owner record of each namespace.
//   - One helper per job: [NewNS] and [Scratch] create a bare namespace,
//     [RequireRoot] checks privileges and tools, [Build] builds a
//     binary, [Unmet] checks a matrix against expectations.
//   - New namespaces inherit the IPv4 settings of the initial namespace
//     (with the default net.core.devconf_inherit_init_net=0), so a host
//     with rp_filter=1 or ip_forward=1 would leak into the test. The harness therefore sets every
//     setting it relies on explicitly in every namespace: rp_filter=0,
//     accept_dad=0, ICMP rate limiting off, and ip_forward / IPv6 forwarding
//     (1 in Host unless [Spec.NoForward], 0 elsewhere).
//   - br_netfilter, when the kernel has it, is on by default in every new
//     namespace (bridge-nf-call-iptables=1), so bridged container-to-container
//     traffic also passes the Host's IPv4/IPv6 forward hooks, as on a Docker
//     host. Use [NS.SetSysctl] to change it.
//   - Only the goroutine running inside [NS.Do] is in the namespace; any
//     goroutine it starts is not. Sockets keep the namespace they were
//     created in, which is how the echo servers and probes work.
//   - Links are only usable once the kernel's linkwatch worker has seen
//     their carrier, which for veths can take up to a second after
//     `ip link set up`; [New] waits for that, but a test that adds links
//     itself must wait too (or see its first packets vanish).
//   - TCP probes to an address that does not answer ARP/NDP report
//     "timeout", not "unreachable": the kernel gives up on the neighbour
//     after about 3 s, later than the probe.
package harness
