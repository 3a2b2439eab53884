"""Training (paper recipe), ONNX export and verification."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .models import BUILDERS, MODEL_NAMES, count_macs

BATCH = 32
LR = 5e-4
AUG = ("per batch sample, on the preprocessed float tensor: random zoom/crop (affine resample, scale 0.85-1.10 "
       "of the field of view, shift +-8 %, bilinear, border padding), horizontal flip p=0.5, vertical flip p=0.5, "
       "rotation by k*90 deg (k uniform 0..3)")
IMBALANCE = "class-weighted cross-entropy, weight_k = N_train / (5 * n_k) from the (noisy) training label counts"


def setup_torch(seed: int):
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.use_deterministic_algorithms(True)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    z = torch.empty(n).uniform_(0.85, 1.10, generator=g)
    t = torch.empty(n, 2).uniform_(-0.08, 0.08, generator=g)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = z
    theta[:, 1, 1] = z
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    fh = torch.rand(n, generator=g) < 0.5
    fv = torch.rand(n, generator=g) < 0.5
    x = torch.where(fh[:, None, None, None], x.flip(3), x)
    x = torch.where(fv[:, None, None, None], x.flip(2), x)
    k = torch.randint(0, 4, (n,), generator=g)
    out = x.clone()
    for r in (1, 2, 3):
        m = k == r
        if m.any():
            out[m] = torch.rot90(x[m], r, dims=(2, 3))
    return out


def train_one(name: str, x_train: np.ndarray, y_train: np.ndarray, epochs: int, seed: int, log=print):
    setup_torch(seed)
    model = BUILDERS[name]()
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    cnt = np.bincount(y_train, minlength=5).astype(np.float64)
    w = torch.tensor(len(y_train) / (5 * np.maximum(cnt, 1)), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = None
    n = len(y_train)
    hist = []
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(n))
        tot, correct = 0.0, 0
        for b in range(0, n, BATCH):
            idx = perm[b:b + BATCH]
            xb = augment(xt[idx], g)
            yb = yt[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, weight=w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        hist.append({"epoch": ep + 1, "loss": round(tot / n, 5), "train_acc": round(correct / n, 5)})
        log(f"  {name} epoch {ep + 1}/{epochs} loss {tot / n:.4f} acc {correct / n:.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model, {"seconds": round(time.time() - t0, 1), "history": hist}


@torch.no_grad()
def predict_torch(model, x: np.ndarray, bs: int = 256) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i:i + bs])).numpy() for i in range(0, len(x), bs)])


def export_onnx(model, path: Path, x_check: np.ndarray, log=print) -> dict:
    import onnx
    import onnxruntime as ort

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    before = set(path.parent.iterdir())
    dummy = torch.from_numpy(x_check[:1].copy())
    torch.onnx.export(model, (dummy,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=17,
                      do_constant_folding=True, dynamo=False)
    new = set(path.parent.iterdir()) - before - {path}
    assert not new, f"export wrote extra files: {new}"
    m = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(m)
    for init in m.graph.initializer:
        assert init.data_location != onnx.TensorProto.EXTERNAL, f"external data in {path}: {init.name}"
    assert [i.name for i in m.graph.input] == ["input"], [i.name for i in m.graph.input]
    assert [o.name for o in m.graph.output] == ["logits"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = predict_torch(model, x_check)
    got = np.concatenate([sess.run(["logits"], {"input": x_check[i:i + 64]})[0] for i in range(0, len(x_check), 64)])
    diff = float(np.abs(ref - got).max())
    assert diff <= 1e-4, f"{path.name}: onnxruntime vs torch max abs diff {diff}"
    log(f"  exported {path.name}: {path.stat().st_size} bytes, ort-vs-torch max|diff| {diff:.2e}")
    return {"ort_vs_torch_max_abs_diff": diff, "opset": 17}


def run_onnx(path: Path, x: np.ndarray, bs: int = 64) -> np.ndarray:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["logits"], {"input": x[i:i + bs]})[0] for i in range(0, len(x), bs)])


def model_stats(name: str, model=None) -> dict:
    """params, macs and mflops of `model` (default: a fresh network `name`)."""
    m = BUILDERS[name]() if model is None else model
    macs = count_macs(m)
    return {"params": int(sum(p.numel() for p in m.parameters())), "macs": int(macs),
            "mflops": round(2 * macs / 1e6, 2)}


def freeze_bn(model):
    """Fine-tuning keeps BatchNorm statistics fixed (models rebuilt from ONNX carry folded
    BatchNorms, see from_onnx); the affine parameters still train."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def finetune(model, name: str, x: np.ndarray, y: np.ndarray, epochs: int, seed: int, lr: float, aug, log=print,
             cosine: bool = False, feature_lr_scale: float = 1.0, label_smoothing: float = 0.0, on_epoch=None,
             teacher=None, distill: np.ndarray | None = None, distill_weight: float = 0.0, distill_t: float = 2.0):
    """Fine-tunes `model` in place: Adam, class-weighted cross-entropy, augmentation `aug(x, g)`,
    BatchNorm frozen; with `cosine`, the learning rate decays to 0 over the run (cosine).
    `feature_lr_scale`: the feature extractor (`model.features`) learns at lr * scale, CBAM and
    classifier at lr. `label_smoothing`: of the cross-entropy. `on_epoch(epoch, model)` is called
    after each epoch (the caller keeps per-epoch checkpoints). `teacher` (a frozen model),
    `distill` [N] bool, `distill_weight`, `distill_t`: on the images marked in `distill` the loss adds
    distill_weight * t^2 * KL(teacher || model) at temperature t on the same augmented input
    (learning without forgetting: the starting model's answers on its own look are kept).
    Returns the history like train_one."""
    setup_torch(seed)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if teacher is not None:
        teacher.eval()
        for p_ in teacher.parameters():
            p_.requires_grad_(False)
        dt = torch.from_numpy(np.asarray(distill, bool))
    cnt = np.bincount(y, minlength=5).astype(np.float64)
    w = torch.tensor(len(y) / (5 * np.maximum(cnt, 1)), dtype=torch.float32)
    if feature_lr_scale == 1.0:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        feat = [p for n_, p in model.named_parameters() if n_.startswith("features.")]
        head = [p for n_, p in model.named_parameters() if not n_.startswith("features.")]
        opt = torch.optim.Adam([{"params": feat, "lr": lr * feature_lr_scale}, {"params": head, "lr": lr}], lr=lr)
    n, hist, t0 = len(y), [], time.time()
    steps = epochs * ((n + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1)) if cosine else None
    for ep in range(epochs):
        model.train()
        freeze_bn(model)
        perm = torch.from_numpy(rng.permutation(n))
        tot, correct = 0.0, 0
        for b in range(0, n, BATCH):
            idx = perm[b:b + BATCH]
            xb, yb = aug(xt[idx], g), yt[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, weight=w, label_smoothing=label_smoothing)
            if teacher is not None and distill_weight > 0:
                db = dt[idx]
                if db.any():
                    with torch.no_grad():
                        tl = teacher(xb[db])
                    kl = F.kl_div(F.log_softmax(logits[db] / distill_t, 1), F.log_softmax(tl / distill_t, 1),
                                  log_target=True, reduction="batchmean")
                    loss = loss + distill_weight * distill_t ** 2 * kl * (float(db.sum()) / len(idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        hist.append({"epoch": ep + 1, "loss": round(tot / n, 5), "train_acc": round(correct / n, 5)})
        log(f"  {name} fine-tune epoch {ep + 1}/{epochs} loss {tot / n:.4f} acc {correct / n:.4f} ({time.time() - t0:.0f}s)")
        if on_epoch is not None:
            model.eval()
            on_epoch(ep + 1, model)
            model.train()
            freeze_bn(model)
    model.eval()
    info = {"seconds": round(time.time() - t0, 1), "history": hist, "lr": lr,
            "schedule": "cosine" if cosine else "constant"}
    if feature_lr_scale != 1.0:
        info["feature_lr_scale"] = feature_lr_scale
    if label_smoothing:
        info["label_smoothing"] = label_smoothing
    if teacher is not None and distill_weight > 0:
        info["distill"] = {"weight": distill_weight, "t": distill_t, "images": int(np.sum(distill))}
    return info
