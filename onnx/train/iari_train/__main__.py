"""python -m iari_train {all,generate,samples,train,export,evaluate,golden,manifest,card,verify,...} --out ../models"""
import argparse
from pathlib import Path

from . import pipeline


def main():
    ap = argparse.ArgumentParser(prog="iari_train", description=__doc__)
    ap.add_argument("cmd", choices=["all", "generate", "samples", "train", "export", "evaluate", "golden",
                                    "manifest", "card", "verify", "lab", "adapt", "shift", "held-out",
                                    "readers"])
    ap.add_argument("--out", default="../models", help="model output folder (onnx/models)")
    ap.add_argument("--epochs", type=int, default=pipeline.DEFAULT_EPOCHS)
    ap.add_argument("--data", help="lab data root with neg/1+/2+/3+/4+ folders (cmd lab)")
    ap.add_argument("--site", default="site", help="site name (cmd adapt)")
    ap.add_argument("--base", help="ensemble to adapt (cmd adapt; default: --out)")
    ap.add_argument("--variety-epochs", type=int, default=2, help="variety stage epochs (cmd adapt)")
    ap.add_argument("--version", help="new ensemble version (cmd adapt; default 2.0.0-synthetic-<site>)")
    ap.add_argument("--to", help="cmd held-out: folder to copy the site's held-out wells into")
    ap.add_argument("--stage", choices=["train", "all", "cv"], default="all",
                    help="cmd adapt: stop after training and report the checkpoints next to the base (train), "
                         "or estimate the recipe's accuracy on the site by cross-validation (cv)")
    ap.add_argument("--cv-train-fraction", type=float, default=1.0,
                    help="adapt --stage cv: train each fold on this share of its training part (learning curve)")
    ap.add_argument("--epoch-choice", choices=["fitted", "inner-cv"], default=None,
                    help="cmd adapt: score the site's accuracy for choosing the epoch on the wells trained on "
                         "(fitted) or cross-validated within them (inner-cv: 4 more site stages); "
                         "default adapt.EPOCH_CHOICE")
    ap.add_argument("--ring-head", type=int, nargs="?", const=1, default=0, metavar="POOL",
                    help="cmd adapt: the site stage's networks also read radial profiles of their stem "
                         "(models.RingHead), averaged over POOL x POOL cells first (default 1)")
    ap.add_argument("--cv-site-only", action="store_true",
                    help="adapt --stage cv: the site stage without the synthetic images (a diagnostic)")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    if a.cmd == "adapt":
        from . import adapt
        a.epoch_choice = a.epoch_choice or adapt.EPOCH_CHOICE
        if a.epochs == pipeline.DEFAULT_EPOCHS:
            a.epochs = adapt.ADAPT_EPOCHS
        adapt.main(a)
        return
    if a.cmd == "held-out":
        from . import adapt
        adapt.copy_held_out(Path(a.data).resolve(), out, Path(a.to), pipeline.log)
        return
    if a.cmd == "readers":
        from . import readers
        readers.run(Path(a.data).resolve(), out, pipeline.log)
        return
    if a.cmd == "lab":
        from . import lab
        lab.run(Path(a.data), out, a.epochs)
        return
    steps = {
        "generate": lambda: pipeline.cmd_generate(out),
        "samples": lambda: pipeline.cmd_samples(out),
        "train": lambda: pipeline.cmd_train(out, a.epochs),
        "export": lambda: pipeline.cmd_export(out),
        "evaluate": lambda: pipeline.cmd_evaluate(out),
        "golden": lambda: pipeline.cmd_golden(out),
        "manifest": lambda: pipeline.cmd_manifest(out),
        "card": lambda: __import__("iari_train.card", fromlist=["x"]).write_card(out),
        "verify": lambda: pipeline.cmd_verify(out),
        "shift": lambda: pipeline.cmd_shift(out, site_dir=Path(a.data) if a.data else None),
    }
    order = ["generate", "train", "export", "evaluate", "golden", "manifest", "shift", "card", "verify"]
    for s in (order if a.cmd == "all" else [a.cmd]):
        if s == "card":
            try:
                from . import card  # noqa: F401
            except ImportError:
                continue
        steps[s]()


if __name__ == "__main__":
    main()
