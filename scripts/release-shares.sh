#!/usr/bin/env bash
# The review shares of BENCHMARKS.md "Release policy": calibrates at each RATE given (default
# 0.001 and 0.1) on a calibration folder only, then simulates the shipped default and each
# calibrated policy on a held-out folder that calibration never saw.
#
# Data (all SYNTHETIC):
# - default: the bundled samples (onnx/samples) split by file number, even → calibration, odd →
#   held out (50 each);
# - WELLS_SCALE=K: two folders rendered by the training generator with seeds of their own
#   (20261206: calibration, 20261207: held out), each the paper's grade mix × K (1,628 × K wells;
#   `iari_train.wells`, in a small venv with numpy and pillow only, `.venv-wells`).
#
# Needs a database for the policy in force (IARI__DATABASE__URL, migrated; nothing is written to
# it) and a built `iari` (BIN, default target/debug/iari).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/iari}
rates=("${@:-0.001 0.1}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -n "${WELLS_SCALE:-}" ]]; then
  if [[ ! -x .venv-wells/bin/python ]]; then
    python3 -m venv .venv-wells
    .venv-wells/bin/pip install -q numpy==2.4.6 pillow==13.0.0
  fi
  for s in 20261206 20261207; do
    (cd onnx/train && ../../.venv-wells/bin/python -m iari_train.wells --seed "$s" \
      --scale "$WELLS_SCALE" --out "$work/$s")
  done
  cal="$work/20261206" hold="$work/20261207"
else
  cal="$work/cal" hold="$work/hold"
  for g in neg 1+ 2+ 3+ 4+; do
    mkdir -p "$cal/$g" "$hold/$g"
    for f in onnx/samples/"$g"/*.png; do
      n=$(basename "$f" .png); i=$((10#${n##*-}))
      if (( i % 2 == 0 )); then cp "$f" "$cal/$g/"; else cp "$f" "$hold/$g/"; fi
    done
  done
fi
export IARI__INFERENCE__DEVICE=${IARI__INFERENCE__DEVICE:-cpu} IARI__LOG__LEVEL=${IARI__LOG__LEVEL:-warn}
echo "== shipped default on the held-out folder"
"$BIN" policy simulate config/policy/default.toml --labelled "$hold"
for rate in ${rates[@]}; do
  "$BIN" calibrate "$cal" --max-serious-release "$rate" --out "$work/cal-$rate.toml"
  echo "== calibrated at $rate (on the calibration folder), on the held-out folder"
  grep '^#\|_min\|flags_none' "$work/cal-$rate.toml"
  "$BIN" policy simulate "$work/cal-$rate.toml" --labelled "$hold"
done
