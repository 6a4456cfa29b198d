#!/usr/bin/env bash
# profile-members.sh: one run of etcd's benchmark tool against a fresh
# 3-member `lockstep serve` cluster on loopback, reporting what
# bench-vs-etcd.sh does not: each member's CPU and socket syscalls per
# request, the client's CPU per request, the tail (p99.9, slowest), the
# machine's idle and iowait, and optionally a pprof profile of each member.
# It is for finding where the time goes and for A/B pairs of builds; the
# table against etcd comes from bench-vs-etcd.sh.
#
# Needs etcd's benchmark tool (see bench-vs-etcd.sh) as BENCH_BIN.
#
# Usage: BENCH_BIN=/path/to/benchmark scripts/profile-members.sh WORKLOAD
#   WORKLOAD   put1 put64 put256 put1000 get256 sget256 (as in bench.sh)
#   LSBIN      the lockstep binary (default: built from this checkout)
#   TOTAL      requests (default: the workload's)
#   RATE       requests per second, 0 for no limit (default 0); a fixed rate
#              below saturation shows stalls that CPU queueing hides
#   PROF       seconds of pprof profile per member, written to OUT/mN.pprof
#   PTYPE      pprof profile type (default profile; allocs, heap, ...)
#   SERVE_ENV  environment for the members, e.g. GOGC=200
#   OUT        where profiles and logs go (default: a new temp directory)
#
# Interleaved A/B of two builds, three rounds:
#   for i in 1 2 3; do for b in /tmp/old /tmp/new; do
#     LSBIN=$b BENCH_BIN=... scripts/profile-members.sh put256; done; done
set -euo pipefail
: "${BENCH_BIN:?set BENCH_BIN to the etcd benchmark tool}"
w="${1:?usage: profile-members.sh WORKLOAD}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
if [ -z "${LSBIN:-}" ]; then
	LSBIN="$out/lockstep"
	go build -o "$LSBIN" "$root/cmd/lockstep"
fi
put="--key-size=8 --key-space-size=100000 --val-size=256"
case "$w" in
put1) args="--target-leader --conns=1 --clients=1 put $put" total=4000 ;;
put64) args="--target-leader --conns=64 --clients=64 put $put" total=40000 ;;
put256) args="--target-leader --conns=100 --clients=256 put $put" total=60000 ;;
put1000) args="--target-leader --conns=100 --clients=1000 put $put" total=120000 ;;
get256) args="--conns=100 --clients=256 range anchor-key --consistency=l" total=90000 ;;
sget256) args="--conns=100 --clients=256 range anchor-key --consistency=s" total=90000 ;;
*) echo "profile-members.sh: unknown workload $w" >&2; exit 2 ;;
esac
total="${TOTAL:-$total}"
eps=127.0.0.1:42379,127.0.0.1:42479,127.0.0.1:42579
cluster="b1=http://127.0.0.1:42380,b2=http://127.0.0.1:42480,b3=http://127.0.0.1:42580"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for i in 1 2 3; do
	env ${SERVE_ENV:-} "$LSBIN" serve --name "b$i" --data-dir "$out/data/b$i" \
		--listen-client-urls "http://127.0.0.1:$((42279 + 100 * i))" --listen-peer-urls "http://127.0.0.1:$((42280 + 100 * i))" \
		--initial-cluster "$cluster" --initial-cluster-token profile --log-level warn \
		--pprof-addr "127.0.0.1:$((6060 + i))" >"$out/b$i.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 100); do
	"$LSBIN" put --endpoints=$eps anchor-key "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null 2>&1 && break
	sleep 0.1
done
"$LSBIN" status --endpoints=$eps 2>/dev/null | awk '/\(this\)/{print "leader: " $3}'
cpu() { for p in "${pids[@]}"; do sed 's/.*) //' "/proc/$p/stat" | awk '{printf "%d ", $12+$13}'; done; }
sysc() { for p in "${pids[@]}"; do awk '/syscr|syscw/{printf "%s ", $2}' "/proc/$p/io"; done; }
st0=$(head -1 /proc/stat) c0=$(cpu) io0=$(sysc)
profs=()
if [ -n "${PROF:-}" ]; then
	for i in 1 2 3; do
		curl -s "http://127.0.0.1:$((6060 + i))/debug/pprof/${PTYPE:-profile}?seconds=$PROF" -o "$out/m$i.pprof" &
		profs+=($!)
	done
fi
/usr/bin/time -f "CLIENTCPU %U %S" "$BENCH_BIN" --endpoints=$eps $args --total="$total" --rate="${RATE:-0}" >"$out/bench.out" 2>&1
st1=$(head -1 /proc/stat) c1=$(cpu) io1=$(sysc)
[ ${#profs[@]} -gt 0 ] && wait "${profs[@]}"
python3 - "$w" "$total" "$c0" "$c1" "$io0" "$io1" "$st0" "$st1" "$(getconf CLK_TCK)" "$out/bench.out" <<'PY'
import re, sys
w, total, c0, c1, io0, io1, st0, st1, tck, resf = sys.argv[1:]
res = open(resf).read()
total = float(total)
def lat(p):
    m = re.search(r"\s%s%% in ([\d.]+) secs" % re.escape(p), res)
    return "%.1f" % (float(m.group(1)) * 1000) if m else "?"
ops = re.search(r"Requests/sec:\s+([\d.]+)", res)
slow = re.search(r"Slowest:\s+([\d.]+)", res)
print("%s: %s ops/s  p50 %s  p99 %s  p99.9 %s  slowest %s ms" % (w, ops.group(1) if ops else "?", lat("50"), lat("99"), lat("99.9"),
      "%.1f" % (float(slow.group(1)) * 1000) if slow else "?"))
d = [(b - a) / float(tck) for a, b in zip(map(int, c0.split()), map(int, c1.split()))]
print("members' CPU per request (us): %s, together %.1f" % (" ".join("%.1f" % (x / total * 1e6) for x in d), sum(d) / total * 1e6))
m = re.search(r"CLIENTCPU ([\d.]+) ([\d.]+)", res)
if m:
    print("client CPU per request (us): %.1f" % ((float(m.group(1)) + float(m.group(2))) / total * 1e6))
a, b = list(map(int, io0.split())), list(map(int, io1.split()))
print("syscalls per request, reads/writes by member: %s" % "  ".join("%.2f/%.2f" % ((b[2*i] - a[2*i]) / total, (b[2*i+1] - a[2*i+1]) / total) for i in range(3)))
s0, s1 = list(map(int, st0.split()[1:])), list(map(int, st1.split()[1:]))
dd = [y - x for x, y in zip(s0, s1)]
print("machine: idle %.1f%%, iowait %.1f%%" % (100.0 * dd[3] / sum(dd), 100.0 * dd[4] / sum(dd)))
PY
[ -n "${PROF:-}" ] && echo "profiles: $out/m1.pprof $out/m2.pprof $out/m3.pprof (go tool pprof -top $LSBIN FILE)"
exit 0
