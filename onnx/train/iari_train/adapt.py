"""Adapting the released ensemble to a site: a lab's labelled folder -> a new ensemble version.

    python -m iari_train adapt --data /path/to/site --site site-b --out ../models

1. The base ensemble is the one in --out (its ONNX files; checkpoints are not needed, see
   from_onnx). Its files and manifest move to --out/v<version>/ so that decisions pinned to it
   stay verifiable and replayable; the new manifest lists that folder under `previous`.
2. The site folder is split stratified and seeded (SEED_SITE, 20 % per grade held out); the
   held-out part is never trained on and gives the per-site metrics.
3. Variety stage: each model is fine-tuned on the synthetic training split with the variety
   augmentations (augment.VARIETY), BatchNorm frozen.
4. Site stage: from there, fine-tuned on a stratified half of the synthetic training split plus
   the site's training part (repeated SITE_REPEAT times so it weighs in), same augmentations,
   the learning rate decaying from LR_SITE to 0 (cosine); mixing the synthetic data in keeps the
   generator's test accuracy.
5. Export, shift reference refitted on both sites' training images, evaluation per site (next
   to the base ensemble), golden files, manifest (new version), model card, verify.

Checkpoints of each stage are cached under onnx/train/.data/adapt/<site>/ keyed by the stage
settings, so a rerun after an interruption resumes; delete the folder to retrain."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from . import data, pipeline

SEED_SITE = 20261202
SITE_REPEAT = 6
SYN_FRACTION = 0.5          # of the synthetic training split mixed into the site stage (stratified, seeded)
LR_FINETUNE = 2.5e-4
LR_SITE = 5e-4
VARIETY_EPOCHS = 2
ADAPT_EPOCHS = 12


def site_split(y: np.ndarray):
    """Stratified, seeded: per grade 20 % held out (train, held-out index arrays)."""
    return data.stratified_split(y, SEED_SITE, 0.2)


def _key(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def stage(name: str, work: Path, settings: dict, start, x, y, epochs, seed_base, log, lr=LR_FINETUNE,
          cosine: bool = False):
    """Fine-tunes the five models from `start(name) -> torch model`; cached by settings."""
    import torch
    from .augment import variety
    from .models import MODEL_NAMES
    from .train import finetune
    d = work / f"{name}-{_key(settings)}"
    d.mkdir(parents=True, exist_ok=True)
    info = {}
    for i, m in enumerate(MODEL_NAMES):
        ck = d / f"{m}.pt"
        if ck.exists():
            log(f"{name}: {m} cached in {ck}")
            info[m] = json.loads((d / f"{m}.json").read_text())
            continue
        model = start(m)
        log(f"{name}: fine-tuning {m} on {len(y)} images, {epochs} epochs")
        info[m] = finetune(model, m, x, y, epochs, seed_base + 1000 * (i + 1), lr, variety, log=log, cosine=cosine)
        torch.save(model.state_dict(), ck)
        (d / f"{m}.json").write_text(json.dumps(info[m]))
    (d / "settings.json").write_text(json.dumps(settings, indent=1))
    return d, info


def load_ckpt(d: Path, name: str):
    import torch
    from .models import BUILDERS
    m = BUILDERS[name]()
    m.load_state_dict(torch.load(d / f"{name}.pt", weights_only=True))
    m.eval()
    return m


def train_stages(site: Path, site_name: str, base: Path, variety_epochs: int, adapt_epochs: int, log):
    from .from_onnx import check_against_onnx, load_from_onnx

    def from_base(m):
        model = load_from_onnx(m, base / f"{m}.onnx")
        log(f"{m}: rebuilt from ONNX, max |logit diff| {check_against_onnx(model, base / f'{m}.onnx', xs[:64]):.1e}")
        return model
    base_man = json.loads((base / "manifest.json").read_text())
    syn = data.synthetic_dataset(pipeline.DATA_DIR, log=log)
    xs, ys = data.load_folders(site)
    tr, te = site_split(ys)
    work = pipeline.DATA_DIR / "adapt" / site_name
    base_id = {m["name"]: m["sha256"] for m in base_man["models"]}
    s1 = {"stage": "variety", "base": base_id, "epochs": variety_epochs, "lr": LR_FINETUNE, "seed": data.SEED}
    d1, i1 = stage("variety", work, s1, from_base,
                   syn["x_train"], syn["y_train"], variety_epochs, data.SEED + 7, log)
    _, half = data.stratified_split(syn["y_train"], SEED_SITE + 1, SYN_FRACTION)
    x2 = np.concatenate([syn["x_train"][half]] + [xs[tr]] * SITE_REPEAT)
    y2 = np.concatenate([syn["y_train"][half]] + [ys[tr]] * SITE_REPEAT)
    s2 = {"stage": "site", "from": s1, "site": site_name, "site_train": tr.tolist(), "repeat": SITE_REPEAT,
          "synthetic": half.tolist(), "epochs": adapt_epochs, "lr": LR_SITE, "schedule": "cosine"}
    d2, i2 = stage("site", work, s2, lambda m: load_ckpt(d1, m), x2, y2, adapt_epochs, SEED_SITE, log, lr=LR_SITE,
                   cosine=True)
    return {"syn": syn, "site_x": xs, "site_y": ys, "site_train": tr, "site_test": te,
            "variety_dir": d1, "site_dir": d2, "variety_info": i1, "site_info": i2}


def report_checkpoints(st: dict, base: Path, site_name: str, log):
    """Before any export: the base ensemble (its ONNX files, rebuilt in torch) and the site
    stage's checkpoints on the site's held-out part and the generator's test split, with the
    server's vote and review rules (`metrics.safety`, no shift flag: the reference is refitted
    only at release). Returns the rows it logs."""
    from .from_onnx import load_from_onnx
    from .metrics import safety
    from .models import MODEL_NAMES
    from .train import predict_torch
    te = st["site_test"]
    sets = {f"{site_name} held-out": (st["site_x"][te], st["site_y"][te]),
            "synthetic test": (st["syn"]["x_test"], st["syn"]["y_test"])}
    ensembles = {"base": [load_from_onnx(m, base / f"{m}.onnx") for m in MODEL_NAMES],
                 "site stage": [load_ckpt(st["site_dir"], m) for m in MODEL_NAMES]}
    rows = {}
    for who, models in ensembles.items():
        for name, (x, y) in sets.items():
            s = safety(y, [predict_torch(m, x) for m in models], np.zeros(len(y), bool))
            rows[(who, name)] = s
            log(f"{who}, {name}: accuracy {s['accuracy']:.4f}, review {s['review_share']:.3f}, "
                f"serious {s['serious_errors']} ({s['serious_unflagged']} unflagged)")
    return rows


def main(args):
    site = Path(args.data).resolve()
    out = Path(args.out).resolve()
    base = Path(args.base).resolve() if args.base else out
    st = train_stages(site, args.site, base, args.variety_epochs, args.epochs, pipeline.log)
    if args.stage == "train":
        report_checkpoints(st, base, args.site, pipeline.log)
        return
    from . import release
    release.release(st, site, args.site, base, out, args)
