#!/usr/bin/env bash
# The review shares of BENCHMARKS.md "Release policy": splits the bundled synthetic samples
# (onnx/samples) by file number, even → calibration, odd → held out; calibrates at each RATE
# given (default 0.001 and 0.1) on the calibration half only; then simulates the shipped default
# and each calibrated policy on the held-out half. Needs a database for the policy in force
# (IARI__DATABASE__URL, migrated; nothing is written to it) and a built `iari` (BIN, default
# target/debug/iari).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/iari}
rates=("${@:-0.001 0.1}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for g in neg 1+ 2+ 3+ 4+; do
  mkdir -p "$work/cal/$g" "$work/hold/$g"
  for f in onnx/samples/"$g"/*.png; do
    n=$(basename "$f" .png); i=$((10#${n##*-}))
    if (( i % 2 == 0 )); then cp "$f" "$work/cal/$g/"; else cp "$f" "$work/hold/$g/"; fi
  done
done
export IARI__INFERENCE__DEVICE=${IARI__INFERENCE__DEVICE:-cpu} IARI__LOG__LEVEL=${IARI__LOG__LEVEL:-warn}
echo "== shipped default on the held-out half"
"$BIN" policy simulate config/policy/default.toml --labelled "$work/hold"
for rate in ${rates[@]}; do
  "$BIN" calibrate "$work/cal" --max-serious-release "$rate" --out "$work/cal-$rate.toml"
  echo "== calibrated at $rate (on the calibration half), on the held-out half"
  grep '^#\|_min\|flags_none' "$work/cal-$rate.toml"
  "$BIN" policy simulate "$work/cal-$rate.toml" --labelled "$work/hold"
done
