"""Synthetic solid-phase Coombs (IARI) well generator, written from spec/grades.md.

Every image is 229 x 230 (width x height) RGB uint8 and fully determined by (seed, grade).

Physical model (transmitted light, seen from below):
    pixel_c = illumination * medium_c * exp(-OD(x, y) * absorb_c) * wall/plate terms
where OD is the optical density of red cells (button + mat + halo + agglutinates + fibrin)
and absorb_c is the haemoglobin absorption per channel (R absorbs least -> red/pink cells).

Each grade k draws a continuous latent "reaction intensity" t uniformly from
[0.2k + 0.01, 0.2k + 0.19] (neighbouring ranges are separated by a 0.02 gap only); every
morphological parameter is a piecewise-linear function of t, so a 1+ near t=0.39 looks very
much like a 2+ near t=0.41 -- hard but readable. Nuisance factors and artefacts are drawn
independently of the grade.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 229, 230
CLASSES = ["neg", "1+", "2+", "3+", "4+"]

# latent t knots: 0.0 (neg low) ... 1.0 (4+ high); grade k occupies [0.2k, 0.2k+0.2]
_T = np.array([0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0])
# button radius as a fraction of the well-bottom radius (neg 10-20 % of diameter)
_BTN_R = np.array([0.10, 0.19, 0.25, 0.21, 0.16, 0.07, 0.0])
# button optical density (green channel units) before haematocrit scaling
_BTN_OD = np.array([2.3, 2.0, 1.55, 1.25, 1.05, 0.80, 0.55])
# button rim softness (fraction of well radius)
_BTN_SOFT = np.array([0.008, 0.02, 0.05, 0.05, 0.05, 0.05, 0.05])
# button rim raggedness (relative amplitude of angular radius modulation)
_BTN_RAG = np.array([0.01, 0.06, 0.22, 0.20, 0.15, 0.10, 0.05])
# donut strength: lighter centre + dark ring at the button rim (peaks in 2+)
_DONUT = np.array([0.0, 0.0, 0.10, 0.55, 0.35, 0.0, 0.0])
# mat (adherent layer) outer radius fraction
_MAT_R = np.array([0.26, 0.34, 0.50, 0.64, 0.76, 0.90, 1.0])
# mat optical density
_MAT_OD = np.array([0.04, 0.10, 0.22, 0.34, 0.44, 0.55, 0.62])
# mat edge crenation amplitude (relative) and edge softness
_MAT_CREN = np.array([0.02, 0.06, 0.10, 0.12, 0.10, 0.05, 0.015])
_MAT_SOFT = np.array([0.10, 0.08, 0.05, 0.04, 0.035, 0.03, 0.02])
# granularity: relative amplitude of mat texture; coarse (uneven) vs fine weighting
_GRAIN = np.array([0.0, 0.25, 0.45, 0.50, 0.45, 0.30, 0.20])
_COARSE = np.array([0.0, 0.8, 0.9, 0.9, 0.7, 0.35, 0.05])
# number of scattered small agglutinates (peak 1+)
_AGGL = np.array([0.0, 6.0, 30.0, 20.0, 8.0, 0.0, 0.0])
# denser centre (3+): extra OD gaussian with radius ~0.25
_DENSE_C = np.array([0.0, 0.0, 0.0, 0.05, 0.15, 0.30, 0.0])


def _lerp(t, table):
    return float(np.interp(t, _T, table))


def latent_range(grade: int) -> tuple[float, float]:
    return 0.2 * grade + 0.01, 0.2 * grade + 0.19


_YY, _XX = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Separable box blur (window 2r+1) of a 2-D array via cumulative sums, edge-padded."""
    if r <= 0:
        return a
    k = 2 * r + 1
    p = np.pad(a, ((r + 1, r), (0, 0)), mode="edge")
    c = np.cumsum(p, axis=0)
    a = (c[k:] - c[:-k]) / k
    p = np.pad(a, ((0, 0), (r + 1, r)), mode="edge")
    c = np.cumsum(p, axis=1)
    return (c[:, k:] - c[:, :-k]) / k


