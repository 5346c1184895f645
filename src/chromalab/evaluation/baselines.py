"""Reference colorizers with no learning: the floor any model has to beat.

They expose the same ``colorize_images(images, size=None, **options)`` as
``chromalab.inference.colorizer.Colorizer``, so the evaluation loop scores them the same way.

- ``gray``: returns its input unchanged (no color added). Its scores are what "doing
  nothing" earns: colorfulness 0, ΔL* 0.
- ``mean-ab``: gives every pixel the same chroma, the mean a*b* of the training photos
  (``TRAIN_MEAN_AB``), on the input's own L*: a uniform warm tint. It shows how much of a
  score comes from merely adding the average photo's cast — a model should beat it clearly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from rich.progress import track

from chromalab.color import float_to_uint8, lab_to_rgb, rgb_to_lab
from chromalab.inference.fullres import full_resolution_lightness

# Mean a*, b* over every pixel of /work/shared/data/train (9,505 photos, decoded small),
# measured with ``mean_ab_of``: (1.83, 5.12) — see docs/evaluation.md.
TRAIN_MEAN_AB: tuple[float, float] = (1.8, 5.1)


class GrayBaseline:
    """Adds no color: the output is the gray input itself (with color points: the points'
    colors spread by propagation over the gray, which shows what a model adds to them)."""

    name = "gray"

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None,
                        points: Sequence[Sequence[Any] | None] | None = None, **_: Any) -> list[Image.Image]:
        if points is not None:
            return _with_constant_ab(images, (0.0, 0.0), points)
        return [image.convert("RGB").copy() for image in images]


class ConstantAbBaseline:
    """Every pixel gets the same a*b* (Lab units) on the input's own lightness."""

    def __init__(self, ab: tuple[float, float] = TRAIN_MEAN_AB, name: str = "mean-ab") -> None:
        self.ab = ab
        self.name = name

    def colorize_images(self, images: Sequence[Image.Image], size: int | None = None,
                        points: Sequence[Sequence[Any] | None] | None = None, **_: Any) -> list[Image.Image]:
        if points is not None:
            return _with_constant_ab(images, self.ab, points)
        results = []
        for image in images:
            lightness = full_resolution_lightness(image)
            ab = torch.tensor(self.ab, dtype=lightness.dtype).view(1, 2, 1, 1).expand(1, 2, *lightness.shape[-2:])
            rgb = float_to_uint8(lab_to_rgb(torch.cat([lightness, ab], dim=1)))
            results.append(Image.fromarray(rgb[0].permute(1, 2, 0).numpy()))
        return results


def _with_constant_ab(images: Sequence[Image.Image], ab: tuple[float, float],
                      points: Sequence[Sequence[Any] | None]) -> list[Image.Image]:
    """A constant a*b* corrected by each photo's color points, merged under the photo's L*."""
    from chromalab.color import AB_SCALE
    from chromalab.inference.colorizer import Colorizer, per_photo_points, with_points

    constant = torch.tensor(ab, dtype=torch.float32).view(2, 1, 1) / AB_SCALE
    return [Colorizer.merge(image, with_points(image, constant, chosen))
            for image, chosen in zip(images, per_photo_points(images, points))]


BASELINES = {"gray": GrayBaseline, "mean-ab": ConstantAbBaseline}


def make_baselines(names: Sequence[str] = tuple(BASELINES)) -> dict[str, Any]:
    return {name: BASELINES[name]() for name in names}


def mean_ab_of(paths: Sequence[Path], draft_size: int = 64) -> tuple[float, float]:
    """Pixel-weighted mean a*, b* of photos (small decodes: the mean hardly depends on size)."""
    from chromalab.data.images import BadImageError, open_rgb

    total = np.zeros(2)
    pixels = 0
    for path in track(paths, description="mean a*b*"):
        try:
            image = open_rgb(path, draft_size=draft_size)
        except BadImageError:
            continue
        image.thumbnail((draft_size * 2, draft_size * 2))
        rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
        ab = rgb_to_lab(rgb)[0, 1:]
        total += ab.flatten(1).sum(dim=1).double().numpy()
        pixels += ab.shape[1] * ab.shape[2]
    mean = total / max(pixels, 1)
    return float(mean[0]), float(mean[1])
