"""Training augmentation on whole batches (kornia): random resized crop and horizontal flip."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


def training_augmentation(size: int, min_scale: float = 0.5) -> nn.Module:
    """Random resized crop (area ``min_scale``..1, aspect 3/4..4/3) back to ``size``, and a flip.

    Applied to float RGB batches in [0, 1] before the color conversion, so L and ab always
    come from the same crop.
    """
    return K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(min_scale, 1.0), ratio=(3 / 4, 4 / 3)),
        K.RandomHorizontalFlip(),
    )


@torch.no_grad()
def augment(batch: torch.Tensor, pipeline: nn.Module) -> torch.Tensor:
    return pipeline(batch).clamp_(0.0, 1.0)
