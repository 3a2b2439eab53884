"""Cross-validation of the adaptation recipe on a site's folder: how well the recipe, as a whole
(both stages and the epoch choice), grades wells of the site that it never trained on, measured on
every well of the folder instead of the one held-out part.

    python -m iari_train adapt --data /path/to/site --site site-b --out ../models --variety-epochs 0 --stage cv

Fold 0 is the shipped split's held-out part (adapt.site_split: the shipped run, its checkpoints
cached, is fold 0's); the training part is cut into FOLDS - 1 more stratified folds of the same
size. Each fold trains the recipe on the rest, chooses its epoch by adapt.select_epoch (never on
the fold) and grades the fold with the server's vote and review rules (metrics.safety, without
the shift flag). Nothing is exported or shipped; the result goes to .data/adapt/<site>/cv.json.
With `--epoch-choice inner-cv` every fold also runs inner_cv (four more site stages per fold);
with `--ring-head` the site stage's networks also read radial profiles of their stem
(models.RingHead; the result goes to cv-ring-head.json, or cv-ring-head<P> with `--ring-head P`,
the rings read off the stem averaged over P x P cells).

inner_cv (adapt --epoch-choice inner-cv) is the same idea one level down, within a training part:
how well each epoch of the site stage grades training wells it did not train on.

Two variants answer what limits the recipe (the result then goes to cv-<variant>.json):
  --cv-train-fraction F   each fold trains on a stratified, seeded share F of its training part
                          (the rest is neither trained on nor graded): the learning curve, i.e.
                          what more labelled wells of the site would bring;
  --cv-site-only          the site stage without the synthetic images (adapt.train_stages'
                          site_only): whether keeping the generator's look costs the site."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import adapt, data, pipeline

FOLDS = 5


def stratified_folds(idx: np.ndarray, y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """The wells `idx` cut per grade, seeded, into k folds (sorted index arrays)."""
    rng = np.random.default_rng(seed)
    folds = [[] for _ in range(k)]
    for g in range(5):
        for j, part in enumerate(np.array_split(rng.permutation(idx[y[idx] == g]), k)):
            folds[j].extend(part.tolist())
    return [np.sort(np.asarray(f, np.int64)) for f in folds]


def site_folds(y: np.ndarray, k: int = FOLDS) -> list[np.ndarray]:
    """Fold 0 = site_split's held-out part; the training part split per grade, seeded, into k - 1."""
    tr, te = adapt.site_split(y)
    return [te] + stratified_folds(tr, y, k - 1, adapt.SEED_SITE + 3)


