#!/usr/bin/env bash
# Puts ONNX Runtime's shared library into .ort/lib/ from the PyPI wheel, verified by SHA-256.
#   scripts/fetch-ort.sh        CPU runtime: onnxruntime==1.32.0  -> .ort/lib/
#   scripts/fetch-ort.sh gpu    CUDA 13 runtime: onnxruntime-gpu==1.31.1 -> .ort/gpu/lib/
# Idempotent: when the libraries are already there they are only checked against their SHA-256
# (every run, not just the first), so a library swapped on disk is refused here as well as by
# `iari` at start-up (classify::runtime). Needs only python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."

flavour="${1:-cpu}"
case "$flavour" in
  cpu)
    pkg=onnxruntime; ver=1.32.0; dest=.ort/lib
    wheel=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
    sha=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
    libs="6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f  libonnxruntime.so.1.32.0" ;;
  gpu)
    pkg=onnxruntime-gpu; ver=1.31.1; dest=.ort/gpu/lib
    wheel=onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
    sha=e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6
    libs="5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303  libonnxruntime.so.1.31.1
d5290158115fa5569a3fe8f1f4037ee9b0e86658a96e52f852bbb7039aa88137  libonnxruntime_providers_cuda.so" ;;
  *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac

verify() {
  if ! (cd "$dest" && sha256sum --quiet --check - <<<"$libs"); then
    echo "fetch-ort: $dest does not hold the pinned $pkg $ver libraries; remove $dest and rerun" >&2
    exit 1
  fi
}
if [ -e "$dest/libonnxruntime.so" ]; then
  verify
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Pin interpreter and platform so the same wheel (and so the same hash) is chosen on every machine.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux_2_28_x86_64 \
  -d "$tmp" "$pkg==$ver"
if [ ! -f "$tmp/$wheel" ]; then
  echo "fetch-ort: expected $wheel, got: $(ls "$tmp")" >&2; exit 1
fi
got=$(sha256sum "$tmp/$wheel" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  echo "fetch-ort: SHA-256 mismatch for $wheel: expected $sha, got $got" >&2; exit 1
fi


mkdir -p "$tmp/x" "$dest"
# Only the C API libraries; the pybind module is not needed.
python3 - "$tmp/$wheel" "$tmp/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        base = n.rsplit('/', 1)[-1]
        if n.startswith('onnxruntime/capi/') and base.startswith('libonnxruntime') and '.so' in base:
            z.extract(n, sys.argv[2])
PY
cp "$tmp"/x/onnxruntime/capi/libonnxruntime* "$dest/"
real=$(cd "$dest" && ls libonnxruntime.so.* | head -n1)
ln -sf "$real" "$dest/libonnxruntime.so"
verify
echo "fetch-ort: $pkg $ver -> $dest/$real"
