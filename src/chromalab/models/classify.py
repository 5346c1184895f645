"""Colorization as classification over quantized a*b* (Zhang, Isola & Efros, ECCV 2016).

The a*b* plane is cut into 10x10 cells; the cells that sRGB colors can reach are the classes.
The network predicts a distribution over them for every pixel (at 1/4 resolution; chroma is
smooth), trained with soft-encoded, class-rebalanced cross-entropy
(chromalab.training.classification). Colors are decoded by the *annealed mean*: the mean of
the distribution sharpened with a temperature T (0.38 in the paper), between the mean (T=1,
safe but desaturated) and the mode (T->0, vivid but spatially noisy).

The paper keeps Q = 313 cells; its exact gamut test is not published with the table. Here the
set is measured: a cell is kept when the a*b* of at least one sRGB color (the whole cube,
every L*) rounds into it, which gives Q = 261 cells (``measure_gamut_cells`` reproduces it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chromalab.color import AB_SCALE
from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import DownBlock, UpBlock, make_norm, pad_to_multiple
from chromalab.models.registry import register_model

GRID = 10.0  # cell size in a*b* units; cell k covers [10k - 5, 10k + 5)

# The sRGB gamut on the 10-unit grid: a* / 10 -> (lowest, highest) b* / 10 of its kept cells
# (every row is contiguous). Produced by ``measure_gamut_cells(step=1)``; 261 cells.
GAMUT_ROWS: dict[int, tuple[int, int]] = {
    -9: (8, 8), -8: (4, 8), -7: (2, 9), -6: (0, 9), -5: (-2, 9), -4: (-3, 9), -3: (-4, 9),
    -2: (-4, 9), -1: (-5, 9), 0: (-6, 9), 1: (-7, 8), 2: (-7, 8), 3: (-8, 8), 4: (-9, 8),
    5: (-9, 7), 6: (-10, 7), 7: (-11, 7), 8: (-11, 7), 9: (-9, 0), 10: (-7, -5),
}


def measure_gamut_cells(step: int = 1) -> set[tuple[int, int]]:
    """The grid cells (a*/10, b*/10, rounded) reached by sRGB colors sampled every ``step`` levels.

    ``step=1`` tests all 2**24 colors (seconds to a minute on a CPU) and gives GAMUT_ROWS;
    coarser steps find a subset of it.
    """
    from chromalab.color import rgb_to_lab

    levels = torch.arange(0, 256, step, dtype=torch.float32)
    levels = torch.unique(torch.cat([levels, torch.tensor([255.0])])) / 255.0
    green, blue = torch.meshgrid(levels, levels, indexing="ij")
    cells: set[tuple[int, int]] = set()
    for red in levels:  # one slice of the cube at a time keeps memory small
        rgb = torch.stack([torch.full_like(green, float(red)), green, blue]).unsqueeze(0)
        ab = rgb_to_lab(rgb)[0, 1:].reshape(2, -1)
        cells.update(map(tuple, torch.round(ab / GRID).long().T.unique(dim=0).tolist()))
    return cells


@lru_cache(maxsize=1)
def _centers() -> torch.Tensor:
    cells = [(a, b) for a, (low, high) in sorted(GAMUT_ROWS.items()) for b in range(low, high + 1)]
    return torch.tensor(cells, dtype=torch.float32) * GRID


def bin_centers() -> torch.Tensor:
    """(Q, 2) a*b* of the cell centers, in Lab units."""
    return _centers().clone()


NUM_BINS = len(_centers())


def pairwise_sq_distances(ab: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) a*b* and (Q, 2) centers -> (B, H, W, Q) squared distances (Lab units)."""
    points = ab.permute(0, 2, 3, 1)  # (B, H, W, 2)
    centers = centers.to(ab)
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2: one matrix product instead of a (..., Q, 2) tensor.
    distances = points.square().sum(-1, keepdim=True) - 2.0 * points @ centers.T + centers.square().sum(-1)
    return distances.clamp_min(0.0)


