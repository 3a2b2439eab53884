#!/usr/bin/env bash
# CPU accounting of a worker draining a prefilled queue: N synthetic captures are published to a
# fresh quorum queue, then `iari worker` (with its HL7 sender) drains it into a fresh database.
# Prints the CPU seconds (utime + stime from /proc) used during the drain by the worker (per
# thread group), RabbitMQ (beam.smp) and PostgreSQL (all its processes, exited backends included
# through the postmaster's children counters), the worker's peak RSS (VmHWM, read once every
# result is delivered) and its stage sums from /metrics.
# Usage: scripts/bench-worker-cpu.sh [N] [IARI binary]   (services must be up)
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
N=${1:-3000}
IARI=${2:-target/release/iari}
TAG=perf$(date +%s)$$
DIR=$(mktemp -d /tmp/iari-cpu.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
PG=postgres://postgres@127.0.0.1:5432
cleanup() {
  [[ -n "${WPID:-}" ]] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
  [[ -n "${LIS_PID:-}" ]] && kill "$LIS_PID" 2>/dev/null || true
  rm -rf "$DIR" "$DIR.log"
  for q in "$TAG" "$TAG.dead"; do timeout 30 rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true; done
  [[ -n "${KEEP_DB:-}" ]] && echo "kept database $TAG" ||
    bench_psql "$PG/postgres" -Atq -c "DROP DATABASE IF EXISTS $TAG" >/dev/null 2>&1 || true
}
trap cleanup EXIT
mapfile -t SAMPLES < <(find onnx/samples -name '*.png' | sort)
for ((i = 0; i < N; i++)); do
  src=${SAMPLES[$((i % ${#SAMPLES[@]}))]}
  { cat "$src"; printf 'iari-bench-%08d' "$i"; } > "$DIR/$(printf '%06d' "$i").png"
done
# No control wells in the benchmark's captures: plate QC off (it would hold every result).
export IARI__QC__MODE=off
export IARI__INFERENCE__DEVICE=cpu IARI__IMAGES__ROOT="$DIR" IARI__LOG__LEVEL=warn \
  IARI__DATABASE__URL=postgres://postgres@127.0.0.1:5432/$TAG \
  IARI__AMQP__EXCHANGE=$TAG IARI__AMQP__QUEUE=$TAG IARI__AMQP__DEAD_LETTER_EXCHANGE=$TAG.dlx \
  IARI__AMQP__DEAD_LETTER_QUEUE=$TAG.dead IARI__HTTP__ADDR=127.0.0.1:$PORT \
  IARI__LIS__DIR="$DIR/hl7"
# BENCH_LIS=file measures the file transport instead of MLLP to `iari lis-sim`.
if [[ ${BENCH_LIS:-mllp} == mllp ]]; then
  start_lis_sim "$IARI" "$DIR"
  export IARI__LIS__TRANSPORT=mllp IARI__LIS__ADDR=$LIS_ADDR
fi
"$IARI" publish "$DIR" --prefix "$TAG" >/dev/null
stat() { # utime+stime(+cutime+cstime with $2=children) from stat file $1, in clock ticks
  awk -v c="${2:-}" '{ sub(/^.*\) /, ""); t = $12 + $13; if (c) t += $14 + $15; print t }' "$1" 2>/dev/null || echo 0
}
ticks() { stat "/proc/$1/stat" "${2:-}"; }
beam() { local t=0; for p in $(pgrep -x beam.smp); do t=$((t + $(ticks "$p"))); done; echo $t; }
pg() { # postmaster with children counters (exited backends) + live children
  local pm t=0; pm=$(pgrep -o -x postgres)
  t=$(ticks "$pm" children)
  for p in $(pgrep -P "$pm"); do t=$((t + $(ticks "$p"))); done
  echo $t
}
decided() { bench_psql "$PG/$TAG" -Atq -c "SELECT count(*) FROM decisions" 2>/dev/null || echo 0; }
delivered() { bench_psql "$PG/$TAG" -Atq -c "SELECT count(*) FROM hl7_messages WHERE state = 'acked'" 2>/dev/null || echo 0; }
"$IARI" migrate >/dev/null
"$IARI" worker >"$DIR.log" 2>&1 &
WPID=$!
alive() { kill -0 "$WPID" 2>/dev/null || { echo "worker exited:"; tail -5 "$DIR.log"; exit 1; }; }
until [[ $(decided) -gt 0 ]]; do alive; sleep 0.1; done
b0=$(beam) p0=$(pg) w0=$(ticks $WPID) t0=$(date +%s.%N) d0=$(decided)
until [[ $(decided) -ge $N ]]; do alive; sleep 0.1; done
b1=$(beam) p1=$(pg) w1=$(ticks $WPID) t1=$(date +%s.%N)
until [[ $(delivered) -ge $N ]]; do alive; sleep 0.1; done
b2=$(beam) p2=$(pg) w2=$(ticks $WPID) t2=$(date +%s.%N)
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$WPID/status")
HZ=$(getconf CLK_TCK)
n=$((N - d0))
awk -v n="$n" -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
  -v w="$((w1 - w0))" -v b="$((b1 - b0))" -v p="$((p1 - p0))" \
  -v w2="$((w2 - w0))" -v b2="$((b2 - b0))" -v p2="$((p2 - p0))" -v la="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
  s = t1 - t0
  printf "drain: %d captures in %.2f s = %.0f/s (load %s)\n", n, s, n / s, la
  printf "CPU ms/capture until decided: worker %.3f, rabbitmq %.3f, postgres %.3f, total %.3f\n",
    w / hz * 1000 / n, b / hz * 1000 / n, p / hz * 1000 / n, (w + b + p) / hz * 1000 / n
  printf "until all HL7 delivered (+%.2f s): worker %.3f, rabbitmq %.3f, postgres %.3f ms/capture\n",
    t2 - t1, w2 / hz * 1000 / n, b2 / hz * 1000 / n, p2 / hz * 1000 / n
}'
[[ -n "${LIS_PID:-}" ]] && echo "lis-sim CPU over the whole run: $(awk -v t="$(ticks "$LIS_PID")" -v n="$N" -v hz="$HZ" 'BEGIN { printf "%.3f ms/capture", t / hz * 1000 / n }')"
echo "worker peak RSS (VmHWM): $((HWM / 1024)) MiB ($HWM KiB)"
echo "worker threads (CPU s, live threads only):"
for t in /proc/$WPID/task/*; do
  printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(stat "$t/stat")"
done | awk -v hz="$HZ" '{ a[$1] += $2 } END { for (k in a) printf "  %-18s %.2f\n", k, a[k] / hz }'
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E 'stage_seconds_(sum|count)' | sed 's/^/  /' || true
