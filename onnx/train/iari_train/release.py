"""The release half of `iari_train adapt`: archive the base version, export the adapted models,
refit the shift reference on both sites, evaluate per site next to the base ensemble, golden
files, manifest, the card's adaptation block, verify. See adapt.py for the whole path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import data, pipeline
from .metrics import classification_metrics, plurality_vote, safety
from .models import MODEL_NAMES

CARD_BEGIN = "<!-- adaptation:begin -->"
CARD_END = "<!-- adaptation:end -->"


def logits_of(d: Path, x: np.ndarray) -> list:
    from .train import run_onnx
    return [run_onnx(d / f"{n}.onnx", x) for n in MODEL_NAMES]


def model_shape(name: str, model) -> dict:
    """The manifest's params, macs and architecture of an exported network (a RingHead adds its
    reading to the base network's)."""
    from .models import ARCH, RingHead
    from .train import model_stats
    arch = ARCH[name] + model.describe() if isinstance(model, RingHead) else None
    return model_stats(name, model) | ({"architecture": arch} if arch else {})


def site_report(models_dir: Path, ref: dict, x, y) -> dict:
    from . import shift
    L = logits_of(models_dir, x)
    ood = shift.score(x, ref) > ref["threshold"]
    ens = classification_metrics(y, plurality_vote(L))
    per = {n: classification_metrics(y, l.argmax(1))["accuracy"] for n, l in zip(MODEL_NAMES, L)}
    return {"ensemble": ens, "per_model_accuracy": per, "safety": safety(y, L, ood)}


def folder_digest(root: Path) -> dict:
    """sha256 over the sorted `relative path  sha256` lines of a labelled folder's images: proves that
    a rerun used the same images (the folder itself is the lab's and is not committed)."""
    import hashlib
    paths, _ = data.scan_folders(root)
    lines = "".join(f"{p.relative_to(root).as_posix()}  {pipeline.sha256(p)}\n" for p in paths)
    return {"files": len(paths), "sha256": hashlib.sha256(lines.encode()).hexdigest(),
            "listing": "relative path, two spaces, sha256 of the file, one line each, sorted as scan_folders"}


def archive(base: Path, out: Path, base_man: dict) -> str:
    """Copies the base version's files to out/v<version>/ (unless there already); returns the
    manifest path relative to out."""
    ver = base_man["ensemble"]["version"]
    arch = out / f"v{ver}"
    arch.mkdir(parents=True, exist_ok=True)
    for m in base_man["models"]:
        if not (arch / m["file"]).exists():
            shutil.copy2(base / m["file"], arch / m["file"])
    old = dict(base_man)
    old["previous"] = []          # the chain of versions is listed by the newest manifest only
    (arch / "manifest.json").write_text(json.dumps(old, indent=1) + "\n")
    return f"v{ver}/manifest.json"


