#!/usr/bin/env bash
# Worker benchmark: N captures (default 5000) through RabbitMQ → worker → PostgreSQL, next to
# `iari classify` on the same images in the same run. Images are the bundled synthetic samples,
# copied N times with a unique trailer after the PNG end so that every capture stores new bytes.
# Usage: scripts/bench-worker.sh [N] [IARI binary]   (services must be up: scripts/services.sh)
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
N=${1:-5000}
IARI=${2:-target/release/iari}
DIR=$(mktemp -d /tmp/iari-bench.XXXXXX)
LIS_DIR=$(mktemp -d /tmp/iari-bench-lis.XXXXXX)
trap '[[ -n "${LIS_PID:-}" ]] && kill "$LIS_PID" 2>/dev/null; rm -rf "$DIR" "$LIS_DIR"' EXIT
mapfile -t SAMPLES < <(find onnx/samples -name '*.png' | sort)
for ((i = 0; i < N; i++)); do
  src=${SAMPLES[$((i % ${#SAMPLES[@]}))]}
  { cat "$src"; printf 'iari-bench-%08d' "$i"; } > "$DIR/$(printf '%06d' "$i").png"
done
export IARI__INFERENCE__DEVICE=${IARI__INFERENCE__DEVICE:-cpu}
# Measured without plate QC, as before it existed: the same captures, no control wells.
export IARI__QC__MODE=off
# HL7 results go over MLLP to `iari lis-sim`, as in production (BENCH_LIS=file: the file drop).
if [[ ${BENCH_LIS:-mllp} == mllp ]]; then
  start_lis_sim "$IARI" "$LIS_DIR"
  export IARI__LIS__TRANSPORT=mllp IARI__LIS__ADDR=$LIS_ADDR
fi
echo "== iari classify: $N images ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
start=$(date +%s.%N)
"$IARI" classify "$DIR" --format csv > "$DIR.csv"
end=$(date +%s.%N)
echo "classify: $(awk -v n="$N" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f images/s (%.1f s)", n / (e - s), e - s }')"
rm -f "$DIR.csv"
echo "== iari demo (worker, publish → committed): $N captures"
IARI__IMAGES__ROOT="$DIR" IARI__HTTP__ADDR=127.0.0.1:0 \
  IARI__DATABASE__URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/iari_bench} \
  "$IARI" demo --samples "$DIR" --timeout-s 1800 2>/dev/null | grep -E "decided|end to end|stage time"
echo "== iari demo --prefill (worker alone draining $N queued captures)"
IARI__IMAGES__ROOT="$DIR" IARI__HTTP__ADDR=127.0.0.1:0 \
  IARI__DATABASE__URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/iari_bench} \
  "$IARI" demo --prefill --samples "$DIR" --timeout-s 1800 2>/dev/null | grep -E "decided|stage time"
