#!/usr/bin/env bash
# GPU benchmark: the classify bench on the CUDA execution provider (with the defaults, then with
# each GPU option flipped) and on the CPU provider, in one run, at GPU-sized batches.
#
#   make bench-gpu    (= scripts/bench-gpu.sh: builds the bench with cargo, then runs it)
#
# The GPU host builds the product the ordinary way: Rust, `scripts/fetch-ort.sh gpu`, then this.
# Needs the CUDA 13 build of ONNX Runtime (`scripts/fetch-ort.sh gpu` -> .ort/gpu/lib; GPU_ORT
# names another) and the CUDA 13 + cuDNN 9 libraries it links against (libcudart.so.13,
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libcufft.so.12, libcudnn*.so.9), found
# through LD_LIBRARY_PATH. From PyPI's nvidia wheels they live in site-packages/nvidia/cu13/lib
# and site-packages/nvidia/cudnn/lib; set CUDA_LIBS to the folders (colon-separated).
# CPU_ORT names the library for the CPU side (default .ort/lib, fetched when missing).
#
# The images: the samples copied GPU_IMAGE_COPIES times (default 100, so 10,000 files), so that
# one call of the full path keeps every decode thread and the GPU busy.
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_ORT="${GPU_ORT:-$PWD/.ort/gpu/lib/libonnxruntime.so}"
CPU_ORT="${CPU_ORT:-$PWD/.ort/lib/libonnxruntime.so}"
[ -e "$GPU_ORT" ] || scripts/fetch-ort.sh gpu
[ -e "$CPU_ORT" ] || scripts/fetch-ort.sh

source scripts/bench-lib.sh
BENCH_BIN=$(bench_binary)

images=$(mktemp -d)
trap 'rm -rf "$images"' EXIT
for k in $(seq 1 "${GPU_IMAGE_COPIES:-100}"); do
  mkdir -p "$images/$k" && cp -r onnx/samples/. "$images/$k/"
done

export BENCH_SECONDS="${BENCH_SECONDS:-3}" BENCH_IMAGES="$images" BENCH_EXTRAS=0
export LD_LIBRARY_PATH="${CUDA_LIBS:-}:$(dirname "$GPU_ORT"):${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

run() {
  echo
  echo "== $1"
  shift
  env "$@" "$BENCH_BIN" --bench
}
cuda=(ORT_DYLIB_PATH="$GPU_ORT" BENCH_DEVICE=cuda)
run "CUDA provider, the defaults (batch staged once for all models, TF32 off, heuristic conv search)" \
  "${cuda[@]}" BENCH_BATCHES="${GPU_BATCHES:-1,32,256,1024}" BENCH_FULL_BATCH="${GPU_FULL_BATCH:-256,1024}"
run "CUDA provider, exhaustive conv search" "${cuda[@]}" \
  IARI__INFERENCE__CUDA_CONV_SEARCH=exhaustive BENCH_BATCHES=256,1024 BENCH_FULL_BATCH=1024
run "CUDA provider, each session copying the batch itself" "${cuda[@]}" \
  IARI__INFERENCE__CUDA_SHARED_INPUT=false BENCH_BATCHES=256,1024 BENCH_FULL_BATCH=1024
run "CUDA provider, TF32 on" "${cuda[@]}" \
  IARI__INFERENCE__CUDA_TF32=true BENCH_BATCHES=256,1024 BENCH_FULL_BATCH=1024
run "CPU provider (same run, same images)" ORT_DYLIB_PATH="$CPU_ORT" BENCH_DEVICE=cpu \
  BENCH_BATCHES=1,32,256 BENCH_FULL_BATCH=32
