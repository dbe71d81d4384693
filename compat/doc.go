// Package compat is dnft's iptables view: what Docker's classic bridge
// driver would hold in iptables for what dnft programmed, listed exactly
// as iptables 1.8.9 lists it (`iptables -L` with every combination of -n,
// -v, -x and --line-numbers, `iptables -S [-v]`, iptables-save [-c] [-t],
// and the same for ip6tables), with the counters taken from the kernel.
// CONTRACT.md §4 layer 1 is its acceptance test; FORMAT.md of the golden
// files describes the formats it reproduces.
//
// # How the view is built
//
// [ReadInput] reads dnft's tables of both families in one consistent
// snapshot (the ruleset generation is compared before and after; the
// read is retried when a commit came in between) and decodes the state
// dnft keeps in the kernel: the daemon configuration and networks (the
// networks set), the published bindings (the DNAT maps) and the ingress
// publications (package ingress). [Build] then replays CONTRACT.md §2's
// command sequence — init, then every network creation, binding
// publication and ingress publication in Seq order — into an in-memory
// iptables ([Ruleset], [Table], [Chain], [Rule]) with -N, -A, -I and -D
// semantics. Removals are not replayed: deleting rules never changes the
// relative order of the others, so the rules of what exists today come
// out where iptables has them. [ApplyCounters] finally gives every rule
// the value of the dnft counter that counts the same packets (below).
//
// The renderers ([Table.List], [Table.ListRules], [Ruleset.Save]) and the
// command-line emulation ([Run], [RunSave]: iptables' own argument rules,
// messages and exit codes) work on any Ruleset, also one parsed from real
// iptables output ([ParseRuleset]), which is how they are tested against
// real iptables.
//
// # Counters
//
// Built-in chains have policy ACCEPT and policy counters of 0: dnft's
// base chains accept what no rule decides, and nftables keeps no policy
// counters. The exception is FORWARD, whose policy is DROP in a family
// whose forwarding init turned on (dnft's filter-FORWARD then has policy
// drop, see chains.DaemonConfig.ForwardDrop4). Every other rule gets its counter from one of dnft's (every
// dnft rule has a counter; the published, dnat-host, dnat-any, hairpin,
// loopback-ports, ingress-dnat and ingress-ports sets and maps have
// per-element counters). B is a network's bridge; chain names are dnft's
// (see package chains):
//
//	iptables rule                                   counter source (nft)                               exact?
//	nat PREROUTING -j DOCKER                        nat-PREROUTING rule "DOCKER"                       yes
//	nat OUTPUT -j DOCKER                            nat-OUTPUT rule "DOCKER"                           yes
//	FORWARD -j DOCKER-USER                          filter-FORWARD rule "DOCKER-USER"                  yes
//	DOCKER-USER -j RETURN                           the filter-FORWARD rule after "DOCKER-USER"        yes (1)
//	FORWARD -j DOCKER-ISOLATION                     filter-FORWARD rule "DOCKER-ISOLATION"             yes
//	DOCKER-ISOLATION -j RETURN                      the filter-FORWARD rule after "DOCKER-ISOLATION"   yes (1)
//	DOCKER-ISOLATION -i B -o O -j DROP (pairs)      DOCKER-ISOLATION__B rule "ISOLATION"               sum (2)
//	DOCKER-ISOLATION ! -d S -i B -j DROP (internal) DOCKER-ISOLATION__B "INTERNAL NETWORK EGRESS"      yes (3)
//	DOCKER-ISOLATION ! -s S -o B -j DROP (internal) DOCKER-ISOLATION-IN__B "INTERNAL NETWORK INGRESS"  yes (3)
//	FORWARD -o B -m conntrack ... ACCEPT            DOCKER__B rule "RELATED,ESTABLISHED"               yes
//	FORWARD -o B -j DOCKER                          DOCKER__B "PUBLISHED" + "UNPUBLISHED PORT DROP"    yes (4)
//	                                                + FORWARD__B "ICC"
//	FORWARD -i B ! -o B -j ACCEPT                   FORWARD__B rule "OUTGOING"                         yes
//	FORWARD -i B -o B -j ACCEPT|DROP                FORWARD__B rule "ICC"                              yes
//	DOCKER ! -i B -o B -j DROP                      DOCKER__B rule "UNPUBLISHED PORT DROP"             yes
//	DOCKER -d C ... --dport CP -j ACCEPT            element published[C . P . CP]                      yes (5)
//	nat DOCKER -i B -j RETURN                       nat-DOCKER rule "RETURN"                           sum (2)
//	nat DOCKER ... -j DNAT (a binding)              element dnat-host[H . P . HP] / dnat-any[P . HP]   yes
//	nat POSTROUTING -s S ! -o B -j MASQUERADE|SNAT  nat-POSTROUTING__B rule "MASQUERADE" / "SNAT"      yes
//	nat POSTROUTING -o B --src-type LOCAL MASQ.     nat-POSTROUTING-OUT__B "MASQUERADE FROM HOST"      yes
//	nat POSTROUTING -s C -d C ... MASQUERADE        element hairpin[C . C . P . CP]                    yes (5)
//	raw PREROUTING -d S ! -i B ... -j DROP          raw-PREROUTING__B rule "DROP DIRECT ACCESS"        yes
//	raw PREROUTING -d H ! -i lo ... -j DROP         element loopback-ports[H . P . HP]                 yes
//	nat DOCKER-INGRESS ... -j DNAT (a port)         element ingress-dnat[P . PUB]                      yes
//	DOCKER-INGRESS -p P --dport PUB -j ACCEPT       element ingress-ports[P . PUB], split              (6)
//	DOCKER-INGRESS ... --sport PUB ... ACCEPT       element ingress-ports[P . PUB], split              (6)
//	FORWARD -j DOCKER-INGRESS                       filter-FORWARD rule "DOCKER-INGRESS"               yes
//	DOCKER-INGRESS -j RETURN                        the filter-FORWARD rule after "DOCKER-INGRESS"     yes (1)
//	nat PREROUTING/OUTPUT -j DOCKER-INGRESS         nat-PREROUTING/nat-OUTPUT rule "DOCKER-INGRESS"    yes
//	nat DOCKER-INGRESS -j RETURN                    the nat-PREROUTING and nat-OUTPUT rules after      yes (1)
//	                                                their "DOCKER-INGRESS" jumps
//	nat POSTROUTING -o G --src-type LOCAL MASQ.     nat-POSTROUTING rule "INGRESS MASQUERADE"          sum (2)
//
// (1) Packets that return from a jump are exactly those that reach the
// next rule of the calling base chain: its rules have no match before
// their counter.
//
// (2) One nft rule or set lookup stands for several iptables rules (one
// isolation rule per network for iptables' pairs; one set of bridges for
// the nat RETURN rules; one set of gateways for the ingress masquerade).
// The total is exact; it is given to the first of those rules in chain
// order and the others show 0 (Source.Shared).
//
// (3) Exact except for packets between two internal networks: iptables
// counts them on the newer network's rule (it comes first), dnft on the
// sender's egress rule.
//
// (4) The packets that reach `-o B -j DOCKER` are those to B that are not
// part of an established connection: the ones DOCKER__B accepts as
// published, the ones it drops as unpublished (protected mode), and the
// ones from B to B that FORWARD__B's ICC rule then decides. With
// allow-direct-routing, packets from outside to unpublished ports of B
// pass through DOCKER__B uncounted (no rule matches them), so this counter
// misses them.
//
// (5) Bindings that forward to the same container port share one
// published and one hairpin element, as their iptables rules are
// identical: the first of those rules in chain order (iptables' first
// match) gets the count, the others 0.
//
// (6) One ingress-ports element is looked up by both accept rules (by
// destination port, and for established replies by source port); it
// counts both. Its count is split in the ratio of the two nft rules'
// counters ("INGRESS PORT" and "INGRESS RELATED,ESTABLISHED", which sum
// over all ingress ports): exact with one ingress port, or when only one
// kind of packet flowed; the two parts always add up to the element's
// count.
//
// # What is byte for byte, and what is not
//
// Every listing format matches iptables 1.8.9 byte for byte: chain order,
// headers, reference counts, column widths and overflow, K/M/G/T
// abbreviation (including its double rounding and uint64 wrap-around),
// "anywhere", masks, inversions, service and protocol names, the match
// and target texts of the extensions Docker's rules use (tcp, udp, sctp,
// addrtype, conntrack, state, DNAT, SNAT, MASQUERADE) and of common others
// (multiport, comment, mark, MARK, icmp, icmp6, LOG, REJECT, REDIRECT,
// goto, -f). Known differences:
//
//   - Host names: [Names] reads /etc/hosts only, as iptables does with
//     "hosts: files" (what the golden files pin). With "hosts: files dns"
//     iptables also asks DNS; NXDOMAIN answers change nothing, an
//     unreachable resolver makes it fall back to /etc/networks for IPv4
//     network addresses (Names.NetworksFallback, e.g. loopback/8), and PTR
//     records are never shown by compat.
//   - The iptables-save date lines show the time of the view, like
//     iptables; tests mask them. Their program name is always
//     "iptables-save" (iptables-nft-save puts its argv[0] there).
//   - Without -t, iptables-save lists the raw table only while it has
//     rules. iptables keeps an emptied table: after the last protected
//     network is removed, real iptables-save still prints an empty *raw.
//   - iptables-legacy lists save-all tables most recently created first;
//     compat uses iptables-nft's order (raw, filter, nat), which is also
//     legacy's for the order in which Docker's commands create them.
//   - Ingress: chains and the gateway masquerade are created at the
//     oldest ingress publication that exists now. If an older one was
//     removed after a network was created, iptables' DOCKER-INGRESS
//     jumps and masquerade rule sit elsewhere relative to that network's
//     rules. (Rules of bindings and networks never have this problem: each
//     has its own lifetime.)
//   - `-v -v` prints no debugging dump; -h prints compat's own help; -Z and
//     every command that changes rules are refused (the view is
//     read-only); DNS names are not accepted for -s/-d.
//   - The operator's own rules in DOCKER-USER are nftables rules and are
//     not shown; DOCKER-USER lists the -j RETURN that Docker adds.
package compat
