"""Color points drawn from the truth, as a user who knows the colors would click them.

The protocol of ``chromalab evaluate --points N``: N positions uniform over the photo, each
point the truth's mean color over the 3x3 pixels around it (clipped at the border), seeded
per photo by its name so that every model sees the same points, whatever the batch or the
order. The first N points of a photo are the same for every N (the sets are nested), so a
curve over N adds points instead of drawing new ones.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from chromalab.inference.points import ColorPoint, rgb_to_hex

POINT_SEED = 2017  # Zhang et al.'s year; any fixed number will do


def photo_rng(path: str | Path, seed: int = POINT_SEED) -> np.random.Generator:
    """A generator for one photo, from its file name and ``seed`` (not from Python's hash)."""
    return np.random.default_rng([seed, zlib.crc32(Path(path).name.encode("utf-8"))])


def simulate_points(truth: Image.Image, count: int, rng: np.random.Generator) -> list[ColorPoint]:
    """``count`` points on ``truth`` (an RGB photo), positions uniform, colors its 3x3 means."""
    pixels = np.asarray(truth.convert("RGB"), dtype=np.float32)
    height, width = pixels.shape[:2]
    points = []
    for _ in range(count):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        patch = pixels[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
        points.append(ColorPoint(float(x), float(y), rgb_to_hex(patch.reshape(-1, 3).mean(axis=0))))
    return points
