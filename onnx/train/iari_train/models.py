"""Five small CBAM-CNNs after Wu et al. 2022: AlexNet-, VGG-, ResNet-, Inception- and
DenseNet-style feature extractors, a CBAM block between feature extractor and classifier,
and a classifier producing logits for the 5 grades. Input [N,3,96,96]."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 5
MODEL_NAMES = ["alexnet-cbam", "vgg-cbam", "resnet-cbam", "inception-cbam", "densenet-cbam"]


class CBAM(nn.Module):
    """Channel attention (avg- and max-pooled descriptors through a shared MLP, sigmoid),
    then spatial attention (channel-wise avg and max maps through a 7x7 conv, sigmoid)."""

    def __init__(self, c: int, reduction: int = 8, k: int = 7):
        super().__init__()
        h = max(c // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(c, h, 1, bias=True), nn.ReLU(inplace=True), nn.Conv2d(h, c, 1, bias=True))
        self.spatial = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        x = x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(s))


def cbr(ci, co, k=3, s=1, bn=True):
    layers = [nn.Conv2d(ci, co, k, s, (k // 2) if s == 1 else 0, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(co))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def stem(co=16):
    """Patchifying stem: 4x4 conv, stride 4 (96 -> 24) + BN + ReLU (cheap on CPU)."""
    return cbr(3, co, k=4, s=4)


class CBAMNet(nn.Module):
    def __init__(self, features: nn.Module, c: int, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.cbam = CBAM(c)
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.cbam(self.features(x)))


# ---------------- AlexNet-style ----------------
def alexnet_cbam():
    f = nn.Sequential(
        nn.Conv2d(3, 24, 8, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(2),    # 12x12 (AlexNet's large strided stem)
        nn.Conv2d(24, 48, 5, 1, 2), nn.ReLU(inplace=True),
        nn.Conv2d(48, 48, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(48, 48, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(48, 32, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2),   # 6x6
    )
    cls = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 36, 96), nn.ReLU(inplace=True),
                        nn.Dropout(0.3), nn.Linear(96, NUM_CLASSES))
    return CBAMNet(f, 32, cls)


# ---------------- VGG-style ----------------
def vgg_cbam():
    f = nn.Sequential(
        stem(),                 # 24
        cbr(16, 24), cbr(24, 24), nn.MaxPool2d(2),        # 12
        cbr(24, 48), cbr(48, 48), nn.MaxPool2d(2),        # 6
        cbr(48, 64),
    )
    cls = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 64), nn.ReLU(inplace=True),
                        nn.Dropout(0.2), nn.Linear(64, NUM_CLASSES))
    return CBAMNet(f, 64, cls)


# ---------------- ResNet-style ----------------
class BasicBlock(nn.Module):
    def __init__(self, ci, co, s=1):
        super().__init__()
        self.c1 = nn.Conv2d(ci, co, 3, s, 1, bias=False)
        self.b1 = nn.BatchNorm2d(co)
        self.c2 = nn.Conv2d(co, co, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(co)
        self.sc = None
        if s != 1 or ci != co:
            self.sc = nn.Sequential(nn.Conv2d(ci, co, 1, s, bias=False), nn.BatchNorm2d(co))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.sc is None else self.sc(x)))


def resnet_cbam():
    f = nn.Sequential(
        stem(),                 # 24
        BasicBlock(16, 16), BasicBlock(16, 32, 2),        # 12
        BasicBlock(32, 64, 2),                            # 6
    )
    cls = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, NUM_CLASSES))
    return CBAMNet(f, 64, cls)


# ---------------- Inception-style ----------------
class Inception(nn.Module):
    def __init__(self, ci, b1, b3r, b3, b5r, b5, bp):
        super().__init__()
        self.p1 = cbr(ci, b1, 1)
        self.p2 = nn.Sequential(cbr(ci, b3r, 1), cbr(b3r, b3))
        self.p3 = nn.Sequential(cbr(ci, b5r, 1), cbr(b5r, b5), cbr(b5, b5))   # factorised 5x5
        self.p4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(ci, bp, 1))

    def forward(self, x):
        return torch.cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], 1)


def inception_cbam():
    f = nn.Sequential(
        stem(),                 # 24
        Inception(16, 8, 12, 16, 4, 8, 8), nn.MaxPool2d(2),     # 40 ch, 12
        Inception(40, 16, 16, 24, 8, 12, 12), nn.MaxPool2d(2),  # 64 ch, 6
    )
    cls = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, NUM_CLASSES))
    return CBAMNet(f, 64, cls)


# ---------------- DenseNet-style ----------------
class DenseLayer(nn.Module):
    def __init__(self, ci, g):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(ci), nn.ReLU(inplace=True), nn.Conv2d(ci, 2 * g, 1, bias=False),
                               nn.BatchNorm2d(2 * g), nn.ReLU(inplace=True), nn.Conv2d(2 * g, g, 3, 1, 1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


def dense_block(ci, n, g):
    layers = []
    for i in range(n):
        layers.append(DenseLayer(ci + i * g, g))
    return nn.Sequential(*layers), ci + n * g


def transition(ci, co):
    return nn.Sequential(nn.BatchNorm2d(ci), nn.ReLU(inplace=True), nn.Conv2d(ci, co, 1, bias=False), nn.AvgPool2d(2))


def densenet_cbam():
    g = 12
    b1, c = dense_block(24, 4, g)          # 72 ch at 12x12
    t1 = transition(c, 48)                 # 6x6
    b2, c = dense_block(48, 4, g)          # 96 ch at 6x6
    f = nn.Sequential(stem(24), nn.MaxPool2d(2), b1, t1, b2, nn.BatchNorm2d(c), nn.ReLU(inplace=True))
    cls = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, NUM_CLASSES))
    return CBAMNet(f, c, cls)


class RingHead(nn.Module):
    """A CBAMNet with a second, linear reading of its stem: per stem channel, the mean and the
    spread of the activations in RINGS rings around the well's centre (a fixed pooling matrix),
    through one linear layer whose answer adds to the network's logits. The layer starts at zero,
    so the network starts out answering exactly as before. Why: a linear reader of such radial
    profiles of the image grades a site better than the networks adapted to it (`readers`).
    `pool` > 1 reads the rings off the stem averaged over pool x pool cells first (24x24 -> 12x12
    at 2): the matrix products shrink by pool^2, which is what the reading costs per image."""

    RINGS = 6

    def __init__(self, net: CBAMNet, pool: int = 1):
        super().__init__()
        self.net = net
        self.shrink = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()
        with torch.no_grad():
            s = self.shrink(net.features[0](torch.zeros(1, 3, 96, 96)))
        c, h, w = s.shape[1:]
        self.register_buffer("pool", ring_matrix(h, w, self.RINGS))
        self.head = nn.Linear(2 * c * self.RINGS, NUM_CLASSES)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def describe(self) -> str:
        """The manifest's words for the reading added to the network's own architecture."""
        c = self.head.in_features // (2 * self.RINGS)
        cells = self.pool.shape[0]
        return (f"; ring head: the stem's {c} channels" + (f" averaged over {self.shrink.kernel_size}x"
                f"{self.shrink.kernel_size} cells" if isinstance(self.shrink, nn.AvgPool2d) else "")
                + f", mean and spread in {self.RINGS} rings of {cells} cells, FC {2 * c * self.RINGS}-5 added to the logits")

    def forward(self, x):
        s = self.net.features[0](x)
        logits = self.net.classifier(self.net.cbam(self.net.features[1:](s)))
        f = self.shrink(s).flatten(2)
        m = f @ self.pool
        sd = torch.sqrt(((f * f) @ self.pool - m * m).clamp_min(1e-6))
        return logits + self.head(torch.cat([m, sd], 1).flatten(1))


def ring_matrix(h: int, w: int, rings: int) -> torch.Tensor:
    """[h*w, rings]: column r averages the cells of ring r (equal widths out to the half-height)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    r = torch.sqrt((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / (h / 2)
    ring = torch.clamp((r * rings).long(), max=rings - 1).flatten()
    pool = torch.zeros(h * w, rings)
    pool[torch.arange(h * w), ring] = 1.0
    return pool / pool.sum(0, keepdim=True)


def ring_pool_of(net: CBAMNet, cells: int) -> int:
    """The `pool` of a RingHead around `net` whose ring matrix has `cells` rows."""
    with torch.no_grad():
        h, w = net.features[0](torch.zeros(1, 3, 96, 96)).shape[2:]
    for p in range(1, h + 1):
        if (h // p) * (w // p) == cells:
            return p
    raise ValueError(f"no pooling of a {h}x{w} stem gives {cells} cells")


def build(name: str, state_dict: dict | None = None) -> nn.Module:
    """The network `name`, as a RingHead when the state dict is one."""
    m = BUILDERS[name]()
    if state_dict is not None and "head.weight" in state_dict:
        m = RingHead(m, ring_pool_of(m, state_dict["pool"].shape[0]))
    return m


BUILDERS = {
    "alexnet-cbam": alexnet_cbam,
    "vgg-cbam": vgg_cbam,
    "resnet-cbam": resnet_cbam,
    "inception-cbam": inception_cbam,
    "densenet-cbam": densenet_cbam,
}

ARCH = {
    "alexnet-cbam": "AlexNet-style: 5 conv (8x8/4, 5x5, 3x3 x3) + 2 max-pools, no BN; CBAM(32ch, 6x6); FC 1152-96-5 with dropout",
    "vgg-cbam": "VGG-style: stem 4x4/4, stacks of 3x3 conv+BN+ReLU (16,24,24,48,48,64) with max-pools; CBAM(64ch, 6x6); GAP + FC 64-64-5",
    "resnet-cbam": "ResNet-style: stem 4x4/4, 3 basic residual blocks (16,32,64); CBAM(64ch, 6x6); GAP + FC 64-5",
    "inception-cbam": "Inception-style: stem 4x4/4 + 2 Inception modules (1x1 / 3x3 / factorised 5x5 / pool-proj branches, 40 and 64ch); CBAM(64ch, 6x6); GAP + FC 64-5",
    "densenet-cbam": "DenseNet-style (BC): stem 4x4/4 + max-pool, 2 dense blocks of 4 bottleneck layers (growth 12) with a transition; CBAM(96ch, 6x6); GAP + FC 96-5",
}


def count_macs(model: nn.Module, size: int = 96) -> int:
    """Multiply-accumulates of conv and linear layers for one image, and of a RingHead's two ring
    products (matrix products no layer hook sees)."""
    macs = [0]

    def conv_hook(m, i, o):
        macs[0] += o.numel() // o.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, i, o):
        macs[0] += m.in_features * m.out_features

    hs = []
    for m in model.modules():
        if isinstance(m, RingHead):
            macs[0] += 2 * (m.head.in_features // 2) * m.pool.shape[0]
        elif isinstance(m, nn.Conv2d):
            hs.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hs.append(m.register_forward_hook(lin_hook))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was)
    for h in hs:
        h.remove()
    return macs[0]
