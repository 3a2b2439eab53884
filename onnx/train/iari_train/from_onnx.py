"""Torch models from the committed ONNX files, so a released ensemble can be fine-tuned
(site adaptation, new augmentations) without the training checkpoints, which are not committed.

The legacy exporter folds each BatchNorm that follows a convolution into that convolution
(initializers named `onnx::Conv_*`). Such a pair is loaded as the fused convolution plus an
identity BatchNorm (weight 1, running mean 0, running variance 1 - eps) whose bias carries the
fused bias; in eval mode that computes exactly what the ONNX graph computes. Fine-tuning keeps
BatchNorm in eval mode (frozen statistics, affine parameters trainable), see `train.freeze_bn`.
Every other initializer carries its torch parameter name and is loaded by name (a graph with a
`head.weight` is a models.RingHead, its ring matrix the `pool` initializer). The result is
checked against onnxruntime on real inputs (max |logit diff| <= 1e-4)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .models import BUILDERS, RingHead, ring_pool_of


def _conv_calls(model: nn.Module):
    """Conv2d calls in forward order, each with the BatchNorm2d that consumes its output (or None)."""
    calls, outputs = [], []      # outputs stay referenced so that tensor identity is unambiguous
    hooks = []

    def conv_hook(m, i, o):
        calls.append([m, None])
        outputs.append(o)

    def bn_hook(m, i, o):
        for j, t in enumerate(outputs):
            if t is i[0] and calls[j][1] is None:
                calls[j][1] = m

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(bn_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 96, 96))
    for h in hooks:
        h.remove()
    return calls


def load_from_onnx(name: str, path: Path) -> nn.Module:
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    model = BUILDERS[name]()
    if "head.weight" in inits:     # an adapted version whose networks also read their stem's rings
        model = RingHead(model, ring_pool_of(model, inits["pool"].shape[0]))
    sd = model.state_dict()
    loaded = set()
    for k, v in inits.items():
        if k in sd:
            sd[k] = torch.from_numpy(v.copy())
            loaded.add(k)
    names = {id(m): n for n, m in model.named_modules()}
    calls = _conv_calls(model)
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert len(convs) == len(calls), f"{name}: {len(convs)} ONNX convs, {len(calls)} torch conv calls"
    for node, (conv, bn) in zip(convs, calls):
        w = node.input[1]
        if not w.startswith("onnx::"):
            continue
        assert bn is not None and conv.bias is None, f"{name}: fused {w} without a BatchNorm"
        cn, bnn = names[id(conv)], names[id(bn)]
        sd[cn + ".weight"] = torch.from_numpy(inits[w].copy())
        sd[bnn + ".weight"] = torch.ones_like(sd[bnn + ".weight"])
        sd[bnn + ".bias"] = torch.from_numpy(inits[node.input[2]].copy())
        sd[bnn + ".running_mean"] = torch.zeros_like(sd[bnn + ".running_mean"])
        sd[bnn + ".running_var"] = torch.full_like(sd[bnn + ".running_var"], 1.0 - bn.eps)
        loaded.update({cn + ".weight", bnn + ".weight", bnn + ".bias", bnn + ".running_mean", bnn + ".running_var"})
    missing = [k for k in sd if k not in loaded and not k.endswith("num_batches_tracked")]
    assert not missing, f"{name}: not loaded from {path}: {missing}"
    model.load_state_dict(sd)
    model.eval()
    return model


def check_against_onnx(model: nn.Module, path: Path, x: np.ndarray) -> float:
    import onnxruntime as ort
    from .train import predict_torch

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([s.run(["logits"], {"input": x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    diff = float(np.abs(predict_torch(model, x) - got).max())
    assert diff <= 1e-4, f"{path.name}: torch-from-onnx vs onnxruntime max |diff| {diff}"
    return diff
