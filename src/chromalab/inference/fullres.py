"""The full-resolution half of colorization: the photo's own L*, and L* + upsampled a*b* -> sRGB.

The network sees a small square; everything at the photo's size is pixel arithmetic, and on a
CPU that arithmetic, not the network, is what a photo costs (kornia's general-purpose Lab
conversions took 80% of a 768x512 colorization). So this module does the same math as kornia
(D65, sRGB companding, clipped to the gamut; tested against kornia and scikit-image) with what
the inputs allow:

- a gray photo has only 256 distinct values, so its L* is a 256-entry table (OpenCV's LUT);
- a*b* are upsampled once, bilinearly, by OpenCV;
- L*a*b* -> sRGB bytes is OpenCV's float conversion (SIMD, the CIE formulas with tabulated
  companding), run over strips of the photo on a few threads at once, so memory stays bounded
  (a 24-MP photo never holds more than a few strips' float32 Lab at a time) and both cores work
  (numpy's passes are single-threaded).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from PIL import Image

from chromalab.color import AB_SCALE, normalize_l

# Full-resolution work is done in strips of about this many pixels: 3 MB of float32 Lab stays in
# the L3 cache, and a photo of a few megapixels still has enough strips for every thread
# (24 MP: 0.15 s at 250k-pixel strips against 0.20 s at 2M, same run).
STRIP_PIXELS = 250_000

LUMINANCE = np.array([0.212671, 0.715160, 0.072169])  # Y of linear sRGB (kornia's rgb_to_xyz row)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)


def lightness_of_luminance(y: np.ndarray) -> np.ndarray:
    """CIE L* of relative luminance Y in [0, 1] (kornia's f(t) with its linear toe)."""
    f = np.where(y > 0.008856, np.cbrt(y), 7.787 * y + 4.0 / 29.0)
    return 116.0 * f - 16.0


@functools.cache
def gray_lightness_table() -> np.ndarray:
    """L* of each 8-bit gray level (R = G = B = v), float32 (256,)."""
    linear = srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0)
    return lightness_of_luminance(linear * LUMINANCE.sum()).astype(np.float32)


@functools.cache
def _linear_table() -> np.ndarray:
    return srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def _rows(height: int, width: int) -> int:
    return max(1, STRIP_PIXELS // max(1, width))


def lightness_array(image: Image.Image) -> np.ndarray:
    """(H, W) float32 L* in [0, 100] of a photo, gray or color."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    table = gray_lightness_table()
    if pixels.ndim == 2:
        return cv2.LUT(pixels, table)  # 4x numpy's table[pixels], and threaded
    if np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]):
        return cv2.LUT(np.ascontiguousarray(pixels[..., 0]), table)  # a gray photo stored as RGB
    height, width = pixels.shape[:2]
    out = np.empty((height, width), dtype=np.float32)
    rows = _rows(height, width)
    for top in range(0, height, rows):
        out[top : top + rows] = _lightness_of_rgb(pixels[top : top + rows])
    return out


def _lightness_of_rgb(pixels: np.ndarray) -> np.ndarray:
    """L* of (h, W, 3) uint8 sRGB: a table to linear light, OpenCV's per-pixel dot product to Y,
    and OpenCV's SIMD power for the cube root (5x numpy's np.where(cbrt) passes, same digits)."""
    linear = cv2.LUT(pixels, _linear_table())
    luminance = cv2.transform(linear, LUMINANCE.astype(np.float32)[None])
    lightness = cv2.pow(luminance, 1.0 / 3.0)
    toe = luminance <= 0.008856  # kornia's linear toe below (6/29)^3
    if toe.any():
        lightness[toe] = 7.787 * luminance[toe] + 4.0 / 29.0
    lightness *= 116.0
    lightness -= 16.0
    return lightness


def lab_to_srgb_uint8(lightness: np.ndarray, ab: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """L* (H, W) and a*b* (H, W, 2) float32 -> (H, W, 3) uint8 sRGB, clipped to the gamut.

    OpenCV's float Lab -> RGB is the same CIE math as kornia's (D65, sRGB companding; white
    points differ in the 5th digit), vectorized and threaded, so it does the arithmetic. The one
    difference is below the gamut's floor: kornia clamps f(Z) at 0 and OpenCV does not, so b*
    is clamped at 200 f(Y) first, which gives f(Z) = max(f(Y) - b*/200, 0) exactly as kornia.
    """
    lab = np.empty((*lightness.shape, 3), dtype=np.float32)
    lab[..., 0] = lightness
    lab[..., 1] = ab[..., 0]
    np.minimum(ab[..., 1], (lightness + 16.0) * np.float32(200.0 / 116.0), out=lab[..., 2])
    cv2.cvtColor(lab, cv2.COLOR_Lab2RGB, dst=lab)  # float RGB in [0, 1], clipped
    if out is None:
        out = np.empty(lab.shape, dtype=np.uint8)
    return cv2.convertScaleAbs(lab, out, alpha=255.0)  # rounds to the nearest byte


def full_resolution_lightness(image: Image.Image) -> torch.Tensor:
    """(1, 1, H, W) L* in [0, 100] of the photo at its own size."""
    return torch.from_numpy(lightness_array(image))[None, None]


def upsample_ab(ab_small: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Normalized (1, 2, h, w) a*b* -> (H, W, 2) float32 Lab units, bilinear (half-pixel centers)."""
    small = np.ascontiguousarray(ab_small[0].detach().float().permute(1, 2, 0).numpy()) * np.float32(AB_SCALE)
    if small.shape[:2] == (height, width):
        return small
    # OpenCV's INTER_LINEAR samples at half-pixel centers, as F.interpolate(align_corners=False).
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def merge_full_resolution(lightness: torch.Tensor | np.ndarray, ab_small: torch.Tensor) -> np.ndarray:
    """The photo's L* with the network's a*b* upsampled to its size -> (H, W, 3) uint8 sRGB."""
    l_full = lightness.reshape(lightness.shape[-2:])
    l_full = l_full.numpy() if isinstance(l_full, torch.Tensor) else l_full
    height, width = l_full.shape
    ab_full = upsample_ab(ab_small, height, width)
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = _rows(height, width)

    def convert(top: int) -> None:
        bottom = top + rows
        lab_to_srgb_uint8(l_full[top:bottom], ab_full[top:bottom], out=out[top:bottom])

    tops = range(0, height, rows)
    workers = min(len(tops), torch.get_num_threads())
    if workers <= 1:
        for top in tops:
            convert(top)
    else:
        # numpy and OpenCV release the GIL in these passes, so strips convert in parallel.
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(convert, tops))
    return out


def model_input(image: Image.Image, size: int) -> torch.Tensor:
    """(1, 1, size, size) normalized L of the photo squashed to the model's square input.

    Squashing (not cropping) keeps every part of the photo in view of the network; the
    predicted chroma is stretched back, and chroma is smooth enough for that not to show.
    A gray photo is resized as one channel, without an RGB copy at full size.
    """
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    small = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return normalize_l(torch.from_numpy(lightness_array(small)))[None, None]
