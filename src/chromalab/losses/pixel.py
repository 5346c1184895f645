"""Per-pixel regression losses: L1, L2, Huber and L1+L2."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

PixelLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1_l2_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(prediction, target) + F.mse_loss(prediction, target)


def make_pixel_loss(name: str, huber_delta: float = 1.0) -> PixelLoss:
    """'l1', 'l2' (= 'mse'), 'huber' (with ``huber_delta`` in normalized units) or 'l1+l2'."""
    name = name.lower()
    if name == "l1":
        return F.l1_loss
    if name in ("l2", "mse"):
        return F.mse_loss
    if name == "huber":
        return lambda prediction, target: F.huber_loss(prediction, target, delta=huber_delta)
    if name in ("l1+l2", "l1l2"):
        return l1_l2_loss
    raise ValueError(f"unknown pixel loss {name!r}; use l1, l2, huber or l1+l2")


PIXEL_LOSSES = ("l1", "l2", "huber", "l1+l2")
