#!/usr/bin/env python3
"""Python reference for `make bench`: onnxruntime + Pillow doing the same work as the Rust
classify path on the same images, tuned as well as we know how:

- preprocessing pp-area-1 with the same f64 maths as onnx/train/iari_train/preprocess.py,
  as two BLAS matmuls over all three channels (checked equal to the training code at
  start-up), one BLAS thread;
- ORT sessions with spinning off, one intra-op thread each, graph optimisation ALL; the five
  models run either one after another or in parallel on a thread pool (both measured, the
  better one is the reference);
- decode + preprocess on a separate thread, overlapped with inference through a bounded queue
  (Pillow, numpy and ORT release the GIL in their heavy parts).

Prints one line per measurement. Usage: bench_reference.py MANIFEST IMAGES_DIR [SECONDS]
"""
from __future__ import annotations

import json
import os

# One BLAS thread: the decode thread and ORT share two cores; more threads only contend.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def area_weights(n: int, m: int, cache: dict = {}) -> np.ndarray:  # noqa: B006 (cache on purpose)
    key = (n, m)
    if key not in cache:
        s = n / m
        i = np.arange(m, dtype=np.float64)
        lo, hi = i * s, (i + 1) * s
        j = np.arange(n, dtype=np.float64)
        ov = np.minimum(hi[:, None], j[None, :] + 1.0) - np.maximum(lo[:, None], j[None, :])
        cache[key] = np.clip(ov, 0.0, None) / s
    return cache[key]


class Pre:
    def __init__(self, spec: dict):
        self.w = spec["resize"]["width"]
        self.h = spec["resize"]["height"]
        self.mean = np.array(spec["mean"], np.float64)[:, None, None]
        self.std = np.array(spec["std"], np.float64)[:, None, None]

    def __call__(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        wy, wx = area_weights(h, self.h), area_weights(w, self.w)
        rows = wy @ img.reshape(h, w * 3).astype(np.float64)  # rows first, all channels
        planes = np.ascontiguousarray(rows.reshape(self.h, w, 3).transpose(2, 0, 1))
        out = planes @ wx.T  # then columns, one batched matmul for the 3 planes
        return ((out / 255.0 - self.mean) / self.std).astype(np.float32)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def sessions(manifest: dict, root: Path) -> list[ort.InferenceSession]:
    out = []
    for m in manifest["models"]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        out.append(ort.InferenceSession(str(root / m["file"]), so, providers=["CPUExecutionProvider"]))
    return out


class Runner:
    def __init__(self, sess, parallel: bool):
        self.sess = sess
        self.name = sess[0].get_inputs()[0].name
        self.pool = ThreadPoolExecutor(len(sess)) if parallel else None

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        if self.pool is None:
            return [s.run(None, {self.name: x})[0] for s in self.sess]
        return list(self.pool.map(lambda s: s.run(None, {self.name: x})[0], self.sess))


def measure(budget: float, n: int, f) -> tuple[float, float]:
    f()
    t0, c0, images = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - t0 < budget:
        f()
        images += n
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return images / wall, cpu * 1000.0 / images


def vote(logits: list[np.ndarray]) -> np.ndarray:
    probs = [np.exp(l - l.max(1, keepdims=True)) for l in logits]
    probs = [p / p.sum(1, keepdims=True) for p in probs]
    votes = np.stack([p.argmax(1) for p in probs], 1)
    summed = np.sum(probs, 0)
    out = []
    for v, s in zip(votes, summed):
        counts = np.bincount(v, minlength=5)
        tied = np.flatnonzero(counts == counts.max())
        out.append(tied[np.argmax(s[tied])])
    return np.array(out)


def full_path(files, pre, run, batch: int) -> None:
    q: queue.Queue = queue.Queue(maxsize=4)

    def producer():
        for i in range(0, len(files), batch):
            q.put(np.stack([pre(load_rgb(p)) for p in files[i : i + batch]]))
        q.put(None)

    t = threading.Thread(target=producer)
    t.start()
    while (x := q.get()) is not None:
        vote(run(x))
    t.join()


def main() -> None:
    manifest_path, images_dir = Path(sys.argv[1]), Path(sys.argv[2])
    budget = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    manifest = json.loads(manifest_path.read_text())
    files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in EXTS)
    pre = Pre(manifest["preprocessing"])
    sys.path.insert(0, str(manifest_path.parent.parent / "train"))
    try:  # the reference must compute the training contract, not something faster
        from iari_train.preprocess import preprocess_array

        d = np.abs(pre(load_rgb(files[0])) - preprocess_array(load_rgb(files[0]))).max()
        assert d <= 1e-6, f"tuned preprocessing differs from the contract by {d}"
    except ImportError:
        print("note: iari_train not importable; contract check skipped")
    print(f"Python reference: {len(files)} images, onnxruntime {ort.__version__}, {os.cpu_count()} CPU(s)")
    rgb = [load_rgb(p) for p in files]
    i = iter(range(10**12))
    ips, cpu = measure(budget, 1, lambda: pre(load_rgb(files[next(i) % len(files)])))
    print(f"decode+preprocess (1 thread):      {ips:8.0f} images/s  {cpu:.3f} ms CPU/image")
    tensors = np.stack([pre(x) for x in rgb])
    sess = sessions(manifest, manifest_path.parent)
    best = {}
    for parallel in (False, True):
        run = Runner(sess, parallel)
        label = "parallel models" if parallel else "sequential models"
        for b in (1, 8, 32, 64):
            x = np.resize(tensors, (b,) + tensors.shape[1:])
            ips, cpu = measure(budget, b, lambda: run(x))
            best[b] = max(best.get(b, 0.0), ips)
            print(f"inference alone, batch {b:2d} ({label}): {ips:8.0f} images/s  {cpu:.3f} ms CPU/image")
        ips, cpu = measure(budget, len(files), lambda: full_path(files, pre, run, 32))
        print(f"full path (files, batch 32, {label}): {ips:6.0f} images/s  {cpu:.3f} ms CPU/image")


if __name__ == "__main__":
    main()
