"""Edge-aware chroma smoothing: the network's a*b* filtered with the photo's own L* as the guide.

A colorizer trained with L1 on a CPU budget paints blotches: small patches of a wrong hue, and
color that bleeds a few pixels past an edge (its a*b* come out at half its input size). Both
cost more on FID than the caution of a desaturated prediction does (docs/scene-corpus.md
measures it: the truth's chroma halved scores far better than the model's). A guided filter
(He, Sun and Tang, 2010) averages a*b* over a window wherever L* is flat and keeps the average
locally linear in L* across edges: blotches inside a region are evened out, a color edge that
L* shows stays sharp, and color leaking past an edge is reduced where it is strongest.

It runs on a small working grid (``work_size``, twice the network's input by default) with the
photo's L* squashed to that grid, before a*b* are upsampled to the photo's size; so it costs
the same for a thumbnail and for a 24-MP scan. The window means come from integral images
(running sums), so the cost does not grow with the radius. Written here rather than
taken from kornia: kornia's ``guided_blur`` (the reference in the tests: same output within
1e-5) filters by direct convolution, 117 ms per 256-px photo at a 17-px window on this 2-core
CPU, which would have made the filter cost more than the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from chromalab.errors import ChromalabError


@dataclass(frozen=True)
class ChromaSmoothing:
    """Guided-filter settings: ``radius`` as a fraction of the working grid's side, ``eps``
    the regularizer in units of (L*/100)^2: windows whose L* varies less than sqrt(eps) * 100
    are averaged flat, those with more keep their edges."""

    radius: float = 1 / 32
    eps: float = 1e-3
    scale: int = 2  # working grid = scale x the network's input side

    def __post_init__(self) -> None:
        if not (0 < self.radius <= 0.5):
            raise ChromalabError(f"chroma smoothing radius {self.radius}: must be in (0, 0.5] of the side")
        if not (self.eps > 0):
            raise ChromalabError(f"chroma smoothing eps {self.eps}: must be positive")
        if self.scale < 1:
            raise ChromalabError(f"chroma smoothing scale {self.scale}: must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {"radius": self.radius, "eps": self.eps, "scale": self.scale}

    @classmethod
    def from_spec(cls, value: Any) -> "ChromaSmoothing | None":
        """The setting a model file stores (``spec.extra["chroma_smoothing"]``); None: off."""
        if not value:
            return None
        if not isinstance(value, dict):
            raise ChromalabError(f"chroma_smoothing in the model's spec must be a mapping, not {value!r}")
        return cls(**value)

    def work_size(self, model_size: int) -> int:
        return model_size * self.scale

    def kernel_size(self, work_size: int) -> int:
        return 2 * max(1, round(self.radius * work_size)) + 1

    def __call__(self, l_guide_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        """Normalized L* guide (B, 1, S, S) in [-1, 1] and normalized a*b* (B, 2, h, w) ->
        smoothed a*b* (B, 2, S, S) on the guide's grid."""
        size = l_guide_norm.shape[-2:]
        ab = ab_norm.float()
        if ab.shape[-2:] != size:
            ab = F.interpolate(ab, size=size, mode="bilinear", align_corners=False)
        guide = (l_guide_norm.float() + 1.0) / 2.0  # L*/100: eps is in these units
        return guided_filter(guide, ab, self.kernel_size(size[-1]) // 2, self.eps)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel, borders mirrored (reflect, as kornia and
    OpenCV's default), from running sums: a few operations per pixel whatever the radius. The
    sums run along one axis at a time (rows, then the row sums down the columns) so that float32
    keeps them exact to ~1e-6: one 2-D table over a 256-px grid would lose ~4e-3 of its sums,
    which ruins var(L*) in small windows."""
    height, width = x.shape[-2:]
    if radius >= min(height, width):
        raise ChromalabError(f"chroma smoothing window {2 * radius + 1} px: larger than the {height}x{width} grid")
    k = 2 * radius + 1
    padded = F.pad(x, [radius, radius, radius, radius], mode="reflect")
    zeros = padded.new_zeros(*padded.shape[:-1], 1)
    running = torch.cat([zeros, padded], dim=-1).cumsum(-1)
    rows = running[..., k:] - running[..., :-k]  # (.., H + 2r, W): sums over k columns
    zeros = rows.new_zeros(*rows.shape[:-2], 1, rows.shape[-1])
    running = torch.cat([zeros, rows], dim=-2).cumsum(-2)
    return (running[..., k:, :] - running[..., :-k, :]) / (k * k)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter with a one-channel guide (B, 1, H, W) on each channel of src.
    The window means of all channels are taken in one pass (fewer, larger tensor operations)."""
    channels = src.shape[1]
    means = box_mean(torch.cat([guide, guide * guide, src, guide * src], dim=1), radius)
    mean_i, mean_ii = means[:, :1], means[:, 1:2]
    mean_p, mean_ip = means[:, 2 : 2 + channels], means[:, 2 + channels :]
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    coefficients = box_mean(torch.cat([a, b], dim=1), radius)
    return coefficients[:, :channels] * guide + coefficients[:, channels:]


def parse_smoothing(text: str, option: str = "--smoothing") -> ChromaSmoothing | None:
    """'RADIUS,EPS' -> the setting; 'off' -> None (as the command-line flags write it)."""
    if text == "off":
        return None
    try:
        radius, eps = (float(part) for part in text.split(","))
    except ValueError:
        raise ChromalabError(f"{option} {text!r}: expected RADIUS,EPS (e.g. 0.0625,0.001) or off") from None
    return ChromaSmoothing(radius=radius, eps=eps)
