"""The pix2pix / CycleGAN ResNet generator (Johnson et al. style): L -> colors.

7x7 stem, two stride-2 downsamplings, ``blocks`` residual blocks at a quarter of the
resolution, two x2 upsamplings, 7x7 head and tanh. Six blocks suit photos up to ~128 px,
nine the 256 px of the original papers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chromalab.models.base import ColorizationNet
from chromalab.models.blocks import make_norm, pad_to_multiple
from chromalab.models.registry import register_model


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convolutions with normalization; x + F(x)."""

    def __init__(self, channels: int, norm: str, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=norm == "none"),
            make_norm(norm, channels), nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=norm == "none"),
            make_norm(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """x2 upsampling: bilinear + 3x3 conv (no checkerboards) or a 3x3 transposed convolution."""

    def __init__(self, cin: int, cout: int, norm: str, mode: str) -> None:
        super().__init__()
        if mode not in ("bilinear", "transposed"):
            raise ValueError(f"unknown upsampling {mode!r}; use bilinear or transposed")
        self.mode = mode
        if mode == "transposed":
            self.conv: nn.Module = nn.ConvTranspose2d(
                cin, cout, 3, stride=2, padding=1, output_padding=1, bias=norm == "none"
            )
        else:
            self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none")
        self.post = nn.Sequential(make_norm(norm, cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "bilinear":
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.post(self.conv(x))


class ResNetGenerator(ColorizationNet):
    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        width: int = 32,
        blocks: int = 6,
        norm: str = "instance",
        dropout: float = 0.0,
        upsample: str = "bilinear",
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        bias = norm == "none"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7, bias=bias),
            make_norm(norm, width), nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(width * mult, width * mult * 2, 3, stride=2, padding=1, bias=bias),
                make_norm(norm, width * mult * 2), nn.ReLU(inplace=True),
            ]
        layers += [ResidualBlock(width * 4, norm, dropout) for _ in range(blocks)]
        layers += [Upsample(width * 4, width * 2, norm, upsample), Upsample(width * 2, width, norm, upsample)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        # Two stride-2 steps: pad to a multiple of 4 so the decoder lands on the input size.
        x, (height, width) = pad_to_multiple(l_norm, 4)
        return self.body(x)[..., :height, :width]


@register_model("resnet", "pix2pix/CycleGAN ResNet-block generator (L -> ab)")
def resnet(**kwargs: object) -> ResNetGenerator:
    return ResNetGenerator(**kwargs)  # type: ignore[arg-type]
