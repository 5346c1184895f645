"""Color points as a point-guided network's input: (a, b, mask) at the network's size.

The network sees the photo squashed to ``size`` x ``size`` (chromalab.inference.fullres
.model_input), so a point at photo pixel (x, y) lands on the network's pixel
((x + 0.5) * size / width - 0.5, ...). Each point is a square of the network's pixels (3 x 3
by default: the middle of the 1-9 px squares it was trained with; a point's radius, in photo
pixels, sets its own), filled with the point's a*b* normalized like the targets.
"""

from __future__ import annotations

from typing import Sequence

import torch

from chromalab.color import AB_SCALE
from chromalab.inference.points import ColorPoint
from chromalab.models.guided import MAX_SIDE

DEFAULT_SIDE = 3


def points_to_hints(point_sets: Sequence[Sequence[ColorPoint]], photo_sizes: Sequence[tuple[int, int]],
                    size: int) -> torch.Tensor:
    """(B, 3, size, size) hints for each photo's points (``photo_sizes``: (width, height))."""
    hints = torch.zeros(len(point_sets), 3, size, size)
    for index, (points, (width, height)) in enumerate(zip(point_sets, photo_sizes)):
        sx, sy = size / width, size / height
        for point in points:
            side = DEFAULT_SIDE
            if point.radius is not None:
                side = int(min(MAX_SIDE, max(1, round(2 * point.radius * min(sx, sy)) + 1)))
            cx, cy = (point.x + 0.5) * sx - 0.5, (point.y + 0.5) * sy - 0.5
            left = min(size - side, max(0, int(round(cx - (side - 1) / 2))))
            top = min(size - side, max(0, int(round(cy - (side - 1) / 2))))
            a, b = point.ab
            hints[index, 0, top:top + side, left:left + side] = a / AB_SCALE
            hints[index, 1, top:top + side, left:left + side] = b / AB_SCALE
            hints[index, 2, top:top + side, left:left + side] = 1.0
    return hints
