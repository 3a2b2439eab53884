#!/usr/bin/env bash
# On the GPU host: takes the pieces of `scripts/gpu-carry.sh` from the folders named, keeps
# them in $GPU_STAGE (default /tmp/iari-gpu, so pieces carried by earlier transfers stay), and
# once every piece is there, puts the bench at target/gpu/classify and the libraries in
# .ort/gpu/lib. Prints "ready" when the bench can run.
set -euo pipefail
cd "$(dirname "$0")/.."
stage="${GPU_STAGE:-/tmp/iari-gpu}"
mkdir -p "$stage"
for d in "$@"; do cp "$d"/* "$stage"/; done
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
for p in classify.xz cuda.xz.part0 cuda.xz.part1 cuda.xz.sha256 libonnxruntime_providers_shared.so; do
  [ -e "$stage/$p" ] || { echo "waiting for $p"; exit 0; }
done
cat "$stage"/cuda.xz.part0 "$stage"/cuda.xz.part1 > "$stage/cuda.xz"
echo "$(cat "$stage/cuda.xz.sha256")  $stage/cuda.xz" | sha256sum -c --quiet
mkdir -p .ort/gpu/lib target/gpu
unxz "$stage/cuda.xz" > .ort/gpu/lib/libonnxruntime_providers_cuda.so
cp "$stage/libonnxruntime_providers_shared.so" .ort/gpu/lib/
for f in "$stage"/libonnxruntime.so.*.xz; do
  real=$(basename "$f" .xz)
  unxz "$f" > ".ort/gpu/lib/$real"
  ln -sf "$real" .ort/gpu/lib/libonnxruntime.so
done
unxz "$stage/classify.xz" > target/gpu/classify && chmod +x target/gpu/classify
echo ready
