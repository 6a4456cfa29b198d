#!/usr/bin/env bash
# bench-vs-etcd.sh: etcd and lockstep serve under one harness and one client,
# interleaved: for each workload, REPS times (etcd, then lockstep), one run
# each, so that both see the same machine. Prints bench.sh's lines, prefixed
# with the system and the repetition.
#
# Needs: etcd (apt-get install etcd-server etcd-client) and etcd's benchmark
# tool (in a scratch module: go get go.etcd.io/etcd/v3@v3.6.8 && go build
# go.etcd.io/etcd/v3/tools/benchmark), passed as BENCH_BIN.
#
# Usage: BENCH_BIN=/path/to/benchmark scripts/bench-vs-etcd.sh [workload...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
harness="${HARNESS:-$root/../shared/bench/etcd/bench.sh}"
reps="${REPS:-3}"
: "${BENCH_BIN:?set BENCH_BIN to the etcd benchmark tool}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -o "$work/lockstep" "$root/cmd/lockstep"
workloads=("$@")
if [ ${#workloads[@]} -eq 0 ]; then
	workloads=(put-c1 put-c16 put-c64 put-c256 put-c1000 txn-put-c256 range-l-c1 range-l-c256 range-s-c256)
fi
# one SYSTEM WORKLOAD: bench.sh's line for one run.
one() {
	local dir="$work/cluster-$1"
	if [ "$1" = lockstep ]; then
		export LOCKSTEP_BIN="$work/lockstep" ANCHOR_ETCD_BIN="$here/lockstep-as-etcd"
	else
		unset LOCKSTEP_BIN ANCHOR_ETCD_BIN
	fi
	RUNS=1 WORKLOADS="$2" ANCHOR_ETCD_DIR="$dir" "$harness" | grep -v "^#" | grep -F -- "$2" | head -1
}
for w in "${workloads[@]}"; do
	for rep in $(seq "$reps"); do
		for sys in etcd lockstep; do
			echo "$sys rep=$rep $(one "$sys" "$w")"
		done
	done
done
