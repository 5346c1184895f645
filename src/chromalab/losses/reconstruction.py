"""The reconstruction objective every generator shares: pixel loss (+ optional perceptual).

The pixel loss is computed in the model's own color space by default, or with
``loss.space = rgb`` after a differentiable conversion of both prediction and target to sRGB
(so errors weigh as they look, not as the chroma coordinates count them).
"""

from __future__ import annotations

import torch
from torch import nn

from chromalab.color import ColorSpace
from chromalab.losses.pixel import make_pixel_loss
from chromalab.precision import full_precision
from chromalab.training.config import LossConfig


class ReconstructionLoss(nn.Module):
    def __init__(self, config: LossConfig, space: ColorSpace) -> None:
        super().__init__()
        self.config = config
        self.space = space
        self.pixel = make_pixel_loss(config.pixel, config.huber_delta)
        if config.space not in ("native", "rgb"):
            raise ValueError(f"loss.space must be native or rgb, not {config.space!r}")
        self.perceptual: nn.Module | None = None
        if config.perceptual:
            from chromalab.losses.perceptual import make_perceptual_loss

            self.perceptual = make_perceptual_loss(config.perceptual)

    @full_precision  # a bf16 network's output is compared in fp32
    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, l_norm: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Loss terms; ``total`` is what to minimize."""
        terms: dict[str, torch.Tensor] = {}
        needs_rgb = self.config.space == "rgb" or self.perceptual is not None
        if needs_rgb:
            rgb_pred = self.space.to_rgb(l_norm, prediction)
            rgb_true = self.space.to_rgb(l_norm, target)
        if self.config.space == "rgb":
            terms["pixel"] = self.pixel(rgb_pred, rgb_true)
        else:
            terms["pixel"] = self.pixel(prediction, target)
        total = terms["pixel"]
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(rgb_pred, rgb_true)
            total = total + self.config.perceptual_weight * terms["perceptual"]
        terms["total"] = total
        return terms
