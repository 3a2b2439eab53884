"""Simple readers of a site's labelled folder, cross-validated on the same folds as the adaptation
recipe (cv.site_folds): how well plain image statistics separate the site's grades, as a yardstick
for the adapted ensemble (`adapt --stage cv`). When the ensemble grades no better than a linear
reader of a few image statistics, more training of the same networks is unlikely to help.

    python -m iari_train readers --data /path/to/site --out ../models

Readers (each fitted on a fold's training part, graded on the fold):
  - a linear discriminant (shrunk pooled covariance, SHRINK) on the shift score's 66 statistics
    (shift.features);
  - the same on those plus radial profiles of redness (R - G) and of its spread over RINGS rings;
  - the same on those plus radial profiles of each colour channel (mean and spread per ring),
    as captured and relative to the image's corners (the plate around the well: the site's light
    and white balance taken out);
  - the same on the 25 logits of the ensemble in --out (no training of the networks: how far a
    recalibration of its answers goes); skipped when that ensemble was adapted on this folder
    (its manifest's adaptation.site_digest), whose logits have seen most folds' wells.
Prints each reader's pooled accuracy with its 95 % Wilson interval."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import cv, data, shift

SHRINK = 0.1
RINGS = 12
CORNER = 6


def _ring_profile(v: np.ndarray) -> np.ndarray:
    """v: [N,96,96] -> [N, 2 * RINGS]: per ring the mean and the standard deviation, rings of
    equal width out to the image's half-width."""
    yy, xx = np.mgrid[0:96, 0:96]
    r = np.sqrt((yy - 47.5) ** 2 + (xx - 47.5) ** 2).ravel()
    ring = np.minimum((r / 48.0 * RINGS).astype(np.int64), RINGS - 1)
    cnt = np.bincount(ring, minlength=RINGS)
    v = v.reshape(len(v), -1)
    m = np.stack([np.bincount(ring, weights=a, minlength=RINGS) for a in v]) / cnt
    m2 = np.stack([np.bincount(ring, weights=a * a, minlength=RINGS) for a in v]) / cnt
    return np.concatenate([m, np.sqrt(np.maximum(m2 - m * m, 0))], 1)


def redness_profiles(x: np.ndarray) -> np.ndarray:
    """x: [N,3,96,96] pp-area-1 tensors -> [N, 2 * RINGS]: the ring profile of R - G ([0,1] units)."""
    u = np.asarray(x, np.float64) * 0.25 + 0.5
    return _ring_profile(u[:, 0] - u[:, 1])


def colour_profiles(x: np.ndarray, relative: bool) -> np.ndarray:
    """x: [N,3,96,96] -> [N, 6 * RINGS]: the ring profile of R, G and B ([0,1] units), or of each
    divided by the mean of the image's four CORNER x CORNER corner squares (outside the well)."""
    u = np.asarray(x, np.float64) * 0.25 + 0.5
    if relative:
        k = CORNER
        corners = np.concatenate([u[:, :, :k, :k], u[:, :, :k, -k:], u[:, :, -k:, :k], u[:, :, -k:, -k:]], 3)
        u = u / corners.mean((2, 3), keepdims=True)
    return np.concatenate([_ring_profile(u[:, c]) for c in range(3)], 1)


def lda(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, shrink: float = SHRINK) -> np.ndarray:
    """Linear discriminant on standardised features, equal priors; returns the predicted grades."""
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-9
    a, b = (f_train - mu) / sd, (f_test - mu) / sd
    means = np.stack([a[y_train == k].mean(0) for k in range(len(data.CLASSES))])
    c = np.cov((a - means[y_train]).T)
    ci = np.linalg.inv((1 - shrink) * c + shrink * np.eye(len(c)))
    return (b @ ci @ means.T - 0.5 * np.sum(means @ ci * means, 1)).argmax(1)


def cross_validated(f: np.ndarray, y: np.ndarray) -> int:
    """Wells graded right over cv.site_folds."""
    right = 0
    for fold in cv.site_folds(y):
        tr = np.setdiff1d(np.arange(len(y)), fold)
        right += int((lda(f[tr], y[tr], f[fold]) == y[fold]).sum())
    return right


def run(site: Path, models: Path, log) -> dict:
    from .models import MODEL_NAMES
    from .release import folder_digest
    from .train import run_onnx
    x, y = data.load_folders(site)
    stats = shift.features(x)
    readers = [("shift statistics (66)", stats),
               (f"shift statistics + redness profiles ({stats.shape[1] + 2 * RINGS})",
                np.concatenate([stats, redness_profiles(x)], 1))]
    for relative in (False, True):
        f = np.concatenate([stats, colour_profiles(x, relative)], 1)
        readers.append((f"shift statistics + colour profiles{', relative to the corners' if relative else ''} "
                        f"({f.shape[1]})", f))
    adapted = json.loads((models / "manifest.json").read_text()).get("adaptation") or {}
    if adapted.get("site_digest", {}).get("sha256") == folder_digest(site)["sha256"]:
        log(f"readers: {models} was adapted on this folder: its logits are not a cross-validated reader")
    else:
        readers.append((f"logits of {models.name} (25)",
                        np.concatenate([run_onnx(models / f"{m}.onnx", x) for m in MODEL_NAMES], 1)))
    out = {}
    for name, f in readers:
        k = cross_validated(f, y)
        lo, hi = cv.wilson(k, len(y))
        out[name] = {"correct": k, "n": len(y), "accuracy": k / len(y), "wilson95": [lo, hi]}
        log(f"readers: LDA on {name}: {k} of {len(y)} ({k / len(y):.1%}; 95 % Wilson {lo:.1%}-{hi:.1%})")
    return out
