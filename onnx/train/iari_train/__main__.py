"""python -m iari_train {all,generate,samples,train,export,evaluate,golden,manifest,card,verify} --out ../models"""
import argparse
from pathlib import Path

from . import pipeline


def main():
    ap = argparse.ArgumentParser(prog="iari_train", description=__doc__)
    ap.add_argument("cmd", choices=["all", "generate", "samples", "train", "export", "evaluate", "golden",
                                    "manifest", "card", "verify", "lab"])
    ap.add_argument("--out", default="../models", help="model output folder (onnx/models)")
    ap.add_argument("--epochs", type=int, default=pipeline.DEFAULT_EPOCHS)
    ap.add_argument("--data", help="lab data root with neg/1+/2+/3+/4+ folders (cmd lab)")
    a = ap.parse_args()
    out = Path(a.out).resolve()
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
    }
    order = ["generate", "train", "export", "evaluate", "golden", "manifest", "card", "verify"]
    for s in (order if a.cmd == "all" else [a.cmd]):
        if s == "card":
            try:
                from . import card  # noqa: F401
            except ImportError:
                continue
        steps[s]()


if __name__ == "__main__":
    main()
