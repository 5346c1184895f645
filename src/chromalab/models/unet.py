"""The pix2pix U-Net generator: L -> chroma, with skip connections at every scale."""

from __future__ import annotations

import torch
from torch import nn

from chromalab.models.attention import make_attention
from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import DownBlock, UpBlock, pad_to_multiple
from chromalab.models.registry import register_model


class UNet(ColorizationNet):
    """Encoder of ``depth`` stride-2 steps (width doubling up to ``max_width``), mirrored decoder.

    ``dropout`` applies to the innermost decoder steps, as in pix2pix (where it is also the
    only source of noise); ``norm`` is batch, instance, group or none. Inputs of any size are
    reflect-padded to a multiple of 2**depth and cropped back.

    ``attention="criss-cross"`` follows every decoder step of at most
    ``attention_max_channels`` channels with a Criss-Cross Attention block (zero-gated, so
    the network starts out exactly as without it).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        depth: int = 5,
        width: int = 32,
        max_width: int = 256,
        dropout: float = 0.0,
        dropout_layers: int = 2,
        norm: str = "batch",
        attention: str | None = None,
        attention_max_channels: int = 128,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("U-Net depth must be at least 1")
        self.out_channels = out_channels
        self.depth = depth
        widths = [min(width * 2**i, max_width) for i in range(depth)]
        self.encoder = nn.ModuleList(
            DownBlock(in_channels if i == 0 else widths[i - 1], widths[i], norm, first=i == 0)
            for i in range(depth)
        )
        decoder = []
        for i in reversed(range(depth)):
            # The innermost block sees only the bottleneck; the others also their skip.
            cin = widths[i] if i == depth - 1 else widths[i] * 2
            cout = widths[i - 1] if i > 0 else width
            inner = depth - 1 - i
            decoder.append(UpBlock(cin, cout, norm, dropout if inner < dropout_layers else 0.0))
        self.decoder = nn.ModuleList(decoder)
        # Identity (no weights) where no attention is wanted: the default state dict is unchanged.
        self.attention = nn.ModuleList(
            make_attention(attention if step.conv.out_channels <= attention_max_channels else None,
                           step.conv.out_channels)
            for step in decoder
        )
        self.head = nn.Sequential(
            nn.Conv2d(width + in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1),
            nn.Tanh(),
        )

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x, (height, width) = pad_to_multiple(l_norm, 2**self.depth)
        skips = []
        h = x
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        h = skips.pop()
        for block, attend in zip(self.decoder, self.attention):
            h = attend(block(h))
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)
        out = self.head(torch.cat([h, x], dim=1))
        return out[..., :height, :width]


@register_model("unet", "pix2pix U-Net generator (L -> ab), trained from scratch")
def unet(**kwargs: object) -> UNet:
    return UNet(**kwargs)  # type: ignore[arg-type]


@register_model("unet-tiny", "a small U-Net (depth 4, width 16) for tests and quick demos")
def unet_tiny(**kwargs: object) -> UNet:
    options = {"depth": 4, "width": 16, "max_width": 64} | kwargs
    return UNet(**options)  # type: ignore[arg-type]
