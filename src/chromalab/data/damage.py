"""Old-photo damage of the gray input: faded contrast, blur, film grain, JPEG artifacts.

Real black-and-white photos are not clean conversions of color ones: their contrast has faded,
lenses and prints blurred them, film grain covers them, and scans were saved as JPEG. A model
that only saw clean L* paints color noise into grain and loses its colors on faded contrast.
Training applies this damage to the *input* L* only (the targets stay the clean photo's), and
``chromalab evaluate --damage`` scores a model on damaged copies of the evaluation photos.

The recipe, per photo (each kind independently, with probability ``each``; strengths uniform):

| damage | what it does | strength (default) |
|---|---|---|
| fade | L* -> g + (1 - f)(L* - g): contrast pulled toward a gray level g in [35, 70] | f up to 0.5 |
| blur | Gaussian blur (lens, print, scan) | sigma up to 1.5 px of a 256-px photo |
| grain | Gaussian noise, grains of 1-2 px | std up to 6 L* units |
| jpeg | JPEG round trip of the L* image (OpenCV) | quality 15-70 |

Applied in that order: a faded, soft print, grainy film, then a compressed scan. Everything is
drawn from a ``torch.Generator``, so the same seed gives the same damage (``photo_generator``
seeds one per photo from its file name, as the simulated color points are).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

KINDS = ("fade", "blur", "grain", "jpeg")
DAMAGE_SEED = 1839  # the year of the daguerreotype; any fixed number will do


@dataclass(frozen=True)
class OldPhotoDamage:
    """Strengths of the old-photo recipe (module docstring); defaults are the documented ones."""

    probability: float = 1.0  # chance that a photo is damaged at all
    each: float = 0.5  # chance of each kind of damage on a damaged photo
    fade: float = 0.5  # largest contrast loss f
    fade_gray: tuple[float, float] = (35.0, 70.0)  # the L* level contrast fades toward
    blur: float = 1.5  # largest Gaussian sigma, in pixels of a 256-px photo
    grain: float = 6.0  # largest noise std, in L* units
    grain_size: tuple[float, float] = (1.0, 2.0)  # grain size in pixels of a 256-px photo
    jpeg_quality: tuple[int, int] = (15, 70)
    kinds: tuple[str, ...] = KINDS  # the kinds this recipe applies (all by default)


def photo_generator(path: str | Path, seed: int = DAMAGE_SEED) -> torch.Generator:
    """A generator for one photo, from its file name (not Python's salted hash) and ``seed``."""
    return torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(Path(path).name.encode("utf-8")))


def _uniform(generator: torch.Generator, count: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def _chosen(generator: torch.Generator, count: int, chance: float) -> torch.Tensor:
    return torch.rand(count, generator=generator) < chance


@torch.no_grad()
def damage_lightness(lightness: torch.Tensor, generator: torch.Generator,
                     recipe: OldPhotoDamage = OldPhotoDamage()) -> torch.Tensor:
    """L* in [0, 100], (B, 1, H, W) -> the damaged L* (same shape, clamped to [0, 100]).

    Every random number is drawn, in a fixed order, whether or not a photo uses it, so one
    photo's damage does not depend on which kinds the others got.
    """
    if lightness.ndim != 4 or lightness.shape[1] != 1:
        raise ValueError(f"damage_lightness expects (B, 1, H, W) L*, got {tuple(lightness.shape)}")
    count, _, height, width = lightness.shape
    scale = min(height, width) / 256  # strengths are given for a 256-px photo
    damaged = _chosen(generator, count, recipe.probability)
    use = {kind: _chosen(generator, count, recipe.each) & damaged & (kind in recipe.kinds) for kind in KINDS}
    fade = _uniform(generator, count, 0, recipe.fade)
    fade_gray = _uniform(generator, count, *recipe.fade_gray)
    sigma = _uniform(generator, count, 0.3, recipe.blur) * scale
    grain_std = _uniform(generator, count, 0, recipe.grain)
    grain_size = _uniform(generator, count, *recipe.grain_size) * scale
    quality = torch.randint(recipe.jpeg_quality[0], recipe.jpeg_quality[1] + 1, (count,), generator=generator)
    noise = torch.randn(lightness.shape, generator=generator)

    out = lightness.float().clone()
    gray = fade_gray.view(-1, 1, 1, 1)
    faded = gray + (1 - fade.view(-1, 1, 1, 1)) * (out - gray)
    out = torch.where(use["fade"].view(-1, 1, 1, 1), faded, out)  # untouched photos stay bit-exact

    blurred = use["blur"].nonzero().flatten()
    if len(blurred):
        largest = float(sigma[blurred].max())
        kernel = 2 * math.ceil(3 * largest) + 1
        sigmas = sigma[blurred].view(-1, 1).expand(-1, 2).contiguous()
        out[blurred] = gaussian_blur2d(out[blurred], (kernel, kernel), sigmas, border_type="reflect")

    for i in use["grain"].nonzero().flatten().tolist():
        # Grains larger than a pixel: noise drawn on a coarser grid, smoothly enlarged.
        size = max(1.0, float(grain_size[i]))
        grid = (max(1, round(height / size)), max(1, round(width / size)))
        grains = F.interpolate(noise[i : i + 1, :, : grid[0], : grid[1]], size=(height, width),
                               mode="bilinear", align_corners=False)
        grains = grains / grains.std().clamp_min(1e-6)  # enlarging smooths; keep the std asked for
        out[i] = out[i] + float(grain_std[i]) * grains[0]
    out = out.clamp(0, 100)

    for i in use["jpeg"].nonzero().flatten().tolist():
        gray8 = np.ascontiguousarray((out[i, 0] * 2.55).round().clamp(0, 255).to(torch.uint8).numpy())
        ok, encoded = cv2.imencode(".jpg", gray8, [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        if ok:
            decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
            out[i, 0] = torch.from_numpy(decoded).float() / 2.55
    return out.to(lightness.dtype)