def cross_validate(site: Path, site_name: str, base: Path, variety_epochs: int, epochs: int, log,
                   train_fraction: float = 1.0, site_only: bool = False, epoch_choice: str = adapt.EPOCH_CHOICE,
                   ring_head: int = 0) -> dict:
    from .models import MODEL_NAMES
    if not 0 < train_fraction <= 1:
        raise SystemExit(f"--cv-train-fraction must be in (0, 1], not {train_fraction}")
    _, y = data.scan_folders(site)
    folds = site_folds(y)
    per, pooled = [], {"n": 0, "correct": 0, "serious_errors": 0, "serious_unflagged": 0, "review": 0}
    for i, fold in enumerate(folds):
        log(f"cv: fold {i} of {len(folds)} ({len(fold)} wells held out)")
        # fold 0 is the shipped split itself (its run cached under the same settings)
        held = fold if i else None
        if train_fraction < 1:
            rest = np.setdiff1d(np.arange(len(y)), fold)
            _, drop = data.stratified_split(y[rest], adapt.SEED_SITE + 9, 1 - train_fraction)
            held = np.union1d(fold, rest[drop])
        st = adapt.train_stages(site, site_name, base, variety_epochs, epochs, log, held_out=held,
                                site_only=site_only, epoch_choice=epoch_choice, ring_head=ring_head)
        models = [adapt.load_ckpt(st["site_dir"], m, st["site_epoch"]) for m in MODEL_NAMES]
        s = adapt._safety(models, st["site_x"][fold], st["site_y"][fold])
        per.append({"fold": i, "trained_on": len(st["site_train"]), "epoch": st["site_epoch"], "qualifies": st["selection"]["meets_constraints"],
                    **{q: s[q] for q in ("n", "accuracy", "review_share", "serious_errors", "serious_unflagged")}})
        pooled["n"] += s["n"]
        pooled["correct"] += s["n"] - s["errors"]
        pooled["review"] += round(s["review_share"] * s["n"])
        pooled["serious_errors"] += s["serious_errors"]
        pooled["serious_unflagged"] += s["serious_unflagged"]
        log(f"cv: fold {i}: epoch {st['site_epoch']}, accuracy {s['accuracy']:.4f} ({s['n'] - s['errors']} "
            f"of {s['n']}), review {s['review_share']:.3f}, serious {s['serious_errors']} "
            f"({s['serious_unflagged']} unflagged)")
    acc = pooled["correct"] / pooled["n"]
    lo, hi = wilson(pooled["correct"], pooled["n"])
    variant = (("-site-only" if site_only else "") + (f"-train{train_fraction:g}" if train_fraction < 1 else "")
               + ("-inner-cv" if epoch_choice == "inner-cv" else "") + (f"-ring-head{ring_head if ring_head > 1 else ''}" if ring_head else ""))
    out = {"site": site_name, "variant": variant.lstrip("-") or "recipe", "folds": per, "pooled": dict(pooled, accuracy=acc, accuracy_wilson95=[lo, hi],
                                                           review_share=pooled["review"] / pooled["n"])}
    (pipeline.DATA_DIR / "adapt" / site_name / f"cv{variant}.json").write_text(json.dumps(out, indent=1))
    log(f"cv: pooled over {pooled['n']} wells: accuracy {acc:.4f} (95 % Wilson {lo:.4f}-{hi:.4f}), review "
        f"{pooled['review'] / pooled['n']:.3f}, serious {pooled['serious_errors']} "
        f"({pooled['serious_unflagged']} unflagged)")
    return out


def inner_cv(site: Path, site_name: str, base: Path, variety_epochs: int, epochs: int, log,
             tr: np.ndarray, te: np.ndarray, ys: np.ndarray, **recipe) -> dict:
    """Per epoch, the pooled accuracy over the training part `tr` of site stages that each kept
    one inner fold (and the held-out part `te`) out: {"folds": [...], "accuracy": [per epoch]}.
    `recipe`: train_stages' variant arguments (site_only, ring_head), as in the run that ships."""
    from .models import MODEL_NAMES
    from .train import predict_torch
    from .metrics import plurality_vote
    right = np.zeros(epochs, np.int64)
    folds = stratified_folds(tr, ys, adapt.INNER_FOLDS, adapt.SEED_SITE + 4)
    for i, fold in enumerate(folds):
        log(f"inner cv: fold {i + 1} of {len(folds)} ({len(fold)} of the {len(tr)} training wells kept out)")
        st = adapt.train_stages(site, site_name, base, variety_epochs, epochs, log, held_out=np.union1d(te, fold),
                                choose=False, **recipe)
        for e in range(1, epochs + 1):
            votes = [predict_torch(adapt.load_ckpt(st["site_dir"], m, e), st["site_x"][fold]) for m in MODEL_NAMES]
            right[e - 1] += int((plurality_vote(votes) == ys[fold]).sum())
    acc = (right / len(tr)).tolist()
    log("inner cv: accuracy per epoch " + " ".join(f"{e + 1}:{a:.3f}" for e, a in enumerate(acc)))
    return {"folds": adapt.INNER_FOLDS, "wells": len(tr), "accuracy": acc}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(c - h), float(c + h)