def nearest_bin(ab: torch.Tensor, centers: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """(B, 2, H, W) a*b* in Lab units -> (B, H, W) index of the nearest cell center.

    Works through the pixels ``chunk`` at a time to bound the (pixels, Q) distance memory.
    """
    batch, _, height, width = ab.shape
    points = ab.permute(0, 2, 3, 1).reshape(-1, 1, 1, 2).permute(0, 3, 1, 2)  # (N, 2, 1, 1)
    index = [pairwise_sq_distances(part, centers).argmin(-1) for part in points.split(chunk)]
    return torch.cat(index).reshape(batch, height, width)


def soft_encode(ab: torch.Tensor, centers: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Zhang et al.'s soft target: the ``neighbours`` nearest cells, Gaussian-weighted.

    (B, 2, H, W) a*b* in Lab units -> (B, Q, H, W) distributions (each pixel sums to 1).
    """
    distances = pairwise_sq_distances(ab, centers)
    nearest, index = distances.topk(neighbours, dim=-1, largest=False)
    weights = torch.softmax(-nearest / (2.0 * sigma**2), dim=-1)  # = normalized Gaussian
    target = torch.zeros_like(distances).scatter_(-1, index, weights)
    return target.permute(0, 3, 1, 2)


def annealed_mean(logits: torch.Tensor, centers: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """(B, Q, h, w) logits -> (B, 2, h, w) a*b* in Lab units.

    softmax(logits / T) is the paper's re-normalized exp(log z / T). T = 0 returns the mode.
    """
    if temperature <= 0:
        return centers.to(logits)[logits.argmax(1)].permute(0, 3, 1, 2)
    probabilities = torch.softmax(logits / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", probabilities, centers.to(logits))


def logits_head(cin: int, width: int, norm: str) -> nn.Sequential:
    """3x3 conv-norm-ReLU, then a 1x1 conv to the Q cell logits."""
    return nn.Sequential(
        nn.Conv2d(cin, width, 3, padding=1, bias=False), make_norm(norm, width), nn.ReLU(inplace=True),
        nn.Conv2d(width, NUM_BINS, 1),
    )


class BinClassifierNet(ColorizationNet):
    """Shared by the classification models: ``forward`` gives Q logits per pixel at a reduced
    resolution, ``predict`` decodes them by the annealed mean and upsamples to the input.

    Subclasses set ``depth`` (the input must be a multiple of 2**depth for ``forward``); the
    base holds the decoding temperature and the cell centers. Decoding is deterministic (one
    pass, fixed T), so it exports to ONNX.
    """

    depth: int
    traceable_predict = True  # predict() without options is one deterministic pass

    def __init__(self, out_channels: int, temperature: float) -> None:
        super().__init__()
        if out_channels != 2:
            raise ValueError("the classification model predicts a*b*: train it in the lab color space")
        self.out_channels = out_channels
        self.temperature = temperature
        self.register_buffer("centers", bin_centers(), persistent=False)

    @torch.no_grad()
    def predict(self, l_norm: torch.Tensor, temperature: float | None = None, **options: Any) -> torch.Tensor:
        padded, (height, width) = pad_to_multiple(l_norm, 2**self.depth)
        logits = self(padded)
        ab = annealed_mean(logits, self.centers, self.temperature if temperature is None else temperature)
        ab = F.interpolate(ab, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return (ab / AB_SCALE)[..., :height, :width]


class ClassificationColorizer(BinClassifierNet):
    """Encoder to 1/16 resolution, decoder with skips back to 1/4, Q logits per pixel there.

    ``forward`` gives the logits at 1/4 resolution (what the loss needs); ``predict`` decodes
    them to normalized a*b* (2 channels) at the input's resolution.
    """

    def __init__(
        self,
        out_channels: int = 2,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        norm: str = "batch",
        temperature: float = 0.38,
    ) -> None:
        super().__init__(out_channels, temperature)
        if len(widths) < 3:
            raise ValueError("the classification model needs at least 3 encoder widths")
        widths = tuple(int(w) for w in widths)
        self.depth = len(widths)
        self.encoder = nn.ModuleList(
            DownBlock(1 if i == 0 else widths[i - 1], widths[i], norm, first=i == 0) for i in range(self.depth)
        )
        # Up from the bottleneck to stride 4 (encoder output index 1), concatenating skips.
        decoder = []
        cin = widths[-1]
        for i in range(self.depth - 2, 0, -1):
            decoder.append(UpBlock(cin, widths[i], norm))
            cin = widths[i] * 2
        self.decoder = nn.ModuleList(decoder)
        self.head = logits_head(cin, widths[1], norm)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) with H, W multiples of 2**depth -> (B, Q, H/4, W/4) logits."""
        skips = []
        h = l_norm
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.decoder:
            h = torch.cat([block(h), skips.pop()], dim=1)
        return self.head(h)


@register_model(
    "classify",
    "Zhang et al. 2016: per-pixel classification over quantized ab, rebalanced, annealed-mean decoding",
    objective="classification",
)
def classify(**kwargs: Any) -> ClassificationColorizer:
    return ClassificationColorizer(**kwargs)
