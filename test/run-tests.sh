#!/usr/bin/env bash
# The project's test command (README): every package, real kernel, real
# packets, each test in network namespaces it creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -timeout 15m -p 2 ./... "$@"