def _noise(rng, scale: float, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    """Zero-mean unit-std smooth noise with correlation length ~scale pixels."""
    n = rng.standard_normal(shape).astype(np.float32)
    r = int(round(scale / 2))
    if r > 0:
        n = _box_blur(_box_blur(n, r), r)
    n -= n.mean()
    s = n.std()
    return n / (s + 1e-8)


def _gauss_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur of an HxWxC float image (defocus)."""
    if sigma < 0.3:
        return img
    r = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float32)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(w[i] * p[i:i + img.shape[0]] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(w[i] * p[:, i:i + img.shape[1]] for i in range(2 * r + 1))


def _angular(rng, n_harm: tuple[int, int], amp: float) -> np.ndarray:
    """Random periodic radius modulation sampled on 720 angles (mean 0, max |.| ~ amp)."""
    th = np.linspace(-np.pi, np.pi, 720, endpoint=False)
    ks = np.arange(n_harm[0], n_harm[1] + 1)
    a = rng.standard_normal(len(ks)) / np.sqrt(ks)
    ph = rng.uniform(0, 2 * np.pi, len(ks))
    m = (a[:, None] * np.cos(ks[:, None] * th[None, :] + ph[:, None])).sum(0)
    m /= np.abs(m).max() + 1e-8
    return (amp * m).astype(np.float32)


def _polar(cx, cy):
    dx, dy = _XX - cx, _YY - cy
    r = np.sqrt(dx * dx + dy * dy)
    idx = ((np.arctan2(dy, dx) + np.pi) * (720 / (2 * np.pi))).astype(np.int32) % 720
    return r, idx


def _sig(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def render(seed: int, grade: int, t: float | None = None, artefacts: bool = True,
           jpeg: bool | None = None) -> tuple[np.ndarray, dict]:
    """Render one well. Returns (uint8 array HxWx3, info dict)."""
    rng = np.random.default_rng([int(seed), int(grade), 0x1A81])
    if t is None:
        lo, hi = latent_range(grade)
        t = float(rng.uniform(lo, hi))
    info = {"grade": CLASSES[grade], "t": t}

    # ---------------- geometry / nuisance ----------------
    Rw = float(rng.uniform(92, 102))                      # well-bottom radius (px)
    cx = WIDTH / 2 + float(rng.uniform(-8, 8))            # position jitter
    cy = HEIGHT / 2 + float(rng.uniform(-8, 8))
    tilt_a = float(rng.uniform(0, 2 * np.pi))
    tilt_m = float(rng.uniform(0, 0.14)) * Rw             # plate tilt -> button off-centre
    bx, by = cx + tilt_m * np.cos(tilt_a), cy + tilt_m * np.sin(tilt_a)
    mx, my = cx + 0.5 * tilt_m * np.cos(tilt_a), cy + 0.5 * tilt_m * np.sin(tilt_a)
    hct = float(rng.uniform(0.75, 1.3))                   # haematocrit / cell amount
    absorb = np.array([0.16, 1.0, 0.80], np.float32)      # haemoglobin absorption R,G,B
    absorb = absorb * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    absorb[0] = absorb[0] * float(rng.uniform(0.8, 1.3))
    medium = np.array([0.97, 0.93, 0.80], np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    plate = np.array([0.80, 0.80, 0.78], np.float32) + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    illum = float(rng.uniform(0.72, 1.08))
    wb = rng.uniform(0.92, 1.08, 3).astype(np.float32)

    r_w, a_w = _polar(cx, cy)
    rn_w = r_w / Rw
    r_b, a_b = _polar(bx, by)
    rn_b = r_b / Rw
    r_m, a_m = _polar(mx, my)
    rn_m = r_m / Rw

    # ---------------- cells: optical density map ----------------
    od = np.zeros((HEIGHT, WIDTH), np.float32)

    # mat / adherent carpet (also the faint halo of negatives)
    mat_r = _lerp(t, _MAT_R) * float(rng.uniform(0.94, 1.04))
    mat_edge = mat_r * (1.0 + _angular(rng, (5, 40), _lerp(t, _MAT_CREN))[a_m])
    soft = _lerp(t, _MAT_SOFT)
    mat_mask = _sig((mat_edge - rn_m) / (soft / 4 + 1e-4))
    mat_od = _lerp(t, _MAT_OD) * hct
    if t < 0.2:  # negatives: misty halo decays smoothly outward, no mat edge
        mat_mask = np.exp(-np.maximum(rn_b - _lerp(t, _BTN_R), 0) / 0.12) * (float(rng.uniform(0, 1)) ** 2)
    grain_a = _lerp(t, _GRAIN)
    coarse_w = _lerp(t, _COARSE)
    if grain_a > 0:
        tex = coarse_w * _noise(rng, float(rng.uniform(4, 7))) + (1 - coarse_w) * _noise(rng, 1.0)
        tex = tex / np.sqrt(coarse_w ** 2 + (1 - coarse_w) ** 2)
        mat_tex = np.clip(1.0 + grain_a * tex, 0.1, None)
    else:
        mat_tex = 1.0
    # gentle radial density profile in the mat: slightly denser inward
    prof = 1.0 + 0.25 * np.clip(1 - rn_m / max(mat_r, 1e-3), 0, 1)
    od += mat_od * mat_mask * mat_tex * prof

    # denser centre (3+)
    dc = _lerp(t, _DENSE_C) * hct
    if dc > 0:
        od += dc * np.exp(-0.5 * (rn_b / 0.22) ** 2) * (1 + 0.3 * _noise(rng, 3.0))

    # button
    btn_r = _lerp(t, _BTN_R) * float(rng.uniform(0.9, 1.1)) * (hct ** 0.35)
    if btn_r > 0.012:
        rag = _lerp(t, _BTN_RAG)
        b_edge = btn_r * (1.0 + _angular(rng, (3, 24), rag)[a_b])
        bsoft = _lerp(t, _BTN_SOFT)
        b_mask = _sig((b_edge - rn_b) / (bsoft / 4 + 1e-4))
        # dome profile: thicker in the centre
        dome = np.sqrt(np.clip(1 - (rn_b / (btn_r * 1.25)) ** 2, 0, 1)) * 0.45 + 0.55
        b_od = _lerp(t, _BTN_OD) * hct
        donut = _lerp(t, _DONUT) * float(rng.uniform(0.6, 1.2))
        if donut > 0:
            centre_light = 1 - donut * np.exp(-0.5 * (rn_b / (0.55 * btn_r)) ** 2)
            ring = donut * 0.8 * np.exp(-0.5 * ((rn_b - 0.9 * b_edge) / (0.18 * btn_r)) ** 2)
            dome = dome * centre_light + ring
        if t >= 0.2:
            dome = dome * (1 + 0.12 * _noise(rng, 2.0))
        od = od * (1 - 0.7 * b_mask) + b_od * b_mask * dome

    # scattered small agglutinates around the button (1+/2+)
    n_ag = int(rng.poisson(_lerp(t, _AGGL)))
    if n_ag:
        ang = rng.uniform(0, 2 * np.pi, n_ag)
        rad = (btn_r + rng.uniform(0.02, 0.35, n_ag)) * Rw
        px, py = bx + rad * np.cos(ang), by + rad * np.sin(ang)
        sz = rng.uniform(0.8, 2.6, n_ag)
        amp = rng.uniform(0.4, 1.2, n_ag) * hct
        for x0, y0, s, a in zip(px, py, sz, amp):
            x0i, y0i, rr = int(x0), int(y0), int(3 * s) + 2
            ys, xs = slice(max(y0i - rr, 0), min(y0i + rr + 1, HEIGHT)), slice(max(x0i - rr, 0), min(x0i + rr + 1, WIDTH))
            d2 = (_XX[ys, xs] - x0) ** 2 + (_YY[ys, xs] - y0) ** 2
            od[ys, xs] += a * np.exp(-0.5 * d2 / (s * s))

    # ---------------- artefacts (grade-independent) ----------------
    extra = np.zeros((HEIGHT, WIDTH, 3), np.float32)      # additive extinction per channel
    bright = np.zeros((HEIGHT, WIDTH), np.float32)        # additive brightness (bubble cores)
    arts = []
    if artefacts and rng.random() < 0.15:                 # fibrin strands
        arts.append("fibrin")
        for _ in range(int(rng.integers(1, 3))):
            n = 60
            ang0 = rng.uniform(0, 2 * np.pi)
            steps = np.cumsum(rng.normal(0, 0.12, n)) + ang0
            r0 = rng.uniform(0, 0.7) * Rw
            a0 = rng.uniform(0, 2 * np.pi)
            x = cx + r0 * np.cos(a0) + np.cumsum(1.2 * np.cos(steps))
            y = cy + r0 * np.sin(a0) + np.cumsum(1.2 * np.sin(steps))
            xi, yi = np.clip(x.astype(int), 0, WIDTH - 1), np.clip(y.astype(int), 0, HEIGHT - 1)
            m = np.zeros((HEIGHT, WIDTH), np.float32)
            m[yi, xi] = 1.0
            m = _box_blur(m, 1) * 3.0
            col = np.array([0.5, 0.9, 1.0], np.float32) * float(rng.uniform(0.4, 0.9))
            extra += m[..., None] * col
            stuck = rng.random(n) < 0.15                  # cells stuck to the fibre
            for x0, y0 in zip(x[stuck], y[stuck]):
                x0i, y0i = int(x0), int(y0)
                ys, xs = slice(max(y0i - 4, 0), min(y0i + 5, HEIGHT)), slice(max(x0i - 4, 0), min(x0i + 5, WIDTH))
                d2 = (_XX[ys, xs] - x0) ** 2 + (_YY[ys, xs] - y0) ** 2
                od[ys, xs] += 0.8 * np.exp(-0.5 * d2 / 2.0)
    if artefacts and rng.random() < 0.30:                 # particulates
        arts.append("particulates")
        n = int(rng.integers(1, 9))
        for _ in range(n):
            x0, y0 = cx + rng.uniform(-0.9, 0.9) * Rw, cy + rng.uniform(-0.9, 0.9) * Rw
            s = rng.uniform(0.6, 2.2)
            x0i, y0i, rr = int(x0), int(y0), int(3 * s) + 2
            ys, xs = slice(max(y0i - rr, 0), min(y0i + rr + 1, HEIGHT)), slice(max(x0i - rr, 0), min(x0i + rr + 1, WIDTH))
            d2 = (_XX[ys, xs] - x0) ** 2 + (_YY[ys, xs] - y0) ** 2
            extra[ys, xs] += (rng.uniform(0.5, 3.0) * np.exp(-0.5 * d2 / (s * s)))[..., None]
    if artefacts and rng.random() < 0.25:                 # bubbles
        arts.append("bubble")
        for _ in range(int(rng.integers(1, 4))):
            rb = rng.uniform(4, 16)
            ra = rng.uniform(0, 0.85) * Rw
            aa = rng.uniform(0, 2 * np.pi)
            x0, y0 = cx + ra * np.cos(aa), cy + ra * np.sin(aa)
            d = np.sqrt((_XX - x0) ** 2 + (_YY - y0) ** 2)
            inside = _sig((rb - d) / 0.7)
            od *= 1 - 0.85 * inside                        # bubble displaces cells
            rim = np.exp(-0.5 * ((d - rb) / (0.13 * rb + 0.5)) ** 2)
            extra += (1.4 * rim)[..., None]                # dark refractive rim
            core = np.exp(-0.5 * (d / (0.45 * rb)) ** 2)
            hl = np.exp(-0.5 * ((_XX - x0 + 0.3 * rb) ** 2 + (_YY - y0 + 0.3 * rb) ** 2) / (0.12 * rb + 0.6) ** 2)
            bright += 0.35 * core * inside + 0.6 * hl
    info["artefacts"] = arts

    # ---------------- compose ----------------
    inside_w = _sig((1.0 - rn_w) * Rw / 1.2)
    ext = od[..., None] * absorb[None, None, :] + extra
    well = medium[None, None, :] * np.exp(-ext)
    # well wall: dark refractive ring at the bottom edge, then plastic outside
    wall = np.exp(-0.5 * ((rn_w - 1.0) * Rw / float(rng.uniform(2.0, 4.0))) ** 2)
    outside = plate[None, None, :] * (0.85 + 0.15 * np.clip((rn_w - 1.05) * 3, 0, 1))[..., None]
    img = well * inside_w[..., None] + outside * (1 - inside_w[..., None])
    img = img * (1 - float(rng.uniform(0.35, 0.7)) * wall[..., None])
    img = img + bright[..., None]
    # illumination: level, linear gradient, vignetting, white balance
    ga = rng.uniform(0, 2 * np.pi)
    grad = 1 + float(rng.uniform(0, 0.12)) * ((_XX - WIDTH / 2) * np.cos(ga) + (_YY - HEIGHT / 2) * np.sin(ga)) / 115
    vig = 1 - float(rng.uniform(0, 0.25)) * ((_XX - WIDTH / 2) ** 2 + (_YY - HEIGHT / 2) ** 2) / (160 ** 2)
    img = img * (illum * grad * vig)[..., None] * wb[None, None, :]
    img = _gauss_blur(img, float(rng.uniform(0, 1.4)) if rng.random() < 0.6 else 0.0)
    img = img * 255 + rng.normal(0, rng.uniform(0.5, 3.5), img.shape).astype(np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if jpeg is None:
        jpeg = rng.random() < 0.3
    if jpeg:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(60, 93)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()
        info["jpeg"] = True
    return out, info


def generate(counts: dict[str, int] | list[int], seed: int):
    """Generate a data set. Returns (images uint8 [N,H,W,3], labels int64 [N], infos)."""
    if isinstance(counts, dict):
        counts = [counts[c] for c in CLASSES]
    n = int(sum(counts))
    imgs = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    labels = np.empty(n, np.int64)
    infos = []
    i = 0
    for g, c in enumerate(counts):
        for j in range(c):
            im, inf = render(seed * 1_000_003 + j, g)
            imgs[i], labels[i] = im, g
            infos.append(inf)
            i += 1
    return imgs, labels, infos
