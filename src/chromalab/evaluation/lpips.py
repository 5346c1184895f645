"""ST-LPIPS (shift-tolerant LPIPS, VGG trunk) as an evaluation metric, per image.

The network comes from the optional ``stlpips-pytorch`` package through the training loss's
loader (``chromalab.losses.perceptual.STLPIPSLoss``): one place knows how to import that
package without its unused torchvision / IPython / torchsummary imports, and checks that the
shipped weights cover every layer. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn


def stlpips_available() -> bool:
    return importlib.util.find_spec("stlpips_pytorch") is not None


def load_stlpips_vgg() -> nn.Module:
    """The ST-LPIPS VGG network (``stlpips.LPIPS``), eval mode, weights checked, frozen."""
    from chromalab.losses.perceptual import STLPIPSLoss

    return STLPIPSLoss(trunk="vgg").net


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # stlpips.utils.normalize_tensor: divide by the channel-vector length at each position.
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)


class LpipsScorer:
    """Per-image ST-LPIPS distances of several models' outputs to the same ground truths.

    ``LPIPS.forward`` runs the VGG trunk on both images of every pair; here the truth's
    activations are computed once per chunk and shared by every model (the result equals
    ``LPIPS.forward(output, truth)``; the tests check it). Chunks stay small because VGG
    activations of one 256² photo take about 32 MB.
    """

    def __init__(self, device: str | torch.device = "cpu", chunk: int = 4) -> None:
        self.device = torch.device(device)
        self.metric = load_stlpips_vgg().to(self.device)
        self.chunk = chunk

    @torch.inference_mode()
    def features(self, images_u8: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalized VGG activations of uint8 (B, 3, H, W) at the five LPIPS layers."""
        from chromalab.losses.perceptual import upsample_to_min_size

        x = images_u8.to(self.device, torch.float32) / 127.5 - 1.0
        (x,) = upsample_to_min_size(x)  # the trunk needs >= 22 px at its coarsest stage
        outputs = self.metric.net.forward(self.metric.scaling_layer(x))
        return [_unit_normalize(outputs[k]) for k in range(self.metric.L)]

    @torch.inference_mode()
    def distance(self, truth_features: list[torch.Tensor], output_features: list[torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(len(truth_features[0]), device=self.device)
        for k, (truth, output) in enumerate(zip(truth_features, output_features)):
            total += self.metric.lins[k]((truth - output) ** 2).mean(dim=(1, 2, 3))
        return total.cpu().to(torch.float64)

    def distances(self, truth_u8: torch.Tensor, outputs_u8: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{model: (B,) distances} for outputs (B, 3, H, W) of the truths (B, 3, H, W)."""
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in outputs_u8}
        for start in range(0, len(truth_u8), self.chunk):
            window = slice(start, start + self.chunk)
            truth_features = self.features(truth_u8[window])
            for name, outputs in outputs_u8.items():
                parts[name].append(self.distance(truth_features, self.features(outputs[window])))
        return {name: torch.cat(values) for name, values in parts.items()}
