"""Per-pixel regression losses: L1, L2, Huber and L1+L2, registered by name (``loss.pixel``)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from chromalab.registry import Registry

PixelLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Each entry makes the loss from ``huber_delta`` (only Huber uses it).
PIXEL_LOSS_REGISTRY: Registry[Callable[[float], PixelLoss]] = Registry("pixel loss")


def l1_l2_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(prediction, target) + F.mse_loss(prediction, target)


PIXEL_LOSS_REGISTRY.add("l1", lambda delta: F.l1_loss, "mean absolute error: sharp, muted colors")
PIXEL_LOSS_REGISTRY.add("l2", lambda delta: F.mse_loss, "mean squared error: averages uncertain colors to gray",
                        aliases=("mse",))
PIXEL_LOSS_REGISTRY.add(
    "huber", lambda delta: lambda prediction, target: F.huber_loss(prediction, target, delta=delta),
    "L2 within huber_delta, L1 beyond: robust to outlier pixels",
)
PIXEL_LOSS_REGISTRY.add("l1+l2", lambda delta: l1_l2_loss, "the sum of L1 and L2", aliases=("l1l2",))

PIXEL_LOSSES = PIXEL_LOSS_REGISTRY.names()


def make_pixel_loss(name: str, huber_delta: float = 1.0) -> PixelLoss:
    """'l1', 'l2' (= 'mse'), 'huber' (with ``huber_delta`` in normalized units) or 'l1+l2'."""
    return PIXEL_LOSS_REGISTRY.get(name)(huber_delta)
