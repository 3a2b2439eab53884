"""Augmentations that expect variety between sites: plausible acquisition changes (camera white
balance, saturation, illumination level/gradient/vignetting, a halo ring or glow, defocus blur,
sensor noise) on top of the geometric ones (scale and offset, flips, quarter turns).

Acts per batch sample on the preprocessed tensor (pp-area-1: v = (rgb/255 - 0.5) / 0.25): it is
mapped back to RGB in [0, 1], changed, clamped and normalised again. All draws come from the
torch.Generator passed in, so a seeded run is reproducible."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

VARIETY = ("per batch sample, on the preprocessed tensor mapped back to RGB [0,1]: white balance (channel gains "
           "0.85-1.15), saturation (x0.6-1.4 around luma), illumination (gain 0.8-1.2, linear gradient up to "
           "+-15 %, vignetting up to 25 %), halo (p=0.5 a light or dark ring at 80-100 % of the half-width, "
           "amplitude 3-12 %; p=0.3 a faint diffuse red glow around the centre, up to 12 %), defocus blur "
           "(p=0.4, Gaussian sigma 0.3-1.5 px), sensor noise (sigma up to 0.02); then scale 0.75-1.20 of the "
           "field of view and offset +-12 % (bilinear, border padding), flips and quarter turns")


def _u(n, lo, hi, g):
    return torch.empty(n).uniform_(lo, hi, generator=g)


def photometric(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    u = x * 0.25 + 0.5
    u = u * _u(n * 3, 0.85, 1.15, g).view(n, 3, 1, 1)                         # white balance
    luma = (u * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    u = luma + _u(n, 0.6, 1.4, g).view(n, 1, 1, 1) * (u - luma)              # saturation
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ang = _u(n, 0, 2 * math.pi, g).view(n, 1, 1)
    grad = 1 + _u(n, 0, 0.15, g).view(n, 1, 1) * (torch.cos(ang) * xx + torch.sin(ang) * yy)
    r2 = (xx ** 2 + yy ** 2) / 2
    vig = 1 - _u(n, 0, 0.25, g).view(n, 1, 1) * r2
    u = u * (_u(n, 0.8, 1.2, g).view(n, 1, 1) * grad * vig).unsqueeze(1)      # illumination
    r = torch.sqrt(xx ** 2 + yy ** 2)
    ring_on = (torch.rand(n, generator=g) < 0.5).float().view(n, 1, 1)
    rad = _u(n, 0.8, 1.0, g).view(n, 1, 1)
    width = _u(n, 0.03, 0.08, g).view(n, 1, 1)
    amp = _u(n, 0.03, 0.12, g).view(n, 1, 1) * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).view(n, 1, 1)
    u = u + (ring_on * amp * torch.exp(-((r - rad) / width) ** 2 / 2)).unsqueeze(1)   # halo ring
    glow_on = (torch.rand(n, generator=g) < 0.3).float().view(n, 1, 1)
    sig = _u(n, 0.1, 0.3, g).view(n, 1, 1)
    gw = (glow_on * _u(n, 0, 0.12, g).view(n, 1, 1) * torch.exp(-r ** 2 / (2 * sig ** 2))).unsqueeze(1)
    tint = torch.tensor([0.85, 0.45, 0.5]).view(1, 3, 1, 1)
    u = u * (1 - gw) + gw * tint                                              # halo glow
    blur_on = torch.rand(n, generator=g) < 0.4                                # defocus blur
    if blur_on.any():
        s = _u(n, 0.3, 1.5, g)
        k = torch.arange(-3, 4, dtype=torch.float32)
        ker = torch.exp(-k[None, :] ** 2 / (2 * s[:, None] ** 2))
        ker = ker / ker.sum(1, keepdim=True)                                  # n x 7
        kk = ker.repeat_interleave(3, 0)                                       # 3n x 7
        v = u.reshape(1, n * 3, h, w)
        v = F.conv2d(F.pad(v, (3, 3, 0, 0), mode="replicate"), kk.view(n * 3, 1, 1, 7), groups=n * 3)
        v = F.conv2d(F.pad(v, (0, 0, 3, 3), mode="replicate"), kk.view(n * 3, 1, 7, 1), groups=n * 3)
        u = torch.where(blur_on.view(n, 1, 1, 1), v.view(n, 3, h, w), u)
    u = u + torch.randn(u.shape, generator=g) * _u(n, 0, 0.02, g).view(n, 1, 1, 1)   # sensor noise
    return (u.clamp(0, 1) - 0.5) / 0.25


def geometric(x: torch.Tensor, g: torch.Generator, zoom=(0.75, 1.20), shift=0.12) -> torch.Tensor:
    n = x.shape[0]
    z = _u(n, *zoom, g)
    t = torch.empty(n, 2).uniform_(-shift, shift, generator=g)
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
    for q in (1, 2, 3):
        m = k == q
        if m.any():
            out[m] = torch.rot90(x[m], q, dims=(2, 3))
    return out


def variety(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return geometric(photometric(x, g), g)
