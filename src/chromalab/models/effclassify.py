"""Zhang-style classification over a*b* cells on the ImageNet-pretrained EfficientNet-Lite0.

Why this pairing: an L1 regressor predicts the conditional *mean* colour, which for most
objects is a desaturated brown (the sepia cast that makes L1 models score a worse FID than no
colour at all). Classification with class rebalancing predicts a distribution instead, and its
annealed mean picks a plausible vivid colour; the pretrained encoder supplies the semantics
("sky", "grass", "skin") that the few thousand training photos cannot. Trained for the shipped
model and measured in chromalab/weights/MODEL_CARD.md (it colors as vividly as real photos, but
its FID on ImageNet photos is worse than the L1 model's, so it is not the default).

The encoder and the first three decoder steps have the same names and shapes as ``effunet``'s,
so a trained ``effunet`` (e.g. the L1 model) can start it (``--init-from``): only the head,
which predicts Q logits at stride 4 instead of a*b* at stride 2, starts fresh.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chromalab.models.classify import BinClassifierNet, logits_head
from chromalab.models.effunet import DecoderStep, LiteEncoder
from chromalab.models.registry import register_model


class EffClassifier(BinClassifierNet):
    """EfficientNet-Lite0 encoder, decoder back to stride 4, Q cell logits per pixel there."""

    depth = 5  # total stride 32

    def __init__(
        self,
        out_channels: int = 2,
        decoder_widths: tuple[int, ...] = (128, 64, 48),
        head_width: int = 128,
        norm: str = "batch",
        temperature: float = 0.38,
        pretrained: bool = True,
    ) -> None:
        super().__init__(out_channels, temperature)
        if len(decoder_widths) != 3:
            raise ValueError("effclassify decodes to stride 4: give exactly 3 decoder widths")
        self.encoder = LiteEncoder(pretrained)
        skips = LiteEncoder.channels[1:-1][::-1]  # 112 (stride 16), 40 (8), 24 (4)
        steps = []
        cin = LiteEncoder.channels[-1]
        for skip, cout in zip(skips, decoder_widths):
            steps.append(DecoderStep(cin, skip, int(cout), norm))
            cin = int(cout)
        self.decoder = nn.ModuleList(steps)
        self.head = logits_head(cin, int(head_width), norm)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) with H, W multiples of 32 -> (B, Q, H/4, W/4) logits."""
        _, *skips, h = self.encoder(l_norm)  # the stride-2 features are not used
        for step, skip in zip(self.decoder, reversed(skips)):
            h = step(h, skip)
        return self.head(h)


@register_model(
    "effclassify",
    "Zhang-style ab classification (rebalanced, annealed mean) on the pretrained EfficientNet-Lite0",
    objective="classification",
    pretrained=True,
)
def effclassify(**kwargs: Any) -> EffClassifier:
    return EffClassifier(**kwargs)
