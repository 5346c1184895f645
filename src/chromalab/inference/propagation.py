"""Propagation: a model's colors corrected by user color points, with no training.

Each point says "this pixel is this color". The difference between the point's a*b* and the
model's prediction there (its *residual* r_i) is spread over the pixels that are near the point,
of similar lightness and colored alike by the model — a joint-bilateral splat of the residuals,
guided by the photo's own L* and the prediction — and fades to nothing far away, so a point
fixes its region and leaves the rest to the model:

    w_i(p)   = exp(-|p - x_i|^2 / 2 s^2 - (L(p) - L_i)^2 / 2 t^2 - |ab(p) - ab_i|^2 / 2 c^2)
    delta(p) = min(1, sum_i w_i(p) / f) * sum_i w_i(p)^k r_i / sum_i w_i(p)^k

with s a fraction of the photo's shorter side (shrinking as 1/sqrt(N) past ``crowd`` points), t
in L* units and c in a*b* units. Where points overlap, the residuals mix by weight^k (k > 1: the
nearest, most alike point wins, so each point keeps its own color); the fade (floor f) brings
the correction to nothing where no point reaches. It works on any model's a*b*, at a working
grid of at most ``WORK_SIDE`` pixels a side (chroma is smooth: the full-resolution merge
upsamples it under the photo's own L*, as it does for every colorization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from chromalab.color import AB_SCALE
from chromalab.inference.fullres import lightness_array
from chromalab.inference.points import ColorPoint

WORK_SIDE = 512  # the working grid's longest side: the guide's edges, at a few ms per point


@dataclass(frozen=True)
class Propagation:
    """How far and how edge-aware a point's correction spreads (tuned in docs/points.md)."""

    # Tuned on every 5th photo of val/imagenet_det256 (192) at 10 and 50 simulated points
    # (benchmarks/propagation_tuning.py; the grid is in docs/points.md).
    sigma_space: float = 0.35  # spatial fall-off, as a fraction of the photo's shorter side
    sigma_lightness: float = 16.0  # L* units: a region of other lightness is another region
    # The model's own prediction joins the guide (a*b*, Lab units): pixels the model colored alike
    # are likely one material, so a point reaches them first. 0: lightness only.
    sigma_chroma: float = 4.0
    radius: float = 0.004  # a point's default footprint radius, fraction of the shorter side
    # Past this many points, the spatial fall-off shrinks with their mean spacing (1 / sqrt(N)):
    # many points each govern a smaller area. 0: a fixed fall-off.
    crowd: float = 16.0
    sharpness: float = 3.0  # residuals mix by weight ** sharpness: above 1, the nearest point wins
    floor: float = 0.5  # delta = sum(w r) / max(sum(w), floor): below 1, a point's full residual reaches further


