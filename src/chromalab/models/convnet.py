"""A plain encoder-decoder CNN that predicts RGB directly from gray: the simplest baseline.

No skip connections and no chroma space: it has to carry the whole photo through its
bottleneck and re-create lightness as well as color, which is exactly what the comparison
with the U-Net (skips) and the Lab models (lightness given) is meant to show.
"""

from __future__ import annotations

import torch
from torch import nn

from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import UpBlock, make_norm, pad_to_multiple
from chromalab.models.registry import register_model


def conv_norm_relu(cin: int, cout: int, norm: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=norm == "none"),
        make_norm(norm, cout),
        nn.ReLU(inplace=True),
    )


class ConvNet(ColorizationNet):
    """``depth`` stride-2 stages (two 3x3 convolutions each), a mirrored upsampling decoder, tanh."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        depth: int = 3,
        width: int = 32,
        max_width: int = 128,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("ConvNet depth must be at least 1")
        self.out_channels = out_channels
        self.depth = depth
        widths = [min(width * 2 ** (i + 1), max_width) for i in range(depth)]
        layers: list[nn.Module] = [conv_norm_relu(in_channels, width, norm)]
        cin = width
        for cout in widths:
            layers += [conv_norm_relu(cin, cout, norm, stride=2), conv_norm_relu(cout, cout, norm)]
            cin = cout
        self.encoder = nn.Sequential(*layers)
        decoder: list[nn.Module] = []
        for cout in [*reversed(widths[:-1]), width]:
            decoder.append(UpBlock(cin, cout, norm))
            cin = cout
        self.decoder = nn.Sequential(*decoder)
        self.head = nn.Sequential(nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x, (height, width) = pad_to_multiple(l_norm, 2**self.depth)
        out = self.head(self.decoder(self.encoder(x)))
        return out[..., :height, :width]


@register_model("convnet", "plain encoder-decoder CNN, gray -> RGB directly (baseline)", color_space="rgb")
def convnet(**kwargs: object) -> ConvNet:
    return ConvNet(**kwargs)  # type: ignore[arg-type]