def release(st: dict, site: Path, site_name: str, base: Path, out: Path, args):
    from . import shift
    from .train import export_onnx
    from .adapt import (DISTILL_T, DISTILL_WEIGHT, FEATURE_LR_SCALE, LABEL_SMOOTHING, LR_FINETUNE, LR_SITE, SEED_SITE, SERIOUS_SLACK,
                        SITE_AUGMENTATION, SITE_REPEAT, SYN_FRACTION, load_ckpt)
    from .train import AUG
    from .models import RingHead
    from .augment import VARIETY
    log = pipeline.log
    sel = st["selection"]
    if not sel["meets_constraints"]:
        raise SystemExit("no epoch of the site stage meets the serious-error constraint on the validation data "
                         "(adapt.select_epoch); nothing released")
    base_man = json.loads((base / "manifest.json").read_text())
    cur = json.loads((out / "manifest.json").read_text())
    ver = args.version or f"2.0.0-synthetic-{site_name}"
    taken = {cur["ensemble"]["version"], base_man["ensemble"]["version"]}
    if ver in taken:
        # the archive is named by version: a second release under one name would overwrite the first
        raise SystemExit(f"version {ver} is taken ({', '.join(sorted(taken))}); name the release with --version")
    syn, xs, ys, tr, te = st["syn"], st["site_x"], st["site_y"], st["site_train"], st["site_test"]
    # the base version's files, kept for decisions pinned to it
    arch_rel = archive(base, out, base_man)
    base_dir = out / Path(arch_rel).parent
    # adapting from an archived version (--base): the version in --out, about to be replaced, is
    # archived too, so that decisions pinned to it stay verifiable and replayable
    replaced = []
    if cur["ensemble"]["version"] != base_man["ensemble"]["version"]:
        replaced = [archive(out, out, cur)] + [p for p in cur.get("previous", []) if p != arch_rel]
    exp, shape = {}, {}
    for n in MODEL_NAMES:
        model = load_ckpt(st["site_dir"], n, st["site_epoch"])
        exp[n] = export_onnx(model, out / f"{n}.onnx", syn["x_test"][:128], log=log)
        shape[n] = model_shape(n, model)
    ref = shift.fit(np.concatenate([syn["x_train"], xs[tr]]))
    ref["fitted_on"] = (f"synthetic training split ({len(syn['y_train'])} images) + {site_name} training part "
                        f"({len(tr)} images)")
    base_ref = base_man["shift"]
    _, xsam, ysam = pipeline.load_samples(out)
    ev = {"adapted": {}, "base": {}}
    sets = {"synthetic_test": (syn["x_test"], syn["y_test"]), "samples": (xsam, ysam),
            f"{site_name}_heldout": (xs[te], ys[te]), f"{site_name}_all": (xs, ys)}
    for k, (x, y) in sets.items():
        ev["adapted"][k] = site_report(out, ref, x, y)
        ev["base"][k] = site_report(base_dir, base_ref, x, y)
        a, b = ev["adapted"][k]["safety"], ev["base"][k]["safety"]
        log(f"{k}: adapted acc {a['accuracy']:.4f} review {a['review_share']:.3f} ood {a['ood_share']:.3f} "
            f"serious {a['serious_errors']} unflagged {a['serious_unflagged']} | base acc {b['accuracy']:.4f} "
            f"review {b['review_share']:.3f} ood {b['ood_share']:.3f} serious {b['serious_errors']} "
            f"unflagged {b['serious_unflagged']}")
    ev["variety_only"] = {}
    # what the variety augmentations alone did (before any site image), base shift reference;
    # with no variety epoch that stage is the base itself, reported above
    vdir = out.parent / "train" / ".data" / "adapt" / site_name / "variety-onnx"
    vdir.mkdir(parents=True, exist_ok=True)
    for n in MODEL_NAMES if args.variety_epochs > 0 else ():
        export_onnx(load_ckpt(st["variety_dir"], n), vdir / f"{n}.onnx", syn["x_test"][:128], log=log)
    for k in ("synthetic_test", f"{site_name}_all") if args.variety_epochs > 0 else ():
        ev["variety_only"][k] = site_report(vdir, base_ref, *sets[k])
    # golden files of the new version, with the shift parity cases
    pipeline.cmd_golden(out)
    man = dict(base_man)
    man["ensemble"] = dict(base_man["ensemble"], version=ver)
    man["models"] = []
    for m in base_man["models"]:
        p = out / m["file"]
        man["models"].append(dict(m, **shape[m["name"]], version=ver.split("-")[0], sha256=pipeline.sha256(p), bytes=p.stat().st_size,
                                  ort_vs_torch_max_abs_diff=exp[m["name"]]["ort_vs_torch_max_abs_diff"],
                                  train_seconds=round(m["train_seconds"] + st["variety_info"][m["name"]]["seconds"]
                                                      + st["site_info"][m["name"]]["seconds"], 1),
                                  metrics=classification_metrics(syn["y_test"], logits_of(out, syn["x_test"])[
                                      MODEL_NAMES.index(m["name"])].argmax(1))))
    man["previous"] = replaced + [arch_rel] + [p for p in base_man.get("previous", []) if p not in replaced]
    man["adaptation"] = {
        "from": {"ensemble": base_man["ensemble"]["version"], "manifest": arch_rel},
        "site": site_name, "site_data": args.data, "site_digest": folder_digest(site),
        "site_split": {"seed": SEED_SITE, "held_out_fraction": 0.2, "method": "stratified per grade "
                       "(iari_train.data.stratified_split)", "train": tr.tolist(), "held_out": te.tolist(),
                       "counts_train": np.bincount(ys[tr], minlength=5).tolist(),
                       "counts_held_out": np.bincount(ys[te], minlength=5).tolist(),
                       **({"kept_out_for_epoch_choice": st["site_select"].tolist(),
                           "kept_out_note": "part of the training wells, not trained on, used only to choose the epoch"}
                          if st.get("site_select") is not None else {})},
        "stages": [{"name": "variety", "data": "synthetic training split", "epochs": args.variety_epochs,
                    "augmentation": VARIETY, "lr": LR_FINETUNE},
                   {"name": "site", "data": (f"a stratified {SYN_FRACTION:.0%} of " if SYN_FRACTION < 1 else "")
                    + f"the synthetic training split + {site_name} training part x{SITE_REPEAT}",
                    "epochs": st["site_epoch"], "epochs_run": st["epochs"],
                    "augmentation": VARIETY if SITE_AUGMENTATION == "variety" else AUG, "lr": LR_SITE,
                    "schedule": f"cosine decay to 0 over {st['epochs']} epochs",
                    "feature_lr_scale": FEATURE_LR_SCALE, "label_smoothing": LABEL_SMOOTHING,
                    "ring_head": ({"rings": RingHead.RINGS, "pool": args.ring_head,
                                   "what": "each network also reads its stem's mean and spread per channel in rings "
                                           "around the centre, through one linear layer (started at zero) added "
                                           "to its logits (iari_train.models.RingHead)"}
                                  if args.ring_head else None),
                    "distillation": ({"weight": DISTILL_WEIGHT, "temperature": DISTILL_T,
                                      "on": "the synthetic images, toward the starting model"}
                                     if DISTILL_WEIGHT > 0 else None),
                    "epoch_selection": {
                        "rule": "among the run's per-epoch checkpoints, those whose ensemble makes on the synthetic "
                                f"validation set at most the base's serious errors + {SERIOUS_SLACK} and at most the "
                                "base's unflagged serious errors, and no unflagged serious error on the site's "
                                "training part; the highest mean of the validation accuracy and the site's accuracy "
                                + ("cross-validated within the training part (inner_cv: each fold's site stage "
                                   "trained without it)" if sel["rule"].get("inner_cv") else "on the training part")
                                + " wins (earlier on ties); never the site's held-out part or the test splits",
                        "validation_set": {"seed": data.SEED_VALIDATION, "counts": data.VALIDATION_COUNTS},
                        "chosen": st["site_epoch"], "base": sel["base"], "epochs": sel["epochs"]}}],
        "batchnorm": "frozen (models rebuilt from the base ONNX files, iari_train.from_onnx)",
        "command": f"python -m iari_train adapt --data {args.data} --site {site_name} --out ../models"
                   + (f" --base {args.base}" if args.base else "")
                   + (f" --variety-epochs {args.variety_epochs}" if args.variety_epochs != 2 else "")
                   + (f" --ring-head {args.ring_head}" if args.ring_head else "")
                   + (f" --version {args.version}" if args.version else ""),
    }
    man["metrics"] = dict(base_man["metrics"])
    man["metrics"]["ensemble"] = ev["adapted"]["synthetic_test"]["ensemble"]
    man["metrics"]["per_model"] = {m["name"]: m["metrics"] for m in man["models"]}
    for key, (x, y) in (("extra_test", (syn["x_extra"], syn["y_extra"])), ("samples", (xsam, ysam))):
        L = logits_of(out, x)
        man["metrics"][key] = dict(man["metrics"][key], ensemble=classification_metrics(y, plurality_vote(L)),
                                   per_model={n: classification_metrics(y, l.argmax(1)) for n, l in zip(MODEL_NAMES, L)})
    man["metrics"]["per_site"] = ev
    man["warning"] = ("Trained and evaluated on SYNTHETIC wells only (the generator's and the synthetic "
                      f"{site_name} images). These figures say nothing about clinical accuracy.")
    (out / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    pipeline.cmd_shift(out, x_ref=np.concatenate([syn["x_train"], xs[tr]]), fitted_on=ref["fitted_on"],
                       site_dir=site)
    (pipeline.DATA_DIR / f"adapt-{site_name}-eval.json").write_text(json.dumps(ev, indent=1))
    man = json.loads((out / "manifest.json").read_text())
    readme = out.parent / "README.md"
    cur = readme.read_text()
    v1_text = cur[cur.index(CARD_BEGIN) + len(CARD_BEGIN):cur.index(CARD_END)].split("\n## Adapted to")[0]
    write_card_block(readme, card_block(man, ev, site_name, v1_text))
    from .card import write_card
    write_card(out)
    pipeline.cmd_verify(out)
    log(f"released {ver}; base kept in {arch_rel}")


def _row(name, r):
    s = r["safety"]
    return (f"| {name} | {s['n']} | {100 * s['accuracy']:.1f} % | {s['serious_errors']} | {s['serious_unflagged']} | "
            f"{s['errors_flagged']} of {s['errors']} | {100 * s['review_share']:.1f} % | "
            f"{100 * s['ood_share']:.1f} % |")


def card_block(man: dict, ev: dict, site: str, v1_text: str) -> str:
    """The model card's adaptation block: the shift-score section kept from before (v1_text)
    plus the per-site table of this version next to the base."""
    ad = man["adaptation"]
    sp = ad["site_split"]
    base_v, new_v = ad["from"]["ensemble"], man["ensemble"]["version"]
    L = [v1_text.rstrip(), "",
         f"## Adapted to {site}: ensemble {new_v} (SYNTHETIC)", "",
         f"`{ad['command']}` (from `onnx/train`) fine-tuned the five {base_v} models, rebuilt from their ONNX files "
         "(`iari_train.from_onnx`; BatchNorm frozen), in two stages: "
         + "; ".join(f"**{s['name']}**: {s['data']}, {s['epochs']} epochs, Adam lr {s['lr']:g}"
                     + (f" (of {s['epochs_run']}, {s['schedule']}; feature extractors at {s['feature_lr_scale']:g}x the "
                        f"lr, label smoothing {s['label_smoothing']:g}; the epoch chosen on a synthetic validation set "
                        "and the site's training part under the serious-error constraint, "
                        "`manifest.adaptation.stages[1].epoch_selection`)" if "epochs_run" in s else "")
                     + (f"; each network also reads its stem, averaged over {s['ring_head']['pool']}x"
                        f"{s['ring_head']['pool']} cells, as the mean and spread per channel in "
                        f"{s['ring_head']['rings']} rings around the centre, through one linear layer started at "
                        "zero and added to its logits (`models.RingHead`; the architecture per model is in the "
                        "manifest)" if s.get("ring_head") else "")
                     for s in ad["stages"])
         + "".join(f". Augmentation of the {s['name']} stage: {s['augmentation']}" for s in ad["stages"]) + ".", "",
         f"{site} split: stratified per grade, seed {sp['seed']}, {int(100 * sp['held_out_fraction'])} % held out "
         f"(train {sp['counts_train']}, held out {sp['counts_held_out']} for neg..4+; the exact indices into the "
         f"folder's sorted listing are in `models/manifest.json`, `adaptation.site_split`, and the folder's digest in "
         f"`adaptation.site_digest`). The held-out wells were never trained on. The shift reference was refitted on "
         f"{man['shift']['fitted_on']}; threshold {man['shift']['threshold']:.2f}. The {base_v} files stay in "
         f"`models/{ad['from']['manifest'].rsplit('/', 1)[0]}/` (listed under `previous` in the manifest) for decisions "
         "pinned to them (`iari models verify`, `iari replay`).", "",
         "| ensemble, set (SYNTHETIC) | n | accuracy | serious errors | serious unflagged | errors flagged | "
         "review share | out of distribution |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k in ev["adapted"]:
        L.append(_row(f"{new_v}, {k}", ev["adapted"][k]))
        L.append(_row(f"{base_v}, {k}", ev["base"][k]))
    for k, r in ev.get("variety_only", {}).items():
        L.append(_row(f"variety stage only (no {site} image), {k}", r))
    L += ["", f"Per model accuracy on the {site} held-out part: "
          + ", ".join(f"{n} {100 * a:.1f} %" for n, a in ev["adapted"][f"{site}_heldout"]["per_model_accuracy"].items())
          + f" ({base_v}: " + ", ".join(f"{100 * a:.1f} %" for a in ev["base"][f"{site}_heldout"]["per_model_accuracy"].values())
          + "). The best accuracy any reader can expect on these wells is about 99.2 % (site README).", ""]
    return "\n".join(L)


def write_card_block(readme: Path, text: str):
    s = readme.read_text()
    b, e = s.index(CARD_BEGIN), s.index(CARD_END)
    readme.write_text(s[:b] + CARD_BEGIN + "\n" + text.strip() + "\n" + s[e:])
