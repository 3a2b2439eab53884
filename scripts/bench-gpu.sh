#!/usr/bin/env bash
# GPU benchmark: the classify bench on the CUDA execution provider and on the CPU provider,
# side by side in one run, at GPU-sized batches.
#
#   scripts/bench-gpu.sh                 build here (cargo), then run
#   BENCH_BIN=path scripts/bench-gpu.sh  run a prebuilt bench binary (a GPU host with no Rust)
#
# Needs the CUDA 13 build of ONNX Runtime (`scripts/fetch-ort.sh gpu` -> .ort/gpu/lib) and the
# CUDA 13 + cuDNN 9 libraries it links against (libcudart.so.13, libcublas.so.13,
# libcublasLt.so.13, libcufft.so.12, libcurand.so.10, libcudnn*.so.9), found through
# LD_LIBRARY_PATH. From PyPI's nvidia wheels they live in site-packages/nvidia/cu13/lib and
# site-packages/nvidia/cudnn/lib; set CUDA_LIBS to the folders (colon-separated).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-ort.sh gpu
GPU_ORT="$PWD/.ort/gpu/lib/libonnxruntime.so"
CPU_ORT="$PWD/.ort/lib/libonnxruntime.so"
[ -e "$CPU_ORT" ] || scripts/fetch-ort.sh

if [ -z "${BENCH_BIN:-}" ]; then
  cargo bench --locked --bench classify --no-run 2>/dev/null
  BENCH_BIN=$(ls -t target/release/deps/classify-* | grep -v '\.d$' | head -n1)
fi
export BENCH_SECONDS="${BENCH_SECONDS:-5}" BENCH_IMAGES="${BENCH_IMAGES:-onnx/samples}"
export LD_LIBRARY_PATH="${CUDA_LIBS:-}:$PWD/.ort/gpu/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

echo "== CUDA execution provider"
ORT_DYLIB_PATH="$GPU_ORT" BENCH_DEVICE=cuda BENCH_BATCHES="${GPU_BATCHES:-1,32,256,1024}" \
  BENCH_FULL_BATCH="${GPU_FULL_BATCH:-256}" "$BENCH_BIN" --bench
echo "== CPU execution provider (same run)"
ORT_DYLIB_PATH="$CPU_ORT" BENCH_DEVICE=cpu BENCH_BATCHES="1,32,256" BENCH_FULL_BATCH=32 \
  "$BENCH_BIN" --bench
