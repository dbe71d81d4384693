// Package nft is dnft's only door to the kernel: it opens nf_tables netlink
// connections inside a network namespace, turns the typed object model of
// this package (chains, rules, sets, maps and their elements) into one
// netlink batch per transaction, and reads dnft's tables back.
//
// Policy packages (chains, portmap, ingress) describe what they want with
// [Tx]; only this package imports github.com/google/nftables.
//
// Be aware:
//   - One [Conn.Apply] is one netlink batch, so it commits whole or not at
//     all. A batch can carry the ruleset generation it was computed from
//     ([Conn.ApplyGen]): the kernel then refuses it, atomically, if anything
//     else committed in between.
//   - The connection drives its own netlink socket with blocking system
//     calls and checks the sequence number of every reply; after a failure
//     on it the socket is discarded and a fresh one is dialled, so no stale
//     reply is ever taken for another request's.
//   - Socket buffers are raised to 32 MiB (SO_RCVBUFFORCE/SO_SNDBUFFORCE),
//     batch messages ask for no acknowledgement (only failures are
//     answered), and element lists are split before a netlink attribute's
//     16-bit length overflows, so large batches neither fail with EMSGSIZE
//     nor report a spurious ENOBUFS nor get silently truncated.
//   - Interface names are matched as names, so rules may name bridges that do
//     not exist yet.
package nft
