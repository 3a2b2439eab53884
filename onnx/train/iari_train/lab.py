"""Train the ensemble on a lab's own labelled folders instead of synthetic wells.

    python -m iari_train lab --data /path/to/wells --out ../models-lab --epochs 50

root/{neg,1+,2+,3+,4+}/ (or 1p..4p) with PNG/JPEG images of single wells (any size; the
pp-area-1 preprocessing resizes the whole image to 96x96). Stratified, seeded 80/20 split;
no label noise is injected. The 20 % split is also used as "extra_test"."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data, pipeline


def run(root: Path, out: Path, epochs: int):
    x, y = data.load_folders(root)
    tr, te = data.stratified_split(y, data.SEED)
    counts = np.bincount(y, minlength=5).tolist()
    d = dict(x_train=x[tr], y_train=y[tr], y_train_clean=y[tr], x_test=x[te], y_test=y[te],
             x_extra=x[te], y_extra=y[te], flipped=np.zeros(0, np.int64))
    d["meta"] = {"counts_total": dict(zip(data.CLASSES, counts)),
                 "counts_train": dict(zip(data.CLASSES, np.bincount(y[tr], minlength=5).tolist())),
                 "counts_test": dict(zip(data.CLASSES, np.bincount(y[te], minlength=5).tolist())),
                 "counts_extra_test": dict(zip(data.CLASSES, np.bincount(y[te], minlength=5).tolist())),
                 "labels_flipped": 0}
    pipeline.DATASET_OVERRIDE = d
    pipeline.LAB_SOURCE = str(root)
    pipeline.DATA_DIR = out / ".lab-work"
    pipeline.CKPT = pipeline.DATA_DIR / "ckpt"
    pipeline.TRAIN_LOG = pipeline.DATA_DIR / "train_log.json"
    pipeline.EVAL_FILE = pipeline.DATA_DIR / "eval.json"
    pipeline.DATA_DIR.mkdir(parents=True, exist_ok=True)
    pipeline.cmd_train(out, epochs)
    pipeline.cmd_export(out)
    pipeline.cmd_evaluate(out)
    pipeline.cmd_golden(out)
    pipeline.cmd_manifest(out)
    pipeline.cmd_verify(out)
