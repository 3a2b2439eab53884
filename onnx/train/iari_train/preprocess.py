"""THE preprocessing contract (pp-area-1). Single definition used by training, evaluation,
golden files; the Rust server re-implements it.

1. decode to 8-bit RGB (Pillow .convert("RGB")).
2. resize the WHOLE image (no crop) to 96x96 by area averaging in float64:
   for an axis of input length n and output length m, s = n/m; output sample i covers
   [i*s, (i+1)*s); source pixel j covers [j, j+1) and gets weight overlap/s.
   out[c] = Wy @ img[:,:,c] @ Wx.T  (Wy: 96xH, Wx: 96xW, float64).
3. v = (out/255 - 0.5) / 0.25 in float64, cast to float32, layout CHW (NCHW with batch), RGB.
"""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image

SIZE = 96
MEAN = 0.5
STD = 0.25
PREPROCESSING = {
    "version": "pp-area-1",
    "color": "RGB",
    "resize": {"method": "area", "width": SIZE, "height": SIZE, "crop": "none"},
    "scale": "1/255",
    "mean": [MEAN] * 3,
    "std": [STD] * 3,
    "layout": "NCHW",
    "dtype": "float32",
}


@functools.lru_cache(maxsize=64)
def area_weights(n: int, m: int) -> np.ndarray:
    """m x n float64 matrix; row i holds the overlap weights of source pixels for output i."""
    s = n / m
    i = np.arange(m, dtype=np.float64)
    lo = i * s
    hi = (i + 1) * s
    j = np.arange(n, dtype=np.float64)
    ov = np.minimum(hi[:, None], j[None, :] + 1.0) - np.maximum(lo[:, None], j[None, :])
    w = np.clip(ov, 0.0, None) / s
    w.setflags(write=False)
    return w


def load_rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def preprocess_array(img: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 [3,96,96]."""
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, img.shape
    h, w = img.shape[:2]
    wy = area_weights(h, SIZE)
    wx = area_weights(w, SIZE)
    out = np.empty((3, SIZE, SIZE), np.float64)
    for c in range(3):
        out[c] = wy @ img[:, :, c].astype(np.float64) @ wx.T
    v = (out / 255.0 - MEAN) / STD
    return v.astype(np.float32)


def preprocess_file(path) -> np.ndarray:
    return preprocess_array(load_rgb(path))


def preprocess_batch(imgs: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> float32 [N,3,96,96] (same math as preprocess_array)."""
    return np.stack([preprocess_array(im) for im in imgs])
