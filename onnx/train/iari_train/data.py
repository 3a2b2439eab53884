"""Data sets: the synthetic wells and a lab's own labelled folders.

Folder layout for real data:  root/neg/*.png, root/1+/*.jpg (or 1p), root/2+ (2p), root/3+ (3p), root/4+ (4p).
Split: the paper's stratified 80/20 split, seeded (per class: shuffle, first round(0.2 n) to test).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import synth
from .preprocess import preprocess_array, load_rgb

CLASSES = synth.CLASSES
FOLDER_ALIASES = {"neg": 0, "0": 0, "1+": 1, "1p": 1, "2+": 2, "2p": 2, "3+": 3, "3p": 3, "4+": 4, "4p": 4}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

PAPER_COUNTS = [650, 230, 68, 130, 550]      # neg, 1+, 2+, 3+, 4+ (Wu et al. 2022, Table 1)
DATA_SCALE = 1                               # synthetic set = paper mix x DATA_SCALE
EXTRA_TEST_SCALE = 2                         # independent extra synthetic test set = paper mix x 2
LABEL_NOISE = 0.01                           # fraction of TRAIN labels flipped to a neighbouring grade
SEED = 20220901
SEED_EXTRA_TEST = 777001
SEED_SAMPLES = 424242
# A synthetic validation set of its own seed (paper mix x 0.5, no label noise), used only to choose
# among checkpoints of a fine-tuning run (adapt.select_epoch); the test splits stay untouched.
SEED_VALIDATION = 20261203
VALIDATION_COUNTS = [c // 2 for c in PAPER_COUNTS]


def scan_folders(root) -> tuple[list[Path], np.ndarray]:
    """List images of a lab's labelled folders. Returns (paths, labels)."""
    root = Path(root)
    paths, labels = [], []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.lower() not in FOLDER_ALIASES:
            continue
        k = FOLDER_ALIASES[d.name.lower()]
        for f in sorted(d.rglob("*")):
            if f.suffix.lower() in IMAGE_EXT:
                paths.append(f)
                labels.append(k)
    if not paths:
        raise SystemExit(f"no images under {root}/{{neg,1+,2+,3+,4+}} (or 1p..4p)")
    return paths, np.asarray(labels, np.int64)


def load_folders(root) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess every image of the folders (pp-area-1). Returns (x float32 [N,3,96,96], y)."""
    paths, y = scan_folders(root)
    x = np.stack([preprocess_array(load_rgb(p)) for p in paths])
    return x, y


def stratified_split(y: np.ndarray, seed: int, test_frac: float = 0.2):
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for k in range(len(CLASSES)):
        idx = np.flatnonzero(y == k)
        idx = idx[rng.permutation(len(idx))]
        n_te = int(round(test_frac * len(idx)))
        te.extend(idx[:n_te].tolist())
        tr.extend(idx[n_te:].tolist())
    return np.sort(np.asarray(tr, np.int64)), np.sort(np.asarray(te, np.int64))


def flip_to_neighbour(y: np.ndarray, frac: float, seed: int):
    """Flip round(frac*N) labels to an adjacent grade (neg->1+, 4+->3+, else +-1 at random)."""
    rng = np.random.default_rng(seed)
    y = y.copy()
    n = int(round(frac * len(y)))
    idx = rng.choice(len(y), n, replace=False)
    for i in idx:
        if y[i] == 0:
            y[i] = 1
        elif y[i] == 4:
            y[i] = 3
        else:
            y[i] += rng.choice([-1, 1])
    return y, np.sort(idx)


def synthetic_dataset(cache_dir, log=print):
    """Generate (or load from cache) the synthetic train/test sets, preprocessed.

    Returns dict with x_train, y_train (noisy), y_train_clean, x_test, y_test, x_extra, y_extra, meta."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    counts = [c * DATA_SCALE for c in PAPER_COUNTS]
    extra_counts = [c * EXTRA_TEST_SCALE for c in PAPER_COUNTS]
    f = cache_dir / f"synthetic-s{SEED}-x{DATA_SCALE}-e{SEED_EXTRA_TEST}-x{EXTRA_TEST_SCALE}.npz"
    if f.exists():
        z = np.load(f)
        d = {k: z[k] for k in z.files}
    else:
        import time
        t0 = time.time()
        imgs, y, _ = synth.generate(counts, SEED)
        x = np.stack([preprocess_array(im) for im in imgs])
        del imgs
        ex_imgs, ey, _ = synth.generate(extra_counts, SEED_EXTRA_TEST)
        ex = np.stack([preprocess_array(im) for im in ex_imgs])
        del ex_imgs
        log(f"generated {len(y)} + {len(ey)} synthetic wells in {time.time() - t0:.1f}s")
        tr, te = stratified_split(y, SEED)
        ytr_noisy, flipped = flip_to_neighbour(y[tr], LABEL_NOISE, SEED + 1)
        d = dict(x_train=x[tr], y_train=ytr_noisy, y_train_clean=y[tr], x_test=x[te], y_test=y[te],
                 x_extra=ex, y_extra=ey, flipped=flipped)
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, **d)
        os.replace(tmp, f)
    d["meta"] = {
        "counts_total": dict(zip(CLASSES, counts)),
        "counts_train": dict(zip(CLASSES, np.bincount(d["y_train_clean"], minlength=5).tolist())),
        "counts_test": dict(zip(CLASSES, np.bincount(d["y_test"], minlength=5).tolist())),
        "counts_extra_test": dict(zip(CLASSES, extra_counts)),
        "labels_flipped": int(len(d["flipped"])),
    }
    return d


def synthetic_validation(cache_dir, log=print):
    """Generate (or load from cache) the synthetic validation set (SEED_VALIDATION,
    VALIDATION_COUNTS), preprocessed. Returns (x, y)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    f = cache_dir / f"synthetic-val-s{SEED_VALIDATION}-n{sum(VALIDATION_COUNTS)}.npz"
    if f.exists():
        z = np.load(f)
        return z["x"], z["y"]
    import time
    t0 = time.time()
    imgs, y, _ = synth.generate(VALIDATION_COUNTS, SEED_VALIDATION)
    x = np.stack([preprocess_array(im) for im in imgs])
    log(f"generated {len(y)} synthetic validation wells in {time.time() - t0:.1f}s")
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, f)
    return x, y
