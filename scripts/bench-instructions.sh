#!/usr/bin/env bash
# Instructions per image of the classify bench's parts (decode + preprocess, inference, full
# path) under `valgrind --tool=callgrind`: a count, not a time, so it repeats on a noisy host
# and shows whether the full path does work its parts do not. Each part runs twice, with no
# images and with about N (after the same warm-up call), and the difference is divided by the
# images. ONNX Runtime picks narrower kernels under valgrind (no AVX-512), so the counts are
# for comparing parts with the whole, not for converting into time. About 25 minutes.
# Usage: scripts/bench-instructions.sh [N]   (default 100: each sample image once)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
N=${1:-100}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.ort/lib/libonnxruntime.so}
BIN=$(bench_binary)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
count() { # part images -> "instructions images"
  BENCH_ONLY=$1 BENCH_IMAGE_COUNT=$2 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg" \
    "$BIN" 2>"$OUT/err" | awk '{ print $2 }' | tr '\n' ' '
  awk '/Collected/ { print $NF }' "$OUT/err"
}
declare -A per
for part in decode inference full; do
  read -r _ base < <(count "$part" 0)
  read -r images total < <(count "$part" "$N")
  per[$part]=$(awk -v t="$total" -v b="$base" -v n="$images" 'BEGIN { printf "%.3f", (t - b) / n / 1e6 }')
  echo "$part: ${per[$part]} M instructions per image ($images images)"
done
awk -v d="${per[decode]}" -v i="${per[inference]}" -v f="${per[full]}" 'BEGIN {
  printf "full path %.3f against decode + inference %.3f M instructions per image (%+.1f %%)\n", f, d + i, (f - d - i) / (d + i) * 100 }'
