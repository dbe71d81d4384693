// Package bench measures dnft against the ways Docker programs the same
// firewall with iptables and nft, in throwaway network namespaces: the
// control plane (init, network create, publish/unpublish, listing,
// restore), the data plane (TCP connection and UDP request rates through
// the published port) and memory.
//
// Everything runs as `go test -bench` benchmarks (root only; they skip
// otherwise) and in one command, test/bench/run.sh, which also writes
// test/bench/results/ (a Markdown table, PNG plots and PASS/FAIL checks).
// Without -bench, `go test` runs only the package's few fast correctness
// tests of the baselines.
//
// The baselines program Docker's layout of CONTRACT.md §2 (daemon with the
// userland proxy on, IPv4, protected mode; ICC and masquerade on):
//
//   - iptables-nft+C, iptables-legacy+C: one iptables exec per rule with a
//     -C check first, as libnetwork's ProgramRule does (-C, then -A/-I;
//     jumps are moved with -C, -D, -I);
//   - restore-nft, restore-legacy: one `iptables-restore -w --noflush` per
//     operation holding all of its -A/-I/-D lines;
//   - nft-rules: one `nft -f -` per operation, adding per-publication rules
//     to chains as Docker's nftables backend and knftables users do;
//     deletion lists the table with handles first (`nft -a list table`).
//
// Each backend works in its own namespace. Preparation ("pre-fill") uses
// the fastest bulk path of the backend (iptables-restore for the exec
// baselines) and is never timed. Sizes come from DNFT_BENCH_SCALE
// (small, the default, or full); see [ScaleFromEnv]. Each cell repeats its
// operation within a time budget and reports the median; an operation
// that does not finish within the abort limit is reported as a lower
// bound, and larger sizes of that backend are skipped. When
// DNFT_BENCH_RESULTS names a file, every cell is also appended to it as a
// JSON line ([Result]) for the report generator in test/bench/report.
package bench
