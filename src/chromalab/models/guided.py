"""Point-guided colorization (Zhang et al. 2017, "Real-Time User-Guided Image Colorization with
Learned Deep Priors"): the effunet plus the user's color points as input.

The hints are the points' a*b* (normalized like the targets) and a mask, at the network's input
size: ``(B, 3, H, W)`` = (a, b, mask), zero where there is no point. They enter as *adapters*
beside a frozen ``effunet`` — the way ControlNet adds a condition to a trained network: at every
decoder scale a small branch sees the decoder's features (what the network knows about the
photo there) and the hints pooled to that scale (mask-weighted, so a point keeps its color at
any scale), plus the mean hint color over the whole photo, and adds its output to the features.
Each branch ends in a zero-initialized 1x1 convolution without bias, so the network starts
exactly where the ``effunet`` it is built on is; and a photo without points skips the branches,
so without points it *is* that ``effunet``, bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from chromalab.models.blocks import pad_to_multiple
from chromalab.models.effunet import EffUNet, LiteEncoder
from chromalab.models.registry import register_model

HINT_CHANNELS = 3  # a*, b* (normalized), mask
MAX_SIDE = 9  # training points are squares of 1 to MAX_SIDE pixels a side (training.guided)


def pool_hints(hints: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Hints averaged to ``size`` by mask weight: (a, b) the points' mean color in each cell,
    the mask the fraction of the cell they cover."""
    ab, mask = hints[:, :2], hints[:, 2:]
    covered = F.adaptive_avg_pool2d(mask, size)
    color = F.adaptive_avg_pool2d(ab * mask, size) / covered.clamp_min(1e-6)
    return torch.cat([color, covered.clamp_max(1.0)], dim=1)


def global_hint(hints: torch.Tensor) -> torch.Tensor:
    """(B, 3, 1, 1): the points' mean color over the photo, and whether there are any."""
    ab, mask = hints[:, :2], hints[:, 2:]
    total = mask.sum(dim=(2, 3), keepdim=True)
    color = (ab * mask).sum(dim=(2, 3), keepdim=True) / total.clamp_min(1e-6)
    return torch.cat([color, (total > 0).to(hints.dtype)], dim=1)


class HintAdapter(nn.Module):
    """Features + local and global hints -> a correction of the features (zero at the start)."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels + 2 * HINT_CHANNELS, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(width, channels, 1, bias=False)
        nn.init.zeros_(self.out.weight)  # the trained effunet's output, exactly, at the start

    def forward(self, features: torch.Tensor, hints: torch.Tensor) -> torch.Tensor:
        """The correction to add to ``features``."""
        size = features.shape[-2:]
        local = pool_hints(hints, size)
        overall = global_hint(hints).expand(-1, -1, *size)
        return self.out(self.body(torch.cat([features, local, overall], dim=1)))


class GuidedEffUNet(EffUNet):
    """``effunet`` + hint adapters after every decoder step and before the head."""

    takes_points = True  # the Colorizer passes color points as hints

    def __init__(self, adapter_width: int = 32, train_base: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        widths = [step.body[0].out_channels for step in self.decoder]
        self.adapters = nn.ModuleList(HintAdapter(width, adapter_width) for width in widths)
        self.train_base = train_base
        if not train_base:  # only the adapters learn; the effunet (BatchNorm statistics too) is kept
            for name, parameter in self.named_parameters():
                parameter.requires_grad_(name.startswith("adapters."))

    def train(self, mode: bool = True) -> "GuidedEffUNet":
        super().train(mode)
        if mode and not self.train_base:  # frozen BatchNorm: the base keeps its statistics
            self.encoder.eval()
            self.decoder.eval()
        return self

    def forward(self, l_norm: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        if self.training and not self.train_base and (self.encoder.training or self.decoder.training):
            # Lightning restores each module's own training flag after validation (and before
            # the first step), bypassing train() above: frozen means frozen, at every step.
            self.encoder.eval()
            self.decoder.eval()
        x, (height, width) = pad_to_multiple(l_norm, 32)
        # Photos without points skip the adapters (gate 0): the effunet's own output, bit for bit.
        gate = None
        if hints is not None:
            gate = (hints[:, 2:] > 0).flatten(1).any(dim=1).to(x.dtype).view(-1, 1, 1, 1)
            # Zeros, not reflections, beyond the photo: padding must not copy points.
            pad = (0, x.shape[-1] - width, 0, x.shape[-2] - height)
            hints = F.pad(hints, pad) if bool(gate.any()) else None
        *skips, h = self.encoder(x)
        for index, (step, skip) in enumerate(zip(self.decoder, reversed(skips))):
            h = step(h, skip)
            if hints is not None:
                h = h + gate * self.adapters[index](h, hints)
        out = F.interpolate(self.head(h), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.tanh(out)[..., :height, :width]

    def predict(self, l_norm: torch.Tensor, hints: torch.Tensor | None = None, **options: object) -> torch.Tensor:
        return self(l_norm, hints)


@register_model(
    "effunet-guided", "effunet + user color points (Zhang et al. 2017): hint adapters beside a frozen effunet",
    objective="guided", pretrained=True,
)
def effunet_guided(**kwargs: object) -> GuidedEffUNet:
    return GuidedEffUNet(**kwargs)  # type: ignore[arg-type]


__all__ = ["GuidedEffUNet", "HintAdapter", "LiteEncoder", "global_hint", "pool_hints"]
