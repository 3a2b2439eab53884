"""python -m iari_train.wells --seed S --scale K --out DIR

Writes a labelled folder (DIR/{neg,1+,2+,3+,4+}/*.png) of SYNTHETIC wells rendered by the training
generator (`synth.render`) in the paper's grade mix (`data.PAPER_COUNTS`) times K, from a seed of
its own: data that no model was trained, selected or calibrated on, for measuring release
policies (`scripts/release-shares.sh`). Needs numpy and pillow only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from . import synth

# data.PAPER_COUNTS, repeated here so this module does not import the training stack.
PAPER_COUNTS = [650, 230, 68, 130, 550]
# Seeds used for training, validation, tests and samples (data.py); a wells seed must differ.
RESERVED = {20220901, 777001, 424242, 20261203}


def write(seed: int, scale: float, out: Path) -> int:
    if seed in RESERVED:
        raise SystemExit(f"seed {seed} is one the models were trained or selected on")
    n = 0
    for g, c in enumerate(synth.CLASSES):
        d = out / c
        d.mkdir(parents=True, exist_ok=True)
        for j in range(round(PAPER_COUNTS[g] * scale)):
            im, _ = synth.render(seed * 1_000_003 + j, g)
            Image.fromarray(im).save(d / f"{c.replace('+', 'p')}-{seed}-{j:05d}.png")
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(prog="iari_train.wells", description=__doc__)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--scale", type=float, default=1.0, help="times the paper mix (1628 wells)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    print(f"wrote {write(a.seed, a.scale, a.out)} synthetic wells under {a.out}")


if __name__ == "__main__":
    main()
