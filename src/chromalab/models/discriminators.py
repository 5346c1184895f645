"""Discriminators for conditional GAN colorization (plain nn.Modules, their own registry).

Every discriminator sees the gray photo and a coloring of it: input = cat(L, colors), so
``in_channels`` = 1 + the channels of the color space trained in (2 for Lab/YCbCr/HSV, 3 for
RGB). It answers "is this coloring real?" at some granularity:

* ``patch``: the 70x70 PatchGAN of pix2pix, one logit per overlapping 70x70 patch;
* ``pixel``: the 1x1 PatchGAN (pix2pix's "PixelGAN"), one logit per pixel, color only;
* ``critic``: convolutions, global average pooling and a linear head, one score per image;
* ``multiscale``: three PatchGANs on the photo at full, 1/2 and 1/4 resolution (pix2pixHD);
* ``unet``: a U-Net discriminator (Schönfeld et al., CVPR 2020) that returns both its
  encoder's global score and a per-pixel map from its decoder.

A discriminator returns one tensor or a list of them (multiscale, unet); the GAN losses in
chromalab.losses.adversarial treat each output alike and average. These are deliberately not
in the generator registry: they are never colorizers and never go into a model file.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from chromalab.models.blocks import make_norm, pad_to_multiple
from chromalab.registry import Registry


def _conv(cin: int, cout: int, kernel: int, stride: int, padding: int, spectral: bool, bias: bool = True) -> nn.Module:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias)
    return apply_spectral_norm(conv) if spectral else conv


def _pad_to_min_size(x: torch.Tensor, min_size: int) -> torch.Tensor:
    """Replicate-pad photos smaller than a fixed-depth discriminator's smallest input."""
    pad_h, pad_w = max(0, min_size - x.shape[-2]), max(0, min_size - x.shape[-1])
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate")
    return x


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN: ``layers`` stride-2 4x4 convolutions, one stride-1, a 1-channel logit map.

    With ``layers=3`` each logit sees a 70x70 patch of the input. Batch norm as in pix2pix;
    use ``norm='instance'`` or ``'none'`` with WGAN-GP (the gradient penalty is per sample,
    which batch statistics would break) and ``spectral_norm=True`` for extra stability.
    """

    def __init__(
        self, in_channels: int, width: int = 64, layers: int = 3, norm: str = "batch",
        spectral_norm: bool = False, max_width: int = 512,
    ) -> None:
        super().__init__()
        bias = norm == "none"
        body: list[nn.Module] = [
            _conv(in_channels, width, 4, 2, 1, spectral_norm), nn.LeakyReLU(0.2, inplace=True),
        ]
        cin = width
        for i in range(1, layers + 1):
            cout = min(width * 2**i, max_width)
            stride = 2 if i < layers else 1
            body += [
                _conv(cin, cout, 4, stride, 1, spectral_norm, bias), make_norm(norm, cout),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = cout
        body.append(_conv(cin, 1, 4, 1, 1, spectral_norm))
        self.body = nn.Sequential(*body)
        # Each stride-2 step halves the size, each 4x4 stride-1 conv (padding 1) takes one off.
        self.min_size = 2**layers * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(_pad_to_min_size(x, self.min_size))


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel's color given its gray value only (no spatial context)."""

    def __init__(
        self, in_channels: int, width: int = 64, norm: str = "batch", spectral_norm: bool = False
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(in_channels, width, 1, 1, 0, spectral_norm), nn.LeakyReLU(0.2, inplace=True),
            _conv(width, width * 2, 1, 1, 0, spectral_norm, norm == "none"), make_norm(norm, width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            _conv(width * 2, 1, 1, 1, 0, spectral_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CriticDiscriminator(nn.Module):
    """Strided 3x3 convolutions, global average pooling, a linear head: one score per image.

    3x3 stride-2 convolutions with padding 1 map any size n >= 1 to ceil(n / 2) >= 1, and the
    adaptive pooling makes the head independent of the input size. No normalization by
    default, as a WGAN critic should have (layer norm is the paper's alternative).
    """

    def __init__(
        self, in_channels: int, width: int = 32, layers: int = 4, norm: str = "none",
        spectral_norm: bool = False, max_width: int = 256,
    ) -> None:
        super().__init__()
        body: list[nn.Module] = []
        cin = in_channels
        for i in range(layers):
            cout = min(width * 2**i, max_width)
            body += [
                _conv(cin, cout, 3, 2, 1, spectral_norm, norm == "none" or i == 0),
                make_norm(norm, cout) if i > 0 else nn.Identity(),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = cout
        self.body = nn.Sequential(*body)
        self.pool = nn.AdaptiveAvgPool2d(1)
        linear = nn.Linear(cin, 1)
        self.head = apply_spectral_norm(linear) if spectral_norm else linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x)).flatten(1))


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD: the same PatchGAN design at ``scales`` resolutions (each half the last).

    The full-resolution one judges texture, the coarsest the global color layout; each has
    its own weights. Returns one logit map per scale, finest first.
    """

    def __init__(self, in_channels: int, scales: int = 3, **patch_kwargs: Any) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, **patch_kwargs) for _ in range(scales)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


class _ResDown(nn.Module):
    """BigGAN-style residual block that halves the resolution (the U-Net D's encoder step)."""

    def __init__(self, cin: int, cout: int, spectral: bool, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = _conv(cin, cout, 3, 1, 1, spectral)
        self.conv2 = _conv(cout, cout, 3, 1, 1, spectral)
        self.skip = _conv(cin, cout, 1, 1, 0, spectral)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.leaky_relu(x, 0.2)
        h = self.conv2(F.leaky_relu(self.conv1(h), 0.2))
        return F.avg_pool2d(h, 2) + F.avg_pool2d(self.skip(x), 2)


class _ResUp(nn.Module):
    """Residual block that doubles the resolution (the U-Net D's decoder step)."""

    def __init__(self, cin: int, cout: int, spectral: bool) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, 1, 1, spectral)
        self.conv2 = _conv(cout, cout, 3, 1, 1, spectral)
        self.skip = _conv(cin, cout, 1, 1, 0, spectral)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        return h + self.skip(x)


class UNetDiscriminator(nn.Module):
    """U-Net discriminator (Schönfeld, Schiele, Khoreva 2020): [global score, per-pixel map].

    The encoder's bottleneck, summed over space and passed through a linear layer, gives one
    score per image (B, 1); the decoder, with skips from the encoder, gives a logit for every
    pixel (B, 1, H, W), so the generator gets feedback about *where* a coloring looks wrong.
    Spectral norm is on by default, as in the paper. (Its CutMix consistency regularizer is
    not implemented.)
    """

    def __init__(
        self, in_channels: int, width: int = 32, depth: int = 4, max_width: int = 256,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        widths = [min(width * 2**i, max_width) for i in range(depth)]
        self.depth = depth
        self.encoder = nn.ModuleList(
            _ResDown(in_channels if i == 0 else widths[i - 1], widths[i], spectral_norm, first=i == 0)
            for i in range(depth)
        )
        linear = nn.Linear(widths[-1], 1)
        self.global_head = apply_spectral_norm(linear) if spectral_norm else linear
        decoder = []
        for i in reversed(range(depth)):
            cin = widths[i] if i == depth - 1 else widths[i] * 2
            decoder.append(_ResUp(cin, widths[i - 1] if i > 0 else width, spectral_norm))
        self.decoder = nn.ModuleList(decoder)
        self.pixel_head = _conv(width, 1, 1, 1, 0, spectral_norm)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, (height, width) = pad_to_multiple(x, 2**self.depth)
        skips = []
        h = x
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        bottleneck = skips.pop()
        global_score = self.global_head(F.leaky_relu(bottleneck, 0.2).sum(dim=(2, 3)))
        h = bottleneck
        for block in self.decoder:
            h = block(h)
            if skips:
                h = torch.cat([h, skips.pop()], dim=1)
        pixel_map = self.pixel_head(F.leaky_relu(h, 0.2))[..., :height, :width]
        return [global_score, pixel_map]


DISCRIMINATOR_REGISTRY: Registry[Callable[..., nn.Module]] = Registry("discriminator")
DISCRIMINATOR_REGISTRY.add("patch", PatchDiscriminator, "70x70 PatchGAN (pix2pix)")
DISCRIMINATOR_REGISTRY.add("pixel", PixelDiscriminator, "1x1 PatchGAN: per-pixel color judgement")
DISCRIMINATOR_REGISTRY.add("critic", CriticDiscriminator, "convolutions + linear head: one score per image")
DISCRIMINATOR_REGISTRY.add("multiscale", MultiscaleDiscriminator, "three PatchGANs at 1, 1/2, 1/4 scale (pix2pixHD)")
DISCRIMINATOR_REGISTRY.add("unet", UNetDiscriminator, "U-Net discriminator: global score + per-pixel map")

DISCRIMINATORS = DISCRIMINATOR_REGISTRY.names()


def discriminator_descriptions() -> dict[str, str]:
    return DISCRIMINATOR_REGISTRY.descriptions()


def create_discriminator(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """A discriminator by name for inputs cat(L, colors) with ``in_channels`` channels."""
    return DISCRIMINATOR_REGISTRY.get(name)(in_channels, **kwargs)
