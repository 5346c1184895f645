"""The full-resolution half of colorization: the photo's own L*, and L* + upsampled a*b* -> sRGB.

The network sees a small square; everything at the photo's size is pixel arithmetic, and on a
CPU that arithmetic, not the network, is what a photo costs (kornia's general-purpose Lab
conversions took 80% of a 768x512 colorization). So this module does the same math as kornia
(D65, sRGB companding, clipped to the gamut; tested against kornia and scikit-image) with what
the inputs allow:

- a gray photo has only 256 distinct values, so its L* is a 256-entry table;
- the final sRGB companding is a table too: linear light in [0, 1] sampled at 2^20 steps, so
  every output byte is within one level of the exact formula's;
- everything else is a few float32 numpy passes over strips of ~2 MP, so memory stays bounded
  (a 24-MP photo never holds more than a strip's float32 Lab at a time).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch
from PIL import Image

from chromalab.color import AB_SCALE, normalize_l

STRIP_PIXELS = 2_000_000  # full-resolution work is done in strips of about this many pixels

# CIE constants as kornia uses them (D65 white, its XYZ -> linear sRGB matrix).
WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
XYZ_TO_LINEAR_RGB = np.array([
    [3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
    [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
    [0.0556466391351772, -0.2040413383665112, 1.0573110696453443],
], dtype=np.float32)
LUMINANCE = np.array([0.212671, 0.715160, 0.072169])  # Y of linear sRGB (kornia's rgb_to_xyz row)
ENCODE_STEPS = 2**20 - 1  # linear-light steps of the companding table (1 MB): few rounding ties differ


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


@functools.cache
def _encode_table() -> np.ndarray:
    """sRGB byte of linear light i / ENCODE_STEPS, uint8 (ENCODE_STEPS + 1,)."""
    linear = np.arange(ENCODE_STEPS + 1, dtype=np.float64) / ENCODE_STEPS
    encoded = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.round(np.clip(encoded, 0.0, 1.0) * 255.0).astype(np.uint8)


def _rows(height: int, width: int) -> int:
    return max(1, STRIP_PIXELS // max(1, width))


def lightness_array(image: Image.Image) -> np.ndarray:
    """(H, W) float32 L* in [0, 100] of a photo, gray or color."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    table = gray_lightness_table()
    if pixels.ndim == 2:
        return table[pixels]
    if np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]):
        return table[pixels[..., 0]]  # a gray photo stored as RGB
    height, width = pixels.shape[:2]
    out = np.empty((height, width), dtype=np.float32)
    linear, rows = _linear_table(), _rows(height, width)
    weights = LUMINANCE.astype(np.float32)
    for top in range(0, height, rows):
        strip = linear[pixels[top : top + rows]]  # (rows, W, 3) linear light
        out[top : top + rows] = lightness_of_luminance(strip @ weights)
    return out


def lab_to_srgb_uint8(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """L* (H, W) and a*b* (H, W, 2) float32 -> (H, W, 3) uint8 sRGB, clipped to the gamut."""
    fy = (lightness + 16.0) / 116.0
    fxyz = np.empty((*lightness.shape, 3), dtype=np.float32)
    fxyz[..., 0] = fy + ab[..., 0] / 500.0
    fxyz[..., 1] = fy
    np.maximum(fy - ab[..., 1] / 200.0, 0.0, out=fxyz[..., 2])  # Z < 0 is out of range
    xyz = np.where(fxyz > 0.2068966, fxyz * fxyz * fxyz, (fxyz - 4.0 / 29.0) / 7.787)
    # OpenCV's per-pixel 3x3 transform is 4x numpy's (N, 3) @ (3, 3) here.
    linear = cv2.transform(xyz, XYZ_TO_LINEAR_RGB * WHITE_D65)  # white scaling folded in
    np.clip(linear, 0.0, 1.0, out=linear)
    index = (linear * ENCODE_STEPS + 0.5).astype(np.uint32)
    return np.take(_encode_table(), index)


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
    for top in range(0, height, rows):
        out[top : top + rows] = lab_to_srgb_uint8(l_full[top : top + rows], ab_full[top : top + rows])
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
