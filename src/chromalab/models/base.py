"""The contract every colorization network follows (plain nn.Module; no Lightning, no files).

Input: normalized L* (B, 1, H, W) in [-1, 1] (see chromalab.color). Output of ``forward``:
whatever the model's training objective needs. Output of ``predict``: the colors, in the
normalized target units of the model's color space, (B, out_channels, H, W).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ColorizationNet(nn.Module):
    out_channels: int = 2

    def predict(self, l_norm: torch.Tensor, **options: Any) -> torch.Tensor:
        """Colors for a batch of L. Stochastic models accept options (e.g. a generator)."""
        return self(l_norm)
