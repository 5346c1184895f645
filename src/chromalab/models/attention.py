"""Criss-Cross Attention (Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation").

Each pixel attends to the pixels in its own row and column (H + W - 1 of them) instead of all
H x W, so the cost is O(HW(H + W)) rather than O((HW)^2). Applied twice (the paper's
"recurrent" RCCA, R = 2) every pixel gathers context from the whole image: a colorizer can
then make a wall the same color on both sides of a lamp post.

Written by hand because no installed library ships the block. The output gain ``gamma``
starts at zero, so an inserted block is the identity at initialization and a pretrained or
freshly built network behaves exactly as without it until training opens the gate.
"""

from __future__ import annotations

import torch
from torch import nn


class CrissCrossAttention(nn.Module):
    """x + gamma * (criss-cross attention of x), applied ``recurrence`` times with shared weights."""

    def __init__(self, channels: int, reduction: int = 8, recurrence: int = 2) -> None:
        super().__init__()
        if recurrence < 1:
            raise ValueError("criss-cross recurrence must be at least 1")
        key_channels = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.recurrence = recurrence

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The criss-cross aggregation of ``x`` (without the residual), (B, C, H, W)."""
        height = x.shape[-2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        # energy over the column (g runs over rows) and over the row (u runs over columns)
        energy_col = torch.einsum("bchw,bcgw->bhwg", q, k)
        energy_row = torch.einsum("bchw,bchu->bhwu", q, k)
        # The pixel itself lies on both its row and its column: count it once (in the row).
        self_mask = torch.eye(height, dtype=torch.bool, device=x.device).unsqueeze(1)  # (h, 1, g)
        energy_col = energy_col.masked_fill(self_mask, float("-inf"))
        attention = torch.softmax(torch.cat([energy_col, energy_row], dim=-1), dim=-1)
        att_col, att_row = attention.split([height, x.shape[-1]], dim=-1)
        out_col = torch.einsum("bhwg,bcgw->bchw", att_col, v)
        out_row = torch.einsum("bhwu,bchu->bchw", att_row, v)
        return out_col + out_row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = x + self.gamma * self.attend(x)
        return x


def make_attention(kind: str | None, channels: int) -> nn.Module:
    """An attention block by name ('criss-cross'), or the identity for None / 'none'."""
    if kind in (None, "", "none"):
        return nn.Identity()
    if kind in ("criss-cross", "cca", "crisscross"):
        return CrissCrossAttention(channels)
    raise ValueError(f"unknown attention {kind!r}; use criss-cross or none")
