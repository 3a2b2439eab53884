#!/usr/bin/env bash
# Packs what `scripts/bench-gpu.sh` needs on a GPU host with no Rust and no network into
# .gpu/a and .gpu/b, each small enough for one 64 MiB transfer (with the ~8 MiB tree beside it):
#   .gpu/a  the bench binary, libonnxruntime (CUDA 13 build), the first half of the CUDA provider
#   .gpu/b  the second half of the CUDA provider
# The CUDA provider keeps only the GPU code of GPU_ARCH (default 90: H100/H200; see
# scripts/fatbin_keep_arch.py). There, `scripts/gpu-unpack.sh DIR` puts each folder's pieces in
# place, and `BENCH_BIN=target/gpu/classify scripts/bench-gpu.sh` runs once both are in.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-ort.sh gpu
source scripts/bench-lib.sh
bench=$(bench_binary)
lib=.ort/gpu/lib
rm -rf .gpu && mkdir -p .gpu/a .gpu/b .gpu/work
strip -o .gpu/work/classify "$bench"
xz -6 -T0 -c .gpu/work/classify > .gpu/a/classify.xz
real=$(readlink "$lib/libonnxruntime.so")
xz -9 -T0 -c "$lib/$real" > ".gpu/a/$real.xz"
cp "$lib/libonnxruntime_providers_shared.so" .gpu/a/
python3 scripts/fatbin_keep_arch.py "$lib/libonnxruntime_providers_cuda.so" \
  .gpu/work/libonnxruntime_providers_cuda.so "${GPU_ARCH:-90}"
xz -9 -T0 -c .gpu/work/libonnxruntime_providers_cuda.so > .gpu/work/cuda.xz
sha256sum .gpu/work/cuda.xz | cut -d' ' -f1 > .gpu/b/cuda.xz.sha256
half=$(( ($(stat -c %s .gpu/work/cuda.xz) + 1) / 2 ))
split -b "$half" -d -a 1 .gpu/work/cuda.xz .gpu/work/cuda.xz.part
mv .gpu/work/cuda.xz.part0 .gpu/a/ && mv .gpu/work/cuda.xz.part1 .gpu/b/
rm -rf .gpu/work
du -sh .gpu/a .gpu/b
