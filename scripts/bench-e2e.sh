#!/usr/bin/env bash
# End-to-end benchmark: `iari publish` → RabbitMQ → `iari worker` (its own process) → PostgreSQL
# → outbox → MLLP → `iari lis-sim` → ACK, next to `iari classify` on the same images in the same
# run. Two phases on one warm worker:
#   (a) throughput: N captures published as fast as confirms allow; captures/s until the last ACK;
#   (b) latency: BENCH_RATE_N captures at BENCH_RATE/s; publish → ACK p50/p95/p99, where publish
#       is the event's captured_at (set by `iari publish` just before publishing) and ACK is the
#       worker's receipt of the LIS's AA (hl7_attempts.finished_at).
# Peak RSS is the worker's VmHWM from /proc/PID/status after both phases. Images are the bundled
# synthetic samples with a unique trailer after the PNG end, so every capture stores new bytes.
# Usage: scripts/bench-e2e.sh [N] [IARI binary]   (services must be up: scripts/services.sh)
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
N=${1:-5000}
IARI=$(realpath "${2:-target/release/iari}")
RATE=${BENCH_RATE:-100}
RATE_N=${BENCH_RATE_N:-2000}
BASE=${BENCH_DATABASE_BASE:-postgres://postgres@127.0.0.1:5432}
TAG=bench_e2e_$$
DIR=$(mktemp -d /tmp/iari-bench-e2e.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bench_psql "$BASE/postgres" -qtA -c "DROP DATABASE IF EXISTS iari_$TAG WITH (FORCE)" >/dev/null 2>&1 || true
  for q in "iari.$TAG.q" "iari.$TAG.dead"; do
    timeout 30 rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

export IARI__DATABASE__URL=$BASE/iari_$TAG
export IARI__AMQP__EXCHANGE=iari.$TAG.x IARI__AMQP__QUEUE=iari.$TAG.q
export IARI__AMQP__DEAD_LETTER_EXCHANGE=iari.$TAG.dlx IARI__AMQP__DEAD_LETTER_QUEUE=iari.$TAG.dead
export IARI__IMAGES__ROOT=$DIR IARI__INFERENCE__DEVICE=${IARI__INFERENCE__DEVICE:-cpu}
export IARI__LOG__LEVEL=${IARI__LOG__LEVEL:-warn}
# The benchmark's captures carry no control wells: plate QC would hold every result for
# qc.wait_s (docs/operations.md), so it measures the pipeline with QC off.
export IARI__QC__MODE=off
sql() { bench_psql "$IARI__DATABASE__URL" -qtA -c "$1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s; fails after SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.2
  done
}

mapfile -t SAMPLES < <(find onnx/samples -name '*.png' | sort)
make_images() { # make_images SUBDIR COUNT TAG
  mkdir -p "$DIR/$1"
  for ((i = 0; i < $2; i++)); do
    { cat "${SAMPLES[$((i % ${#SAMPLES[@]}))]}"; printf 'iari-%s-%08d' "$3" "$i"; } > "$DIR/$1/$(printf '%06d' "$i").png"
  done
}
make_images tput "$N" tput
make_images lat "$RATE_N" lat
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== iari classify: $N images ($(nproc) cores, load $LOAD0)"
t0=$(date +%s.%N)
"$IARI" classify "$DIR/tput" --format csv > /dev/null
t1=$(date +%s.%N)
CLASSIFY=$(awk -v n="$N" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.1f", n / (e - s) }')
echo "classify: $CLASSIFY images/s"

"$IARI" migrate > /dev/null
# Diagnostic only: e.g. BENCH_SYNCHRONOUS_COMMIT=off shows what commit fsyncs cost (not a setting
# to run a laboratory with).
if [[ -n ${BENCH_SYNCHRONOUS_COMMIT:-} ]]; then
  sql "ALTER DATABASE iari_$TAG SET synchronous_commit = $BENCH_SYNCHRONOUS_COMMIT"
fi
start_lis_sim "$IARI" "$DIR" --record "$DIR/lis.tsv"
PIDS+=("$LIS_PID")
HTTP=127.0.0.1:$(free_port)
IARI__LIS__TRANSPORT=mllp IARI__LIS__ADDR=$LIS_ADDR IARI__HTTP__ADDR=$HTTP \
  "$IARI" worker 2> "$DIR/worker.log" &
WPID=$!
PIDS+=("$WPID")
wait_for 120 curl -sf "http://$HTTP/readyz" -o /dev/null
acked() { [[ $(sql "SELECT count(*) FROM hl7_messages WHERE state = 'acked'") -ge $1 ]]; }

echo "== (a) throughput: $N captures published as fast as confirms allow (LIS $LIS_ADDR)"
"$IARI" publish "$DIR/tput" --prefix TPUT > /dev/null
wait_for 1800 acked "$N"
# From the first capture's publish to the last ACK, and to the last decision.
read -r TPUT DECIDED < <(sql "SELECT round($N / extract(epoch FROM max(a.finished_at) - min(c.captured_at)), 1),
    round($N / extract(epoch FROM max(d.decided_at) - min(c.captured_at)), 1)
  FROM captures c JOIN decisions d USING (capture_id) JOIN hl7_messages m ON m.decision_id = d.id
  JOIN hl7_attempts a ON a.message_id = m.id AND a.outcome = 'acked' WHERE c.capture_id LIKE 'TPUT%'" | tr '|' ' ')
echo "worker: $TPUT captures/s acknowledged by the LIS ($DECIDED/s decided)"
# The sender sends one message at a time, in batches of lis.send_batch: between two batches it
# records the outcomes, claims the next batch and stores its payloads. p50 of the gap between
# two sends while the outbox was full (inside a batch near 0; with send_batch = 1, per message):
SENDER_GAP=$(sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY g)::numeric, 2) FROM (
    SELECT (extract(epoch FROM a.started_at - lag(a.finished_at) OVER (ORDER BY a.started_at)) * 1000)::float8 AS g
    FROM hl7_attempts a JOIN hl7_messages m ON m.id = a.message_id JOIN decisions d ON d.id = m.decision_id
    WHERE d.capture_id LIKE 'TPUT%') t WHERE g IS NOT NULL")

echo "== (b) latency: $RATE_N captures at $RATE/s"
"$IARI" publish "$DIR/lat" --prefix LAT --rate "$RATE" > /dev/null
wait_for 600 acked $((N + RATE_N))
# Percentiles in ms of each leg: publish -> ACK, publish -> committed, committed -> send, round trip.
pct() { echo "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY (extract(epoch FROM $1) * 1000)::float8) AS $2"; }
fmt() { echo "array_to_string(array(SELECT round(x::numeric, 1) FROM unnest(p.$1) x), ' / ')"; }
LAT_SQL="WITH t AS (SELECT c.captured_at, d.decided_at, a.started_at, a.finished_at
    FROM captures c JOIN decisions d USING (capture_id) JOIN hl7_messages m ON m.decision_id = d.id
    JOIN hl7_attempts a ON a.message_id = m.id AND a.outcome = 'acked' WHERE c.capture_id LIKE 'LAT%'),
  p AS (SELECT $RATE_N / extract(epoch FROM max(captured_at) - min(captured_at)) AS rate,
    $(pct "finished_at - captured_at" lat), $(pct "decided_at - captured_at" decide),
    $(pct "started_at - decided_at" wait), $(pct "finished_at - started_at" rtt) FROM t)
  SELECT round(p.rate, 1), $(fmt lat), $(fmt decide), $(fmt wait), $(fmt rtt) FROM p"
IFS='|' read -r ACTUAL_RATE LAT DECIDE WAIT RTT < <(sql "$LAT_SQL")
RSS_KIB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$WPID/status")
METRICS=$(curl -sf "http://$HTTP/metrics")

# The LIS's own view: every message received once, answered AA (nothing was faulted).
LIS_LINES=$(wc -l < "$DIR/lis.tsv")
LIS_DISTINCT=$(cut -f2 "$DIR/lis.tsv" | sort -u | wc -l)
DECISIONS=$(sql "SELECT count(*) FROM decisions")
echo
echo "== summary ($N + $RATE_N synthetic captures, $(nproc) cores, load at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-44s %s\n' \
  "iari classify (same images, same run)" "$CLASSIFY images/s" \
  "worker, publish -> LIS ACK (phase a)" "$TPUT captures/s ($(awk -v a="$TPUT" -v b="$CLASSIFY" 'BEGIN { printf "%.0f", 100 * a / b }') % of classify)" \
  "worker, publish -> decision committed" "$DECIDED captures/s" \
  "latency publish -> ACK p50/p95/p99 (b)" "$LAT ms at $ACTUAL_RATE captures/s achieved" \
  "  publish -> decision committed" "$DECIDE ms" \
  "  committed -> sender starts the send" "$WAIT ms" \
  "  send -> ACK (LIS round trip)" "$RTT ms" \
  "sender: database work between sends, p50 (a)" "$SENDER_GAP ms" \
  "worker peak RSS (VmHWM)" "$((RSS_KIB / 1024)) MiB" \
  "decisions / LIS frames / distinct MSH-10" "$DECISIONS / $LIS_LINES / $LIS_DISTINCT"
echo "stage means from /metrics (whole run, ms):"
echo "$METRICS" | awk -F'[{}" ]+' '
  /^iari_stage_seconds_sum/ { sum[$3] = $NF } /^iari_stage_seconds_count/ { n[$3] = $NF }
  /^iari_batch_size_sum/ { bs = $NF } /^iari_batch_size_count/ { bn = $NF }
  END { for (s in sum) if (n[s] > 0) printf "  %-12s %8.2f (n=%d)\n", s, 1000 * sum[s] / n[s], n[s];
        if (bn > 0) printf "  mean batch size %.1f over %d batches\n", bs / bn, bn }'
[[ $DECISIONS -eq $((N + RATE_N)) && $LIS_DISTINCT -eq $DECISIONS ]] || { echo "MISMATCH: see above" >&2; exit 1; }
