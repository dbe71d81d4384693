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
//     all. After any error the underlying socket is discarded and a fresh one
//     is dialled (google/nftables v0.3.0 keeps a poisoned error and stale
//     replies otherwise).
//   - Socket buffers are raised to 32 MiB (SO_RCVBUFFORCE/SO_SNDBUFFORCE), and
//     element lists are split into chunks of at most 1000 elements, so large
//     batches neither fail with EMSGSIZE nor report a spurious ENOBUFS nor get
//     silently truncated.
//   - Interface names are matched as names, so rules may name bridges that do
//     not exist yet.
package nft
