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
// # Layouts
//
// The view shows one of two layouts of the same state, chosen by
// [ReadOptions.Layout], else by the layout recorded with the daemon
// (chains.DaemonConfig.Layout: `dnft init --layout`, and `dnft docker`
// records the followed daemon's), else classic:
//
//   - classic (the default): CONTRACT.md §2's sequence, one
//     DOCKER-ISOLATION chain with a DROP per ordered pair of networks.
//   - stages: Docker 17.06–27's, as dockerd 20.10 writes it:
//     DOCKER-ISOLATION-STAGE-1 (-i B ! -o B -j DOCKER-ISOLATION-STAGE-2
//     per network, the internal networks' drops, -j RETURN) and
//     DOCKER-ISOLATION-STAGE-2 (-o B -j DROP per network, -j RETURN),
//     FORWARD jumping to STAGE-1; per-port rules appended after a -C
//     check (so a container port published twice has its filter ACCEPT and
//     hairpin MASQUERADE once), SCTP ports with mangle's CHECKSUM fix.
//     test/dockertwin's TestLayoutStages compares it, byte for byte, with
//     the iptables-save of a real dockerd 20.10 running the same networks
//     and containers. dnft's own additions (protected mode's raw drops and
//     DOCKER's unpublished-port drop, the policy counters) show in both.
//
// The stages layout's counters: STAGE-1's jump per network from the
// counter-only rule "STAGE-2" of DOCKER-ISOLATION__B (packets from B to
// another interface); STAGE-2's -o B -j DROP from element
// isolation-bridges[B] (drops to B from any other bridge); STAGE-2's
// RETURN is the difference of the two sums; STAGE-1's RETURN is
// DOCKER-ISOLATION's RETURN; the CHECKSUM rules show 0 (dnft needs no
// checksum fix).
//
// # Counters
//
// Every counter of the view is one of dnft's kernel counters that counts
// exactly the packets iptables' rule would count, with the exceptions
// listed below. TestCompatTwinCounters proves it: the same rules
// programmed by dnft and by real iptables-legacy, the same packets, and
// every line of `-L -n -v -x` of every table equal, policies included.
//
// Built-in chains have policy ACCEPT, except FORWARD in a family whose
// forwarding init turned on (DROP, see chains.DaemonConfig.ForwardDrop4).
// Their policy counters come from the counter-only rule (comment
// "POLICY") that ends each of dnft's base chains: filter-INPUT,
// filter-FORWARD, filter-OUTPUT, nat-PREROUTING, nat-INPUT, nat-OUTPUT,
// nat-POSTROUTING, raw-PREROUTING and raw-OUTPUT (chains.InitPolicy); it
// counts what reaches the end of the chain, which is what the policy
// decides. iptables-nft 1.8.9 itself shows 0 there (FORMAT.md §10.1); the
// view shows what iptables-legacy and iptables-nft 1.8.10+ count.
//
// Rules get their counters from dnft's rules and set elements (every
// dnft rule has a counter; the published, dnat-host, dnat-any, hairpin,
// loopback-ports, nat-return, ingress-dnat, ingress-ports and
// ingress-replies sets and maps have per-element counters). DOCKER-USER
// is listed from the kernel rule by rule, each with its own counter
// (Docker's RETURN is a counted return rule). B is a network's bridge;
// chain names are dnft's (see package chains):
//
//	iptables rule                                   counter source (nft)                               exact?
//	policy of each built-in chain                   that base chain's last rule "POLICY"               yes
//	nat PREROUTING -j DOCKER                        nat-PREROUTING rule "DOCKER"                       yes
//	nat OUTPUT -j DOCKER                            nat-OUTPUT rule "DOCKER"                           yes
//	FORWARD -j DOCKER-USER                          filter-FORWARD rule "DOCKER-USER"                  yes
//	DOCKER-USER rules, Docker's -j RETURN included  each DOCKER-USER rule's own counter                yes
//	FORWARD -j DOCKER-ISOLATION                     filter-FORWARD rule "DOCKER-ISOLATION"             yes
//	DOCKER-ISOLATION -j RETURN                      DOCKER-ISOLATION's last rule "RETURN"              yes
//	DOCKER-ISOLATION -i B -o O -j DROP (pairs)      DOCKER-ISOLATION__B rule "ISOLATION"               sum (1)
//	DOCKER-ISOLATION ! -d S -i B -j DROP (internal) DOCKER-ISOLATION__B "INTERNAL NETWORK EGRESS"      yes (2)
//	DOCKER-ISOLATION ! -s S -o B -j DROP (internal) DOCKER-ISOLATION-IN__B "INTERNAL NETWORK INGRESS"  yes (2)
//	FORWARD -o B -m conntrack ... ACCEPT            DOCKER__B rule "RELATED,ESTABLISHED"               yes
//	FORWARD -o B -j DOCKER                          DOCKER__B counter-only rule "DOCKER"               yes
//	FORWARD -i B ! -o B -j ACCEPT                   FORWARD__B rule "OUTGOING"                         yes
//	FORWARD -i B -o B -j ACCEPT|DROP                FORWARD__B rule "ICC"                              yes
//	DOCKER ! -i B -o B -j DROP                      DOCKER__B rule "UNPUBLISHED PORT DROP"             yes
//	DOCKER -d C ... --dport CP -j ACCEPT            element published[C . P . CP]                      yes (3)
//	nat DOCKER -i B -j RETURN                       element nat-return[B]                              yes
//	nat DOCKER ... -j DNAT (a binding)              element dnat-host[H . P . HP] / dnat-any[P . HP]   yes
//	nat POSTROUTING -s S ! -o B -j MASQUERADE|SNAT  nat-POSTROUTING__B rule "MASQUERADE" / "SNAT"      yes
//	nat POSTROUTING -o B --src-type LOCAL MASQ.     nat-POSTROUTING-OUT__B "MASQUERADE FROM HOST"      yes
//	nat POSTROUTING -s C -d C ... MASQUERADE        element hairpin[C . C . P . CP]                    yes (3)
//	raw PREROUTING -d S ! -i B ... -j DROP          raw-PREROUTING__B rule "DROP DIRECT ACCESS"        yes
//	raw PREROUTING -d H ! -i lo ... -j DROP         element loopback-ports[H . P . HP]                 yes
//	nat DOCKER-INGRESS ... -j DNAT (a port)         element ingress-dnat[P . PUB]                      yes (4)
//	DOCKER-INGRESS -p P --dport PUB -j ACCEPT       element ingress-ports[P . PUB]                     yes
//	DOCKER-INGRESS ... --sport PUB ... ACCEPT       element ingress-replies[P . PUB]                   yes
//	FORWARD -j DOCKER-INGRESS                       filter-FORWARD rule "DOCKER-INGRESS"               yes
//	DOCKER-INGRESS -j RETURN                        DOCKER-INGRESS's last rule "RETURN"                yes
//	nat PREROUTING/OUTPUT -j DOCKER-INGRESS         nat-PREROUTING/nat-OUTPUT rule "DOCKER-INGRESS"    yes
//	nat DOCKER-INGRESS -j RETURN                    nat-DOCKER-INGRESS's last rule "RETURN"            yes
//	nat POSTROUTING -o G --src-type LOCAL MASQ.     nat-POSTROUTING rule "INGRESS MASQUERADE"          sum (1)
//
// (1) Where nftables keeps one counter for several iptables rules: dnft
// drops packets between non-internal networks with one rule per source
// network and a set lookup of the destination bridge (iptables: one rule
// per ordered pair), and masquerades for every ingress gateway bridge
// with one rule (iptables: one per gateway; Docker has one,
// docker_gwbridge). The count is the exact total of those rules; the
// view shows it on the first of them in chain order and 0 on the others,
// so with two or more pairs (gateways) a drop can show on another pair's
// rule. The total over them is always right.
//
// (2) Packets from one internal network straight to another match both
// networks' rules; iptables counts them on the newer network's rule (it
// comes first), dnft on the sender's egress rule.
//
// (3) Bindings that forward to the same container port have
// byte-identical iptables rules, and share one published and one hairpin
// element: the first of those rules in chain order gets the count and the
// others 0, which is what iptables' first match does.
//
// With the userland proxy off, a network whose bridge is also an ingress
// gateway has two byte-identical masquerades from the host (its own and
// the gateway's); iptables counts on the upper copy, dnft on whichever of
// its two rules matches first, which may be the lower one in the view.
//
// (4) A second publication of the same ingress port rewrites the element
// that records the reference count, which sets its counter back to 0;
// iptables keeps the DNAT rule's counter.
//
// With ICC off, frames between two containers of the network that the
// bridge passes without br_netfilter are dropped in the `bridge dnft`
// table, which has no iptables rule: they count on that table's rule
// (`nft list table bridge dnft`), not on `FORWARD -i B -o B -j DROP`,
// which counts what reaches the IP hooks, as iptables' rule does.
//
// Namespaces initialized by an older dnft lack the policy, RETURN and
// DOCKER counter rules until `dnft repair` (or a restore) adds them:
// those counters show 0 meanwhile.
//
// # History
//
// Some of what iptables shows depends on operations whose objects are
// gone, and dnft records that history (it changes no packet, except the
// order of SNAT, which follows it; the state documents carry it, so that
// a restored state shows the same view):
//
//   - iptables keeps the raw table, empty, once a rule has been there:
//     the daemon record notes the families whose raw table a network used
//     (chains.DaemonConfig.RawTable4).
//   - The DOCKER-INGRESS chains and jumps, and each gateway's
//     masquerade, are created by the first ingress publication (on the
//     gateway) and stay where it put them until the last port goes: the
//     gateway records note both publications (ingress.Gateway).
//   - Byte-identical rules: the filter accepts and hairpin masquerades of
//     bindings that forward to the same container port, and with the
//     userland proxy off a network's masquerade from the host and the
//     ingress masquerade of a gateway on its bridge. iptables' -D deletes
//     the first copy that matches (the newest of inserted rules, the
//     oldest of appended ones), not necessarily the removed object's, and
//     the survivor then sits where the removed copy was. dnft records such
//     moves (set positions; chains.Network.MasqSeq4 and the gateway
//     record) and the view places the rules there.
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
//   - Host names follow iptables' algorithm ([Names.Host]): the hosts
//     services of nsswitch.conf in order ("files" and "dns"; others such
//     as myhostname or mdns4 count as unavailable), DNS PTR questions
//     asked from the namespace shown, /etc/networks only when the lookup
//     failed. compat caches each address's answer for one command (glibc
//     asks again for every line), and does not fall back to TCP for
//     truncated answers.
//   - The iptables-save date lines show the time of the view, like
//     iptables; tests mask them. Their program name is always
//     "iptables-save" (iptables-nft-save puts its argv[0] there).
//   - iptables-legacy lists save-all tables most recently created first;
//     compat uses iptables-nft's order (raw, filter, nat), which is also
//     legacy's for the order in which Docker's commands create them.
//   - History is kept only where dnft's own operations make it (see
//     "History" above): `dnft apply` keeps the history of what
//     stays but does not move rules the way iptables' -D would for the
//     objects it removes; `dnft repair` without a saved state rebuilds
//     from the records, history included.
//   - `-v -v` prints no debugging dump; -h prints compat's own help; -Z and
//     every command that changes rules are refused, except -A, -I, -D, -C
//     and -F of DOCKER-USER (see [ParseEdit]); DNS names are not accepted
//     for -s/-d.
//   - DOCKER-USER lists the operator's rules as read from the kernel: in
//     iptables syntax when they have one (see [UserRuleIPT]), otherwise as
//     a rule with the comment "nft-only: " and the rule's nft text.
package compat