def work_size(width: int, height: int, limit: int = WORK_SIDE) -> tuple[int, int]:
    """(w, h) of the working grid: the photo's own aspect, longest side at most ``limit``."""
    scale = min(1.0, limit / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class PointGuide:
    """A photo's lightness on the working grid: computed once, reused for every set of points
    (the web page keeps one per photo while the user clicks)."""

    def __init__(self, image: Image.Image, settings: Propagation = Propagation()) -> None:
        self.width, self.height = image.size
        self.settings = settings
        self.grid_width, self.grid_height = work_size(self.width, self.height)
        if (self.grid_width, self.grid_height) == image.size:
            small = image
        else:
            small = image.resize((self.grid_width, self.grid_height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        self.lightness = np.ascontiguousarray(lightness_array(small), dtype=np.float32)

    @property
    def scale(self) -> float:
        """Working-grid pixels per photo pixel."""
        return self.grid_width / self.width

    def spread(self, ab_small: torch.Tensor, points: Sequence[ColorPoint]) -> torch.Tensor:
        """The model's normalized a*b* (2, h, w), corrected by ``points`` (photo pixels) ->
        normalized a*b* (2, grid_height, grid_width)."""
        predicted = cv2.resize(
            np.ascontiguousarray(ab_small.detach().float().permute(1, 2, 0).numpy()) * np.float32(AB_SCALE),
            (self.grid_width, self.grid_height), interpolation=cv2.INTER_LINEAR,
        )
        corrected = spread_residuals(predicted, self.lightness, points, self.scale, self.settings)
        return torch.from_numpy(corrected / np.float32(AB_SCALE)).permute(2, 0, 1)


def spread_residuals(
    predicted: np.ndarray, lightness: np.ndarray, points: Sequence[ColorPoint], scale: float, settings: Propagation,
) -> np.ndarray:
    """``predicted`` a*b* (H, W, 2, Lab units) plus every point's residual, spread edge-aware
    over the guide ``lightness`` (H, W); ``scale``: grid pixels per photo pixel."""
    if not points:
        return predicted
    height, width = lightness.shape
    short = min(height, width)
    sigma = settings.sigma_space * short
    if settings.crowd and len(points) > settings.crowd:
        sigma /= math.sqrt(len(points) / settings.crowd)
    sigma = max(sigma, 0.5)
    reach = int(math.ceil(3 * sigma))  # exp(-4.5): beyond 3 sigma a point adds under 1%
    inv_space = 1.0 / (2 * sigma * sigma)
    inv_range = 1.0 / (2 * settings.sigma_lightness**2)
    total = np.zeros((height, width, 2), dtype=np.float32)
    weight = np.zeros((height, width), dtype=np.float32)
    inv_chroma = 1.0 / (2 * settings.sigma_chroma**2) if settings.sigma_chroma > 0 else 0.0
    centers, residuals, levels, tints = [], [], [], []
    for point in points:
        # A point names a photo pixel; on the grid, its center lies at (x + 0.5) * scale - 0.5.
        x, y = (point.x + 0.5) * scale - 0.5, (point.y + 0.5) * scale - 0.5
        radius = (point.radius * scale) if point.radius is not None else settings.radius * short
        footprint = _footprint(x, y, radius, width, height)
        tint = predicted[footprint].reshape(-1, 2).mean(axis=0)
        residuals.append(np.asarray(point.ab, dtype=np.float32) - tint)
        tints.append(tint)
        levels.append(float(lightness[footprint].mean()))
        centers.append((x, y))
    mixing = np.zeros((height, width), dtype=np.float32)
    for (x, y), level, tint, residual in zip(centers, levels, tints, residuals):
        col, row = int(round(x)), int(round(y))
        top, bottom = max(0, row - reach), min(height, row + reach + 1)
        left, right = max(0, col - reach), min(width, col + reach + 1)
        rows = (np.arange(top, bottom, dtype=np.float32) - y) ** 2
        cols = (np.arange(left, right, dtype=np.float32) - x) ** 2
        window = lightness[top:bottom, left:right]
        exponent = -(rows[:, None] + cols[None, :]) * inv_space - (window - level) ** 2 * inv_range
        if inv_chroma:
            exponent -= ((predicted[top:bottom, left:right] - tint) ** 2).sum(axis=-1) * inv_chroma
        w = np.exp(exponent)
        weight[top:bottom, left:right] += w
        m = w if settings.sharpness == 1 else w**settings.sharpness
        mixing[top:bottom, left:right] += m
        total[top:bottom, left:right] += m[..., None] * residual
    # The residuals' weighted mean, faded where the points' total weight is below the floor.
    fade = np.minimum(weight / np.float32(settings.floor), 1.0)
    return predicted + total * (fade / np.maximum(mixing, 1e-12))[..., None]


def _footprint(x: float, y: float, radius: float, width: int, height: int) -> tuple[slice, slice]:
    """The grid pixels a point covers: a square of side 2 * radius around it (at least its own
    pixel), as index slices (cheap: a point's colour and lightness are means over it)."""
    col, row = min(width - 1, max(0, int(round(x)))), min(height - 1, max(0, int(round(y))))
    reach = max(0, int(round(radius)))
    return (slice(max(0, row - reach), min(height, row + reach + 1)),
            slice(max(0, col - reach), min(width, col + reach + 1)))
