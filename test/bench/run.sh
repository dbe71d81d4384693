#!/usr/bin/env bash
# dnft's benchmarks in one command (as root): builds the workloads, runs
# every benchmark of test/bench against the iptables and nft baselines in
# throwaway network namespaces, and writes test/bench/results/:
#   results.md      medians and ratios, the machine, the checks
#   *.png           latency and rate plots
#   results.jsonl   every cell with its samples (the report's input)
#   bench.txt       the go test -bench output
#   machine.txt     nproc, free -h, kernel, iptables/nft versions, load
# and prints the must-show checks as PASS/FAIL lines. Exit status: 0 when
# everything ran and every check passed (with DNFT_BENCH_FILTER: every check
# it measured), 1 otherwise.
#
#   test/bench/run.sh                          # full run (its run time: results/machine.txt)
#   DNFT_BENCH_SCALE=small test/bench/run.sh   # pipeline check
#   DNFT_BENCH_FILTER='PublishOne|DataPlane' test/bench/run.sh   # some benchmarks only
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
scale=${DNFT_BENCH_SCALE:-full}
filter=${DNFT_BENCH_FILTER:-.}
out=$root/test/bench/results

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: needs root (network namespaces, iptables, nft)" >&2
  exit 1
fi
for tool in ip iptables-nft iptables-legacy nft conntrack; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install iproute2 iptables nftables conntrack)" >&2; exit 1; }
done
if [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq time >/dev/null || echo "run.sh: GNU time is missing: process memory is not measured" >&2
fi

start=$(date +%s)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "== building"
# Statically, as an installed dnft should be: no dynamic loader at start.
CGO_ENABLED=0 go build -o "$bin/dnft" ./cmd/dnft
go build -o "$bin/dnft-bench" ./cmd/dnft-bench
go test -c -o "$bin/bench.test" ./test/bench
(cd test/bench/report && go build -o "$bin/report" .)

mkdir -p "$out"
rm -f "$out"/results.jsonl "$out"/results.md "$out"/*.png "$out"/bench.txt
{
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "scale:    $scale (DNFT_BENCH_SCALE)"
  echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!test/bench/results' 2>/dev/null || echo ' + local changes')"
  echo "nproc:    $(nproc)"
  echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel:   $(uname -r)"
  echo "iptables: $(iptables-nft --version) / $(iptables-legacy --version)"
  echo "nft:      $(nft --version)"
  echo "go:       $(go version)"
  echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at the start)"
  echo "free -h:"
  free -h
} > "$out/machine.txt"
cat "$out/machine.txt"

echo "== benchmarks ($scale)"
status=0
(cd test/bench && DNFT_BENCH_SCALE=$scale DNFT_BENCH_RESULTS=$out/results.jsonl DNFT_BENCH_BIN=$bin \
  "$bin/bench.test" -test.run '^$' -test.bench "$filter" -test.benchtime 1x -test.timeout 40m) \
  2>&1 | tee "$out/bench.txt" || status=1

# The Docker row: a real dockerd (test/dockertwin, skipped without docker).
if [[ "RunPublish1k" =~ $filter ]] && command -v dockerd >/dev/null; then
  echo "== docker run -p with 1,000 bindings (test/dockertwin)"
  reps=11
  [ "$scale" = small ] && reps=3
  go test -c -o "$bin/dockertwin.test" ./test/dockertwin
  (cd test/dockertwin && DNFT_BENCH_RESULTS=$out/results.jsonl "$bin/dockertwin.test" -test.run '^$' \
    -test.bench 'RunPublish1k' -test.benchtime "${reps}x" -test.timeout 30m) 2>&1 | tee -a "$out/bench.txt" || status=1
fi

elapsed=$(( $(date +%s) - start ))
echo "run time: $((elapsed / 60)) min $((elapsed % 60)) s (build, benchmarks; DNFT_BENCH_FILTER=$filter)" >> "$out/machine.txt"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at the end)" >> "$out/machine.txt"

echo "== report"
partial=()
# Some benchmarks only: the checks they do not feed are shown as SKIP
# without failing the run.
[ "$filter" = . ] || partial=(-partial)
"$bin/report" -in "$out/results.jsonl" -machine "$out/machine.txt" -out "$out" "${partial[@]}" || status=1
exit $status
